/* st-similarity: how similar are these texts -- model.similarity_pairwise for pairs on stdin, model.similarity
 * (a full matrix) for --queries x --corpus (docs/st-similarity.md). Encodes through search_encode, as
 * st-encode does; the scores come from lib/similarity.c and metrics_pairwise. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "model.h"
#include "search.h"
#include "similarity.h"
#include "st.h"
#include "stream.h"
#include "tokenizer.h"

static const char usage[] =
	"usage: st-similarity --model DIR [options] < pairs > scores\n"
	"       st-similarity --model DIR --queries FILE --corpus FILE [options] > matrix\n"
	"       st-similarity --embeddings --queries FILE --corpus FILE [options] > matrix\n"
	"\n"
	"Pairs: every example on stdin ({\"texts\": [a, b]} or a datasets row with two text columns; msgpack or JSON\n"
	"Lines) gives one line {\"score\": S}, the similarity of its two texts (model.similarity_pairwise).\n"
	"Matrix: every query (a text line, or a JSON line with \"text\") gives one line {\"scores\": [...]}, its\n"
	"similarity to every corpus entry in order (model.similarity).\n"
	"\n"
	"  --model DIR          the model that encodes the texts; its similarity_fn_name chooses the function\n"
	"  --similarity NAME    cosine, dot, euclidean (-L2 distance) or manhattan (-L1 distance);\n"
	"                       default: the model's similarity_fn_name, else cosine\n"
	"  --queries FILE       texts (or with --embeddings, embeddings) of the matrix's rows; - is stdin\n"
	"  --corpus FILE        texts (or embeddings) of the matrix's columns\n"
	"  --embeddings         --queries and --corpus hold embeddings: st-encode's {\"embedding\": [...]} lines,\n"
	"                       or records with float32 \"embeddings\" [dim] or [rows][dim]\n"
	"  --batch-size N       texts per forward pass (default 32)\n"
	"  --window N           pairs, or queries, encoded and written per round (default 1024)\n"
	SEARCH_PROMPT_USAGE
	"  --threads N          threads (default all cores)\n"
	"  --help               this text\n"
	"\n"
	"Exit status: 0 ok, 64 usage (an unknown --similarity), 65 bad data (an example without two texts, a\n"
	"model whose similarity_fn_name is unknown), 66 a missing model or file, 74 an output error.\n";

enum { OPT_MODEL = 256, OPT_SIMILARITY, OPT_QUERIES, OPT_CORPUS, OPT_EMBEDDINGS, OPT_BATCH, OPT_WINDOW, OPT_THREADS };

static void check_write(void)
{
	if (ferror(stdout) || fflush(stdout) != 0) {
		if (errno == EPIPE)
			exit(0);   /* a closed downstream pipe is not an error */
		die(EX_IOERR, "writing the scores: %s", strerror(errno));
	}
}

typedef struct ctx {
	st_model *m;
	tokenizer *tok;
	int batch, sim;
	const char *model_path;
} ctx;

/* encodes texts [n] into out [n][dim] or dies naming where */
static void encode(const ctx *c, search_texts *t, float *out, const char *where)
{
	char err[1024];
	if (t->n && search_encode(c->m, c->tok, (const char *const *)t->s, t->len, t->n, c->batch, 0, out, err,
				  sizeof err) < 0)
		die(EX_DATAERR, "%s: %s", where, err);
}

/* pairs: examples on stdin, a window at a time: texts 2i and 2i+1 are example i's */
static void run_pairs(const ctx *c, long window)
{
	int d = model_dim(c->m);
	st_reader *in = st_reader_open(0, "stdin");
	search_texts t = { 0 };
	float *emb = xmalloc(xmul(xmul(2 * window, d), sizeof(float)));
	float *a = xmalloc(xmul(xmul(window, d), sizeof(float))), *b = xmalloc(xmul(xmul(window, d), sizeof(float)));
	double *score = xmalloc(xmul(window, sizeof(double)));
	for (int eof = 0; !eof;) {
		st_val *rec;
		while ((long)t.n < 2 * window && (rec = st_read(in))) {
			const char *texts[3];
			size_t lens[3];
			int nt = st_example_texts(rec, texts, lens, 3);
			if (nt != 2)
				die(EX_DATAERR, "stdin, %s: %s (an example needs two texts: {\"texts\": [a, b]})",
				    st_reader_where(in), nt < 0 ? "no texts" : nt < 2 ? "only one text" : "more than two texts");
			search_texts_append(&t, texts[0], lens[0]);
			search_texts_append(&t, texts[1], lens[1]);
			st_free(rec);
		}
		if ((long)t.n < 2 * window)
			eof = 1;
		size_t n = t.n / 2;
		encode(c, &t, emb, "stdin");
		for (size_t i = 0; i < n; i++) {
			memcpy(a + i * d, emb + 2 * i * d, d * sizeof(float));
			memcpy(b + i * d, emb + (2 * i + 1) * d, d * sizeof(float));
		}
		metrics_pairwise(c->sim, a, b, n, d, score);
		for (size_t i = 0; i < n; i++)
			printf("{\"score\": %.9g}\n", (float)score[i] + 0.0f);   /* + 0: no -0 */
		check_write();
		search_texts_free(&t);
	}
	st_reader_close(in);
	free(emb), free(a), free(b), free(score);
}

static FILE *open_text(const char *path)
{
	if (!strcmp(path, "-"))
		return stdin;
	FILE *f = fopen(path, "r");
	if (!f)
		die(EX_NOINPUT, "cannot open %s: %s", path, strerror(errno));
	return f;
}

/* all embedding rows of a file (st-encode lines or "embeddings" records) */
static float *read_embeddings(const char *path, size_t *n, int *d)
{
	char err[1024];
	int fd = strcmp(path, "-") ? open(path, O_RDONLY) : 0;
	if (fd < 0)
		die(EX_NOINPUT, "cannot open %s: %s", path, strerror(errno));
	st_reader *r = st_reader_open(fd, path);
	float *x = NULL;
	if (search_read_rows(r, path, &x, n, d, err, sizeof err) < 0)
		die(EX_DATAERR, "%s", err);
	st_reader_close(r);
	if (fd)
		close(fd);
	return x;
}

static void write_rows(const float *s, size_t n, size_t m)
{
	for (size_t i = 0; i < n; i++) {
		fputs("{\"scores\": [", stdout);
		for (size_t j = 0; j < m; j++)
			printf(j ? ", %.9g" : "%.9g", s[i * m + j]);
		fputs("]}\n", stdout);
		check_write();
	}
}

/* matrix: the corpus whole, the queries a window at a time */
static void run_matrix(const ctx *c, const char *qpath, const char *cpath, int embeddings, long window)
{
	char err[1024];
	size_t nc = 0;
	int d = 0;
	float *C;
	if (embeddings)
		C = read_embeddings(cpath, &nc, &d);
	else {
		FILE *f = open_text(cpath);
		search_texts ct = { 0 };
		if (search_read_lines(f, cpath, &ct, 0, err, sizeof err) < 0)
			die(EX_DATAERR, "%s", err);
		if (f != stdin)
			fclose(f);
		nc = ct.n;
		d = model_dim(c->m);
		C = xmalloc(xmul(xmul(nc + 1, d), sizeof(float)));
		encode(c, &ct, C, cpath);
		search_texts_free(&ct);
	}
	if (nc == 0)
		die(EX_DATAERR, "%s: no corpus entries", cpath);
	float *S = xmalloc(xmul(xmul(window, nc), sizeof(float)));
	if (embeddings) {
		size_t nq = 0;
		int dq = d;
		float *Q = read_embeddings(qpath, &nq, &dq);
		for (size_t q0 = 0; q0 < nq; q0 += window) {
			size_t qn = nq - q0 < (size_t)window ? nq - q0 : (size_t)window;
			similarity_matrix(c->sim, Q + q0 * d, qn, C, nc, d, S);
			write_rows(S, qn, nc);
		}
		free(Q);
	} else {
		/* queries are read whole (they are lines of text, small next to their embeddings) and encoded and
		 * written a window at a time */
		FILE *f = open_text(qpath);
		search_texts qt = { 0 };
		if (search_read_lines(f, qpath, &qt, 0, err, sizeof err) < 0)
			die(EX_DATAERR, "%s", err);
		if (f != stdin)
			fclose(f);
		float *Q = xmalloc(xmul(xmul(window, d), sizeof(float)));
		for (size_t q0 = 0; q0 < qt.n; q0 += window) {
			search_texts part = { 0 };
			for (size_t q = q0; q < qt.n && q < q0 + window; q++)
				search_texts_append(&part, qt.s[q], qt.len[q]);
			encode(c, &part, Q, qpath);
			similarity_matrix(c->sim, Q, part.n, C, nc, d, S);
			write_rows(S, part.n, nc);
			search_texts_free(&part);
		}
		search_texts_free(&qt);
		free(Q);
	}
	free(S);
	free(C);
}

int main(int argc, char **argv)
{
	st_tool_init("st-similarity", argc, argv, usage);
	static const struct option opts[] = {
		{ "model", required_argument, NULL, OPT_MODEL },
		{ "similarity", required_argument, NULL, OPT_SIMILARITY },
		{ "queries", required_argument, NULL, OPT_QUERIES },
		{ "corpus", required_argument, NULL, OPT_CORPUS },
		{ "embeddings", no_argument, NULL, OPT_EMBEDDINGS },
		{ "batch-size", required_argument, NULL, OPT_BATCH },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "threads", required_argument, NULL, OPT_THREADS },
		SEARCH_PROMPT_OPTIONS,
		{ 0 },
	};
	ctx c = { .batch = 32, .sim = -1 };
	const char *qpath = NULL, *cpath = NULL;
	int embeddings = 0, opt;
	long window = 1024, threads = 0;
	while ((opt = st_getopt(argc, argv, opts, usage)) != -1) {
		switch (opt) {
		case OPT_MODEL: c.model_path = optarg; break;
		case OPT_SIMILARITY:
			if ((c.sim = metrics_sim_parse(optarg)) < 0)
				usage_error(usage, "--similarity: '%s' is not one of cosine, dot, euclidean, manhattan", optarg);
			break;
		case OPT_QUERIES: qpath = optarg; break;
		case OPT_CORPUS: cpath = optarg; break;
		case OPT_EMBEDDINGS: embeddings = 1; break;
		case OPT_BATCH:
			if ((c.batch = (int)st_parse_long("--batch-size", optarg)) < 1 || c.batch > 1 << 20)
				usage_error(usage, "--batch-size out of range");
			break;
		case OPT_WINDOW:
			if ((window = st_parse_long("--window", optarg)) < 1 || window > 1 << 24)
				usage_error(usage, "--window out of range");
			break;
		case SEARCH_OPT_PROMPT_NAME: search_prompt_option(optarg, NULL); break;
		case SEARCH_OPT_PROMPT: search_prompt_option(NULL, optarg); break;
		case OPT_THREADS: threads = st_parse_long("--threads", optarg); break;
		}
	}
	if (optind < argc)
		usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!qpath != !cpath)
		usage_error(usage, "--queries and --corpus go together");
	if (embeddings && !qpath)
		usage_error(usage, "--embeddings needs --queries FILE and --corpus FILE");
	if (!embeddings && !c.model_path)
		usage_error(usage, "--model DIR is required (or --embeddings with --queries and --corpus)");
	st_set_threads((int)threads);
	if (c.model_path) {
		search_open_model(c.model_path, &c.m, embeddings ? NULL : &c.tok);
		char err[1024];
		int model_sim = similarity_of_model(c.m, err, sizeof err);
		if (model_sim < 0 && c.sim < 0)
			die(EX_DATAERR, "%s: %s (choose one with --similarity)", c.model_path, err);
		if (c.sim < 0)
			c.sim = model_sim;
	}
	if (c.sim < 0)
		c.sim = METRICS_COSINE;
	if (qpath)
		run_matrix(&c, qpath, cpath, embeddings, window);
	else
		run_pairs(&c, window);
	check_write();
	if (c.tok)
		tokenizer_free(c.tok);
	if (c.m)
		model_free(c.m);
	return 0;
}
