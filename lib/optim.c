/* optim.c: AdamW, clip_grad_norm_ and the warmup schedules (optim.h; formulas in docs/training.md). */
#include "optim.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "st.h"

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

/* torch.optim.AdamW, _single_tensor_adamw: every tensor op runs in float32 with its Python-float scalar
 * rounded to float, so we do the same to stay within rounding of PyTorch step after step. */
static void adamw_torch(float *p, float *m, float *v, const float *g, size_t n, double lr, double wd,
                        double beta1, double beta2, double eps, int64_t t)
{
	float decay = (float)(1.0 - lr * wd);
	float b1 = (float)beta1, one_b1 = (float)(1.0 - beta1);
	float b2 = (float)beta2, one_b2 = (float)(1.0 - beta2);
	double bc1 = 1.0 - pow(beta1, (double)t);
	double bc2 = 1.0 - pow(beta2, (double)t);
	float bc2_sqrt = (float)sqrt(bc2);
	float neg_step = (float)(-(lr / bc1));
	float feps = (float)eps;
	#pragma omp parallel for schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++) {
		float pi = p[i] * decay;
		float mi = m[i] * b1 + one_b1 * g[i];
		float vi = v[i] * b2 + one_b2 * (g[i] * g[i]);
		float denom = sqrtf(vi) / bc2_sqrt + feps;
		m[i] = mi;
		v[i] = vi;
		p[i] = pi + neg_step * (mi / denom);
	}
}

/* transformers.AdamW (the old fit default): Adam step with sqrt(bc2)/bc1 folded into the step size, then
 * decoupled decay p -= lr*wd*p on the updated weights. */
static void adamw_hf(float *p, float *m, float *v, const float *g, size_t n, double lr, double wd,
                     double beta1, double beta2, double eps, int correct_bias, int64_t t)
{
	float b1 = (float)beta1, one_b1 = (float)(1.0 - beta1);
	float b2 = (float)beta2, one_b2 = (float)(1.0 - beta2);
	double step_size = lr;
	if (correct_bias)
		step_size = step_size * sqrt(1.0 - pow(beta2, (double)t)) / (1.0 - pow(beta1, (double)t));
	float neg_step = (float)-step_size;
	float feps = (float)eps;
	float neg_decay = (float)(-lr * wd);
	#pragma omp parallel for schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++) {
		float mi = m[i] * b1 + one_b1 * g[i];
		float vi = v[i] * b2 + one_b2 * (g[i] * g[i]);
		float pi = p[i] + neg_step * (mi / (sqrtf(vi) + feps));
		if (wd > 0)
			pi = pi + neg_decay * pi;
		m[i] = mi;
		v[i] = vi;
		p[i] = pi;
	}
}

void optim_step(optim *o, float *params, const float *grads, double lr)
{
	const optim_config *c = &o->cfg;
	o->t++;
	for (int i = 0; i < o->ntensors; i++) {
		const optim_tensor *tp = &o->tensors[i];
		if (tp->skip || tp->count == 0)
			continue;
		double wd = tp->no_decay ? 0.0 : c->weight_decay;
		size_t off = tp->offset;
		if (c->kind == OPTIM_ADAMW_HF)
			adamw_hf(params + off, o->m + off, o->v + off, grads + off, tp->count, lr, wd, c->beta1,
			         c->beta2, c->eps, c->correct_bias, o->t);
		else
			adamw_torch(params + off, o->m + off, o->v + off, grads + off, tp->count, lr, wd, c->beta1,
			            c->beta2, c->eps, o->t);
	}
}

double optim_grad_norm(const float *grads, size_t n)
{
	double sum = 0;
	#pragma omp parallel for reduction(+ : sum) schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++)
		sum += (double)grads[i] * grads[i];
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
