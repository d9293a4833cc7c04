/* st-search: semantic search -- the top-k corpus entries of every query, as util.semantic_search
 * (docs/st-search.md). Queries are read and answered in windows, so the output streams. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "model.h"
#include "search.h"
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
	"  --threads N               threads (default all cores)\n"
	"  --help                    this text\n";

static void write_hits(FILE *out, const search_hit *h, int n)
{
	fputc('[', out);
	for (int k = 0; k < n; k++)
		fprintf(out, "%s{\"corpus_id\": %d, \"score\": %.9g}", k ? ", " : "", h[k].id, h[k].score);
	fputs("]\n", out);
	if (ferror(out)) {
		if (errno == EPIPE)
			exit(0);
		die(EX_IOERR, "writing the hits: %s", strerror(errno));
	}
}

int main(int argc, char **argv)
{
	st_tool_init("st-search", argc, argv, usage);
	const char *model_path = NULL, *corpus_path = NULL, *cache_path = NULL;
	int embeddings = 0, top_k = 10, sim = METRICS_COSINE, batch = 32;
	long chunk = 1024, threads = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
#define NEED() do { if (i + 1 >= argc) usage_error(usage, "%s needs a value", a); } while (0)
		if (!strcmp(a, "--model")) { NEED(); model_path = argv[++i]; }
		else if (!strcmp(a, "--corpus")) { NEED(); corpus_path = argv[++i]; }
		else if (!strcmp(a, "--corpus-embeddings")) { NEED(); cache_path = argv[++i]; }
		else if (!strcmp(a, "--embeddings")) embeddings = 1;
		else if (!strcmp(a, "--top-k")) { NEED(); top_k = (int)st_parse_long(a, argv[++i]); }
		else if (!strcmp(a, "--score-function")) {
			NEED();
			sim = metrics_sim_parse(argv[++i]);
			if (sim != METRICS_COSINE && sim != METRICS_DOT)
				usage_error(usage, "--score-function: cosine or dot, not '%s'", argv[i]);
		} else if (!strcmp(a, "--query-chunk-size")) { NEED(); chunk = st_parse_long(a, argv[++i]); }
		else if (!strcmp(a, "--batch-size")) { NEED(); batch = (int)st_parse_long(a, argv[++i]); }
		else if (!strcmp(a, "--threads")) { NEED(); threads = st_parse_long(a, argv[++i]); }
		else
			usage_error(usage, "unknown option '%s'", a);
#undef NEED
	}
	if (!corpus_path)
		usage_error(usage, "--corpus FILE is required");
	if (!embeddings && !model_path)
		usage_error(usage, "give --model DIR, or --embeddings");
	if (top_k < 1 || chunk < 1 || batch < 1)
		usage_error(usage, "--top-k, --query-chunk-size and --batch-size must be positive");
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
		search_texts ct = { 0 };
		if (search_read_lines(f, corpus_path, &ct, 0, err, sizeof err) < 0)
			die(EX_DATAERR, "%s", err);
		fclose(f);
		nc = ct.n;
		d = model_dim(m);
		uint64_t key = 0;
		if (cache_path) {
			key = search_cache_key(model_params(m), model_num_params(m), (const char *const *)ct.s, ct.len, nc);
			C = search_cache_read(cache_path, nc, d, key);
		}
		if (!C) {
			C = xmalloc(xmul(xmul(nc + 1, d), sizeof(float)));
			if (search_encode(m, tok, (const char *const *)ct.s, ct.len, nc, batch, 0, C, err, sizeof err) < 0)
				die(EX_DATAERR, "%s: %s", corpus_path, err);
			if (cache_path && search_cache_write(cache_path, C, nc, d, key) < 0)
				die(EX_IOERR, "cannot write %s: %s", cache_path, strerror(errno));
		}
		search_texts_free(&ct);
	}
	if (nc == 0)
		die(EX_DATAERR, "%s: an empty corpus", corpus_path);

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
			search_topk(Q + q0 * d, qn, C, nc, d, sim, top_k, hits, nhits);
			for (size_t q = 0; q < qn; q++)
				write_hits(stdout, hits + q * top_k, nhits[q]);
		}
	} else {
		Q = xmalloc(xmul(xmul(chunk, d), sizeof(float)));
		char *line = NULL;
		size_t cap = 0;
		for (int eof = 0; !eof;) {
			/* read up to chunk lines through search_read_lines on an in-memory stream */
			char *buf = NULL;
			size_t blen = 0;
			FILE *mem = open_memstream(&buf, &blen);
			long got = 0;
			ssize_t len;
			while (got < chunk && (len = getline(&line, &cap, stdin)) >= 0) {
				fwrite(line, 1, len, mem);
				got += strspn(line, "\r\n") != (size_t)len;
			}
			if (got < chunk)
				eof = 1;
			fclose(mem);
			FILE *in = fmemopen(buf, blen ? blen : 1, "r");
			search_texts qt = { 0 };
			if (blen && search_read_lines(in, "stdin", &qt, 0, err, sizeof err) < 0)
				die(EX_DATAERR, "%s", err);
			fclose(in);
			free(buf);
			if (qt.n) {
				if (search_encode(m, tok, (const char *const *)qt.s, qt.len, qt.n, batch, 0, Q, err, sizeof err) < 0)
					die(EX_DATAERR, "stdin: %s", err);
				search_topk(Q, qt.n, C, nc, d, sim, top_k, hits, nhits);
				for (size_t q = 0; q < qt.n; q++)
					write_hits(stdout, hits + q * top_k, nhits[q]);
			}
			search_texts_free(&qt);
		}
		free(line);
	}
	if (fflush(stdout) != 0 && errno != EPIPE)
		die(EX_IOERR, "writing the hits: %s", strerror(errno));
	free(Q);
	free(C);
	free(hits);
	free(nhits);
	if (tok)
		tokenizer_free(tok);
	if (m)
		model_free(m);
	return 0;
}
