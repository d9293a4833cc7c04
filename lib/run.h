/* run.h: the run directory of a training run (docs/training.md), shared by st-step (the trainer) and
 * st-forward (which embeds each batch with the weights after the previous step).
 *
 *   RUN/weights.bin       4096-byte header + float32 parameters [n]: memory-mapped by both processes. The
 *                         header holds the published update counter, the dropout seed and the number of
 *                         objectives. st-step holds an exclusive flock on it for its whole life: a file nobody
 *                         holds is a leftover of a finished or killed run, and st-forward waits for a new one.
 *   RUN/model/            the final model directory (Hub layout), written only when the run reached its last step
 *   RUN/current/          the model at the last evaluation (what the evaluator scores, $ST_MODEL)
 *   RUN/training.json     the optimizer settings of the run (for st-loss softmax's classifier), written by st-step
 *   RUN/best/             the best model by the evaluator (--save-best)
 *   RUN/trainer.json      trainer state (step, epoch, schedule, seed, best score), with the last checkpoint
 *   RUN/checkpoint-N/     model/ + optimizer.bin + trainer.json after N global steps
 *   RUN/eval.jsonl        one line per evaluation
 *   RUN/rank-R/           rank R > 0 of a data-parallel run: its own weights.bin, lock, start/ (run_rank_dir)
 * Every file and checkpoint folder is written under a temporary name and renamed.
 *
 * Updates: with K objectives (several pipelines feeding one st-step round-robin), global step g of objective o
 * is update u = g*K + o, and its embeddings must be computed after u optimizer updates. With one objective the
 * update index is the batch's "step". */
#ifndef ST_RUN_H
#define ST_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "optim.h"

typedef struct run_weights run_weights;

/* ---- st-forward's side ---- */

/* Opens RUN/weights.bin, waiting (up to timeout_s seconds; <= 0: for ever) until a live st-step has published
 * it; checks that it holds nparams floats. NULL + message on timeout or mismatch. Says once on stderr that it
 * is waiting when that takes more than a few seconds. */
/* realtime seconds when the calling st-forward started (set it first thing in main): st-step failure notes
 * older than that are not its run's */
extern double st_started;
run_weights *run_open_weights(const char *dir, size_t nparams, double timeout_s, char *err, size_t errlen);
float *run_params(run_weights *w);           /* the shared parameters (bind them with model_bind_params) */
uint64_t run_seed(const run_weights *w);     /* dropout seed of the run */
int run_objectives(const run_weights *w);    /* K */
uint64_t run_published(const run_weights *w);   /* updates applied so far */
uint64_t run_id(const run_weights *w);       /* random id of this st-step's run, stamped on batches */
/* The update index of a batch: step * K + objective. */
uint64_t run_update_index(const run_weights *w, int64_t step, int objective);
/* Blocks until at least `updates` updates are published: 0. 1 + message when the trainer finished first, -1 +
 * message when it went away, -2 + message after timeout_s seconds (<= 0: never). Says once on stderr what it
 * waits for, and the likely cause (a buffering stage), when the wait is long. */
int run_wait(run_weights *w, uint64_t updates, double timeout_s, char *err, size_t errlen);
void run_close(run_weights *w);

/* ---- st-step's side ---- */

/* Creates RUN (and RUN/weights.bin with a copy of params, `updates` already published), takes the lock, and
 * removes leftovers of killed st processes (temporary names st itself gives: NAME.tmp.PID of st's own files,
 * PID not running). Fails when another st-step holds the run; -1 + message with errno kept (ENOSPC: full). */
struct run_settings;
/* Under the lock, before weights.bin appears: with `clear`, st's own files of an earlier run go (run_clear);
 * RUN/model and RUN/current always go (this run has not finished); `settings` (if any) is written. */
run_weights *run_create(const char *dir, const float *params, size_t nparams, uint64_t seed, int objectives,
                        uint64_t updates, int clear, const struct run_settings *settings, char *err, size_t errlen);
/* Makes the parameters written so far visible and sets the update counter; wakes waiting st-forwards. */
void run_publish(run_weights *w, uint64_t updates);
/* Marks the run finished and releases the lock (st-forwards still waiting then fail cleanly). */
void run_finish(run_weights *w);

/* Trainer state (RUN/trainer.json and checkpoint-N/trainer.json). */
typedef struct run_state {
	int64_t step;            /* global steps done (the next batch has this step) */
	int64_t epoch;           /* epoch of the last batch */
	uint64_t updates;        /* optimizer updates applied (step * objectives) */
	uint64_t seed;           /* dropout seed */
	int objectives;
	int64_t total_steps, warmup_steps;
	char scheduler[40];
	char optimizer[16];      /* "adamw" or "adamw-hf" */
	double lr, weight_decay, max_grad_norm, eps;
	double examples;         /* examples (rows) seen */
	double best_score;       /* -inf when never evaluated */
	int64_t best_step;       /* -1 when none */
	double last_loss;
} run_state;

void run_state_init(run_state *s);
int run_state_write(const char *path, const run_state *s, char *err, size_t errlen);
int run_state_read(const char *path, run_state *s, char *err, size_t errlen);

/* Optimizer state of every objective: "STOPTIM1", n, K, then per objective t, m[n], v[n] (little-endian). */
int run_optim_write(const char *path, optim *const *opts, int k, char *err, size_t errlen);
/* Reads into existing optimizers of the same n and K. */
int run_optim_read(const char *path, optim *const *opts, int k, char *err, size_t errlen);

/* Highest complete RUN/checkpoint-N (-1 when none). */
int64_t run_latest_checkpoint(const char *dir);
/* Removes the oldest checkpoints until at most limit remain (limit <= 0: keep all). */
void run_prune_checkpoints(const char *dir, int limit);
/* Writes FINAL as a directory atomically: fill(tmpdir, ctx) builds it in DIR.tmp.PID, which is then fsynced and
 * renamed over FINAL (an older FINAL is removed first, after the new one is complete). 0, or -1 + message. */
int run_write_dir(const char *final, int (*fill)(const char *tmpdir, void *ctx, char *err, size_t errlen),
                  void *ctx, char *err, size_t errlen);
/* The run directory's state that a fresh run would mix with: the name of the first one found (checkpoint-N,
 * trainer.json, model, best, current, start), or NULL. */
const char *run_old_state(const char *dir, char *name, size_t len);
/* Removes st's own files of an earlier run from DIR (checkpoints, states, models, logs, the classifier); nothing
 * else. 0, or -1 + message. */
int run_clear(const char *dir, char *err, size_t errlen);
/* st-step failed before publishing the run: a note DIR/failed (the exit status; st-step's process group, pid and
 * fork time, which tell a waiting st-forward that the note is its own pipeline's however late it started) that a
 * waiting st-forward reads, so that it stops at once instead of waiting for --wait-timeout. Nothing when DIR is
 * absent or a model. */
void run_note_failure(const char *dir, int status);
/* True when DIR looks like a model directory (modules.json, config.json or model.safetensors): not a run. */
int run_is_model_dir(const char *dir);

/* RUN/training.json: the optimizer settings st-step trains with, for st-loss softmax's classifier (given once). */
typedef struct run_settings {
	double lr, weight_decay, max_grad_norm, eps;
	char scheduler[40], optimizer[16], warmup[32];
	uint64_t seed;
	int64_t steps;           /* st-step --steps (0: the batches' "steps") */
} run_settings;
int run_settings_write(const char *dir, const run_settings *s, char *err, size_t errlen);
/* 1 when DIR/training.json is absent, 0 when read, -1 + message when broken. */
int run_settings_read(const char *dir, run_settings *s, char *err, size_t errlen);

/* Data-parallel training (docs/training.md): this process's rank, and the number of ranks in *world, from Open
 * MPI's OMPI_COMM_WORLD_RANK / OMPI_COMM_WORLD_SIZE (0 of 1 without mpirun). All ranks on one machine may share
 * one RUN: rank 0 uses RUN itself, rank R > 0 keeps its weights.bin, lock and failure note in RUN/rank-R, which
 * run_create, run_open_weights and run_note_failure use by themselves. */
int run_rank(int *world);
char *run_rank_dir(const char *dir);   /* RUN or RUN/rank-R; free() it */

/* rm -r */
int run_remove_tree(const char *path);

#endif
