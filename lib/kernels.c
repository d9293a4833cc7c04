/* kernels.c: the encoder forward's non-projection kernels, portable C and AVX-512 (see kernels.h). */
#include "kernels.h"
#include "gemm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define KERN_X86 1
#include <immintrin.h>
#endif

/* ---- dispatch ---- */

static enum st_kern best = ST_KERN_GENERIC, chosen = ST_KERN_GENERIC;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
#ifdef KERN_X86
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		best = ST_KERN_AVX512;
#endif
	chosen = best;
	const char *force = getenv("ST_KERNELS");
	if (force && !strcmp(force, "generic"))
		chosen = ST_KERN_GENERIC;
}

enum st_kern st_kern_impl(void)
{
	pthread_once(&choose_once, choose);
	return chosen;
}

enum st_kern st_kern_best(void)
{
	pthread_once(&choose_once, choose);
	return best;
}

const char *st_kern_name(enum st_kern k)
{
	return k == ST_KERN_AVX512 ? "avx512" : "generic";
}

size_t st_attn_scratch_floats(int L, int hs)
{
	size_t generic = (size_t)L * L, direct = ((size_t)hs + L) * 16 + 2 * (size_t)L + 16;
	return (generic > direct ? generic : direct) + 16;
}

/* ---- portable C ---- */

static void attn_generic(int L, int hs, float scale, const float *q, const float *k, const float *v, int ld,
			 const float *bias, float *p, float *ctx, int ldc, float *scratch)
{
	float *s = p ? p : scratch;   /* (L, L) */
	/* scores s (L, L) = q (L, hs) . k^T * scale (+ bias), then softmax by rows */
	st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, hs, scale, q, ld, k, ld, 0.0f, s, L);
	for (int i = 0; i < L; i++) {
		float *row = s + (size_t)i * L;
		if (bias) {
			const float *b = bias - i;   /* key j at distance j - i */
#pragma omp simd
			for (int j = 0; j < L; j++)
				row[j] += b[j];
		}
		st_softmax_row(row, L);
	}
	/* ctx (L, hs) = s (L, L) . v (L, hs) */
	st_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, hs, L, 1.0f, s, L, v, ld, 0.0f, ctx, ldc);
}

/* Vector versions from glibc's libmvec (linked through -lm), so that the loops vectorise. */
float erff(float) __attribute__((simd("notinbranch")));

#define SQRT1_2 0.70710678118654752f

static void bias_gelu_generic(float *h, float *a, const float *b, int n)
{
#pragma omp simd
	for (int i = 0; i < n; i++) {
		float x = h[i] + b[i];
		h[i] = x;
		a[i] = 0.5f * x * (1.0f + erff(x * SQRT1_2));
	}
}

static void erf_generic(const float *x, float *y, int n)
{
#pragma omp simd
	for (int i = 0; i < n; i++)
		y[i] = erff(x[i]);
}

/* ---- AVX-512 ---- */

#ifdef KERN_X86
#define TARGET512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))

TARGET512 static inline __mmask16 lanes(int n)   /* the first n lanes (n may be <= 0 or > 16) */
{
	return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* st_exp_neg on 16 lanes (same reduction and polynomial; 2^n by scalef) */
TARGET512 static inline __m512 exp_neg512(__m512 x)
{
	x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);   /* this operand order keeps NaN */
	__m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
					_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723e-06f), r);
	__m512 p = _mm512_set1_ps(1.0f / 720);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

/* 8 of something, written out: arrays of vectors indexed in unrolled loops ended up on the stack. */
#define EIGHT(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* The direct kernel works on groups of 16 query rows, one row a vector lane, so that the softmax over the keys
 * is element-wise between vectors (no horizontal reductions, whose latency dominated short rows):
 *  - qt (hs, 16): the group's queries transposed;
 *  - st (L, 16): scores of key j for the 16 rows = sum over d of k[j][d] (broadcast) * qt[d], 8 keys at a time;
 *    then max, exp, sum and 1/sum by lanes: st holds the probabilities, transposed;
 *  - ctx rows = sum over j of st[j][r] (broadcast) * v[j], 8 rows x 32 columns at a time.
 * Lanes of rows past the end compute on zero queries and are not stored. */
TARGET512 static void attn512(int L, int hs, float scale, const float *q, const float *k, const float *v, int ld,
			      const float *bias, float *p, float *ctx, int ldc, float *scratch)
{
	float *qt = scratch, *st = qt + (size_t)hs * 16, *rb = st + (size_t)L * 16;   /* (hs, 16), (L, 16), (2L + 15) */
	if (bias)   /* rb[m + L - 1] = bias[-m]: the bias of key j for the rows i0.. is rb[i0 - j + L - 1 ..] */
		for (int m = -(L - 1); m <= L - 1 + 16; m++)
			rb[m + L - 1] = m <= L - 1 ? bias[-m] : 0.0f;
	__m512 vscale = _mm512_set1_ps(scale);
	for (int i0 = 0; i0 < L; i0 += 16) {
		int nr = L - i0 < 16 ? L - i0 : 16;
		__mmask16 rows = lanes(nr);
		for (int d = 0; d < hs; d++)
			for (int r = 0; r < 16; r++)
				qt[d * 16 + r] = r < nr ? q[(size_t)(i0 + r) * ld + d] : 0.0f;
		/* scores */
		__m512 mx = _mm512_set1_ps(-INFINITY);
		int j = 0;
		for (; j + 8 <= L; j += 8) {
#define PTR(u) const float *k##u = k + (size_t)(j + u) * ld; __m512 s##u = _mm512_setzero_ps();
			EIGHT(PTR)
#undef PTR
			for (int d = 0; d < hs; d++) {
				__m512 qv = _mm512_loadu_ps(qt + d * 16);
#define FMA(u) s##u = _mm512_fmadd_ps(_mm512_set1_ps(k##u[d]), qv, s##u);
				EIGHT(FMA)
#undef FMA
			}
#define OUT(u) s##u = _mm512_mul_ps(s##u, vscale); \
	if (bias) s##u = _mm512_add_ps(s##u, _mm512_maskz_loadu_ps(rows, rb + i0 - (j + u) + L - 1)); \
	mx = _mm512_max_ps(mx, s##u); _mm512_storeu_ps(st + (size_t)(j + u) * 16, s##u);
			EIGHT(OUT)
#undef OUT
		}
		for (; j < L; j++) {
			const float *kj = k + (size_t)j * ld;
			__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
			int d = 0;
			for (; d + 2 <= hs; d += 2) {
				s0 = _mm512_fmadd_ps(_mm512_set1_ps(kj[d]), _mm512_loadu_ps(qt + d * 16), s0);
				s1 = _mm512_fmadd_ps(_mm512_set1_ps(kj[d + 1]), _mm512_loadu_ps(qt + d * 16 + 16), s1);
			}
			if (d < hs)
				s0 = _mm512_fmadd_ps(_mm512_set1_ps(kj[d]), _mm512_loadu_ps(qt + d * 16), s0);
			s0 = _mm512_mul_ps(_mm512_add_ps(s0, s1), vscale);
			if (bias)
				s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(rows, rb + i0 - j + L - 1));
			mx = _mm512_max_ps(mx, s0);
			_mm512_storeu_ps(st + (size_t)j * 16, s0);
		}
		/* softmax over the keys, by lanes */
		__m512 z = _mm512_setzero_ps();
		for (j = 0; j < L; j++) {
			__m512 e = exp_neg512(_mm512_sub_ps(_mm512_loadu_ps(st + (size_t)j * 16), mx));
			z = _mm512_add_ps(z, e);
			_mm512_storeu_ps(st + (size_t)j * 16, e);
		}
		__m512 iz = _mm512_div_ps(_mm512_set1_ps(1.0f), z);
		for (j = 0; j < L; j++)
			_mm512_storeu_ps(st + (size_t)j * 16, _mm512_mul_ps(_mm512_loadu_ps(st + (size_t)j * 16), iz));
		if (p)
			for (int r = 0; r < nr; r++)
				for (j = 0; j < L; j++)
					p[(size_t)(i0 + r) * L + j] = st[(size_t)j * 16 + r];
		/* ctx rows = probabilities . v, 8 rows x 32 columns at a time */
		for (int r0 = 0; r0 < nr; r0 += 8)
			for (int c0 = 0; c0 < hs; c0 += 32) {
				__mmask16 m0 = lanes(hs - c0), m1 = lanes(hs - c0 - 16);
#define ZERO(u) __m512 a##u = _mm512_setzero_ps(), b##u = _mm512_setzero_ps();
				EIGHT(ZERO)
#undef ZERO
				const float *vr = v + c0, *pj = st + r0;
				for (j = 0; j < L; j++, vr += ld, pj += 16) {
					__m512 v0 = _mm512_maskz_loadu_ps(m0, vr), v1 = _mm512_maskz_loadu_ps(m1, vr + 16);
#define FMA(u) { __m512 w = _mm512_set1_ps(pj[u]); a##u = _mm512_fmadd_ps(w, v0, a##u); \
		 b##u = _mm512_fmadd_ps(w, v1, b##u); }
					EIGHT(FMA)
#undef FMA
				}
				float *o = ctx + (size_t)(i0 + r0) * ldc + c0;
#define OUT(u) if (r0 + u < nr) { _mm512_mask_storeu_ps(o + (size_t)u * ldc, m0, a##u); \
				  _mm512_mask_storeu_ps(o + (size_t)u * ldc + 16, m1, b##u); }
				EIGHT(OUT)
#undef OUT
			}
	}
}
#endif

/* ---- entry points ---- */

void st_attn_head(enum st_kern impl, int L, int hs, float scale, const float *q, const float *k, const float *v,
		  int ld, const float *bias, float *p, float *ctx, int ldc, float *scratch)
{
	if (L <= 0)
		return;
#ifdef KERN_X86
	if (impl == ST_KERN_AVX512 && L <= (p ? ST_ATTN_DIRECT_MAX_P : ST_ATTN_DIRECT_MAX) &&
	    st_kern_best() == ST_KERN_AVX512) {
		attn512(L, hs, scale, q, k, v, ld, bias, p, ctx, ldc, scratch);
		return;
	}
#endif
	attn_generic(L, hs, scale, q, k, v, ld, bias, p, ctx, ldc, scratch);
}

void st_bias_gelu(enum st_kern impl, float *h, float *a, const float *b, int n)
{
	bias_gelu_generic(h, a, b, n);
}

void st_erf_vec(enum st_kern impl, const float *x, float *y, int n)
{
	erf_generic(x, y, n);
}
