/* optim.h: the optimizer, gradient clipping and learning-rate schedules of the reference library's fit()
 * (as sentence-transformers' fit and trainer do): torch.optim.AdamW over two groups (decay / no decay), clip_grad_norm_,
 * and the five LambdaLR schedules of transformers' get_*_schedule_with_warmup. docs/training.md has the
 * formulas. Parameters, gradients and moments are flat float32 buffers; a tensor is a slice of them. */
#ifndef ST_OPTIM_H
#define ST_OPTIM_H

#include <stddef.h>
#include <stdint.h>

/* ---- AdamW ---- */

enum optim_kind {
	OPTIM_ADAMW,      /* torch.optim.AdamW (fit's default since 2.2.2): decay first, bias-corrected, eps 1e-8 */
	OPTIM_ADAMW_HF,   /* transformers.AdamW (fit <= 2.2.1): Adam step, then decoupled decay; eps 1e-6 */
};

typedef struct optim_config {
	enum optim_kind kind;
	double lr;            /* base learning rate; the schedule multiplies it (default 2e-5) */
	double beta1, beta2;  /* 0.9, 0.999 */
	double eps;           /* 1e-8 (OPTIM_ADAMW) or 1e-6 (OPTIM_ADAMW_HF) */
	double weight_decay;  /* 0.01 for tensors without no_decay */
	int correct_bias;     /* OPTIM_ADAMW_HF only (1; the 0.2.x era used 0). OPTIM_ADAMW always corrects. */
} optim_config;

/* fit()'s defaults for kind: lr 2e-5, betas (0.9, 0.999), weight decay 0.01, eps by kind. */
void optim_config_default(optim_config *c, enum optim_kind kind);

/* One parameter tensor: a slice [offset, offset+count) of the flat buffers. */
typedef struct optim_tensor {
	size_t offset, count;
	int no_decay;   /* weight decay 0 (fit: names containing "bias" or "LayerNorm.weight") */
	int skip;       /* never updated, not even decayed: torch skips parameters whose grad is None (BERT pooler) */
} optim_tensor;

/* fit()'s substring rule (§2.1): 1 when name contains "bias", "LayerNorm.bias" or "LayerNorm.weight".
 * (DistilBERT's sa_layer_norm / output_layer_norm weights are therefore decayed, as in Python.) */
int optim_no_decay_name(const char *name);

typedef struct optim {
	optim_config cfg;
	size_t n;              /* floats in params, grads, m, v */
	int ntensors;
	optim_tensor *tensors; /* owned copy */
	float *m, *v;          /* first and second moments [n]; owned unless bound with optim_bind_state */
	int owns_state;
	int64_t t;             /* optimizer steps taken (torch's state["step"]) */
} optim;

/* Moments start at zero, t at 0. tensors may be NULL (one tensor covering all n, decayed). */
optim *optim_new(const optim_config *c, size_t n, const optim_tensor *tensors, int ntensors);
/* Use external moment buffers (e.g. memory-mapped run state) of n floats each; their contents are kept. */
void optim_bind_state(optim *o, float *m, float *v);
void optim_free(optim *o);

/* One update at learning rate lr (= base lr times the schedule's multiplier): t += 1, then for each tensor
 * not skipped, the AdamW formulas in float32 as torch computes them (single-tensor path). */
void optim_step(optim *o, float *params, const float *grads, double lr);
/* optim_step on grads times clip_coef (when < 1; clip_grad_norm_'s float product), in the same pass; the
   gradients are left 0 for the next step. */
void optim_step_clipped(optim *o, float *params, float *grads, double lr, double clip_coef);

/* ---- gradient clipping ---- */

/* sqrt(sum g^2) over n floats (accumulated in double). */
double optim_grad_norm(const float *grads, size_t n);
/* torch.nn.utils.clip_grad_norm_: total = the L2 norm of all grads; coef = max_norm / (total + 1e-6);
 * when coef < 1, every grad is multiplied by (float)coef. Returns total (before clipping).
 * max_norm <= 0 disables clipping (the norm is still returned). */
double optim_clip_grad_norm(float *grads, size_t n, double max_norm);
/* The same when the gradient is several buffers (e.g. encoder + a loss's classifier): pass the summed squares. */
double optim_clip_coef(double total_norm, double max_norm);   /* 1.0 when no clipping applies */

/* ---- learning-rate schedules ---- */

enum optim_sched {
	OPTIM_CONSTANTLR,
	OPTIM_WARMUPCONSTANT,
	OPTIM_WARMUPLINEAR,           /* fit's default */
	OPTIM_WARMUPCOSINE,
	OPTIM_WARMUPCOSINEHARDRESTARTS,
};

/* Case-insensitive name ("WarmupLinear", "warmuplinear", ...) -> 0 and *out, or -1. */
int optim_sched_parse(const char *name, enum optim_sched *out);
const char *optim_sched_name(enum optim_sched s);   /* lower-case name */
/* The LambdaLR multiplier after s scheduler steps, W warmup steps, T total steps. fit() calls
 * optimizer.step() before scheduler.step(), so the update of global step s (0-based) uses
 * lr = base_lr * optim_sched_lambda(sched, s, W, T); the first update with warmup uses 0. */
double optim_sched_lambda(enum optim_sched s, int64_t step, int64_t warmup, int64_t total);

/* --warmup-steps: "N" (steps) or "P%": ceil(total * P/100) in double, as the examples' math.ceil(0.1 * len *
 * epochs) and the Trainer's warmup_ratio compute it.
 * Returns 0 and *out, or -1 when the text is not a non-negative number or percentage. */
int optim_parse_warmup(const char *text, int64_t total, int64_t *out);

#endif
