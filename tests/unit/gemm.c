/* tests/unit/gemm.c: st_sgemm and its own kernels against a double-precision reference, for both orders, all
 * transposes, alpha/beta cases, padded leading dimensions, NaN in C with beta = 0, and 1 and 2 threads (OpenBLAS
 * included: st_sgemm spreads its products over OpenMP's threads). */
#include "gemm.h"
#include "tap.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static double uniform(void)   /* [-1, 1) */
{
	rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
	return (double)(rng_state >> 11) / 9007199254740992.0 * 2 - 1;
}
static int below(int n) { return (int)((uniform() + 1) / 2 * n); }

struct shape {
	int row, ta, tb, M, N, K, pada, padb, padc;
	float alpha, beta;
};

/* Element addresses as BLAS defines them. */
static size_t a_at(const struct shape *s, int lda, int i, int k)
{
	int stored_ik = s->row ? !s->ta : s->ta;   /* stored as [i][k] with stride lda */
	return stored_ik ? (size_t)i * lda + k : (size_t)k * lda + i;
}
static size_t b_at(const struct shape *s, int ldb, int k, int j)
{
	int stored_kj = s->row ? !s->tb : s->tb;
	return stored_kj ? (size_t)k * ldb + j : (size_t)j * ldb + k;
}
static size_t c_at(const struct shape *s, int ldc, int i, int j)
{
	return s->row ? (size_t)i * ldc + j : (size_t)j * ldc + i;
}

typedef void gemm_fn(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, int, int, int, float,
	const float *, int, const float *, int, float, float *, int);

static enum st_gemm_impl impl_under_test;
static void with_impl(enum CBLAS_ORDER o, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
	float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	st_sgemm_with(impl_under_test, o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Runs one product and compares with the reference; returns 1 when every element is within the bound
 * |err| <= (K + 4) u sum_k |alpha a_ik b_kj| + 4 u |beta c_ij| (u = 2^-23), which holds for any summation
 * order, while a wrong element, index or edge is off by about the size of the terms. */
static int check(gemm_fn *gemm, const struct shape *s, char *why, size_t whylen)
{
	int M = s->M, N = s->N, K = s->K;
	/* stored extents: outer vectors of inner elements, leading dimension >= inner */
	int a_ik = s->row ? !s->ta : s->ta, b_kj = s->row ? !s->tb : s->tb;
	int a_outer = a_ik ? M : K, a_inner = a_ik ? K : M;
	int b_outer = b_kj ? K : N, b_inner = b_kj ? N : K;
	int c_outer = s->row ? M : N, c_inner = s->row ? N : M;
	int lda = (a_inner > 1 ? a_inner : 1) + s->pada, ldb = (b_inner > 1 ? b_inner : 1) + s->padb;
	int ldc = (c_inner > 1 ? c_inner : 1) + s->padc;
	size_t na = (size_t)(a_outer > 0 ? a_outer : 1) * lda, nb = (size_t)(b_outer > 0 ? b_outer : 1) * ldb;
	size_t nc = (size_t)(c_outer > 0 ? c_outer : 1) * ldc;
	float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *C0 = malloc(nc * 4);
	/* padding of A and B is NaN: reading it would show; padding of C is a sentinel that must survive */
	for (size_t i = 0; i < na; i++)
		A[i] = NAN;
	for (size_t i = 0; i < nb; i++)
		B[i] = NAN;
	for (size_t i = 0; i < nc; i++)
		C0[i] = 12345.0f;
	for (int i = 0; i < M; i++)
		for (int k = 0; k < K; k++)
			A[a_at(s, lda, i, k)] = (float)uniform();
	for (int k = 0; k < K; k++)
		for (int j = 0; j < N; j++)
			B[b_at(s, ldb, k, j)] = (float)uniform();
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++)
			C0[c_at(s, ldc, i, j)] = s->beta == 0 ? NAN : (float)uniform();
	memcpy(C, C0, nc * 4);
	gemm(s->row ? CblasRowMajor : CblasColMajor, s->ta ? CblasTrans : CblasNoTrans,
		s->tb ? CblasTrans : CblasNoTrans, M, N, K, s->alpha, A, lda, B, ldb, s->beta, C, ldc);

	int good = 1;
	const double u = 1.0 / (1 << 23);
	for (int i = 0; i < M && good; i++)
		for (int j = 0; j < N && good; j++) {
			double sum = 0, abs_sum = 0;
			for (int k = 0; k < K; k++) {
				double t = (double)A[a_at(s, lda, i, k)] * B[b_at(s, ldb, k, j)];
				sum += t;
				abs_sum += fabs(t);
			}
			double c0 = C0[c_at(s, ldc, i, j)];
			double want = s->alpha * sum + (s->beta == 0 ? 0 : s->beta * c0);
			double bound = (K + 4) * u * fabs(s->alpha) * abs_sum + 4 * u * fabs(s->beta * (s->beta == 0 ? 0 : c0)) + 1e-30;
			double got = C[c_at(s, ldc, i, j)];
			if (!(fabs(got - want) <= bound)) {
				snprintf(why, whylen, "C(%d,%d) = %.9g, want %.9g (bound %.3g)", i, j, got, want, bound);
				good = 0;
			}
		}
	for (int o = 0; o < c_outer && good; o++)
		for (int in = c_inner; in < ldc && good; in++)
			if (C[(size_t)o * ldc + in] != 12345.0f) {
				snprintf(why, whylen, "padding of C written at %d,%d", o, in);
				good = 0;
			}
	free(A), free(B), free(C), free(C0);
	return good;
}

static void describe(const struct shape *s, char *out, size_t len)
{
	snprintf(out, len, "%s %c%c M=%d N=%d K=%d pad=%d,%d,%d alpha=%g beta=%g", s->row ? "row" : "col",
		s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->M, s->N, s->K, s->pada, s->padb, s->padc, s->alpha, s->beta);
}

/* Many shapes through one implementation; one TAP line per group. */
static void run_group(gemm_fn *gemm, const char *name, int threads)
{
	static const int dims[] = { 1, 2, 3, 5, 7, 11, 12, 13, 16, 17, 31, 32, 33, 47, 64, 97 };
	static const float alphas[] = { 1, -0.5f, 2.25f }, betas[] = { 0, 1, -1.5f };
	const int ndims = sizeof dims / sizeof *dims;
	omp_set_num_threads(threads);
	int cases = 0, failed = 0;
	char why[256] = "", what[256] = "";
	for (int row = 0; row < 2; row++)
		for (int ta = 0; ta < 2; ta++)
			for (int tb = 0; tb < 2; tb++)
				for (int rep = 0; rep < 12; rep++) {
					struct shape s = { row, ta, tb, dims[below(ndims)], dims[below(ndims)],
						dims[below(ndims)], below(3) * 3, below(3) * 5, below(3) * 2,
						alphas[below(3)], betas[below(3)] };
					if (rep == 0)
						s.M = s.N = s.K = 1;
					if (rep == 1)
						s.K = 1;
					cases++;
					if (!check(gemm, &s, why, sizeof why) && !failed++)
						describe(&s, what, sizeof what);
				}
	/* shapes that cross the K blocks (384), the packed-B block width and the thread split */
	static const int big[][3] = { { 37, 29, 1000 }, { 5, 3, 2053 }, { 61, 1100, 71 }, { 257, 45, 390 },
		{ 131, 700, 400 }, { 300, 100, 769 } };
	for (size_t b = 0; b < sizeof big / sizeof *big; b++)
		for (int ta = 0; ta < 2; ta++)
			for (int tb = 0; tb < 2; tb++) {
				struct shape s = { (int)b % 2, ta, tb, big[b][0], big[b][1], big[b][2], 1, 2, 3,
					b % 3 ? 1.0f : 0.75f, b % 2 ? 0.0f : 0.5f };
				cases++;
				if (!check(gemm, &s, why, sizeof why) && !failed++)
					describe(&s, what, sizeof what);
			}
	if (!ok(!failed, "%s, %d threads: %d random and blocked shapes match the double reference", name, threads,
		    cases))
		printf("#   %d failed; first: %s: %s\n", failed, what, why);
}

/* A caller already inside a parallel region: each thread multiplies its own matrices at once. */
static void run_nested(gemm_fn *gemm, const char *name)
{
	omp_set_num_threads(2);
	int failed = 0;
#pragma omp parallel for reduction(+ : failed) schedule(dynamic, 1)
	for (int t = 0; t < 8; t++) {
		char why[256];
		struct shape s = { t % 2, t / 2 % 2, t / 4 % 2, 40 + t, 33 + 3 * t, 70 + 11 * t, t % 3, 1, 2, 1, 0 };
		failed += !check(gemm, &s, why, sizeof why);
	}
	ok(!failed, "%s inside an OpenMP parallel region: 8 concurrent products match", name);
}

/* Edge arguments: M, N or K zero, alpha zero (A and B are not read, C = beta C). */
static void run_degenerate(gemm_fn *gemm, const char *name)
{
	float A[4] = { NAN, NAN, NAN, NAN }, B[4] = { NAN, NAN, NAN, NAN };
	float C[4] = { 1, 2, 3, 4 };
	gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 0, 1, A, 1, B, 2, 0.5f, C, 2);
	int good = C[0] == 0.5f && C[1] == 1 && C[2] == 1.5f && C[3] == 2;
	gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 0, A, 2, B, 2, 2, C, 2);
	good = good && C[0] == 1 && C[1] == 2 && C[2] == 3 && C[3] == 4;
	float G[4] = { NAN, NAN, NAN, NAN };
	gemm(CblasColMajor, CblasTrans, CblasTrans, 2, 2, 0, 1, A, 1, B, 2, 0, G, 2);
	good = good && G[0] == 0 && G[1] == 0 && G[2] == 0 && G[3] == 0;
	float D[4] = { 7, 7, 7, 7 };
	gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 0, 2, 2, 1, A, 2, B, 2, 0, D, 2);
	gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 0, 2, 1, A, 2, B, 1, 0, D, 1);
	good = good && D[0] == 7 && D[3] == 7;
	ok(good, "%s: K = 0 and alpha = 0 give beta C without reading A or B; M or N = 0 touch nothing", name);
}

/* A transformer-sized product (y = x W^T) against the reference on a sample of rows. */
static void run_large(gemm_fn *gemm, const char *name)
{
	int M = 600, N = 384, K = 1536;
	float *x = malloc((size_t)M * K * 4), *W = malloc((size_t)N * K * 4), *y = malloc((size_t)M * N * 4);
	for (size_t i = 0; i < (size_t)M * K; i++)
		x[i] = (float)uniform();
	for (size_t i = 0; i < (size_t)N * K; i++)
		W[i] = (float)uniform();
	for (size_t i = 0; i < (size_t)M * N; i++)
		y[i] = NAN;
	omp_set_num_threads(2);
	gemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, x, K, W, K, 0, y, N);
	double worst = 0;
	for (int i = 0; i < M; i += 7)
		for (int j = 0; j < N; j++) {
			double sum = 0, abs_sum = 0;
			for (int k = 0; k < K; k++) {
				sum += (double)x[(size_t)i * K + k] * W[(size_t)j * K + k];
				abs_sum += fabs((double)x[(size_t)i * K + k] * W[(size_t)j * K + k]);
			}
			double err = fabs(y[(size_t)i * N + j] - sum) / abs_sum;
			if (!(err <= worst))
				worst = isnan(err) ? INFINITY : err > worst ? err : worst;
		}
	ok(worst <= 1e-5, "%s: 600 x 384 x 1536 (x W^T) within 1e-5 relative (worst %.2g)", name, worst);
	free(x), free(W), free(y);
}

/* What st_sgemm picks in a fresh process with ST_GEMM set to VALUE (NULL: unset); -1 on failure. */
static int impl_in_child(const char *value)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (value)
			setenv("ST_GEMM", value, 1);
		else
			unsetenv("ST_GEMM");
		_exit((int)st_gemm_impl());
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

int main(void)
{
	/* the dispatch, checked in fresh processes before this one starts any thread */
	const char *core = openblas_get_corename();
	__builtin_cpu_init();
	int own = __builtin_cpu_supports("avx512f") ? ST_GEMM_AVX512
		: __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? ST_GEMM_AVX2 : ST_GEMM_BLAS;
	printf("# OpenBLAS core %s, own kernel %s\n", core, st_gemm_impl_name(own));
	ok(impl_in_child("blas") == ST_GEMM_BLAS, "ST_GEMM=blas uses cblas_sgemm");
	ok(impl_in_child("own") == own, "ST_GEMM=own uses the best own kernel (%s)", st_gemm_impl_name(own));
	ok(impl_in_child("avx2") == (own == ST_GEMM_BLAS ? ST_GEMM_BLAS : ST_GEMM_AVX2),
		"ST_GEMM=avx2 forces the AVX2 kernel where the CPU has it");
	/* unforced, the choice is timed (which one wins depends on the machine and its load): one of the two
	 * candidates, and the report names the timings it came from */
	int unforced = impl_in_child(NULL);
	ok(unforced == ST_GEMM_BLAS || unforced == own, "unforced: %s, OpenBLAS (%s) or the own kernel",
		unforced >= 0 ? st_gemm_impl_name(unforced) : "(child failed)", core);
	if (own != ST_GEMM_BLAS && !getenv("ST_GEMM")) {
		char why[300];
		st_gemm_choice(why, sizeof why);
		printf("# %s\n", why);
		ok(strstr(why, "timed") && strstr(why, "OpenBLAS") && strstr(why, "own"),
			"unforced with an own kernel: the choice is timed");
		ok(st_gemm_impl_for(32, 32, 32) == ST_GEMM_BLAS || st_gemm_impl_for(32, 32, 32) == own,
			"attention-sized products: one of the two candidates");
	} else {
		ok(1, "# SKIP no own kernel or ST_GEMM set: nothing to time");
		ok(1, "# SKIP no own kernel or ST_GEMM set: nothing to time");
	}

	struct {
		enum st_gemm_impl impl;
		const char *name;
	} impls[] = { { ST_GEMM_AVX512, "avx512" }, { ST_GEMM_AVX2, "avx2" }, { ST_GEMM_BLAS, "blas" } };
	for (size_t i = 0; i < sizeof impls / sizeof *impls; i++) {
		if (impls[i].impl == ST_GEMM_AVX512 && own != ST_GEMM_AVX512) {
			ok(1, "# SKIP avx512: this CPU has no AVX-512F");
			continue;
		}
		if (impls[i].impl == ST_GEMM_AVX2 && own == ST_GEMM_BLAS) {
			ok(1, "# SKIP avx2: this CPU has no AVX2 + FMA");
			continue;
		}
		impl_under_test = impls[i].impl;
		run_group(with_impl, impls[i].name, 1);
		run_group(with_impl, impls[i].name, 2);
		run_nested(with_impl, impls[i].name);
		run_degenerate(with_impl, impls[i].name);
		run_large(with_impl, impls[i].name);   /* BLAS too: spread over OpenMP's threads (gemm_threads) */
	}
	run_group(st_sgemm, "st_sgemm (dispatch)", 2);
	run_large(st_sgemm_own, "st_sgemm_own");
	return done_testing();
}
