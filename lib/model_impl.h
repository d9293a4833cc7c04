/* model_impl.h: the inside of st_model, shared by model.c (math) and model_dir.c (files). Not for tools. */
#ifndef ST_MODEL_IMPL_H
#define ST_MODEL_IMPL_H

#include <jansson.h>
#include "model.h"
#include "weights.h"

#define MODEL_MAX_HEADS 16

enum { MODEL_HEAD_DENSE, MODEL_HEAD_NORMALIZE };

struct model_head {
	int kind;
	int in, out, bias, act;   /* Dense */
	size_t w_off, b_off;      /* offsets of linear.weight [out][in] and linear.bias [out] in params */
	char path[32];            /* "2_Dense" */
	char file[64];            /* "2_Dense/model.safetensors" */
};

struct st_model {
	char *dir;                /* the Transformer's folder: config.json, tokenizer files */
	char *tok_src;            /* a fresh model's tokenizer source (file or folder); NULL: dir */
	enc_config enc;
	json_t *hf_config;        /* config.json, written back with architectures/torch_dtype set */
	json_t *st_config;        /* config_sentence_transformers.json as read; NULL for a new model */
	int max_seq_length, do_lower_case;
	int pool_modes, include_prompt;
	char *prompt;             /* model_set_prompt: prepended by the encoders; NULL none */
	int pool_skip;            /* positions masked out of pooling (prompt_length when include_prompt is false) */
	int32_t *pool_skip_rows;  /* model_set_prompt_lengths: per-row pool_skip for calls of pool_skip_n rows */
	int pool_skip_n;
	int nheads;
	struct model_head heads[MODEL_MAX_HEADS];
	size_t n_enc, n_params;   /* encoder floats; all floats */
	float *params;
	int owns_params;
	/* Weights used where they lie (a memory-mapped model.safetensors): at[k] is where entry k of enc_param_table
	 * is, in the map of wt or (converted, or gathered so that query/key/value form one block) in params at its
	 * offset. NULL: params holds every encoder tensor (a new model, a copy made by model_params, bound params). */
	const float **at;
	weights *wt;
	int at_ready;             /* query/key/value checked to be one block per layer (gathered when not) */
	float *pooler;            /* pooler.dense.weight [H][H] then .bias [H]; NULL for DistilBERT (written back, unused) */
	const float *pooler_w_at, *pooler_b_at;   /* instead of pooler: where they lie in wt's map (copied into pooler
						     when the map is let go); saves a copy and ~150 page faults at start */
	enc_acts *acts;           /* kept by model_embed_backward */
	int acts_B, acts_T;
	enc_acts *kept_scratch;   /* backward scratch of model_embed_backward_kept, grown to the largest chunk */
	int frozen;               /* model_freeze: inference keeps packed copies of the weights in packed */
	enc_packed *packed;       /* made on the first forward after model_freeze; dropped when params may change */
};

void model_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void model_fill_normal(float *x, size_t n, float std, uint64_t seed);
const char *model_pool_key(int i, int *bit);

#endif
