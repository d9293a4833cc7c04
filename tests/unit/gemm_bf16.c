/* gemm_bf16: the bfloat16 Linear layer (lib/gemm_bf16.c) against a double-precision reference computed here
 * on inputs rounded to bfloat16 by an independent method (frexp and rint to 8 significant bits): the two must
 * agree to float32 summation error, far tighter than the error of bfloat16 itself, which the test also
 * measures (against the unrounded inputs) to show that the tolerance can tell them apart. Odd shapes: K odd,
 * columns not a multiple of 32, rows not a multiple of 12, K over one block (384), columns over one block
 * (256), rows over one thread block (512). Rounding: hand-worked ties. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <omp.h>
#include "gemm_bf16.h"
#include "tap.h"

/* round to 8 significant bits, ties to even (rint in the default mode), as bfloat16 does for normal numbers */
static double ref_round(float x)
{
	int e;
	double m = frexp(x, &e);   /* x = m 2^e, 0.5 <= |m| < 1 */
	return ldexp(rint(ldexp(m, 8)), e - 8);
}

static uint64_t rng = 88172645463325252ull;
static double uniform(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (rng >> 11) * (1.0 / 9007199254740992.0);
}

static int rows_seen[2000];
static void count_rows(const void *ctx, int r0, int r1)
{
	(void)ctx;
	for (int r = r0; r < r1; r++)
#pragma omp atomic
		rows_seen[r]++;
}

/* one product N x C x OC: returns 1 when it passed */
static int check(int N, int C, int OC, double scale)
{
	float *x = malloc(sizeof(float) * N * C), *w = malloc(sizeof(float) * OC * C), *out = malloc(sizeof(float) * N * OC);
	for (int i = 0; i < N * C; i++)
		x[i] = (float)((uniform() * 2 - 1) * scale);
	for (int i = 0; i < OC * C; i++)
		w[i] = (float)((uniform() * 2 - 1) * 0.1);
	for (int i = 0; i < N * OC; i++)
		out[i] = NAN;   /* every element must be written */
	memset(rows_seen, 0, sizeof rows_seen);
	st_bf16_weight *pw = st_bf16_pack(w, OC, C);
	st_bf16_linear(out, x, N, pw, count_rows, NULL);
	double worst = 0, bf16_err = 0;   /* in units of the float32 bound; the bfloat16 error in the same units */
	int bad = 0, rows_ok = 1;
	for (int n = 0; n < N; n++) {
		rows_ok &= rows_seen[n] == 1;
		for (int o = 0; o < OC; o++) {
			double ref = 0, abs_sum = 0, exact = 0;
			for (int k = 0; k < C; k++) {
				double p = ref_round(x[n * C + k]) * ref_round(w[o * C + k]);
				ref += p, abs_sum += fabs(p), exact += (double)x[n * C + k] * w[o * C + k];
			}
			/* float32 sums of C exact products: |error| <= C u sum |products|, u = 2^-24 */
			double bound = C * ldexp(1, -24) * abs_sum + 1e-30;
			double e = fabs(out[n * OC + o] - ref) / bound;
			if (!(e <= 1))
				bad++;
			if (e > worst || isnan(e))
				worst = isnan(e) ? INFINITY : e;
			double eb = fabs(exact - ref) / bound;
			if (eb > bf16_err)
				bf16_err = eb;
		}
	}
	int good = ok(!bad && rows_ok, "%d x %d x %d: within float32 summation error of the bf16-rounded reference", N, C, OC);
	if (!good)
		printf("#   %d elements out of bound, worst %.3g bounds; rows each seen once: %d\n", bad, worst, rows_ok);
	printf("#   worst error %.3g of the float32 bound; bfloat16 rounding itself: %.3g bounds\n", worst, bf16_err);
	/* the comparison is fine enough to see the rounding: products of the unrounded inputs are much further away */
	if (N * C > 64)
		ok(bf16_err > 100 * worst, "%d x %d x %d: bfloat16's own error (%.3g bounds) is over 100 times the worst found",
		   N, C, OC, bf16_err);
	st_bf16_weight_free(pw);
	free(x), free(w), free(out);
	return good;
}

int main(void)
{
	/* rounding, hand-worked: the unit of 1.0 in bfloat16 is 2^-7 */
	ok(st_bf16_round(1.0f) == 0x3f80, "1.0 -> 0x3f80");
	ok(st_bf16_round(-2.5f) == 0xc020, "-2.5 -> 0xc020 (exact)");
	ok(st_bf16_round(1.0f + 0x1p-8f) == 0x3f80, "1 + 2^-8 (a tie) -> 1.0 (even)");
	ok(st_bf16_round(1.0f + 3 * 0x1p-8f) == 0x3f82, "1 + 3 2^-8 (a tie) -> 1 + 2^-6 (even)");
	ok(st_bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81, "1 + 2^-8 + 2^-20 (above the tie) -> 1 + 2^-7");
	ok(st_bf16_round(1.0f + 0x1p-8f - 0x1p-22f) == 0x3f80, "1 + 2^-8 - 2^-22 (below the tie) -> 1.0");
	ok(st_bf16_round(FLT_MAX) == 0x7f80, "FLT_MAX -> +inf (rounds past the largest bfloat16)");
	ok(st_bf16_round(INFINITY) == 0x7f80 && st_bf16_round(-INFINITY) == 0xff80, "infinities stay");
	ok(isnan(st_bf16_float(st_bf16_round(NAN))), "NaN stays NaN");
	ok(st_bf16_float(0x3f81) == 1.0f + 0x1p-7f, "0x3f81 -> 1 + 2^-7");
	int agree = 1;
	for (int i = 0; i < 100000; i++) {
		float v = (float)((uniform() * 2 - 1) * pow(10, uniform() * 20 - 10));
		agree &= st_bf16_float(st_bf16_round(v)) == ref_round(v);
	}
	ok(agree, "st_bf16_round agrees with rounding to 8 significant bits on 100000 values");

	if (!st_bf16_supported()) {
		printf("# this CPU has no AVX512-BF16: the products are not tested\n");
		printf("1..%d\n", tap_n);
		return tap_failed != 0;
	}
	/* the activations' rounding (vcvtne2ps2bf16) through an identity weight: out = bf16(x) exactly, ties too */
	{
		int n = 5, c = 37;
		float x[5 * 37], w[37 * 37], out[5 * 37];
		for (int i = 0; i < n * c; i++) {
			x[i] = (float)((uniform() * 2 - 1) * 100);
			if (i % 3 == 0) {   /* make a tie: 8 significant bits, then exactly half a unit more */
				double r = ref_round(x[i]);
				int e;
				frexp(r, &e);
				x[i] = (float)(r + ldexp(1, e - 9) * (r < 0 ? -1 : 1));
			}
		}
		for (int i = 0; i < c; i++)
			for (int j = 0; j < c; j++)
				w[i * c + j] = i == j;
		st_bf16_weight *pw = st_bf16_pack(w, c, c);
		st_bf16_linear(out, x, n, pw, NULL, NULL);
		int same = 1;
		for (int i = 0; i < n * c; i++)
			same &= out[i] == ref_round(x[i]);
		ok(same, "activations are rounded to nearest even (identity weight, a third of them ties)");
		st_bf16_weight_free(pw);
	}
	omp_set_num_threads(2);
	check(1, 1, 1, 1);
	check(5, 7, 3, 1);
	check(12, 32, 32, 1);
	check(13, 33, 31, 3);
	check(25, 385, 65, 1);
	check(37, 1536, 384, 1);   /* K: 4 blocks of 384 */
	check(100, 384, 1152, 2);  /* columns: 5 blocks of 256 */
	check(1030, 64, 40, 1);    /* rows: 3 blocks, two threads */
	omp_set_num_threads(1);
	check(600, 96, 50, 1);     /* several blocks on one thread */

	/* a packed weight: sums of the rows, and the weight it was made from (enc_packed keeps it by that) */
	{
		float w[4 * 6], x[6], out[4];
		for (int i = 0; i < 24; i++)
			w[i] = (float)i;
		for (int i = 0; i < 6; i++)
			x[i] = 1;
		st_bf16_weight *p = st_bf16_pack(w, 4, 6);
		st_bf16_linear(out, x, 1, p, NULL, NULL);
		ok(out[0] == 15 && out[3] == 18 + 19 + 20 + 21 + 22 + 23, "packed weight: sums of rows (15, 123)");
		ok(st_bf16_weight_source(p) == w, "the packed weight names its source");
		st_bf16_weight_free(p);
	}
	printf("1..%d\n", tap_n);
	return tap_failed != 0;
}
