/* gemm_bf16.c: bfloat16 Linear layers with AVX512-BF16 (gemm_bf16.h).
 *
 * vdpbf16ps: for each of 16 float32 lanes i, acc[i] += a[2i] b[2i] + a[2i+1] b[2i+1] with a, b bfloat16.
 * So K is consumed in pairs: the weight is packed as 32-column panels of dwords (pair p, column j) =
 * (W[j][2p], W[j][2p+1]), 128 bytes per pair and panel (two zmm), and a row of activations is a row of such
 * dwords, one broadcast per pair. The micro-kernel keeps a 12 x 32 tile of C in 24 zmm accumulators, as
 * gemm.c's float32 AVX-512 kernel does, and each instruction does twice the multiply-adds of an FMA.
 * Loops, outermost first (per thread, on its block of rows):
 *   jc: columns in blocks of NC        (the packed weight block KC x NC stays in L2)
 *   pc: K pairs in blocks of KC        (the first block stores into C, the others add)
 *   ir: rows in panels of 12           (12 rows x KC pairs of activations stay in L1)
 *   jr: the 32-column panels of jc     (the micro-kernel)
 * The activations are rounded to bfloat16 per call into a per-thread buffer, rows of K rounded up to even. */
#include "gemm_bf16.h"

#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "st.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define BF16_X86 1
#endif

enum { MR = 12, NR = 32 };
/* K pairs per block (384 values of K: a 12-row panel of activations is 18 KiB, one 32-column weight panel
 * 48 KiB) and columns per block (the packed block, 192 KiB, stays in a 1 MiB L2 with the activations). */
enum { KC = 192, NC = 256 };
/* Rows per block that a thread takes (and runs the caller's row function on while they are in cache). */
enum { ROW_BLOCK = 512 };
/* Below this many multiply-adds a parallel region costs more than it saves. */
#define PAR_MIN_MACS ((size_t)1 << 20)

struct st_bf16_weight {
	const float *source;   /* the weight it was made from */
	int OC, C, kp;      /* kp = pairs of K = (C + 1) / 2 */
	int panels;         /* ceil(OC / 32) */
	uint32_t *packed;   /* [panels][kp][32] dwords, zero beyond OC and C; 64-byte aligned */
};

uint16_t st_bf16_round(float x)
{
	uint32_t u;
	memcpy(&u, &x, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u)   /* NaN: keep the sign and top payload bits, make it quiet */
		return (uint16_t)((u >> 16) | 0x40);
	/* add just under half a unit of the 16 bits dropped, plus the kept lowest bit: ties go to even */
	u += 0x7fffu + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

float st_bf16_float(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float x;
	memcpy(&x, &u, 4);
	return x;
}

int st_bf16_supported(void)
{
#ifdef BF16_X86
	__builtin_cpu_init();   /* libgcc also checks that the OS saves the zmm and mask registers (XCR0) */
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512bf16");
#else
	return 0;
#endif
}

st_bf16_weight *st_bf16_pack(const float *weight, int OC, int C)
{
	st_bf16_weight *w = xcalloc(1, sizeof *w);
	w->source = weight;
	w->OC = OC, w->C = C, w->kp = (C + 1) / 2, w->panels = (OC + NR - 1) / NR;
	size_t n = xmul(xmul(w->panels, w->kp), NR);
	size_t bytes = (xmul(n, 4) + 63) / 64 * 64;
	w->packed = aligned_alloc(64, bytes ? bytes : 64);
	if (!w->packed)
		die(EX_OSERR, "out of memory (%zu bytes for a bfloat16 weight)", bytes);
	for (int jp = 0; jp < w->panels; jp++)
		for (int c = 0; c < NR; c++) {
			int j = jp * NR + c;
			uint32_t *dst = w->packed + (size_t)jp * w->kp * NR + c;
			for (int p = 0; p < w->kp; p++) {
				uint32_t lo = 0, hi = 0;
				if (j < OC) {
					lo = st_bf16_round(weight[(size_t)j * C + 2 * p]);
					if (2 * p + 1 < C)
						hi = st_bf16_round(weight[(size_t)j * C + 2 * p + 1]);
				}
				dst[(size_t)p * NR] = lo | hi << 16;   /* the lower half is the even k, as in a row of A */
			}
		}
	return w;
}

const float *st_bf16_weight_source(const st_bf16_weight *w) { return w->source; }

void st_bf16_weight_free(st_bf16_weight *w)
{
	if (w) {
		free(w->packed);
		free(w);
	}
}

#ifdef BF16_X86
#define TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

TARGET_BF16 static inline __mmask16 mask16(int n)
{
	return n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* One row of K floats -> kp dwords of bfloat16 pairs (round to nearest even; a zero after an odd K). */
TARGET_BF16 static void round_row(const float *x, int K, uint32_t *dst)
{
	int k = 0;
	for (; k + 32 <= K; k += 32) {
		__m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(x + k));
		_mm512_storeu_si512(dst + k / 2, (__m512i)v);
	}
	if (k < K) {
		int n = K - k;   /* 1..31 floats left; (n + 1) / 2 dwords */
		__m512 lo = _mm512_maskz_loadu_ps(mask16(n), x + k), hi = _mm512_maskz_loadu_ps(mask16(n - 16), x + k + 16);
		__m512bh v = _mm512_cvtne2ps_pbh(hi, lo);
		_mm512_mask_storeu_epi32(dst + k / 2, mask16((n + 1) / 2), (__m512i)v);
	}
}

/* C[0..mr)[0..nr) (= or +=) sum over kc pairs of A rows (row r at a + r * lda dwords) x panel b [kc][32]. */
TARGET_BF16 static void micro(int kc, const uint32_t *a, size_t lda, int mr, const uint32_t *b, float *C,
	size_t ldc, int nr, int add)
{
	__m512 acc[MR][2];
#pragma GCC unroll 12
	for (int r = 0; r < MR; r++)
		acc[r][0] = acc[r][1] = _mm512_setzero_ps();
	const uint32_t *row[MR];
#pragma GCC unroll 12
	for (int r = 0; r < MR; r++)   /* rows past mr repeat the last one; their sums are not stored */
		row[r] = a + (r < mr ? r : mr - 1) * lda;
	for (int p = 0; p < kc; p++) {
		__m512bh b0 = (__m512bh)_mm512_load_si512(b + (size_t)p * NR);
		__m512bh b1 = (__m512bh)_mm512_load_si512(b + (size_t)p * NR + 16);
#pragma GCC unroll 12
		for (int r = 0; r < MR; r++) {
			__m512bh av = (__m512bh)_mm512_set1_epi32((int)row[r][p]);
			acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
			acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
		}
	}
	__mmask16 m0 = mask16(nr), m1 = mask16(nr - 16);
#pragma GCC unroll 12
	for (int r = 0; r < MR; r++) {
		if (r >= mr)
			break;
		float *c = C + r * ldc;
		__m512 c0 = acc[r][0], c1 = acc[r][1];
		if (add) {
			c0 = _mm512_add_ps(c0, _mm512_maskz_loadu_ps(m0, c));
			c1 = _mm512_add_ps(c1, _mm512_maskz_loadu_ps(m1, c + 16));
		}
		_mm512_mask_storeu_ps(c, m0, c0);
		_mm512_mask_storeu_ps(c + 16, m1, c1);
	}
}

/* out rows [0, M) of one block; abuf holds the block's rounded rows, kp dwords each. */
TARGET_BF16 static void block(float *out, int M, const uint32_t *abuf, const st_bf16_weight *w)
{
	int OC = w->OC, kp = w->kp;
	for (int jc = 0; jc < OC; jc += NC) {
		int nc = OC - jc < NC ? OC - jc : NC;
		for (int pc = 0; pc < kp; pc += KC) {
			int kc = kp - pc < KC ? kp - pc : KC;
			for (int ir = 0; ir < M; ir += MR) {
				int mr = M - ir < MR ? M - ir : MR;
				for (int jr = 0; jr < nc; jr += NR) {
					int j = jc + jr, nr = OC - j < NR ? OC - j : NR;
					const uint32_t *b = w->packed + ((size_t)(j / NR) * kp + pc) * NR;
					micro(kc, abuf + (size_t)ir * kp + pc, kp, mr, b, out + (size_t)ir * OC + j, OC, nr,
					      pc > 0);
				}
			}
		}
	}
}
#endif

static int max_threads(void)
{
#ifdef _OPENMP
	return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
	return 1;
#endif
}

/* per-thread buffer of rounded activations, grown as needed and kept */
static __thread uint32_t *tl_abuf;
static __thread size_t tl_abuf_cap;

static uint32_t *abuf_reserve(size_t dwords)
{
	if (dwords > tl_abuf_cap) {
		free(tl_abuf);
		size_t bytes = (xmul(dwords, 4) + 63) / 64 * 64;
		tl_abuf = aligned_alloc(64, bytes);
		if (!tl_abuf)
			die(EX_OSERR, "out of memory (%zu bytes for bfloat16 activations)", bytes);
		tl_abuf_cap = dwords;
	}
	return tl_abuf;
}

void st_bf16_linear(float *out, const float *inp, int N, const st_bf16_weight *w,
		    void (*fn)(const void *ctx, int r0, int r1), const void *ctx)
{
	if (N <= 0)
		return;
#ifdef BF16_X86
	static int supported = -1;
	if (supported < 0)
		supported = st_bf16_supported();
	if (!supported)
		die(EX_SOFTWARE, "bfloat16 products need a CPU with AVX512-BF16 (avx512_bf16), which this one lacks");
	int C = w->C, nt = max_threads();
	int par = nt > 1 && (size_t)N * C * w->OC >= PAR_MIN_MACS;
	/* blocks of at most ROW_BLOCK rows, as many as a multiple of the threads so that each gets the same work */
	int nb = (N + ROW_BLOCK - 1) / ROW_BLOCK;
	if (par)
		nb = (nb + nt - 1) / nt * nt;
#pragma omp parallel for schedule(dynamic, 1) if(par)
	for (int k = 0; k < nb; k++) {
		int r0 = (int)((int64_t)N * k / nb), r1 = (int)((int64_t)N * (k + 1) / nb);
		if (r1 <= r0)
			continue;
		uint32_t *abuf = abuf_reserve(xmul(r1 - r0, w->kp));
		for (int r = r0; r < r1; r++)
			round_row(inp + (size_t)r * C, C, abuf + (size_t)(r - r0) * w->kp);
		block(out + (size_t)r0 * w->OC, r1 - r0, abuf, w);
		if (fn)
			fn(ctx, r0, r1);
	}
#else
	(void)out, (void)inp, (void)w, (void)fn, (void)ctx;
	die(EX_SOFTWARE, "bfloat16 products need an x86-64 CPU with AVX512-BF16");
#endif
}

/* ---- the encoder's setting ---- */

static enum enc_compute compute_mode = ENC_COMPUTE_FLOAT32;

void enc_set_compute(enum enc_compute c)
{
	compute_mode = c;
}

enum enc_compute enc_get_compute(void) { return compute_mode; }

void enc_compute_option(const char *value, const char *usage)
{
	if (!strcmp(value, "float32") || !strcmp(value, "fp32"))
		enc_set_compute(ENC_COMPUTE_FLOAT32);
	else if (!strcmp(value, "bf16") || !strcmp(value, "bfloat16")) {
		if (!st_bf16_supported())
			die(EX_USAGE, "--compute bf16 needs a CPU with AVX512-BF16 (avx512_bf16 in /proc/cpuinfo); this "
			    "one lacks it: use --compute float32");
		enc_set_compute(ENC_COMPUTE_BF16);
	} else
		usage_error(usage, "--compute is float32 or bf16");
}
