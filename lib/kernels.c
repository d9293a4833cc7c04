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

typedef void softmax_fn(float *row, int L);

static void softmax_generic(float *row, int L)
{
	st_softmax_row(row, L);
}

static void attn_generic(softmax_fn *softmax, int L, int hs, float scale, const float *q, const float *k,
			 const float *v, int ld, const float *bias, float *p, float *ctx, int ldc, float *scratch)
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
		softmax(row, L);
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

/* st_softmax_row on 16 lanes at a time (its exp, reductions by lanes then across them); tails masked */
TARGET512 static void softmax512(float *row, int L)
{
	__m512 mx = _mm512_set1_ps(-INFINITY), z = _mm512_setzero_ps();
	for (int j = 0; j < L; j += 16)
		mx = _mm512_mask_max_ps(mx, lanes(L - j), mx, _mm512_maskz_loadu_ps(lanes(L - j), row + j));
	__m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
	for (int j = 0; j < L; j += 16) {
		__mmask16 k = lanes(L - j);
		__m512 e = exp_neg512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + j), m));
		z = _mm512_mask_add_ps(z, k, z, e);
		_mm512_mask_storeu_ps(row + j, k, e);
	}
	__m512 iz = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(z));
	for (int j = 0; j < L; j += 16) {
		__mmask16 k = lanes(L - j);
		_mm512_mask_storeu_ps(row + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + j), iz));
	}
}

/* 8 of something, written out: arrays of vectors indexed in unrolled loops ended up on the stack. */
#define EIGHT(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* o (up to 8 rows, ldc apart; w <= 32 columns) = pt (L, 16 lanes: row u at lane u) . v (L, w); full: w == 32, with
 * plain loads and stores (masked ones, measured, cost much more once the data is out of L1) */
TARGET512 static inline __attribute__((always_inline)) void pv_block(const int full, int L, const float *pt,
	const float *v, int ld, float *o, int ldc, int rows, int w)
{
	__mmask16 m0 = lanes(w), m1 = lanes(w - 16);
#define ZERO(u) __m512 a##u = _mm512_setzero_ps(), b##u = _mm512_setzero_ps();
	EIGHT(ZERO)
#undef ZERO
	for (int j = 0; j < L; j++, v += ld, pt += 16) {
		__m512 v0 = full ? _mm512_loadu_ps(v) : _mm512_maskz_loadu_ps(m0, v);
		__m512 v1 = full ? _mm512_loadu_ps(v + 16) : _mm512_maskz_loadu_ps(m1, v + 16);
#define FMA(u) { __m512 x = _mm512_set1_ps(pt[u]); a##u = _mm512_fmadd_ps(x, v0, a##u); \
		 b##u = _mm512_fmadd_ps(x, v1, b##u); }
		EIGHT(FMA)
#undef FMA
	}
#define OUT(u) if (u < rows) { \
		if (full) _mm512_storeu_ps(o + (size_t)u * ldc, a##u), _mm512_storeu_ps(o + (size_t)u * ldc + 16, b##u); \
		else _mm512_mask_storeu_ps(o + (size_t)u * ldc, m0, a##u), \
		     _mm512_mask_storeu_ps(o + (size_t)u * ldc + 16, m1, b##u); }
	EIGHT(OUT)
#undef OUT
}

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
			for (int c0 = 0; c0 < hs; c0 += 32)
				if (hs - c0 >= 32)
					pv_block(1, L, st + r0, v + c0, ld, ctx + (size_t)(i0 + r0) * ldc + c0, ldc, nr - r0, 32);
				else
					pv_block(0, L, st + r0, v + c0, ld, ctx + (size_t)(i0 + r0) * ldc + c0, ldc, nr - r0, hs - c0);
	}
}

/* erf on 16 lanes, within 1.2 ulp: erf(-x) = -erf(x); |x| in [0, 4) cut into 16 intervals of 0.25, a
 * polynomial of degree 6 in u = |x| - centre on each (least squares on Chebyshev nodes against double erf; by
 * tests/unit/kernels.c's sweep within 1.14 ulp), its coefficients picked by lane from 16-entry tables; from 4 on,
 * erf rounds to 1 (float), and the last polynomial gives 1 at 4. On the first interval the centre is 0 and
 * the polynomial x (1.128... + ...) is evaluated as x + x (0.128... + ...), so that tiny x keep their
 * relative precision. NaN stays NaN. */
static const float erf_coef[7][16] __attribute__((aligned(64))) = {
	{ 0, 0.404116899, 0.623240888, 0.784075081, 0.888388216, 0.948170066, 0.978443742, 0.99199003, 0.997345984, 0.999217033, 0.999794602, 0.999952137, 0.999990106, 0.999998212, 0.999999702, 0.99999994 },
	{ 0.128379166, 0.980352819, 0.763499558, 0.524745047, 0.318273962, 0.170359775, 0.0804722533, 0.0335458256, 0.0123408195, 0.004006478, 0.00114787545, 0.00029022849, 6.47587949e-05, 1.27517833e-05, 2.21593359e-06, 3.39825789e-07 },
	{ -8.53981589e-07, -0.3676323, -0.477187216, -0.459151924, -0.358058214, -0.234244689, -0.13076742, -0.0628984272, -0.0262242425, -0.00951538421, -0.00301317219, -0.00083440647, -0.000202370997, -4.30371765e-05, -8.03272997e-06, -1.31681736e-06 },
	{ -0.376086324, -0.234875023, -0.0556747913, 0.0929196477, 0.162450284, 0.157938004, 0.114841931, 0.0674421415, 0.0330378078, 0.0137305092, 0.00489028171, 0.0015024232, 0.000399962708, 9.25610002e-05, 1.86669549e-05, 3.2867531e-06 },
	{ -0.000688746513, 0.166579977, 0.176457822, 0.112397119, 0.0279751271, -0.030499313, -0.0497186854, -0.0422603153, -0.0263612494, -0.0131333955, -0.00541430525, -0.00188171898, -0.000557540043, -0.000141871249, -3.11624353e-05, -5.93072127e-06 },
	{ 0.11820963, 0.045326151, -0.0270350482, -0.0667091832, -0.061061196, -0.0306439158, -0.002303252, 0.011328022, 0.0124442121, 0.00836057868, 0.0042364141, 0.00172770733, 0.000584262016, 0.000166579804, 4.0459603e-05, 8.43044381e-06 },
	{ -0.0194480438, -0.0497565009, -0.0411363952, -0.0104248635, 0.0153491488, 0.0220283009, 0.0143965213, 0.00414962322, -0.00177826709, -0.00309547549, -0.00224569999, -0.00114428904, -0.000455789239, -0.000148125371, -4.01591024e-05, -9.20455659e-06 },
};

TARGET512 static inline __m512 erf512(__m512 x)
{
	__m512 ax = _mm512_min_ps(_mm512_set1_ps(4.0f), _mm512_abs_ps(x));   /* this operand order keeps NaN */
	__m512i idx = _mm512_min_epi32(_mm512_cvttps_epi32(_mm512_mul_ps(ax, _mm512_set1_ps(4.0f))),
				       _mm512_set1_epi32(15));
	__m512 centre = _mm512_permutexvar_ps(idx, _mm512_setr_ps(0.0f, 0.375f, 0.625f, 0.875f, 1.125f, 1.375f, 1.625f,
		1.875f, 2.125f, 2.375f, 2.625f, 2.875f, 3.125f, 3.375f, 3.625f, 3.875f));
	__m512 u = _mm512_sub_ps(ax, centre);
	__m512 p = _mm512_permutexvar_ps(idx, _mm512_load_ps(erf_coef[6]));
	for (int j = 5; j >= 1; j--)
		p = _mm512_fmadd_ps(p, u, _mm512_permutexvar_ps(idx, _mm512_load_ps(erf_coef[j])));
	/* base = c0, or u itself on the first interval (exact either way) */
	__mmask16 first = _mm512_cmp_epi32_mask(idx, _mm512_setzero_si512(), _MM_CMPINT_EQ);
	__m512 base = _mm512_mask_mov_ps(_mm512_permutexvar_ps(idx, _mm512_load_ps(erf_coef[0])), first, u);
	__m512 y = _mm512_fmadd_ps(p, u, base);
	/* the sign of x */
	return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(y), _mm512_and_si512(_mm512_castps_si512(x),
						    _mm512_set1_epi32((int)0x80000000u))));
}

/* 0.5 x (1 + erf(x / sqrt 2)), the same float operations as the portable loop */
TARGET512 static inline __m512 gelu512(__m512 x)
{
	__m512 e = erf512(_mm512_mul_ps(x, _mm512_set1_ps(SQRT1_2)));
	return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* masked loads and stores only for the tail (masked ones throughout measured 1.5x slower out of cache) */
TARGET512 static void bias_gelu512(float *h, float *a, const float *b, int n)
{
	int i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512 x = _mm512_add_ps(_mm512_loadu_ps(h + i), _mm512_loadu_ps(b + i));
		_mm512_storeu_ps(h + i, x);
		_mm512_storeu_ps(a + i, gelu512(x));
	}
	if (i < n) {
		__mmask16 m = lanes(n - i);
		__m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(m, h + i), _mm512_maskz_loadu_ps(m, b + i));
		_mm512_mask_storeu_ps(h + i, m, x);
		_mm512_mask_storeu_ps(a + i, m, gelu512(x));
	}
}

TARGET512 static void erf512_vec(const float *x, float *y, int n)
{
	for (int i = 0; i < n; i += 16) {
		__mmask16 m = lanes(n - i);
		_mm512_mask_storeu_ps(y + i, m, erf512(_mm512_maskz_loadu_ps(m, x + i)));
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
	if (impl == ST_KERN_AVX512 && st_kern_best() == ST_KERN_AVX512) {
		attn_generic(softmax512, L, hs, scale, q, k, v, ld, bias, p, ctx, ldc, scratch);
		return;
	}
#endif
	attn_generic(softmax_generic, L, hs, scale, q, k, v, ld, bias, p, ctx, ldc, scratch);
}

void st_bias_gelu(enum st_kern impl, float *h, float *a, const float *b, int n)
{
#ifdef KERN_X86
	if (impl == ST_KERN_AVX512 && st_kern_best() == ST_KERN_AVX512) {
		bias_gelu512(h, a, b, n);
		return;
	}
#endif
	bias_gelu_generic(h, a, b, n);
}

void st_erf_vec(enum st_kern impl, const float *x, float *y, int n)
{
#ifdef KERN_X86
	if (impl == ST_KERN_AVX512 && st_kern_best() == ST_KERN_AVX512) {
		erf512_vec(x, y, n);
		return;
	}
#endif
	erf_generic(x, y, n);
}
