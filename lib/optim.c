/* optim.c: AdamW, clip_grad_norm_ and the warmup schedules (optim.h; formulas in docs/training.md). */
#include "optim.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "st.h"

#ifdef _OPENMP
#include <omp.h>
#endif

void optim_config_default(optim_config *c, enum optim_kind kind)
{
	memset(c, 0, sizeof *c);
	c->kind = kind;
	c->lr = 2e-5;
	c->beta1 = 0.9;
	c->beta2 = 0.999;
	c->eps = kind == OPTIM_ADAMW_HF ? 1e-6 : 1e-8;
	c->weight_decay = 0.01;
	c->correct_bias = 1;
}

int optim_no_decay_name(const char *name)
{
	/* fit(): no_decay = ["bias", "LayerNorm.bias", "LayerNorm.weight"], tested as substrings */
	return strstr(name, "bias") != NULL || strstr(name, "LayerNorm.weight") != NULL;
}

optim *optim_new(const optim_config *c, size_t n, const optim_tensor *tensors, int ntensors)
{
	optim *o = xcalloc(1, sizeof *o);
	o->cfg = *c;
	o->n = n;
	if (tensors == NULL || ntensors <= 0) {
		o->ntensors = 1;
		o->tensors = xcalloc(1, sizeof *o->tensors);
		o->tensors[0].offset = 0;
		o->tensors[0].count = n;
	} else {
		o->ntensors = ntensors;
		o->tensors = xmalloc(xmul(ntensors, sizeof *o->tensors));
		memcpy(o->tensors, tensors, ntensors * sizeof *tensors);
		for (int i = 0; i < ntensors; i++)
			if (tensors[i].offset + tensors[i].count > n)
				die(EX_SOFTWARE, "optimizer tensor %d [%zu, +%zu) is outside the %zu parameters", i,
				    tensors[i].offset, tensors[i].count, n);
	}
	o->m = xcalloc(n ? n : 1, sizeof(float));
	o->v = xcalloc(n ? n : 1, sizeof(float));
	o->owns_state = 1;
	return o;
}

void optim_bind_state(optim *o, float *m, float *v)
{
	if (o->owns_state) {
		free(o->m);
		free(o->v);
	}
	o->m = m;
	o->v = v;
	o->owns_state = 0;
}

void optim_free(optim *o)
{
	if (!o)
		return;
	if (o->owns_state) {
		free(o->m);
		free(o->v);
	}
	free(o->tensors);
	free(o);
}

/* One pass over the parameters for every tensor at once: each thread takes an equal slice of the flat buffers
 * and updates the parts of the tensors in it (one parallel region instead of one per tensor, small tensors
 * threaded too), reading the gradient times the clip coefficient (torch's clip_grad_norm_ multiplies the
 * gradients in float32 first: the same product), and, with zero, leaving the gradient 0 for the next step
 * (no separate memset pass). Vector square roots need -fno-math-errno (the Makefile gives it for this file; the
 * argument is never negative); they round as sqrtf does, so the results are the scalar loops' bit for bit. */
typedef struct adam_consts {
	float decay, b1, one_b1, b2, one_b2, bc2_sqrt, neg_step, eps, neg_decay;
	int hf, wd_on;
} adam_consts;

/* torch.optim.AdamW, _single_tensor_adamw: every tensor op runs in float32 with its Python-float scalar
 * rounded to float, so we do the same to stay within rounding of PyTorch step after step. */
static void adamw_torch(float *restrict p, float *restrict m, float *restrict v, float *restrict g, size_t n,
                        const adam_consts *k, float scale, int zero)
{
	float decay = k->decay, b1 = k->b1, one_b1 = k->one_b1, b2 = k->b2, one_b2 = k->one_b2;
	float bc2_sqrt = k->bc2_sqrt, neg_step = k->neg_step, feps = k->eps;
	#pragma omp simd
	for (size_t i = 0; i < n; i++) {
		float gi = scale != 1.0f ? g[i] * scale : g[i];
		float pi = p[i] * decay;
		float mi = m[i] * b1 + one_b1 * gi;
		float vi = v[i] * b2 + one_b2 * (gi * gi);
		float denom = sqrtf(vi) / bc2_sqrt + feps;
		m[i] = mi;
		v[i] = vi;
#ifdef __FMA__
		p[i] = fmaf(neg_step, mi / denom, pi);   /* the contraction gcc makes of the scalar loop: same bits */
#else
		p[i] = pi + neg_step * (mi / denom);
#endif
		if (zero)
			g[i] = 0.0f;
	}
}

/* transformers.AdamW (the old fit default): Adam step with sqrt(bc2)/bc1 folded into the step size, then
 * decoupled decay p -= lr*wd*p on the updated weights. */
static void adamw_hf(float *restrict p, float *restrict m, float *restrict v, float *restrict g, size_t n,
                     const adam_consts *k, float scale, int zero)
{
	float b1 = k->b1, one_b1 = k->one_b1, b2 = k->b2, one_b2 = k->one_b2, neg_step = k->neg_step, feps = k->eps;
	float neg_decay = k->neg_decay;
	int wd_on = k->wd_on;
	#pragma omp simd
	for (size_t i = 0; i < n; i++) {
		float gi = scale != 1.0f ? g[i] * scale : g[i];
		float mi = m[i] * b1 + one_b1 * gi;
		float vi = v[i] * b2 + one_b2 * (gi * gi);
		float pi = p[i] + neg_step * (mi / (sqrtf(vi) + feps));
		if (wd_on)
			pi = pi + neg_decay * pi;
		m[i] = mi;
		v[i] = vi;
		p[i] = pi;
		if (zero)
			g[i] = 0.0f;
	}
}

static void adam_setup(const optim_config *c, double lr, double wd, int64_t t, adam_consts *k)
{
	memset(k, 0, sizeof *k);
	k->b1 = (float)c->beta1, k->one_b1 = (float)(1.0 - c->beta1);
	k->b2 = (float)c->beta2, k->one_b2 = (float)(1.0 - c->beta2);
	k->eps = (float)c->eps;
	if (c->kind == OPTIM_ADAMW_HF) {
		double step_size = lr;
		if (c->correct_bias)
			step_size = step_size * sqrt(1.0 - pow(c->beta2, (double)t)) / (1.0 - pow(c->beta1, (double)t));
		k->hf = 1;
		k->neg_step = (float)-step_size;
		k->neg_decay = (float)(-lr * wd);
		k->wd_on = wd > 0;
	} else {
		k->decay = (float)(1.0 - lr * wd);
		k->bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, (double)t));
		k->neg_step = (float)(-(lr / (1.0 - pow(c->beta1, (double)t))));
	}
}

static void step_all(optim *o, float *params, float *grads, double lr, float scale, int zero)
{
	const optim_config *c = &o->cfg;
	o->t++;
	adam_consts kd, knd;   /* decayed tensors, the others */
	adam_setup(c, lr, c->weight_decay, o->t, &kd);
	adam_setup(c, lr, 0.0, o->t, &knd);
	size_t covered = 0;
	for (int i = 0; i < o->ntensors; i++)
		if (!o->tensors[i].skip)
			covered += o->tensors[i].count;
	size_t n = o->n;
	int par = n > 65536;
	#pragma omp parallel if (par)
	{
		int nt = 1, id = 0;
#ifdef _OPENMP
		nt = omp_get_num_threads(), id = omp_get_thread_num();
#endif
		/* slices of whole cache lines */
		size_t lo = (n * id / nt) & ~(size_t)15, hi = id == nt - 1 ? n : (n * (id + 1) / nt) & ~(size_t)15;
		for (int i = 0; i < o->ntensors; i++) {
			const optim_tensor *tp = &o->tensors[i];
			size_t a = tp->offset > lo ? tp->offset : lo, b = tp->offset + tp->count < hi ? tp->offset + tp->count : hi;
			if (tp->skip || a >= b)
				continue;
			const adam_consts *k = tp->no_decay ? &knd : &kd;
			if (k->hf)
				adamw_hf(params + a, o->m + a, o->v + a, grads + a, b - a, k, scale, zero);
			else
				adamw_torch(params + a, o->m + a, o->v + a, grads + a, b - a, k, scale, zero);
		}
	}
	/* gradients the loop did not reach (skipped tensors, overlaps or gaps in the table) */
	if (zero && covered != n)
		memset(grads, 0, n * sizeof(float));
}

void optim_step(optim *o, float *params, const float *grads, double lr)
{
	step_all(o, params, (float *)grads, lr, 1.0f, 0);
}

void optim_step_clipped(optim *o, float *params, float *grads, double lr, double clip_coef)
{
	step_all(o, params, grads, lr, clip_coef < 1.0 ? (float)clip_coef : 1.0f, 1);
}

/* The sum of squares in double, 8 lanes per thread added in a fixed order (vectorised; the order depends only on
 * n and the thread count). */
double optim_grad_norm(const float *grads, size_t n)
{
	double sum = 0;
	int par = n > 65536;
	#pragma omp parallel if (par) reduction(+ : sum)
	{
		int nt = 1, id = 0;
#ifdef _OPENMP
		nt = omp_get_num_threads(), id = omp_get_thread_num();
#endif
		size_t lo = n * id / nt, hi = n * (id + 1) / nt;
		double acc[8] = { 0 };
		size_t i = lo;
		for (; i + 8 <= hi; i += 8)
			for (int j = 0; j < 8; j++)
				acc[j] += (double)grads[i + j] * grads[i + j];
		for (; i < hi; i++)
			acc[0] += (double)grads[i] * grads[i];
		sum += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
	}
	return sqrt(sum);
}

double optim_clip_coef(double total_norm, double max_norm)
{
	if (max_norm <= 0)
		return 1.0;
	double coef = max_norm / (total_norm + 1e-6);
	return coef < 1.0 ? coef : 1.0;
}

double optim_clip_grad_norm(float *grads, size_t n, double max_norm)
{
	double total = optim_grad_norm(grads, n);
	double coef = optim_clip_coef(total, max_norm);
	if (coef < 1.0) {
		float fc = (float)coef;
		#pragma omp parallel for schedule(static) if (n > 65536)
		for (size_t i = 0; i < n; i++)
			grads[i] *= fc;
	}
	return total;
}

static const char *sched_names[] = {
	[OPTIM_CONSTANTLR] = "constantlr",
	[OPTIM_WARMUPCONSTANT] = "warmupconstant",
	[OPTIM_WARMUPLINEAR] = "warmuplinear",
	[OPTIM_WARMUPCOSINE] = "warmupcosine",
	[OPTIM_WARMUPCOSINEHARDRESTARTS] = "warmupcosinewithhardrestarts",
};

int optim_sched_parse(const char *name, enum optim_sched *out)
{
	for (int i = 0; i < (int)(sizeof sched_names / sizeof *sched_names); i++)
		if (strcasecmp(name, sched_names[i]) == 0) {
			*out = (enum optim_sched)i;
			return 0;
		}
	return -1;
}

const char *optim_sched_name(enum optim_sched s)
{
	return (unsigned)s < sizeof sched_names / sizeof *sched_names ? sched_names[s] : "?";
}

double optim_sched_lambda(enum optim_sched sched, int64_t s, int64_t W, int64_t T)
{
	double ds = (double)s, dW = (double)W, dT = (double)T;
	double wmax = W > 1 ? dW : 1.0;
	if (sched == OPTIM_CONSTANTLR)
		return 1.0;
	if (s < W)
		return ds / wmax;
	double left = T - W > 1 ? dT - dW : 1.0;   /* max(1, T - W) */
	double progress = (ds - dW) / left;
	switch (sched) {
	case OPTIM_WARMUPCONSTANT:
		return 1.0;
	case OPTIM_WARMUPLINEAR: {
		double l = (dT - ds) / left;
		return l > 0 ? l : 0.0;
	}
	case OPTIM_WARMUPCOSINE: {   /* num_cycles 0.5 */
		double l = 0.5 * (1.0 + cos(M_PI * 2.0 * 0.5 * progress));
		return l > 0 ? l : 0.0;
	}
	case OPTIM_WARMUPCOSINEHARDRESTARTS: {   /* num_cycles 1 */
		if (progress >= 1.0)
			return 0.0;
		double l = 0.5 * (1.0 + cos(M_PI * fmod(1.0 * progress, 1.0)));
		return l > 0 ? l : 0.0;
	}
	default:
		return 1.0;
	}
}

int optim_parse_warmup(const char *text, int64_t total, int64_t *out)
{
	char *end;
	if (!text || !*text || isspace((unsigned char)*text) || *text == '-')
		return -1;
	errno = 0;
	double x = strtod(text, &end);
	if (errno || end == text || !isfinite(x) || x < 0)
		return -1;
	if (*end == '%' && end[1] == '\0') {
		/* the same double expression as Python's math.ceil(total * ratio) */
		double w = ceil((double)total * (x / 100.0));
		*out = w < 0 ? 0 : (int64_t)w;
		return 0;
	}
	if (*end != '\0' || x != floor(x))
		return -1;
	*out = (int64_t)x;
	return 0;
}
