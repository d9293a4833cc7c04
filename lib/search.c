/* search.c: chunked sgemm scoring with per-query heaps (semantic search), paraphrase mining, and encoding
 * texts with a model (search.h). */
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "gemm.h"
#include "metrics.h"
#include "stream.h"
#include "model.h"
#include "search.h"
#include "st.h"
#include "tokenizer.h"

/* Block sizes of the score matrix: QB x CB floats (4 MiB) per sgemm. */
enum { SEARCH_QB = 256, SEARCH_CB = 4096 };

void search_normalize(float *x, size_t n, int d)
{
	for (size_t i = 0; i < n; i++) {
		float *r = x + i * d;
		double s = 0;
		for (int k = 0; k < d; k++)
			s += (double)r[k] * r[k];
		float inv = (float)(1 / fmax(sqrt(s), 1e-12));
		for (int k = 0; k < d; k++)
			r[k] *= inv;
	}
}

/* ---- a min-heap of hits on (score, then larger id is worse): the root is the hit to drop first ---- */

static int hit_worse(search_hit a, search_hit b)
{
	return a.score < b.score || (a.score == b.score && a.id > b.id);
}

static void hit_sift_down(search_hit *h, int n, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && hit_worse(h[l], h[m]))
			m = l;
		if (r < n && hit_worse(h[r], h[m]))
			m = r;
		if (m == i)
			return;
		search_hit t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void hit_push(search_hit *h, int *n, int cap, search_hit x)
{
	if (*n < cap) {
		int i = (*n)++;
		h[i] = x;
		while (i > 0 && hit_worse(h[i], h[(i - 1) / 2])) {
			search_hit t = h[i];
			h[i] = h[(i - 1) / 2];
			h[(i - 1) / 2] = t;
			i = (i - 1) / 2;
		}
	} else if (hit_worse(h[0], x)) {
		h[0] = x;
		hit_sift_down(h, *n, 0);
	}
}

/* Heap to best-first order, in place. */
static void hit_sort(search_hit *h, int n)
{
	for (int end = n - 1; end > 0; end--) {
		search_hit t = h[0];
		h[0] = h[end];
		h[end] = t;
		hit_sift_down(h, end, 0);
	}
	/* the root, the worst of those left, went to the end each time: the array is now best first */
}

/* A block of rows, normalised when the similarity is cosine. */
static const float *block_rows(const float *x, size_t rows, int d, int sim, float *scratch)
{
	if (sim != METRICS_COSINE)
		return x;
	memcpy(scratch, x, sizeof(float) * rows * d);
	search_normalize(scratch, rows, d);
	return scratch;
}

/* Keeps, for rows q0..q0+nq of queries, the best k hits among corpus rows c0..c0+nc (heaps [nq][k]). */
static void score_blocks(const float *queries, size_t q0, size_t nq, const float *corpus, size_t c0, size_t nc,
			 int d, int sim, int k, search_hit *heaps, int *heap_n)
{
	float *qs = sim == METRICS_COSINE ? xmalloc(xmul((size_t)SEARCH_QB * d, sizeof(float))) : NULL;
	float *cs = sim == METRICS_COSINE ? xmalloc(xmul((size_t)SEARCH_CB * d, sizeof(float))) : NULL;
	float *S = xmalloc(sizeof(float) * SEARCH_QB * SEARCH_CB);
	for (size_t qb = 0; qb < nq; qb += SEARCH_QB) {
		size_t qn = nq - qb < SEARCH_QB ? nq - qb : SEARCH_QB;
		const float *Q = block_rows(queries + (q0 + qb) * d, qn, d, sim, qs);
		for (size_t cb = 0; cb < nc; cb += SEARCH_CB) {
			size_t cn = nc - cb < SEARCH_CB ? nc - cb : SEARCH_CB;
			const float *C = block_rows(corpus + (c0 + cb) * d, cn, d, sim, cs);
			/* S [qn][cn] = Q [qn][d] . C [cn][d]^T */
			st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)qn, (int)cn, d, 1.0f, Q, d, C, d, 0.0f,
				    S, (int)cn);
#pragma omp parallel for schedule(static)
			for (size_t i = 0; i < qn; i++) {
				search_hit *h = heaps + (qb + i) * k;
				int *hn = &heap_n[qb + i];
				const float *row = S + i * cn;
				for (size_t j = 0; j < cn; j++) {
					if (*hn == k && !(row[j] >= h[0].score))
						continue;
					search_hit x = { row[j], (int32_t)(c0 + cb + j) };
					hit_push(h, hn, k, x);
				}
			}
		}
	}
	free(S);
	free(qs);
	free(cs);
}

void search_topk(const float *queries, size_t nq, const float *corpus, size_t nc, int d, int sim, int top_k,
                 search_hit *hits, int *nhits)
{
	int k = (size_t)top_k < nc ? top_k : (int)nc;
	for (size_t q = 0; q < nq; q++)
		nhits[q] = 0;
	if (k <= 0)
		return;
	/* heaps of width k laid out in hits [nq][top_k] */
	search_hit *heaps = k == top_k ? hits : xmalloc(xmul(xmul(nq, k), sizeof *heaps));
	score_blocks(queries, 0, nq, corpus, 0, nc, d, sim, k, heaps, nhits);
	for (size_t q = 0; q < nq; q++) {
		hit_sort(heaps + q * k, nhits[q]);
		if (heaps != hits)
			memmove(hits + q * top_k, heaps + q * k, sizeof *hits * nhits[q]);
	}
	if (heaps != hits)
		free(heaps);
}

/* ---- paraphrase mining ---- */

/* Python's tuple order on (score, i, j) */
static int pair_less(search_pair a, search_pair b)
{
	if (a.score != b.score)
		return a.score < b.score;
	if (a.i != b.i)
		return a.i < b.i;
	return a.j < b.j;
}

typedef struct { search_pair *h; size_t n, cap; } pair_heap;

static void pair_push(pair_heap *q, search_pair x)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? 2 * q->cap : 1024;
		q->h = xrealloc(q->h, xmul(q->cap, sizeof *q->h));
	}
	size_t i = q->n++;
	q->h[i] = x;
	while (i > 0 && pair_less(q->h[i], q->h[(i - 1) / 2])) {
		search_pair t = q->h[i];
		q->h[i] = q->h[(i - 1) / 2];
		q->h[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
}

static search_pair pair_pop(pair_heap *q)
{
	search_pair top = q->h[0];
	q->h[0] = q->h[--q->n];
	for (size_t i = 0;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < q->n && pair_less(q->h[l], q->h[m]))
			m = l;
		if (r < q->n && pair_less(q->h[r], q->h[m]))
			m = r;
		if (m == i)
			break;
		search_pair t = q->h[i];
		q->h[i] = q->h[m];
		q->h[m] = t;
		i = m;
	}
	return top;
}

static int cmp_pair_asc(const void *pa, const void *pb)
{
	search_pair a = *(const search_pair *)pa, b = *(const search_pair *)pb;
	return pair_less(a, b) ? -1 : pair_less(b, a) ? 1 : 0;
}

/* For de-duplication: by unordered pair, then by position in the ascending list. */
typedef struct { int32_t a, b; size_t pos; } pair_key;

static int cmp_key(const void *pa, const void *pb)
{
	const pair_key *a = pa, *b = pb;
	if (a->a != b->a)
		return a->a < b->a ? -1 : 1;
	if (a->b != b->b)
		return a->b < b->b ? -1 : 1;
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* Best first; equal scores keep their order in the ascending list (Python's stable sorted(reverse=True)). */
typedef struct { search_pair p; size_t pos; } ranked_pair;

static int cmp_ranked(const void *pa, const void *pb)
{
	const ranked_pair *a = pa, *b = pb;
	if (a->p.score != b->p.score)
		return a->p.score > b->p.score ? -1 : 1;
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

size_t search_mine(const float *emb, size_t n, int d, int sim, int top_k, size_t max_pairs, size_t corpus_chunk,
                   search_pair **pairs)
{
	*pairs = NULL;
	if (n == 0 || top_k < 0)
		return 0;
	if (corpus_chunk == 0)
		corpus_chunk = n;
	pair_heap q = { 0 };
	double min_score = -1;   /* the library's initial admission threshold */
	size_t added = 0;
	/* rows are scored SEARCH_QB at a time against a whole corpus chunk, which gives every row its top_k + 1
	 * of the chunk as torch.topk does; rows are then visited in order as the library visits them */
	for (size_t c0 = 0; c0 < n; c0 += corpus_chunk) {
		size_t cn = n - c0 < corpus_chunk ? n - c0 : corpus_chunk;
		int k = (size_t)(top_k + 1) < cn ? top_k + 1 : (int)cn;
		search_hit *heaps = xmalloc(xmul(xmul(SEARCH_QB, k), sizeof *heaps));
		int heap_n[SEARCH_QB];
		for (size_t q0 = 0; q0 < n; q0 += SEARCH_QB) {
			size_t qn = n - q0 < SEARCH_QB ? n - q0 : SEARCH_QB;
			memset(heap_n, 0, sizeof heap_n);
			score_blocks(emb, q0, qn, emb, c0, cn, d, sim, k, heaps, heap_n);
			for (size_t r = 0; r < qn; r++) {
				search_hit *h = heaps + r * k;
				hit_sort(h, heap_n[r]);
				for (int t = 0; t < heap_n[r]; t++) {
					int32_t i = (int32_t)(q0 + r), j = h[t].id;
					if (i == j || !(h[t].score > min_score))
						continue;
					search_pair p = { h[t].score, i, j };
					pair_push(&q, p);
					if (++added >= max_pairs)
						min_score = pair_pop(&q).score;
				}
			}
		}
		free(heaps);
	}
	/* the queue in the order it would be popped, then de-duplicated keeping the first of each pair */
	size_t m = q.n;
	if (m)   /* q.h is NULL when no pair was admitted, and qsort's pointer must be valid even for 0 */
		qsort(q.h, m, sizeof *q.h, cmp_pair_asc);
	pair_key *keys = xmalloc(xmul(m ? m : 1, sizeof *keys));
	for (size_t p = 0; p < m; p++) {
		keys[p].a = q.h[p].i < q.h[p].j ? q.h[p].i : q.h[p].j;
		keys[p].b = q.h[p].i < q.h[p].j ? q.h[p].j : q.h[p].i;
		keys[p].pos = p;
	}
	qsort(keys, m, sizeof *keys, cmp_key);
	char *keep = xcalloc(m ? m : 1, 1);
	for (size_t p = 0; p < m; p++)
		if (p == 0 || keys[p].a != keys[p - 1].a || keys[p].b != keys[p - 1].b)
			keep[keys[p].pos] = 1;
	free(keys);
	ranked_pair *ranked = xmalloc(xmul(m ? m : 1, sizeof *ranked));
	size_t out = 0;
	for (size_t p = 0; p < m; p++)
		if (keep[p]) {
			search_pair s = q.h[p];
			if (s.i > s.j) {
				int32_t t = s.i;
				s.i = s.j;
				s.j = t;
			}
			ranked[out].p = s;
			ranked[out].pos = p;
			out++;
		}
	free(keep);
	free(q.h);
	qsort(ranked, out, sizeof *ranked, cmp_ranked);
	search_pair *res = xmalloc(xmul(out ? out : 1, sizeof *res));
	for (size_t p = 0; p < out; p++)
		res[p] = ranked[p].p;
	free(ranked);
	*pairs = res;
	return out;
}

/* ---- encoding ---- */

typedef struct { size_t len, idx; } by_len;

static int cmp_len_desc(const void *pa, const void *pb)
{
	const by_len *a = pa, *b = pb;
	if (a->len != b->len)
		return a->len > b->len ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* --prompt-name / --prompt of the tool, applied by search_open_model */
static const char *opt_prompt_name, *opt_prompt_text;

void search_prompt_option(const char *name, const char *text)
{
	if (name)
		opt_prompt_name = name;
	if (text)
		opt_prompt_text = text;
}

int search_prompt_setup(struct st_model *m, struct tokenizer *tok, const char *name, const char *text, char *err,
			size_t errlen)
{
	const char *prompt;
	if (model_resolve_prompt(m, name, text, &prompt, err, errlen) < 0)
		return -1;
	int prompt_length = 0;
	if (prompt && *prompt) {
		prompt_length = tokenizer_prompt_length(tok, prompt, strlen(prompt), -1);
	}
	model_set_prompt(m, prompt, prompt_length);
	return 0;
}

void search_open_model(const char *dir, struct st_model **m, struct tokenizer **tok)
{
	char err[1024];
	*m = model_open(dir);
	model_freeze(*m);   /* these tools only encode: the weights stay as they are */
	if (tok && !(*tok = tokenizer_load(model_dir(*m), err, sizeof err)))
		die(EX_DATAERR, "%s", err);   /* the model directory exists: its tokenizer is broken */
	if (tok && search_prompt_setup(*m, *tok, opt_prompt_name, opt_prompt_text, err, sizeof err) < 0)
		die(EX_DATAERR, "%s", err);
}

/* The text search_encode tokenizes: the model's prompt (model_set_prompt) + text; *buf is reused. */
static const char *with_prompt(struct st_model *m, const char *text, size_t len, size_t *outlen, char **buf,
			       size_t *bufcap)
{
	const char *p = model_prompt(m);
	if (!p) {
		*outlen = len;
		return text;
	}
	size_t pl = strlen(p);
	if (*bufcap < pl + len + 1) {
		*bufcap = 2 * (pl + len + 1);
		*buf = xrealloc(*buf, *bufcap);
	}
	memcpy(*buf, p, pl);
	memcpy(*buf + pl, text, len);
	(*buf)[pl + len] = 0;
	*outlen = pl + len;
	return *buf;
}

int search_encode_tokens(struct st_model *m, struct tokenizer *tok, const char *text, size_t len, int max_len,
			 float **states, int *ntok)
{
	if (max_len <= 0)
		max_len = model_max_seq_length(m);
	char *buf = NULL;
	size_t cap = 0, plen;
	const char *t = with_prompt(m, text, len, &plen, &buf, &cap);
	int room = 256, got;
	int32_t *ids = NULL;
	for (;;) {
		ids = xrealloc(ids, xmul(room, sizeof *ids));
		got = tokenizer_encode(tok, t, plen, max_len, ids, room);
		if (got < 0 || got <= room)
			break;
		room = got;
	}
	free(buf);
	if (got < 0) {
		free(ids);
		return -1;
	}
	int vocab = model_encoder_config(m)->vocab_size, hidden = model_encoder_config(m)->hidden;
	for (int k = 0; k < got; k++)
		if (ids[k] < 0 || ids[k] >= vocab) {
			free(ids);
			return -1;
		}
	int T = got > 0 ? got : 1;
	int32_t length = got;
	*states = xmalloc(xmul(xmul(T, hidden), sizeof(float)));
	model_token_states(m, ids, &length, 1, T, *states);
	*ntok = got;
	free(ids);
	return 0;
}

/* texts encoded by earlier calls: the progress line counts from the tool's first text */
static size_t progress_base;

int search_encode(struct st_model *m, struct tokenizer *tok, const char *const *texts, const size_t *lens,
                  size_t n, int batch_size, int max_len, float *out, char *err, size_t errlen)
{
	int dim = model_dim(m), vocab = model_encoder_config(m)->vocab_size;
	if (max_len <= 0)
		max_len = model_max_seq_length(m);
	if (batch_size <= 0)
		batch_size = 32;
	/* token ids of every text, in one buffer */
	size_t *off = xmalloc(xmul(n + 1, sizeof *off)), cap = 1024, used = 0;
	int32_t *ids = xmalloc(xmul(cap, sizeof *ids));
	char *pbuf = NULL;   /* prompt + text, when the model has a prompt */
	size_t pcap = 0;
	for (size_t i = 0; i < n; i++) {
		int got;
		size_t tlen;
		const char *text = with_prompt(m, texts[i], lens[i], &tlen, &pbuf, &pcap);
		for (;;) {
			int room = cap - used > (size_t)1 << 30 ? 1 << 30 : (int)(cap - used);
			got = tokenizer_encode(tok, text, tlen, max_len, ids + used, room);
			if (got < 0) {
				snprintf(err, errlen, "cannot tokenize text %zu", i + 1);
				goto fail;
			}
			if (got <= room)
				break;
			cap = 2 * cap + got;
			ids = xrealloc(ids, xmul(cap, sizeof *ids));
		}
		/* ids the embedding table does not have would read outside it */
		for (int k = 0; k < got; k++)
			if (ids[used + k] < 0 || ids[used + k] >= vocab) {
				snprintf(err, errlen, "text %zu: token id %d outside the model's vocabulary 0..%d (the tokenizer "
					 "and config.json disagree)", i + 1, ids[used + k], vocab - 1);
				goto fail;
			}
		off[i] = used;
		used += got;
	}
	off[n] = used;
	free(pbuf);
	pbuf = NULL;
	/* longest first: batches of similar lengths */
	by_len *order = xmalloc(xmul(n ? n : 1, sizeof *order));
	for (size_t i = 0; i < n; i++) {
		order[i].len = off[i + 1] - off[i];
		order[i].idx = i;
	}
	qsort(order, n, sizeof *order, cmp_len_desc);
	int T0 = n ? (int)order[0].len : 1;
	if (T0 < 1)
		T0 = 1;
	int32_t *batch = xmalloc(xmul(xmul(batch_size, T0), sizeof *batch));
	int32_t *lengths = xmalloc(xmul(batch_size, sizeof *lengths));
	float *emb = xmalloc(xmul(xmul(batch_size, dim), sizeof *emb));
	for (size_t b0 = 0; b0 < n; b0 += batch_size) {
		int B = n - b0 < (size_t)batch_size ? (int)(n - b0) : batch_size;
		int T = (int)order[b0].len > 0 ? (int)order[b0].len : 1;
		memset(batch, 0, sizeof *batch * (size_t)B * T);
		for (int r = 0; r < B; r++) {
			size_t i = order[b0 + r].idx;
			lengths[r] = (int32_t)order[b0 + r].len;
			memcpy(batch + (size_t)r * T, ids + off[i], sizeof *ids * lengths[r]);
		}
		model_embed(m, batch, lengths, B, T, emb, NULL);
		st_progress("encoding texts", (double)(progress_base + b0 + B), (double)(progress_base + n));
		for (int r = 0; r < B; r++) {
			/* a NaN would print as invalid JSON and rank as nothing: the model is broken, say so */
			for (int k = 0; k < dim; k++)
				if (!isfinite(emb[(size_t)r * dim + k])) {
					snprintf(err, errlen, "text %zu: the model gives a non-finite embedding (NaN or Inf in "
						 "its weights?)", order[b0 + r].idx + 1);
					free(batch);
					free(lengths);
					free(emb);
					free(order);
					goto fail;
				}
			memcpy(out + order[b0 + r].idx * dim, emb + (size_t)r * dim, sizeof *emb * dim);
		}
	}
	free(batch);
	free(lengths);
	free(emb);
	free(order);
	free(off);
	free(ids);
	progress_base += n;
	if (isatty(1))
		st_progress_end();   /* what the tool prints next starts on its own line */
	return 0;
fail:
	free(pbuf);
	free(off);
	free(ids);
	return -1;
}

/* ---- embedding cache ---- */

static uint64_t mix64(uint64_t h, uint64_t x)
{
	h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 33);
}

uint64_t search_cache_key(const float *params, size_t nparams, const char *const *texts, const size_t *lens,
                          size_t n)
{
	uint64_t h = mix64(0x5354454d42ULL, nparams);
	const uint32_t *w = (const uint32_t *)params;
	for (size_t i = 0; i + 1 < nparams; i += 2)
		h = mix64(h, (uint64_t)w[i] << 32 | w[i + 1]);
	if (nparams & 1)
		h = mix64(h, w[nparams - 1]);
	h = mix64(h, n);
	for (size_t i = 0; i < n; i++) {
		h = mix64(h, lens[i]);
		uint64_t x = 0;
		for (size_t k = 0; k < lens[i]; k++) {
			x = x << 8 | (uint8_t)texts[i][k];
			if ((k & 7) == 7) {
				h = mix64(h, x);
				x = 0;
			}
		}
		h = mix64(h, x);
	}
	return h;
}

int search_cache_write(const char *path, const float *emb, size_t n, int d, uint64_t key)
{
	size_t len = 32 + xmul(xmul(n, d), sizeof(float));
	char *buf = xmalloc(len);
	memcpy(buf, "STEMB1\0\0", 8);
	uint64_t hdr[3] = { n, (uint64_t)d, key };
	memcpy(buf + 8, hdr, sizeof hdr);   /* the project's files are little-endian; so is every host it runs on */
	memcpy(buf + 32, emb, len - 32);
	int rc = st_write_file_atomic(path, buf, len);
	free(buf);
	return rc;
}

int search_cache_check(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return errno == ENOENT ? 0 : -1;
	unsigned char hdr[32];
	struct stat st;
	int ok = fread(hdr, 1, sizeof hdr, f) == sizeof hdr && !memcmp(hdr, "STEMB1\0\0", 8) && fstat(fileno(f), &st) == 0;
	fclose(f);
	if (!ok)
		return -1;
	uint64_t n, d;
	memcpy(&n, hdr + 8, 8);
	memcpy(&d, hdr + 16, 8);
	/* the size its header implies, computed without overflow */
	return d && n <= (UINT64_MAX - 32) / 4 / d && (uint64_t)st.st_size == 32 + n * d * 4 ? 0 : -1;
}

float *search_cache_read(const char *path, size_t n, int d, uint64_t key)
{
	size_t len;
	char *buf = st_read_file(path, &len);
	if (!buf)
		return NULL;
	uint64_t hdr[3];
	if (len < 32 || memcmp(buf, "STEMB1\0\0", 8)) {
		free(buf);
		return NULL;
	}
	memcpy(hdr, buf + 8, sizeof hdr);
	if (hdr[0] != n || hdr[1] != (uint64_t)d || hdr[2] != key || len != 32 + n * (size_t)d * sizeof(float)) {
		free(buf);
		return NULL;
	}
	float *emb = xmalloc(xmul(xmul(n, d), sizeof(float)) + 1);
	memcpy(emb, buf + 32, len - 32);
	free(buf);
	return emb;
}

/* ---- text sets ---- */

static uint64_t bytes_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

size_t search_texts_find(const search_texts *t, const char *s, size_t len)
{
	if (!t->nslots)
		return (size_t)-1;
	for (size_t k = bytes_hash(s, len) & (t->nslots - 1);; k = (k + 1) & (t->nslots - 1)) {
		size_t v = t->slots[k];
		if (!v)
			return (size_t)-1;
		if (t->len[v - 1] == len && !memcmp(t->s[v - 1], s, len))
			return v - 1;
	}
}

static void texts_put_slot(search_texts *t, size_t idx)
{
	size_t k = bytes_hash(t->s[idx], t->len[idx]) & (t->nslots - 1);
	while (t->slots[k])
		k = (k + 1) & (t->nslots - 1);
	t->slots[k] = idx + 1;
}

size_t search_texts_append(search_texts *t, const char *s, size_t len)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 256;
		t->s = xrealloc(t->s, xmul(t->cap, sizeof *t->s));
		t->len = xrealloc(t->len, xmul(t->cap, sizeof *t->len));
	}
	char *c = xmalloc(len + 1);
	memcpy(c, s, len);
	c[len] = '\0';
	t->s[t->n] = c;
	t->len[t->n] = len;
	return t->n++;
}

size_t search_texts_add(search_texts *t, const char *s, size_t len)
{
	size_t i = search_texts_find(t, s, len);
	if (i != (size_t)-1)
		return i;
	if (2 * (t->n + 1) > t->nslots) {   /* keep the table at most half full */
		free(t->slots);
		t->nslots = t->nslots ? 2 * t->nslots : 512;
		t->slots = xcalloc(t->nslots, sizeof *t->slots);
		for (size_t k = 0; k < t->n; k++)
			texts_put_slot(t, k);
	}
	i = search_texts_append(t, s, len);
	texts_put_slot(t, i);
	return i;
}

void search_texts_free(search_texts *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->s[i]);
	free(t->s);
	free(t->len);
	free(t->slots);
	memset(t, 0, sizeof *t);
}

/* Valid UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF)? */
static int utf8_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		int len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		if (!len || i + len > n)
			return 0;
		unsigned lo = 0x80, hi = 0xbf;
		if (c == 0xe0) lo = 0xa0;
		else if (c == 0xed) hi = 0x9f;
		else if (c == 0xf0) lo = 0x90;
		else if (c == 0xf4) hi = 0x8f;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (int k = 2; k < len; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		i += len;
	}
	return 1;
}

const char *search_line_problem(const char *line, size_t len, long lineno)
{
	const unsigned char *u = (const unsigned char *)line;
	if (lineno == 1 && len >= 4 && u[0] == 0x28 && u[1] == 0xb5 && u[2] == 0x2f && u[3] == 0xfd)
		return "zstd-compressed data, not text (decompress it first: zstd -dc)";
	if (lineno == 1 && len >= 2 && u[0] == 0x1f && u[1] == 0x8b)
		return "gzip-compressed data, not text (decompress it first: gzip -dc)";
	if (memchr(line, 0, len))
		return "a NUL byte: binary data, not text";
	if (!utf8_ok(u, len))
		return "invalid UTF-8 (convert the text to UTF-8 first, e.g. iconv -f latin1 -t utf-8)";
	return NULL;
}

int search_read_lines(FILE *f, const char *name, search_texts *t, int dedup, char *err, size_t errlen)
{
	return search_read_lines_at(f, name, 0, t, dedup, err, errlen);
}

int search_read_lines_at(FILE *f, const char *name, long lines_before, search_texts *t, int dedup, char *err,
			 size_t errlen)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	long lineno = lines_before;
	while ((got = getline(&line, &cap, f)) >= 0) {
		lineno++;
		size_t len = got;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		const char *bad = search_line_problem(line, len, lineno);
		if (bad) {
			snprintf(err, errlen, "%s, line %ld: %s", name, lineno, bad);
			free(line);
			return -1;
		}
		if (!len)
			continue;
		const char *s = line;
		st_val *rec = NULL;
		if (line[0] == '{') {
			char msg[256];
			rec = st_from_json(line, len, msg, sizeof msg);
			if (!rec) {
				snprintf(err, errlen, "%s, line %ld: %s", name, lineno, msg);
				free(line);
				return -1;
			}
			const char *txt[1];
			size_t tl[1];
			s = st_get_str(rec, "text");
			if (s)
				len = strlen(s);
			else if (st_example_texts(rec, txt, tl, 1) >= 1) {
				s = txt[0];
				len = tl[0];
			} else {
				snprintf(err, errlen, "%s, line %ld: a JSON line without \"text\"", name, lineno);
				st_free(rec);
				free(line);
				return -1;
			}
		}
		if (dedup)
			search_texts_add(t, s, len);
		else
			search_texts_append(t, s, len);
		st_free(rec);
	}
	free(line);
	if (ferror(f)) {
		snprintf(err, errlen, "cannot read %s: %s", name, strerror(errno));
		return -1;
	}
	return 0;
}

float *search_read_calibration(const char *path, int *d, size_t *n)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die(EX_NOINPUT, "cannot open %s: %s", path, strerror(errno));
	st_reader *r = st_reader_open(fd, path);
	float *rows = NULL;
	int width = *d;
	char err[1024];
	*n = 0;
	if (search_read_rows(r, path, &rows, n, &width, err, sizeof err) < 0)
		die(EX_DATAERR, "%s", err);
	st_reader_close(r);
	close(fd);
	if (!*n)
		die(EX_DATAERR, "%s: no embeddings to calibrate with", path);
	*d = width;
	return rows;
}

int search_read_rows(struct st_reader *in, const char *name, float **emb, size_t *n, int *d, char *err,
                     size_t errlen)
{
	size_t cap = *n;
	st_val *rec;
	while ((rec = st_read(in))) {
		const float *x = NULL;
		float *owned = NULL;
		size_t rows = 0;
		int dim = 0;
		st_tensor *t = st_get_tensor(rec, "embeddings");
		st_val *a = st_get(rec, "embedding");
		if (t && t->dtype == ST_F32 && (t->ndim == 1 || t->ndim == 2)) {
			x = ST_F32P(t);
			rows = t->ndim == 2 ? (size_t)t->shape[0] : 1;
			dim = (int)t->shape[t->ndim - 1];
		} else if (a && a->type == ST_ARRAY && a->arr.n > 0) {
			owned = xmalloc(xmul(a->arr.n, sizeof(float)));
			for (size_t k = 0; k < a->arr.n; k++) {
				double v;
				if (st_num(a->arr.items[k], &v) < 0) {
					snprintf(err, errlen, "%s: \"embedding\" holds a non-number (%s)", name, st_reader_where(in));
					free(owned);
					st_free(rec);
					return -1;
				}
				owned[k] = (float)v;
			}
			x = owned;
			rows = 1;
			dim = (int)a->arr.n;
		} else {
			snprintf(err, errlen, "%s: a record without float32 \"embeddings\" [dim] or [rows][dim], or "
				 "\"embedding\" (%s)", name, st_reader_where(in));
			st_free(rec);
			return -1;
		}
		if (!*d)
			*d = dim;
		if (dim != *d || dim <= 0) {
			snprintf(err, errlen, "%s: an embedding of %d dimensions after %d (%s)", name, dim, *d,
				 st_reader_where(in));
			free(owned);
			st_free(rec);
			return -1;
		}
		if (*n + rows > cap) {
			cap = 2 * (*n + rows) + 1024;
			*emb = xrealloc(*emb, xmul(xmul(cap, dim), sizeof(float)));
		}
		memcpy(*emb + *n * dim, x, sizeof(float) * rows * dim);
		*n += rows;
		free(owned);
		st_free(rec);
	}
	return 0;
}

void search_write_json_string(FILE *out, const char *s, size_t len)
{
	fputc('"', out);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fputc('\\', out), fputc(c, out);
		else if (c == '\n')
			fputs("\\n", out);
		else if (c == '\t')
			fputs("\\t", out);
		else if (c == '\r')
			fputs("\\r", out);
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

float search_clamp_cosine(float score, int sim)
{
	return sim == METRICS_COSINE && score > 1.0f ? 1.0f : score;
}
