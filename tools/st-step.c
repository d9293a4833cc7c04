/* st-step: the last stage of training. Turns each batch's dL/d(embedding) into parameter gradients by
 * re-running the forward pass chunk by chunk with activations kept and the same dropout masks (GradCache),
 * clips, applies one AdamW step with the schedule, and publishes the weights to the run directory that
 * st-forward reads (docs/st-step.md, docs/training.md). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acts.h"
#include "dist.h"
#include "encoder.h"
#include "hub.h"
#include "model.h"
#include "optim.h"
#include "run.h"
#include "st.h"
#include "stream.h"
#include "trainenv.h"

static const char usage[] =
	"usage: st-step --run DIR (--model MODEL | --resume) [options] < batches-with-grad > log\n"
	"\n"
	"  --run DIR                 the run directory shared with st-forward --run DIR (docs/training.md)\n"
	"  --model MODEL             the model to start from (a sentence-transformers or Hugging Face directory,\n"
	"                            or a Hub name such as org/name[@revision]: docs/hub.md)\n"
	"  --resume                  continue from the newest DIR/checkpoint-N (weights, optimizer, schedule)\n"
	"  --overwrite               a fresh run in DIR although an earlier run left checkpoints or models there:\n"
	"                            removes st's own files of that run first (nothing else)\n"
	"  --input FILE              read batches from FILE (a file or FIFO) instead of stdin; repeat for several\n"
	"                            training objectives, taken round-robin, one batch each per step\n"
	"  --lr X                    base learning rate (default 2e-5)\n"
	"  --scheduler NAME          constantlr, warmupconstant, warmuplinear (default), warmupcosine,\n"
	"                            warmupcosinewithhardrestarts\n"
	"  --warmup-steps N|P%       warmup steps, or a percentage of the total steps (default 0)\n"
	"  --weight-decay X          AdamW weight decay of weights, not biases and LayerNorm weights (default 0.01)\n"
	"  --max-grad-norm X         clip the global gradient norm (default 1; 0 disables)\n"
	"  --optimizer NAME          adamw (torch.optim.AdamW, default) or adamw-hf (transformers.AdamW)\n"
	"  --eps X                   Adam epsilon (default 1e-8 for adamw, 1e-6 for adamw-hf)\n"
	"  --mini-batch-size N       rows per re-forward and backward chunk (default 32): memory, not results;\n"
	"                            st-forward's activations are used (no re-forward) when its value is the same\n"
	"  --seed S                  dropout seed, shared with st-forward through the run (default 42)\n"
	"  --steps N                 total steps for the schedule (default: the batches' \"steps\")\n"
	"  --max-steps N             stop after N global steps\n"
	"  --checkpoint-every N      save DIR/checkpoint-STEP every N steps (and at the end)\n"
	"  --checkpoint-limit K      keep only the newest K checkpoints (default all)\n"
	"  --eval-every N            run the evaluator every N steps (and at each epoch end)\n"
	"  --evaluator CMD           shell command scoring the model in $ST_MODEL; prints the score last\n"
	"  --save-best               keep the best-scoring model in DIR/best\n"
	"  --no-save                 do not write DIR/model at the end\n"
	"  --wait-timeout S          give up when no batch arrives for S seconds, or (under mpirun) when another\n"
	"                            rank does not reach a collective within S seconds (default 0: wait for ever)\n"
	"  --bucket-mb X             under mpirun: reduce the gradient in buckets of X MB, started during the\n"
	"                            backward of the step's last chunk (default 25; 0: one reduction after it)\n"
	"  --trust-embeddings        accept batches that st-forward --run DIR did not stamp (gradients computed\n"
	"                            elsewhere on purpose; nothing checks that they fit the current weights)\n"
	"  --grad-out FILE           write every step's gradient (float32 [n], before clipping) to FILE (tests)\n"
	"  --json                    write the log as JSON Lines instead of msgpack\n"
	"  --threads N               threads (default all cores)\n";

struct opts {
	const char *run_dir, *model_dir, *evaluator, *warmup_text, *grad_out;
	const char **inputs;
	int ninputs, resume, save_best, json, no_save, overwrite, trust;
	double wait_timeout, bucket_mb;
	double lr, weight_decay, max_grad_norm, eps;
	enum optim_kind kind;
	enum optim_sched sched;
	long mini_batch, checkpoint_every, checkpoint_limit, eval_every, steps, max_steps, threads;
	uint64_t seed;
	unsigned given;        /* GIVEN_* bits: options on the command line (a resume keeps the others) */
};

enum { GIVEN_LR = 1, GIVEN_SCHED = 2, GIVEN_WARMUP = 4, GIVEN_WD = 8, GIVEN_MAXNORM = 16, GIVEN_EPS = 32,
       GIVEN_OPTIMIZER = 64 };

struct trainer {
	struct opts o;
	st_model *m;
	size_t n;              /* parameters */
	float *grads;          /* [n] */
	optim **opt;           /* one per objective (fit: one optimizer and scheduler per objective) */
	int k;                 /* objectives */
	run_weights *w;
	run_state st;
	st_reader **in;        /* [k], opened when first read (opening reads the first bytes) */
	int *fds;              /* [k] */
	st_val **pending;      /* the first batch of input 0, read before the first step */
	char *seen;            /* [k] whether input i's first batch has been read */
	st_writer *out;
	double t_last, t_start, examples_since;
	int64_t last_checkpoint, last_eval, start_step;
	char run_stamp[24];    /* this st-step's run id, as st-forward stamps it */
	int64_t batches;       /* batch records read */
	int progress;
	FILE *grad_out;
	acts_in **kept;        /* [k] the activations st-forward kept (acts.h) */
	int64_t reforwarded;   /* chunks of the current batch recomputed (GradCache) */
	int rank, world;       /* data-parallel training (mpirun): rank 0 writes the model, checkpoints and log */
};

/* ---- data-parallel pieces (the MPI itself is in lib/dist.c) ---- */

/* enc_backward's report of a finished layer: its bucket's allreduce can start */
static void grads_done(void *ctx, size_t off, size_t count)
{
	(void)ctx;
	dist_reduce_ready(off, count);
}

/* A batch gathered by st-gather carries the global batch's "grad" [C][world x rows][dim] and "own_rows"
 * [first, count], the rows of its own "input_ids". Every rank computed the same loss over the global batch, so
 * the sum over ranks of their gradients on this rank's rows (what the all-gather's backward would add up) is
 * world x its own rows' gradient: keep those, times world, and the mean allreduce gives the global gradient.
 * Returns NULL for a batch that was not gathered. */
static float *own_rows_grad(struct trainer *t, const st_val *rec, const st_tensor *grad, int C, int B, int dim,
			    const char *where)
{
	st_val *own = st_get(rec, "own_rows");
	if (!own)
		return NULL;
	double first, count, w = -1;
	if (own->type != ST_ARRAY || own->arr.n != 2 || st_num(own->arr.items[0], &first) != 0 ||
	    st_num(own->arr.items[1], &count) != 0)
		die(EX_DATAERR, "\"own_rows\" must be [first, count] (%s)", where);
	st_get_num(rec, "gather_world", &w);
	if ((int)w != t->world)
		die(EX_DATAERR, "the batch of step %lld was gathered over %.0f ranks, this run has %d: st-gather and "
		    "st-step must run under the same mpirun (%s)", (long long)t->st.step, w, t->world, where);
	if ((int)count != B || first < 0 || grad->ndim != 3 || first + count > grad->shape[1] || grad->shape[0] != C ||
	    grad->shape[2] != dim)
		die(EX_DATAERR, "\"own_rows\" [%.0f, %.0f] does not fit \"grad\" [%lld][%lld][%lld] and %d rows of "
		    "\"input_ids\" (%s)", first, count, (long long)grad->shape[0], (long long)grad->shape[1],
		    (long long)grad->shape[2], B, where);
	float *g = xmalloc(xmul(xmul((size_t)C, B), dim * sizeof(float)));
	for (int c = 0; c < C; c++)
		for (int b = 0; b < B; b++)
			for (int j = 0; j < dim; j++)
				g[((size_t)c * B + b) * dim + j] = (float)t->world *
					ST_F32P(grad)[((size_t)c * grad->shape[1] + (size_t)first + b) * dim + j];
	return g;
}

/* ---- saving ---- */

struct save_ctx { struct trainer *t; };

static int fill_model(const char *tmpdir, void *ctx, char *err, size_t errlen)
{
	struct trainer *t = ctx;
	return model_save(t->m, tmpdir, err, errlen);
}

static int fill_checkpoint(const char *tmpdir, void *ctx, char *err, size_t errlen)
{
	struct trainer *t = ctx;
	char path[4096];
	snprintf(path, sizeof path, "%s/model", tmpdir);
	if (model_save(t->m, path, err, errlen) != 0)
		return -1;
	snprintf(path, sizeof path, "%s/optimizer.bin", tmpdir);
	if (run_optim_write(path, t->opt, t->k, err, errlen) != 0)
		return -1;
	snprintf(path, sizeof path, "%s/trainer.json", tmpdir);
	return run_state_write(path, &t->st, err, errlen);
}

static void save_model(struct trainer *t, const char *name)
{
	if (t->rank > 0)
		return;
	char path[4096], err[512];
	snprintf(path, sizeof path, "%s/%s", t->o.run_dir, name);
	if (run_write_dir(path, fill_model, t, err, sizeof err) != 0)
		die(EX_IOERR, "%s", err);
}

static void save_state(struct trainer *t)
{
	if (t->rank > 0)
		return;
	char path[4096], err[512];
	snprintf(path, sizeof path, "%s/trainer.json", t->o.run_dir);
	if (run_state_write(path, &t->st, err, sizeof err) != 0)
		die(EX_IOERR, "%s", err);
}

static void checkpoint(struct trainer *t)
{
	if (t->rank > 0) {
		t->last_checkpoint = t->st.step;
		return;
	}
	char path[4096], err[512];
	snprintf(path, sizeof path, "%s/checkpoint-%lld", t->o.run_dir, (long long)t->st.step);
	if (run_write_dir(path, fill_checkpoint, t, err, sizeof err) != 0)
		die(EX_IOERR, "%s", err);
	run_prune_checkpoints(t->o.run_dir, (int)t->o.checkpoint_limit);
	save_state(t);   /* DIR/model is written only at the end of the whole run: its presence means finished */
	t->last_checkpoint = t->st.step;
}

/* ---- evaluation ---- */

static void evaluate(struct trainer *t)
{
	if (!t->o.evaluator || t->last_eval == t->st.step || t->rank > 0)
		return;
	t->last_eval = t->st.step;
	char path[4096];
	save_model(t, "current");
	snprintf(path, sizeof path, "%s/current", t->o.run_dir);
	setenv("ST_MODEL", path, 1);
	char step[32];
	snprintf(step, sizeof step, "%lld", (long long)t->st.step);
	setenv("ST_STEP", step, 1);
	char epoch[32];
	snprintf(epoch, sizeof epoch, "%lld", (long long)t->st.epoch);
	setenv("ST_EPOCH", epoch, 1);   /* st-eval's CSV and log records carry the epoch of the evaluation */
	fflush(stdout);
	/* sh -c CMD with stdin /dev/null: the batch stream on our stdin is not the evaluator's to read */
	int pfd[2];
	if (pipe(pfd) != 0)
		die(EX_OSERR, "cannot run the evaluator: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die(EX_OSERR, "cannot run the evaluator: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		if (null < 0 || dup2(null, 0) < 0 || dup2(pfd[1], 1) < 0)
			_exit(127);
		close(pfd[0]);
		close(pfd[1]);
		execl("/bin/sh", "sh", "-c", t->o.evaluator, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	FILE *p = fdopen(pfd[0], "r");
	if (!p)
		die(EX_OSERR, "cannot run the evaluator: %s", strerror(errno));
	char line[4096], last[4096] = "";
	while (fgets(line, sizeof line, p))
		if (strspn(line, " \t\r\n") != strlen(line))
			snprintf(last, sizeof last, "%s", line);
	fclose(p);
	int rc;
	while (waitpid(pid, &rc, 0) < 0 && errno == EINTR)
		;
	if (rc != 0)
		die(EX_SOFTWARE, "the evaluator failed (exit status %d) at step %lld", rc, (long long)t->st.step);
	/* the score is the last number the evaluator prints */
	char *end = last + strlen(last), *tok = NULL;
	while (end > last && strchr(" \t\r\n}", end[-1]))
		*--end = '\0';
	for (tok = end; tok > last && !strchr(" \t:,", tok[-1]); tok--)
		;
	char *stop;
	double score = strtod(tok, &stop);
	if (stop == tok || !isfinite(score))
		die(EX_DATAERR, "the evaluator printed no score at step %lld (last line: %s)", (long long)t->st.step, last);
	int best = score > t->st.best_score;
	if (best) {
		t->st.best_score = score;
		t->st.best_step = t->st.step;
		if (t->o.save_best)
			save_model(t, "best");
	}
	st_val *rec = st_map();
	st_set(rec, "kind", st_str("eval"));
	st_set(rec, "step", st_int(t->st.step));
	st_set(rec, "epoch", st_int(t->st.epoch));
	st_set(rec, "score", st_float(score));
	st_set(rec, "best", st_bool(best));
	st_write(t->out, rec);
	st_writer_flush(t->out);
	char *js = st_to_json(rec, NULL);
	snprintf(path, sizeof path, "%s/eval.jsonl", t->o.run_dir);
	FILE *f = fopen(path, "a");
	if (f) {
		fprintf(f, "%s\n", js);
		fclose(f);
	}
	free(js);
	st_free(rec);
	save_state(t);
}

/* ---- one batch ---- */

static st_tensor *need_tensor(const st_val *rec, const char *key, enum st_dtype dt, int ndim, const char *where)
{
	st_tensor *x = st_get_tensor(rec, key);
	if (!x)
		die(EX_DATAERR, "batch without \"%s\" (%s); st-step reads batches from st-loss", key, where);
	if (x->dtype != dt || x->ndim != ndim)
		die(EX_DATAERR, "\"%s\" must be a %d-D %s tensor (%s)", key, ndim, st_dtype_name(dt), where);
	return x;
}

static void format_eta(double s, char *buf, size_t n)
{
	if (!isfinite(s) || s < 0)
		snprintf(buf, n, "?");
	else if (s >= 3600)
		snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
	else
		snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

static void train_batch(struct trainer *t, const st_val *rec, int objective, const char *where)
{
	st_tensor *ids = need_tensor(rec, "input_ids", ST_I32, 3, where);
	st_tensor *len = need_tensor(rec, "lengths", ST_I32, 2, where);
	st_tensor *grad = need_tensor(rec, "grad", ST_F32, 3, where);
	int C = (int)ids->shape[0], B = (int)ids->shape[1], T = (int)ids->shape[2];
	int dim = model_dim(t->m);
	if (len->shape[0] != C || len->shape[1] != B)
		die(EX_DATAERR, "\"lengths\" is [%lld][%lld], input_ids [%d][%d][..] (%s)", (long long)len->shape[0],
		    (long long)len->shape[1], C, B, where);
	float *own = own_rows_grad(t, rec, grad, C, B, dim, where);
	if (!own && (grad->shape[0] != C || grad->shape[1] != B || grad->shape[2] != dim))
		die(EX_DATAERR, "\"grad\" is [%lld][%lld][%lld], expected [%d][%d][%d] (%s)", (long long)grad->shape[0],
		    (long long)grad->shape[1], (long long)grad->shape[2], C, B, dim, where);
	const int32_t *L = ST_I32P(len);
	for (size_t i = 0; i < (size_t)C * B; i++)
		if (L[i] < 0 || L[i] > T)
			die(EX_DATAERR, "length %d outside [0, %d] (%s)", L[i], T, where);
	/* st-tokenize --prompt's prompt_lengths: pooled as st-forward pooled them (include_prompt: false) */
	const int32_t *P = NULL;
	if (st_get(rec, "prompt_lengths")) {
		st_tensor *pl = need_tensor(rec, "prompt_lengths", ST_I32, 2, where);
		if (pl->shape[0] != C || pl->shape[1] != B)
			die(EX_DATAERR, "\"prompt_lengths\" is [%lld][%lld], input_ids [%d][%d][..] (%s)",
			    (long long)pl->shape[0], (long long)pl->shape[1], C, B, where);
		P = ST_I32P(pl);
	}
	double loss = NAN;
	st_get_num(rec, "loss", &loss);
	uint64_t update = (uint64_t)t->st.step * t->k + objective;
	if (!t->o.trust) {
		/* the loss's gradient is only right for embeddings of the weights after the previous update */
		const char *id = st_get_str(rec, "run_id");
		double u = -1;
		if (!id || st_get_num(rec, "update", &u) != 0)
			die(EX_DATAERR, "the batch of step %lld carries no run stamp: its embeddings were not computed from "
			    "this run's current weights; give st-forward --run %s (with --model for the architecture) (%s)",
			    (long long)t->st.step, t->o.run_dir, where);
		if (strcmp(id, t->run_stamp) != 0)
			die(EX_DATAERR, "the batch of step %lld was embedded for another run (run_id %s, this run is %s): "
			    "give st-forward --run %s, the st-step's run directory (%s)", (long long)t->st.step, id,
			    t->run_stamp, t->o.run_dir, where);
		if ((uint64_t)u != update)
			die(EX_DATAERR, "the batch of step %lld was embedded after update %.0f, this step needs update %llu "
			    "(%s)", (long long)t->st.step, u, (unsigned long long)update, where);
	}
	{
		const float *g = ST_F32P(grad);
		for (size_t i = 0; i < grad->count; i++)
			if (!isfinite(g[i]))
				die(EX_DATAERR, "the batch of step %lld has a %s in \"grad\" (column %zu, row %zu): the loss stage "
				    "diverged; nothing of this step applied, no final model written (%s)", (long long)t->st.step,
				    isnan(g[i]) ? "NaN" : "infinite value", i / ((size_t)B * dim), i / dim % B, where);
	}

	/* GradCache: the loss already holds dL/dE for the whole batch; re-forward each chunk of rows with the
	 * masks st-forward used (keyed by seed, update, column, row) and back-propagate its rows of dL/dE. The
	 * parameter gradients add up to those of one backward over the full batch. */
	const float *G = own ? own : ST_F32P(grad);
	int mb = (int)t->o.mini_batch;
	/* st-forward's activations of this very batch (same run, update, chunks and tokens), where it kept them */
	acts_key key = { run_id(t->w), update, acts_hash(ST_I32P(ids), ids->count, L, len->count), objective, mb, C, B,
	                 T, 0 };
	int per_col = (B + mb - 1) / mb;
	t->reforwarded = 0;
	/* under mpirun the last chunk's backward starts the gradient's allreduce, bucket by bucket */
	dist_reduce_begin(t->grads, t->n, (size_t)(t->o.bucket_mb * 1e6 / sizeof(float)));
	int last_c = -1, last_r0 = -1;
	for (int i = 0; i < C * B; i++)
		if (L[i] > 0)
			last_c = i / B, last_r0 = i % B / mb * mb;
	for (int c = 0; c < C; c++)
		for (int r0 = 0; r0 < B; r0 += mb) {
			int rows = B - r0 < mb ? B - r0 : mb;
			const int32_t *cl = L + (size_t)c * B + r0;
			int Tc = 0;   /* the chunk's own padded length: less work, same result */
			for (int b = 0; b < rows; b++)
				Tc = cl[b] > Tc ? cl[b] : Tc;
			if (Tc == 0)
				continue;
			if (t->world > 1 && c == last_c && r0 == last_r0)
				enc_set_grads_done(grads_done, NULL);
			int32_t *cids = xmalloc(xmul((size_t)rows * Tc, sizeof(int32_t)));
			for (int b = 0; b < rows; b++)
				memcpy(cids + (size_t)b * Tc, ST_I32P(ids) + ((size_t)c * B + r0 + b) * T, Tc * sizeof(int32_t));
			enc_dropout drop = { t->o.seed, (int64_t)update, c, r0 };
			model_set_prompt_lengths(t->m, P ? P + (size_t)c * B + r0 : NULL, rows);
			float *kept = acts_in_find(t->kept[objective], &key, (size_t)c * per_col + r0 / mb);
			if (kept)
				model_embed_backward_kept(t->m, cids, cl, rows, Tc, &drop, G + ((size_t)c * B + r0) * dim, t->grads,
				                          kept);
			else {
				t->reforwarded++;
				model_embed_backward(t->m, cids, cl, rows, Tc, &drop, G + ((size_t)c * B + r0) * dim, t->grads);
			}
			enc_set_grads_done(NULL, NULL);
			free(cids);
		}
	model_set_prompt_lengths(t->m, NULL, 0);
	free(own);
	/* DistributedDataParallel: the mean of the ranks' gradients (each the gradient of its own batch's loss),
	 * before clipping; every rank then applies the same update to the same weights */
	if (t->world > 1) {
		dist_reduce_finish("the gradient's allreduce");
		loss = dist_mean_double(loss);
	}
	if (t->grad_out && fwrite(t->grads, sizeof(float), t->n, t->grad_out) != t->n)
		die(EX_IOERR, "cannot write %s", t->o.grad_out);
	double norm = optim_grad_norm(t->grads, t->n);   /* the clip coefficient goes into the update's pass */
	if (!isfinite(norm))
		die(EX_DATAERR, "step %lld: the parameter gradient is %s (the model's backward overflowed): nothing of this "
		    "step applied, no final model written; a lower --lr or --max-grad-norm may help (%s)",
		    (long long)t->st.step, isnan(norm) ? "NaN" : "infinite", where);
	double lr = t->o.lr * optim_sched_lambda(t->o.sched, t->st.step, t->st.warmup_steps, t->st.total_steps);
	optim_step_clipped(t->opt[objective], model_params(t->m), t->grads, lr, optim_clip_coef(norm, t->o.max_grad_norm));
	t->st.updates = update + 1;
	run_publish(t->w, t->st.updates);

	double now = st_now();
	B *= t->world;   /* the global batch */
	t->examples_since += B;
	double eps_rate = B / (now - t->t_last > 0 ? now - t->t_last : 1e-9);
	t->t_last = now;
	t->st.examples += B;
	if (t->rank > 0)
		return;   /* rank 0 logs */
	t->st.last_loss = loss;
	st_val *log = st_map();
	st_set(log, "kind", st_str("log"));
	st_set(log, "step", st_int(t->st.step));
	st_set(log, "epoch", st_int(t->st.epoch));
	if (t->k > 1)
		st_set(log, "objective", st_int(objective));
	st_set(log, "loss", st_float(loss));
	st_set(log, "lr", st_float(lr));
	st_set(log, "grad_norm", st_float(norm));
	st_set(log, "examples_per_s", st_float(eps_rate));
	st_set(log, "reforwarded", st_int(t->reforwarded));
	st_write(t->out, log);
	st_writer_flush(t->out);
	st_free(log);
	if (t->progress) {
		int64_t total = t->o.max_steps > 0 && t->o.max_steps < t->st.total_steps ? t->o.max_steps : t->st.total_steps;
		double done = (double)(t->st.step + 1 - t->start_step);
		char eta[32];
		format_eta((now - t->t_start) / done * (double)(total - t->st.step - 1), eta, sizeof eta);
		fprintf(stderr, "\rst-step: step %lld/%lld  loss %.4f  lr %.3g  %.1f ex/s  ETA %s   ",
		        (long long)t->st.step + 1, (long long)total, loss, lr, eps_rate, eta);
	}
}

/* ---- main ---- */

static void parse(struct opts *o, int argc, char **argv)
{
	memset(o, 0, sizeof *o);
	o->lr = 2e-5;
	o->weight_decay = 0.01;
	o->max_grad_norm = 1;
	o->eps = -1;
	o->kind = OPTIM_ADAMW;
	o->sched = OPTIM_WARMUPLINEAR;
	o->mini_batch = 32;
	o->seed = 42;
	o->warmup_text = "0";
	o->bucket_mb = 25;   /* DistributedDataParallel's bucket_cap_mb */
	o->inputs = xcalloc(argc, sizeof *o->inputs);
	enum { O_RUN = 256, O_MODEL, O_RESUME, O_INPUT, O_LR, O_SCHED, O_WARMUP, O_WD, O_MAXNORM, O_EPS, O_OPTIMIZER,
	       O_MINI, O_SEED, O_STEPS, O_MAXSTEPS, O_CKEVERY, O_CKLIMIT, O_EVALEVERY, O_EVALUATOR, O_SAVEBEST,
	       O_NOSAVE, O_GRADOUT, O_JSON, O_THREADS, O_OVERWRITE, O_TRUST, O_WAIT, O_BUCKET };
	static const struct option opts[] = {
		{ "run", required_argument, 0, O_RUN }, { "model", required_argument, 0, O_MODEL },
		{ "resume", no_argument, 0, O_RESUME }, { "input", required_argument, 0, O_INPUT },
		{ "lr", required_argument, 0, O_LR }, { "scheduler", required_argument, 0, O_SCHED },
		{ "warmup-steps", required_argument, 0, O_WARMUP }, { "weight-decay", required_argument, 0, O_WD },
		{ "max-grad-norm", required_argument, 0, O_MAXNORM }, { "eps", required_argument, 0, O_EPS },
		{ "optimizer", required_argument, 0, O_OPTIMIZER }, { "mini-batch-size", required_argument, 0, O_MINI },
		{ "seed", required_argument, 0, O_SEED }, { "steps", required_argument, 0, O_STEPS },
		{ "max-steps", required_argument, 0, O_MAXSTEPS }, { "checkpoint-every", required_argument, 0, O_CKEVERY },
		{ "checkpoint-limit", required_argument, 0, O_CKLIMIT }, { "eval-every", required_argument, 0, O_EVALEVERY },
		{ "evaluator", required_argument, 0, O_EVALUATOR }, { "save-best", no_argument, 0, O_SAVEBEST },
		{ "no-save", no_argument, 0, O_NOSAVE }, { "grad-out", required_argument, 0, O_GRADOUT },
		{ "json", no_argument, 0, O_JSON }, { "threads", required_argument, 0, O_THREADS },
		{ "overwrite", no_argument, 0, O_OVERWRITE }, { "trust-embeddings", no_argument, 0, O_TRUST },
		{ "wait-timeout", required_argument, 0, O_WAIT }, { "bucket-mb", required_argument, 0, O_BUCKET }, { 0 } };
	int c;
	while ((c = st_getopt(argc, argv, opts, usage)) != -1) {
		const char *a = argv[optind - 1], *v = optarg;
		switch (c) {
		case O_RUN: o->run_dir = v; break;
		case O_MODEL: o->model_dir = v; break;
		case O_RESUME: o->resume = 1; break;
		case O_INPUT: o->inputs[o->ninputs++] = v; break;
		case O_LR: o->lr = st_parse_double(a, v); o->given |= GIVEN_LR; break;
		case O_SCHED:
			if (optim_sched_parse(v, &o->sched) != 0)
				usage_error(usage, "unknown scheduler %s", v);
			o->given |= GIVEN_SCHED;
			break;
		case O_WARMUP: o->warmup_text = v; o->given |= GIVEN_WARMUP; break;
		case O_WD: o->weight_decay = st_parse_double(a, v); o->given |= GIVEN_WD; break;
		case O_MAXNORM: o->max_grad_norm = st_parse_double(a, v); o->given |= GIVEN_MAXNORM; break;
		case O_EPS: o->eps = st_parse_double(a, v); o->given |= GIVEN_EPS; break;
		case O_OPTIMIZER:
			o->given |= GIVEN_OPTIMIZER;
			if (!strcmp(v, "adamw"))
				o->kind = OPTIM_ADAMW;
			else if (!strcmp(v, "adamw-hf"))
				o->kind = OPTIM_ADAMW_HF;
			else
				usage_error(usage, "unknown optimizer %s (adamw, adamw-hf)", v);
			break;
		case O_MINI: o->mini_batch = st_parse_long(a, v); break;
		case O_SEED: o->seed = (uint64_t)st_parse_long(a, v); break;
		case O_STEPS: o->steps = st_parse_long(a, v); break;
		case O_MAXSTEPS: o->max_steps = st_parse_long(a, v); break;
		case O_CKEVERY: o->checkpoint_every = st_parse_long(a, v); break;
		case O_CKLIMIT: o->checkpoint_limit = st_parse_long(a, v); break;
		case O_EVALEVERY: o->eval_every = st_parse_long(a, v); break;
		case O_EVALUATOR: o->evaluator = v; break;
		case O_SAVEBEST: o->save_best = 1; break;
		case O_NOSAVE: o->no_save = 1; break;
		case O_GRADOUT: o->grad_out = v; break;
		case O_JSON: o->json = 1; break;
		case O_THREADS: o->threads = st_parse_long(a, v); break;
		case O_OVERWRITE: o->overwrite = 1; break;
		case O_TRUST: o->trust = 1; break;
		case O_WAIT: o->wait_timeout = st_parse_double(a, v); break;
		case O_BUCKET: o->bucket_mb = st_parse_double(a, v); break;
		}
	}
	if (optind < argc)
		usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!o->run_dir)
		usage_error(usage, "--run DIR is required");
	if (!o->model_dir && !o->resume)
		usage_error(usage, "--model MODEL or --resume is required");
	if (o->mini_batch < 1)
		usage_error(usage, "--mini-batch-size must be at least 1");
	if (o->overwrite && o->resume)
		usage_error(usage, "--overwrite starts afresh, --resume continues: give one");
	if (o->lr < 0 || o->weight_decay < 0 || o->checkpoint_every < 0 || o->eval_every < 0 || o->steps < 0 ||
	    o->wait_timeout < 0 || o->bucket_mb < 0)
		usage_error(usage, "negative value");
	if (o->save_best && !o->evaluator)
		usage_error(usage, "--save-best needs --evaluator");
	if (o->eps < 0)
		o->eps = o->kind == OPTIM_ADAMW_HF ? 1e-6 : 1e-8;
	if (o->ninputs == 0)
		o->inputs[o->ninputs++] = "-";
}

/* ---- signals and waiting (a watcher thread) ----
 * SIGTERM and SIGINT stop the run at a step boundary with a checkpoint there. The handler only notes the signal;
 * the main loop acts on it after each step. While the main thread waits for a batch at a step boundary, the
 * watcher writes the checkpoint itself (the trainer's state is whole then, and the main thread touches only its
 * reader) and ends the process. The watcher also says on stderr when a batch is long in coming. */
static volatile sig_atomic_t stop_signal;
static int wake_pipe[2] = { -1, -1 };
static pthread_mutex_t io_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct trainer *t;
	int ready;            /* the trainer's state is set up: a checkpoint can be written */
	int reading;          /* the main thread waits in st_read */
	int at_boundary;      /* ... for the first objective's batch: between two steps */
	double since, longest;
	int said;
} watch;

static void on_signal(int sig)
{
	if (!stop_signal)
		stop_signal = sig;
	char c = 1;
	ssize_t rc = write(wake_pipe[1], &c, 1);
	(void)rc;
}

/* At a step boundary: a checkpoint of the steps done (unless there is one), then exit 128 + signal. */
static void stop_at_boundary(struct trainer *t, int sig)
{
	if (watch.ready && t->st.step > t->start_step && t->last_checkpoint != t->st.step)
		checkpoint(t);
	if (watch.ready && t->st.step > t->start_step)
		warn("stopped by signal %d after step %lld of %lld: checkpoint-%lld written, no final model; continue "
		     "with st-batch --start-step %lld ... | st-step --resume", sig, (long long)t->st.step,
		     (long long)t->st.total_steps, (long long)t->last_checkpoint, (long long)t->last_checkpoint);
	else
		warn("stopped by signal %d before any step of this run: nothing written", sig);
	_exit(128 + sig);
}

static void *watcher(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd pfd = { wake_pipe[0], POLLIN, 0 };
		int n = poll(&pfd, 1, 1000);
		if (n > 0) {
			char buf[16];
			ssize_t rc = read(wake_pipe[0], buf, sizeof buf);
			(void)rc;
		}
		pthread_mutex_lock(&io_lock);
		struct trainer *t = watch.t;
		if (stop_signal && watch.reading) {
			if (!watch.ready || watch.at_boundary)
				stop_at_boundary(t, stop_signal);   /* does not return */
			warn("stopped by signal %d inside step %lld (waiting for another objective's batch): no checkpoint "
			     "of it; the newest is checkpoint-%lld", stop_signal, (long long)t->st.step,
			     (long long)t->last_checkpoint);
			_exit(128 + stop_signal);
		}
		if (watch.reading) {   /* also for the first batch, before the state is set up */
			double waited = st_now() - watch.since;
			int save = watch.ready && watch.at_boundary && t->st.step > t->start_step;
			/* while st-gather waits for the other ranks, the gather's own timeout names the missing one */
			if (t->o.wait_timeout > 0 && waited > t->o.wait_timeout && !dist_gathering()) {
				warn("no batch for step %lld within %.0f s (--wait-timeout): giving up; the stages before st-step "
				     "stalled (their messages say why; a stage that buffers its output: jq --unbuffered, "
				     "stdbuf -oL)%s", (long long)t->st.step, t->o.wait_timeout, save ? "; checkpoint written" : "");
				if (save && t->last_checkpoint != t->st.step)
					checkpoint(t);
				_exit(EX_UNAVAILABLE);
			}
			if (!watch.said && waited > 5 && waited > 4 * watch.longest) {
				warn("waiting %.0f s for the batch of step %lld (update %llu published in %s): st-forward --run "
				     "computes it only after it has handed on the previous one; a stage between st-forward and "
				     "st-step that buffers its output stalls the pipeline (jq needs --unbuffered; other programs "
				     "stdbuf -oL)", waited, (long long)t->st.step, (unsigned long long)t->st.updates,
				     t->o.run_dir);
				watch.said = 1;
			}
		}
		pthread_mutex_unlock(&io_lock);
	}
	return NULL;
}

static void watch_start(struct trainer *t)
{
	watch.t = t;
	if (pipe(wake_pipe) != 0)
		die(EX_OSERR, "pipe: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {   /* not the evaluator's */
		fcntl(wake_pipe[i], F_SETFL, O_NONBLOCK);
		fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC);
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	pthread_t th;
	if (pthread_create(&th, NULL, watcher, NULL) != 0)
		die(EX_OSERR, "cannot start a thread");
	pthread_detach(th);
}

static st_val *read_watched(struct trainer *t, int i)
{
	pthread_mutex_lock(&io_lock);
	watch.reading = 1;
	watch.at_boundary = i == 0;
	watch.since = st_now();
	pthread_mutex_unlock(&io_lock);
	if (!t->in[i])   /* opening reads the first bytes (the format): a wait like any other */
		t->in[i] = st_reader_open(t->fds[i], t->fds[i] == 0 ? "stdin" : t->o.inputs[i]);
	st_val *r = st_read(t->in[i]);
	pthread_mutex_lock(&io_lock);   /* waits while the watcher stops the run */
	watch.reading = 0;
	double waited = st_now() - watch.since;
	watch.longest = waited > watch.longest ? waited : watch.longest;
	pthread_mutex_unlock(&io_lock);
	return r;
}

/* The next batch of input i (pending first-read batches come first); NULL at its end. Other records (logs of
 * earlier stages) are passed over; one that looks like a batch without "kind": "batch" is an error. */
static st_val *next_batch(struct trainer *t, int i)
{
	if (t->pending[i]) {
		st_val *r = t->pending[i];
		t->pending[i] = NULL;
		return r;
	}
	for (;;) {
		st_val *r = read_watched(t, i);
		if (!r)
			return NULL;
		const char *kind = st_get_str(r, "kind");
		if (kind && !strcmp(kind, "batch")) {
			t->batches++;
			return r;
		}
		static const char *const batch_keys[] = { "grad", "embeddings", "input_ids", NULL };
		for (int k = 0; batch_keys[k]; k++)
			if (st_get(r, batch_keys[k]))
				die(EX_DATAERR, "a record with \"%s\" but %s%s%s: batches carry \"kind\": \"batch\" (st-batch "
				    "writes it; add it to batches made by hand) (%s)", batch_keys[k], kind ? "\"kind\": \"" : "no \"kind\"",
				    kind ? kind : "", kind ? "\"" : "", st_reader_where(t->in[i]));
		st_free(r);
	}
}

/* exit before the run is published: leave a note for the st-forward waiting on it */
static const char *failure_dir;
static void note_failure(int status, void *arg)
{
	(void)arg;
	if (status != 0 && failure_dir)
		run_note_failure(failure_dir, status);
	if (status != 0)
		dist_abort(status);   /* the other ranks would wait in the next allreduce for ever */
}

/* FNV-1a over the weights' 32-bit words: compared across ranks, which must hold the very same bits */
static uint64_t weights_hash(const float *p, size_t n)
{
	const uint32_t *w = (const uint32_t *)p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ w[i]) * 1099511628211ull;
	return h;
}

static void check_same_weights(struct trainer *t)
{
	uint64_t lo, hi;
	if (t->world > 1 && !dist_same_u64(weights_hash(model_params(t->m), t->n), &lo, &hi))
		die(EX_SOFTWARE, "rank %d: the ranks' weights differ after step %lld (hashes %016" PRIx64 " .. %016" PRIx64
		    "): the ranks diverged (different data order, options or builds); stopping every rank", t->rank,
		    (long long)t->st.step, lo, hi);
}

int main(int argc, char **argv)
{
	st_tool_init("st-step", argc, argv, usage);
	train_spin_default(argv);
	struct trainer tr;
	memset(&tr, 0, sizeof tr);
	struct trainer *t = &tr;
	for (int i = 1; i < argc; i++)   /* before parsing: a usage error is a failure st-forward must hear of */
		if (!strcmp(argv[i], "--run") && i + 1 < argc)
			failure_dir = argv[i + 1];
		else if (!strncmp(argv[i], "--run=", 6))
			failure_dir = argv[i] + 6;
	on_exit(note_failure, NULL);
	parse(&t->o, argc, argv);
	t->world = dist_init();   /* before any thread starts */
	t->rank = dist_rank();
	dist_set_timeout(t->o.wait_timeout);
	watch_start(t);   /* before the thread pool: every thread runs the signal handler */
	st_set_threads((int)t->o.threads);
	char err[1024];
	if (run_is_model_dir(t->o.run_dir))
		usage_error(usage, "--run %s is a model directory (it has modules.json, config.json or model.safetensors); "
		            "the run directory is st-step's own: give a new one, e.g. st-step --model %s --run run, and "
		            "st-forward --model %s --run run", t->o.run_dir, t->o.run_dir, t->o.run_dir);

	int64_t from = -1;
	char model_path[4096], warmup_text[32];
	run_state_init(&t->st);
	if (t->o.resume) {
		from = run_latest_checkpoint(t->o.run_dir);
		if (from < 0 && !t->o.model_dir)
			die(EX_NOINPUT, "--resume: no checkpoint in %s", t->o.run_dir);
	}
	if (from >= 0) {
		snprintf(model_path, sizeof model_path, "%s/checkpoint-%lld/trainer.json", t->o.run_dir, (long long)from);
		if (run_state_read(model_path, &t->st, err, sizeof err) != 0)
			die(EX_DATAERR, "%s", err);
		snprintf(model_path, sizeof model_path, "%s/checkpoint-%lld/model", t->o.run_dir, (long long)from);
		t->o.seed = t->st.seed;
		/* the run goes on with the checkpoint's schedule and optimizer settings; options given again win */
		if (!(t->o.given & GIVEN_LR))
			t->o.lr = t->st.lr;
		if (!(t->o.given & GIVEN_SCHED) && optim_sched_parse(t->st.scheduler, &t->o.sched) != 0)
			die(EX_DATAERR, "checkpoint-%lld: unknown scheduler %s", (long long)from, t->st.scheduler);
		if (!(t->o.given & GIVEN_WARMUP)) {
			snprintf(warmup_text, sizeof warmup_text, "%lld", (long long)t->st.warmup_steps);
			t->o.warmup_text = warmup_text;
		}
		if (!(t->o.given & GIVEN_WD))
			t->o.weight_decay = t->st.weight_decay;
		if (!(t->o.given & GIVEN_MAXNORM))
			t->o.max_grad_norm = t->st.max_grad_norm;
		if (!(t->o.given & GIVEN_OPTIMIZER))
			t->o.kind = strcmp(t->st.optimizer, "adamw-hf") == 0 ? OPTIM_ADAMW_HF : OPTIM_ADAMW;
		if (!(t->o.given & GIVEN_EPS))
			t->o.eps = t->st.eps;
	} else {
		char old[64];
		if (!t->o.overwrite && t->rank == 0 && run_old_state(t->o.run_dir, old, sizeof old))
			usage_error(usage, "%s holds an earlier run (%s/%s): continue it with --resume (and st-batch "
			            "--start-step at its newest checkpoint), or start afresh with --overwrite, which removes st's "
			            "own files of that run", t->o.run_dir, t->o.run_dir, old);
		char *path = hub_model_path(t->o.model_dir);   /* a directory, or a Hub name's snapshot */
		snprintf(model_path, sizeof model_path, "%s", path);
		free(path);
	}
	t->m = model_load(model_path, err, sizeof err);
	if (!t->m)
		die(EX_NOINPUT, "%s", err);
	if (from >= 0) {
		/* model_save copies tokenizer files from where the model was loaded, and this checkpoint may be
		 * pruned during the run: continue from a copy in DIR/start that the run keeps */
		char start[4096], *own = run_rank_dir(t->o.run_dir);   /* ranks > 0: RUN/rank-R/start */
		if (t->rank > 0)
			mkdir(own, 0777);
		snprintf(start, sizeof start, "%s/start", own);
		free(own);
		if (run_write_dir(start, fill_model, t, err, sizeof err) != 0)
			die(EX_IOERR, "%s", err);
		model_free(t->m);
		if (!(t->m = model_load(start, err, sizeof err)))
			die(EX_NOINPUT, "%s", err);
	}
	t->n = model_num_params(t->m);
	t->k = t->o.ninputs;
	if (from >= 0 && t->st.objectives != t->k)
		die(EX_USAGE, "checkpoint-%lld has %d objectives, %d inputs given", (long long)from, t->st.objectives, t->k);

	/* fit()'s two parameter groups: names containing "bias" or "LayerNorm.weight" are not decayed */
	int np = model_param_table(t->m, NULL);
	model_param *pt = xcalloc(np, sizeof *pt);
	model_param_table(t->m, pt);
	optim_tensor *ot = xcalloc(np, sizeof *ot);
	for (int i = 0; i < np; i++) {
		ot[i].offset = pt[i].offset;
		ot[i].count = pt[i].count;
		ot[i].no_decay = optim_no_decay_name(pt[i].name);
	}
	optim_config oc;
	optim_config_default(&oc, t->o.kind);
	oc.lr = t->o.lr;
	oc.weight_decay = t->o.weight_decay;
	oc.eps = t->o.eps;
	t->opt = xcalloc(t->k, sizeof *t->opt);
	for (int i = 0; i < t->k; i++)
		t->opt[i] = optim_new(&oc, t->n, ot, np);
	free(pt);
	free(ot);
	if (from >= 0) {
		char path[4096];
		snprintf(path, sizeof path, "%s/checkpoint-%lld/optimizer.bin", t->o.run_dir, (long long)from);
		if (run_optim_read(path, t->opt, t->k, err, sizeof err) != 0)
			die(EX_DATAERR, "%s", err);
	}
	t->grads = xcalloc(t->n, sizeof(float));   /* zeroed again by each optimizer step (optim_step_clipped) */
	t->kept = xcalloc(t->k, sizeof *t->kept);
	for (int i = 0; i < t->k; i++)
		t->kept[i] = acts_in_new(t->o.run_dir, i);

	/* publish the starting weights before waiting for batches: st-forward needs them for the first one */
	run_settings rs;
	memset(&rs, 0, sizeof rs);
	rs.lr = t->o.lr;
	rs.weight_decay = t->o.weight_decay;
	rs.max_grad_norm = t->o.max_grad_norm;
	rs.eps = t->o.eps;
	snprintf(rs.scheduler, sizeof rs.scheduler, "%s", optim_sched_name(t->o.sched));
	snprintf(rs.optimizer, sizeof rs.optimizer, "%s", t->o.kind == OPTIM_ADAMW_HF ? "adamw-hf" : "adamw");
	snprintf(rs.warmup, sizeof rs.warmup, "%s", t->o.warmup_text);
	rs.seed = t->o.seed;
	rs.steps = t->o.steps;
	t->w = run_create(t->o.run_dir, model_params(t->m), t->n, t->o.seed, t->k,
	                  from >= 0 ? t->st.updates : 0, from < 0 && t->o.overwrite, &rs, err, sizeof err);
	if (!t->w)
		die(EX_IOERR, "%s", err);
	snprintf(t->run_stamp, sizeof t->run_stamp, "%016" PRIx64, run_id(t->w));
	dist_serve_gather(t->run_stamp);   /* st-gather of this rank, if there is one, gathers through us */
	failure_dir = NULL;   /* from here st-forward sees st-step go through the lock */
	model_bind_params(t->m, run_params(t->w));

	/* open the inputs (after publishing: opening a FIFO or reading the first bytes waits for st-forward) and
	 * read the first batch of input 0: the schedule needs the total step count. The other inputs' first
	 * batches cannot be read yet: their st-forward waits for the update of objective 0 at this step. They may
	 * lower the total (fit: the shortest loader) when they arrive; the updates made before that are those of
	 * the first step, whose multiplier lambda(0) (0 with warmup, else 1) does not depend on the total. */
	t->in = xcalloc(t->k, sizeof *t->in);
	t->fds = xcalloc(t->k, sizeof *t->fds);
	t->pending = xcalloc(t->k, sizeof *t->pending);
	t->seen = xcalloc(t->k, 1);
	int64_t total = t->o.steps;
	for (int i = 0; i < t->k; i++) {
		int fd = 0;
		if (strcmp(t->o.inputs[i], "-") != 0 && (fd = open(t->o.inputs[i], O_RDONLY | O_CLOEXEC)) < 0)
			die(EX_NOINPUT, "cannot open %s: %s", t->o.inputs[i], strerror(errno));
		t->fds[i] = fd;
	}
	if (from < 0) {
		t->st.step = 0;
		t->st.updates = 0;
		t->st.seed = t->o.seed;
		t->st.objectives = t->k;
	}
	{
		t->pending[0] = next_batch(t, 0);
		t->seen[0] = 1;
		double s;
		if (t->pending[0] && st_get_num(t->pending[0], "steps", &s) == 0 && !t->o.steps)
			total = (int64_t)s;
		/* resuming several objectives: the checkpoint's total already is the minimum over all inputs */
		if (!t->o.steps && from >= 0 && t->k > 1 && t->st.total_steps > 0 && (total <= 0 || t->st.total_steps < total))
			total = t->st.total_steps;
	}
	if (total <= 0)
		total = from >= 0 ? t->st.total_steps : 0;
	int64_t warmup;
	if (optim_parse_warmup(t->o.warmup_text, total, &warmup) != 0)
		usage_error(usage, "--warmup-steps %s: a number of steps or a percentage", t->o.warmup_text);
	t->st.total_steps = total;
	t->st.warmup_steps = warmup;
	snprintf(t->st.scheduler, sizeof t->st.scheduler, "%s", optim_sched_name(t->o.sched));
	snprintf(t->st.optimizer, sizeof t->st.optimizer, "%s", t->o.kind == OPTIM_ADAMW_HF ? "adamw-hf" : "adamw");
	t->st.lr = t->o.lr;
	t->st.weight_decay = t->o.weight_decay;
	t->st.max_grad_norm = t->o.max_grad_norm;
	t->st.eps = t->o.eps;

	t->out = st_writer_open(1, t->o.json);
	if (t->o.grad_out && !(t->grad_out = fopen(t->o.grad_out, "wb")))
		die(EX_IOERR, "cannot create %s: %s", t->o.grad_out, strerror(errno));
	t->progress = st_stderr_is_tty();
	t->t_start = t->t_last = st_now();
	t->last_checkpoint = from >= 0 ? from : 0;
	t->start_step = t->st.step;
	t->last_eval = -1;
	pthread_mutex_lock(&io_lock);
	watch.ready = 1;
	pthread_mutex_unlock(&io_lock);
	int64_t cur_epoch = -1, skipped = 0;
	int done_inside = 0;   /* an input other than the first ended inside a step: its state is not whole */
	for (;;) {
		if (t->o.max_steps > 0 && t->st.step >= t->o.max_steps)
			break;
		if (t->o.steps > 0 && t->st.step >= t->o.steps)
			break;
		int done = 0;
		for (int i = 0; i < t->k && !done; i++) {
			st_val *rec;
			double s = -1, e = 0;
			for (;;) {
				rec = next_batch(t, i);
				if (!rec)
					break;
				double steps_of;
				if (st_get_num(rec, "step", &s) != 0)
					die(EX_DATAERR, "batch without \"step\" (%s)", st_reader_where(t->in[i]));
				if (!t->o.steps && st_get_num(rec, "steps", &steps_of) != 0)
					die(EX_DATAERR, "batch without \"steps\", the run's length: st-batch writes it; for batches made "
					    "otherwise give st-step --steps N (%s)", st_reader_where(t->in[i]));
				if (!t->seen[i]) {   /* input i's first batch: its total may be the smaller one */
					double steps;
					t->seen[i] = 1;
					if (!t->o.steps && st_get_num(rec, "steps", &steps) == 0 && (int64_t)steps > 0 &&
					    (t->st.total_steps <= 0 || (int64_t)steps < t->st.total_steps)) {
						int64_t warmup;
						optim_parse_warmup(t->o.warmup_text, (int64_t)steps, &warmup);
						t->st.total_steps = (int64_t)steps;
						t->st.warmup_steps = warmup;
					}
				}
				if ((int64_t)s >= t->st.step)
					break;
				skipped++;   /* resuming without st-batch --start-step: earlier steps were done before */
				st_free(rec);
			}
			if (!rec) {
				done_inside = i > 0;
				if (i > 0)
					warn("input %s ended inside step %lld; stopping", t->o.inputs[i], (long long)t->st.step);
				done = 1;
				break;
			}
			if ((int64_t)s != t->st.step)
				die(EX_DATAERR, "batch of step %lld where step %lld was expected (%s)", (long long)s,
				    (long long)t->st.step, st_reader_where(t->in[i]));
			st_get_num(rec, "epoch", &e);
			if (i == 0 && cur_epoch >= 0 && (int64_t)e > cur_epoch)
				evaluate(t);   /* the end of an epoch: fit evaluates there */
			if (i == 0)
				cur_epoch = (int64_t)e;
			t->st.epoch = (int64_t)e;
			train_batch(t, rec, i, st_reader_where(t->in[i]));
			st_free(rec);
		}
		if (done)
			break;
		t->st.step++;
		if (t->o.checkpoint_every > 0 && t->st.step % t->o.checkpoint_every == 0) {
			check_same_weights(t);
			checkpoint(t);
		}
		if (t->o.eval_every > 0 && t->st.step % t->o.eval_every == 0)
			evaluate(t);
		if (stop_signal)
			stop_at_boundary(t, stop_signal);
	}
	if (t->progress)
		fputc('\n', stderr);
	if (stop_signal && !done_inside)   /* the input ended because the signal stopped the stages before */
		stop_at_boundary(t, stop_signal);
	if (stop_signal) {
		warn("stopped by signal %d inside step %lld: no checkpoint of it", stop_signal, (long long)t->st.step);
		_exit(128 + stop_signal);
	}
	if (skipped)
		warn("skipped %lld batches of steps before %lld (already trained)", (long long)skipped,
		     (long long)(from > 0 ? from : 0));
	/* One rule for every way the input can end early (no batch at all, a stage before st-step that died or
	 * failed, records that are not batches): a run that did not reach its last step is not finished. Its model
	 * is not written; checkpoints already written stay, for --resume. */
	int64_t target = t->st.total_steps;
	if (t->o.max_steps > 0 && (target <= 0 || t->o.max_steps < target))
		target = t->o.max_steps;
	if ((target <= 0 || t->st.step < target) && t->batches == 0)
		die(EX_DATAERR, "no batch arrived (%s): a stage before st-step failed (see its message) or its input was "
		    "empty; no model written", t->in[0] ? st_reader_where(t->in[0]) : t->o.inputs[0]);
	if (t->st.step < target) {
		char resume[160] = "";
		if (t->last_checkpoint > 0)
			snprintf(resume, sizeof resume, "; checkpoint-%lld stays: continue with st-batch --start-step %lld ... | "
			         "st-step --resume", (long long)t->last_checkpoint, (long long)t->last_checkpoint);
		die(EX_DATAERR, "the input ended short at step %lld of %lld: a stage before st-step stopped early (see its "
		    "message); no final model written%s", (long long)t->st.step, (long long)target, resume);
	}
	check_same_weights(t);
	if (cur_epoch >= 0)
		evaluate(t);
	if (t->o.checkpoint_every > 0 && t->last_checkpoint != t->st.step)
		checkpoint(t);
	save_state(t);
	if (!t->o.no_save)
		save_model(t, "model");   /* last: DIR/model appears only for a finished run */
	/* copy the weights out of the shared file before letting go of it */
	float *own = xmalloc(t->n * sizeof(float));
	memcpy(own, model_params(t->m), t->n * sizeof(float));
	run_finish(t->w);
	model_bind_params(t->m, own);
	st_writer_close(t->out);
	if (t->grad_out && fclose(t->grad_out) != 0)
		die(EX_IOERR, "cannot write %s", t->o.grad_out);
	for (int i = 0; i < t->k; i++)
		if (t->in[i])
			st_reader_close(t->in[i]);
	dist_finish();
	return 0;
}
