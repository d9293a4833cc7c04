/* encoder.h: the transformer body of BERT, RoBERTa/XLM-R, DistilBERT and MPNet, forward and backward, on CPU.
 *
 * The functions below, in groups: loading and the parameter table (enc_param_table, enc_param_find), sizes
 * (enc_arch_name, enc_max_length, enc_acts_bytes), forward and backward.
 *
 * Numbers live in one flat float buffer (params, and grads in the same layout); the table from enc_param_table
 * names each tensor as sentence-transformers saves it. Batches are padded [B][T] id matrices plus lengths; only
 * the real tokens are computed (they are packed row after row internally), pads of `out` are left untouched.
 * Threads: OpenBLAS and OpenMP, as set by st_set_threads(). enc_forward keeps a workspace between calls, so it
 * must not be called from two threads at once (one model per process is the design). */
#ifndef ENCODER_H
#define ENCODER_H

#include <stddef.h>
#include <stdint.h>

enum enc_arch { ENC_BERT, ENC_ROBERTA, ENC_DISTILBERT, ENC_MPNET };   /* xlm-roberta (and camembert) = ENC_ROBERTA */
enum { ENC_ACT_GELU, ENC_ACT_GELU_TANH, ENC_ACT_RELU };

typedef struct enc_config {
	enum enc_arch arch; char model_type[32];   /* model_type as config.json spells it */
	int vocab_size, hidden, layers, heads, intermediate, max_position, type_vocab_size, pad_token_id;
	float layer_norm_eps, hidden_dropout, attention_dropout, initializer_range;
	int act;   /* ENC_ACT_GELU (exact erf), ENC_ACT_GELU_TANH ("gelu_new"/"gelu_pytorch_tanh"), ENC_ACT_RELU */
	int rel_buckets;   /* MPNet: rows of encoder.relative_attention_bias.weight (relative_attention_num_buckets);
			      0 for the others. Bucketing always uses the first 32, as Hugging Face does. */
} enc_config;

/* Parses a Hugging Face config.json text (BERT names, or DistilBERT's dim/hidden_dim/n_layers/n_heads/...).
 * Missing fields take the Hugging Face defaults of that model type. Unknown model_type, an unsupported
 * hidden_act or position_embedding_type, or inconsistent sizes -> -1 and a message in err. */
int enc_config_parse(enc_config *c, const char *json, size_t len, char *err, size_t errlen);
const char *enc_arch_name(enum enc_arch a);   /* "bert", "roberta", "distilbert", "mpnet" */
/* Longest sequence (special tokens included) the position table allows: max_position, minus pad_token_id + 1
 * for RoBERTa and MPNet (514 -> 512). enc_forward dies with EX_DATAERR on a longer row or an id outside the vocabulary. */
int enc_max_length(const enc_config *c);

/* Parameter layout: one flat float buffer, tensors in a fixed order, named as sentence-transformers saves them
 * (no "bert."/"roberta." prefix: "embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight",
 * ...; DistilBERT: "embeddings.word_embeddings.weight", "transformer.layer.0.attention.q_lin.weight", ...;
 * MPNet: "encoder.layer.0.attention.attn.q.weight", ..., and "encoder.relative_attention_bias.weight" last,
 * [rel_buckets][heads], shared by all layers; no token type table).
 * Linear weights are [out][in] as in PyTorch. The pooler is not part of the body (sentence-transformers does not
 * use it). no_decay is 1 for biases, every LayerNorm weight and MPNet's relative_attention_bias.weight (the v3
 * Trainer rule: "bias" in the name); the legacy fit() rule is a
 * substring test on the names ("bias", "LayerNorm.weight"), which callers can apply themselves.
 * Order inside a layer: query, key, value weights are adjacent (one [3H][H] matrix), then their three biases. */
typedef struct enc_param { const char *name; int ndim; int64_t shape[2]; size_t offset, count; int no_decay; } enc_param;
int enc_param_table(const enc_config *c, enc_param *out /* NULL: just count */);
size_t enc_num_params(const enc_config *c);
/* Index of the tensor with that name in the table, or -1. */
int enc_param_find(const enc_config *c, const char *name);
void enc_init_random(const enc_config *c, float *params, uint64_t seed);  /* HF init: normal(0, initializer_range) for
	Linear/Embedding weights (padding row zero), LayerNorm 1/0, biases 0 */

/* Dropout is replayable: each mask bit is a pure function of (seed, step, column, row, layer, site, position, unit),
 * row being the row's index in the whole batch (row0 + b), so chunking a batch does not change the masks.
 * Sites as in Hugging Face BERT: embeddings output, attention probabilities, attention output dense (not in
 * DistilBERT), FFN output dense; kept units are scaled by 1/(1-p). */
typedef struct enc_dropout { uint64_t seed; int64_t step; int column; int row0; } enc_dropout;

/* ids [B][T] row-major (T = padded length), lengths [B]; out [B][T][hidden]; only positions < lengths[b] are computed
 * (pad positions are not touched). drop == NULL: inference (no dropout). params: enc_num_params floats.
 * A row of length 0 is allowed and produces nothing. */
void enc_forward(const enc_config *c, const float *params, const int32_t *ids, const int32_t *lengths,
		 int B, int T, float *out, const enc_dropout *drop);
/* The same forward, bit for bit, on tensors that need not share one buffer (weights used where they lie in a
 * memory-mapped file): at[k] is the address of entry k of enc_param_table (4-byte aligned, read-only is fine).
 * Within a layer the query, key and value weights must follow one another as one [3H][H] matrix, and so must
 * their three biases (the caller gathers them when the file keeps them apart); dies with EX_SOFTWARE otherwise. */
void enc_forward_at(const enc_config *c, const float *const *at, const int32_t *ids, const int32_t *lengths,
		    int B, int T, float *out, const enc_dropout *drop);

/* The bfloat16 copies of the projection weights that --compute bf16 (gemm_bf16.h) multiplies with, kept for
 * callers whose weights stay as they are (inference): enc_forward_packed and enc_forward_at_packed are
 * enc_forward and enc_forward_at, with pk's copies (made on first use; a weight at another address than before
 * gets a new one) when the compute precision is bfloat16. The weights must not change in place while pk holds
 * copies of them: free pk first (training never uses one). */
typedef struct enc_packed enc_packed;
enc_packed *enc_packed_new(const enc_config *c);
void enc_packed_free(enc_packed *pk);
void enc_forward_packed(const enc_config *c, const float *params, const int32_t *ids, const int32_t *lengths,
			int B, int T, float *out, const enc_dropout *drop, enc_packed *pk);
void enc_forward_at_packed(const enc_config *c, const float *const *at, const int32_t *ids, const int32_t *lengths,
			   int B, int T, float *out, const enc_dropout *drop, enc_packed *pk);

typedef struct enc_acts enc_acts;   /* activations kept for backward, for one chunk */
/* Room for a chunk of at most B rows of at most T tokens each. */
enc_acts *enc_acts_new(const enc_config *c, int B, int T);
void enc_acts_free(enc_acts *a);
/* Bytes enc_acts_new(c, B, T) allocates (for sizing chunks). */
size_t enc_acts_bytes(const enc_config *c, int B, int T);
/* Same result as enc_forward (bit for bit, same dropout masks), keeping what enc_backward needs in a.
 * ids, lengths and drop are copied; B and T must fit the sizes a was made for. */
void enc_forward_train(const enc_config *c, const float *params, const int32_t *ids, const int32_t *lengths,
		       int B, int T, float *out, const enc_dropout *drop, enc_acts *a);
/* dout [B][T][hidden] (pads ignored); grads += dL/dparams (same layout as params), for the last
 * enc_forward_train on a. The padding rows of the embeddings (nn.Embedding padding_idx) get no gradient. */
void enc_backward(const enc_config *c, const float *params, enc_acts *a, const float *dout, float *grads);
/* When set (data-parallel st-step, during the last backward of a step), enc_backward calls done(ctx, offset,
 * count) after each layer with the range of grads that layer has finished, so that its allreduce can start
 * while the layers below are computed. NULL (the default) turns it off. */
void enc_set_grads_done(void (*done)(void *ctx, size_t offset, size_t count), void *ctx);
/* Kept activations (st-forward --run hands them to st-step): the floats one chunk's forward arrays take,
 * packed to its real tokens; enc_acts_view lays them out in mem (which the caller owns and must keep while the
 * view lives), with the backward scratch of donor (an enc_acts_scratch of at least that many tokens; NULL: a
 * forward-only view). enc_acts_resume makes a view filled by enc_forward_train (in this or another process,
 * same weights, ids, lengths and masks) ready for enc_backward and writes the same out, without recomputing. */
size_t enc_acts_kept_floats(const enc_config *c, const int32_t *lengths, int B);
enc_acts *enc_acts_view(const enc_config *c, const int32_t *lengths, int B, int T, float *mem, const enc_acts *donor);
enc_acts *enc_acts_scratch(const enc_config *c, size_t tokens);
size_t enc_acts_tokens(const enc_acts *a);
void enc_acts_resume(const enc_config *c, const float *params, const int32_t *ids, const int32_t *lengths, int B,
		     int T, float *out, const enc_dropout *drop, enc_acts *a);

#endif
