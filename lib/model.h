/* model.h: a whole sentence-transformers model = Transformer (lib/encoder.h) + Pooling [+ Dense...] [+ Normalize],
 * read from and written to the sentence-transformers directory layout (docs/model-directory.md).
 *
 * Parameters live in one flat float buffer: the encoder's parameters (enc_param_table order) first, then for
 * every Dense module its weight [out][in] and, if it has one, its bias [out]. */
#ifndef ST_MODEL_H
#define ST_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "encoder.h"

typedef struct st_model st_model;

/* Loads a sentence-transformers directory (modules.json ...) or a plain Hugging Face directory (config.json +
 * model.safetensors: Transformer + mean pooling, as Python does). NULL + a message naming the file and tensor. */
st_model *model_load(const char *dir, char *err, size_t errlen);
/* Writes every file of the model directory (tokenizer files copied from model_dir(m)), atomically: the
 * directory is built as DIR.tmp.PID and renamed over DIR. 0, or -1 + message. */
int model_save(const st_model *m, const char *dir, char *err, size_t errlen);
int model_dim(const st_model *m);            /* embedding size after all modules */
int model_max_seq_length(const st_model *m);
const char *model_dir(const st_model *m);    /* where tokenizer files live */
const enc_config *model_encoder_config(const st_model *m);
size_t model_num_params(const st_model *m);  /* encoder params then Dense params, one flat buffer */
float *model_params(st_model *m);
typedef struct model_param { char name[128]; const char *file; /* "model.safetensors" or "2_Dense/model.safetensors" */
                             int ndim; int64_t shape[2]; size_t offset, count; int no_decay; } model_param;
int model_param_table(const st_model *m, model_param *out /* NULL: count */);
void model_bind_params(st_model *m, float *buf);   /* use an external buffer (e.g. a memory-mapped run file) */
/* The weights will not change from now on (tools that only encode): with --compute bf16 the encoder keeps the
   bfloat16 copies of its projection weights (enc_packed) instead of making them for every batch.
   model_params and model_bind_params drop the copies (a writer may change the weights), and later forwards
   make them again. */
void model_freeze(st_model *m);
/* ids [B][T], lengths [B] -> emb [B][dim]; drop NULL = inference. */
void model_embed(st_model *m, const int32_t *ids, const int32_t *lengths, int B, int T, float *emb, const enc_dropout *drop);
/* Training, one chunk: forward with activations (same dropout masks as model_embed with the same drop), then
   back-propagate d_emb [B][dim]; grads (model_num_params floats) +=. */
void model_embed_backward(st_model *m, const int32_t *ids, const int32_t *lengths, int B, int T,
                          const enc_dropout *drop, const float *d_emb, float *grads);
/* Kept activations (docs/training.md): model_kept_floats is what one chunk's encoder activations take in
   memory; model_embed_keep is model_embed computed as model_embed_backward computes it (bit for bit), leaving
   the activations in mem; model_embed_backward_kept is model_embed_backward on a chunk whose activations
   model_embed_keep left in mem (same weights, ids, lengths, drop), without the forward pass. */
size_t model_kept_floats(const st_model *m, const int32_t *lengths, int B);
void model_embed_keep(st_model *m, const int32_t *ids, const int32_t *lengths, int B, int T, float *emb,
                      const enc_dropout *drop, float *mem);
void model_embed_backward_kept(st_model *m, const int32_t *ids, const int32_t *lengths, int B, int T,
                               const enc_dropout *drop, const float *d_emb, float *grads, float *mem);

/* ---- beyond the agreed interface: building models (st-init) ---- */

/* For tools: model_load, or die with 66 when DIR does not exist and 65 (the message naming the file and
 * tensor) when it cannot be loaded. */
st_model *model_open(const char *dir);

/* Pooling modes, in the order the library concatenates them. */
enum {
	MODEL_POOL_CLS = 1 << 0,
	MODEL_POOL_MAX = 1 << 1,
	MODEL_POOL_MEAN = 1 << 2,
	MODEL_POOL_MEAN_SQRT_LEN = 1 << 3,
	MODEL_POOL_WEIGHTEDMEAN = 1 << 4,
	MODEL_POOL_LASTTOKEN = 1 << 5,
};
/* Dense activations (torch class names in N_Dense/config.json). */
enum model_act { MODEL_ACT_IDENTITY, MODEL_ACT_TANH, MODEL_ACT_RELU, MODEL_ACT_GELU, MODEL_ACT_SIGMOID };

/* "cls,mean" (also the library's names: mean_tokens, mean_sqrt_len_tokens, max_tokens, ...) -> mode bits;
 * -1 + message for an unknown name. */
int model_pooling_parse(const char *s, char *err, size_t errlen);
/* "tanh", "Tanh", "torch.nn.modules.activation.Tanh", "identity", ... -> enum model_act, or -1. */
int model_activation_parse(const char *s);
const char *model_activation_class(int act);   /* the torch class name */

/* A new model with random encoder weights (enc_init_random with seed) and mean pooling. config_json is a
 * Hugging Face config.json text; tokenizer_src a vocab.txt, a tokenizer.json, or a directory of tokenizer
 * files, copied by model_save. NULL + message. */
st_model *model_new_random(const char *config_json, size_t len, const char *tokenizer_src, uint64_t seed,
                           char *err, size_t errlen);
/* Replace the heads: pooling modes (bits above); clears Dense and Normalize modules. */
void model_set_pooling(st_model *m, int modes);
int model_pooling(const st_model *m);
/* Appends a Dense module (PyTorch's default Linear init, from seed) with out features and activation. */
void model_add_dense(st_model *m, int out_features, int act, int bias, uint64_t seed);
void model_add_normalize(st_model *m);
void model_set_max_seq_length(st_model *m, int n);
void model_free(st_model *m);

/* ---- prompts and truncate_dim (config_sentence_transformers.json), as SentenceTransformer.encode ---- */
/* The prompt encode would prepend: text when not NULL (even ""), else prompts[name] when name is not NULL,
 * else prompts[default_prompt_name] when the config names one, else NULL. -1 + message for a name the
 * config's prompts do not have. */
int model_resolve_prompt(const st_model *m, const char *name, const char *text, const char **prompt, char *err,
			 size_t errlen);
/* Makes prompt (copied; NULL or "": none) the text model users prepend (model_prompt) and, when the Pooling
 * config says include_prompt: false, masks the first prompt_length positions (the prompt's tokens with the
 * leading special token, as the library's prompt_length) out of pooling in model_embed (inference). */
void model_set_prompt(st_model *m, const char *prompt, int prompt_length);
/* Training's prompt_length, one per row (B values, copied; NULL: none): when the Pooling config says
 * include_prompt: false, the next model_embed and model_embed_backward calls (of B rows) mask the first
 * rows[b] positions of row b out of pooling, as the library's trainer does with the batch's prompt_length.
 * Replaces model_set_prompt's mask while set. */
void model_set_prompt_lengths(st_model *m, const int32_t *rows, int B);
const char *model_prompt(const st_model *m);
int model_include_prompt(const st_model *m);
/* Building a model (st-init): prompts[name] = text in config_sentence_transformers.json; its
 * default_prompt_name (NULL: none; -1 when prompts has no such name); the Pooling config's include_prompt. */
void model_add_prompt(st_model *m, const char *name, const char *text);
int model_set_default_prompt_name(st_model *m, const char *name);
void model_set_include_prompt(st_model *m, int include);
/* truncate_dim of config_sentence_transformers.json, 0 when absent or null. */
int model_truncate_dim(const st_model *m);
/* Token states of the transformer: ids [B][T], lengths [B] -> tok [B][T][hidden] (positions < lengths[b]). */
void model_token_states(st_model *m, const int32_t *ids, const int32_t *lengths, int B, int T, float *tok);

/* ---- the heads as plain functions (model_heads.c; used by model_embed, exposed for tests) ---- */
int model_pool_count(int modes);
/* H [B][T][d] (positions < lengths[b] read) -> out [B][count*d], enabled modes concatenated in order. */
void model_pool_forward(int modes, const float *H, const int32_t *lengths, int B, int T, int d, float *out);
/* The same with positions < skip[b] of row b left out of pooling (a prompt excluded by include_prompt: false;
 * cls still reads position 0, lasttoken gives zeros when nothing is left); skip NULL: none. */
void model_pool_forward_skip(int modes, const float *H, const int32_t *lengths, const int32_t *skip, int B, int T,
			     int d, float *out);
/* dout [B][count*d] -> dH [B][T][d] (overwritten, zero at pads). */
void model_pool_backward(int modes, const float *H, const int32_t *lengths, int B, int T, int d,
			 const float *dout, float *dH);
void model_pool_backward_skip(int modes, const float *H, const int32_t *lengths, const int32_t *skip, int B, int T,
			      int d, const float *dout, float *dH);
/* y = act(x W^T + bias); W [out][in]; bias may be NULL; z (pre-activation) kept when not NULL. */
void model_dense_forward(const float *W, const float *bias, int act, int B, int in, int out,
			 const float *x, float *z, float *y);
/* dW +=, dbias += (when not NULL), dx = (when not NULL). */
void model_dense_backward(const float *W, int act, int B, int in, int out, const float *x, const float *z,
			  const float *y, const float *dy, float *dW, float *dbias, float *dx);
void model_normalize_forward(int B, int d, const float *x, float *y);
void model_normalize_backward(int B, int d, const float *x, const float *dy, float *dx);

#endif
