/* st-eval: scores a model on labelled examples the way the sentence-transformers v3 evaluators do and prints
 * one JSON object of metrics, the primary metric last (docs/st-eval.md). Usable as st-step's --evaluator.
 * The evaluators are lib/eval.c; this is option parsing around eval_run. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "gemm_bf16.h"
#include "search.h"
#include "st.h"
#include "stream.h"

static const char usage[] =
	"usage: st-eval KIND [--model DIR | --embeddings] [options] < examples > metrics.json\n"
	"\n"
	"KIND: similarity (pairs + score: Pearson/Spearman), triplet (anchor, positive, negative: accuracy),\n"
	"binary (pairs + 0/1: accuracy, F1, AP, MCC with thresholds), ir (query, relevant document [, negatives]:\n"
	"accuracy/precision/recall/MRR/NDCG/MAP@k), paraphrase-mining (duplicate pairs: AP, F1),\n"
	"label-accuracy (pairs + class: the softmax classifier's accuracy), mse (source, target: teacher vs\n"
	"model, negative_mse), reranking ({query, positive: [...], negative: [...]}: map, mrr@k, ndcg@k),\n"
	"translation (source, target: src2trg/trg2src/mean_accuracy), sequential (several --eval, one score).\n"
	"Examples are {\"texts\": [...], \"label\": x} records (msgpack or JSON Lines) or datasets rows.\n"
	"\n"
	"  --model DIR                 the model (default: $ST_MODEL, which st-step sets for its evaluator);\n"
	"                              a Hub name works too (docs/hub.md)\n"
	"  --embeddings                read precomputed \"embeddings\" (per example [texts][dim], or batches\n"
	"                              [columns][rows][dim] with \"labels\") instead of encoding texts\n"
	"  --name NAME                 prefix of the metric names and of the CSV file\n"
	"  --output-dir DIR            append a row to DIR/<evaluator>_results.csv (the library's file names)\n"
	"  --epoch E, --steps S        the CSV's epoch and steps columns (default $ST_EPOCH and $ST_STEP when\n"
	"                              set, as st-step sets them for its evaluator; else -1)\n"
	"  --similarity-fn-names LIST  cosine,dot,euclidean,manhattan or all (default: the model's, cosine)\n"
	"  --batch-size N              texts per forward pass (default 32)\n"
	"  --margin X                  triplet: sim(a,p) must exceed sim(a,n) + X (default 0)\n"
	"  --corpus FILE               ir: more corpus documents (text lines or JSON with \"text\"; with\n"
	"                              --embeddings a record stream with \"embeddings\")\n"
	"  --mrr-at-k LIST             ir (default 10); also --ndcg-at-k (10), --accuracy-at-k (1,3,5,10),\n"
	"                              --precision-recall-at-k (1,3,5,10), --map-at-k (100)\n"
	"  --top-k K, --max-pairs N    paraphrase-mining (default 100, 500000)\n"
	"  --corpus-chunk-size N       paraphrase-mining (default 100000)\n"
	SEARCH_PROMPT_USAGE
	"  --classifier FILE           label-accuracy: st-loss softmax's classifier (a safetensors file)\n"
	"  --run DIR                   label-accuracy: the classifier DIR/loss-softmax.safetensors\n"
	"  --teacher DIR               mse: the model that encodes the source sentences\n"
	"  --at-k K                    reranking: k of mrr@k and ndcg@k (default 10)\n"
	"  --eval 'KIND [OPTIONS] [< FILE]'  sequential: one evaluator (repeat; split at blanks, no shell)\n"
	"  --main-score last|mean      sequential: the last evaluator's primary score (default) or the mean\n"
	"  --threads N                 threads (default all cores)\n"
	"  --compute float32|bf16      arithmetic of the encoder's projections: float32 (default) or bfloat16\n"
	"                              products with float32 sums (AVX512-BF16 CPUs; docs/encoder.md); a\n"
	"                              sequential --eval spec takes its own\n"
	"  --help                      this text\n";

int main(int argc, char **argv)
{
	st_tool_init("st-eval", argc, argv, usage);
	struct eval_opts o;
	eval_opts_init(&o);
	if (getenv("ST_EPOCH"))
		o.epoch = st_parse_long("ST_EPOCH", getenv("ST_EPOCH"));
	if (getenv("ST_STEP"))
		o.steps = st_parse_long("ST_STEP", getenv("ST_STEP"));
	o.model = getenv("ST_MODEL");
	const char *sims = NULL;
	long threads = 0;
	enum { O_MODEL = 256, O_EMBEDDINGS, O_NAME, O_OUTPUT_DIR, O_EPOCH, O_STEPS, O_SIMS, O_BATCH_SIZE, O_MARGIN,
	       O_CORPUS, O_MRR, O_NDCG, O_ACC, O_PR, O_MAP, O_TOP_K, O_MAX_PAIRS, O_CHUNK, O_THREADS,
	       O_CLASSIFIER, O_RUN, O_TEACHER, O_AT_K, O_EVAL, O_MAIN_SCORE, O_COMPUTE };
	static const struct option opts[] = {
		{"model", required_argument, 0, O_MODEL},
		{"embeddings", no_argument, 0, O_EMBEDDINGS},
		{"name", required_argument, 0, O_NAME},
		{"output-dir", required_argument, 0, O_OUTPUT_DIR},
		{"epoch", required_argument, 0, O_EPOCH},
		{"steps", required_argument, 0, O_STEPS},
		{"similarity-fn-names", required_argument, 0, O_SIMS},
		{"batch-size", required_argument, 0, O_BATCH_SIZE},
		{"margin", required_argument, 0, O_MARGIN},
		{"corpus", required_argument, 0, O_CORPUS},
		{"mrr-at-k", required_argument, 0, O_MRR},
		{"ndcg-at-k", required_argument, 0, O_NDCG},
		{"accuracy-at-k", required_argument, 0, O_ACC},
		{"precision-recall-at-k", required_argument, 0, O_PR},
		{"map-at-k", required_argument, 0, O_MAP},
		{"top-k", required_argument, 0, O_TOP_K},
		{"max-pairs", required_argument, 0, O_MAX_PAIRS},
		{"corpus-chunk-size", required_argument, 0, O_CHUNK},
		{"threads", required_argument, 0, O_THREADS},
		{"compute", required_argument, 0, O_COMPUTE},
		SEARCH_PROMPT_OPTIONS,
		{"classifier", required_argument, 0, O_CLASSIFIER},
		{"run", required_argument, 0, O_RUN},
		{"teacher", required_argument, 0, O_TEACHER},
		{"at-k", required_argument, 0, O_AT_K},
		{"eval", required_argument, 0, O_EVAL},
		{"main-score", required_argument, 0, O_MAIN_SCORE},
		{0},
	};
	int c;
	while ((c = st_getopt(argc, argv, opts, usage)) != -1)
		switch (c) {
		case O_MODEL: o.model = optarg; break;
		case O_EMBEDDINGS: o.embeddings = 1; break;
		case O_NAME: o.name = optarg; break;
		case O_OUTPUT_DIR: o.output_dir = optarg; break;
		case O_EPOCH: o.epoch = st_parse_long("--epoch", optarg); break;
		case O_STEPS: o.steps = st_parse_long("--steps", optarg); break;
		case O_SIMS: sims = optarg; break;
		case O_BATCH_SIZE: o.batch_size = (int)st_parse_long("--batch-size", optarg); break;
		case O_MARGIN: o.margin = st_parse_double("--margin", optarg); break;
		case O_CORPUS: o.corpus = optarg; break;
		case O_MRR: o.nmrr = eval_parse_klist("--mrr-at-k", optarg, o.mrr); break;
		case O_NDCG: o.nndcg = eval_parse_klist("--ndcg-at-k", optarg, o.ndcg); break;
		case O_ACC: o.nacc = eval_parse_klist("--accuracy-at-k", optarg, o.acc); break;
		case O_PR: o.npr = eval_parse_klist("--precision-recall-at-k", optarg, o.pr); break;
		case O_MAP: o.nmap = eval_parse_klist("--map-at-k", optarg, o.map); break;
		case O_TOP_K: o.top_k = (int)st_parse_long("--top-k", optarg); break;
		case O_MAX_PAIRS: o.max_pairs = (size_t)st_parse_long("--max-pairs", optarg); break;
		case O_CHUNK: o.corpus_chunk = (size_t)st_parse_long("--corpus-chunk-size", optarg); break;
		case SEARCH_OPT_PROMPT_NAME: search_prompt_option(optarg, NULL); break;
		case SEARCH_OPT_PROMPT: search_prompt_option(NULL, optarg); break;
		case O_THREADS: threads = st_parse_long("--threads", optarg); break;
		case O_COMPUTE: enc_compute_option(optarg, usage); break;
		case O_CLASSIFIER: o.classifier = optarg; break;
		case O_RUN: {
			char *path = xmalloc(strlen(optarg) + sizeof "/loss-softmax.safetensors");
			sprintf(path, "%s/loss-softmax.safetensors", optarg);
			o.classifier = path;
			break;
		}
		case O_TEACHER: o.teacher = optarg; break;
		case O_AT_K: o.at_k = (int)st_parse_long("--at-k", optarg); break;
		case O_EVAL:
			if (o.nevals == EVAL_MAXSEQ)
				usage_error(usage, "at most %d --eval", EVAL_MAXSEQ);
			o.evals[o.nevals++] = optarg;
			break;
		case O_MAIN_SCORE:
			if (strcmp(optarg, "last") && strcmp(optarg, "mean"))
				usage_error(usage, "--main-score is last or mean, not '%s'", optarg);
			o.main_mean = !strcmp(optarg, "mean");
			break;
		}
	if (optind == argc)
		usage_error(usage, "which evaluation? give KIND");
	if (optind + 1 < argc)
		usage_error(usage, "unexpected argument '%s'", argv[optind + 1]);
	int kind = eval_kind_parse(argv[optind]);
	if (kind < 0)
		usage_error(usage, "unknown KIND '%s'", argv[optind]);
	o.kind = (enum eval_kind)kind;
	o.self = "/proc/self/exe";   /* sequential runs each evaluator as this program */
	if (o.batch_size < 1 || o.at_k < 1 || o.top_k < 1 || o.max_pairs < 1 || o.corpus_chunk < 1)
		usage_error(usage, "--batch-size, --at-k, --top-k, --max-pairs and --corpus-chunk-size must be positive");
	st_set_threads((int)threads);
	if (sims && eval_sims_parse(&o, sims) < 0)
		usage_error(usage, "--similarity-fn-names: unknown similarity function in '%s'", sims);

	st_reader *in = st_reader_open(0, "stdin");
	struct eval_result r;
	eval_run(&o, in, "stdin", &r);
	st_reader_close(in);
	char *text = eval_result_json(&o, &r);
	if (printf("%s\n", text) < 0 || fflush(stdout) != 0) {
		if (errno == EPIPE)
			return 0;
		die(EX_IOERR, "writing the metrics: %s", strerror(errno));
	}
	free(text);
	eval_result_free(&r);
	return 0;
}
