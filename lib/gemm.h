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

/* op(B) packed once for the own kernel, for a B that stays as it is across many products (the weights of
 * inference): st_sgemm_packed then skips the packing st_sgemm does on every call (a tenth of st-encode's time).
 * op(B) is K x N: B is K x N row-major (tb CblasNoTrans) or N x K (CblasTrans: a PyTorch Linear weight), with
 * leading dimension ldb. st_packed_b_new only records B (cheap); the packed copy (round_up(N, 32) x K floats)
 * is made on the first st_sgemm_packed that runs the own kernel, so a process that never multiplies, or that
 * uses OpenBLAS for these shapes, never pays for it. B must stay alive and unchanged while p lives: free p
 * (and make a new one) when B changes. Thread-safe: concurrent callers of one p wait for the first to pack. */
typedef struct st_packed_b st_packed_b;
st_packed_b *st_packed_b_new(enum CBLAS_TRANSPOSE tb, int K, int N, const float *B, int ldb);   /* NULL: no memory */
void st_packed_b_free(st_packed_b *p);
const float *st_packed_b_source(const st_packed_b *p);   /* the B it was made from */
size_t st_packed_b_bytes(const st_packed_b *p);           /* of the packed copy; 0 before the first use */
/* Row-major C (M x N) = alpha op(A) op(B) + beta C: bit for bit st_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha,
 * A, lda, B, ldb, beta, C, ldc) with B's arguments from p (the same implementation choice; the same sums in the
 * same order, only the packing of B is skipped). */
void st_sgemm_packed(enum CBLAS_TRANSPOSE ta, int M, float alpha, const float *A, int lda, st_packed_b *B,
	float beta, float *C, int ldc);

#endif
