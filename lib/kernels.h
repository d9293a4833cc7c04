/* kernels.h: the encoder forward's non-projection kernels (attention of one head over a short sequence, bias +
 * exact-erf GELU), each in portable C and, on CPUs with AVX-512F, in AVX-512 intrinsics chosen at run time.
 * ST_KERNELS=generic in the environment forces the portable C (ST_KERNELS=avx512 asks for AVX-512 where the CPU
 * has it). */
#ifndef ST_KERNELS_H
#define ST_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum st_kern {
	ST_KERN_GENERIC,   /* portable C: sgemm per head, libm / libmvec */
	ST_KERN_AVX512,    /* AVX-512F intrinsics */
};

/* What this process uses (decided once: the CPU, then ST_KERNELS). */
enum st_kern st_kern_impl(void);
/* The best this CPU runs, whatever ST_KERNELS says. */
enum st_kern st_kern_best(void);
const char *st_kern_name(enum st_kern k);

/* The direct attention kernel is used up to this many tokens a sequence (when the probabilities are kept for
 * the backward: up to ST_ATTN_DIRECT_MAX_P); longer ones go through sgemm per head. build/t/kernels.t --bench
 * (hs 32, data in cache) has it 2.5x faster at 16 tokens, 1.7x at 32, 1.3x at 64 and 97, but in st-encode
 * (perf samples, 640 texts, one thread) it took 20% less time than sgemm per head at 16-32 tokens and 1.8x more
 * at 64-128: kept to short rows until that is understood. */
#define ST_ATTN_DIRECT_MAX 48
#define ST_ATTN_DIRECT_MAX_P 48

/* Floats of scratch st_attn_head needs for a sequence of L tokens and head size hs (per thread). */
size_t st_attn_scratch_floats(int L, int hs);

/* One head of one sequence of L tokens: p (L, L) = softmax by rows of (scale q k^T + bias), ctx (L, hs) = p v.
 * q, k, v: rows of hs floats, ld floats apart; ctx rows ldc apart. bias: NULL, or the score bias of key j for
 * query i at bias[j - i] (MPNet's relative positions; bias[-(L-1)] .. bias[L-1] readable). p: where the
 * probabilities go (row-major, L x L), or NULL when they are not needed. scratch: st_attn_scratch_floats(L, hs).
 * impl ST_KERN_GENERIC: sgemm for both products with a separate softmax (any L); ST_KERN_AVX512: the direct
 * kernel (needs L <= ST_ATTN_DIRECT_MAX, or ST_ATTN_DIRECT_MAX_P with p, and an AVX-512F CPU; otherwise the
 * generic one runs). */
void st_attn_head(enum st_kern impl, int L, int hs, float scale, const float *q, const float *k, const float *v,
		  int ld, const float *bias, float *p, float *ctx, int ldc, float *scratch);

/* h (n) += b; a (n) = GELU(h) = 0.5 h (1 + erf(h / sqrt 2)) (BERT's exact-erf GELU). a may alias h. */
void st_bias_gelu(enum st_kern impl, float *h, float *a, const float *b, int n);

/* erf, float in and out, as st_bias_gelu computes it (for tests): n values */
void st_erf_vec(enum st_kern impl, const float *x, float *y, int n);

/* e^x for x <= 0 (the softmax), inline so that whole rows vectorise, tails included (a scalar libm call per tail
 * element cost more than the rest of the row). x = n ln2 + r, |r| <= ln2/2, e^r by its Taylor series to r^6
 * (relative error < 2e-7), 2^n put into the exponent bits. */
static inline float st_exp_neg(float x)
{
	x = x < -87.0f ? -87.0f : x;
	float n = __builtin_rintf(x * 1.44269504088896341f);
	float r = x - n * 0.693145751953125f - n * 1.42860682030941723e-06f;   /* ln2 in two parts */
	float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
	n = n == n ? n : 0;   /* NaN (from NaN weights) stays NaN through p, without an undefined int conversion */
	uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
	float scale;
	memcpy(&scale, &bits, sizeof scale);
	return p * scale;
}

/* softmax of one row of scores, in place */
static inline void st_softmax_row(float *row, int L)
{
	float mx = -INFINITY, z = 0;
#pragma omp simd reduction(max:mx)
	for (int j = 0; j < L; j++)
		mx = row[j] > mx ? row[j] : mx;
#pragma omp simd reduction(+:z)
	for (int j = 0; j < L; j++) {
		row[j] = st_exp_neg(row[j] - mx);
		z += row[j];
	}
	float iz = 1.0f / z;
#pragma omp simd
	for (int j = 0; j < L; j++)
		row[j] *= iz;
}

#endif
