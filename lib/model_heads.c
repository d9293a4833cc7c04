/* model_heads.c: the modules after the transformer -- Pooling, Dense, Normalize -- forward and backward.
 * Formulas: sentence-transformers models/Pooling.py, Dense.py, Normalize.py (reference doc section 4.4-4.6).
 * Plain functions on flat buffers; model.c composes them with the encoder. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "gemm.h"
#include "model.h"

int model_pool_count(int modes)
{
	int n = 0;
	for (int bit = 0; bit < 6; bit++)
		n += (modes >> bit) & 1;
	return n;
}

/* The last real position pooled by lasttoken: len-1, or T-1 for an empty row (then multiplied by mask 0). */
static int last_index(int len, int T) { return len > 0 ? len - 1 : T - 1; }

/* H [B][T][d], only positions < lengths[b] are read (the encoder leaves pads untouched).
 * out [B][count*d]: the enabled modes concatenated in the library's order. */
void model_pool_forward(int modes, const float *H, const int32_t *lengths, int B, int T, int d, float *out)
{
	model_pool_forward_skip(modes, H, lengths, NULL, B, T, d, out);
}

/* skip [B] (NULL: none): positions < skip[b] of row b are masked out of pooling, as the library zeroes
 * attention_mask[:, :prompt_length] when include_prompt is false. cls reads position 0 regardless; max, mean,
 * mean_sqrt_len and weightedmean leave the masked positions out; lasttoken reads len-1 when it is unmasked,
 * else gives zeros (H[idx] * mask[idx] with mask[idx] = 0). */
void model_pool_forward_skip(int modes, const float *H, const int32_t *lengths, const int32_t *skip_rows, int B,
			     int T, int d, float *out)
{
	int width = model_pool_count(modes) * d;
	#pragma omp parallel for schedule(static)
	for (int b = 0; b < B; b++) {
		int len = lengths[b];
		int skip = skip_rows && skip_rows[b] > 0 ? skip_rows[b] : 0;
		const float *h = H + (size_t)b * T * d;
		float *o = out + (size_t)b * width;
		if (modes & MODEL_POOL_CLS) {
			/* position 0 is [CLS] (or <s>); an empty row has no computed state, Python would read a pad */
			for (int k = 0; k < d; k++) o[k] = len > 0 ? h[k] : 0.0f;
			o += d;
		}
		if (modes & MODEL_POOL_MAX) {
			/* pads are set to -1e9 before the max, so an empty row gives -1e9 */
			for (int k = 0; k < d; k++) o[k] = -1e9f;
			for (int l = skip; l < len; l++)
				for (int k = 0; k < d; k++)
					if (h[(size_t)l * d + k] > o[k]) o[k] = h[(size_t)l * d + k];
			o += d;
		}
		if (modes & (MODEL_POOL_MEAN | MODEL_POOL_MEAN_SQRT_LEN)) {
			float *sum = o;   /* reuse the output slot for the sum, then scale */
			for (int k = 0; k < d; k++) sum[k] = 0.0f;
			for (int l = skip; l < len; l++)
				for (int k = 0; k < d; k++) sum[k] += h[(size_t)l * d + k];
			float n = len > skip ? (float)(len - skip) : 1e-9f;
			if (modes & MODEL_POOL_MEAN) {
				float *mean = o;
				if (modes & MODEL_POOL_MEAN_SQRT_LEN) {
					float *sq = o + d;
					for (int k = 0; k < d; k++) sq[k] = sum[k] / sqrtf(n);
				}
				for (int k = 0; k < d; k++) mean[k] = sum[k] / n;
				o += d;
				if (modes & MODEL_POOL_MEAN_SQRT_LEN) o += d;
			} else {
				for (int k = 0; k < d; k++) o[k] = sum[k] / sqrtf(n);
				o += d;
			}
		}
		if (modes & MODEL_POOL_WEIGHTEDMEAN) {
			/* weights 1..T over the padded sequence; pads masked out */
			for (int k = 0; k < d; k++) o[k] = 0.0f;
			float wsum = 0.0f;
			for (int l = skip; l < len; l++) {
				float w = (float)(l + 1);
				wsum += w;
				for (int k = 0; k < d; k++) o[k] += w * h[(size_t)l * d + k];
			}
			if (wsum < 1e-9f) wsum = 1e-9f;
			for (int k = 0; k < d; k++) o[k] /= wsum;
			o += d;
		}
		if (modes & MODEL_POOL_LASTTOKEN) {
			int idx = last_index(len, T);
			for (int k = 0; k < d; k++) o[k] = len > skip ? h[(size_t)idx * d + k] : 0.0f;
			o += d;
		}
	}
}

/* dout [B][count*d] -> dH [B][T][d] (overwritten; zero at pads). H is needed for the max's argmax. */
void model_pool_backward(int modes, const float *H, const int32_t *lengths, int B, int T, int d,
			 const float *dout, float *dH)
{
	model_pool_backward_skip(modes, H, lengths, NULL, B, T, d, dout, dH);
}

/* The backward of model_pool_forward_skip: masked positions get gradient only through cls. */
void model_pool_backward_skip(int modes, const float *H, const int32_t *lengths, const int32_t *skip_rows, int B,
			      int T, int d, const float *dout, float *dH)
{
	int width = model_pool_count(modes) * d;
	#pragma omp parallel for schedule(static)
	for (int b = 0; b < B; b++) {
		int len = lengths[b];
		int skip = skip_rows && skip_rows[b] > 0 ? skip_rows[b] : 0;
		const float *h = H + (size_t)b * T * d;
		const float *g = dout + (size_t)b * width;
		float *dh = dH + (size_t)b * T * d;
		memset(dh, 0, sizeof(float) * (size_t)T * d);
		if (len <= 0)
			continue;   /* nothing computed, nothing to send back (masked) */
		if (modes & MODEL_POOL_CLS) {
			for (int k = 0; k < d; k++) dh[k] += g[k];
			g += d;
		}
		/* the modes below see positions skip..len-1; with none left their output is a constant */
		int live = len > skip;
		if (modes & MODEL_POOL_MAX) {
			for (int k = 0; live && k < d; k++) {
				int arg = skip;   /* first maximal position, as torch.max over a dim */
				for (int l = skip + 1; l < len; l++)
					if (h[(size_t)l * d + k] > h[(size_t)arg * d + k]) arg = l;
				dh[(size_t)arg * d + k] += g[k];
			}
			g += d;
		}
		if (modes & MODEL_POOL_MEAN) {
			float inv = live ? 1.0f / (float)(len - skip) : 0.0f;
			for (int l = skip; l < len; l++)
				for (int k = 0; k < d; k++) dh[(size_t)l * d + k] += g[k] * inv;
			g += d;
		}
		if (modes & MODEL_POOL_MEAN_SQRT_LEN) {
			float inv = live ? 1.0f / sqrtf((float)(len - skip)) : 0.0f;
			for (int l = skip; l < len; l++)
				for (int k = 0; k < d; k++) dh[(size_t)l * d + k] += g[k] * inv;
			g += d;
		}
		if (modes & MODEL_POOL_WEIGHTEDMEAN) {
			/* sum of the weights l+1 over l = skip..len-1 */
			float wsum = 0.5f * (float)len * (float)(len + 1) - 0.5f * (float)skip * (float)(skip + 1);
			for (int l = skip; l < len; l++) {
				float w = (float)(l + 1) / wsum;
				for (int k = 0; k < d; k++) dh[(size_t)l * d + k] += g[k] * w;
			}
			g += d;
		}
		if (modes & MODEL_POOL_LASTTOKEN) {
			int idx = last_index(len, T);
			for (int k = 0; live && k < d; k++) dh[(size_t)idx * d + k] += g[k];
			g += d;
		}
	}
}

static float act_forward(int act, float z)
{
	switch (act) {
	case MODEL_ACT_TANH: return tanhf(z);
	case MODEL_ACT_RELU: return z > 0.0f ? z : 0.0f;
	case MODEL_ACT_GELU: return 0.5f * z * (1.0f + erff(z * (float)M_SQRT1_2));   /* torch.nn.GELU(): exact erf */
	case MODEL_ACT_SIGMOID: return 1.0f / (1.0f + expf(-z));
	default: return z;
	}
}

/* d act / d z, given the pre-activation z and the output y */
static float act_grad(int act, float z, float y)
{
	switch (act) {
	case MODEL_ACT_TANH: return 1.0f - y * y;
	case MODEL_ACT_RELU: return z > 0.0f ? 1.0f : 0.0f;
	case MODEL_ACT_GELU: {
		float cdf = 0.5f * (1.0f + erff(z * (float)M_SQRT1_2));
		float pdf = expf(-0.5f * z * z) * 0.3989422804014327f;
		return cdf + z * pdf;
	}
	case MODEL_ACT_SIGMOID: return y * (1.0f - y);
	default: return 1.0f;
	}
}

/* x [B][in] -> z = x W^T + bias [B][out] (pre-activation, kept for backward when z != NULL), y = act(z).
 * W [out][in] as nn.Linear stores it; bias may be NULL. */
void model_dense_forward(const float *W, const float *bias, int act, int B, int in, int out,
			 const float *x, float *z, float *y)
{
	float *zz = z ? z : y;
	st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, x, in, W, in, 0.0f, zz, out);
	for (int b = 0; b < B; b++)
		for (int o = 0; o < out; o++) {
			float v = zz[(size_t)b * out + o] + (bias ? bias[o] : 0.0f);
			if (z) z[(size_t)b * out + o] = v;
			y[(size_t)b * out + o] = act_forward(act, v);
		}
}

/* dy [B][out] -> dW [out][in] +=, dbias [out] += (if not NULL), dx [B][in] = (overwritten, if not NULL). */
void model_dense_backward(const float *W, int act, int B, int in, int out, const float *x, const float *z,
			  const float *y, const float *dy, float *dW, float *dbias, float *dx)
{
	float *dz = malloc(sizeof(float) * (size_t)B * out);
	for (size_t i = 0; i < (size_t)B * out; i++)
		dz[i] = dy[i] * act_grad(act, z[i], y[i]);
	/* dW[out][in] += dz^T [out][B] * x [B][in] */
	st_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, dz, out, x, in, 1.0f, dW, in);
	if (dbias)
		for (int b = 0; b < B; b++)
			for (int o = 0; o < out; o++) dbias[o] += dz[(size_t)b * out + o];
	/* dx [B][in] = dz [B][out] * W [out][in] */
	if (dx)
		st_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, dz, out, W, in, 0.0f, dx, in);
	free(dz);
}

/* y = x / max(||x||, 1e-12) per row (torch.nn.functional.normalize). y may equal x. */
void model_normalize_forward(int B, int d, const float *x, float *y)
{
	for (int b = 0; b < B; b++) {
		double ss = 0;
		for (int k = 0; k < d; k++) ss += (double)x[(size_t)b * d + k] * x[(size_t)b * d + k];
		float n = (float)sqrt(ss);
		if (n < 1e-12f) n = 1e-12f;
		for (int k = 0; k < d; k++) y[(size_t)b * d + k] = x[(size_t)b * d + k] / n;
	}
}

/* dx = (dy - y (y . dy)) / ||x|| where the norm is above the clamp, dy / 1e-12 where it is clamped. */
void model_normalize_backward(int B, int d, const float *x, const float *dy, float *dx)
{
	for (int b = 0; b < B; b++) {
		const float *xb = x + (size_t)b * d, *g = dy + (size_t)b * d;
		double ss = 0, dot = 0;
		for (int k = 0; k < d; k++) ss += (double)xb[k] * xb[k];
		double n = sqrt(ss);
		if (n <= 1e-12) {
			for (int k = 0; k < d; k++) dx[(size_t)b * d + k] = (float)(g[k] / 1e-12);
			continue;
		}
		for (int k = 0; k < d; k++) dot += (double)xb[k] * g[k];
		for (int k = 0; k < d; k++)
			dx[(size_t)b * d + k] = (float)((g[k] - xb[k] * dot / ss) / n);
	}
}
