/* bench/train_sgemm.c: the yardstick of bench/train.sh, sgemm GFLOP/s on the FFN-up shape of a MiniLM layer
 * (x W^T: 1024 x 1536 x 384), by cblas_sgemm (whatever core OpenBLAS runs) and by st_sgemm (what the
 * library calls), on the threads given. Prints key=value lines.
 * Usage: train_sgemm THREADS */
#include "gemm.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

char *openblas_get_corename(void);
void openblas_set_num_threads(int n);

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef void sgemm_fn(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, int, int, int, float,
	const float *, int, const float *, int, float, float *, int);

static void blas(enum CBLAS_ORDER o, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
	float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	cblas_sgemm(o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* best of 5 timed rounds of enough calls to last ~0.2 s */
static double gflops(sgemm_fn *f, int M, int N, int K, const float *x, const float *w, float *y)
{
	double flop = 2.0 * M * N * K, best = 0;
	f(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
	double t0 = now();
	f(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
	int reps = (int)(0.2 / (now() - t0 + 1e-9)) + 1;
	for (int round = 0; round < 5; round++) {
		t0 = now();
		for (int r = 0; r < reps; r++)
			f(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
		double g = flop * reps / (now() - t0) / 1e9;
		best = g > best ? g : best;
	}
	return best;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	openblas_set_num_threads(threads);
	omp_set_num_threads(threads);
	int M = 1024, N = 1536, K = 384;
	float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K), *y = malloc(sizeof(float) * M * N);
	for (int i = 0; i < M * K; i++)
		x[i] = (float)(((long long)i * 7919) % 1000) / 1000.0f - 0.5f;
	for (int i = 0; i < N * K; i++)
		w[i] = (float)(((long long)i * 104729) % 1000) / 1000.0f - 0.5f;
	printf("corename=%s\n", openblas_get_corename());
	printf("sgemm_shape=%dx%dx%d\n", M, N, K);
	printf("openblas_gflops=%.1f\n", gflops(blas, M, N, K, x, w, y));
	printf("st_sgemm_impl=%s\n", st_gemm_impl_name(st_gemm_impl()));
	printf("st_sgemm_gflops=%.1f\n", gflops(st_sgemm, M, N, K, x, w, y));
	free(x);
	free(w);
	free(y);
	return 0;
}
