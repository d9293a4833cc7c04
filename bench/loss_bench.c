/* loss_bench.c: driver of bench/loss.sh. Times the mnrl loss (lib/loss.c) on a batch of B rows x C columns x
 * D dims against the sgemm work of one MiniLM-L6 forward of that batch, estimated as
 * 2 * params * rows * columns * tokens FLOPs at the sgemm speed measured here on the encoder's own shapes. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "loss.h"
#include "st.h"

char *openblas_get_corename(void);
char *openblas_get_config(void);

static float *randn(size_t n, unsigned seed)
{
	float *x = xmalloc(n * sizeof(float));
	srand(seed);
	for (size_t k = 0; k < n; k++)
		x[k] = (float)rand() / RAND_MAX - 0.5f;
	return x;
}

int main(int argc, char **argv)
{
	int B = argc > 1 ? atoi(argv[1]) : 4096, D = argc > 2 ? atoi(argv[2]) : 384, C = 2;
	double params = 22.7e6, tokens = argc > 3 ? atof(argv[3]) : 24;
	int threads = st_set_threads(argc > 4 ? atoi(argv[4]) : 0);
	printf("OpenBLAS core: %s (%s), threads %d\n", openblas_get_corename(), openblas_get_config(), threads);

	/* sgemm speed on the encoder's shapes: tokens x 384 times 384 x 1536 (the feed-forward up-projection) */
	int M = 4096, K = 384, N = 1536;
	float *A = randn((size_t)M * K, 1), *W = randn((size_t)K * N, 2), *Y = xmalloc((size_t)M * N * sizeof(float));
	openblas_set_num_threads(threads);   /* the yardstick with OpenBLAS's own threads (st runs it on one) */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, A, K, W, N, 0, Y, N);   /* warm-up */
	int reps = 0;
	double t0 = st_now();
	do {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, A, K, W, N, 0, Y, N);
		reps++;
	} while (st_now() - t0 < 1.0);
	double gflops = 2.0 * M * N * K * reps / (st_now() - t0) / 1e9;
	st_blas_pool_off();
	free(A), free(W), free(Y);
	double fwd_flops = 2 * params * B * C * tokens, fwd_s = fwd_flops / (gflops * 1e9);
	printf("sgemm: %.1f GFLOP/s (%dx%dx%d)\n", gflops, M, K, N);
	printf("MiniLM-L6 forward of %d x %d texts x %.0f tokens: %.3g FLOP, about %.2f s of sgemm\n", B, C, tokens,
	       fwd_flops, fwd_s);

	float *E = randn((size_t)C * B * D, 3), *grad = xmalloc((size_t)C * B * D * sizeof(float));
	loss_opts o;
	loss_opts_default(&o, LOSS_MNRL);
	loss_batch b = { C, B, D, E, NULL, 0, 0 };
	loss_eval(&o, &b, NULL, grad);   /* warm-up */
	double best = 1e30;
	for (int r = 0; r < 3; r++) {
		double t = st_now();
		loss_eval(&o, &b, NULL, grad);
		t = st_now() - t;
		if (t < best)
			best = t;
	}
	printf("mnrl loss + grad, %d x %d x %d: %.3f s (%.2f%% of the forward's sgemm time)\n", C, B, D, best,
	       100 * best / fwd_s);
	printf("RESULT loss_s=%.4f forward_s=%.3f ratio=%.4f\n", best, fwd_s, best / fwd_s);
	free(E), free(grad);
	return 0;
}
