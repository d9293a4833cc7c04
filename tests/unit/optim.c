/* tests/unit/optim.c: AdamW, clipping and schedules against hand-worked cases and against
 * torch.optim.AdamW + LambdaLR + clip_grad_norm_ (tests/reference/train_ref.py) over many steps. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "optim.h"
#include "tap.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static float normal(void)
{
	return (float)(sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform()));
}

static void hand_worked(void)
{
	/* one AdamW step from zero moments: m_hat = g, v_hat = g^2, so p1 = p0 (1 - lr wd) - lr g / (|g| + eps) */
	optim_config c;
	optim_config_default(&c, OPTIM_ADAMW);
	optim_tensor t[2] = { { 0, 2, 0, 0 }, { 2, 1, 1, 0 } };
	optim *o = optim_new(&c, 3, t, 2);
	float p[3] = { 1.0f, -2.0f, 0.5f }, g[3] = { 0.5f, -0.25f, 2.0f };
	double lr = 1e-3;
	optim_step(o, p, g, lr);
	near(p[0], 1.0 * (1 - lr * 0.01) - lr * 0.5 / (0.5 + 1e-8), 1e-7, "first AdamW step, decayed weight");
	near(p[1], -2.0 * (1 - lr * 0.01) + lr * 0.25 / (0.25 + 1e-8), 1e-7, "first AdamW step, negative grad");
	near(p[2], 0.5 - lr * 2.0 / (2.0 + 1e-8), 1e-7, "first AdamW step, no-decay tensor");
	ok(o->t == 1, "step count is 1");
	optim_free(o);

	float gr[2] = { 3, 4 };
	double norm = optim_clip_grad_norm(gr, 2, 1.0);
	near(norm, 5.0, 1e-12, "clip returns the norm before clipping");
	near(gr[0], 3.0 / (5 + 1e-6), 1e-7, "clip scales by max_norm/(norm+1e-6)");
	near(gr[1], 4.0 / (5 + 1e-6), 1e-7, "clip scales every element");
	float small[2] = { 0.3f, 0.4f };
	optim_clip_grad_norm(small, 2, 1.0);
	ok(small[0] == 0.3f && small[1] == 0.4f, "no clipping under max_norm");

	ok(optim_no_decay_name("encoder.layer.0.attention.self.query.bias"), "bias is not decayed");
	ok(optim_no_decay_name("embeddings.LayerNorm.weight"), "LayerNorm.weight is not decayed");
	ok(!optim_no_decay_name("encoder.layer.0.attention.self.query.weight"), "a Linear weight is decayed");
	ok(!optim_no_decay_name("transformer.layer.0.sa_layer_norm.weight"), "DistilBERT block norm is decayed (fit's rule)");

	enum optim_sched s;
	ok(optim_sched_parse("WarmupLinear", &s) == 0 && s == OPTIM_WARMUPLINEAR, "scheduler names are case-insensitive");
	ok(optim_sched_parse("warmupcosinewithhardrestarts", &s) == 0 && s == OPTIM_WARMUPCOSINEHARDRESTARTS, "hard restarts");
	ok(optim_sched_parse("linear", &s) == -1, "unknown scheduler is refused");
	ok(optim_sched_lambda(OPTIM_WARMUPLINEAR, 0, 10, 100) == 0.0, "first warmup multiplier is 0");
	near(optim_sched_lambda(OPTIM_WARMUPLINEAR, 55, 10, 100), 45.0 / 90.0, 1e-15, "linear decay at 55/100");
	near(optim_sched_lambda(OPTIM_WARMUPCOSINE, 55, 10, 100), 0.5 * (1 + cos(M_PI * 0.5)), 1e-15, "cosine midpoint");

	int64_t w;
	ok(optim_parse_warmup("100", 30, &w) == 0 && w == 100, "warmup as steps");
	ok(optim_parse_warmup("10%", 30, &w) == 0 && w == 3, "10%% of 30 steps is 3");
	ok(optim_parse_warmup("10%", 7, &w) == 0 && w == 1, "10%% of 7 steps rounds up to 1");
	ok(optim_parse_warmup("25%", 10, &w) == 0 && w == 3, "25%% of 10 steps rounds up to 3");
	ok(optim_parse_warmup("10%", 1000, &w) == 0 && w == 100, "10%% of 1000 is 100");
	ok(optim_parse_warmup("0%", 1000, &w) == 0 && w == 0, "0%%");
	ok(optim_parse_warmup("abc", 30, &w) == -1 && optim_parse_warmup("-3", 30, &w) == -1 &&
	   optim_parse_warmup("1.5", 30, &w) == -1 && optim_parse_warmup("", 30, &w) == -1, "bad warmup text is refused");
}

#define N 1000
#define STEPS 40

/* Runs our optimizer and the PyTorch one on the same parameters and gradients; compares every step. */
static void against_torch(enum optim_kind kind, enum optim_sched sched, int64_t W, int64_t T)
{
	static const optim_tensor tensors[] = {
		{ 0, 300, 0, 0 }, { 300, 40, 1, 0 }, { 340, 60, 1, 0 }, { 400, 50, 0, 1 }, { 450, 550, 0, 0 },
	};
	int nt = sizeof tensors / sizeof *tensors;
	double lr = 1e-3, wd = 0.1, maxnorm = 1.0;
	char in[256], out[300], cmd[1024];
	snprintf(in, sizeof in, "%s/st-optim-%d.in", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
	snprintf(out, sizeof out, "%s.out", in);

	float *p = malloc(sizeof(float) * N), *p0 = malloc(sizeof(float) * N);
	float *g = malloc(sizeof(float) * N * STEPS);
	for (int i = 0; i < N; i++)
		p0[i] = p[i] = normal();
	for (int s = 0; s < STEPS; s++) {
		double scale = s % 3 == 0 ? 0.005 : 0.3;   /* some steps under max_norm, most over */
		for (int i = 0; i < N; i++)
			g[(size_t)s * N + i] = tensors[3].offset <= (size_t)i && (size_t)i < tensors[3].offset + tensors[3].count
			                           ? 0.0f : (float)(scale * normal());
	}
	FILE *f = fopen(in, "wb");
	fwrite(p0, sizeof(float), N, f);
	fwrite(g, sizeof(float), (size_t)N * STEPS, f);
	fclose(f);

	char spec[256] = "";
	for (int i = 0; i < nt; i++)
		snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "%s%zu:%zu:%d:%d", i ? "," : "",
		         tensors[i].offset, tensors[i].count, tensors[i].no_decay, tensors[i].skip);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/reference/train_ref.py %s %s %s %d %d %s %lld %lld %g %g %g %s",
	         kind == OPTIM_ADAMW_HF ? "adamw-hf" : "adamw", in, out, N, STEPS, optim_sched_name(sched),
	         (long long)W, (long long)T, lr, wd, maxnorm, spec);
	int rc = system(cmd);
	char what[160];
	snprintf(what, sizeof what, "%s %s W=%lld T=%lld", kind == OPTIM_ADAMW_HF ? "transformers.AdamW" : "torch AdamW",
	         optim_sched_name(sched), (long long)W, (long long)T);
	if (!ok(rc == 0, "%s: reference ran", what))
		return;
	f = fopen(out, "rb");
	double *lrs = malloc(sizeof(double) * STEPS), *norms = malloc(sizeof(double) * STEPS);
	float *want = malloc(sizeof(float) * N * STEPS);
	int got_all = fread(lrs, sizeof(double), STEPS, f) == STEPS && fread(norms, sizeof(double), STEPS, f) == STEPS &&
	              fread(want, sizeof(float), (size_t)N * STEPS, f) == (size_t)N * STEPS;
	fclose(f);
	unlink(in);
	unlink(out);
	ok(got_all, "%s: reference output complete", what);

	optim_config c;
	optim_config_default(&c, kind);
	c.lr = lr;
	c.weight_decay = wd;
	optim *o = optim_new(&c, N, tensors, nt);
	double worst_lr = 0, worst_norm = 0, worst_p = 0;
	int clipped = 0;
	float *grad = malloc(sizeof(float) * N);
	for (int s = 0; s < STEPS; s++) {
		memcpy(grad, g + (size_t)s * N, sizeof(float) * N);
		double norm = optim_clip_grad_norm(grad, N, maxnorm);
		clipped += norm > maxnorm;
		double step_lr = c.lr * optim_sched_lambda(sched, s, W, T);
		optim_step(o, p, grad, step_lr);
		double dl = fabs(step_lr - lrs[s]) / (fabs(lrs[s]) > 1e-30 ? fabs(lrs[s]) : 1);
		double dn = fabs(norm - norms[s]) / norms[s];
		worst_lr = dl > worst_lr ? dl : worst_lr;
		worst_norm = dn > worst_norm ? dn : worst_norm;
		for (int i = 0; i < N; i++) {
			double w = want[(size_t)s * N + i];
			double d = fabs(p[i] - w) / (fabs(w) > 1 ? fabs(w) : 1);
			worst_p = d > worst_p ? d : worst_p;
		}
	}
	ok(clipped > 0 && clipped < STEPS, "%s: clipping active on %d of %d steps", what, clipped, STEPS);
	if (!ok(worst_lr < 1e-12, "%s: learning rate of every step", what))
		printf("#   worst relative lr difference %g\n", worst_lr);
	if (!ok(worst_norm < 1e-5, "%s: grad norm of every step", what))
		printf("#   worst relative norm difference %g\n", worst_norm);
	if (!ok(worst_p < 2e-6, "%s: weights after every step", what))
		printf("#   worst weight difference %g\n", worst_p);
	int untouched = 1;
	for (size_t i = tensors[3].offset; i < tensors[3].offset + tensors[3].count; i++)
		untouched &= p[i] == p0[i];
	ok(untouched, "%s: a tensor without grad is neither stepped nor decayed", what);
	double moved = 0;
	for (int i = 0; i < N; i++)
		moved += fabs(p[i] - p0[i]);
	ok(moved > 1e-3, "%s: weights moved (sum |dp| = %.3g)", what, moved);
	optim_free(o);
	free(grad), free(lrs), free(norms), free(want), free(p), free(p0), free(g);
}

int main(void)
{
	hand_worked();
	if (system("/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null") != 0) {
		ok(1, "# SKIP PyTorch comparison: /usr/bin/python3 lacks torch");
		return done_testing();
	}
	against_torch(OPTIM_ADAMW, OPTIM_CONSTANTLR, 0, 35);
	against_torch(OPTIM_ADAMW, OPTIM_WARMUPCONSTANT, 7, 35);
	against_torch(OPTIM_ADAMW, OPTIM_WARMUPLINEAR, 7, 35);
	against_torch(OPTIM_ADAMW, OPTIM_WARMUPLINEAR, 0, 35);
	against_torch(OPTIM_ADAMW, OPTIM_WARMUPCOSINE, 7, 35);
	against_torch(OPTIM_ADAMW, OPTIM_WARMUPCOSINEHARDRESTARTS, 7, 35);
	against_torch(OPTIM_ADAMW, OPTIM_WARMUPLINEAR, 100, 35);   /* never leaves warmup (the 10000 default) */
	against_torch(OPTIM_ADAMW_HF, OPTIM_WARMUPLINEAR, 7, 35);
	return done_testing();
}
