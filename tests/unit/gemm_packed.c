/* tests/unit/gemm_packed.c: st_sgemm_packed (op(B) packed once) against the unpacked own kernel (bit for bit:
 * the same sums in the same order) and against OpenBLAS's cblas_sgemm and a double-precision reference (within
 * the rounding bound), on shapes that are not multiples of the tiles (12 x 32 and 6 x 16) nor of the K block
 * (384), both op(A) and op(B) transposes, padded leading dimensions, beta 0 over NaN, 1 and 2 threads (2 splits C
 * by rows or by columns), and concurrent use from an OpenMP region while the copy is made. Each kernel runs in
 * a child process with ST_GEMM set, since st_sgemm decides once per process. */
#include "gemm.h"
#include "tap.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t rng_state = 0x2545f4914f6cdd1du;
static float uniform(void)   /* [-1, 1) */
{
	rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
	return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2 - 1);
}

/* Failure bits a child reports in its exit status. */
enum { BAD_BITS = 1, BAD_BLAS = 2, BAD_REF = 4, BAD_UNUSED = 8, BAD_SHARED = 16, BAD_ALLOC = 32 };

struct prod {
	int ta, tb, M, N, K, lda, ldb, ldc;
	float alpha, beta;
	float *A, *B, *C0;   /* C0: C before the product (NaN where beta == 0) */
};

static void prod_make(struct prod *p, int ta, int tb, int M, int N, int K, int pad, float alpha, float beta)
{
	*p = (struct prod){ .ta = ta, .tb = tb, .M = M, .N = N, .K = K, .lda = (ta ? M : K) + pad,
		.ldb = (tb ? K : N) + pad, .ldc = N + pad, .alpha = alpha, .beta = beta };
	size_t na = (size_t)(ta ? K : M) * p->lda, nb = (size_t)(tb ? N : K) * p->ldb, nc = (size_t)M * p->ldc;
	p->A = malloc(na * sizeof(float));
	p->B = malloc(nb * sizeof(float));
	p->C0 = malloc(nc * sizeof(float));
	for (size_t i = 0; i < na; i++)
		p->A[i] = uniform();
	for (size_t i = 0; i < nb; i++)
		p->B[i] = uniform();
	for (size_t i = 0; i < nc; i++)
		p->C0[i] = beta == 0 ? NAN : uniform();
}

static void prod_free(struct prod *p)
{
	free(p->A), free(p->B), free(p->C0);
}

static float *c_copy(const struct prod *p)
{
	size_t n = (size_t)p->M * p->ldc * sizeof(float);
	return memcpy(malloc(n), p->C0, n);
}

/* |got - ref| <= slack * ((K + 4) u sum_k |alpha a b| + 4 u |beta c|) for every element of C, in any order of
 * summation; the padding of each row of C keeps its old value. */
static int within_bound(const struct prod *p, const float *C, const float *ref_blas, double slack)
{
	const double u = 1.0 / (1 << 23);
	for (int i = 0; i < p->M; i++)
		for (int j = 0; j < p->ldc; j++) {
			size_t at = (size_t)i * p->ldc + j;
			if (j >= p->N) {
				if (memcmp(&C[at], &p->C0[at], sizeof(float)))
					return 0;
				continue;
			}
			double sum = 0, mag = 0;
			for (int k = 0; k < p->K; k++) {
				double a = p->ta ? p->A[(size_t)k * p->lda + i] : p->A[(size_t)i * p->lda + k];
				double b = p->tb ? p->B[(size_t)j * p->ldb + k] : p->B[(size_t)k * p->ldb + j];
				sum += p->alpha * a * b;
				mag += fabs(p->alpha * a * b);
			}
			double c0 = p->beta == 0 ? 0 : p->C0[at];
			double want = sum + p->beta * c0, bound = slack * ((p->K + 4) * u * mag + 4 * u * fabs(p->beta * c0));
			if (!(fabs(C[at] - want) <= bound))
				return 0;
			if (ref_blas && !(fabs(C[at] - ref_blas[at]) <= 2 * bound))
				return 0;
		}
	return 1;
}

/* One product three ways: packed, unpacked own kernel, cblas_sgemm. Returns failure bits. */
static int check(const struct prod *p, int threads)
{
	omp_set_num_threads(threads);
	enum CBLAS_TRANSPOSE ta = p->ta ? CblasTrans : CblasNoTrans, tb = p->tb ? CblasTrans : CblasNoTrans;
	st_packed_b *pb = st_packed_b_new(tb, p->K, p->N, p->B, p->ldb);
	if (!pb)
		return BAD_ALLOC;
	float *packed = c_copy(p), *own = c_copy(p), *blas = c_copy(p), *again = c_copy(p);
	st_sgemm_packed(ta, p->M, p->alpha, p->A, p->lda, pb, p->beta, packed, p->ldc);
	st_sgemm_packed(ta, p->M, p->alpha, p->A, p->lda, pb, p->beta, again, p->ldc);   /* the packed copy reused */
	st_sgemm(CblasRowMajor, ta, tb, p->M, p->N, p->K, p->alpha, p->A, p->lda, p->B, p->ldb, p->beta, own, p->ldc);
	cblas_sgemm(CblasRowMajor, ta, tb, p->M, p->N, p->K, p->alpha, p->A, p->lda, p->B, p->ldb, p->beta, blas,
		p->ldc);
	size_t bytes = (size_t)p->M * p->ldc * sizeof(float);
	int bad = 0;
	if (memcmp(packed, own, bytes) || memcmp(again, own, bytes))
		bad |= BAD_BITS;
	if (!within_bound(p, blas, NULL, 1))
		bad |= BAD_BLAS;
	if (!within_bound(p, packed, blas, 1))
		bad |= BAD_REF;
	/* the own kernel ran (and K, alpha != 0): the packed path must have been taken; OpenBLAS: nothing packed */
	if ((st_gemm_impl_for(p->M, p->N, p->K) != ST_GEMM_BLAS) != (st_packed_b_bytes(pb) != 0))
		bad |= BAD_UNUSED;
	if (bad)
		printf("# %s: ta %d tb %d M %d N %d K %d ld +%d alpha %g beta %g, %d threads: bits %d\n",
			st_gemm_impl_name(st_gemm_impl()), p->ta, p->tb, p->M, p->N, p->K, p->lda - (p->ta ? p->M : p->K),
			p->alpha, p->beta, threads, bad);
	free(packed), free(own), free(blas), free(again);
	st_packed_b_free(pb);
	return bad;
}

/* Two threads use one fresh packed B for their own row blocks (the encoder's pattern): whoever comes second packs
 * while the other multiplies, unpacked or waiting for the copy. */
static int check_shared(void)
{
	omp_set_num_threads(2);
	struct prod p;
	prod_make(&p, 0, 1, 203, 389, 385, 0, 1.0f, 0.0f);
	st_packed_b *pb = st_packed_b_new(CblasTrans, p.K, p.N, p.B, p.ldb);
	float *packed = c_copy(&p), *own = c_copy(&p);
	enum { BLOCK = 24 };   /* a multiple of 12: the same tiles as the whole product */
#pragma omp parallel for num_threads(2) schedule(dynamic, 1)
	for (int r0 = 0; r0 < p.M; r0 += BLOCK) {
		int r1 = r0 + BLOCK < p.M ? r0 + BLOCK : p.M;
		st_sgemm_packed(CblasNoTrans, r1 - r0, 1.0f, p.A + (size_t)r0 * p.lda, p.lda, pb, 0.0f,
			packed + (size_t)r0 * p.ldc, p.ldc);
		st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, p.N, p.K, 1.0f, p.A + (size_t)r0 * p.lda,
			p.lda, p.B, p.ldb, 0.0f, own + (size_t)r0 * p.ldc, p.ldc);
	}
	int bad = memcmp(packed, own, (size_t)p.M * p.ldc * sizeof(float)) ? BAD_SHARED : 0;
	if (st_gemm_impl_for(BLOCK, p.N, p.K) != ST_GEMM_BLAS && st_packed_b_bytes(pb) == 0)
		bad |= BAD_SHARED;
	free(packed), free(own);
	st_packed_b_free(pb);
	prod_free(&p);
	return bad;
}

static int run_all(void)
{
	/* M: below, at and past the 12-row tile, past GEMM_DIRECT_B_MAX_M (48); N: partial 32- and 16-column
	 * panels; K: one block, 385 = 2 blocks of 193 + 192, 769 = 3 blocks */
	static const int Ms[] = { 1, 5, 13, 49, 100, 130 }, Ns[] = { 1, 17, 33, 100, 130 }, Ks[] = { 1, 7, 64, 385, 769 };
	int bad = 0;
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++)
			for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
				for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
					for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
						int i = (int)(mi + ni + ki);   /* vary the rest along the grid */
						float alpha = i % 3 == 0 ? 1.0f : i % 3 == 1 ? 0.75f : -1.25f;
						float beta = i % 2 ? 0.0f : 0.5f;
						struct prod p;
						prod_make(&p, ta, tb, Ms[mi], Ns[ni], Ks[ki], i % 4 == 1 ? 3 : 0, alpha, beta);
						bad |= check(&p, 1 + (i % 2));
						prod_free(&p);
					}
	/* large enough for 2 threads: split by rows (M >= N) and by columns (M < N: each thread's part starts
	 * whole panels into the packed blocks) */
	static const int big[][3] = { { 389, 100, 385 }, { 37, 1153, 384 }, { 25, 1536, 769 } };
	for (size_t s = 0; s < sizeof big / sizeof *big; s++)
		for (int tb = 0; tb < 2; tb++) {
			struct prod p;
			prod_make(&p, 0, tb, big[s][0], big[s][1], big[s][2], (int)s, 1.0f, s == 1 ? 0.5f : 0.0f);
			bad |= check(&p, 2);
			prod_free(&p);
		}
	bad |= check_shared();
	return bad;
}

/* Runs run_all in a child with ST_GEMM=value; its failure bits, or -1 when it did not finish. */
static int child(const char *value)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		setenv("ST_GEMM", value, 1);
		int bad = run_all();
		fflush(stdout);
		_exit(bad);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

int main(void)
{
	static const char *const kernels[] = { "avx512", "avx2" };
	for (int k = 0; k < 2; k++) {
		const char *name = kernels[k];
		int have = k == 0 ? __builtin_cpu_supports("avx512f")
				  : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
		if (!have) {
			printf("ok %d - # SKIP %s: this CPU does not run it\n", ++tap_n, name);
			continue;
		}
		int bad = child(name);
		ok(bad >= 0 && !(bad & (BAD_BITS | BAD_UNUSED | BAD_ALLOC)),
		   "%s: st_sgemm_packed bit for bit as the unpacked kernel (and the packed copy used)", name);
		ok(bad >= 0 && !(bad & BAD_SHARED), "%s: one packed B shared by two threads while it is packed", name);
		ok(bad >= 0 && !(bad & (BAD_REF | BAD_BLAS)), "%s: within the rounding bound of the double reference "
		   "and of cblas_sgemm", name);
	}
	/* OpenBLAS chosen: B is used where it lies, no packed copy */
	int bad = child("blas");
	ok(bad == 0, "ST_GEMM=blas: st_sgemm_packed is cblas_sgemm (bit for bit), nothing packed");
	return done_testing();
}
