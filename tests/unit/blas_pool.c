/* tests/unit/blas_pool.c: one thread pool, OpenMP's. OpenBLAS's pthreads build starts workers of its own when it
 * loads; after st_set_threads none are left (they spin for about 0.1 s after the start and after every threaded
 * call, taking cores from OpenMP's threads), OpenBLAS runs on the calling thread, and a product st_sgemm hands to
 * OpenBLAS is still spread over the threads asked for, by OpenMP, without bringing OpenBLAS's workers back.
 * Threads are counted in /proc/self/task. */
#include "gemm.h"
#include "st.h"
#include "tap.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static int tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

int main(void)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int at_load = tasks();
	if (at_load < 0)
		skip_all("no /proc/self/task to count threads in");
	if (openblas_get_parallel() != 1)
		skip_all("OpenBLAS is not its pthreads build (it has no pool of its own)");
	if (at_load < 2)
		skip_all("OpenBLAS started no workers here (one core, or OPENBLAS_NUM_THREADS=1)");
	printf("# %d threads after loading OpenBLAS %s on %ld cores\n", at_load, openblas_get_config(), cores);
	st_set_threads(2);
	ok(tasks() == 1, "st_set_threads(2): OpenBLAS's workers ended (%d threads, 1 expected)", tasks());
	ok(openblas_get_num_threads() == 1, "OpenBLAS runs on the calling thread (%d)", openblas_get_num_threads());

	/* a product large enough to be split: C (M x N) = A B^T through OpenBLAS, against a double reference */
	int M = 512, N = 384, K = 384;
	float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * N * K), *c = malloc(sizeof(float) * M * N);
	for (int i = 0; i < M * K; i++)
		a[i] = (float)((i * 37 % 101) - 50) / 64;
	for (int i = 0; i < N * K; i++)
		b[i] = (float)((i * 53 % 97) - 48) / 64;
	st_sgemm_with(ST_GEMM_BLAS, CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
	double worst = 0;
	for (int i = 0; i < M; i += 5)
		for (int j = 0; j < N; j++) {
			double s = 0;
			for (int k = 0; k < K; k++)
				s += (double)a[i * K + k] * b[j * K + k];
			double err = fabs(c[i * N + j] - s) / (fabs(s) + 1);
			worst = err > worst || isnan(err) ? err : worst;
		}
	ok(worst < 1e-5, "OpenBLAS product on 2 threads: %d x %d x %d within 1e-5 of double (worst %.2g)", M, N, K,
	   worst);
	ok(tasks() == 2, "after it: this thread and OpenMP's one worker, no OpenBLAS workers (%d threads)", tasks());
	st_set_threads(2);   /* a second call (st_tool_init, then --threads) must not leave workers either */
	ok(tasks() == 2, "st_set_threads again: still %d threads", tasks());
	free(a), free(b), free(c);
	return done_testing();
}
