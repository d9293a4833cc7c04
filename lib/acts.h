/* acts.h: kept activations, handed from st-forward --run to st-step so that st-step need not run the forward
 * pass again (docs/training.md, "Kept activations").
 *
 * st-forward keeps the encoder activations of each batch, chunk by chunk, in an anonymous memory file (memfd:
 * nothing on disk, gone with the processes) and names it in RUN/activations-K (K: the objective; RUN/rank-R/
 * for ranks > 0) as "st-activations PID FD". st-step maps /proc/PID/fd/FD read-only and uses a batch's
 * activations only when the file's key (run id, update, objective, rows per chunk, shape, a hash of the ids and
 * lengths) is the batch's; anything else (no file, another run, an older batch, other chunks, a batch over the
 * budget) and it recomputes the chunk's forward pass (GradCache), with the same results.
 *
 * Safe without locks: st-forward writes the activations of update u only after st-step has published update u,
 * that is after st-step has finished with those of update u - 1.
 *
 *   header (4096 bytes) | chunk table (u64 float offsets, ~0: not kept) | chunks (each a multiple of 16 floats)
 */
#ifndef ST_ACTS_H
#define ST_ACTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct acts_key {
	uint64_t run_id, update, hash;   /* hash: acts_hash of the batch's input_ids and lengths */
	int32_t objective, mini, C, B, T, pad;
} acts_key;

uint64_t acts_hash(const int32_t *ids, size_t nids, const int32_t *lengths, size_t nlengths);

/* ---- st-forward's side ---- */
typedef struct acts_out acts_out;
/* NULL (and a message in err) when the memory file cannot be made; budget: the most bytes kept per batch */
acts_out *acts_out_create(const char *run_dir, int objective, size_t budget, char *err, size_t errlen);
/* Invalidates the kept batch, then makes room for nchunks chunks of `floats` floats in all: the chunk table
 * (fill it) and the base the table's offsets count from. NULL when that is over the budget. */
float *acts_out_begin(acts_out *o, size_t nchunks, size_t floats, uint64_t **table);
/* The activations written since acts_out_begin are those of batch k. */
void acts_out_commit(acts_out *o, const acts_key *k);
/* Removes RUN/activations-K when it still names this process's file. */
void acts_out_close(acts_out *o);

/* ---- st-step's side ---- */
typedef struct acts_in acts_in;
acts_in *acts_in_new(const char *run_dir, int objective);
/* Chunk i of batch k, when st-forward kept it: else NULL (recompute). */
float *acts_in_find(acts_in *in, const acts_key *k, size_t chunk);
void acts_in_free(acts_in *in);

#endif
