/* dist.h: the few collective operations of data-parallel training (docs/training.md), on Open MPI. Only st-step
 * links this (lib/dist.c, built apart from libst with Open MPI's flags when ompi-c is installed, else as a
 * one-process stub). MPI is started only under mpirun (OMPI_COMM_WORLD_SIZE in the environment, more than one
 * rank): a st-step started without mpirun never touches MPI. */
#ifndef ST_DIST_H
#define ST_DIST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Starts MPI when launched by mpirun with several ranks; returns the number of ranks (1 otherwise). Dies (64)
 * when the environment asks for several ranks and this st-step was built without Open MPI. */
int dist_init(void);
int dist_rank(void);
int dist_world(void);
/* How long a collective may wait for the other ranks (seconds, 0: for ever; st-step's --wait-timeout). A rank
 * that does not arrive in time (stopped, hung, or far behind) ends every rank: exit 69 with a message naming
 * the ranks that were missing, then MPI_Abort. */
void dist_set_timeout(double seconds);
/* x[n] = the mean over ranks of x[n] (MPI_Allreduce sum, then / world), the same on every rank. */
void dist_mean_floats(float *x, size_t n);
double dist_mean_double(double x);
/* 1 when every rank passed the same value, else 0; *lo, *hi get the smallest and largest. */
int dist_same_u64(uint64_t v, uint64_t *lo, uint64_t *hi);

/* The gradient's mean over ranks in buckets, overlapped with the backward (as DistributedDataParallel's
 * buckets): dist_reduce_ready says that x[off, off+count) is final on this rank; consecutive final ranges, in
 * the order they come (the backward's: last layer first), are gathered into buckets of about `bucket` floats
 * whose MPI_Iallreduce starts at once. dist_reduce_finish starts what is left (one more Iallreduce per
 * untouched range, in a fixed order), waits for all (within the timeout) and divides by the world. Every rank
 * must report the same ranges in the same order, as non-blocking collectives must start in the same order
 * everywhere: st-step reports the layers of its last non-empty chunk, which depend only on the model (a rank
 * whose whole batch had empty texts, which st-batch never makes, would report none and break this). bucket 0:
 * no overlap (one reduction at finish). */
void dist_reduce_begin(float *x, size_t n, size_t bucket);
void dist_reduce_ready(size_t off, size_t count);
void dist_reduce_finish(const char *what);

/* st-gather's helper (docs/st-gather.md): st-gather, which does not link MPI, hands its rank's bytes to the
 * st-step of the same rank over a local socket named after the run id; st-step's thread gathers them from
 * every rank in rank order (MPI_Allgatherv on a communicator of its own) and hands the whole back. */
void dist_serve_gather(const char *run_stamp);
/* 1 while that thread is inside a gather: a missing rank is then its timeout's to report. */
int dist_gathering(void);
/* The socket's name in Linux's abstract namespace (no file; buf[0] is NUL), shared with st-gather; returns
 * its length. */
static inline size_t dist_gather_socket_name(char *buf, size_t n, const char *run_stamp, int rank)
{
	int len = snprintf(buf, n, "%cst-gather-%s-%d", 0, run_stamp, rank);
	return len < 0 ? 0 : (size_t)len < n ? (size_t)len : n - 1;
}

/* A failing rank ends every rank now (MPI_Abort) instead of leaving them waiting in a collective. */
void dist_abort(int status);
void dist_finish(void);   /* MPI_Finalize */

#endif
