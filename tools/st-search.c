/* st-search: semantic search -- the top-k corpus entries of every query, as util.semantic_search
 * (docs/st-search.md). Queries are read and answered in windows, so the output streams. */
#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "model.h"
#include "quantize.h"
#include "search.h"
#include "search_quant.h"
#include "st.h"
#include "stream.h"
#include "tokenizer.h"

static const char usage[] =
	"usage: st-search (--model DIR | --embeddings) --corpus FILE [options] < queries > hits\n"
	"\n"
	"For every query (a text line, or a JSON line with \"text\"), writes one JSON line: the top-k corpus\n"
	"entries, best first, as [{\"corpus_id\": N, \"score\": S}, ...]; corpus_id counts the corpus's non-empty\n"
	"lines from 0.\n"
	"\n"
	"  --model DIR               the model that encodes queries and corpus (or a Hub name: docs/hub.md)\n"
	"  --corpus FILE             the corpus: one text per line, or JSON Lines with \"text\"\n"
	"  --corpus-embeddings FILE  cache of the corpus embeddings: used when it matches the model and the\n"
	"                            corpus, else computed and written (atomically)\n"
	"  --embeddings              queries (stdin) and corpus (FILE) are precomputed: records with float32\n"
	"                            \"embeddings\" [dim] or [rows][dim], or \"embedding\" arrays (st-encode)\n"
	"  --top-k K                 hits per query (default 10)\n"
	"  --score-function F        cosine (default) or dot\n"
	"  --query-chunk-size N      queries read and answered per round (default 1024)\n"
	"  --batch-size N            texts per forward pass (default 32)\n"
	"  --precision P             float32 (default), int8, uint8, binary or ubinary: search a quantized corpus\n"
	"                            (quantize_embeddings), then rescore the best top-k x M with the float32\n"
	"                            query (scores are then query . quantized row, not cosines)\n"
	"  --rescore-multiplier M    candidates kept for rescoring, per hit (default 2)\n"
	"  --calibration FILE        int8/uint8 ranges from these embeddings (st-encode lines or records)\n"
	"                            instead of from the corpus\n"
	SEARCH_PROMPT_USAGE
	"  --threads N               threads (default all cores)\n"
	"  --with-text               each hit also gives the corpus entry's \"text\" (text input only)\n"
	"  --help                    this text\n";

static void write_hits(FILE *out, const search_hit *h, int n, int sim, const search_texts *corpus_text)
{
	fputc('[', out);
	for (int k = 0; k < n; k++) {
		fprintf(out, "%s{\"corpus_id\": %d, \"score\": %.9g", k ? ", " : "", h[k].id,
			search_clamp_cosine(h[k].score, sim));
		if (corpus_text) {
			fputs(", \"text\": ", out);
			search_write_json_string(out, corpus_text->s[h[k].id], corpus_text->len[h[k].id]);
		}
		fputc('}', out);
	}
	fputs("]\n", out);
	if (ferror(out)) {
		if (errno == EPIPE)
			exit(0);
		die(EX_IOERR, "writing the hits: %s", strerror(errno));
	}
}

enum { OPT_MODEL = 256, OPT_CORPUS, OPT_CACHE, OPT_EMBEDDINGS, OPT_TOPK, OPT_SCORE, OPT_CHUNK, OPT_BATCH,
       OPT_THREADS, OPT_WITH_TEXT, OPT_PRECISION, OPT_RESCORE, OPT_CALIBRATION };
static const struct option opts[] = {
	{ "model", required_argument, 0, OPT_MODEL },
	{ "corpus", required_argument, 0, OPT_CORPUS },
	{ "corpus-embeddings", required_argument, 0, OPT_CACHE },
	{ "embeddings", no_argument, 0, OPT_EMBEDDINGS },
	{ "top-k", required_argument, 0, OPT_TOPK },
	{ "score-function", required_argument, 0, OPT_SCORE },
	{ "query-chunk-size", required_argument, 0, OPT_CHUNK },
	{ "batch-size", required_argument, 0, OPT_BATCH },
	{ "threads", required_argument, 0, OPT_THREADS },
	SEARCH_PROMPT_OPTIONS,
	{ "with-text", no_argument, 0, OPT_WITH_TEXT },
	{ "precision", required_argument, 0, OPT_PRECISION },
	{ "rescore-multiplier", required_argument, 0, OPT_RESCORE },
	{ "calibration", required_argument, 0, OPT_CALIBRATION },
	{ 0 }
};

int main(int argc, char **argv)
{
	st_tool_init("st-search", argc, argv, usage);
	const char *model_path = NULL, *corpus_path = NULL, *cache_path = NULL, *calib_path = NULL;
	int embeddings = 0, sim = METRICS_COSINE, with_text = 0, precision = QUANT_FLOAT32;
	long chunk = 1024, threads = 0, top_k = 10, batch = 32, rescore = 2;
	int c;
	while ((c = st_getopt(argc, argv, opts, usage)) != -1) {
		switch (c) {
		case OPT_MODEL: model_path = optarg; break;
		case OPT_CORPUS: corpus_path = optarg; break;
		case OPT_CACHE: cache_path = optarg; break;
		case OPT_EMBEDDINGS: embeddings = 1; break;
		case OPT_TOPK: top_k = st_parse_long("--top-k", optarg); break;
		case OPT_SCORE:
			sim = metrics_sim_parse(optarg);
			if (sim != METRICS_COSINE && sim != METRICS_DOT)
				usage_error(usage, "--score-function: cosine or dot, not '%s'", optarg);
			break;
		case OPT_CHUNK: chunk = st_parse_long("--query-chunk-size", optarg); break;
		case OPT_BATCH: batch = st_parse_long("--batch-size", optarg); break;
		case SEARCH_OPT_PROMPT_NAME: search_prompt_option(optarg, NULL); break;
		case SEARCH_OPT_PROMPT: search_prompt_option(NULL, optarg); break;
		case OPT_THREADS: threads = st_parse_long("--threads", optarg); break;
		case OPT_WITH_TEXT: with_text = 1; break;
		case OPT_PRECISION:
			if ((precision = quantize_parse(optarg)) < 0)
				usage_error(usage, "--precision: float32, int8, uint8, binary or ubinary, not '%s'", optarg);
			break;
		case OPT_RESCORE: rescore = st_parse_long("--rescore-multiplier", optarg); break;
		case OPT_CALIBRATION: calib_path = optarg; break;
		}
	}
	if (optind < argc)
		usage_error(usage, "unexpected argument '%s' (queries are read from stdin)", argv[optind]);
	if (!corpus_path)
		usage_error(usage, "--corpus FILE is required");
	if (!embeddings && !model_path)
		usage_error(usage, "give --model DIR, or --embeddings");
	if (embeddings && with_text)
		usage_error(usage, "--with-text needs the corpus's texts: --embeddings input has none");
	if (calib_path && precision != QUANT_INT8 && precision != QUANT_UINT8)
		usage_error(usage, "--calibration goes with --precision int8 or uint8");
	if (rescore < 1 || rescore > 1 << 16)
		usage_error(usage, "--rescore-multiplier must be 1 to 65536");
	if (top_k < 1 || chunk < 1 || batch < 1 || top_k > INT32_MAX || chunk > 1 << 24 || batch > 1 << 20)
		usage_error(usage, "--top-k, --query-chunk-size and --batch-size must be positive (and at most 2^31-1, "
			    "2^24, 2^20)");
	st_set_threads((int)threads);
	char err[1024];

	st_model *m = NULL;
	tokenizer *tok = NULL;
	if (!embeddings)
		search_open_model(model_path, &m, &tok);

	/* the corpus */
	float *C = NULL;
	size_t nc = 0;
	int d = 0;
	search_texts ct = { 0 };   /* the corpus's texts (kept for --with-text) */
	if (embeddings) {
		int fd = open(corpus_path, O_RDONLY);
		if (fd < 0)
			die(EX_NOINPUT, "cannot open %s: %s", corpus_path, strerror(errno));
		st_reader *r = st_reader_open(fd, corpus_path);
		if (search_read_rows(r, corpus_path, &C, &nc, &d, err, sizeof err) < 0)
			die(EX_DATAERR, "%s", err);
		st_reader_close(r);
		close(fd);
	} else {
		FILE *f = fopen(corpus_path, "r");
		if (!f)
			die(EX_NOINPUT, "cannot open %s: %s", corpus_path, strerror(errno));
		if (search_read_lines(f, corpus_path, &ct, 0, err, sizeof err) < 0)
			die(EX_DATAERR, "%s", err);
		fclose(f);
		nc = ct.n;
		d = model_dim(m);
		uint64_t key = 0;
		if (cache_path && search_cache_check(cache_path) < 0)   /* before the long encoding, not after */
			die(EX_IOERR, "%s: exists and is not an st embedding cache; not overwriting it (remove it or "
			    "name another file)", cache_path);
		if (cache_path) {
			key = search_cache_key(model_params(m), model_num_params(m), (const char *const *)ct.s, ct.len, nc);
			C = search_cache_read(cache_path, nc, d, key);
		}
		if (!C) {
			C = xmalloc(xmul(xmul(nc + 1, d), sizeof(float)));
			if (search_encode(m, tok, (const char *const *)ct.s, ct.len, nc, (int)batch, 0, C, err, sizeof err) < 0)
				die(EX_DATAERR, "%s: %s", corpus_path, err);
			if (cache_path && search_cache_write(cache_path, C, nc, d, key) < 0)
				die(EX_IOERR, "cannot write %s: %s", cache_path, strerror(errno));
		}
	}
	const search_texts *texts = with_text ? &ct : NULL;
	if (nc == 0)
		die(EX_DATAERR, "%s: an empty corpus", corpus_path);
	if ((size_t)top_k > nc)
		top_k = (long)nc;   /* no query has more hits than the corpus has rows: size the buffers by that */
	/* a quantized corpus: the float32 rows are only needed to build it */
	search_qindex qix = { 0 };
	if (precision != QUANT_FLOAT32) {
		float *K = NULL;
		size_t nk = 0;
		if (calib_path) {
			int dk = d;
			K = search_read_calibration(calib_path, &dk, &nk);
		}
		search_qindex_build(&qix, precision, C, nc, d, sim, K, nk);
		free(K);
		free(C);
		C = NULL;
	}
	int out_sim = precision == QUANT_FLOAT32 ? sim : METRICS_DOT;   /* rescored scores are no cosines */

	/* queries, a window at a time */
	search_hit *hits = xmalloc(xmul(xmul(chunk, top_k), sizeof *hits));
	int *nhits = xmalloc(xmul(chunk, sizeof *nhits));
	float *Q = NULL;
	if (embeddings) {
		/* precomputed queries are read whole: a record may hold many rows */
		st_reader *r = st_reader_open(0, "stdin");
		size_t nq = 0;
		int dq = d;
		if (search_read_rows(r, "stdin", &Q, &nq, &dq, err, sizeof err) < 0)
			die(EX_DATAERR, "%s", err);
		st_reader_close(r);
		for (size_t q0 = 0; q0 < nq; q0 += chunk) {
			size_t qn = nq - q0 < (size_t)chunk ? nq - q0 : (size_t)chunk;
			if (precision != QUANT_FLOAT32)
				search_topk_quantized(&qix, Q + q0 * d, qn, (int)top_k, (int)rescore, hits, nhits);
			else
				search_topk(Q + q0 * d, qn, C, nc, d, sim, (int)top_k, hits, nhits);
			for (size_t q = 0; q < qn; q++)
				write_hits(stdout, hits + q * (size_t)top_k, nhits[q], out_sim, texts);
		}
	} else {
		Q = xmalloc(xmul(xmul(chunk, d), sizeof(float)));
		char *line = NULL;
		size_t cap = 0;
		long lines_before = 0;   /* lines of stdin in earlier chunks, to name a line in an error */
		for (int eof = 0; !eof;) {
			/* read up to chunk lines through search_read_lines on an in-memory stream */
			char *buf = NULL;
			size_t blen = 0;
			FILE *mem = open_memstream(&buf, &blen);
			long got = 0, lines = 0;
			ssize_t len;
			while (got < chunk && (len = getline(&line, &cap, stdin)) >= 0) {
				fwrite(line, 1, len, mem);
				got += strspn(line, "\r\n") != (size_t)len;
				lines++;
			}
			if (got < chunk)
				eof = 1;
			fclose(mem);
			FILE *in = fmemopen(buf, blen ? blen : 1, "r");
			search_texts qt = { 0 };
			if (blen && search_read_lines_at(in, "stdin", lines_before, &qt, 0, err, sizeof err) < 0)
				die(EX_DATAERR, "%s", err);
			lines_before += lines;
			fclose(in);
			free(buf);
			if (qt.n) {
				if (search_encode(m, tok, (const char *const *)qt.s, qt.len, qt.n, (int)batch, 0, Q, err, sizeof err) < 0)
					die(EX_DATAERR, "stdin: %s", err);
				if (precision != QUANT_FLOAT32)
					search_topk_quantized(&qix, Q, qt.n, (int)top_k, (int)rescore, hits, nhits);
				else
					search_topk(Q, qt.n, C, nc, d, sim, (int)top_k, hits, nhits);
				for (size_t q = 0; q < qt.n; q++)
					write_hits(stdout, hits + q * (size_t)top_k, nhits[q], out_sim, texts);
			}
			search_texts_free(&qt);
		}
		free(line);
	}
	if (fflush(stdout) != 0 && errno != EPIPE)
		die(EX_IOERR, "writing the hits: %s", strerror(errno));
	free(Q);
	free(C);
	if (precision != QUANT_FLOAT32)
		search_qindex_free(&qix);
	search_texts_free(&ct);
	free(hits);
	free(nhits);
	if (tok)
		tokenizer_free(tok);
	if (m)
		model_free(m);
	return 0;
}
