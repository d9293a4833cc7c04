/* model_heads: Pooling (six modes), Dense (five activations) and Normalize, forward against hand-worked values
 * and backward against central finite differences (in double on the float functions). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "tap.h"
#include "st.h"
#include "model.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static double uni(void)
{
	rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
	return (rng >> 11) * (1.0 / 9007199254740992.0);
}
static float gauss(void) { return (float)(sqrt(-2 * log(uni() + 1e-300)) * cos(2 * M_PI * uni())); }

#define B 4
#define T 6
#define D 5

static double dot(const float *a, const float *w, int n)
{
	double s = 0;
	for (int i = 0; i < n; i++) s += (double)a[i] * w[i];
	return s;
}

/* L = sum(w * pool(H)); dL/dH by model_pool_backward against central differences; with skip, the first
 * skip[b] positions of row b are masked out (a prompt under include_prompt: false) */
static void check_pool_skip(int modes, const char *name, const int32_t *skip)
{
	int32_t lengths[B] = { T, 3, 1, 4 };
	int width = model_pool_count(modes) * D;
	float H[B * T * D], dH[B * T * D], w[B * 6 * D], out[B * 6 * D];
	for (int i = 0; i < B * T * D; i++) H[i] = gauss();
	/* pads hold garbage: the heads must never read them */
	for (int b = 0; b < B; b++)
		for (int t = lengths[b]; t < T; t++)
			for (int k = 0; k < D; k++) H[(b * T + t) * D + k] = NAN;
	for (int i = 0; i < B * width; i++) w[i] = gauss();
	model_pool_forward_skip(modes, H, lengths, skip, B, T, D, out);
	int finite = 1;
	for (int i = 0; i < B * width; i++) finite &= isfinite(out[i]);
	ok(finite, "%s: pads are not read", name);
	model_pool_backward_skip(modes, H, lengths, skip, B, T, D, w, dH);
	double worst = 0;
	int pads_zero = 1, masked_zero = 1;
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++)
			for (int k = 0; k < D; k++) {
				int i = (b * T + t) * D + k;
				if (t >= lengths[b]) {
					pads_zero &= dH[i] == 0.0f;
					continue;
				}
				if (skip && t < skip[b] && !(t == 0 && (modes & MODEL_POOL_CLS)))
					masked_zero &= dH[i] == 0.0f;
				float save = H[i], eps = 1e-3f;
				H[i] = save + eps;
				model_pool_forward_skip(modes, H, lengths, skip, B, T, D, out);
				double lp = dot(out, w, B * width);
				H[i] = save - eps;
				model_pool_forward_skip(modes, H, lengths, skip, B, T, D, out);
				double lm = dot(out, w, B * width);
				H[i] = save;
				worst = fmax(worst, fabs((lp - lm) / (2 * eps) - dH[i]));
			}
	ok(pads_zero, "%s: no gradient at pads", name);
	if (skip)
		ok(masked_zero, "%s: no gradient at masked prompt positions (but cls's position 0)", name);
	ok(worst < 2e-3, "%s: backward matches finite differences (max err %.2g)", name, worst);
}

static void check_pool(int modes, const char *name) { check_pool_skip(modes, name, NULL); }

/* skip 2 of 6, all 3 of 3, none of 1, 5 of 4 */
static const int32_t prompt_skip[B] = { 2, 3, 0, 5 };

/* The hand-worked row of check_pool_values with its first position masked (prompt_length 1). */
static void check_pool_skip_values(void)
{
	float H[4 * 2] = { 1, -2, 3, 4, -5, 6, NAN, NAN };
	int32_t len[1] = { 3 }, skip[1] = { 1 };
	float out[12];
	model_pool_forward_skip(MODEL_POOL_CLS | MODEL_POOL_MAX | MODEL_POOL_MEAN | MODEL_POOL_MEAN_SQRT_LEN |
				MODEL_POOL_WEIGHTEDMEAN | MODEL_POOL_LASTTOKEN, H, len, skip, 1, 4, 2, out);
	/* cls (1,-2) regardless; max (3,6); mean (-1, 5); sum/sqrt(2); weights 2,3: (6-15)/5, (8+18)/5; last (-5,6) */
	float want[12] = { 1, -2, 3, 6, -1, 5, -2 / sqrtf(2), 10 / sqrtf(2), -9.0f / 5, 26.0f / 5, -5, 6 };
	double worst = 0;
	for (int i = 0; i < 12; i++) worst = fmax(worst, fabs(out[i] - want[i]));
	ok(worst < 1e-6, "pooling of a hand-worked row with its first position masked (err %.2g)", worst);
	int32_t all[1] = { 3 };
	model_pool_forward_skip(MODEL_POOL_MAX | MODEL_POOL_MEAN | MODEL_POOL_LASTTOKEN, H, len, all, 1, 4, 2, out);
	ok(out[0] == -1e9f && out[2] == 0 && out[4] == 0 && out[5] == 0,
	   "every position masked: max -1e9, mean 0, lasttoken 0 (the library's masks)");
}

/* Hand-worked pooling of one row of 3 real tokens in a padded length of 4, d = 2. */
static void check_pool_values(void)
{
	float H[4 * 2] = { 1, -2, 3, 4, -5, 6, NAN, NAN };
	int32_t len[1] = { 3 };
	float out[12];
	model_pool_forward(MODEL_POOL_CLS | MODEL_POOL_MAX | MODEL_POOL_MEAN | MODEL_POOL_MEAN_SQRT_LEN |
			   MODEL_POOL_WEIGHTEDMEAN | MODEL_POOL_LASTTOKEN, H, len, 1, 4, 2, out);
	/* cls (1,-2); max (3,6); mean (-1/3, 8/3); sum/sqrt(3); weights 1,2,3: (1+6-15)/6, (-2+8+18)/6; last (-5,6) */
	float want[12] = { 1, -2, 3, 6, -1.0f / 3, 8.0f / 3, -1 / sqrtf(3), 8 / sqrtf(3), -8.0f / 6, 24.0f / 6, -5, 6 };
	double worst = 0;
	for (int i = 0; i < 12; i++) worst = fmax(worst, fabs(out[i] - want[i]));
	ok(worst < 1e-6, "pooling of a hand-worked row, modes concatenated in the library's order (err %.2g)", worst);
	int32_t empty[1] = { 0 };
	model_pool_forward(MODEL_POOL_MAX | MODEL_POOL_MEAN | MODEL_POOL_LASTTOKEN, H, empty, 1, 4, 2, out);
	ok(out[0] == -1e9f && out[2] == 0 && out[4] == 0 && out[5] == 0,
	   "an empty row: max -1e9, mean 0, lasttoken 0 (as Python's masks give)");
}

static void check_dense(int act, const char *name, int bias)
{
	enum { N = 3, IN = 5, OUT = 4 };
	float W[OUT * IN], b[OUT], x[N * IN], z[N * OUT], y[N * OUT], g[N * OUT];
	float dW[OUT * IN] = { 0 }, db[OUT] = { 0 }, dx[N * IN];
	for (int i = 0; i < OUT * IN; i++) W[i] = gauss() * 0.5f;
	for (int i = 0; i < OUT; i++) b[i] = gauss() * 0.5f;
	for (int i = 0; i < N * IN; i++) x[i] = gauss();
	for (int i = 0; i < N * OUT; i++) g[i] = gauss();
	float *bp = bias ? b : NULL;
	model_dense_forward(W, bp, act, N, IN, OUT, x, z, y);
	/* forward by hand */
	double fw = 0;
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OUT; o++) {
			double s = bias ? b[o] : 0;
			for (int i = 0; i < IN; i++) s += (double)W[o * IN + i] * x[n * IN + i];
			double v = act == MODEL_ACT_TANH ? tanh(s) : act == MODEL_ACT_RELU ? (s > 0 ? s : 0)
				 : act == MODEL_ACT_GELU ? 0.5 * s * (1 + erf(s / sqrt(2))) : act == MODEL_ACT_SIGMOID
				 ? 1 / (1 + exp(-s)) : s;
			fw = fmax(fw, fabs(v - y[n * OUT + o]));
		}
	ok(fw < 1e-5, "dense %s%s: forward (err %.2g)", name, bias ? "" : " no bias", fw);
	model_dense_backward(W, act, N, IN, OUT, x, z, y, g, dW, bias ? db : NULL, dx);
	float tmpz[N * OUT], tmpy[N * OUT];
	double worst = 0, eps = 1e-2;
	float *vars[3] = { W, b, x }, *grads[3] = { dW, db, dx };
	int sizes[3] = { OUT * IN, bias ? OUT : 0, N * IN };
	for (int v = 0; v < 3; v++)
		for (int i = 0; i < sizes[v]; i++) {
			float save = vars[v][i];
			vars[v][i] = save + (float)eps;
			model_dense_forward(W, bp, act, N, IN, OUT, x, tmpz, tmpy);
			double lp = dot(tmpy, g, N * OUT);
			vars[v][i] = save - (float)eps;
			model_dense_forward(W, bp, act, N, IN, OUT, x, tmpz, tmpy);
			double lm = dot(tmpy, g, N * OUT);
			vars[v][i] = save;
			worst = fmax(worst, fabs((lp - lm) / (2 * eps) - grads[v][i]));
		}
	ok(worst < 5e-3, "dense %s%s: backward matches finite differences (max err %.2g)", name, bias ? "" : " no bias",
	   worst);
}

static void check_normalize(void)
{
	enum { N = 3, Dn = 6 };
	float x[N * Dn], y[N * Dn], g[N * Dn], dx[N * Dn];
	for (int i = 0; i < N * Dn; i++) { x[i] = gauss(); g[i] = gauss(); }
	model_normalize_forward(N, Dn, x, y);
	double worst_norm = 0;
	for (int n = 0; n < N; n++) worst_norm = fmax(worst_norm, fabs(dot(y + n * Dn, y + n * Dn, Dn) - 1));
	ok(worst_norm < 1e-6, "normalize: unit rows");
	model_normalize_backward(N, Dn, x, g, dx);
	double worst = 0, eps = 1e-3;
	for (int i = 0; i < N * Dn; i++) {
		float save = x[i];
		x[i] = save + (float)eps;
		model_normalize_forward(N, Dn, x, y);
		double lp = dot(y, g, N * Dn);
		x[i] = save - (float)eps;
		model_normalize_forward(N, Dn, x, y);
		double lm = dot(y, g, N * Dn);
		x[i] = save;
		worst = fmax(worst, fabs((lp - lm) / (2 * eps) - dx[i]));
	}
	ok(worst < 2e-3, "normalize: backward matches finite differences (max err %.2g)", worst);
	float zero[4] = { 0 }, yz[4];
	model_normalize_forward(1, 4, zero, yz);
	ok(yz[0] == 0 && !isnan(yz[0]), "normalize: a zero row stays zero (norm clamped at 1e-12)");
}

int main(void)
{
	(void)near;
	(void)skip_all;
	st_set_threads(1);
	check_pool_values();
	check_pool(MODEL_POOL_CLS, "cls");
	check_pool(MODEL_POOL_MAX, "max");
	check_pool(MODEL_POOL_MEAN, "mean");
	check_pool(MODEL_POOL_MEAN_SQRT_LEN, "mean_sqrt_len");
	check_pool(MODEL_POOL_WEIGHTEDMEAN, "weightedmean");
	check_pool(MODEL_POOL_LASTTOKEN, "lasttoken");
	check_pool(0x3f, "all six");
	check_pool(MODEL_POOL_MEAN | MODEL_POOL_MEAN_SQRT_LEN, "mean + mean_sqrt_len");
	check_pool_skip_values();
	check_pool_skip(MODEL_POOL_MAX, "prompt masked, max", prompt_skip);
	check_pool_skip(MODEL_POOL_MEAN, "prompt masked, mean", prompt_skip);
	check_pool_skip(MODEL_POOL_MEAN_SQRT_LEN, "prompt masked, mean_sqrt_len", prompt_skip);
	check_pool_skip(MODEL_POOL_WEIGHTEDMEAN, "prompt masked, weightedmean", prompt_skip);
	check_pool_skip(MODEL_POOL_LASTTOKEN, "prompt masked, lasttoken", prompt_skip);
	check_pool_skip(0x3f, "prompt masked, all six", prompt_skip);
	check_dense(MODEL_ACT_IDENTITY, "identity", 1);
	check_dense(MODEL_ACT_TANH, "tanh", 1);
	check_dense(MODEL_ACT_RELU, "relu", 1);
	check_dense(MODEL_ACT_GELU, "gelu", 1);
	check_dense(MODEL_ACT_SIGMOID, "sigmoid", 1);
	check_dense(MODEL_ACT_TANH, "tanh", 0);
	check_normalize();

	char err[256];
	ok(model_pooling_parse("cls,mean_tokens,MAX", err, sizeof err) ==
	   (MODEL_POOL_CLS | MODEL_POOL_MEAN | MODEL_POOL_MAX), "pooling names parse, combined");
	ok(model_pooling_parse("mean,median", err, sizeof err) < 0 && strstr(err, "median"),
	   "an unknown pooling mode is named");
	ok(model_activation_parse("torch.nn.modules.activation.GELU") == MODEL_ACT_GELU &&
	   model_activation_parse("torch.nn.modules.linear.Identity") == MODEL_ACT_IDENTITY &&
	   model_activation_parse("tanh") == MODEL_ACT_TANH && model_activation_parse("Softplus") < 0,
	   "activation class names parse");
	ok(!strcmp(model_activation_class(MODEL_ACT_TANH), "torch.nn.modules.activation.Tanh"),
	   "Tanh's torch class name");
	return done_testing();
}
