/* gemm.h: float32 matrix multiply with cblas_sgemm's exact signature and semantics, fast on CPUs that the
 * installed OpenBLAS does not recognise.
 *
 * OpenBLAS built with DYNAMIC_ARCH picks its kernels from the CPU model; on a model newer than the library
 * (Debian 12's 0.3.21 on a recent Xeon, say) it falls back to the "Prescott" SSE3 kernels, 4-5x slower
 * than its AVX-512 ones, and OPENBLAS_CORETYPE may pin an older core. st_sgemm has its own packed,
 * cache-blocked AVX-512 / AVX2 kernel (docs/gemm.md) and, once per process on first use, times it against
 * cblas_sgemm on the encoder's shapes (small: attention per head; large: projections) and keeps the faster
 * for each. ST_GEMM=blas|own|avx512|avx2 in the environment forces the choice.
 *
 * Switching a caller: include "gemm.h" and replace cblas_sgemm( with st_sgemm(. */
#ifndef ST_GEMM_H
#define ST_GEMM_H

#include <cblas.h>
#include <stddef.h>

/* C = alpha * op(A) op(B) + beta * C, op(A) M x K, op(B) K x N, C M x N, in ORDER's layout; exactly
 * cblas_sgemm (CblasConjTrans means CblasTrans). With beta == 0, C is only written, never read (it may
 * hold NaN). Runs on the threads of omp_get_max_threads() (st_set_threads sets that), or on one when
 * called inside an OpenMP parallel region. */
void st_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
	float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The implementations st_sgemm chooses between. */
enum st_gemm_impl {
	ST_GEMM_BLAS,     /* cblas_sgemm */
	ST_GEMM_AVX2,     /* own kernel, 6 x 16 tile of ymm FMAs */
	ST_GEMM_AVX512,   /* own kernel, 12 x 32 tile of zmm FMAs */
};

/* What st_sgemm uses for large products (projections; decided on the first call of any function here). */
enum st_gemm_impl st_gemm_impl(void);
/* What st_sgemm uses for an M x N x K product. */
enum st_gemm_impl st_gemm_impl_for(int M, int N, int K);
/* The choice in words, with the timings behind it, into buf; returns buf. */
const char *st_gemm_choice(char *buf, size_t len);
/* "blas", "avx2", "avx512". */
const char *st_gemm_impl_name(enum st_gemm_impl impl);
/* The best own kernel this CPU runs (ST_GEMM_BLAS when it has neither AVX-512F nor AVX2+FMA). */
enum st_gemm_impl st_gemm_own_impl(void);

/* st_sgemm with the implementation given; one this CPU cannot run falls back to cblas_sgemm. For tests and
 * benchmarks. */
void st_sgemm_with(enum st_gemm_impl impl, enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta,
	enum CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
	int ldb, float beta, float *C, int ldc);
/* st_sgemm_with(st_gemm_own_impl(), ...). */
void st_sgemm_own(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N,
	int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
