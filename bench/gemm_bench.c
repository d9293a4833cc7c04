/* bench/gemm_bench.c: GFLOP/s of st_sgemm's own kernel against cblas_sgemm (whatever core OpenBLAS runs) on the
 * project's shapes. Usage: gemm_bench [threads...]   (default: 1 2). See bench/gemm.sh. */
#include "gemm.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

struct shape {
	const char *what;
	int ta, tb, M, N, K;
};

static const struct shape shapes[] = {
	{ "x W^T, out proj, 768 tok", 0, 1, 768, 384, 384 },
	{ "x W^T, qkv, 768 tok", 0, 1, 768, 1152, 384 },
	{ "x W^T, ffn up, 768 tok", 0, 1, 768, 1536, 384 },
	{ "x W^T, ffn down, 768 tok", 0, 1, 768, 384, 1536 },
	{ "x W^T, qkv, 96 tok", 0, 1, 96, 1152, 384 },
	{ "x W^T, qkv/out proj", 0, 1, 1024, 384, 384 },
	{ "x W^T, ffn up", 0, 1, 1024, 1536, 384 },
	{ "x W^T, ffn down", 0, 1, 1024, 384, 1536 },
	{ "dY W, ffn up input grad", 0, 0, 1024, 384, 1536 },
	{ "dY^T x, ffn up W grad", 1, 0, 1536, 384, 1024 },
	{ "x W^T, 4000 tokens", 0, 1, 4000, 1536, 384 },
	{ "similarity E E^T", 0, 1, 4096, 4096, 384 },
	{ "attn Q K^T, L=32", 0, 1, 32, 32, 32 },
	{ "attn P V, L=32", 0, 0, 32, 32, 32 },
	{ "attn Q K^T, L=128", 0, 1, 128, 128, 32 },
	{ "attn P V, L=128", 0, 0, 128, 32, 128 },
	{ "attn P^T dO, L=128", 1, 0, 128, 32, 128 },
	{ "attn Q K^T, L=512", 0, 1, 512, 512, 32 },
	{ "attn P V, L=512", 0, 0, 512, 32, 512 },
};

static void blas(enum CBLAS_ORDER o, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
	float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	cblas_sgemm(o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

typedef void gemm_fn(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, int, int, int, float,
	const float *, int, const float *, int, float, float *, int);

static enum st_gemm_impl impl_now;
static void own(enum CBLAS_ORDER o, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
	float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	st_sgemm_with(impl_now, o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* GFLOP/s of the fastest call (or group of calls, for small shapes) within about 0.2 s per candidate: the
 * minimum is what the code can do; other processes on a shared machine only add time. The candidates are
 * interleaved so that all of them see the same machine. */
static void measure(int n, gemm_fn *const *fn, const enum st_gemm_impl *impl, const struct shape *s,
	const float *A, const float *B, float *C, double *gflops)
{
	double flops = 2.0 * s->M * s->N * s->K, best[8];
	int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
	int group = flops < 2e7 ? (int)(2e7 / flops) : 1;
	for (int i = 0; i < n; i++)
		best[i] = 1e30;
	double end = now() + 0.2 * n;
	for (int round = 0; round < 3 || now() < end; round++)
		for (int i = 0; i < n; i++) {
			impl_now = impl[i];
			double t0 = now();
			for (int g = 0; g < group; g++)
				fn[i](CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
					s->M, s->N, s->K, 1, A, lda, B, ldb, 0, C, s->N);
			double t = (now() - t0) / group;
			best[i] = t < best[i] ? t : best[i];
		}
	for (int i = 0; i < n; i++)
		gflops[i] = flops / best[i] * 1e-9;
}

int main(int argc, char **argv)
{
	int threads[8] = { 1, 2 }, nthreads = 2;
	if (argc > 1) {
		nthreads = 0;
		for (int i = 1; i < argc && nthreads < 8; i++)
			threads[nthreads++] = atoi(argv[i]);
	}
	printf("OpenBLAS core: %s; st_sgemm uses: %s; own kernel: %s\n", openblas_get_corename(),
		st_gemm_impl_name(st_gemm_impl()), st_gemm_impl_name(st_gemm_own_impl()));
	size_t most = 0;
	for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
		size_t n = (size_t)shapes[i].M * shapes[i].K + (size_t)shapes[i].K * shapes[i].N +
			   (size_t)shapes[i].M * shapes[i].N;
		most = n > most ? n : most;
	}
	float *mem = malloc(most * sizeof(float));
	for (size_t i = 0; i < most; i++)
		mem[i] = (float)rand() / RAND_MAX - 0.5f;
	enum st_gemm_impl own_impl = st_gemm_own_impl();
	gemm_fn *fn[3] = { own, own, blas };
	enum st_gemm_impl impl[3] = { own_impl, ST_GEMM_AVX2, ST_GEMM_BLAS };
	int n = own_impl == ST_GEMM_AVX512 ? 3 : 2;
	if (n == 2)
		fn[1] = blas, impl[1] = ST_GEMM_BLAS;
	printf("%-24s %2s %2s %5s %5s %5s %3s %8s %8s %8s %6s\n", "shape", "tA", "tB", "M", "N", "K", "thr",
		st_gemm_impl_name(own_impl), "avx2", "openblas", "own/ob");
	for (int t = 0; t < nthreads; t++) {
		omp_set_num_threads(threads[t]);
		openblas_set_num_threads(threads[t]);
		for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
			const struct shape *s = &shapes[i];
			float *A = mem, *B = A + (size_t)s->M * s->K, *C = B + (size_t)s->K * s->N;
			double g[3];
			measure(n, fn, impl, s, A, B, C, g);
			char avx2[16] = "-";
			if (n == 3)
				snprintf(avx2, sizeof avx2, "%.1f", g[1]);
			printf("%-24s %2s %2s %5d %5d %5d %3d %8.1f %8s %8.1f %6.2f\n", s->what, s->ta ? "T" : "N",
				s->tb ? "T" : "N", s->M, s->N, s->K, threads[t], g[0], avx2, g[n - 1], g[0] / g[n - 1]);
			fflush(stdout);
		}
	}
	free(mem);
	return 0;
}
