/* st-forward: batches in, the same batches out with "embeddings" [columns][rows][dim] from a model directory.
 * Every batch is cut into chunks of --mini-batch-size rows (trimmed to the chunk's longest row) so memory is
 * bounded by the chunk. With --train, dropout is on and every mask is keyed by (seed, step, column, row), so
 * st-step can replay the same masks when it recomputes the chunk with activations kept. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include "st.h"
#include "stream.h"
#include "model.h"
#include "run.h"
#include "acts.h"
#include "trainenv.h"

static const char usage[] =
	"usage: st-forward --model DIR [--train --seed S] [options] < batches > batches\n"
	"\n"
	"Adds \"embeddings\" (float32 [columns][rows][dim]) to every batch record; other records pass through.\n"
	"A batch's \"prompt_lengths\" (st-tokenize --prompt) are left out of pooling when the model's\n"
	"1_Pooling/config.json says include_prompt: false.\n"
	"\n"
	"  --model DIR            a sentence-transformers model directory (or a plain Hugging Face checkpoint),\n"
	"                         or a Hub name such as org/name[@revision] (docs/hub.md)\n"
	"  --train                dropout on (training forward pass); masks keyed by (seed, step, column, row)\n"
	"  --run DIR              train synchronously with the st-step of run DIR: its weights (shared memory) and\n"
	"                         seed; each batch waits until the weights after the previous step are published\n"
	"                         (implies --train; --model gives the architecture)\n"
	"  --objective K          with several training objectives, this pipeline's 0-based index (default 0)\n"
	"  --wait-timeout S       give up when st-step has not published the run, or not applied the update a batch\n"
	"                         waits for, after S seconds (default 600; 0: wait for ever)\n"
	"  --seed S               dropout seed (default 42)\n"
	"  --mini-batch-size N    rows per chunk (default 32)\n"
	"  --keep-activations MIB with --run: keep a batch's activations for st-step (no second forward pass there)\n"
	"                         when they take at most MIB MiB (default 1024; 0: never)\n"
	"  --json                 write JSON Lines instead of msgpack\n"
	"  --threads N            threads (default all cores)\n"
	"  --help                 this text\n";

/* prompt_lengths [columns][rows] (st-tokenize --prompt through st-batch), or NULL when the batch has none;
 * dies naming the record when it does not match the batch. */
static const int32_t *prompt_lengths(const st_val *rec, const st_tensor *ids, const char *where)
{
	const st_val *v = st_get(rec, "prompt_lengths");
	if (!v || v->type == ST_NIL)
		return NULL;
	const st_tensor *p = &v->t;
	if (v->type != ST_TENSOR || p->dtype != ST_I32 || p->ndim != 2 || p->shape[0] != ids->shape[0] ||
	    p->shape[1] != ids->shape[1])
		die(EX_DATAERR, "prompt_lengths must be an int32 tensor [columns][rows] matching input_ids (%s)", where);
	for (size_t i = 0; i < p->count; i++)
		if (ST_I32P(p)[i] < 0)
			die(EX_DATAERR, "column %lld row %lld: prompt length %d is negative (%s)", (long long)(i / ids->shape[1]),
			    (long long)(i % ids->shape[1]), ST_I32P(p)[i], where);
	return ST_I32P(p);
}

/* Checks a batch's tensors against the model; dies naming the record. */
static void check_batch(const st_model *m, const st_tensor *ids, const st_tensor *lens, const char *where)
{
	if (ids->dtype != ST_I32 || ids->ndim != 3)
		die(EX_DATAERR, "input_ids is not a batch (int32 [columns][rows][T]): run st-batch first (%s)", where);
	if (!lens || lens->dtype != ST_I32 || lens->ndim != 2 || lens->shape[0] != ids->shape[0] ||
	    lens->shape[1] != ids->shape[1])
		die(EX_DATAERR, "lengths must be an int32 tensor [columns][rows] matching input_ids (%s)", where);
	const enc_config *c = model_encoder_config(m);
	int64_t C = ids->shape[0], B = ids->shape[1], T = ids->shape[2];
	int limit = enc_max_length(c);
	for (int64_t i = 0; i < C * B; i++) {
		int32_t len = ST_I32P(lens)[i];
		if (len < 0 || len > T)
			die(EX_DATAERR, "column %lld row %lld: length %d outside 0..%lld (%s)", (long long)(i / B),
			    (long long)(i % B), len, (long long)T, where);
		if (len > limit)
			die(EX_DATAERR, "column %lld row %lld: %d tokens, the model takes at most %d (%s)",
			    (long long)(i / B), (long long)(i % B), len, limit, where);
		const int32_t *row = ST_I32P(ids) + i * T;
		for (int32_t t = 0; t < len; t++)
			if (row[t] < 0 || row[t] >= c->vocab_size)
				die(EX_DATAERR, "column %lld row %lld position %d: token id %d outside the vocabulary 0..%d (%s)",
				    (long long)(i / B), (long long)(i % B), t, row[t], c->vocab_size - 1, where);
	}
}

/* the note naming the kept activations goes with st-forward, however it exits */
static acts_out *kept_at_exit;
static void close_kept(void) { acts_out_close(kept_at_exit); kept_at_exit = NULL; }

int main(int argc, char **argv)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	st_started = (double)now.tv_sec + now.tv_nsec * 1e-9;
	st_tool_init("st-forward", argc, argv, usage);
	const char *model_path = NULL, *run_dir = NULL;
	int train = 0, json = 0;
	long seed = 42, mini = 32, objective = 0;
	double wait_timeout = 600, keep_mib = 1024;
	enum { O_MODEL = 256, O_TRAIN, O_RUN, O_OBJECTIVE, O_WAIT, O_SEED, O_MINI, O_JSON, O_THREADS, O_KEEP };
	static const struct option opts[] = {
		{ "model", required_argument, 0, O_MODEL }, { "train", no_argument, 0, O_TRAIN },
		{ "run", required_argument, 0, O_RUN }, { "objective", required_argument, 0, O_OBJECTIVE },
		{ "wait-timeout", required_argument, 0, O_WAIT }, { "seed", required_argument, 0, O_SEED },
		{ "mini-batch-size", required_argument, 0, O_MINI }, { "json", no_argument, 0, O_JSON },
		{ "threads", required_argument, 0, O_THREADS }, { "keep-activations", required_argument, 0, O_KEEP },
		{ 0 } };
	int c;
	while ((c = st_getopt(argc, argv, opts, usage)) != -1) {
		const char *a = argv[optind - 1];
		switch (c) {
		case O_MODEL: model_path = optarg; break;
		case O_TRAIN: train = 1; break;
		case O_RUN: run_dir = optarg, train = 1; break;
		case O_OBJECTIVE: objective = st_parse_long(a, optarg); break;
		case O_WAIT: wait_timeout = st_parse_double(a, optarg); break;
		case O_SEED: seed = st_parse_long(a, optarg); break;
		case O_MINI:
			if ((mini = st_parse_long(a, optarg)) <= 0)
				usage_error(usage, "--mini-batch-size must be positive");
			break;
		case O_JSON: json = 1; break;
		case O_KEEP:
			if ((keep_mib = st_parse_double(a, optarg)) < 0)
				usage_error(usage, "--keep-activations must be 0 or more (MiB)");
			break;
		case O_THREADS: st_set_threads((int)st_parse_long(a, optarg)); break;
		}
	}
	if (optind < argc)
		usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!model_path)
		usage_error(usage, "--model DIR is required");
	if (train)
		train_spin_default(argv);
	if (run_dir && run_is_model_dir(run_dir))
		usage_error(usage, "--run %s is a model directory; the run directory is st-step's own: give a new one, e.g. "
		            "st-forward --model %s --run run and st-step --model %s --run run", run_dir, run_dir, run_dir);
	st_model *m = model_open(model_path);   /* dies 66 when missing, 65 when broken */
	char err[1024];
	int dim = model_dim(m);
	/* In a run, the weights are st-step's, shared through memory: nothing is reloaded per step. */
	run_weights *run = NULL;
	if (run_dir) {
		run = run_open_weights(run_dir, model_num_params(m), wait_timeout, err, sizeof err);
		if (!run)
			die(EX_UNAVAILABLE, "%s", err);
		if (objective < 0 || objective >= run_objectives(run))
			usage_error(usage, "--objective %ld: the run has %d objectives", objective, run_objectives(run));
		model_bind_params(m, run_params(run));
		seed = (long)run_seed(run);
	}
	/* the activations of each batch for st-step, within the budget (acts.h); without them st-step recomputes */
	acts_out *keep = NULL;
	if (run && keep_mib > 0 && !(keep = acts_out_create(run_dir, (int)objective, (size_t)(keep_mib * 1048576.0), err,
	                                                    sizeof err)))
		warn("%s: st-step will recompute the forward pass", err);
	kept_at_exit = keep;
	atexit(close_kept);
	uint64_t *kept_table = NULL;

	st_reader *r = st_reader_open(0, "stdin");
	st_writer *w = st_writer_open(1, json);
	int32_t *chunk_ids = NULL, *chunk_lens = NULL;
	size_t chunk_cap = 0;
	st_val *rec;
	char run_stamp[24] = "";
	if (run)
		snprintf(run_stamp, sizeof run_stamp, "%016" PRIx64, run_id(run));
	int sent = 0;   /* batches this st-forward has handed on in the run */
	while ((rec = st_read(r))) {
		st_val *idsv = st_get(rec, "input_ids");
		if (!idsv) {   /* logs and other records pass through */
			st_write(w, rec);
			st_free(rec);
			continue;
		}
		const char *where = st_reader_where(r);
		if (idsv->type != ST_TENSOR)
			die(EX_DATAERR, "input_ids is not a batch tensor: run st-batch first (%s)", where);
		st_tensor *ids = &idsv->t, *lens = st_get_tensor(rec, "lengths");
		check_batch(m, ids, lens, where);
		const int32_t *prompt = prompt_lengths(rec, ids, where);
		double stepd = 0;
		if (train && st_get_num(rec, "step", &stepd) < 0)
			die(EX_DATAERR, "--train needs the batch's \"step\" (%s)", where);
		/* synchronous training: embeddings of step n come from the weights after step n-1 */
		if (run)
			st_writer_flush(w);   /* st-step needs the previous batch before it can publish */
		int64_t drop_step = (int64_t)stepd;
		if (run) {
			/* st-step keys dropout by the update index (step * objectives + objective) */
			uint64_t update = run_update_index(run, (int64_t)stepd, (int)objective);
			/* st-step is at global step published/K and needs this pipeline's batch of that step before it
			 * can go on; a first batch beyond it would wait for ever */
			uint64_t at = run_published(run) / (uint64_t)run_objectives(run);
			if (!sent && stepd > (double)at)
				die(EX_DATAERR, "the first batch is of step %.0f, but st-step of %s is at step %llu and needs that "
				    "step's batch first: give st-batch --start-step %llu (the newest checkpoint's step) (%s)", stepd,
				    run_dir, (unsigned long long)at, (unsigned long long)at, where);
			int waited = run_wait(run, update, wait_timeout, err, sizeof err);
			if (waited == -2)
				die(EX_UNAVAILABLE, "%s (%s)", err, where);
			if (waited < 0)
				die(EX_SOFTWARE, "%s (%s)", err, where);
			if (waited > 0) {   /* st-step has finished (e.g. --max-steps): no one needs more batches */
				st_free(rec);
				break;
			}
			drop_step = (int64_t)update;
		}
		int C = (int)ids->shape[0], B = (int)ids->shape[1], T = (int)ids->shape[2];
		int64_t eshape[3] = { C, B, dim };
		st_val *embv = st_tensor_new(ST_F32, 3, eshape);
		float *emb = ST_F32P(&embv->t);
		/* room for every chunk's activations, or none (over the budget) */
		int per_col = (B + (int)mini - 1) / (int)mini;
		float *kept = NULL;
		if (keep) {
			size_t floats = 0;
			for (int c = 0; c < C; c++)
				for (int r0 = 0; r0 < B; r0 += mini)
					floats += model_kept_floats(m, ST_I32P(lens) + (size_t)c * B + r0, B - r0 < mini ? B - r0 : (int)mini);
			kept = acts_out_begin(keep, (size_t)C * per_col, floats, &kept_table);
		}
		size_t kept_off = 0;
		for (int c = 0; c < C; c++) {
			for (int r0 = 0; r0 < B; r0 += mini) {
				int rows = B - r0 < mini ? B - r0 : (int)mini;
				const int32_t *len = ST_I32P(lens) + (size_t)c * B + r0;
				int Tc = 0;
				for (int b = 0; b < rows; b++)
					Tc = len[b] > Tc ? len[b] : Tc;
				if (Tc == 0)
					Tc = 1;
				if ((size_t)rows * Tc > chunk_cap) {
					chunk_cap = (size_t)rows * Tc;
					chunk_ids = xrealloc(chunk_ids, xmul(chunk_cap, sizeof(int32_t)));
				}
				chunk_lens = xrealloc(chunk_lens, sizeof(int32_t) * rows);
				/* the chunk trimmed to its own longest row */
				for (int b = 0; b < rows; b++) {
					const int32_t *src = ST_I32P(ids) + ((size_t)c * B + r0 + b) * T;
					memset(chunk_ids + (size_t)b * Tc, 0, sizeof(int32_t) * Tc);
					memcpy(chunk_ids + (size_t)b * Tc, src, sizeof(int32_t) * len[b]);
					chunk_lens[b] = len[b];
				}
				enc_dropout drop = { (uint64_t)seed, drop_step, c, r0 };
				/* prompt tokens leave pooling when the model says include_prompt: false */
				model_set_prompt_lengths(m, prompt ? prompt + (size_t)c * B + r0 : NULL, rows);
				size_t chunk = (size_t)c * per_col + r0 / mini;
				size_t need = kept ? model_kept_floats(m, chunk_lens, rows) : 0;
				if (kept && need > 0) {   /* chunks without tokens: st-step skips them */
					kept_table[chunk] = kept_off;
					model_embed_keep(m, chunk_ids, chunk_lens, rows, Tc, emb + ((size_t)c * B + r0) * dim, &drop,
					                 kept + kept_off);
					kept_off += need;
				} else {
					if (kept)
						kept_table[chunk] = UINT64_MAX;
					model_embed(m, chunk_ids, chunk_lens, rows, Tc, emb + ((size_t)c * B + r0) * dim,
						    train ? &drop : NULL);
				}
			}
		}
		st_set(rec, "embeddings", embv);
		if (kept) {
			acts_key key = { run_id(run), (uint64_t)drop_step,
			                 acts_hash(ST_I32P(ids), ids->count, ST_I32P(lens), lens->count),
			                 (int32_t)objective, (int32_t)mini, C, B, T, 0 };
			acts_out_commit(keep, &key);
		}
		if (run) {   /* st-step checks that these embeddings come from its weights at this update */
			st_set(rec, "run_id", st_str(run_stamp));
			st_set(rec, "update", st_int((int64_t)drop_step));
			sent++;
		}
		st_write(w, rec);
		st_free(rec);
	}
	st_writer_close(w);
	st_reader_close(r);
	free(chunk_ids);
	free(chunk_lens);
	model_free(m);
	close_kept();
	if (run)
		run_close(run);
	return 0;
}
