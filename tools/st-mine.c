/* st-mine: paraphrase mining -- the most similar pairs of sentences in a collection, as
 * util.paraphrase_mining; hard negatives for (query, positive) pairs, as util.mine_hard_negatives; communities,
 * as util.community_detection (docs/st-mine.md). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gemm_bf16.h"
#include "metrics.h"
#include "mining.h"
#include "model.h"
#include "search.h"
#include "st.h"
#include "stream.h"
#include "tokenizer.h"

static const char usage[] =
	"usage: st-mine (--model DIR | --embeddings) [options] [FILE] > pairs\n"
	"       st-mine --hard-negatives --model DIR [options] [PAIRS] > examples\n"
	"       st-mine --communities (--model DIR | --embeddings) [options] [FILE] > communities\n"
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
	"  --compute float32|bf16   arithmetic of the encoder's projections: float32 (default) or bfloat16\n"
	"                           products with float32 sums (CPUs with AVX512-BF16; docs/encoder.md)\n"
	"  --with-text              pairs and communities also give the texts (text input only)\n"
	"\n"
	"--hard-negatives: PAIRS are JSON Lines {\"texts\": [query, positive]}; writes training examples\n"
	"  --corpus FILE            more candidate negatives (one text per line or JSON \"text\"); the positives\n"
	"                           are always candidates\n"
	"  --num-negatives N        negatives per pair (default 3)\n"
	"  --range-min N            skip the N best candidates (default 0)\n"
	"  --range-max N            look at the N best candidates (default: the library's)\n"
	"  --margin M               keep a candidate when score + M <= the positive's score\n"
	"  --relative-margin R      keep when score <= the positive's score * (1 - R)\n"
	"  --max-score S, --min-score S   keep when score <= S, score >= S\n"
	"  --sampling-strategy top|random  the best candidates (default) or a random sample of them\n"
	"  --seed N                 seed of random sampling (default 42)\n"
	"  --output-format F        triplet (default: {\"texts\": [q, p, n]} per negative) or n-tuple\n"
	"                           ({\"texts\": [q, p, n1, ..., nk]}, only pairs with all k negatives)\n"
	"--communities: writes each community as a JSON array of ids, largest first\n"
	"  --threshold T            cosine at least T (default 0.75)\n"
	"  --min-community-size N   at least N members (default 10)\n"
	"  --help                   this text\n";

/* The options of --hard-negatives and --communities (mine_option). */
static struct {
	int hard_negatives, communities, with_text, ntuple;
	const char *corpus;
	mining_hn_opts hn;
	double threshold;
	long min_size;
} mine = { .hn = { .range_max = -1, .num_negatives = 3, .seed = 42 }, .threshold = 0.75, .min_size = 10 };

enum { OPT_MODEL = 256, OPT_EMBEDDINGS, OPT_TOPK, OPT_MAXPAIRS, OPT_CHUNK, OPT_SCORE, OPT_BATCH, OPT_THREADS, OPT_COMPUTE,
       OPT_HARDNEG = 400, OPT_COMMUNITIES, OPT_WITHTEXT, OPT_CORPUS, OPT_NUMNEG, OPT_RANGEMIN, OPT_RANGEMAX,
       OPT_MARGIN, OPT_RELMARGIN, OPT_MAXSCORE, OPT_MINSCORE, OPT_SAMPLING, OPT_SEED, OPT_FORMAT, OPT_THRESHOLD,
       OPT_MINSIZE };
static const struct option opts[] = {
	{ "model", required_argument, 0, OPT_MODEL },
	{ "embeddings", no_argument, 0, OPT_EMBEDDINGS },
	{ "top-k", required_argument, 0, OPT_TOPK },
	{ "max-pairs", required_argument, 0, OPT_MAXPAIRS },
	{ "corpus-chunk-size", required_argument, 0, OPT_CHUNK },
	{ "score-function", required_argument, 0, OPT_SCORE },
	{ "batch-size", required_argument, 0, OPT_BATCH },
	{ "threads", required_argument, 0, OPT_THREADS },
	{ "compute", required_argument, 0, OPT_COMPUTE },
	SEARCH_PROMPT_OPTIONS,
	{ "hard-negatives", no_argument, 0, OPT_HARDNEG },
	{ "communities", no_argument, 0, OPT_COMMUNITIES },
	{ "with-text", no_argument, 0, OPT_WITHTEXT },
	{ "corpus", required_argument, 0, OPT_CORPUS },
	{ "num-negatives", required_argument, 0, OPT_NUMNEG },
	{ "range-min", required_argument, 0, OPT_RANGEMIN },
	{ "range-max", required_argument, 0, OPT_RANGEMAX },
	{ "margin", required_argument, 0, OPT_MARGIN },
	{ "relative-margin", required_argument, 0, OPT_RELMARGIN },
	{ "max-score", required_argument, 0, OPT_MAXSCORE },
	{ "min-score", required_argument, 0, OPT_MINSCORE },
	{ "sampling-strategy", required_argument, 0, OPT_SAMPLING },
	{ "seed", required_argument, 0, OPT_SEED },
	{ "output-format", required_argument, 0, OPT_FORMAT },
	{ "threshold", required_argument, 0, OPT_THRESHOLD },
	{ "min-community-size", required_argument, 0, OPT_MINSIZE },
	{ 0 }
};

static double parse_number(const char *opt, const char *v)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (end == v || *end || errno || !isfinite(x))
		usage_error(usage, "%s: a number, not '%s'", opt, v);
	return x;
}

static int parse_count(const char *opt, const char *v)
{
	long x = st_parse_long(opt, v);
	if (x < 0 || x > INT32_MAX / 4)
		usage_error(usage, "%s: a count from 0 to 2^29, not '%s'", opt, v);
	return (int)x;
}

/* The options of the newer modes; 0 when c is none of them. */
static int mine_option(int c, const char *v)
{
	switch (c) {
	case OPT_HARDNEG: mine.hard_negatives = 1; return 1;
	case OPT_COMMUNITIES: mine.communities = 1; return 1;
	case OPT_WITHTEXT: mine.with_text = 1; return 1;
	case OPT_CORPUS: mine.corpus = v; return 1;
	case OPT_NUMNEG:
		if ((mine.hn.num_negatives = parse_count("--num-negatives", v)) < 1)
			usage_error(usage, "--num-negatives must be positive");
		return 1;
	case OPT_RANGEMIN: mine.hn.range_min = parse_count("--range-min", v); return 1;
	case OPT_RANGEMAX: mine.hn.range_max = parse_count("--range-max", v); return 1;
	case OPT_MARGIN: mine.hn.has_margin = 1, mine.hn.margin = parse_number("--margin", v); return 1;
	case OPT_RELMARGIN:
		mine.hn.has_relative_margin = 1, mine.hn.relative_margin = parse_number("--relative-margin", v);
		return 1;
	case OPT_MAXSCORE: mine.hn.has_max_score = 1, mine.hn.max_score = parse_number("--max-score", v); return 1;
	case OPT_MINSCORE: mine.hn.has_min_score = 1, mine.hn.min_score = parse_number("--min-score", v); return 1;
	case OPT_SAMPLING:
		if (!strcmp(v, "top") || !strcmp(v, "random"))
			mine.hn.random = !strcmp(v, "random");
		else
			usage_error(usage, "--sampling-strategy: top or random, not '%s'", v);
		return 1;
	case OPT_SEED: mine.hn.seed = (uint64_t)st_parse_long("--seed", v); return 1;
	case OPT_FORMAT:
		if (!strcmp(v, "triplet") || !strcmp(v, "n-tuple"))
			mine.ntuple = !strcmp(v, "n-tuple");
		else
			usage_error(usage, "--output-format: triplet or n-tuple, not '%s'", v);
		return 1;
	case OPT_THRESHOLD: mine.threshold = parse_number("--threshold", v); return 1;
	case OPT_MINSIZE:
		mine.min_size = st_parse_long("--min-community-size", v);
		if (mine.min_size < 1)
			usage_error(usage, "--min-community-size must be positive");
		return 1;
	}
	return 0;
}

static void check_output(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno == EPIPE)
			exit(0);
		die(EX_IOERR, "writing the output: %s", strerror(errno));
	}
}

static void write_texts_record(const char *const *s, const size_t *len, int n)
{
	fputs("{\"texts\": [", stdout);
	for (int k = 0; k < n; k++) {
		if (k)
			fputs(", ", stdout);
		search_write_json_string(stdout, s[k], len[k]);
	}
	fputs("]}\n", stdout);
	if (ferror(stdout))
		check_output();
}

/* --hard-negatives: read the pairs, build the corpus (extra corpus, then the positives, de-duplicated) and the
 * unique queries, encode both (normalised, as the library does), mine, write examples grouped by query. */
static int run_hard_negatives(const char *model_path, int fd, const char *name, int batch)
{
	char err[1024];
	search_texts queries = { 0 }, corpus = { 0 };
	if (mine.corpus) {
		FILE *cf = fopen(mine.corpus, "r");
		if (!cf)
			die(EX_NOINPUT, "cannot open %s: %s", mine.corpus, strerror(errno));
		search_texts extra = { 0 };
		if (search_read_lines(cf, mine.corpus, &extra, 0, err, sizeof err) < 0)
			die(EX_DATAERR, "%s", err);
		fclose(cf);
		for (size_t i = 0; i < extra.n; i++)
			search_texts_add(&corpus, extra.s[i], extra.len[i]);
		search_texts_free(&extra);
	}
	/* the pairs as (query index, positive's corpus index) */
	size_t npairs = 0, cap = 64;
	int32_t *pq = xmalloc(cap * sizeof *pq), *pp = xmalloc(cap * sizeof *pp);
	FILE *f = fdopen(fd, "r");
	if (!f)
		die(EX_IOERR, "%s: %s", name, strerror(errno));
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	long lineno = 0;
	while ((len = getline(&line, &lcap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (len == 0)
			continue;
		const char *bad = search_line_problem(line, (size_t)len, lineno);
		if (bad)
			die(EX_DATAERR, "%s, line %ld: %s", name, lineno, bad);
		char msg[256];
		st_val *rec = st_from_json(line, (size_t)len, msg, sizeof msg);
		if (!rec)
			die(EX_DATAERR, "%s, line %ld: not a JSON record: %s", name, lineno, msg);
		const char *txt[2];
		size_t tl[2];
		if (st_example_texts(rec, txt, tl, 2) < 2)
			die(EX_DATAERR, "%s, line %ld: needs {\"texts\": [query, positive]}", name, lineno);
		if (npairs == cap) {
			cap *= 2;
			pq = xrealloc(pq, cap * sizeof *pq);
			pp = xrealloc(pp, cap * sizeof *pp);
		}
		pq[npairs] = (int32_t)search_texts_add(&queries, txt[0], tl[0]);
		pp[npairs] = (int32_t)search_texts_add(&corpus, txt[1], tl[1]);
		npairs++;
		st_free(rec);
	}
	if (ferror(f))
		die(EX_IOERR, "reading %s: %s", name, strerror(errno));
	free(line);
	if (npairs == 0)
		die(EX_DATAERR, "%s: no (query, positive) pairs", name);
	if (queries.n > INT32_MAX || corpus.n > INT32_MAX)
		die(EX_DATAERR, "%s: more than 2^31 texts", name);
	/* each query's positives, in input order (CSR) */
	size_t nq = queries.n;
	size_t *pos_start = xcalloc(nq + 1, sizeof *pos_start);
	int32_t *pos_ids = xmalloc(npairs * sizeof *pos_ids);
	for (size_t i = 0; i < npairs; i++)
		pos_start[pq[i] + 1]++;
	for (size_t q = 0; q < nq; q++)
		pos_start[q + 1] += pos_start[q];
	size_t *fill = xmalloc((nq + 1) * sizeof *fill);
	memcpy(fill, pos_start, (nq + 1) * sizeof *fill);
	for (size_t i = 0; i < npairs; i++)
		pos_ids[fill[pq[i]]++] = pp[i];
	free(fill);

	st_model *m;
	tokenizer *tok;
	search_open_model(model_path, &m, &tok);
	int d = model_dim(m);
	float *Q = xmalloc(xmul(xmul(nq + 1, d), sizeof(float)));
	float *C = xmalloc(xmul(xmul(corpus.n + 1, d), sizeof(float)));
	if (search_encode(m, tok, (const char *const *)queries.s, queries.len, nq, batch, 0, Q, err, sizeof err) < 0)
		die(EX_DATAERR, "%s (queries): %s", name, err);
	if (search_encode(m, tok, (const char *const *)corpus.s, corpus.len, corpus.n, batch, 0, C, err, sizeof err) < 0)
		die(EX_DATAERR, "%s (corpus): %s", mine.corpus ? mine.corpus : name, err);
	tokenizer_free(tok);
	model_free(m);
	search_normalize(Q, nq, d);
	search_normalize(C, corpus.n, d);

	int nn = mine.hn.num_negatives;
	int32_t *neg = xmalloc(xmul(xmul(nq, nn ? nn : 1), sizeof *neg));
	float *neg_score = xmalloc(xmul(xmul(nq, nn ? nn : 1), sizeof *neg_score));
	int *nneg = xmalloc(nq * sizeof *nneg);
	mining_hard_negatives(Q, nq, C, corpus.n, d, pos_start, pos_ids, &mine.hn, neg, neg_score, nneg);

	size_t written = 0;
	const char **row = xmalloc(((size_t)nn + 2) * sizeof *row);
	size_t *rowlen = xmalloc(((size_t)nn + 2) * sizeof *rowlen);
	for (size_t q = 0; q < nq; q++)
		for (size_t p = pos_start[q]; p < pos_start[q + 1]; p++) {
			row[0] = queries.s[q], rowlen[0] = queries.len[q];
			row[1] = corpus.s[pos_ids[p]], rowlen[1] = corpus.len[pos_ids[p]];
			if (mine.ntuple) {
				if (nneg[q] < nn)
					continue;   /* as the library: only pairs with all their negatives */
				for (int k = 0; k < nn; k++)
					row[2 + k] = corpus.s[neg[q * nn + k]], rowlen[2 + k] = corpus.len[neg[q * nn + k]];
				write_texts_record(row, rowlen, nn + 2);
				written++;
			} else
				for (int k = 0; k < nneg[q]; k++) {
					row[2] = corpus.s[neg[q * nn + k]], rowlen[2] = corpus.len[neg[q * nn + k]];
					write_texts_record(row, rowlen, 3);
					written++;
				}
		}
	check_output();
	if (getenv("ST_TIMING") || written < npairs * (size_t)(mine.ntuple ? 1 : nn))
		fprintf(stderr, "st-mine: %zu pairs (%zu queries, corpus %zu): %zu examples written%s\n", npairs, nq,
			corpus.n, written, written < npairs * (size_t)(mine.ntuple ? 1 : nn) ?
			" (some pairs have fewer negatives: see --range-max, --range-min, the margins)" : "");
	free(row);
	free(rowlen);
	free(neg);
	free(neg_score);
	free(nneg);
	free(Q);
	free(C);
	free(pos_start);
	free(pos_ids);
	free(pq);
	free(pp);
	search_texts_free(&queries);
	search_texts_free(&corpus);
	return 0;
}

/* --communities: communities of E [n][d] (normalised here) as JSON arrays of ids, or of {"id", "text"}. */
static int run_communities(float *E, size_t n, int d, const search_texts *texts)
{
	search_normalize(E, n, d);
	int32_t *members;
	size_t *start;
	size_t nc = mining_communities(E, n, d, mine.threshold, (size_t)mine.min_size, &members, &start);
	for (size_t k = 0; k < nc; k++) {
		fputc('[', stdout);
		for (size_t i = start[k]; i < start[k + 1]; i++) {
			if (i > start[k])
				fputs(", ", stdout);
			if (texts) {
				printf("{\"id\": %d, \"text\": ", members[i]);
				search_write_json_string(stdout, texts->s[members[i]], texts->len[members[i]]);
				fputc('}', stdout);
			} else
				printf("%d", members[i]);
		}
		fputs("]\n", stdout);
		if (ferror(stdout))
			check_output();
	}
	check_output();
	free(members);
	free(start);
	return 0;
}

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
		case OPT_COMPUTE: enc_compute_option(optarg, usage); break;
		default: mine_option(c, optarg); break;
		}
	}
	if (argc - optind > 1)
		usage_error(usage, "one input file at most");
	if (optind < argc)
		file = argv[optind];
	if (!embeddings && !model_path)
		usage_error(usage, "give --model DIR, or --embeddings");
	if (mine.hard_negatives && (embeddings || mine.communities))
		usage_error(usage, "--hard-negatives needs --model (it writes texts), and not --communities");
	if (embeddings && mine.with_text)
		usage_error(usage, "--with-text needs the texts: --embeddings input has none");
	if (mine.corpus && !mine.hard_negatives)
		usage_error(usage, "--corpus goes with --hard-negatives");
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
	if (mine.hard_negatives)
		return run_hard_negatives(model_path, fd, name, (int)batch);
	char err[1024];
	search_texts t = { 0 };   /* the texts (kept for --with-text) */
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
		if (!f || search_read_lines(f, name, &t, 0, err, sizeof err) < 0)
			die(EX_DATAERR, "%s", err);
		n = t.n;
		d = model_dim(m);
		E = xmalloc(xmul(xmul(n + 1, d), sizeof(float)));
		if (search_encode(m, tok, (const char *const *)t.s, t.len, n, (int)batch, 0, E, err, sizeof err) < 0)
			die(EX_DATAERR, "%s: %s", name, err);
		tokenizer_free(tok);
		model_free(m);
	}
	double t1 = st_now();
	if (mine.communities) {
		run_communities(E, n, d, mine.with_text ? &t : NULL);
		search_texts_free(&t);
		free(E);
		return 0;
	}
	search_pair *pairs;
	size_t np = search_mine(E, n, d, sim, (int)top_k, (size_t)max_pairs, (size_t)chunk, &pairs);
	double t2 = st_now();
	if (getenv("ST_TIMING"))
		fprintf(stderr, "st-mine: %zu sentences: encode %.3f s, mine %.3f s, %zu pairs\n", n, t1 - t0, t2 - t1, np);
	for (size_t p = 0; p < np; p++) {
		printf("{\"score\": %.9g, \"i\": %d, \"j\": %d", search_clamp_cosine(pairs[p].score, sim), pairs[p].i,
		       pairs[p].j);
		if (mine.with_text) {
			fputs(", \"texts\": [", stdout);
			search_write_json_string(stdout, t.s[pairs[p].i], t.len[pairs[p].i]);
			fputs(", ", stdout);
			search_write_json_string(stdout, t.s[pairs[p].j], t.len[pairs[p].j]);
			fputc(']', stdout);
		}
		if (puts("}") < 0)
			break;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno == EPIPE)
			return 0;
		die(EX_IOERR, "writing the pairs: %s", strerror(errno));
	}
	free(pairs);
	free(E);
	search_texts_free(&t);
	return 0;
}
