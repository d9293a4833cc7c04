/* loss.h: every sentence-transformers loss as pure math on float arrays (docs/losses.md).
 *
 * A batch holds the embeddings E [C][B][D] (C text columns, B rows, D dimensions) and optional labels
 * [B] or [B][K]. A loss returns its value and writes dL/dE into grad [C][B][D] (overwritten). The formulas
 * and defaults are the reference library's (sentence-transformers' losses, docs/losses.md); where its releases have known
 * bugs the mathematically intended version is computed (docs/losses.md says where). */
#ifndef ST_LOSS_H
#define ST_LOSS_H

#include <stddef.h>
#include <stdint.h>

enum loss_kind {
	LOSS_TRIPLET, LOSS_MNRL, LOSS_MNRL_SYMMETRIC, LOSS_MEGABATCH_MARGIN, LOSS_CONTRASTIVE,
	LOSS_ONLINE_CONTRASTIVE, LOSS_SOFTMAX, LOSS_COSINE_SIMILARITY, LOSS_COSENT, LOSS_ANGLE,
	LOSS_BATCH_HARD_TRIPLET, LOSS_BATCH_HARD_SOFT_MARGIN_TRIPLET, LOSS_BATCH_SEMI_HARD_TRIPLET,
	LOSS_BATCH_ALL_TRIPLET, LOSS_MSE, LOSS_MARGIN_MSE, LOSS_MATRYOSHKA, LOSS_NKINDS
};

enum loss_distance { LOSS_EUCLIDEAN, LOSS_COSINE, LOSS_MANHATTAN };
enum loss_similarity { LOSS_SIM_COSINE, LOSS_SIM_DOT };

#define LOSS_MAX_DIMS 32

typedef struct loss_opts {
	enum loss_kind kind;
	enum loss_distance distance;
	enum loss_similarity similarity;
	double margin;                      /* triplet 5, contrastive 0.5, online-contrastive 0.5, batch-* 5 */
	double scale;                       /* mnrl 20, mnrl-symmetric 20, cosent 20, angle 20 */
	double positive_margin, negative_margin;   /* megabatch-margin 0.8, 0.3 */
	int mini_batch_size;                /* megabatch-margin 50 */
	int size_average;                   /* contrastive 1 */
	int num_labels;                     /* softmax */
	int cat_rep, cat_diff, cat_mul;     /* softmax: 1, 1, 0 */
	int ndims;                          /* matryoshka: dims sorted descending, weights permuted along */
	int dims[LOSS_MAX_DIMS];
	double weights[LOSS_MAX_DIMS];
	struct loss_opts *inner;            /* matryoshka: the wrapped loss (owned) */
} loss_opts;

typedef struct loss_batch {
	int C, B, D;
	const float *E;        /* [C][B][D] */
	const float *labels;   /* [B] (label_ndim 1) or [B][K] (label_ndim 2); NULL when absent */
	int label_ndim, K;     /* K is 1 for [B] */
} loss_batch;

/* The softmax loss's classifier: logits = W f + b, W [num_labels][in], b [num_labels], with in = k*D. */
typedef struct loss_classifier {
	int num_labels, in;
	float *W, *b;          /* params */
	float *dW, *db;        /* their gradients, written by loss_eval */
} loss_classifier;

/* Name ("mnrl") -> kind, or -1. loss_name gives the name back. */
int loss_kind_parse(const char *name);
const char *loss_name(enum loss_kind k);
/* The library's defaults for kind. */
void loss_opts_default(loss_opts *o, enum loss_kind kind);
void loss_opts_free_inner(loss_opts *o);

/* 0 when the batch fits the loss, else -1 with a message in err saying what the loss needs
 * ("mnrl needs 2 or more text columns; got 1"). */
int loss_check(const loss_opts *o, const loss_batch *b, const loss_classifier *cls, char *err, size_t errlen);

/* The loss value; grad [C][B][D] receives dL/dE. cls is needed by softmax only (its dW, db are written).
 * The batch must have passed loss_check. */
double loss_eval(const loss_opts *o, const loss_batch *b, loss_classifier *cls, float *grad);

/* Softmax classifier feature width k*D for opts. */
int loss_softmax_in(const loss_opts *o, int D);

/* x / max(|x|, eps) row by row: xn [n][d] and norms [n] (the unclamped norms). */
void loss_normalize(const float *x, int n, int d, double eps, float *xn, float *norms);
/* Back through loss_normalize: dx [n][d] += d(xn)/dx^T dxn. */
void loss_normalize_back(const float *xn, const float *norms, int n, int d, double eps, const float *dxn,
			 float *dx);

/* ---- the softmax loss's classifier as trained state (lib/loss_softmax.c) ----
 * It lives in a run directory as DIR/loss-softmax.safetensors: "classifier.weight" [num_labels][in] and
 * "classifier.bias" [num_labels] (the library's parameter names), their AdamW moments
 * ("optimizer.classifier.weight.exp_avg", ".exp_avg_sq", same for the bias) and __metadata__ "step" (updates
 * taken) and "last_step" (the batch step of the last update). Written atomically. */
struct optim;
struct optim_config;
typedef struct loss_softmax_state {
	loss_classifier cls;
	struct optim *opt;
	float *params, *grads;   /* [W | b], [dW | db]: the flat buffers the optimizer sees */
	int64_t last_step;       /* -1 before the first update */
	char *path;
} loss_softmax_state;

/* Loads DIR/loss-softmax.safetensors, or initialises the classifier as torch's nn.Linear does
 * (weight and bias ~ U(-1/sqrt(in), 1/sqrt(in))) from seed when the file is absent. NULL + message when
 * the file is unreadable or holds another shape. */
loss_softmax_state *loss_softmax_open(const char *dir, int num_labels, int in, uint64_t seed,
				      const struct optim_config *cfg, char *err, size_t errlen);
/* One AdamW update of the classifier from cls.dW, cls.db at learning rate lr, after clipping its gradient
 * norm to max_grad_norm (<= 0: no clipping). Returns the gradient norm before clipping. */
double loss_softmax_update(loss_softmax_state *s, int64_t step, double lr, double max_grad_norm);
int loss_softmax_save(loss_softmax_state *s, char *err, size_t errlen);
void loss_softmax_close(loss_softmax_state *s);

#endif
