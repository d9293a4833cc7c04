/* gemm.c: st_sgemm, cblas_sgemm or our own cache-blocked AVX-512 / AVX2 kernel (gemm.h, docs/gemm.md).
 *
 * The own kernel works on row-major C; a column-major call is the row-major product C^T = op(B)^T op(A)^T.
 * C is cut into MR x NR tiles: per k, MR broadcasts of op(A) times NR/16 (or NR/8) vectors of op(B), summed
 * in MR * NR/W vector registers. Loops, outermost first:
 *   jc: op(B)'s columns in blocks of nc   (the packed block kc x nc stays in L2)
 *   pc: K in blocks of kc                 (pack op(B)[pc.., jc..] into NR-column panels)
 *   ir: op(A)'s rows in panels of MR      (MR rows of A in place, or a packed MR x kc panel; stays in L1)
 *   jr: the NR-column panels of the block (the micro-kernel: C[ir.., jc+jr..] += A panel x B panel)
 * Packing only pays when a panel is reused many times and reading in place would be slow: the AVX-512 kernel
 * broadcasts from MR rows of A in place (op(A) not transposed), or from its columns when few B panels use
 * them, and reads op(B) in place when few A panels use it and it is not transposed (the "direct" modes).
 * Threads take disjoint row (or column) ranges of C and run the loops above on their own packed copies. */
#include "gemm.h"
#include "st.h"

#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define GEMM_X86 1
#endif

/* K per packed block: an AVX-512 A panel (12 x 384 floats, 18 KiB) stays in L1 (48 KiB) while B streams. */
#define GEMM_KC 384
/* L2 bytes assumed when sysconf cannot tell; the packed B block takes half of L2. */
#define GEMM_L2_DEFAULT (1 << 20)
/* A transposed op(A) is read in place when at most this many columns of C use each panel (a packed panel
 * would be reused fewer than 4 times); op(A) not transposed is always read in place (12 row streams). */
#define GEMM_DIRECT_A_MAX_N 128
/* op(B) (not transposed) is read in place when a thread has at most this many rows of C. */
#define GEMM_DIRECT_B_MAX_M 48
/* Each extra thread needs at least this many multiply-adds (starting a team costs microseconds). */
#define GEMM_MIN_WORK_PER_THREAD (1 << 21)

/* How the micro-kernel reads op(A): a packed panel (Ap[k * MR + r]), rows in place (A[r * lda + k]: op(A)
 * not transposed) or columns in place (A[k * lda + r]: op(A) transposed). */
enum { A_PACKED, A_ROWS, A_COLS };

/* C[mr x nc] (alpha, beta) = A panel (mr x kc) x B (kc x nc): b is packed NR-column panels (panel p at
 * b + p * kc * NR) or, "direct", op(B) in place with row stride ldb. */
typedef void gemm_macro_fn(int mr, int nc, int kc, const float *a, size_t lda, const float *b, size_t ldb,
	float *C, size_t ldc, float alpha, float beta);
/* Ap (MR x kc) from op(A)'s rows [0, mr); A points at op(A)(0, 0). */
typedef void gemm_pack_a_fn(int mr, int kc, const float *A, size_t lda, int trans, float *Ap);
/* Bp (NR-column panels, kc x NR each) from op(B)'s columns [0, nc); B points at op(B)(0, 0). */
typedef void gemm_pack_b_fn(int kc, int nc, const float *B, size_t ldb, int trans, float *Bp);

struct gemm_kernel {
	int mr, nr;
	gemm_macro_fn *macro[3][2];   /* [A mode][B direct]; NULL where the kernel has no such mode */
	gemm_pack_a_fn *pack_a;
	gemm_pack_b_fn *pack_b;
};

static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }
static int min_int(int a, int b) { return a < b ? a : b; }

#ifdef GEMM_X86
/* ---- portable packing (the AVX2 kernel's) ---- */

/* Ap[k * MR + r] = op(A)(r, k) for r < mr, 0 for mr <= r < MR. */
static inline __attribute__((always_inline)) void pack_a_plain(const int MR, int mr, int kc, const float *A,
	size_t lda, int trans, float *restrict Ap)
{
	if (!trans) {   /* op(A)(r, k) = A[r * lda + k]: read rows, write with stride MR */
		for (int r = 0; r < mr; r++)
			for (int k = 0; k < kc; k++)
				Ap[(size_t)k * MR + r] = A[r * lda + k];
	} else {        /* op(A)(r, k) = A[k * lda + r]: a contiguous run of mr per k */
		for (int k = 0; k < kc; k++)
			for (int r = 0; r < mr; r++)
				Ap[(size_t)k * MR + r] = A[k * lda + r];
	}
	for (int k = 0; k < kc && mr < MR; k++)
		for (int r = mr; r < MR; r++)
			Ap[(size_t)k * MR + r] = 0;
}

/* Panel p at Bp + p * kc * NR: Bp[p][k * NR + c] = op(B)(k, p * NR + c), zero beyond nc. */
static inline __attribute__((always_inline)) void pack_b_plain(const int NR, int kc, int nc, const float *B,
	size_t ldb, int trans, float *restrict Bp)
{
	for (int j = 0; j < nc; j += NR) {
		int nr = min_int(NR, nc - j);
		float *dst = Bp + (size_t)j * kc;
		if (!trans) {   /* op(B)(k, j) = B[k * ldb + j] */
			for (int k = 0; k < kc; k++)
				for (int c = 0; c < NR; c++)
					dst[(size_t)k * NR + c] = c < nr ? B[k * ldb + j + c] : 0;
		} else {        /* op(B)(k, j) = B[j * ldb + k]: read rows of B, write with stride NR */
			for (int c = 0; c < nr; c++)
				for (int k = 0; k < kc; k++)
					dst[(size_t)k * NR + c] = B[(j + c) * ldb + k];
			for (int k = 0; k < kc && nr < NR; k++)
				for (int c = nr; c < NR; c++)
					dst[(size_t)k * NR + c] = 0;
		}
	}
}

/* ---- AVX-512: 12 x 32 tile, 24 zmm accumulators, op(A) broadcast from memory ---- */
#define TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))
enum { MR512 = 12, NR512 = 32 };

TARGET_AVX512 static inline __attribute__((always_inline)) __mmask16 mask16(int n)
{
	return n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* tile[r][0..31] = sum over k of op(A)(r, k) op(B)(k, 0..31), r < MR512, in 24 zmm accumulators. Kept apart
 * from the update of C (and not inlined into it): with alpha, beta, masks and C's row pointers live as well,
 * GCC ran out of the 32 zmm registers and re-read both B vectors from the stack for every FMA (half speed).
 * In A_COLS mode MR512 rows of op(A) are read (the caller guarantees them). */
TARGET_AVX512 static inline __attribute__((always_inline)) void micro512_sum(const int amode, const int bdirect,
	int kc, const float *restrict a, size_t lda, const float *restrict b, size_t ldb, int mr, __mmask16 m0,
	__mmask16 m1, float (*restrict tile)[NR512])
{
	__m512 acc[MR512][2];
#pragma GCC unroll 12
	for (int r = 0; r < MR512; r++)
		acc[r][0] = acc[r][1] = _mm512_setzero_ps();
	const float *row[MR512];
	if (amode == A_ROWS)   /* rows past mr repeat the last one; their sums are not stored */
#pragma GCC unroll 12
		for (int r = 0; r < MR512; r++)
			row[r] = a + (r < mr ? r : mr - 1) * lda;
	for (int k = 0; k < kc; k++) {
		__m512 b0, b1;
		if (bdirect) {   /* masked loads: lanes beyond nr are neither read nor can fault */
			b0 = _mm512_maskz_loadu_ps(m0, b);
			b1 = _mm512_maskz_loadu_ps(m1, b + 16);
			b += ldb;
		} else {
			b0 = _mm512_load_ps(b);
			b1 = _mm512_load_ps(b + 16);
			b += NR512;
		}
#pragma GCC unroll 12
		for (int r = 0; r < MR512; r++) {
			__m512 ar = _mm512_set1_ps(amode == A_ROWS ? row[r][k] : a[r]);
			acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
			acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
		}
		if (amode == A_PACKED)
			a += MR512;
		else if (amode == A_COLS)
			a += lda;
	}
#pragma GCC unroll 12
	for (int r = 0; r < MR512; r++) {
		_mm512_store_ps(tile[r], acc[r][0]);
		_mm512_store_ps(tile[r] + 16, acc[r][1]);
	}
}

#define SUM512(NAME, AMODE, BDIRECT)                                                                           \
	TARGET_AVX512 __attribute__((noinline)) static void NAME(int kc, const float *restrict a, size_t lda,   \
		const float *restrict b, size_t ldb, int mr, __mmask16 m0, __mmask16 m1,                        \
		float (*restrict tile)[NR512])                                                                 \
	{                                                                                                      \
		micro512_sum(AMODE, BDIRECT, kc, a, lda, b, ldb, mr, m0, m1, tile);                            \
	}
SUM512(sum512_pp, A_PACKED, 0)
SUM512(sum512_pd, A_PACKED, 1)
SUM512(sum512_rp, A_ROWS, 0)
SUM512(sum512_rd, A_ROWS, 1)
SUM512(sum512_cp, A_COLS, 0)
SUM512(sum512_cd, A_COLS, 1)

/* C[mr x nr] = alpha A B + beta C for one tile (masked loads and stores: nothing outside C is touched). */
TARGET_AVX512 static inline __attribute__((always_inline)) void micro512(const int amode, const int bdirect,
	int kc, const float *restrict a, size_t lda, const float *restrict b, size_t ldb, float *C, size_t ldc,
	int mr, int nr, float alpha, float beta)
{
	__attribute__((aligned(64))) float tile[MR512][NR512];
	__mmask16 m0 = mask16(nr), m1 = mask16(nr - 16);
	if (amode == A_PACKED)
		(bdirect ? sum512_pd : sum512_pp)(kc, a, lda, b, ldb, mr, m0, m1, tile);
	else if (amode == A_ROWS)
		(bdirect ? sum512_rd : sum512_rp)(kc, a, lda, b, ldb, mr, m0, m1, tile);
	else
		(bdirect ? sum512_cd : sum512_cp)(kc, a, lda, b, ldb, mr, m0, m1, tile);
	__m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
	for (int r = 0; r < mr; r++) {
		float *c = C + r * ldc;
		__m512 x0 = _mm512_mul_ps(_mm512_load_ps(tile[r]), va), x1 = _mm512_mul_ps(_mm512_load_ps(tile[r] + 16), va);
		if (beta != 0) {   /* beta == 0: C may be garbage (NaN) and is not read */
			x0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c), x0);
			x1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16), x1);
		}
		_mm512_mask_storeu_ps(c, m0, x0);
		_mm512_mask_storeu_ps(c + 16, m1, x1);
	}
}

#define MACRO512(NAME, AMODE, BDIRECT)                                                                        \
	TARGET_AVX512 static void NAME(int mr, int nc, int kc, const float *a, size_t lda, const float *b,     \
		size_t ldb, float *C, size_t ldc, float alpha, float beta)                                      \
	{                                                                                                      \
		for (int j = 0; j < nc; j += NR512)                                                            \
			micro512(AMODE, BDIRECT, kc, a, lda, BDIRECT ? b + j : b + (size_t)j * kc, ldb, C + j, \
				ldc, mr, min_int(NR512, nc - j), alpha, beta);                                  \
	}
MACRO512(macro512_pp, A_PACKED, 0)
MACRO512(macro512_pd, A_PACKED, 1)
MACRO512(macro512_rp, A_ROWS, 0)
MACRO512(macro512_rd, A_ROWS, 1)
MACRO512(macro512_cp, A_COLS, 0)
MACRO512(macro512_cd, A_COLS, 1)

/* dst[k * P + i] = src[i * ld + k] for rows i < n (zero for n <= i < P), k < kc: the transposing pack
 * (op(A) not transposed, op(B) transposed). Groups of 4 rows x 16 k are transposed in registers (4 x 4 within
 * each 128-bit lane) and stored as 4-float pieces. */
TARGET_AVX512 static inline __attribute__((always_inline)) void pack512_transpose(const int P, int n, int kc,
	const float *src, size_t ld, float *restrict dst)
{
	for (int g = 0; g < P; g += 4) {
		const float *s0 = src + (size_t)g * ld;
		for (int k0 = 0; k0 < kc; k0 += 16) {
			__mmask16 km = mask16(kc - k0);
			__m512 zero = _mm512_setzero_ps();
			__m512 r0 = g + 0 < n ? _mm512_maskz_loadu_ps(km, s0 + k0) : zero;
			__m512 r1 = g + 1 < n ? _mm512_maskz_loadu_ps(km, s0 + ld + k0) : zero;
			__m512 r2 = g + 2 < n ? _mm512_maskz_loadu_ps(km, s0 + 2 * ld + k0) : zero;
			__m512 r3 = g + 3 < n ? _mm512_maskz_loadu_ps(km, s0 + 3 * ld + k0) : zero;
			__m512 t0 = _mm512_unpacklo_ps(r0, r1), t1 = _mm512_unpackhi_ps(r0, r1);
			__m512 t2 = _mm512_unpacklo_ps(r2, r3), t3 = _mm512_unpackhi_ps(r2, r3);
			/* lane l of u[j] holds rows g..g+3 at k = k0 + 4 l + j */
			__m512 u[4] = { _mm512_shuffle_ps(t0, t2, 0x44), _mm512_shuffle_ps(t0, t2, 0xee),
				_mm512_shuffle_ps(t1, t3, 0x44), _mm512_shuffle_ps(t1, t3, 0xee) };
			float *d = dst + (size_t)k0 * P + g;
			if (km == 0xffff) {
#pragma GCC unroll 4
				for (int j = 0; j < 4; j++) {
					_mm_storeu_ps(d + (0 + j) * P, _mm512_extractf32x4_ps(u[j], 0));
					_mm_storeu_ps(d + (4 + j) * P, _mm512_extractf32x4_ps(u[j], 1));
					_mm_storeu_ps(d + (8 + j) * P, _mm512_extractf32x4_ps(u[j], 2));
					_mm_storeu_ps(d + (12 + j) * P, _mm512_extractf32x4_ps(u[j], 3));
				}
			} else {   /* the last, partial group of k */
				float t[4][16];
				for (int j = 0; j < 4; j++)
					_mm512_storeu_ps(t[j], u[j]);
				for (int k = 0; k < kc - k0; k++)   /* k = 4 l + j */
					memcpy(d + (size_t)k * P, &t[k % 4][4 * (k / 4)], 4 * sizeof(float));
			}
		}
	}
}

/* dst[k * P + i] = src[k * ld + i] for i < n (zero for n <= i < P), k < kc: the copying pack (op(A)
 * transposed, op(B) not). P is 12 or 32. */
TARGET_AVX512 static inline __attribute__((always_inline)) void pack512_copy(const int P, int n, int kc,
	const float *src, size_t ld, float *restrict dst)
{
	__mmask16 m0 = mask16(n), m1 = mask16(n - 16);
	if (P == 32) {
		for (int k = 0; k < kc; k++) {
			_mm512_store_ps(dst + (size_t)k * 32, _mm512_maskz_loadu_ps(m0, src + k * ld));
			_mm512_store_ps(dst + (size_t)k * 32 + 16, _mm512_maskz_loadu_ps(m1, src + k * ld + 16));
		}
	} else {
		for (int k = 0; k < kc; k++)
			_mm512_mask_storeu_ps(dst + (size_t)k * P, mask16(P), _mm512_maskz_loadu_ps(m0, src + k * ld));
	}
}

/* dst[k * 32 + c] = src[c * ld + k] for c < n (zero for n <= c < 32), k < kc: the transposing B pack (op(B) =
 * B^T, the x W^T of every projection). Blocks of 16 rows x 16 k are transposed in registers (unpack, shuffle,
 * two 128-bit lane shuffles) and stored as whole 64-byte half rows of the panel. */
TARGET_AVX512 static inline __attribute__((always_inline)) void pack512_transpose32(int n, int kc, const float *src,
	size_t ld, float *restrict dst)
{
	for (int c0 = 0; c0 < 32; c0 += 16) {
		const float *s0 = src + (size_t)c0 * ld;
		for (int k0 = 0; k0 < kc; k0 += 16) {
			__mmask16 km = mask16(kc - k0);
			__m512 r[16], t[16], u[16];
#pragma GCC unroll 16
			for (int i = 0; i < 16; i++)
				r[i] = c0 + i < n ? _mm512_maskz_loadu_ps(km, s0 + i * ld + k0) : _mm512_setzero_ps();
#pragma GCC unroll 8
			for (int i = 0; i < 16; i += 2) {
				t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
				t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
			}
			/* u[4 g + j], lane l: rows 4 g .. 4 g + 3 at k = 4 l + j */
#pragma GCC unroll 4
			for (int g = 0; g < 4; g++) {
				u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
				u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
				u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
				u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
			}
			float *d = dst + (size_t)k0 * 32 + c0;
			int kn = kc - k0 < 16 ? kc - k0 : 16;
#pragma GCC unroll 4
			for (int j = 0; j < 4; j++) {
				__m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88), v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);
				__m512 w0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
				__m512 w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
				__m512 o[4] = { _mm512_shuffle_f32x4(v0, w0, 0x88), _mm512_shuffle_f32x4(v1, w1, 0x88),
					_mm512_shuffle_f32x4(v0, w0, 0xdd), _mm512_shuffle_f32x4(v1, w1, 0xdd) };
#pragma GCC unroll 4
				for (int l = 0; l < 4; l++)   /* o[l] holds k = k0 + 4 l + j */
					if (4 * l + j < kn)
						_mm512_store_ps(d + (size_t)(4 * l + j) * 32, o[l]);
			}
		}
	}
}

TARGET_AVX512 static void pack_a512(int mr, int kc, const float *A, size_t lda, int trans, float *Ap)
{
	if (trans)
		pack512_copy(MR512, mr, kc, A, lda, Ap);
	else
		pack512_transpose(MR512, mr, kc, A, lda, Ap);
}

TARGET_AVX512 static void pack_b512(int kc, int nc, const float *B, size_t ldb, int trans, float *Bp)
{
	for (int j = 0; j < nc; j += NR512) {
		int nr = min_int(NR512, nc - j);
		if (trans)
			pack512_transpose32(nr, kc, B + j * ldb, ldb, Bp + (size_t)j * kc);
		else
			pack512_copy(NR512, nr, kc, B + j, ldb, Bp + (size_t)j * kc);
	}
}

/* ---- AVX2 + FMA: 6 x 16 tile, 12 ymm accumulators, packed panels only ---- */
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
enum { MR256 = 6, NR256 = 16 };

TARGET_AVX2 static inline __attribute__((always_inline)) __m256i mask256(int n)
{
	static const int32_t ones_then_zeros[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };
	n = n < 0 ? 0 : n > 8 ? 8 : n;
	return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - n));
}

TARGET_AVX2 static inline __attribute__((always_inline)) void micro256(int kc, const float *restrict a,
	const float *restrict b, float *C, size_t ldc, int mr, int nr, float alpha, float beta)
{
	__m256 acc[MR256][2];
#pragma GCC unroll 6
	for (int r = 0; r < MR256; r++)
		acc[r][0] = acc[r][1] = _mm256_setzero_ps();
	for (int k = 0; k < kc; k++) {
		__m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
		for (int r = 0; r < MR256; r++) {
			__m256 ar = _mm256_broadcast_ss(a + r);
			acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
			acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
		}
		a += MR256;
		b += NR256;
	}
	/* maskload/maskstore neither read nor write (nor fault on) the lanes beyond nr */
	__m256i m0 = mask256(nr), m1 = mask256(nr - 8);
	__m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
	for (int r = 0; r < MR256; r++) {
		if (r >= mr)
			break;
		float *c = C + r * ldc;
		__m256 x0 = _mm256_mul_ps(acc[r][0], va), x1 = _mm256_mul_ps(acc[r][1], va);
		if (beta != 0) {
			x0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c, m0), x0);
			x1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c + 8, m1), x1);
		}
		_mm256_maskstore_ps(c, m0, x0);
		_mm256_maskstore_ps(c + 8, m1, x1);
	}
}

TARGET_AVX2 static void macro256(int mr, int nc, int kc, const float *a, size_t lda, const float *b, size_t ldb,
	float *C, size_t ldc, float alpha, float beta)
{
	for (int j = 0; j < nc; j += NR256)
		micro256(kc, a, b + (size_t)j * kc, C + j, ldc, mr, min_int(NR256, nc - j), alpha, beta);
}

static void pack_a256(int mr, int kc, const float *A, size_t lda, int trans, float *Ap)
{
	pack_a_plain(MR256, mr, kc, A, lda, trans, Ap);
}

static void pack_b256(int kc, int nc, const float *B, size_t ldb, int trans, float *Bp)
{
	pack_b_plain(NR256, kc, nc, B, ldb, trans, Bp);
}

static const struct gemm_kernel kernel512 = { MR512, NR512,
	{ { macro512_pp, macro512_pd }, { macro512_rp, macro512_rd }, { macro512_cp, macro512_cd } },
	pack_a512, pack_b512 };
static const struct gemm_kernel kernel256 = { MR256, NR256, { { macro256, NULL } }, pack_a256, pack_b256 };
#endif

/* ---- the blocked driver ---- */

/* Columns of a packed B block (kc x nc floats in about half of L2), a multiple of nr. */
static int gemm_nc_cap(int kc, int nr)
{
	static long l2;
	if (!l2) {
		long n = -1;
#ifdef _SC_LEVEL2_CACHE_SIZE
		n = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
		l2 = n > 0 ? n : GEMM_L2_DEFAULT;   /* a benign race: every thread computes the same value */
	}
	int nc = (int)(l2 / 2 / ((long)kc * sizeof(float))) / nr * nr;
	return nc < nr ? nr : nc;
}

/* How one thread cuts its m x n x k part: K into equal blocks of at most GEMM_KC (K = 400 is 2 x 200, not
 * 384 + 16), N into equal blocks of at most the L2 cap. */
struct gemm_plan {
	int kc, nc;           /* block sizes */
	int b_direct;         /* op(B) read in place */
	size_t a_floats, b_floats;   /* packing buffer parts */
};

static struct gemm_plan gemm_plan(const struct gemm_kernel *kern, int tb, int m, int n, int k)
{
	struct gemm_plan p;
	int kblocks = (k + GEMM_KC - 1) / GEMM_KC;
	p.kc = (k + kblocks - 1) / kblocks;
	int cap = gemm_nc_cap(p.kc, kern->nr), nblocks = (n + cap - 1) / cap;
	p.nc = (int)round_up((n + nblocks - 1) / nblocks, kern->nr);
	p.b_direct = !tb && m <= GEMM_DIRECT_B_MAX_M && kern->macro[A_PACKED][1];
	p.a_floats = round_up((size_t)p.kc * kern->mr, 16);
	p.b_floats = p.b_direct ? 0 : (size_t)p.kc * min_int(p.nc, (int)round_up(n, kern->nr));
	return p;
}

/* Row-major C[m x n] = alpha op(A) op(B) + beta C for one thread. A points at op(A)(0, 0), B at op(B)(0, 0);
 * buf holds the plan's a_floats + b_floats, 64-byte aligned. */
static void gemm_part(const struct gemm_kernel *kern, int ta, int tb, int m, int n, int k, float alpha,
	const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc, float *buf)
{
	const int MR = kern->mr;
	struct gemm_plan p = gemm_plan(kern, tb, m, n, k);
	float *Ap = buf, *Bp = buf + p.a_floats;
	for (int jc = 0; jc < n; jc += p.nc) {
		int nc = min_int(p.nc, n - jc);
		/* rows of A are read in place (MR streams through L1); columns only when few B panels use them */
		int a_mode = !ta ? A_ROWS : nc > GEMM_DIRECT_A_MAX_N ? A_PACKED : A_COLS;
		if (!kern->macro[a_mode][p.b_direct])
			a_mode = A_PACKED;
		for (int pc = 0; pc < k; pc += p.kc) {
			int kc = min_int(p.kc, k - pc);
			float beta_block = pc == 0 ? beta : 1.0f;
			const float *b = tb ? B + jc * ldb + pc : B + pc * ldb + jc;
			size_t ldb_kernel = ldb;
			if (!p.b_direct) {
				kern->pack_b(kc, nc, b, ldb, tb, Bp);
				b = Bp;
				ldb_kernel = kern->nr;
			}
			for (int ir = 0; ir < m; ir += MR) {
				int mr = min_int(MR, m - ir);
				const float *a = ta ? A + pc * lda + ir : A + ir * lda + pc;
				int mode = a_mode == A_COLS && mr < MR ? A_PACKED : a_mode;   /* A_COLS reads MR rows */
				if (mode == A_PACKED) {
					kern->pack_a(mr, kc, a, lda, ta, Ap);
					a = Ap;
				}
				kern->macro[mode][p.b_direct](mr, nc, kc, a, lda, b, ldb_kernel, C + ir * ldc + jc, ldc,
					alpha, beta_block);
			}
		}
	}
}

/* C = beta C, for alpha == 0 or K == 0 (BLAS reads neither A nor B then). */
static void gemm_scale(int m, int n, float beta, float *C, size_t ldc)
{
	for (int i = 0; i < m; i++) {
		float *c = C + i * ldc;
		if (beta == 0)
			memset(c, 0, n * sizeof(float));
		else if (beta != 1)
			for (int j = 0; j < n; j++)
				c[j] *= beta;
	}
}

/* The calling thread's packing buffer (for all its worker threads), kept between calls. Per calling thread,
 * so concurrent callers (threads of an outer parallel region) never share one. */
static __thread float *gemm_buf;
static __thread size_t gemm_buf_floats;

static float *gemm_buffer(size_t floats)
{
	if (floats > gemm_buf_floats) {
		free(gemm_buf);
		gemm_buf = NULL;
		gemm_buf_floats = 0;
		if (posix_memalign((void **)&gemm_buf, 64, round_up(floats * sizeof(float), 64)))
			return gemm_buf = NULL;
		gemm_buf_floats = floats;
	}
	return gemm_buf;
}

/* Row-major C[m x n] = alpha op(A) op(B) + beta C by OpenBLAS on the calling thread (its pthreads build is kept
 * to one thread: st.c's st_set_threads). */
static void blas_part(int ta, int tb, int m, int n, int k, float alpha, const float *A, size_t lda, const float *B,
	size_t ldb, float beta, float *C, size_t ldc)
{
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha,
		A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* Row-major, arguments checked, by the own kernel kern or, kern NULL, by OpenBLAS, on OpenMP's threads (one
 * inside a parallel region: the caller already uses the cores). Returns 0 when done, -1 when the own kernel's
 * buffer could not be allocated. */
static int gemm_threads(const struct gemm_kernel *kern, int ta, int tb, int M, int N, int K, float alpha,
	const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc, int max_threads)
{
	int threads = 1;
#ifdef _OPENMP
	if (!omp_in_parallel())
		threads = omp_get_max_threads();
#endif
	if (max_threads > 0 && threads > max_threads)
		threads = max_threads;
	double work = (double)M * N * K;
	if (threads > 1 && work / threads < GEMM_MIN_WORK_PER_THREAD)
		threads = work < 2.0 * GEMM_MIN_WORK_PER_THREAD ? 1 : (int)(work / GEMM_MIN_WORK_PER_THREAD);
	/* split the longer side of C, in whole tiles */
	int split_rows = M >= N, side = split_rows ? M : N;
	int tile = !kern ? 16 : split_rows ? kern->mr : kern->nr;
	int chunk = (int)round_up((side + threads - 1) / threads, tile);
	threads = (side + chunk - 1) / chunk;
	size_t per_thread = 0;
	float *buf = NULL;
	if (kern) {
		struct gemm_plan p = gemm_plan(kern, tb, split_rows ? chunk : M, split_rows ? N : chunk, K);
		per_thread = round_up(p.a_floats + p.b_floats, 16);
		if (!(buf = gemm_buffer(per_thread * threads)))
			return -1;
	}
	if (threads == 1) {   /* no parallel region at all: for attention-sized products it cost more than the work */
		if (kern)
			gemm_part(kern, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, buf);
		else
			blas_part(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return 0;
	}
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static, 1)
#endif
	for (int t = 0; t < threads; t++) {
		int lo = t * chunk, len = min_int(chunk, side - lo);
		int m = split_rows ? len : M, n = split_rows ? N : len;
		const float *a = split_rows ? (ta ? A + lo : A + lo * lda) : A;
		const float *b = split_rows ? B : (tb ? B + lo * ldb : B + lo);
		float *c = split_rows ? C + lo * ldc : C + lo;
		if (kern)
			gemm_part(kern, ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc, buf + t * per_thread);
		else
			blas_part(ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc);
	}
	return 0;
}

/* ---- dispatch ---- */

/* own_impl: the best own kernel the CPU runs. chosen[class]: what st_sgemm uses for small products (attention
 * per head) and large ones (projections), decided by timing both candidates once per process (calibrate). */
enum { CLASS_SMALL, CLASS_LARGE };
static enum st_gemm_impl own_impl = ST_GEMM_BLAS, chosen[2] = { ST_GEMM_BLAS, ST_GEMM_BLAS };
static double calib_gflops[2][2];   /* [class][0: OpenBLAS, 1: own], 0 when not measured */
static const char *choice_reason = "no own kernel for this CPU";
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

/* Products of fewer multiply-adds than this count as small (attention per head up to L = 128 and hs = 32:
 * 524288); the smallest projection (16 tokens x 384 x 384) has 2.4M. */
#define GEMM_SMALL_WORK (1 << 20)

static int work_class(int M, int N, int K)
{
	return (double)M * N * K < GEMM_SMALL_WORK ? CLASS_SMALL : CLASS_LARGE;
}

static double seconds_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

/* One calibration product, row-major C (m x n) = op(A) op(B), on one thread: OpenBLAS (own == 0) or the own
 * kernel. */
static void calib_run(int own, const struct gemm_kernel *kern, int ta, int tb, int m, int n, int k, const float *A,
	const float *B, float *C)
{
	gemm_threads(own ? kern : NULL, ta, tb, m, n, k, 1.0f, A, ta ? m : k, B, tb ? k : n, 0.0f, C, n, 1);
}

/* Times OpenBLAS and the own kernel on the shapes the encoder runs, on one thread (the encoder calls st_sgemm
 * from each of its threads), and keeps the faster per class. About 8-15 ms of CPU time (OpenBLAS's first-call
 * setup and page faults of the scratch matrices included), paid on the first product of a process unless the
 * verdict is in the cache (choice_cache_read, below). Candidates take turns and the fastest of several rounds
 * counts, so a busy machine slows both alike and does not decide. */
static void calibrate(const struct gemm_kernel *kern)
{
	/* large: a row block of a projection x W^T (N T) and its FFN sibling; small: attention's q k^T (N T) and
	 * p v (N N) for a sequence of 32 tokens, head size 32 */
	static const struct { int cls, ta, tb, m, n, k, reps; } shapes[] = {
		{ CLASS_LARGE, 0, 1, 96, 384, 384, 1 },
		{ CLASS_SMALL, 0, 1, 32, 32, 32, 10 },
		{ CLASS_SMALL, 0, 0, 32, 32, 32, 10 },
	};
	enum { NSHAPES = sizeof shapes / sizeof *shapes, ROUNDS = 3 };
	size_t most = 0;
	for (int i = 0; i < NSHAPES; i++) {
		size_t f = (size_t)shapes[i].m * shapes[i].k + (size_t)shapes[i].k * shapes[i].n +
			   (size_t)shapes[i].m * shapes[i].n;
		most = f > most ? f : most;
	}
	float *mem = malloc(most * sizeof(float));
	if (!mem) {
		choice_reason = "OpenBLAS (no memory to time the kernels)";
		return;
	}
	for (size_t i = 0; i < most; i++)   /* values in [-0.5, 0.5]: no denormals, no overflow */
		mem[i] = (float)(int)(i * 37 % 101) * 0.01f - 0.5f;
	double best[NSHAPES][2];
	for (int i = 0; i < NSHAPES; i++)
		best[i][0] = best[i][1] = 1e30;
	for (int round = -1; round < ROUNDS; round++)   /* round -1 warms up (buffers, pages, thread setup) */
		for (int i = 0; i < NSHAPES; i++)
			for (int own = 0; own < 2; own++) {
				const float *A = mem, *B = A + (size_t)shapes[i].m * shapes[i].k;
				float *C = (float *)B + (size_t)shapes[i].k * shapes[i].n;
				double t0 = seconds_now();
				for (int r = 0; r < shapes[i].reps; r++)
					calib_run(own, kern, shapes[i].ta, shapes[i].tb, shapes[i].m, shapes[i].n, shapes[i].k,
						A, B, C);
				double t = (seconds_now() - t0) / shapes[i].reps;
				if (round >= 0 && t < best[i][own])
					best[i][own] = t;
			}
	free(mem);
	for (int cls = 0; cls < 2; cls++) {
		double flops = 0, t[2] = { 0, 0 };
		for (int i = 0; i < NSHAPES; i++)
			if (shapes[i].cls == cls) {
				flops += 2.0 * shapes[i].m * shapes[i].n * shapes[i].k;
				t[0] += best[i][0];
				t[1] += best[i][1];
			}
		calib_gflops[cls][0] = flops / t[0] * 1e-9;
		calib_gflops[cls][1] = flops / t[1] * 1e-9;
		/* a tie goes to the own kernel: it is the one that runs the same everywhere */
		chosen[cls] = t[0] < 0.97 * t[1] ? ST_GEMM_BLAS : own_impl;
	}
	choice_reason = "timed";
}

/* The verdict of calibrate() kept for a week in $XDG_CACHE_HOME/st (else ~/.cache/st), one small file per
 * key, so that a short-lived process (st-encode of one line) does not spend more on timing kernels than on its
 * work. The key is what the verdict depends on: the CPU's brand string, OpenBLAS's build and core, the
 * environment that changes its kernels (OPENBLAS_CORETYPE), the own kernel and this build of st (gemm.c's
 * compile time). A file that is unreadable, malformed, older than a week or of another key is ignored (and
 * replaced); a cache folder that cannot be written leaves the process timing as before. ST_GEMM_CACHE=0 turns
 * the cache off (docs/gemm.md). Written to a temporary name and renamed: readers see a whole file or none. */
#define CHOICE_CACHE_MAX_AGE (7 * 24 * 3600)

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* The cache file for this key into path (and the key itself into key); 0, or -1 when the cache is off. */
static int choice_cache_path(char *path, size_t pathlen, char *key, size_t keylen)
{
	const char *off = getenv("ST_GEMM_CACHE");
	if (off && (!strcmp(off, "0") || !strcmp(off, "off") || !strcmp(off, "no")))
		return -1;
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char dir[4096];
	if (xdg && xdg[0] == '/')   /* the XDG rule: a relative path is ignored */
		snprintf(dir, sizeof dir, "%s/st", xdg);
	else if (home && home[0] == '/')
		snprintf(dir, sizeof dir, "%s/.cache/st", home);
	else
		return -1;
	char brand[49] = "";
#ifdef GEMM_X86
	unsigned r[12] = { 0 };
	if (__get_cpuid_max(0x80000000, NULL) >= 0x80000004) {
		for (unsigned i = 0; i < 3; i++)
			__get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
		memcpy(brand, r, 48);
	}
#endif
	for (char *c = brand; *c; c++)   /* one line */
		if (*c == '\n' || *c == '\t')
			*c = ' ';
	for (size_t n = strlen(brand); n && brand[n - 1] == ' '; n--)   /* padded with spaces by some CPUs */
		brand[n - 1] = 0;
	const char *coretype = getenv("OPENBLAS_CORETYPE");
	snprintf(key, keylen, "cpu=%s|openblas=%s|core=%s|OPENBLAS_CORETYPE=%s|own=%s|st=%s %s", brand,
		 openblas_get_config(), openblas_get_corename(), coretype ? coretype : "", st_gemm_impl_name(own_impl),
		 __DATE__, __TIME__);
	for (char *c = key; *c; c++)
		if (*c == '\n')
			*c = ' ';
	if ((size_t)snprintf(path, pathlen, "%s/gemm-%016llx", dir, (unsigned long long)fnv1a(key)) >= pathlen)
		return -1;
	return 0;
}

static int impl_from_name(const char *s, enum st_gemm_impl *out)
{
	if (!strcmp(s, "blas")) *out = ST_GEMM_BLAS;
	else if (!strcmp(s, "avx2")) *out = ST_GEMM_AVX2;
	else if (!strcmp(s, "avx512")) *out = ST_GEMM_AVX512;
	else return -1;
	return 0;
}

static char choice_cache_file[4200];   /* the file the verdict came from, for st_gemm_choice */

/* 1 when the cache holds a verdict for this key (chosen[] and calib_gflops[] set from it), else 0. */
static int choice_cache_read(void)
{
	char path[4200], key[1024];
	if (choice_cache_path(path, sizeof path, key, sizeof key) < 0)
		return 0;
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	char line[3][1100];
	int ok = 1;
	for (int i = 0; i < 3 && ok; i++)
		ok = fgets(line[i], sizeof line[i], f) != NULL;
	struct stat st;
	ok = ok && fstat(fileno(f), &st) == 0 && time(NULL) - st.st_mtime < CHOICE_CACHE_MAX_AGE;
	fclose(f);
	line[1][strcspn(line[1], "\n")] = 0;
	if (!ok || strcmp(line[0], "st gemm choice 1\n") || strcmp(line[1], key))
		return 0;
	char large[16], small[16];
	double g[2][2];
	enum st_gemm_impl il, is;
	if (sscanf(line[2], "%15s %15s %lf %lf %lf %lf", large, small, &g[CLASS_LARGE][0], &g[CLASS_LARGE][1],
		   &g[CLASS_SMALL][0], &g[CLASS_SMALL][1]) != 6 || impl_from_name(large, &il) ||
	    impl_from_name(small, &is) || (il != ST_GEMM_BLAS && il != own_impl) || (is != ST_GEMM_BLAS && is != own_impl))
		return 0;
	for (int c = 0; c < 2; c++)
		for (int k = 0; k < 2; k++)
			if (!(g[c][k] > 0 && g[c][k] < 1e9))
				return 0;
	chosen[CLASS_LARGE] = il;
	chosen[CLASS_SMALL] = is;
	memcpy(calib_gflops, g, sizeof g);
	snprintf(choice_cache_file, sizeof choice_cache_file, "%s", path);
	choice_reason = "timed earlier, from the cache";
	return 1;
}

/* Keeps the verdict just timed; any failure leaves no file (and no temporary one) behind. */
static void choice_cache_write(void)
{
	char path[4200], key[1024], tmp[4300];
	if (choice_cache_path(path, sizeof path, key, sizeof key) < 0)
		return;
	/* the folder (and ~/.cache above it), private as XDG asks; failures show at the open below */
	char *slash = strrchr(path, '/');
	*slash = 0;
	char *up = strrchr(path, '/');
	*up = 0;
	mkdir(path, 0700);
	*up = '/';
	mkdir(path, 0700);
	*slash = '/';
	snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
	FILE *f = fopen(tmp, "wxe");
	if (!f)
		return;
	fprintf(f, "st gemm choice 1\n%s\n%s %s %.6g %.6g %.6g %.6g\n", key, st_gemm_impl_name(chosen[CLASS_LARGE]),
		st_gemm_impl_name(chosen[CLASS_SMALL]), calib_gflops[CLASS_LARGE][0], calib_gflops[CLASS_LARGE][1],
		calib_gflops[CLASS_SMALL][0], calib_gflops[CLASS_SMALL][1]);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		unlink(tmp);
}

static void choose(void)
{
	st_blas_pool_off();   /* OpenBLAS on the calling thread (st.h), also where st_set_threads was not called */
	const struct gemm_kernel *kern = NULL;
#ifdef GEMM_X86
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		own_impl = ST_GEMM_AVX512, kern = &kernel512;
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		own_impl = ST_GEMM_AVX2, kern = &kernel256;
#endif
	const char *force = getenv("ST_GEMM");
	if (force && *force) {
		enum st_gemm_impl f = ST_GEMM_BLAS;
		int known = 1;
		if (!strcmp(force, "blas"))
			f = ST_GEMM_BLAS;
		else if (!strcmp(force, "own"))
			f = own_impl;
		else if (!strcmp(force, "avx2"))   /* every AVX-512F CPU we run on has AVX2 + FMA */
			f = own_impl != ST_GEMM_BLAS ? ST_GEMM_AVX2 : ST_GEMM_BLAS;
		else if (!strcmp(force, "avx512"))
			f = own_impl == ST_GEMM_AVX512 ? ST_GEMM_AVX512 : ST_GEMM_BLAS;
		else
			known = 0;
		if (known) {
			chosen[CLASS_SMALL] = chosen[CLASS_LARGE] = f;
			choice_reason = "forced by ST_GEMM";
			return;
		}
	}
	if (kern && !choice_cache_read()) {
		calibrate(kern);
		if (calib_gflops[CLASS_LARGE][0] > 0)
			choice_cache_write();
	}
}

enum st_gemm_impl st_gemm_impl(void)
{
	pthread_once(&choose_once, choose);
	return chosen[CLASS_LARGE];
}

enum st_gemm_impl st_gemm_impl_for(int M, int N, int K)
{
	pthread_once(&choose_once, choose);
	return chosen[work_class(M, N, K)];
}

const char *st_gemm_choice(char *buf, size_t len)
{
	pthread_once(&choose_once, choose);
	if (calib_gflops[CLASS_LARGE][0] > 0)
		snprintf(buf, len, "projections %s (OpenBLAS %.0f, own %.0f GFLOP/s), attention %s (OpenBLAS %.0f, own "
			"%.0f GFLOP/s), timed on one thread%s%s%s", st_gemm_impl_name(chosen[CLASS_LARGE]),
			calib_gflops[CLASS_LARGE][0], calib_gflops[CLASS_LARGE][1], st_gemm_impl_name(chosen[CLASS_SMALL]),
			calib_gflops[CLASS_SMALL][0], calib_gflops[CLASS_SMALL][1], choice_cache_file[0] ? " (cached in " : "",
			choice_cache_file, choice_cache_file[0] ? ")" : "");
	else
		snprintf(buf, len, "projections %s, attention %s (%s)", st_gemm_impl_name(chosen[CLASS_LARGE]),
			st_gemm_impl_name(chosen[CLASS_SMALL]), choice_reason);
	return buf;
}

enum st_gemm_impl st_gemm_own_impl(void)
{
	pthread_once(&choose_once, choose);
	return own_impl;
}

const char *st_gemm_impl_name(enum st_gemm_impl impl)
{
	return impl == ST_GEMM_AVX512 ? "avx512" : impl == ST_GEMM_AVX2 ? "avx2" : "blas";
}

void st_sgemm_with(enum st_gemm_impl impl, enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta,
	enum CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
	int ldb, float beta, float *C, int ldc)
{
	pthread_once(&choose_once, choose);
	const struct gemm_kernel *kern = NULL;
#ifdef GEMM_X86
	if (impl == ST_GEMM_AVX512 && own_impl == ST_GEMM_AVX512)
		kern = &kernel512;
	else if (impl == ST_GEMM_AVX2 && own_impl != ST_GEMM_BLAS)
		kern = &kernel256;
#endif
	int row = order == CblasRowMajor;
	int tra = ta == CblasTrans || ta == CblasConjTrans, trb = tb == CblasTrans || tb == CblasConjTrans;
	int good_t = (tra || ta == CblasNoTrans || ta == CblasConjNoTrans) &&
		     (trb || tb == CblasNoTrans || tb == CblasConjNoTrans);
	/* the smallest leading dimensions BLAS accepts */
	int lda_min = row ? (tra ? M : K) : (tra ? K : M), ldb_min = row ? (trb ? K : N) : (trb ? N : K);
	int ldc_min = row ? N : M;
	int bad = (!row && order != CblasColMajor) || !good_t || M < 0 || N < 0 || K < 0 ||
		  lda < (lda_min > 1 ? lda_min : 1) || ldb < (ldb_min > 1 ? ldb_min : 1) ||
		  ldc < (ldc_min > 1 ? ldc_min : 1);
	if (bad) {   /* cblas_sgemm reports argument errors as BLAS does */
		cblas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	if (!row) {   /* column-major C is row-major C^T = op(B)^T op(A)^T */
		const float *t = A;
		A = B, B = t;
		int ti = M;
		M = N, N = ti;
		ti = lda, lda = ldb, ldb = ti;
		ti = tra, tra = trb, trb = ti;
	}
	if (M == 0 || N == 0)
		return;
	if (K == 0 || alpha == 0) {
		gemm_scale(M, N, beta, C, ldc);
		return;
	}
	if (!kern || gemm_threads(kern, tra, trb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 0))
		gemm_threads(NULL, tra, trb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 0);
}

void st_sgemm_own(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N,
	int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	st_sgemm_with(st_gemm_own_impl(), order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void st_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
	float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	st_sgemm_with(st_gemm_impl_for(M, N, K), order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
