/* tests/unit/kernels.c: lib/kernels.c against plain double-precision references, for every implementation this
 * CPU runs (the portable C always, AVX-512 where the CPU has it):
 *  - attention of one head: lengths 1, 3, 17, 33, 127 (and the longest direct length), head sizes 32, 64, 24 and
 *    7, rows strided inside a packed q|k|v block, with and without a relative-position bias, with and without
 *    the probabilities written out. Rows past the sequence (the padding of a batch), bias entries out of range
 *    and the scratch hold NaN, and the context's neighbours hold sentinels: none may leak or be overwritten;
 *  - erf within 2 ulp (AVX-512) or 4.5 ulp (the portable loop: glibc's libmvec, measured 4) of double erf on a
 *    sweep of [-6, 6], tiny values and special values; bias + GELU within what float arithmetic of
 *    0.5 x (1 + erf(x / sqrt 2)) allows around double's value: 0.5 |x| (rounding of x / sqrt 2 and of 1 + erf,
 *    and the erf's own error, each in units of 2^-24) plus 1 ulp of the result.
 * kernels.t --bench prints the time of one head by each implementation at lengths 16..256 (no test). */
#include "kernels.h"
#include "tap.h"

#include <float.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state = 0x243f6a8885a308d3u;
static double uniform(void)   /* [-1, 1) */
{
	rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
	return (double)(rng_state >> 11) / 9007199254740992.0 * 2 - 1;
}

/* one head, double precision: ctx (L, hs), p (L, L) */
static void attn_ref(int L, int hs, double scale, const float *q, const float *k, const float *v, int ld,
		     const float *bias, double *p, double *ctx)
{
	for (int i = 0; i < L; i++) {
		double *row = p + (size_t)i * L, mx = -INFINITY, z = 0;
		for (int j = 0; j < L; j++) {
			double s = 0;
			for (int d = 0; d < hs; d++)
				s += (double)q[(size_t)i * ld + d] * k[(size_t)j * ld + d];
			row[j] = s * scale + (bias ? bias[j - i] : 0);
			mx = row[j] > mx ? row[j] : mx;
		}
		for (int j = 0; j < L; j++)
			z += row[j] = exp(row[j] - mx);
		for (int j = 0; j < L; j++)
			row[j] /= z;
		for (int d = 0; d < hs; d++) {
			double c = 0;
			for (int j = 0; j < L; j++)
				c += row[j] * v[(size_t)j * ld + d];
			ctx[(size_t)i * hs + d] = c;
		}
	}
}

static int attn_case(enum st_kern impl, int L, int hs, int with_bias, int with_p)
{
	int pad = 5, T = L + pad, ld = 3 * hs + 3, ldc = hs + 4;   /* T rows: L real, then padding */
	float *qkv = malloc(sizeof(float) * T * ld);
	for (int r = 0; r < T; r++)
		for (int c = 0; c < ld; c++)
			qkv[(size_t)r * ld + c] = r < L ? (float)(uniform() * 2) : NAN;
	const float *q = qkv, *k = qkv + hs + 1, *v = qkv + 2 * hs + 2;
	int D = 2 * T - 1;
	float *biasmem = malloc(sizeof(float) * D), *bias = biasmem + (T - 1);   /* bias[-(T-1)] .. bias[T-1] */
	for (int d = -(T - 1); d <= T - 1; d++)
		bias[d] = d > -L && d < L ? (float)uniform() : NAN;
	float *p = malloc(sizeof(float) * ((size_t)L * L + 16));
	for (size_t i = 0; i < (size_t)L * L + 16; i++)
		p[i] = -7.0f;
	float *ctx = malloc(sizeof(float) * ((size_t)L * ldc + 16));
	for (size_t i = 0; i < (size_t)L * ldc + 16; i++)
		ctx[i] = -9.0f;
	size_t ns = st_attn_scratch_floats(L, hs);
	float *scratch = malloc(sizeof(float) * ns);
	for (size_t i = 0; i < ns; i++)
		scratch[i] = NAN;
	double scale = 1 / sqrt((double)hs);
	st_attn_head(impl, L, hs, (float)(1 / sqrtf((float)hs)), q, k, v, ld, with_bias ? bias : NULL,
		     with_p ? p : NULL, ctx, ldc, scratch);
	double *pr = malloc(sizeof(double) * L * L), *cr = malloc(sizeof(double) * L * hs);
	attn_ref(L, hs, scale, q, k, v, ld, with_bias ? bias : NULL, pr, cr);
	double err_c = 0, err_p = 0;
	int sentinel_ok = 1;
	for (int i = 0; i < L; i++)
		for (int c = 0; c < ldc; c++) {
			float g = ctx[(size_t)i * ldc + c];
			if (c < hs) {
				double e = fabs(g - cr[(size_t)i * hs + c]);
				err_c = e > err_c || isnan(g) ? (isnan(g) ? INFINITY : e) : err_c;
			} else if (g != -9.0f)
				sentinel_ok = 0;
		}
	for (int i = 0; i < 16; i++)
		sentinel_ok &= ctx[(size_t)L * ldc + i] == -9.0f && p[(size_t)L * L + i] == -7.0f;
	if (with_p)
		for (size_t i = 0; i < (size_t)L * L; i++) {
			double e = fabs(p[i] - pr[i]);
			err_p = e > err_p || isnan(p[i]) ? (isnan(p[i]) ? INFINITY : e) : err_p;
		}
	else
		for (size_t i = 0; i < (size_t)L * L; i++)
			sentinel_ok &= p[i] == -7.0f;
	/* |v| < 2, so the context is a convex combination of values below 2; float rounding of scores of size
	 * ~ hs / sqrt(hs) gives relative errors of a few 1e-7 in the probabilities */
	int good = err_c <= 2e-5 && err_p <= 2e-6 && sentinel_ok;
	ok(good, "%s attention L=%d hs=%d%s%s", st_kern_name(impl), L, hs, with_bias ? " bias" : "",
	   with_p ? " probabilities" : "");
	if (!good)
		printf("#   context error %g, probability error %g, sentinels %s\n", err_c, err_p,
		       sentinel_ok ? "kept" : "overwritten");
	free(qkv), free(biasmem), free(p), free(ctx), free(scratch), free(pr), free(cr);
	return good;
}

static double ulp_of(double x)   /* float ulp at |x| */
{
	float f = (float)fabs(x);
	if (f < FLT_MIN)
		return FLT_MIN * FLT_EPSILON;
	return nextafterf(f, INFINITY) - f;
}

/* what float evaluation of 0.5 x (1 + erf(x / sqrt 2)) may be off from double's value g, with an erf within
 * erf_ulps ulp: x / sqrt 2 rounded twice (shifting erf by at most 1.13 t e^-t^2 2^-23 < 2^-24), 1 + erf rounded
 * (2^-24), erf's error (erf_ulps 2^-24 at most, |erf| < 1), all times 0.5 |x|; then 1 ulp of the result */
static double gelu_tol(float x, double g, double erf_ulps)
{
	return 0.5 * fabs(x) * (2 + erf_ulps) * 0x1p-24 + ulp_of(g);
}

static void erf_gelu_tests(enum st_kern impl)
{
	enum { N = 1 << 20 };
	float *x = malloc(sizeof(float) * (N + 16 + 140)), *y = malloc(sizeof(float) * (N + 16 + 140));
	for (int i = 0; i < N; i++)   /* [-6, 6], plus tiny and exact values */
		x[i] = (float)(-6.0 + 12.0 * i / (N - 1));
	float special[16] = { 0.0f, -0.0f, 1e-30f, -1e-30f, 1e-10f, 3.9f, 4.0f, 10.0f, -10.0f, 1e30f, -1e30f,
			      INFINITY, -INFINITY, 0.5f, -0.921875f, 2.5f };
	memcpy(x + N, special, sizeof special);
	for (int i = 0; i < 140; i++)   /* 2^-1 .. 2^-140: relative precision near 0, denormals included */
		x[N + 16 + i] = ldexpf(i & 1 ? -1.0f : 1.0f, -1 - i);
	st_erf_vec(impl, x, y, N + 16 + 140);
	double worst = 0;
	float worst_x = 0;
	for (int i = 0; i < N + 16 + 140; i++) {
		double want = erf((double)x[i]), e = fabs(y[i] - want) / ulp_of(want);
		if (e > worst || isnan(y[i]))
			worst = isnan(y[i]) ? INFINITY : e, worst_x = x[i];
	}
	double allowed = impl == ST_KERN_AVX512 ? 2.0 : 4.5;
	ok(worst <= allowed, "%s erf within %g ulp on [-6, 6] and special values", st_kern_name(impl), allowed);
	printf("#   worst %.2f ulp at x = %.9g\n", worst, worst_x);
	float nan_in = NAN, nan_out = 0;
	st_erf_vec(impl, &nan_in, &nan_out, 1);
	ok(isnan(nan_out), "%s erf(NaN) is NaN", st_kern_name(impl));

	/* bias + GELU on odd lengths; the bias row repeats as in the encoder */
	int widths[] = { 1, 3, 17, 33, 127, 1536 };
	for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
		int n = widths[w];
		float *h = malloc(sizeof(float) * (n + 16)), *b = malloc(sizeof(float) * n), *a = malloc(sizeof(float) * (n + 16));
		float *h0 = malloc(sizeof(float) * n);
		for (int i = 0; i < n; i++)
			h0[i] = h[i] = (float)(uniform() * 6), b[i] = (float)uniform();
		for (int i = n; i < n + 16; i++)
			h[i] = a[i] = -5.0f;
		st_bias_gelu(impl, h, a, b, n);
		double err = 0;
		int kept = 1;
		for (int i = 0; i < n; i++) {
			float xs = h0[i] + b[i];
			double g = 0.5 * xs * (1 + erf(xs / sqrt(2.0))), e = fabs(a[i] - g) / gelu_tol(xs, g, allowed);
			err = e > err || isnan(a[i]) ? (isnan(a[i]) ? INFINITY : e) : err;
			kept &= h[i] == xs;
		}
		for (int i = n; i < n + 16; i++)
			kept &= h[i] == -5.0f && a[i] == -5.0f;
		ok(err <= 1.0 && kept, "%s bias + GELU, width %d", st_kern_name(impl), n);
		if (err > 1.0)
			printf("#   error %.3g of the allowed\n", err);
		/* in place, as inference runs it */
		memcpy(h, h0, sizeof(float) * n);
		st_bias_gelu(impl, h, h, b, n);
		int same = 1;
		for (int i = 0; i < n; i++) {
			float xs = h0[i] + b[i];
			double g = 0.5 * xs * (1 + erf(xs / sqrt(2.0)));
			same &= fabs(h[i] - g) <= gelu_tol(xs, g, allowed);
		}
		ok(same, "%s bias + GELU in place, width %d", st_kern_name(impl), n);
		free(h), free(b), free(a), free(h0);
	}
	free(x), free(y);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static void bench(void)
{
	int hs = 32, H = 384, ld = 3 * H;
	for (int L = 16; L <= 256; L *= 2) {
		float *qkv = malloc(sizeof(float) * L * ld), *ctx = malloc(sizeof(float) * L * H);
		float *p = malloc(sizeof(float) * L * L);
		for (size_t i = 0; i < (size_t)L * ld; i++)
			qkv[i] = (float)uniform();
		float *scratch = malloc(sizeof(float) * st_attn_scratch_floats(L, hs));
		printf("L=%d", L);
		for (int impl = 0; impl <= (int)st_kern_best(); impl++)
			for (int with_p = 0; with_p < 2; with_p++) {
				double best = 1e30;
				int reps = 20000 / L + 10;
				for (int round = 0; round < 5; round++) {
					double t0 = now();
					for (int r = 0; r < reps; r++)
						st_attn_head(impl, L, hs, 0.17f, qkv, qkv + H, qkv + 2 * H, ld, NULL, with_p ? p : NULL,
							     ctx, H, scratch);
					double t = (now() - t0) / reps;
					best = t < best ? t : best;
				}
				printf("  %s%s %.2f us", st_kern_name(impl), with_p ? "+p" : "", best * 1e6);
			}
		printf("\n");
		free(qkv), free(ctx), free(p), free(scratch);
	}
}

/* a batch as the encoder runs it: B sequences of L tokens packed in one q|k|v buffer (out of L2), every head of
 * every sequence; and bias + GELU over (B L, 1536) */
static void bench_batch(void)
{
	int hs = 32, H = 384, NH = H / hs, ld = 3 * H, B = 32, I = 1536;
	for (int L = 16; L <= 128; L = L < 64 ? L * 2 : L + 33) {
		size_t N = (size_t)B * L;
		float *qkv = malloc(sizeof(float) * N * ld), *ctx = malloc(sizeof(float) * N * H);
		float *h = malloc(sizeof(float) * N * I), *a = malloc(sizeof(float) * N * I), *bias = malloc(sizeof(float) * I);
		for (size_t i = 0; i < N * ld; i++)
			qkv[i] = (float)uniform();
		for (size_t i = 0; i < N * I; i++)
			h[i] = (float)(uniform() * 4);
		for (int i = 0; i < I; i++)
			bias[i] = 0.0f;
		float *scratch = malloc(sizeof(float) * st_attn_scratch_floats(L, hs));
		double best[2][2] = { { 1e30, 1e30 }, { 1e30, 1e30 } };
		for (int round = 0; round < 15; round++)
			for (int impl = 0; impl <= (int)st_kern_best(); impl++) {
				double t0 = now();
				for (int b = 0; b < B; b++)
					for (int hd = 0; hd < NH; hd++) {
						const float *q = qkv + (size_t)b * L * ld + hd * hs;
						st_attn_head(impl, L, hs, 0.17f, q, q + H, q + 2 * H, ld, NULL, NULL,
							     ctx + (size_t)b * L * H + hd * hs, H, scratch);
					}
				double t1 = now();
				for (size_t r = 0; r < N; r++)
					st_bias_gelu(impl, h + r * I, a + r * I, bias, I);   /* bias 0: h stays */
				double t2 = now();
				best[impl][0] = t1 - t0 < best[impl][0] ? t1 - t0 : best[impl][0];
				best[impl][1] = t2 - t1 < best[impl][1] ? t2 - t1 : best[impl][1];
			}
		printf("batch %d x L=%d: attention generic %.0f us, avx512 %.0f us; bias+GELU generic %.0f us, avx512 %.0f us\n",
		       B, L, best[0][0] * 1e6, best[1][0] * 1e6, best[0][1] * 1e6, best[1][1] * 1e6);
		free(qkv), free(ctx), free(h), free(a), free(bias), free(scratch);
	}
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--bench")) {
		bench();
		bench_batch();
		return 0;
	}
	enum st_kern impls[2] = { ST_KERN_GENERIC, ST_KERN_AVX512 };
	int nimpl = st_kern_best() == ST_KERN_AVX512 ? 2 : 1;
	if (nimpl == 1)
		printf("# this CPU has no AVX-512F: only the portable kernels are tested\n");
	int lengths[] = { 1, 3, 17, 33, 127, ST_ATTN_DIRECT_MAX_P + 1, ST_ATTN_DIRECT_MAX };
	int heads[] = { 32, 64, 24, 7 };
	for (int m = 0; m < nimpl; m++) {
		for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++)
			for (size_t hi = 0; hi < sizeof heads / sizeof *heads; hi++)
				for (int variant = 0; variant < 4; variant++) {
					int L = lengths[li], hs = heads[hi];
					if (L > 127 && variant != 1 && hs != 32)   /* the longest only in a few cases */
						continue;
					attn_case(impls[m], L, hs, variant & 1, variant >> 1);
				}
		erf_gelu_tests(impls[m]);
	}
	printf("1..%d\n", tap_n);
	return tap_failed != 0;
}
