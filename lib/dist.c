/* dist.c: dist.h on Open MPI (ST_MPI), or a one-process stub. */
#include "dist.h"
#include "st.h"

#include <stdlib.h>

static int world = 1, rank = 0, started;

static int launched_world(void)
{
	const char *w = getenv("OMPI_COMM_WORLD_SIZE");
	return w && atoi(w) > 1 ? atoi(w) : 1;
}

int dist_rank(void) { return rank; }
int dist_world(void) { return world; }

#ifdef ST_MPI
#include <mpi.h>

int dist_init(void)
{
	if (launched_world() <= 1)
		return 1;
	int provided;
	/* only the main thread calls MPI */
	if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
		die(EX_UNAVAILABLE, "cannot start MPI (launched by mpirun with %d ranks)", launched_world());
	started = 1;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world);
	return world;
}

void dist_mean_floats(float *x, size_t n)
{
	if (world == 1)
		return;
	for (size_t off = 0; off < n;) {   /* MPI counts are int */
		int cnt = n - off > (1u << 30) ? 1 << 30 : (int)(n - off);
		MPI_Allreduce(MPI_IN_PLACE, x + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
		off += cnt;
	}
	float inv = 1.0f / world;
	for (size_t i = 0; i < n; i++)
		x[i] *= inv;
}

double dist_mean_double(double x)
{
	if (world == 1)
		return x;
	double s;
	MPI_Allreduce(&x, &s, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	return s / world;
}

int dist_same_u64(uint64_t v, uint64_t *lo, uint64_t *hi)
{
	*lo = *hi = v;
	if (world == 1)
		return 1;
	MPI_Allreduce(&v, lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
	MPI_Allreduce(&v, hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
	return *lo == *hi;
}

void dist_abort(int status)
{
	if (started && world > 1)
		MPI_Abort(MPI_COMM_WORLD, status);
}

void dist_finish(void)
{
	if (started)
		MPI_Finalize();
	started = 0;
}

#else

int dist_init(void)
{
	if (launched_world() > 1)
		die(EX_USAGE, "started by mpirun with %d ranks, but this st-step was built without Open MPI (install "
		    "libopenmpi-dev and rebuild: make deps all)", launched_world());
	return 1;
}
void dist_mean_floats(float *x, size_t n) { (void)x; (void)n; }
double dist_mean_double(double x) { return x; }
int dist_same_u64(uint64_t v, uint64_t *lo, uint64_t *hi) { *lo = *hi = v; return 1; }
void dist_abort(int status) { (void)status; }
void dist_finish(void) {}

#endif
