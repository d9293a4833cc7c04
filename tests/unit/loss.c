/* Finite-difference checks of every loss in lib/loss.c, plus the batch checks' messages.
 * The gradient of each loss is compared with central differences of the loss value on random batches. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loss.h"
#include "st.h"
#include "tap.h"

static uint64_t rng_state = 12345;
static double urand(void)   /* splitmix64 -> [0, 1) */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}
static double nrand(void)
{
	double u = urand() + 1e-12, v = urand();
	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

enum { LAB_NONE, LAB_BINARY, LAB_SCORE, LAB_CLASS, LAB_TEACHER, LAB_MARGIN };

typedef struct fd_case {
	const char *what;
	const char *name;
	int C, B, D, labels;
	void (*tweak)(loss_opts *o);
} fd_case;

static void euclid(loss_opts *o) { o->distance = LOSS_EUCLIDEAN; }
static void cosine(loss_opts *o) { o->distance = LOSS_COSINE; }
static void manhattan(loss_opts *o) { o->distance = LOSS_MANHATTAN; }
static void dot(loss_opts *o) { o->similarity = LOSS_SIM_DOT; o->scale = 1; }
static void simcos(loss_opts *o) { o->similarity = LOSS_SIM_COSINE; }
static void small_margin(loss_opts *o) { o->margin = 1; }
static void cos_small_margin(loss_opts *o) { o->distance = LOSS_COSINE; o->margin = 0.5; }
static void sum(loss_opts *o) { o->size_average = 0; }
static void mb4(loss_opts *o) { o->mini_batch_size = 4; }
static void mul(loss_opts *o) { o->cat_mul = 1; }
static void scale5(loss_opts *o) { o->scale = 5; }

static loss_opts inner_opts;
static void matryoshka_mnrl(loss_opts *o)
{
	loss_opts_default(&inner_opts, LOSS_MNRL);
	o->inner = &inner_opts;
	o->ndims = 3;
	o->dims[0] = 16, o->dims[1] = 8, o->dims[2] = 4;
	o->weights[0] = 1, o->weights[1] = 0.5, o->weights[2] = 2;
}
static void matryoshka_mse(loss_opts *o)
{
	matryoshka_mnrl(o);
	loss_opts_default(&inner_opts, LOSS_MSE);
}

static const fd_case cases[] = {
	{ "triplet euclidean", "triplet", 3, 6, 8, LAB_NONE, euclid },
	{ "triplet cosine", "triplet", 3, 6, 8, LAB_NONE, cos_small_margin },
	{ "triplet manhattan", "triplet", 3, 6, 8, LAB_NONE, manhattan },
	{ "mnrl cosine", "mnrl", 2, 7, 8, LAB_NONE, NULL },
	{ "mnrl with 2 negative columns", "mnrl", 4, 5, 8, LAB_NONE, NULL },
	{ "mnrl dot", "mnrl", 3, 6, 8, LAB_NONE, dot },
	{ "mnrl-symmetric", "mnrl-symmetric", 2, 6, 8, LAB_NONE, NULL },
	{ "mnrl-symmetric with a negative column", "mnrl-symmetric", 3, 6, 8, LAB_NONE, scale5 },
	{ "megabatch-margin", "megabatch-margin", 2, 10, 8, LAB_NONE, NULL },
	{ "megabatch-margin mini-batches of 4", "megabatch-margin", 2, 10, 8, LAB_NONE, mb4 },
	{ "contrastive cosine", "contrastive", 2, 8, 8, LAB_BINARY, NULL },
	{ "contrastive euclidean sum", "contrastive", 2, 8, 8, LAB_BINARY, sum },
	{ "contrastive manhattan", "contrastive", 2, 8, 8, LAB_BINARY, manhattan },
	{ "online-contrastive", "online-contrastive", 2, 12, 8, LAB_BINARY, NULL },
	{ "online-contrastive euclidean", "online-contrastive", 2, 12, 8, LAB_BINARY, euclid },
	{ "softmax", "softmax", 2, 8, 6, LAB_CLASS, NULL },
	{ "softmax with multiplication", "softmax", 2, 8, 6, LAB_CLASS, mul },
	{ "cosine-similarity", "cosine-similarity", 2, 8, 8, LAB_SCORE, NULL },
	{ "cosent", "cosent", 2, 8, 8, LAB_SCORE, NULL },
	{ "angle", "angle", 2, 8, 8, LAB_SCORE, NULL },
	{ "batch-hard-triplet euclidean", "batch-hard-triplet", 1, 10, 8, LAB_CLASS, small_margin },
	{ "batch-hard-triplet cosine", "batch-hard-triplet", 1, 10, 8, LAB_CLASS, cos_small_margin },
	{ "batch-hard-soft-margin-triplet", "batch-hard-soft-margin-triplet", 1, 10, 8, LAB_CLASS, NULL },
	{ "batch-hard-soft-margin-triplet cosine", "batch-hard-soft-margin-triplet", 1, 10, 8, LAB_CLASS, cosine },
	{ "batch-semi-hard-triplet", "batch-semi-hard-triplet", 1, 10, 8, LAB_CLASS, small_margin },
	{ "batch-semi-hard-triplet cosine", "batch-semi-hard-triplet", 1, 10, 8, LAB_CLASS, cos_small_margin },
	{ "batch-all-triplet", "batch-all-triplet", 1, 10, 8, LAB_CLASS, small_margin },
	{ "batch-all-triplet cosine", "batch-all-triplet", 1, 10, 8, LAB_CLASS, cos_small_margin },
	{ "mse", "mse", 2, 5, 8, LAB_TEACHER, NULL },
	{ "margin-mse dot", "margin-mse", 3, 6, 8, LAB_MARGIN, NULL },
	{ "margin-mse cosine, 2 negatives", "margin-mse", 4, 6, 8, LAB_MARGIN, simcos },
	{ "matryoshka of mnrl", "matryoshka", 2, 6, 16, LAB_NONE, matryoshka_mnrl },
	{ "matryoshka of mse", "matryoshka", 1, 6, 16, LAB_TEACHER, matryoshka_mse },
};

static double eval_at(const loss_opts *o, loss_batch *b, loss_classifier *cls, float *scratch)
{
	return loss_eval(o, b, cls, scratch);
}

static void run_case(const fd_case *fc)
{
	loss_opts o;
	loss_opts_default(&o, loss_kind_parse(fc->name));
	o.num_labels = 3;
	if (fc->tweak)
		fc->tweak(&o);
	int C = fc->C, B = fc->B, D = fc->D;
	size_t n = (size_t)C * B * D;
	float *E = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float)), *tmp = malloc(n * sizeof(float));
	for (size_t k = 0; k < n; k++)
		E[k] = (float)nrand();
	int K = fc->labels == LAB_TEACHER ? D : fc->labels == LAB_MARGIN ? C - 2 : 1;
	float *lab = malloc((size_t)B * K * sizeof(float));
	for (int i = 0; i < B * K; i++)
		switch (fc->labels) {
		case LAB_BINARY: lab[i] = i % 2 ? 1.0f : (float)(urand() < 0.5); break;
		case LAB_SCORE: lab[i] = (float)urand(); break;
		case LAB_CLASS: lab[i] = (float)(int)(urand() * 3); break;
		case LAB_TEACHER: lab[i] = (float)nrand(); break;
		case LAB_MARGIN: lab[i] = (float)nrand(); break;
		default: lab[i] = 0;
		}
	loss_batch b = { C, B, D, E, fc->labels == LAB_NONE ? NULL : lab, fc->labels == LAB_NONE ? 0 :
			 (fc->labels == LAB_TEACHER || (fc->labels == LAB_MARGIN && K > 1)) ? 2 : 1, K };
	loss_classifier cls = { 0 }, *pc = NULL;
	if (o.kind == LOSS_SOFTMAX) {
		cls.num_labels = o.num_labels;
		cls.in = loss_softmax_in(&o, D);
		cls.W = malloc(cls.num_labels * cls.in * sizeof(float));
		cls.b = malloc(cls.num_labels * sizeof(float));
		cls.dW = malloc(cls.num_labels * cls.in * sizeof(float));
		cls.db = malloc(cls.num_labels * sizeof(float));
		for (int k = 0; k < cls.num_labels * cls.in; k++)
			cls.W[k] = (float)(nrand() * 0.5);
		for (int k = 0; k < cls.num_labels; k++)
			cls.b[k] = (float)(nrand() * 0.5);
		pc = &cls;
	}
	char err[256];
	if (!ok(loss_check(&o, &b, pc, err, sizeof err) == 0, "%s: batch passes the check", fc->what)) {
		printf("#   %s\n", err);
		return;
	}
	double L = loss_eval(&o, &b, pc, g);
	ok(isfinite(L) && L > 0, "%s: loss %g is finite and positive", fc->what, L);
	double gmax = 0;
	for (size_t k = 0; k < n; k++)
		if (fabs(g[k]) > gmax)
			gmax = fabs(g[k]);
	/* central differences on every coordinate (the batches are small) */
	double h = 1e-3, worst = 0;
	size_t at = 0;
	for (size_t k = 0; k < n; k++) {
		float keep = E[k];
		E[k] = keep + (float)h;
		double lp = eval_at(&o, &b, pc, tmp);
		E[k] = keep - (float)h;
		double lm = eval_at(&o, &b, pc, tmp);
		E[k] = keep;
		double fd = (lp - lm) / ((double)(keep + (float)h) - (double)(keep - (float)h));
		double e = fabs(fd - g[k]);
		if (e > worst)
			worst = e, at = k;
	}
	if (!ok(worst <= 3e-3 * (gmax > 1e-3 ? gmax : 1e-3), "%s: gradient matches finite differences (max |grad| %.3g)",
		fc->what, gmax))
		printf("#   worst error %.3g at element %zu (grad %.6g)\n", worst, at, g[at]);
	if (pc) {   /* the classifier's gradient too */
		double worstw = 0, wmax = 0;
		float *dW = malloc(cls.num_labels * cls.in * sizeof(float));
		loss_eval(&o, &b, pc, tmp);
		memcpy(dW, cls.dW, cls.num_labels * cls.in * sizeof(float));
		for (int k = 0; k < cls.num_labels * cls.in; k++) {
			float keep = cls.W[k];
			cls.W[k] = keep + (float)h;
			double lp = eval_at(&o, &b, pc, tmp);
			cls.W[k] = keep - (float)h;
			double lm = eval_at(&o, &b, pc, tmp);
			cls.W[k] = keep;
			double fd = (lp - lm) / ((double)(keep + (float)h) - (double)(keep - (float)h));
			if (fabs(dW[k]) > wmax)
				wmax = fabs(dW[k]);
			if (fabs(fd - dW[k]) > worstw)
				worstw = fabs(fd - dW[k]);
		}
		ok(worstw <= 3e-3 * wmax, "%s: classifier weight gradient matches finite differences", fc->what);
		free(dW);
	}
	free(E), free(g), free(tmp), free(lab);
}

static void expect_error(const char *name, int C, int label_ndim, int K, const char *want)
{
	loss_opts o, in;
	loss_opts_default(&o, loss_kind_parse(name));
	o.num_labels = 3;
	if (o.kind == LOSS_MATRYOSHKA) {
		loss_opts_default(&in, LOSS_MNRL);
		o.inner = &in;
		o.ndims = 1;
		o.dims[0] = 4;
		o.weights[0] = 1;
	}
	float E[4 * 3 * 8] = { 0 }, lab[3 * 8] = { 0.5f, 0, 0 };
	loss_batch b = { C, 3, 8, E, label_ndim ? lab : NULL, label_ndim, K };
	char err[256] = "";
	int rc = loss_check(&o, &b, NULL, err, sizeof err);
	if (!ok(rc == -1 && strstr(err, want), "%s with %d columns, labels of %d dims: \"%s\"", name, C, label_ndim, want))
		printf("#   got \"%s\"\n", err);
}

int main(void)
{
	(void)near;
	(void)skip_all;
	st_set_threads(1);
	for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
		run_case(&cases[k]);

	expect_error("mnrl", 1, 0, 0, "mnrl needs 2 or more text columns; got 1");
	expect_error("triplet", 2, 0, 0, "triplet needs 3 text columns; got 2");
	expect_error("contrastive", 2, 0, 0, "contrastive needs a label per row");
	expect_error("contrastive", 2, 1, 1, "contrastive needs labels 0 or 1; row 0 has 0.5");
	expect_error("softmax", 2, 1, 1, "softmax needs class labels 0..2; row 0 has 0.5");
	expect_error("cosent", 2, 2, 8, "cosent needs a score per row");
	expect_error("batch-all-triplet", 2, 1, 1, "batch-all-triplet needs 1 text column; got 2");
	expect_error("mse", 2, 1, 1, "mse needs the teacher embedding as label (labels [rows][8])");
	expect_error("margin-mse", 3, 2, 3, "margin-mse needs teacher margins as label");
	expect_error("matryoshka", 1, 0, 0, "mnrl needs 2 or more text columns; got 1");
	return done_testing();
}
