/* eval: the evaluators of sentence-transformers v3 (similarity, triplet, binary classification, information
 * retrieval, paraphrase mining) over examples read from a record stream; st-eval's engine, callable in-process
 * (lib/eval.h, docs/st-eval.md). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eval.h"
#include "metrics.h"
#include "model.h"
#include "safetensors.h"
#include "search.h"
#include "st.h"
#include "stream.h"
#include "tokenizer.h"

#define MAXCOL 8


/* The evaluation data: unique items (texts, or embedding rows without texts) and examples over them. */
struct data {
	search_texts keys;   /* "t" + text, or "e" + the row's bytes */
	float *emb;          /* [keys.n][d], filled as items arrive (--embeddings) or by encoding */
	size_t emb_cap;
	int d;
	size_t n, cap;
	int32_t (*cols)[MAXCOL];
	int *ncol;
	double *label;
	int *has_label;
	size_t ncorpus_extra;
	int32_t *corpus_extra;
	/* reranking: example i's query is cols[i][0]; its documents rr_ids[rr_start[i] ..], the first label[i] of
	 * them positive */
	int32_t *rr_ids;
	float *emb2;         /* mse with a model: the student's embeddings of column 1, [n][d] */
	size_t rr_n, rr_cap, *rr_start;
};

static void data_free(struct data *D)
{
	search_texts_free(&D->keys);
	free(D->emb);
	free(D->cols);
	free(D->ncol);
	free(D->label);
	free(D->has_label);
	free(D->corpus_extra);
	free(D->rr_ids);
	free(D->emb2);
	free(D->rr_start);
	memset(D, 0, sizeof *D);
}

/* ---- metrics output: an ordered list of (name, value) ---- */


static void putv(struct eval_result *m, double v, const char *prefix, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void putv(struct eval_result *m, double v, const char *prefix, const char *fmt, ...)
{
	char key[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(key, sizeof key, fmt, ap);
	va_end(ap);
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 32;
		m->names = xrealloc(m->names, xmul(m->cap, sizeof *m->names));
		m->vals = xrealloc(m->vals, xmul(m->cap, sizeof *m->vals));
	}
	char full[512];
	if (prefix && *prefix)
		snprintf(full, sizeof full, "%s_%s", prefix, key);
	else
		snprintf(full, sizeof full, "%s", key);
	m->names[m->n] = xstrdup(full);
	m->vals[m->n++] = v;
}

/* Shortest text that reads back as the same double (Python's repr). */
static void fmt_double(char *buf, size_t len, double v)
{
	if (isnan(v)) {
		snprintf(buf, len, "nan");
		return;
	}
	for (int p = 1; p <= 17; p++) {
		snprintf(buf, len, "%.*g", p, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	/* a whole number as a float, as Python prints it */
	if (!strpbrk(buf, ".eninf"))
		strncat(buf, ".0", len - strlen(buf) - 1);
}

/* ---- reading ---- */

static size_t add_item(struct data *D, const char *key, size_t klen, const float *row, int d, const char *where)
{
	size_t before = D->keys.n;
	size_t id = search_texts_add(&D->keys, key, klen);
	if (row) {
		if (!D->d)
			D->d = d;
		else if (D->d != d)
			die(EX_DATAERR, "embeddings of %d dimensions after %d (%s)", d, D->d, where);
		for (int k = 0; k < d; k++)   /* a score from NaN is no score: refuse rather than rank it */
			if (!isfinite(row[k]))
				die(EX_DATAERR, "a non-finite embedding (NaN or Inf) (%s)", where);
		if (id == before) {
			if (D->keys.n > D->emb_cap) {
				D->emb_cap = D->emb_cap ? 2 * D->emb_cap : 1024;
				D->emb = xrealloc(D->emb, xmul(xmul(D->emb_cap, d), sizeof(float)));
			}
			memcpy(D->emb + id * d, row, sizeof(float) * d);
		}
	}
	return id;
}

static size_t add_text(struct data *D, const char *s, size_t len, const float *row, int d, const char *where)
{
	char *key = xmalloc(len + 2);
	key[0] = 't';
	memcpy(key + 1, s, len);
	size_t id = add_item(D, key, len + 1, row, d, where);
	free(key);
	return id;
}

static size_t add_row(struct data *D, const float *row, int d, const char *where)
{
	char *key = xmalloc(sizeof(float) * d + 1);
	key[0] = 'e';
	memcpy(key + 1, row, sizeof(float) * d);
	size_t id = add_item(D, key, sizeof(float) * d + 1, row, d, where);
	free(key);
	return id;
}

static void add_example(struct data *D, const int32_t *ids, int ncol, int has_label, double label)
{
	if (D->n == D->cap) {
		D->cap = D->cap ? 2 * D->cap : 1024;
		D->cols = xrealloc(D->cols, xmul(D->cap, sizeof *D->cols));
		D->ncol = xrealloc(D->ncol, xmul(D->cap, sizeof *D->ncol));
		D->label = xrealloc(D->label, xmul(D->cap, sizeof *D->label));
		D->has_label = xrealloc(D->has_label, xmul(D->cap, sizeof *D->has_label));
	}
	memcpy(D->cols[D->n], ids, sizeof(int32_t) * ncol);
	D->ncol[D->n] = ncol;
	D->has_label[D->n] = has_label;
	D->label[D->n++] = label;
}

/* "embeddings" as a float32 tensor, or "embedding" as a plain array (st-encode's output): rows [n][d]. */
static float *record_rows(const st_val *rec, int *ndim, int64_t shape[3], int *owned)
{
	st_tensor *t = st_get_tensor(rec, "embeddings");
	*owned = 0;
	if (t && t->dtype == ST_F32 && t->ndim >= 1 && t->ndim <= 3) {
		*ndim = t->ndim;
		for (int k = 0; k < t->ndim; k++)
			shape[k] = t->shape[k];
		return ST_F32P(t);
	}
	st_val *a = st_get(rec, "embedding");
	if (!a)
		a = st_get(rec, "embeddings");
	if (a && a->type == ST_ARRAY && a->arr.n > 0) {
		float *row = xmalloc(xmul(a->arr.n, sizeof(float)));
		for (size_t k = 0; k < a->arr.n; k++) {
			double v;
			if (st_num(a->arr.items[k], &v) < 0) {
				free(row);
				return NULL;
			}
			row[k] = (float)v;
		}
		*ndim = 1;
		shape[0] = (int64_t)a->arr.n;
		*owned = 1;
		return row;
	}
	return NULL;
}

/* reranking: one item of a {"query", "positive": [...], "negative": [...]} record: a text, or with --embeddings
 * an array of numbers */
static int32_t rerank_item(struct data *D, const struct eval_opts *o, const st_val *v, const char *field,
			   const char *where)
{
	if (!o->embeddings) {
		if (!v || v->type != ST_STR)
			die(EX_DATAERR, "reranking: \"%s\" needs texts (%s)", field, where);
		return (int32_t)add_text(D, v->str.s, v->str.len, NULL, 0, where);
	}
	if (!v || v->type != ST_ARRAY || v->arr.n == 0)
		die(EX_DATAERR, "reranking --embeddings: \"%s\" needs arrays of numbers (%s)", field, where);
	float *row = xmalloc(xmul(v->arr.n, sizeof(float)));
	for (size_t k = 0; k < v->arr.n; k++) {
		double x;
		if (st_num(v->arr.items[k], &x) < 0)
			die(EX_DATAERR, "reranking --embeddings: \"%s\" holds something other than numbers (%s)", field, where);
		row[k] = (float)x;
	}
	int32_t id = (int32_t)add_row(D, row, (int)v->arr.n, where);
	free(row);
	return id;
}

static void read_reranking(struct data *D, const struct eval_opts *o, st_reader *in, const char *source)
{
	st_val *rec;
	size_t skipped = 0;
	while ((rec = st_read(in))) {
		const char *where = st_reader_where(in);
		const st_val *q = st_get(rec, "query"), *lists[2] = { st_get(rec, "positive"), st_get(rec, "negative") };
		static const char *const field[2] = { "positive", "negative" };
		if (!q)
			die(EX_DATAERR, "reranking: a record without \"query\" (%s)", where);
		for (int l = 0; l < 2; l++)
			if (!lists[l] || lists[l]->type != ST_ARRAY)
				die(EX_DATAERR, "reranking: \"%s\" must be a list (%s)", field[l], where);
		/* the library drops samples without a positive or without a negative */
		if (!lists[0]->arr.n || !lists[1]->arr.n) {
			skipped++;
			st_free(rec);
			continue;
		}
		int32_t qid = rerank_item(D, o, q, "query", where);
		if (D->n == D->cap)
			D->rr_start = xrealloc(D->rr_start, xmul(D->cap ? 2 * D->cap + 1 : 1025, sizeof *D->rr_start));
		D->rr_start[D->n] = D->rr_n;
		for (int l = 0; l < 2; l++)
			for (size_t k = 0; k < lists[l]->arr.n; k++) {
				if (D->rr_n == D->rr_cap) {
					D->rr_cap = D->rr_cap ? 2 * D->rr_cap : 1024;
					D->rr_ids = xrealloc(D->rr_ids, xmul(D->rr_cap, sizeof *D->rr_ids));
				}
				D->rr_ids[D->rr_n++] = rerank_item(D, o, lists[l]->arr.items[k], field[l], where);
			}
		add_example(D, &qid, 1, 1, (double)lists[0]->arr.n);
		D->rr_start[D->n] = D->rr_n;
		st_free(rec);
	}
	if (D->n == 0)
		die(EX_DATAERR, "reranking: no sample with both positive and negative documents in %s (%zu skipped)",
		    source, skipped);
}

static void read_examples(struct data *D, const struct eval_opts *o, st_reader *in, const char *source)
{
	if (o->kind == EVAL_RERANKING) {
		read_reranking(D, o, in, source);
		return;
	}
	st_val *rec;
	while ((rec = st_read(in))) {
		const char *where = st_reader_where(in);
		const char *texts[MAXCOL];
		size_t lens[MAXCOL];
		int nt = st_example_texts(rec, texts, lens, MAXCOL);
		if (nt > MAXCOL)
			die(EX_DATAERR, "more than %d texts in one example (%s)", MAXCOL, where);
		double label = 0;
		int has_label = 0;
		st_val *lv = st_example_label(rec);
		if (lv && lv->type != ST_NIL) {
			if (st_num(lv, &label) < 0)
				die(EX_DATAERR, "the label is not a number (%s)", where);
			has_label = 1;
		}
		int32_t ids[MAXCOL];
		if (!o->embeddings) {
			if (nt < 1)
				die(EX_DATAERR, "an example without texts (%s)", where);
			for (int c = 0; c < nt; c++)
				ids[c] = (int32_t)add_text(D, texts[c], lens[c], NULL, 0, where);
			add_example(D, ids, nt, has_label, label);
			st_free(rec);
			continue;
		}
		int ndim, owned;
		int64_t shape[3];
		float *x = record_rows(rec, &ndim, shape, &owned);
		if (!x)
			die(EX_DATAERR, "a record without float32 \"embeddings\" (%s); --embeddings reads st-forward's "
			    "batches or examples with embeddings", where);
		if (ndim == 3) {   /* a batch [columns][rows][dim] */
			int C = (int)shape[0], R = (int)shape[1], d = (int)shape[2];
			if (C > MAXCOL)
				die(EX_DATAERR, "more than %d columns (%s)", MAXCOL, where);
			st_tensor *L = st_get_tensor(rec, "labels");
			if (L && (L->ndim != 1 || L->shape[0] != R))
				die(EX_DATAERR, "\"labels\" must be a tensor [%d] (%s)", R, where);
			for (int r = 0; r < R; r++) {
				for (int c = 0; c < C; c++)
					ids[c] = (int32_t)add_row(D, x + ((size_t)c * R + r) * d, d, where);
				double lab = 0;
				if (L)
					lab = L->dtype == ST_F32 ? ST_F32P(L)[r] : L->dtype == ST_I32 ? ST_I32P(L)[r] : 0;
				add_example(D, ids, C, L != NULL, lab);
			}
		} else {
			int C = ndim == 2 ? (int)shape[0] : 1, d = (int)shape[ndim - 1];
			if (C > MAXCOL)
				die(EX_DATAERR, "more than %d columns (%s)", MAXCOL, where);
			if (nt >= 1 && nt != C)
				die(EX_DATAERR, "%d texts but %d embeddings (%s)", nt, C, where);
			for (int c = 0; c < C; c++)
				ids[c] = (int32_t)(nt >= 1 ? add_text(D, texts[c], lens[c], x + (size_t)c * d, d, where)
							  : add_row(D, x + (size_t)c * d, d, where));
			add_example(D, ids, C, has_label, label);
		}
		if (owned)
			free(x);
		st_free(rec);
	}
	if (D->n == 0)
		die(EX_DATAERR, "no examples in %s", source);
}

static void read_corpus(struct data *D, const struct eval_opts *o)
{
	FILE *f = fopen(o->corpus, "r");
	if (!f)
		die(EX_NOINPUT, "cannot open %s: %s", o->corpus, strerror(errno));
	if (!o->embeddings) {
		search_texts t = { 0 };
		char err[512];
		if (search_read_lines(f, o->corpus, &t, 0, err, sizeof err) < 0)
			die(EX_DATAERR, "%s", err);
		D->corpus_extra = xmalloc(xmul(t.n + 1, sizeof(int32_t)));
		for (size_t i = 0; i < t.n; i++)
			D->corpus_extra[D->ncorpus_extra++] = (int32_t)add_text(D, t.s[i], t.len[i], NULL, 0, o->corpus);
		search_texts_free(&t);
		fclose(f);
		return;
	}
	st_reader *in = st_reader_open(fileno(f), o->corpus);
	st_val *rec;
	size_t cap = 0;
	while ((rec = st_read(in))) {
		int ndim, owned;
		int64_t shape[3];
		float *x = record_rows(rec, &ndim, shape, &owned);
		if (!x || ndim == 3)
			die(EX_DATAERR, "%s: a record without \"embeddings\" [dim] or [rows][dim] (%s)", o->corpus,
			    st_reader_where(in));
		const char *txt = st_get_str(rec, "text");
		int R = ndim == 2 ? (int)shape[0] : 1, d = (int)shape[ndim - 1];
		for (int r = 0; r < R; r++) {
			if (D->ncorpus_extra == cap) {
				cap = cap ? 2 * cap : 1024;
				D->corpus_extra = xrealloc(D->corpus_extra, xmul(cap, sizeof(int32_t)));
			}
			D->corpus_extra[D->ncorpus_extra++] = (int32_t)(txt && R == 1
				? add_text(D, txt, strlen(txt), x, d, o->corpus) : add_row(D, x + (size_t)r * d, d, o->corpus));
		}
		if (owned)
			free(x);
		st_free(rec);
	}
	st_reader_close(in);
	fclose(f);
}

/* ---- encoding ---- */

/* TEXTS encoded by the model in DIR: malloc'd [n][*d] */
static float *encode_texts(const char *dir, const char *const *texts, const size_t *lens, size_t n, int batch_size,
			   int *d)
{
	char err[1024];
	st_model *m;
	tokenizer *tok;
	search_open_model(dir, &m, &tok);
	*d = model_dim(m);
	float *emb = xmalloc(xmul(xmul(n + 1, *d), sizeof(float)));
	if (search_encode(m, tok, texts, lens, n, batch_size, 0, emb, err, sizeof err) < 0)
		die(EX_DATAERR, "%s", err);
	tokenizer_free(tok);
	model_free(m);
	return emb;
}

static void encode_items(struct data *D, const struct eval_opts *o)
{
	const char *dir = o->kind == EVAL_MSE ? o->teacher : o->model;
	if (o->kind == EVAL_MSE && !o->teacher)
		die(EX_USAGE, "mse needs the teacher model: --teacher DIR (or --embeddings)");
	if (!o->model)
		die(EX_USAGE, "no model: give --model DIR (or set ST_MODEL), or --embeddings");
	size_t n = D->keys.n;
	const char **texts = xmalloc(xmul(n + 1, sizeof *texts));
	size_t *lens = xmalloc(xmul(n + 1, sizeof *lens));
	for (size_t i = 0; i < n; i++) {   /* keys are "t" + text */
		texts[i] = D->keys.s[i] + 1;
		lens[i] = D->keys.len[i] - 1;
	}
	D->emb = encode_texts(dir, texts, lens, n, o->batch_size, &D->d);
	if (o->kind == EVAL_MSE) {   /* the model being evaluated encodes the targets */
		texts = xrealloc(texts, xmul(D->n + 1, sizeof *texts));
		lens = xrealloc(lens, xmul(D->n + 1, sizeof *lens));
		for (size_t i = 0; i < D->n; i++) {
			if (D->ncol[i] < 2)
				die(EX_DATAERR, "mse needs 2 texts per example; example %zu has %d", i + 1, D->ncol[i]);
			texts[i] = D->keys.s[D->cols[i][1]] + 1;
			lens[i] = D->keys.len[D->cols[i][1]] - 1;
		}
		int d2;
		D->emb2 = encode_texts(o->model, texts, lens, D->n, o->batch_size, &d2);
		if (d2 != D->d)
			die(EX_DATAERR, "mse: the teacher's embeddings have %d dimensions, the model's %d", D->d, d2);
	}
	free(texts);
	free(lens);
}

/* similarity_fn_name of the model's config_sentence_transformers.json; cosine when absent. */
static int model_similarity(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/config_sentence_transformers.json", dir);
	json_t *j = json_load_file(path, 0, NULL);
	int sim = METRICS_COSINE;
	if (j) {
		const char *s = json_string_value(json_object_get(j, "similarity_fn_name"));
		if (s && metrics_sim_parse(s) >= 0)
			sim = metrics_sim_parse(s);
		json_decref(j);
	}
	return sim;
}

/* ---- the evaluators ---- */

static const float *row_of(const struct data *D, int32_t id) { return D->emb + (size_t)id * D->d; }

/* Scores of columns (a, b) of every example under one similarity. */
static void pair_scores(const struct data *D, int ca, int cb, int sim, double *out)
{
	float *A = xmalloc(xmul(xmul(D->n, D->d), sizeof(float))), *B = xmalloc(xmul(xmul(D->n, D->d), sizeof(float)));
	for (size_t i = 0; i < D->n; i++) {
		memcpy(A + i * D->d, row_of(D, D->cols[i][ca]), sizeof(float) * D->d);
		memcpy(B + i * D->d, row_of(D, D->cols[i][cb]), sizeof(float) * D->d);
	}
	metrics_pairwise(sim, A, B, D->n, D->d, out);
	free(A);
	free(B);
}

static void need_columns(const struct data *D, int k, const char *kind)
{
	for (size_t i = 0; i < D->n; i++)
		if (D->ncol[i] < k)
			die(EX_DATAERR, "%s needs %d texts per example; example %zu has %d", kind, k, i + 1, D->ncol[i]);
}

static void need_labels(const struct data *D, const char *kind)
{
	for (size_t i = 0; i < D->n; i++)
		if (!D->has_label[i])
			die(EX_DATAERR, "%s needs a label in every example; example %zu has none", kind, i + 1);
}

static double maxd(double a, double b) { return isnan(a) ? b : isnan(b) ? a : a > b ? a : b; }

static void eval_similarity(const struct data *D, const struct eval_opts *o, struct eval_result *M, double *csv, int *ncsv)
{
	need_columns(D, 2, "similarity");
	need_labels(D, "similarity");
	double *s = xmalloc(xmul(D->n, sizeof *s)), pmax = NAN, smax = NAN;
	for (int f = 0; f < o->nsims; f++) {
		const char *fn = metrics_sim_name(o->sims[f]);
		pair_scores(D, 0, 1, o->sims[f], s);
		double p = metrics_pearson(D->label, s, D->n), r = metrics_spearman(D->label, s, D->n);
		putv(M, p, o->name, "pearson_%s", fn);
		putv(M, r, o->name, "spearman_%s", fn);
		csv[(*ncsv)++] = p;
		csv[(*ncsv)++] = r;
		pmax = maxd(pmax, p);
		smax = maxd(smax, r);
	}
	if (o->nsims > 1) {
		putv(M, pmax, o->name, "pearson_max");
		putv(M, smax, o->name, "spearman_max");
	}
	free(s);
}

static void eval_triplet(const struct data *D, const struct eval_opts *o, struct eval_result *M, double *csv, int *ncsv)
{
	need_columns(D, 3, "triplet");
	double *pos = xmalloc(xmul(D->n, 2 * sizeof *pos)), *neg = pos + D->n, best = NAN;
	for (int f = 0; f < o->nsims; f++) {
		pair_scores(D, 0, 1, o->sims[f], pos);
		pair_scores(D, 0, 2, o->sims[f], neg);
		size_t correct = 0;
		for (size_t i = 0; i < D->n; i++)
			correct += pos[i] > neg[i] + o->margin;
		double acc = (double)correct / D->n;
		putv(M, acc, o->name, "%s_accuracy", metrics_sim_name(o->sims[f]));
		csv[(*ncsv)++] = acc;
		best = maxd(best, acc);
	}
	if (o->nsims > 1)
		putv(M, best, o->name, "max_accuracy");
	free(pos);
}

static void eval_binary(const struct data *D, const struct eval_opts *o, struct eval_result *M, double *csv, int *ncsv)
{
	need_columns(D, 2, "binary");
	need_labels(D, "binary");
	int *lab = xmalloc(xmul(D->n, sizeof *lab));
	for (size_t i = 0; i < D->n; i++) {
		if (D->label[i] != 0 && D->label[i] != 1)
			die(EX_DATAERR, "binary needs labels 0 or 1; example %zu has %g", i + 1, D->label[i]);
		lab[i] = (int)D->label[i];
	}
	double *s = xmalloc(xmul(D->n, sizeof *s));
	static const char *const names[8] = { "accuracy", "accuracy_threshold", "f1", "f1_threshold", "precision",
					      "recall", "ap", "mcc" };
	double best[8];
	for (int k = 0; k < 8; k++)
		best[k] = NAN;
	for (int f = 0; f < o->nsims; f++) {
		pair_scores(D, 0, 1, o->sims[f], s);
		double v[8];
		v[0] = metrics_best_accuracy(s, lab, D->n, &v[1]);
		v[2] = metrics_best_f1(s, lab, D->n, &v[4], &v[5], &v[3]);
		v[6] = metrics_average_precision(s, lab, D->n);
		v[7] = metrics_mcc(s, lab, D->n, v[3]);
		for (int k = 0; k < 8; k++) {
			putv(M, v[k], o->name, "%s_%s", metrics_sim_name(o->sims[f]), names[k]);
			best[k] = maxd(best[k], v[k]);
		}
		/* CSV column order: accuracy, accuracy_threshold, f1, precision, recall, f1_threshold, ap, mcc */
		static const int csv_order[8] = { 0, 1, 2, 4, 5, 3, 6, 7 };
		for (int k = 0; k < 8; k++)
			csv[(*ncsv)++] = v[csv_order[k]];
	}
	if (o->nsims > 1)
		for (int k = 0; k < 8; k++)
			putv(M, best[k], o->name, "max_%s", names[k]);
	free(s);
	free(lab);
}

static int max_of(const int *k, int n, int m)
{
	for (int i = 0; i < n; i++)
		m = k[i] > m ? k[i] : m;
	return m;
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return x < y ? -1 : x > y;
}

static void eval_ir(const struct data *D, const struct eval_opts *o, struct eval_result *M, double *csv, int *ncsv)
{
	need_columns(D, 2, "ir");
	size_t nitems = D->keys.n;
	/* roles: queries in order of first appearance; corpus = every later column and --corpus */
	int32_t *qpos = xmalloc(xmul(nitems, sizeof *qpos)), *cpos = xmalloc(xmul(nitems, sizeof *cpos));
	for (size_t i = 0; i < nitems; i++)
		qpos[i] = cpos[i] = -1;
	int32_t *queries = xmalloc(xmul(nitems, sizeof *queries)), *corpus = xmalloc(xmul(nitems, sizeof *corpus));
	size_t nq = 0, nc = 0;
	for (size_t i = 0; i < D->n; i++) {
		if (qpos[D->cols[i][0]] < 0) {
			qpos[D->cols[i][0]] = (int32_t)nq;
			queries[nq++] = D->cols[i][0];
		}
		for (int c = 1; c < D->ncol[i]; c++)
			if (cpos[D->cols[i][c]] < 0) {
				cpos[D->cols[i][c]] = (int32_t)nc;
				corpus[nc++] = D->cols[i][c];
			}
	}
	for (size_t i = 0; i < D->ncorpus_extra; i++)
		if (cpos[D->corpus_extra[i]] < 0) {
			cpos[D->corpus_extra[i]] = (int32_t)nc;
			corpus[nc++] = D->corpus_extra[i];
		}
	/* relevant corpus positions per query: (query, doc) pairs, sorted, unique */
	int32_t (*rel)[2] = xmalloc(xmul(D->n + 1, sizeof *rel));
	size_t nrel = 0;
	for (size_t i = 0; i < D->n; i++)
		if (!D->has_label[i] || D->label[i] > 0) {
			rel[nrel][0] = qpos[D->cols[i][0]];
			rel[nrel][1] = cpos[D->cols[i][1]];
			nrel++;
		}
	qsort(rel, nrel, sizeof *rel, cmp_i32);   /* by query only; docs sorted below */
	size_t *rstart = xcalloc(nq + 1, sizeof *rstart);
	for (size_t r = 0; r < nrel; r++)
		rstart[rel[r][0] + 1]++;
	for (size_t q = 0; q < nq; q++)
		rstart[q + 1] += rstart[q];
	int32_t *reldocs = xmalloc(xmul(nrel + 1, sizeof *reldocs));
	size_t *fill = xcalloc(nq + 1, sizeof *fill);
	for (size_t r = 0; r < nrel; r++)
		reldocs[rstart[rel[r][0]] + fill[rel[r][0]]++] = rel[r][1];
	free(fill);
	/* unique docs per query, and the queries that have any (the library drops the others) */
	int *qrel = xcalloc(nq + 1, sizeof *qrel);
	int32_t *kept = xmalloc(xmul(nq + 1, sizeof *kept));
	size_t nkept = 0;
	for (size_t q = 0; q < nq; q++) {
		int32_t *r = reldocs + rstart[q];
		size_t n = rstart[q + 1] - rstart[q], u = 0;
		qsort(r, n, sizeof *r, cmp_i32);
		for (size_t k = 0; k < n; k++)
			if (!u || r[k] != r[u - 1])
				r[u++] = r[k];
		qrel[q] = (int)u;
		if (u)
			kept[nkept++] = (int32_t)q;
	}
	if (!nkept)
		die(EX_DATAERR, "ir: no query has a relevant document");
	int max_k = max_of(o->mrr, o->nmrr, 0);
	max_k = max_of(o->ndcg, o->nndcg, max_k);
	max_k = max_of(o->acc, o->nacc, max_k);
	max_k = max_of(o->pr, o->npr, max_k);
	max_k = max_of(o->map, o->nmap, max_k);
	float *Q = xmalloc(xmul(xmul(nkept, D->d), sizeof(float))), *C = xmalloc(xmul(xmul(nc + 1, D->d), sizeof(float)));
	for (size_t k = 0; k < nkept; k++)
		memcpy(Q + k * D->d, row_of(D, queries[kept[k]]), sizeof(float) * D->d);
	for (size_t k = 0; k < nc; k++)
		memcpy(C + k * D->d, row_of(D, corpus[k]), sizeof(float) * D->d);
	search_hit *hits = xmalloc(xmul(xmul(nkept, max_k), sizeof *hits));
	int *nhits = xmalloc(xmul(nkept, sizeof *nhits)), *isrel = xmalloc(xmul(max_k, sizeof *isrel));
	double best_ndcg = NAN;
	for (int f = 0; f < o->nsims; f++) {
		int sim = o->sims[f];
		if (sim != METRICS_COSINE && sim != METRICS_DOT)
			die(EX_USAGE, "ir scores with cosine or dot, not %s", metrics_sim_name(sim));
		search_topk(Q, nkept, C, nc, D->d, sim, max_k, hits, nhits);
		double acc[EVAL_MAXK] = { 0 }, prec[EVAL_MAXK] = { 0 }, rec[EVAL_MAXK] = { 0 }, mrr[EVAL_MAXK] = { 0 }, ndcg[EVAL_MAXK] = { 0 },
		       map[EVAL_MAXK] = { 0 };
		for (size_t k = 0; k < nkept; k++) {
			size_t q = kept[k];
			const int32_t *r = reldocs + rstart[q];
			for (int h = 0; h < nhits[k]; h++)
				isrel[h] = bsearch(&hits[k * max_k + h].id, r, qrel[q], sizeof *r, cmp_i32) != NULL;
			for (int i = 0; i < o->nacc; i++)
				acc[i] += metrics_accuracy_at_k(isrel, nhits[k], o->acc[i]);
			for (int i = 0; i < o->npr; i++) {
				prec[i] += metrics_precision_at_k(isrel, nhits[k], o->pr[i]);
				rec[i] += metrics_recall_at_k(isrel, nhits[k], qrel[q], o->pr[i]);
			}
			for (int i = 0; i < o->nmrr; i++)
				mrr[i] += metrics_mrr_at_k(isrel, nhits[k], o->mrr[i]);
			for (int i = 0; i < o->nndcg; i++)
				ndcg[i] += metrics_ndcg_at_k(isrel, nhits[k], qrel[q], o->ndcg[i]);
			for (int i = 0; i < o->nmap; i++)
				map[i] += metrics_map_at_k(isrel, nhits[k], qrel[q], o->map[i]);
		}
		const char *fn = metrics_sim_name(sim);
		for (int i = 0; i < o->nacc; i++)
			putv(M, acc[i] / nkept, o->name, "%s_accuracy@%d", fn, o->acc[i]);
		for (int i = 0; i < o->npr; i++)
			putv(M, prec[i] / nkept, o->name, "%s_precision@%d", fn, o->pr[i]);
		for (int i = 0; i < o->npr; i++)
			putv(M, rec[i] / nkept, o->name, "%s_recall@%d", fn, o->pr[i]);
		for (int i = 0; i < o->nndcg; i++)
			putv(M, ndcg[i] / nkept, o->name, "%s_ndcg@%d", fn, o->ndcg[i]);
		for (int i = 0; i < o->nmrr; i++)
			putv(M, mrr[i] / nkept, o->name, "%s_mrr@%d", fn, o->mrr[i]);
		for (int i = 0; i < o->nmap; i++)
			putv(M, map[i] / nkept, o->name, "%s_map@%d", fn, o->map[i]);
		/* CSV: Accuracy@k..., Precision@k, Recall@k pairs, MRR@k, NDCG@k, MAP@k */
		for (int i = 0; i < o->nacc; i++)
			csv[(*ncsv)++] = acc[i] / nkept;
		for (int i = 0; i < o->npr; i++) {
			csv[(*ncsv)++] = prec[i] / nkept;
			csv[(*ncsv)++] = rec[i] / nkept;
		}
		for (int i = 0; i < o->nmrr; i++)
			csv[(*ncsv)++] = mrr[i] / nkept;
		for (int i = 0; i < o->nndcg; i++)
			csv[(*ncsv)++] = ndcg[i] / nkept;
		for (int i = 0; i < o->nmap; i++)
			csv[(*ncsv)++] = map[i] / nkept;
		int main_k = max_of(o->ndcg, o->nndcg, 0);
		for (int i = 0; i < o->nndcg; i++)
			if (o->ndcg[i] == main_k)
				best_ndcg = maxd(best_ndcg, ndcg[i] / nkept);
	}
	if (o->nsims > 1)
		putv(M, best_ndcg, o->name, "max_ndcg@%d", max_of(o->ndcg, o->nndcg, 0));
	free(Q); free(C); free(hits); free(nhits); free(isrel); free(kept); free(qrel); free(reldocs);
	free(rstart); free(rel); free(queries); free(corpus); free(qpos); free(cpos);
}

static int cmp_pair64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void eval_mining(const struct data *D, const struct eval_opts *o, struct eval_result *M, double *csv, int *ncsv)
{
	need_columns(D, 1, "paraphrase-mining");
	int sim = o->sims[0];
	if (o->nsims > 1 || (sim != METRICS_COSINE && sim != METRICS_DOT))
		die(EX_USAGE, "paraphrase-mining scores with one similarity, cosine or dot");
	/* gold pairs: columns 0 and 1 of examples without a label or with a positive one */
	uint64_t *gold = xmalloc(xmul(D->n + 1, sizeof *gold));
	size_t ngold = 0;
	for (size_t i = 0; i < D->n; i++)
		if (D->ncol[i] >= 2 && (!D->has_label[i] || D->label[i] > 0)) {
			uint32_t a = D->cols[i][0], b = D->cols[i][1];
			gold[ngold++] = a < b ? (uint64_t)a << 32 | b : (uint64_t)b << 32 | a;
		}
	qsort(gold, ngold, sizeof *gold, cmp_pair64);
	size_t u = 0;
	for (size_t k = 0; k < ngold; k++)
		if (!u || gold[k] != gold[u - 1])
			gold[u++] = gold[k];
	ngold = u;
	if (!ngold)
		die(EX_DATAERR, "paraphrase-mining: no duplicate pairs (examples with two texts and no label or label 1)");
	search_pair *pairs;
	size_t np = search_mine(D->emb, D->keys.n, D->d, sim, o->top_k, o->max_pairs, o->corpus_chunk, &pairs);
	double *scores = xmalloc(xmul(np + 1, sizeof *scores));
	int *dup = xmalloc(xmul(np + 1, sizeof *dup));
	for (size_t p = 0; p < np; p++) {
		uint64_t key = (uint64_t)(uint32_t)pairs[p].i << 32 | (uint32_t)pairs[p].j;
		scores[p] = pairs[p].score;
		dup[p] = bsearch(&key, gold, ngold, sizeof *gold, cmp_pair64) != NULL;
	}
	double f1, prec, rec, thr;
	double ap = metrics_paraphrase(scores, dup, np, (double)ngold, &f1, &prec, &rec, &thr);
	putv(M, ap, o->name, "average_precision");
	putv(M, f1, o->name, "f1");
	putv(M, prec, o->name, "precision");
	putv(M, rec, o->name, "recall");
	putv(M, thr, o->name, "threshold");
	double row[5] = { prec, rec, f1, thr, ap };   /* CSV: precision, recall, f1, threshold, average_precision */
	for (int k = 0; k < 5; k++)
		csv[(*ncsv)++] = row[k];
	free(scores); free(dup); free(pairs); free(gold);
}

/* LabelAccuracyEvaluator for SoftmaxLoss: the classifier st-loss softmax trained, on (u, v, |u-v| [, u*v]) */
static void eval_label_accuracy(const struct data *D, const struct eval_opts *o, struct eval_result *M, double *csv,
				int *ncsv)
{
	need_columns(D, 2, "label-accuracy");
	need_labels(D, "label-accuracy");
	if (!o->classifier)
		die(EX_USAGE, "label-accuracy needs the softmax classifier: --classifier FILE or --run DIR");
	char err[512];
	safetensors *f = sft_open(o->classifier, err, sizeof err);
	if (!f)
		die(errno == ENOENT ? EX_NOINPUT : EX_DATAERR, "%s", err);
	const sft_entry *we = sft_find(f, "classifier.weight"), *be = sft_find(f, "classifier.bias");
	if (!we || !be || we->ndim != 2 || be->ndim != 1 || be->shape[0] != we->shape[0] || we->shape[0] < 1)
		die(EX_DATAERR, "%s: no classifier.weight [labels][features] and classifier.bias [labels]", o->classifier);
	int NL = (int)we->shape[0], F = (int)we->shape[1], d = D->d, parts = d ? F / d : 0;
	/* the classifier's width says which features SoftmaxLoss concatenated: 3*dim the defaults (u, v, |u-v|),
	 * 4*dim with the product as well */
	if (parts * d != F || (parts != 3 && parts != 4))
		die(EX_DATAERR, "%s: a classifier of %d features does not fit embeddings of %d dimensions as (u, v, |u-v|) "
		    "or (u, v, |u-v|, u*v)", o->classifier, F, d);
	float *W = xmalloc(xmul(xmul(NL, F), sizeof(float))), *b = xmalloc(xmul(NL, sizeof(float)));
	if (sft_read_f32(f, we, W, err, sizeof err) || sft_read_f32(f, be, b, err, sizeof err))
		die(EX_DATAERR, "%s", err);
	sft_close(f);
	size_t correct = 0;
	double *feat = xmalloc(xmul(F, sizeof *feat));
	for (size_t i = 0; i < D->n; i++) {
		double y = D->label[i];
		if (y != floor(y) || y < 0 || y >= NL)
			die(EX_DATAERR, "label-accuracy needs labels 0..%d; example %zu has %g", NL - 1, i + 1, y);
		const float *u = row_of(D, D->cols[i][0]), *v = row_of(D, D->cols[i][1]);
		for (int k = 0; k < d; k++) {
			feat[k] = u[k];
			feat[d + k] = v[k];
			feat[2 * d + k] = fabs((double)u[k] - v[k]);
			if (parts == 4)
				feat[3 * d + k] = (double)u[k] * v[k];
		}
		int best = 0;   /* argmax, the first of equal logits (torch.argmax) */
		double best_logit = -INFINITY;
		for (int c = 0; c < NL; c++) {
			double z = b[c];
			for (int k = 0; k < F; k++)
				z += W[(size_t)c * F + k] * feat[k];
			if (z > best_logit) {
				best_logit = z;
				best = c;
			}
		}
		correct += best == (int)y;
	}
	double acc = (double)correct / D->n;
	putv(M, acc, o->name, "accuracy");
	csv[(*ncsv)++] = acc;
	free(feat);
	free(W);
	free(b);
}

/* MSEEvaluator: the teacher's embeddings of the sources against the model's of the targets; -MSE*100 */
static void eval_mse(const struct data *D, const struct eval_opts *o, struct eval_result *M, double *csv, int *ncsv)
{
	need_columns(D, 2, "mse");
	double sum = 0;
	for (size_t i = 0; i < D->n; i++) {
		const float *s = row_of(D, D->cols[i][0]), *t = D->emb2 ? D->emb2 + i * D->d : row_of(D, D->cols[i][1]);
		for (int k = 0; k < D->d; k++)
			sum += ((double)s[k] - t[k]) * ((double)s[k] - t[k]);
	}
	double mse = sum / ((double)D->n * D->d) * 100;
	putv(M, -mse, o->name, "negative_mse");
	csv[(*ncsv)++] = mse;   /* the library's CSV keeps the positive MSE */
}

/* RerankingEvaluator: per sample, the documents ranked by similarity to the query; MAP, MRR@k, NDCG@k */
static void eval_reranking(const struct data *D, const struct eval_opts *o, struct eval_result *M, double *csv,
			   int *ncsv)
{
	if (o->nsims > 1)
		die(EX_USAGE, "reranking scores with one similarity function");
	double map = 0, mrr = 0, ndcg = 0;
	for (size_t i = 0; i < D->n; i++) {
		size_t nd = D->rr_start[i + 1] - D->rr_start[i], npos = (size_t)D->label[i];
		const int32_t *ids = D->rr_ids + D->rr_start[i];
		float *Q = xmalloc(xmul(xmul(nd, D->d), sizeof(float))), *C = xmalloc(xmul(xmul(nd, D->d), sizeof(float)));
		double *s = xmalloc(xmul(nd, sizeof *s));
		int *rel = xmalloc(xmul(nd, sizeof *rel));
		for (size_t k = 0; k < nd; k++) {
			memcpy(Q + k * D->d, row_of(D, D->cols[i][0]), sizeof(float) * D->d);
			memcpy(C + k * D->d, row_of(D, ids[k]), sizeof(float) * D->d);
			rel[k] = k < npos;
		}
		metrics_pairwise(o->sims[0], Q, C, nd, D->d, s);
		/* MRR@k: the first relevant document among the k best (ties in input order) */
		size_t *order = xmalloc(xmul(nd, sizeof *order));
		for (size_t k = 0; k < nd; k++)
			order[k] = k;
		for (size_t a = 1; a < nd; a++)   /* stable insertion sort, descending */
			for (size_t b = a; b > 0 && s[order[b]] > s[order[b - 1]]; b--) {
				size_t t = order[b];
				order[b] = order[b - 1];
				order[b - 1] = t;
			}
		for (size_t r = 0; r < nd && (int)r < o->at_k; r++)
			if (rel[order[r]]) {
				mrr += 1.0 / (r + 1);
				break;
			}
		ndcg += metrics_ndcg_ties(s, rel, nd, o->at_k);
		map += metrics_average_precision(s, rel, nd);
		free(order); free(Q); free(C); free(s); free(rel);
	}
	map /= D->n, mrr /= D->n, ndcg /= D->n;
	putv(M, map, o->name, "map");
	putv(M, mrr, o->name, "mrr@%d", o->at_k);
	putv(M, ndcg, o->name, "ndcg@%d", o->at_k);
	csv[(*ncsv)++] = map;
	csv[(*ncsv)++] = mrr;
	csv[(*ncsv)++] = ndcg;
}

/* TranslationEvaluator: is the i-th target the most similar (cosine) to the i-th source, and the other way */
static void eval_translation(const struct data *D, const struct eval_opts *o, struct eval_result *M, double *csv,
			     int *ncsv)
{
	need_columns(D, 2, "translation");
	size_t n = D->n;
	int d = D->d;
	/* S[i][j] = cos(src_i, trg_j), rows normalised first */
	float *S = xmalloc(xmul(n, d) * sizeof(float)), *T = xmalloc(xmul(n, d) * sizeof(float));
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < 2; c++) {
			const float *x = row_of(D, D->cols[i][c]);
			double norm = 0;
			for (int k = 0; k < d; k++)
				norm += (double)x[k] * x[k];
			norm = sqrt(norm);
			norm = norm < 1e-12 ? 1e-12 : norm;
			float *dst = (c ? T : S) + i * d;
			for (int k = 0; k < d; k++)
				dst[k] = (float)(x[k] / norm);
		}
	size_t *best_t = xmalloc(xmul(n, sizeof *best_t)), *best_s = xmalloc(xmul(n, sizeof *best_s));
	double *max_t = xmalloc(xmul(n, sizeof *max_t)), *max_s = xmalloc(xmul(n, sizeof *max_s));
	for (size_t i = 0; i < n; i++)
		max_t[i] = max_s[i] = -INFINITY, best_t[i] = best_s[i] = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {   /* argmax: the first of equal scores, as torch.argmax */
			double c = 0;
			for (int k = 0; k < d; k++)
				c += (double)S[i * d + k] * T[j * d + k];
			if (c > max_t[i])
				max_t[i] = c, best_t[i] = j;
			if (c > max_s[j])
				max_s[j] = c, best_s[j] = i;
		}
	size_t s2t = 0, t2s = 0;
	for (size_t i = 0; i < n; i++) {
		s2t += best_t[i] == i;
		t2s += best_s[i] == i;
	}
	double a = (double)s2t / n, b = (double)t2s / n;
	(void)o;
	putv(M, a, o->name, "src2trg_accuracy");
	putv(M, b, o->name, "trg2src_accuracy");
	putv(M, (a + b) / 2, o->name, "mean_accuracy");
	csv[(*ncsv)++] = a;
	csv[(*ncsv)++] = b;
	free(S); free(T); free(best_t); free(best_s); free(max_t); free(max_s);
}

/* ---- sequential: several evaluators, one score ---- */

/* Splits SPEC ("KIND [OPTIONS] [< FILE]") at blanks into argv[1..] (no shell: nothing is expanded); *input is
 * the file after "<", or NULL. Returns argc. */
static int split_spec(char *spec, char **argv, int max, const char **input)
{
	int argc = 1;
	*input = NULL;
	for (char *save = NULL, *t = strtok_r(spec, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save)) {
		if (*t == '<') {
			*input = t[1] ? t + 1 : strtok_r(NULL, " \t\n", &save);
			if (!*input)
				die(EX_USAGE, "sequential: '<' without a file in --eval");
			continue;
		}
		if (argc + 1 >= max)
			die(EX_USAGE, "sequential: too many words in one --eval");
		argv[argc++] = t;
	}
	argv[argc] = NULL;
	return argc;
}

/* Runs one evaluator as `st-eval SPEC` and returns its printed JSON line (malloc'd). */
static char *run_one(const struct eval_opts *o, const char *spec, int idx)
{
	char *copy = xstrdup(spec), *argv[256];
	const char *input;
	if (split_spec(copy, argv, 256, &input) < 2)
		die(EX_USAGE, "sequential: --eval '%s' names no evaluator", spec);
	if (!strcmp(argv[1], "sequential"))
		die(EX_USAGE, "sequential: an evaluator cannot be sequential itself");
	int argc = 2;
	while (argv[argc])
		argc++;
	int has_dir = 0;
	for (int k = 2; k < argc; k++)
		has_dir |= !strcmp(argv[k], "--output-dir");
	if (o->output_dir && !has_dir && argc + 2 < 256) {   /* every evaluator writes its CSV there, as output_path */
		argv[argc++] = (char *)"--output-dir";
		argv[argc++] = (char *)o->output_dir;
		argv[argc] = NULL;
	}
	argv[0] = (char *)"st-eval";
	int fd_in = -1;
	if (input && (fd_in = open(input, O_RDONLY)) < 0)
		die(EX_NOINPUT, "sequential: cannot open %s: %s", input, strerror(errno));
	int p[2];
	if (pipe(p) < 0)
		die(EX_OSERR, "sequential: pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die(EX_OSERR, "sequential: fork: %s", strerror(errno));
	if (pid == 0) {
		if (fd_in >= 0)
			dup2(fd_in, 0);
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		if (o->self)
			execv(o->self, argv);
		else   /* called in-process by another tool: st-eval from PATH */
			execvp("st-eval", argv);
		fprintf(stderr, "st-eval: sequential: cannot run %s: %s\n", o->self ? o->self : "st-eval", strerror(errno));
		_exit(EX_OSERR);
	}
	close(p[1]);
	if (fd_in >= 0)
		close(fd_in);
	FILE *f = fdopen(p[0], "r");
	char *line = NULL, *last = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		free(last);
		last = xstrdup(line);
	}
	free(line);
	fclose(f);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : EX_SOFTWARE;
	if (rc)
		die(rc, "sequential: evaluator %d ('%s') failed", idx + 1, spec);
	if (!last)
		die(EX_SOFTWARE, "sequential: evaluator %d ('%s') printed nothing", idx + 1, spec);
	free(copy);
	return last;
}

static void eval_sequential(const struct eval_opts *o, struct eval_result *M)
{
	if (!o->nevals)
		die(EX_USAGE, "sequential needs evaluators: --eval 'KIND [OPTIONS] < FILE', one per evaluator");
	if (o->model)   /* every evaluator scores the same model */
		setenv("ST_MODEL", o->model, 1);
	char num[32];
	if (o->epoch != -1) {
		snprintf(num, sizeof num, "%ld", o->epoch);
		setenv("ST_EPOCH", num, 1);
	}
	if (o->steps != -1) {
		snprintf(num, sizeof num, "%ld", o->steps);
		setenv("ST_STEP", num, 1);
	}
	memset(M, 0, sizeof *M);
	double scores[EVAL_MAXSEQ] = { 0 };
	for (int e = 0; e < o->nevals; e++) {
		char *text = run_one(o, o->evals[e], e);
		json_error_t jerr;
		json_t *j = json_loads(text, 0, &jerr);
		if (!json_is_object(j) || !json_object_size(j))
			die(EX_SOFTWARE, "sequential: evaluator %d printed no JSON object of metrics", e + 1);
		const char *key;
		json_t *v;
		scores[e] = NAN;
		json_object_foreach(j, key, v) {   /* insertion order: the primary metric comes last */
			double x = json_is_number(v) ? json_number_value(v) : NAN;
			size_t k = 0;
			while (k < M->n && strcmp(M->names[k], key))
				k++;
			if (k < M->n)   /* a later evaluator's metric of the same name wins, as dict.update */
				M->vals[k] = x;
			else
				putv(M, x, NULL, "%s", key);
			scores[e] = x;
		}
		json_decref(j);
		free(text);
	}
	double main = scores[o->nevals - 1];
	if (o->main_mean) {
		main = 0;
		for (int e = 0; e < o->nevals; e++)
			main += scores[e];
		main /= o->nevals;
	}
	putv(M, main, NULL, "sequential_score");
}

/* ---- CSV ---- */

static void csv_header(const struct eval_opts *o, char *buf, size_t len)
{
	size_t n = snprintf(buf, len, "epoch,steps");
#define ADD(...) do { if (n < len) n += snprintf(buf + n, len - n, __VA_ARGS__); } while (0)
	for (int f = 0; f < o->nsims; f++) {
		const char *fn = metrics_sim_name(o->sims[f]);
		switch (o->kind) {
		case EVAL_SIMILARITY:
			ADD(",%s_pearson,%s_spearman", fn, fn);
			break;
		case EVAL_TRIPLET:
			ADD(",accuracy_%s", fn);
			break;
		case EVAL_BINARY: {
			static const char *const m[8] = { "accuracy", "accuracy_threshold", "f1", "precision", "recall",
							  "f1_threshold", "ap", "mcc" };
			for (int k = 0; k < 8; k++)
				ADD(",%s_%s", fn, m[k]);
			break;
		}
		case EVAL_IR:
			for (int i = 0; i < o->nacc; i++)
				ADD(",%s-Accuracy@%d", fn, o->acc[i]);
			for (int i = 0; i < o->npr; i++)
				ADD(",%s-Precision@%d,%s-Recall@%d", fn, o->pr[i], fn, o->pr[i]);
			for (int i = 0; i < o->nmrr; i++)
				ADD(",%s-MRR@%d", fn, o->mrr[i]);
			for (int i = 0; i < o->nndcg; i++)
				ADD(",%s-NDCG@%d", fn, o->ndcg[i]);
			for (int i = 0; i < o->nmap; i++)
				ADD(",%s-MAP@%d", fn, o->map[i]);
			break;
		case EVAL_MINING:
			if (f == 0)
				ADD(",precision,recall,f1,threshold,average_precision");
			break;
		case EVAL_LABEL_ACCURACY:
			ADD(",accuracy");
			break;
		case EVAL_MSE:
			ADD(",MSE");
			break;
		case EVAL_RERANKING:
			ADD(",MAP,MRR@%d,NDCG@%d", o->at_k, o->at_k);
			break;
		case EVAL_TRANSLATION:
			ADD(",src2trg,trg2src");
			break;
		case EVAL_SEQUENTIAL:
			break;
		}
		if (o->kind >= EVAL_LABEL_ACCURACY)
			break;   /* one set of columns, not one per similarity function */
	}
#undef ADD
}

static void write_csv(const struct eval_opts *o, const double *vals, int n)
{
	static const char *const base[] = { "similarity_evaluation", "triplet_evaluation",
					    "binary_classification_evaluation", "Information-Retrieval_evaluation",
					    "paraphrase_mining_evaluation", "accuracy_evaluation", "mse_evaluation",
					    "RerankingEvaluator", "translation_evaluation", "" };
	if (mkdir(o->output_dir, 0777) < 0 && errno != EEXIST)
		die(EX_IOERR, "cannot create %s: %s", o->output_dir, strerror(errno));
	char path[4096];
	char suffix[32] = "";
	if (o->kind == EVAL_RERANKING)
		snprintf(suffix, sizeof suffix, "_@%d", o->at_k);
	/* mse_evaluation_ takes its underscore even without a name, as the library's file name does */
	snprintf(path, sizeof path, "%s/%s%s%s_results%s.csv", o->output_dir, base[o->kind],
		 *o->name || o->kind == EVAL_MSE ? "_" : "", o->name, suffix);
	/* the library appends a row; here the file is rewritten whole under a temporary name and renamed, so a
	 * failed write never leaves half a row */
	size_t old_len = 0;
	char *old = st_read_file(path, &old_len);
	if (!old && errno != ENOENT)
		die(EX_IOERR, "cannot read %s: %s", path, strerror(errno));
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (old)
		fwrite(old, 1, old_len, f);
	else {
		char hdr[8192];
		csv_header(o, hdr, sizeof hdr);
		fprintf(f, "%s\n", hdr);
	}
	fprintf(f, "%ld,%ld", o->epoch, o->steps);
	for (int k = 0; k < n; k++) {
		char b[64];
		fmt_double(b, sizeof b, vals[k]);
		fprintf(f, ",%s", b);
	}
	fputc('\n', f);
	fclose(f);
	if (st_write_file_atomic(path, text, len) < 0)
		die(EX_IOERR, "cannot write %s: %s", path, strerror(errno));
	free(text);
	free(old);
}

/* ---- options and results ---- */

void eval_opts_init(struct eval_opts *o)
{
	memset(o, 0, sizeof *o);
	o->name = "";
	o->batch_size = 32;
	o->top_k = 100;
	o->max_pairs = 500000;
	o->corpus_chunk = 100000;
	o->epoch = -1;
	o->steps = -1;
	o->at_k = 10;
	o->mrr[o->nmrr++] = 10;
	o->ndcg[o->nndcg++] = 10;
	o->map[o->nmap++] = 100;
	static const int k4[] = { 1, 3, 5, 10 };
	for (int i = 0; i < 4; i++)
		o->acc[o->nacc++] = o->pr[o->npr++] = k4[i];
}

int eval_kind_parse(const char *name)
{
	static const char *const kinds[] = { "similarity", "triplet", "binary", "ir", "paraphrase-mining",
					     "label-accuracy", "mse", "reranking", "translation", "sequential" };
	for (int k = 0; k < 10; k++)
		if (!strcmp(name, kinds[k]))
			return k;
	return -1;
}

int eval_sims_parse(struct eval_opts *o, const char *list)
{
	o->nsims = 0;
	if (!strcmp(list, "all")) {
		static const int order[4] = { METRICS_COSINE, METRICS_EUCLIDEAN, METRICS_MANHATTAN, METRICS_DOT };
		for (int k = 0; k < 4; k++)
			o->sims[o->nsims++] = order[k];
		return 0;
	}
	char *copy = xstrdup(list), *save = NULL;
	int bad = 0;
	for (char *t = strtok_r(copy, ",", &save); t && !bad; t = strtok_r(NULL, ",", &save)) {
		int s = metrics_sim_parse(t);
		if (s < 0)
			bad = 1;
		else if (o->nsims < METRICS_NSIM)
			o->sims[o->nsims++] = s;
	}
	free(copy);
	return bad || !o->nsims ? -1 : 0;
}

int eval_parse_klist(const char *opt, const char *s, int *out)
{
	int n = 0;
	char *copy = xstrdup(s), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (n == EVAL_MAXK)
			die(EX_USAGE, "%s: at most %d values", opt, EVAL_MAXK);
		long k = st_parse_long(opt, t);
		if (k < 1 || k > 1000000)
			die(EX_USAGE, "%s: %ld is not a rank", opt, k);
		out[n++] = (int)k;
	}
	free(copy);
	if (!n)
		die(EX_USAGE, "%s needs at least one value", opt);
	return n;
}

static const char *primary_metric(const struct eval_opts *o, const struct eval_result *M)
{
	(void)M;
	static char key[64];
	const char *fn = o->nsims > 1 ? "max" : metrics_sim_name(o->sims[0]);
	switch (o->kind) {
	case EVAL_SIMILARITY:
		snprintf(key, sizeof key, "spearman_%s", fn);
		break;
	case EVAL_TRIPLET:
		snprintf(key, sizeof key, "%s_accuracy", fn);
		break;
	case EVAL_BINARY:
		snprintf(key, sizeof key, "%s_ap", fn);
		break;
	case EVAL_IR:
		snprintf(key, sizeof key, "%s_ndcg@%d", fn, max_of(o->ndcg, o->nndcg, 0));
		break;
	case EVAL_MINING:
		snprintf(key, sizeof key, "average_precision");
		break;
	case EVAL_LABEL_ACCURACY:
		snprintf(key, sizeof key, "accuracy");
		break;
	case EVAL_MSE:
		snprintf(key, sizeof key, "negative_mse");
		break;
	case EVAL_RERANKING:
		snprintf(key, sizeof key, "ndcg@%d", o->at_k);
		break;
	case EVAL_TRANSLATION:
		snprintf(key, sizeof key, "mean_accuracy");
		break;
	case EVAL_SEQUENTIAL:
		snprintf(key, sizeof key, "sequential_score");
		break;
	}
	return key;
}

void eval_run(struct eval_opts *o, st_reader *in, const char *source, struct eval_result *M)
{
	if (o->kind == EVAL_SEQUENTIAL) {
		eval_sequential(o, M);
		return;
	}
	if (!o->nsims)   /* RerankingEvaluator's similarity_fct is cos_sim whatever the model says */
		o->sims[o->nsims++] = o->model && !o->embeddings && o->kind != EVAL_RERANKING ? model_similarity(o->model)
											       : METRICS_COSINE;
	struct data D = { 0 };
	read_examples(&D, o, in, source);
	if (o->corpus)
		read_corpus(&D, o);
	if (!o->embeddings)
		encode_items(&D, o);
	memset(M, 0, sizeof *M);
	double csv[1024];
	int ncsv = 0;
	switch (o->kind) {
	case EVAL_SIMILARITY: eval_similarity(&D, o, M, csv, &ncsv); break;
	case EVAL_TRIPLET: eval_triplet(&D, o, M, csv, &ncsv); break;
	case EVAL_BINARY: eval_binary(&D, o, M, csv, &ncsv); break;
	case EVAL_IR: eval_ir(&D, o, M, csv, &ncsv); break;
	case EVAL_MINING: eval_mining(&D, o, M, csv, &ncsv); break;
	case EVAL_LABEL_ACCURACY: eval_label_accuracy(&D, o, M, csv, &ncsv); break;
	case EVAL_MSE: eval_mse(&D, o, M, csv, &ncsv); break;
	case EVAL_RERANKING: eval_reranking(&D, o, M, csv, &ncsv); break;
	case EVAL_TRANSLATION: eval_translation(&D, o, M, csv, &ncsv); break;
	case EVAL_SEQUENTIAL: break;
	}
	if (o->output_dir)
		write_csv(o, csv, ncsv);
	data_free(&D);
}

char *eval_result_json(const struct eval_opts *o, const struct eval_result *M)
{
	/* the primary metric last: st-step reads the last number as the score */
	char primary[512];
	if (*o->name && o->kind != EVAL_SEQUENTIAL)
		snprintf(primary, sizeof primary, "%s_%s", o->name, primary_metric(o, M));
	else
		snprintf(primary, sizeof primary, "%s", primary_metric(o, M));
	size_t pk = M->n;
	for (size_t k = 0; k < M->n; k++)
		if (!strcmp(M->names[k], primary))
			pk = k;
	/* numbers as Python prints them (shortest round trip); NaN (undefined) as null */
	size_t cap = 256, len = 0;
	char *text = xmalloc(cap);
	text[len++] = '{';
	for (size_t k = 0; k <= M->n; k++) {
		size_t i = k < M->n ? k : pk;
		if (i == M->n || (k < M->n && k == pk))
			continue;
		json_t *key = json_string(M->names[i]);
		char *ks = json_dumps(key, JSON_ENCODE_ANY);
		char num[64];
		if (isfinite(M->vals[i]))
			fmt_double(num, sizeof num, M->vals[i]);
		else
			snprintf(num, sizeof num, "null");
		size_t need = strlen(ks) + strlen(num) + 8;
		if (len + need >= cap) {
			cap = 2 * cap + need;
			text = xrealloc(text, cap);
		}
		len += snprintf(text + len, cap - len, "%s%s: %s", len > 1 ? ", " : "", ks, num);
		free(ks);
		json_decref(key);
	}
	text[len++] = '}';
	text[len] = '\0';
	return text;
}

double eval_result_primary(const struct eval_opts *o, const struct eval_result *M)
{
	char primary[512];
	if (*o->name && o->kind != EVAL_SEQUENTIAL)
		snprintf(primary, sizeof primary, "%s_%s", o->name, primary_metric(o, M));
	else
		snprintf(primary, sizeof primary, "%s", primary_metric(o, M));
	for (size_t k = 0; k < M->n; k++)
		if (!strcmp(M->names[k], primary))
			return M->vals[k];
	return NAN;
}

void eval_result_free(struct eval_result *M)
{
	for (size_t k = 0; k < M->n; k++)
		free(M->names[k]);
	free(M->names);
	free(M->vals);
	memset(M, 0, sizeof *M);
}
