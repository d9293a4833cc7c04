/* st-mine: paraphrase mining -- the most similar pairs of sentences in a collection, as
 * util.paraphrase_mining (docs/st-mine.md). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
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
	"usage: st-mine (--model DIR | --embeddings) [options] [FILE] > pairs\n"
	"\n"
	"Reads sentences (one per line, or JSON Lines with \"text\") from FILE or stdin and writes the most\n"
	"similar pairs as JSON Lines {\"score\": S, \"i\": I, \"j\": J} (I < J, 0-based numbers of the non-empty\n"
	"input lines), best first.\n"
	"\n"
	"  --model DIR              the model that encodes the sentences (or a Hub name: docs/hub.md)\n"
	"  --embeddings             the input is precomputed: records with float32 \"embeddings\" [dim] or\n"
	"                           [rows][dim], or \"embedding\" arrays (st-encode)\n"
	"  --top-k K                candidates per sentence and corpus chunk (default 100)\n"
	"  --max-pairs N            size of the candidate queue (default 500000)\n"
	"  --corpus-chunk-size N    sentences per corpus chunk (default 100000)\n"
	"  --score-function F       cosine (default) or dot\n"
	"  --batch-size N           texts per forward pass (default 32)\n"
	SEARCH_PROMPT_USAGE
	"  --threads N              threads (default all cores)\n"
	"  --help                   this text\n";

enum { OPT_MODEL = 256, OPT_EMBEDDINGS, OPT_TOPK, OPT_MAXPAIRS, OPT_CHUNK, OPT_SCORE, OPT_BATCH, OPT_THREADS };
static const struct option opts[] = {
	{ "model", required_argument, 0, OPT_MODEL },
	{ "embeddings", no_argument, 0, OPT_EMBEDDINGS },
	{ "top-k", required_argument, 0, OPT_TOPK },
	{ "max-pairs", required_argument, 0, OPT_MAXPAIRS },
	{ "corpus-chunk-size", required_argument, 0, OPT_CHUNK },
	{ "score-function", required_argument, 0, OPT_SCORE },
	{ "batch-size", required_argument, 0, OPT_BATCH },
	{ "threads", required_argument, 0, OPT_THREADS },
	SEARCH_PROMPT_OPTIONS,
	{ 0 }
};

int main(int argc, char **argv)
{
	st_tool_init("st-mine", argc, argv, usage);
	const char *model_path = NULL, *file = NULL;
	int embeddings = 0, sim = METRICS_COSINE;
	long max_pairs = 500000, chunk = 100000, threads = 0, top_k = 100, batch = 32;
	int c;
	while ((c = st_getopt(argc, argv, opts, usage)) != -1) {
		switch (c) {
		case OPT_MODEL: model_path = optarg; break;
		case OPT_EMBEDDINGS: embeddings = 1; break;
		case OPT_TOPK: top_k = st_parse_long("--top-k", optarg); break;
		case OPT_MAXPAIRS: max_pairs = st_parse_long("--max-pairs", optarg); break;
		case OPT_CHUNK: chunk = st_parse_long("--corpus-chunk-size", optarg); break;
		case OPT_SCORE:
			sim = metrics_sim_parse(optarg);
			if (sim != METRICS_COSINE && sim != METRICS_DOT)
				usage_error(usage, "--score-function: cosine or dot, not '%s'", optarg);
			break;
		case OPT_BATCH: batch = st_parse_long("--batch-size", optarg); break;
		case SEARCH_OPT_PROMPT_NAME: search_prompt_option(optarg, NULL); break;
		case SEARCH_OPT_PROMPT: search_prompt_option(NULL, optarg); break;
		case OPT_THREADS: threads = st_parse_long("--threads", optarg); break;
		}
	}
	if (argc - optind > 1)
		usage_error(usage, "one input file at most");
	if (optind < argc)
		file = argv[optind];
	if (!embeddings && !model_path)
		usage_error(usage, "give --model DIR, or --embeddings");
	if (top_k < 1 || max_pairs < 1 || chunk < 1 || batch < 1 || top_k >= INT32_MAX || batch > 1 << 20)
		usage_error(usage, "--top-k, --max-pairs, --corpus-chunk-size and --batch-size must be positive (--top-k "
			    "below 2^31-1, --batch-size at most 2^20)");
	st_set_threads((int)threads);
	int fd = 0;
	const char *name = "stdin";
	if (file && strcmp(file, "-")) {
		if ((fd = open(file, O_RDONLY)) < 0)
			die(EX_NOINPUT, "cannot open %s: %s", file, strerror(errno));
		name = file;
	}
	char err[1024];
	float *E = NULL;
	size_t n = 0;
	int d = 0;
	double t0 = st_now();
	if (embeddings) {
		st_reader *r = st_reader_open(fd, name);
		if (search_read_rows(r, name, &E, &n, &d, err, sizeof err) < 0)
			die(EX_DATAERR, "%s", err);
		st_reader_close(r);
	} else {
		st_model *m;
		tokenizer *tok;
		search_open_model(model_path, &m, &tok);
		FILE *f = fdopen(fd, "r");
		search_texts t = { 0 };
		if (!f || search_read_lines(f, name, &t, 0, err, sizeof err) < 0)
			die(EX_DATAERR, "%s", err);
		n = t.n;
		d = model_dim(m);
		E = xmalloc(xmul(xmul(n + 1, d), sizeof(float)));
		if (search_encode(m, tok, (const char *const *)t.s, t.len, n, (int)batch, 0, E, err, sizeof err) < 0)
			die(EX_DATAERR, "%s: %s", name, err);
		search_texts_free(&t);
		tokenizer_free(tok);
		model_free(m);
	}
	double t1 = st_now();
	search_pair *pairs;
	size_t np = search_mine(E, n, d, sim, (int)top_k, (size_t)max_pairs, (size_t)chunk, &pairs);
	double t2 = st_now();
	if (getenv("ST_TIMING"))
		fprintf(stderr, "st-mine: %zu sentences: encode %.3f s, mine %.3f s, %zu pairs\n", n, t1 - t0, t2 - t1, np);
	for (size_t p = 0; p < np; p++)
		if (printf("{\"score\": %.9g, \"i\": %d, \"j\": %d}\n", pairs[p].score, pairs[p].i, pairs[p].j) < 0)
			break;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno == EPIPE)
			return 0;
		die(EX_IOERR, "writing the pairs: %s", strerror(errno));
	}
	free(pairs);
	free(E);
	return 0;
}
