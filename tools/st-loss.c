/* st-loss: a loss of sentence-transformers as a pipeline stage (docs/st-loss.md, docs/losses.md).
 * Reads batches carrying "embeddings" [columns][rows][dim] (and "labels"), writes them on with "loss"
 * and "grad" = dL/d(embeddings). Option parsing + a loop over records; the math is in lib/loss.c. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loss.h"
#include "optim.h"
#include "run.h"
#include "st.h"
#include "stream.h"

static const char usage[] =
	"usage: st-loss [--json] [--threads N] NAME [options] < batches > batches\n"
	"       st-loss matryoshka --dims 384,256,128,64 [--weights 1,1,1,1] -- NAME [options]\n"
	"\n"
	"Adds \"loss\" and \"grad\" (dL/d embeddings) to every batch. Losses and their options (defaults):\n"
	"  triplet                  --distance euclidean|cosine|manhattan (euclidean) --margin 5\n"
	"  mnrl, mnrl-symmetric     --scale 20 --similarity cosine|dot; columns after the 2nd are negatives\n"
	"  megabatch-margin         --positive-margin 0.8 --negative-margin 0.3 --mini-batch-size 50\n"
	"  contrastive              --distance (cosine) --margin 0.5 --size-average | --no-size-average\n"
	"  online-contrastive       --distance (cosine) --margin 0.5\n"
	"  softmax                  --num-labels N --run DIR [--no-]concatenation-sent-rep (on)\n"
	"                           [--no-]concatenation-sent-difference (on) [--no-]concatenation-sent-multiplication\n"
	"                           (off); the classifier trains with st-step's settings (RUN/training.json);\n"
	"                           options override them: --lr --weight-decay --scheduler --warmup-steps N|P%\n"
	"                           --max-grad-norm --seed; --no-train\n"
	"  cosine-similarity\n"
	"  cosent, angle            --scale 20\n"
	"  batch-hard-triplet, batch-semi-hard-triplet, batch-all-triplet\n"
	"                           --distance euclidean|cosine (euclidean) --margin 5\n"
	"  batch-hard-soft-margin-triplet  --distance euclidean|cosine\n"
	"  mse                      labels: teacher embeddings [rows][dim]\n"
	"  margin-mse               --similarity dot|cosine (dot); labels: teacher margins\n"
	"  matryoshka               --dims D1,D2,.. [--weights W1,W2,..] -- LOSS [its options]\n"
	"\n"
	"  --json          write JSON Lines instead of msgpack\n"
	"  --threads N     threads for OpenBLAS and the loss loops (default: all cores)\n"
	"  -h, --help      this text\n"
	"Exit status: 0 ok, 64 usage, 65 bad batch (wrong columns or labels, NaN or infinite loss), 74 I/O.\n";

/* Which options each loss takes. */
enum { O_DISTANCE = 1, O_MARGIN = 2, O_SCALE = 4, O_SIMILARITY = 8, O_MEGABATCH = 16, O_SIZE_AVERAGE = 32,
       O_SOFTMAX = 64, O_MATRYOSHKA = 128 };

static int takes(enum loss_kind k)
{
	switch (k) {
	case LOSS_TRIPLET: case LOSS_CONTRASTIVE: case LOSS_ONLINE_CONTRASTIVE:
	case LOSS_BATCH_HARD_TRIPLET: case LOSS_BATCH_SEMI_HARD_TRIPLET: case LOSS_BATCH_ALL_TRIPLET:
		return O_DISTANCE | O_MARGIN | (k == LOSS_CONTRASTIVE ? O_SIZE_AVERAGE : 0);
	case LOSS_BATCH_HARD_SOFT_MARGIN_TRIPLET: return O_DISTANCE;
	case LOSS_MNRL: case LOSS_MNRL_SYMMETRIC: return O_SCALE | O_SIMILARITY;
	case LOSS_MEGABATCH_MARGIN: return O_MEGABATCH;
	case LOSS_SOFTMAX: return O_SOFTMAX;
	case LOSS_COSENT: case LOSS_ANGLE: return O_SCALE;
	case LOSS_MARGIN_MSE: return O_SIMILARITY;
	case LOSS_MATRYOSHKA: return O_MATRYOSHKA;
	default: return 0;
	}
}

/* Tool-level settings, shared by the loss options parser. */
static struct {
	int json;
	const char *run;
	optim_config optim;
	enum optim_sched sched;
	const char *warmup;
	double max_grad_norm;
	long seed;
	int train;
	unsigned given;
	int64_t steps;    /* st-step --steps (0: the batches' "steps") */   /* G_* bits: set on the command line; the others come from RUN/training.json */
} tool = { 0, NULL, { 0 }, OPTIM_WARMUPLINEAR, "0", 1.0, 42, 1, 0, 0 };

enum { G_LR = 1, G_WD = 2, G_SCHED = 4, G_WARMUP = 8, G_MAXNORM = 16, G_SEED = 32 };

/* The classifier's optimizer settings: those st-step wrote to the run, unless given here. */
static void settings_from_run(void)
{
	run_settings rs;
	char err[512];
	int rc = run_settings_read(tool.run, &rs, err, sizeof err);
	if (rc < 0)
		die(EX_DATAERR, "%s", err);
	if (rc > 0)   /* no st-step in this run (tests of the loss alone): the defaults, which are st-step's */
		return;
	optim_config c;
	optim_config_default(&c, strcmp(rs.optimizer, "adamw-hf") ? OPTIM_ADAMW : OPTIM_ADAMW_HF);
	c.eps = rs.eps;
	c.lr = tool.given & G_LR ? tool.optim.lr : rs.lr;
	c.weight_decay = tool.given & G_WD ? tool.optim.weight_decay : rs.weight_decay;
	tool.optim = c;
	if (!(tool.given & G_SCHED) && optim_sched_parse(rs.scheduler, &tool.sched))
		die(EX_DATAERR, "%s/training.json: unknown scheduler %s", tool.run, rs.scheduler);
	if (!(tool.given & G_WARMUP))
		tool.warmup = xstrdup(rs.warmup);
	if (!(tool.given & G_MAXNORM))
		tool.max_grad_norm = rs.max_grad_norm;
	if (!(tool.given & G_SEED))
		tool.seed = (long)rs.seed;
	tool.steps = rs.steps;
}

static int parse_list(const char *opt, const char *s, double *out, int max)
{
	int n = 0;
	char *copy = xstrdup(s), *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == max)
			usage_error(usage, "%s takes at most %d values", opt, max);
		out[n++] = st_parse_double(opt, tok);
	}
	free(copy);
	if (!n)
		usage_error(usage, "%s needs a comma-separated list", opt);
	return n;
}

/* Parses NAME [options] from argv[*i]; stops at the end or at "--" (matryoshka's inner loss follows). */
/* Every option of every loss (takes() says which loss has which); val = 256 + index, for the name. */
static const struct option loss_options[] = {
	{ "json", no_argument, 0, 256 }, { "threads", required_argument, 0, 257 },
	{ "distance", required_argument, 0, 258 }, { "margin", required_argument, 0, 259 },
	{ "scale", required_argument, 0, 260 }, { "similarity", required_argument, 0, 261 },
	{ "positive-margin", required_argument, 0, 262 }, { "negative-margin", required_argument, 0, 263 },
	{ "mini-batch-size", required_argument, 0, 264 }, { "size-average", no_argument, 0, 265 },
	{ "no-size-average", no_argument, 0, 266 }, { "num-labels", required_argument, 0, 267 },
	{ "concatenation-sent-rep", no_argument, 0, 268 }, { "no-concatenation-sent-rep", no_argument, 0, 269 },
	{ "concatenation-sent-difference", no_argument, 0, 270 },
	{ "no-concatenation-sent-difference", no_argument, 0, 271 },
	{ "concatenation-sent-multiplication", no_argument, 0, 272 },
	{ "no-concatenation-sent-multiplication", no_argument, 0, 273 },
	{ "run", required_argument, 0, 274 }, { "lr", required_argument, 0, 275 },
	{ "weight-decay", required_argument, 0, 276 }, { "scheduler", required_argument, 0, 277 },
	{ "warmup-steps", required_argument, 0, 278 }, { "max-grad-norm", required_argument, 0, 279 },
	{ "seed", required_argument, 0, 280 }, { "no-train", no_argument, 0, 281 },
	{ "dims", required_argument, 0, 282 }, { "weights", required_argument, 0, 283 }, { 0 } };

/* Parses NAME [options] [-- NAME [options]] (argv[0] is NAME; matryoshka's inner loss follows "--"). */
static void parse_loss(int argc, char **argv, loss_opts *o, int inner)
{
	if (argc < 1)
		usage_error(usage, inner ? "matryoshka needs a loss after --" : "which loss? (NAME missing)");
	const char *name = argv[0];
	int kind = loss_kind_parse(name);
	if (kind < 0)
		usage_error(usage, "unknown loss '%s'", name);
	if (inner && (kind == LOSS_MATRYOSHKA || kind == LOSS_SOFTMAX))
		usage_error(usage, "matryoshka cannot wrap %s", name);
	loss_opts_default(o, kind);
	int t = takes(kind), nweights = 0;
	double dims[LOSS_MAX_DIMS];
	optind = 1;   /* a new argument vector: getopt starts over at its first option */
	int c;
	char a[64];
	while ((c = st_getopt(argc, argv, loss_options, usage)) != -1) {
		snprintf(a, sizeof a, "--%s", loss_options[c - 256].name);
		int need = 0;
#define IS(s) (!strcmp(a, s))
		if (IS("--json")) {
			tool.json = 1;
		} else if (IS("--threads")) {
			st_set_threads((int)st_parse_long(a, optarg));
		} else if (IS("--distance")) {
			need = O_DISTANCE;
			const char *v = optarg;
			if (!strcmp(v, "euclidean"))
				o->distance = LOSS_EUCLIDEAN;
			else if (!strcmp(v, "cosine"))
				o->distance = LOSS_COSINE;
			else if (!strcmp(v, "manhattan") && (kind == LOSS_TRIPLET || kind == LOSS_CONTRASTIVE ||
							    kind == LOSS_ONLINE_CONTRASTIVE))
				o->distance = LOSS_MANHATTAN;
			else
				usage_error(usage, "%s: unknown --distance '%s'", name, v);
		} else if (IS("--margin")) {
			need = O_MARGIN, o->margin = st_parse_double(a, optarg);
		} else if (IS("--scale")) {
			need = O_SCALE, o->scale = st_parse_double(a, optarg);
		} else if (IS("--similarity")) {
			need = O_SIMILARITY;
			const char *v = optarg;
			if (!strcmp(v, "cosine"))
				o->similarity = LOSS_SIM_COSINE;
			else if (!strcmp(v, "dot"))
				o->similarity = LOSS_SIM_DOT;
			else
				usage_error(usage, "%s: unknown --similarity '%s' (cosine or dot)", name, v);
		} else if (IS("--positive-margin")) {
			need = O_MEGABATCH, o->positive_margin = st_parse_double(a, optarg);
		} else if (IS("--negative-margin")) {
			need = O_MEGABATCH, o->negative_margin = st_parse_double(a, optarg);
		} else if (IS("--mini-batch-size")) {
			need = O_MEGABATCH, o->mini_batch_size = (int)st_parse_long(a, optarg);
			if (o->mini_batch_size < 1)
				usage_error(usage, "--mini-batch-size must be at least 1");
		} else if (IS("--size-average") || IS("--no-size-average")) {
			need = O_SIZE_AVERAGE, o->size_average = IS("--size-average");
		} else if (IS("--num-labels")) {
			need = O_SOFTMAX, o->num_labels = (int)st_parse_long(a, optarg);
			if (o->num_labels < 2)
				usage_error(usage, "--num-labels must be at least 2");
		} else if (IS("--concatenation-sent-rep") || IS("--no-concatenation-sent-rep")) {
			need = O_SOFTMAX, o->cat_rep = a[2] != 'n';
		} else if (IS("--concatenation-sent-difference") || IS("--no-concatenation-sent-difference")) {
			need = O_SOFTMAX, o->cat_diff = a[2] != 'n';
		} else if (IS("--concatenation-sent-multiplication") || IS("--no-concatenation-sent-multiplication")) {
			need = O_SOFTMAX, o->cat_mul = a[2] != 'n';
		} else if (IS("--run")) {
			need = O_SOFTMAX, tool.run = optarg;
		} else if (IS("--lr")) {
			tool.given |= G_LR;
			need = O_SOFTMAX, tool.optim.lr = st_parse_double(a, optarg);
		} else if (IS("--weight-decay")) {
			tool.given |= G_WD;
			need = O_SOFTMAX, tool.optim.weight_decay = st_parse_double(a, optarg);
		} else if (IS("--scheduler")) {
			need = O_SOFTMAX, tool.given |= G_SCHED;
			const char *v = optarg;
			if (optim_sched_parse(v, &tool.sched))
				usage_error(usage, "unknown --scheduler '%s'", v);
		} else if (IS("--warmup-steps")) {
			tool.given |= G_WARMUP;
			need = O_SOFTMAX, tool.warmup = optarg;
			int64_t w;
			if (optim_parse_warmup(tool.warmup, 100, &w))
				usage_error(usage, "--warmup-steps takes a number of steps or a percentage, not '%s'", tool.warmup);
		} else if (IS("--max-grad-norm")) {
			tool.given |= G_MAXNORM;
			need = O_SOFTMAX, tool.max_grad_norm = st_parse_double(a, optarg);
		} else if (IS("--seed")) {
			tool.given |= G_SEED;
			need = O_SOFTMAX, tool.seed = st_parse_long(a, optarg);
		} else if (IS("--no-train")) {
			need = O_SOFTMAX, tool.train = 0;
		} else if (IS("--dims")) {
			need = O_MATRYOSHKA, o->ndims = parse_list(a, optarg, dims, LOSS_MAX_DIMS);
		} else if (IS("--weights")) {
			need = O_MATRYOSHKA, nweights = parse_list(a, optarg, o->weights, LOSS_MAX_DIMS);
		} else {
			usage_error(usage, "unknown option '%s' for %s", a, name);
		}
#undef IS
		if (need && !(t & need))
			usage_error(usage, "%s has no option %s", name, a);
	}
	if (optind > 1 && !strcmp(argv[optind - 1], "--")) {
		if (kind != LOSS_MATRYOSHKA)
			usage_error(usage, "'--' only follows matryoshka's options");
		int at = optind;
		o->inner = xcalloc(1, sizeof *o->inner);
		parse_loss(argc - at, argv + at, o->inner, 1);
	} else if (optind < argc)
		usage_error(usage, "unexpected argument '%s' after %s's options", argv[optind], name);
	if (kind == LOSS_SOFTMAX && !o->num_labels)
		usage_error(usage, "softmax needs --num-labels");
	if (kind == LOSS_SOFTMAX && !o->cat_rep && !o->cat_diff && !o->cat_mul)
		usage_error(usage, "softmax needs at least one of the concatenation options");
	if (kind == LOSS_MATRYOSHKA) {
		if (!o->ndims)
			usage_error(usage, "matryoshka needs --dims");
		if (!o->inner)
			usage_error(usage, "matryoshka needs '-- LOSS [options]' after its own options");
		if (nweights && nweights != o->ndims)
			usage_error(usage, "matryoshka: %d weights for %d dims", nweights, o->ndims);
		for (int m = 0; m < o->ndims; m++) {
			if (dims[m] < 1 || dims[m] != (int)dims[m])
				usage_error(usage, "matryoshka: --dims takes positive whole numbers, not %g", dims[m]);
			o->dims[m] = (int)dims[m];
			if (!nweights)
				o->weights[m] = 1;
		}
		/* dims descending, weights permuted along (insertion sort keeps equal dims in order) */
		for (int m = 1; m < o->ndims; m++)
			for (int k = m; k > 0 && o->dims[k] > o->dims[k - 1]; k--) {
				int d = o->dims[k];
				double w = o->weights[k];
				o->dims[k] = o->dims[k - 1], o->weights[k] = o->weights[k - 1];
				o->dims[k - 1] = d, o->weights[k - 1] = w;
			}
	}
}

/* The labels of a batch as float32 [B] or [B][K]; NULL when absent. Dies naming the loss when they are not
 * a tensor with one row per batch row. */
/* A batch-*-triplet batch needs an anchor with a positive (same label, another row) and a negative (another
 * label); without one its loss and gradient are zero, which a user sees as a model that does not learn. */
static int is_batch_triplet(const loss_opts *o)
{
	if (o->kind == LOSS_MATRYOSHKA && o->inner)
		o = o->inner;
	return o->kind == LOSS_BATCH_HARD_TRIPLET || o->kind == LOSS_BATCH_HARD_SOFT_MARGIN_TRIPLET ||
	       o->kind == LOSS_BATCH_SEMI_HARD_TRIPLET || o->kind == LOSS_BATCH_ALL_TRIPLET;
}

static int has_valid_triplet(const float *y, int B)
{
	int pair = 0, two_labels = 0;
	for (int i = 0; i < B && !(pair && two_labels); i++)
		for (int j = i + 1; j < B; j++) {
			if (y[i] == y[j])
				pair = 1;
			else
				two_labels = 1;
		}
	return pair && two_labels;
}

static float *read_labels(const st_val *rec, const char *loss, int B, loss_batch *b, const char *where)
{
	st_val *v = st_get(rec, "labels");
	b->labels = NULL, b->label_ndim = 0, b->K = 0;
	if (!v || v->type == ST_NIL)
		return NULL;
	if (v->type != ST_TENSOR || (v->t.ndim != 1 && v->t.ndim != 2) || v->t.shape[0] != B)
		die(EX_DATAERR, "%s: \"labels\" must be a number tensor [rows] or [rows][K] with %d rows (%s)", loss, B,
		    where);
	const st_tensor *t = &v->t;
	float *out = xmalloc(xmul(t->count ? t->count : 1, sizeof(float)));
	for (size_t k = 0; k < t->count; k++)
		switch (t->dtype) {
		case ST_F32: out[k] = ((float *)t->data)[k]; break;
		case ST_F64: out[k] = (float)((double *)t->data)[k]; break;
		case ST_I32: out[k] = (float)((int32_t *)t->data)[k]; break;
		case ST_I64: out[k] = (float)((int64_t *)t->data)[k]; break;
		case ST_U8: out[k] = ((uint8_t *)t->data)[k]; break;
		}
	b->labels = out;
	b->label_ndim = t->ndim;
	b->K = t->ndim == 2 ? (int)t->shape[1] : 1;
	return out;
}

/* Collapse watch (docs/st-loss.md, "WARNINGS"): batch-hard-triplet in large PK batches can move every
 * embedding to one point, where its loss is lowest, and nothing in the stream looks wrong. The sign is the mean
 * pairwise cosine of a batch's embedding rows (all columns) near 1, kept up over COLLAPSE_WINDOW batches.
 * 0.996, not 0.999: dropout (on while training) keeps a collapsed model's batches at 0.998, where the same
 * model gives 0.9997 without it; healthy TREC runs peaked at 0.9947 (docs/st-loss.md has the runs). */
#define COLLAPSE_WINDOW 20
#define COLLAPSE_COSINE 0.996

/* Mean over i < j of cos(e_i, e_j) of the n rows of E [n][D]; rows of norm 0 have no direction and are left
 * out. With u_i = e_i / |e_i| and s = sum u_i, |s|^2 = m + 2 sum_{i<j} cos, so the mean is
 * (|s|^2 - m) / (m (m - 1)) over the m rows kept: O(n D). NAN when fewer than 2 rows are kept. */
static double mean_pairwise_cosine(const float *E, size_t n, int D, double *sum /* [D] scratch */)
{
	size_t m = 0;
	memset(sum, 0, sizeof(double) * D);
	for (size_t i = 0; i < n; i++) {
		const float *e = E + i * D;
		double norm2 = 0;
		for (int d = 0; d < D; d++)
			norm2 += (double)e[d] * e[d];
		if (!(norm2 > 0) || !isfinite(norm2))
			continue;
		double inv = 1 / sqrt(norm2);
		for (int d = 0; d < D; d++)
			sum[d] += e[d] * inv;
		m++;
	}
	if (m < 2)
		return NAN;
	double s2 = 0;
	for (int d = 0; d < D; d++)
		s2 += sum[d] * sum[d];
	return (s2 - (double)m) / ((double)m * (double)(m - 1));
}

/* The last COLLAPSE_WINDOW batches' values (batches without one are skipped), a ring; sum is
 * mean_pairwise_cosine's scratch. */
static struct {
	double cos[COLLAPSE_WINDOW];
	long batch[COLLAPSE_WINDOW], step[COLLAPSE_WINDOW];   /* step -1: the batch had none */
	int n, next, warned;
	double *sum;
	int sum_dim;
} watch;

static void collapse_warn(const char *loss, int n)
{
	double mean = 0;
	int first = (watch.next - n + COLLAPSE_WINDOW) % COLLAPSE_WINDOW;
	int last = (watch.next - 1 + COLLAPSE_WINDOW) % COLLAPSE_WINDOW;
	for (int k = 0; k < n; k++)
		mean += watch.cos[(first + k) % COLLAPSE_WINDOW];
	mean /= n;
	if (mean < COLLAPSE_COSINE)
		return;
	char steps[64] = "";
	if (watch.step[first] >= 0 && watch.step[last] >= 0)
		snprintf(steps, sizeof steps, " (steps %ld-%ld)", watch.step[first], watch.step[last]);
	fprintf(stderr, "st-loss: %s: warning: the embeddings have collapsed: mean cosine between a batch's texts "
		"%.4f over batches %ld-%ld%s; the model is putting every text at one point (docs/st-loss.md, "
		"WARNINGS; for batch-hard-triplet, smaller PK batches: docs/training.md, \"Single texts with a "
		"class\")\n", loss, mean, watch.batch[first], watch.batch[last], steps);
	watch.warned = 1;
}

/* Adds the value of a batch's n embedding rows E [n][D]; warns once when the last COLLAPSE_WINDOW values
 * average COLLAPSE_COSINE or more. Nothing is computed once it has warned. */
static void collapse_watch(const char *loss, const float *E, size_t n, int D, long batch, long step)
{
	if (watch.warned || D <= 0)
		return;
	if (D > watch.sum_dim) {
		free(watch.sum);
		watch.sum = xmalloc(xmul(D, sizeof(double)));
		watch.sum_dim = D;
	}
	double cos = mean_pairwise_cosine(E, n, D, watch.sum);
	if (isnan(cos))
		return;
	watch.cos[watch.next] = cos, watch.batch[watch.next] = batch, watch.step[watch.next] = step;
	watch.next = (watch.next + 1) % COLLAPSE_WINDOW;
	if (watch.n < COLLAPSE_WINDOW)
		watch.n++;
	if (watch.n == COLLAPSE_WINDOW)
		collapse_warn(loss, COLLAPSE_WINDOW);
}

/* At the end of a run shorter than the window: judged over all its batches. */
static void collapse_watch_end(const char *loss)
{
	if (!watch.warned && watch.n > 0 && watch.n < COLLAPSE_WINDOW)
		collapse_warn(loss, watch.n);
	free(watch.sum);
	watch.sum = NULL;
	watch.sum_dim = 0;
}

int main(int argc, char **argv)
{
	st_tool_init("st-loss", argc, argv, usage);
	optim_config_default(&tool.optim, OPTIM_ADAMW);
	/* tool options before NAME; getopt must stop at NAME, not move it (POSIXLY_CORRECT while parsing) */
	setenv("POSIXLY_CORRECT", "1", 1);
	static const struct option tool_options[] = {
		{ "json", no_argument, 0, 256 }, { "threads", required_argument, 0, 257 }, { 0 } };
	int c;
	while ((c = st_getopt(argc, argv, tool_options, usage)) != -1) {
		if (c == 256)
			tool.json = 1;
		else
			st_set_threads((int)st_parse_long("--threads", optarg));
	}
	int at = optind;
	loss_opts opts;
	parse_loss(argc - at, argv + at, &opts, 0);
	unsetenv("POSIXLY_CORRECT");
	const char *name = loss_name(opts.kind);
	if (opts.kind == LOSS_SOFTMAX && !tool.run)
		usage_error(usage, "softmax keeps its classifier in a run directory: give --run DIR");
	if (tool.run && mkdir(tool.run, 0777) && errno != EEXIST)
		die(EX_CANTCREAT, "cannot create run directory %s: %s", tool.run, strerror(errno));

	st_reader *in = st_reader_open(0, "stdin");
	st_writer *out = st_writer_open(1, tool.json);
	loss_softmax_state *sm = NULL;
	float *grad = NULL;
	size_t grad_cap = 0;
	st_val *rec;
	char err[512], where[128];
	long batches = 0, no_triplet = 0;   /* batch-*-triplet batches without a valid triplet, warned at the end */
	while ((rec = st_read(in))) {
		const char *kind = st_get_str(rec, "kind");
		if ((!kind || strcmp(kind, "batch")) && st_get(rec, "embeddings"))
			die(EX_DATAERR, "%s: a record with \"embeddings\" but %s%s%s: batches carry \"kind\": \"batch\" "
			    "(st-batch writes it; add it to batches made by hand) (stdin, %s)", name,
			    kind ? "\"kind\": \"" : "no \"kind\"", kind ? kind : "", kind ? "\"" : "", st_reader_where(in));
		if (!kind || strcmp(kind, "batch")) {   /* logs and other records pass through */
			st_write(out, rec);
			st_free(rec);
			continue;
		}
		snprintf(where, sizeof where, "stdin, %s", st_reader_where(in));
		st_val *ev = st_get(rec, "embeddings");
		if (!ev)
			die(EX_DATAERR, "%s: batch has no \"embeddings\" (st-loss reads the output of st-forward) (%s)", name, where);
		if (ev->type != ST_TENSOR || ev->t.dtype != ST_F32 || ev->t.ndim != 3)
			die(EX_DATAERR, "%s: \"embeddings\" must be a float32 tensor [columns][rows][dim] (%s)", name, where);
		const st_tensor *E = &ev->t;
		loss_batch b = { (int)E->shape[0], (int)E->shape[1], (int)E->shape[2], E->data, NULL, 0, 0 };
		float *labels = read_labels(rec, name, b.B, &b, where);
		if (opts.kind == LOSS_SOFTMAX && !sm && b.D > 0) {
			/* read now: the batch came through st-forward --run, so st-step has written its settings */
			settings_from_run();
			sm = loss_softmax_open(tool.run, opts.num_labels, loss_softmax_in(&opts, b.D), (uint64_t)tool.seed,
					       &tool.optim, err, sizeof err);
			if (!sm)
				die(EX_DATAERR, "%s", err);
		}
		if (loss_check(&opts, &b, sm ? &sm->cls : NULL, err, sizeof err))
			die(EX_DATAERR, "%s (%s)", err, where);
		if (E->count > grad_cap) {
			free(grad);
			grad_cap = E->count;
			grad = xmalloc(xmul(grad_cap, sizeof(float)));
		}
		double step = -1, steps = 0;
		int has_step = st_get_num(rec, "step", &step) == 0;
		st_get_num(rec, "steps", &steps);
		double L = loss_eval(&opts, &b, sm ? &sm->cls : NULL, grad);
		batches++;
		if (is_batch_triplet(&opts) && b.labels && !has_valid_triplet(b.labels, b.B))
			no_triplet++;
		int finite = isfinite(L);
		for (size_t k = 0; finite && k < E->count; k++)
			finite = isfinite(grad[k]);
		if (!finite) {
			char st[32] = "?";
			if (has_step)
				snprintf(st, sizeof st, "%.0f", step);
			die(EX_DATAERR, "%s: the %s at step %s is %s; batch not passed on (%s)", name,
			    isfinite(L) ? "gradient" : "loss", st, isnan(L) ? "NaN" : isfinite(L) ? "not finite" : "infinite",
			    where);
		}
		if (sm && tool.train && has_step) {
			int64_t w;
			if (tool.steps > 0)
				steps = (double)tool.steps;
			if (optim_parse_warmup(tool.warmup, (int64_t)steps, &w))
				w = 0;
			double lr = tool.optim.lr * optim_sched_lambda(tool.sched, (int64_t)step, w, (int64_t)steps);
			loss_softmax_update(sm, (int64_t)step, lr, tool.max_grad_norm);
			if (loss_softmax_save(sm, err, sizeof err))
				die(EX_IOERR, "%s", err);
		}
		collapse_watch(name, E->data, (size_t)b.C * b.B, b.D, batches, has_step ? (long)step : -1);
		st_val *g = st_tensor_new(ST_F32, 3, E->shape);
		memcpy(g->t.data, grad, E->count * sizeof(float));
		st_set(rec, "loss", st_float(L));
		st_set(rec, "grad", g);
		st_write(out, rec);
		st_free(rec);
		free(labels);
	}
	collapse_watch_end(name);
	if (no_triplet)
		fprintf(stderr, "st-loss: %s: warning: %ld of %ld batches had no valid triplet (no two examples of one "
			"label, or a single label), so their loss and gradient were zero; batch with st-batch --sampler "
			"group-by-label\n", name, no_triplet, batches);
	loss_softmax_close(sm);
	loss_opts_free_inner(&opts);
	free(grad);
	st_writer_close(out);
	st_reader_close(in);
	return 0;
}
