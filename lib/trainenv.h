/* trainenv.h: process set-up shared by the training stages (st-forward --run/--train, st-step). */
#ifndef ST_TRAINENV_H
#define ST_TRAINENV_H

/* The stages of a training pipeline take turns on the same cores (st-forward waits for st-step and the other
 * way round), and on a busy machine a thread of a parallel region waits for one that was descheduled. libgomp's
 * default spins about 300,000 rounds before it sleeps, burning the core another stage (or the descheduled
 * thread) needs. When the user has set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT, this sets GOMP_SPINCOUNT to
 * 10000 (a few microseconds: back-to-back regions still find their threads awake) and runs the program again
 * (libgomp reads its settings when it is loaded, before main). Call it before reading any input. */
void train_spin_default(char **argv);

#endif
