/* dist.h: the few collective operations of data-parallel training (docs/training.md), on Open MPI. Only st-step
 * links this (lib/dist.c, built apart from libst with Open MPI's flags when ompi-c is installed, else as a
 * one-process stub). MPI is started only under mpirun (OMPI_COMM_WORLD_SIZE in the environment, more than one
 * rank): a st-step started without mpirun never touches MPI. */
#ifndef ST_DIST_H
#define ST_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Starts MPI when launched by mpirun with several ranks; returns the number of ranks (1 otherwise). Dies (64)
 * when the environment asks for several ranks and this st-step was built without Open MPI. */
int dist_init(void);
int dist_rank(void);
int dist_world(void);
/* x[n] = the mean over ranks of x[n] (MPI_Allreduce sum, then / world), the same on every rank. */
void dist_mean_floats(float *x, size_t n);
double dist_mean_double(double x);
/* 1 when every rank passed the same value, else 0; *lo, *hi get the smallest and largest. */
int dist_same_u64(uint64_t v, uint64_t *lo, uint64_t *hi);
/* A failing rank ends every rank now (MPI_Abort) instead of leaving them waiting in a collective. */
void dist_abort(int status);
void dist_finish(void);   /* MPI_Finalize */

#endif
