/* encoder.c: BERT / RoBERTa / DistilBERT / MPNet transformer body, forward and backward, llm.c style.
 *
 * Shapes: N = real tokens of the batch, packed row after row (row b's tokens at start[b] .. start[b]+len[b]),
 * H = hidden, NH = heads, hs = H/NH, I = intermediate, V = vocabulary, P = positions.
 * Every position-wise step (projections, FFN, LayerNorm, residuals) runs on the packed [N][*] matrices, so pads
 * cost nothing; attention runs per (row, head) over that row's own length, so no mask is needed.
 * Each layer's backward follows its forward. Backward functions accumulate (+=) into parameter gradients. */
#include "gemm.h"
#include "gemm_bf16.h"
#include "kernels.h"
#include "encoder.h"
#include "st.h"

#include <cblas.h>
#undef I   /* <complex.h> via openblas_config.h; I is the intermediate size here */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define LAYER_TENSORS 16

/* ------------------------------------------------------------------------------------------------------------ */
/* configuration */

const char *enc_arch_name(enum enc_arch a)
{
	return a == ENC_BERT ? "bert" : a == ENC_ROBERTA ? "roberta" : a == ENC_MPNET ? "mpnet" : "distilbert";
}

/* RoBERTa and MPNet number real tokens from padding_idx + 1 (create_position_ids_from_input_ids). */
static int padded_positions(const enc_config *c)
{
	return c->arch == ENC_ROBERTA || c->arch == ENC_MPNET;
}

/* DistilBERT and MPNet have no token type embeddings. */
static int has_token_types(const enc_config *c)
{
	return c->arch == ENC_BERT || c->arch == ENC_ROBERTA;
}

static int get_int(json_t *o, const char *key, int def, int *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v)) {
		snprintf(err, errlen, "config.json: \"%s\" is not an integer", key);
		return -1;
	}
	if (json_integer_value(v) < INT_MIN || json_integer_value(v) > INT_MAX) {   /* 2^40 is not 0 */
		snprintf(err, errlen, "config.json: \"%s\" %lld is out of range", key, (long long)json_integer_value(v));
		return -1;
	}
	*out = (int)json_integer_value(v);
	return 0;
}

static int get_float(json_t *o, const char *key, double def, float *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		*out = (float)def;
		return 0;
	}
	if (!json_is_number(v)) {
		snprintf(err, errlen, "config.json: \"%s\" is not a number", key);
		return -1;
	}
	*out = (float)json_number_value(v);
	return 0;
}

static const char *get_string(json_t *o, const char *key, const char *def)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : def;
}

/* MPNetConfig's own fields, read after the BERT-named ones. Hugging Face's MPNetEmbeddings fixes padding_idx at 1
 * whatever pad_token_id says, and MPNetEncoder buckets relative positions into 32 whatever
 * relative_attention_num_buckets says (a smaller table would be indexed out of range). */
static int mpnet_config(json_t *o, enc_config *c, char *err, size_t errlen)
{
	if (get_int(o, "relative_attention_num_buckets", 32, &c->rel_buckets, err, errlen))
		return -1;
	if (c->rel_buckets < 32 || c->rel_buckets > 65536) {
		snprintf(err, errlen, "config.json: relative_attention_num_buckets %d outside 32..65536 (MPNet uses 32)",
			 c->rel_buckets);
		return -1;
	}
	if (c->pad_token_id != 1) {
		snprintf(err, errlen, "config.json: pad_token_id %d, but MPNet's embeddings use padding index 1",
			 c->pad_token_id);
		return -1;
	}
	c->type_vocab_size = 0;
	return 0;
}

int enc_config_parse(enc_config *c, const char *json, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *o = json_loadb(json, len, 0, &jerr);
	int rc = -1;
	memset(c, 0, sizeof *c);
	if (!o || !json_is_object(o)) {
		snprintf(err, errlen, "config.json: %s (line %d)", o ? "not a JSON object" : jerr.text, jerr.line);
		goto out;
	}
	const char *type = get_string(o, "model_type", NULL);
	if (!type) {
		snprintf(err, errlen, "config.json: no \"model_type\" (supported: bert, roberta, xlm-roberta, camembert, distilbert, mpnet)");
		goto out;
	}
	if (!strcmp(type, "bert"))
		c->arch = ENC_BERT;
	else if (!strcmp(type, "roberta") || !strcmp(type, "xlm-roberta") || !strcmp(type, "camembert"))
		c->arch = ENC_ROBERTA;
	else if (!strcmp(type, "distilbert"))
		c->arch = ENC_DISTILBERT;
	else if (!strcmp(type, "mpnet"))
		c->arch = ENC_MPNET;
	else {
		snprintf(err, errlen, "config.json: model_type \"%s\" is not supported (supported: bert, roberta, "
			 "xlm-roberta, camembert, distilbert, mpnet)", type);
		goto out;
	}
	snprintf(c->model_type, sizeof c->model_type, "%s", type);
	const char *act;
	if (c->arch == ENC_DISTILBERT) {
		/* DistilBertConfig names and defaults; its LayerNorm eps is fixed at 1e-12 */
		if (get_int(o, "vocab_size", 30522, &c->vocab_size, err, errlen) ||
		    get_int(o, "dim", 768, &c->hidden, err, errlen) ||
		    get_int(o, "n_layers", 6, &c->layers, err, errlen) ||
		    get_int(o, "n_heads", 12, &c->heads, err, errlen) ||
		    get_int(o, "hidden_dim", 3072, &c->intermediate, err, errlen) ||
		    get_int(o, "max_position_embeddings", 512, &c->max_position, err, errlen) ||
		    get_int(o, "pad_token_id", 0, &c->pad_token_id, err, errlen) ||
		    get_float(o, "dropout", 0.1, &c->hidden_dropout, err, errlen) ||
		    get_float(o, "attention_dropout", 0.1, &c->attention_dropout, err, errlen) ||
		    get_float(o, "initializer_range", 0.02, &c->initializer_range, err, errlen))
			goto out;
		c->type_vocab_size = 0;
		c->layer_norm_eps = 1e-12f;
		act = get_string(o, "activation", "gelu");
		json_t *sin = json_object_get(o, "sinusoidal_pos_embds");
		if (json_is_true(sin)) {
			snprintf(err, errlen, "config.json: sinusoidal_pos_embds is not supported (only learned positions)");
			goto out;
		}
	} else {
		int roberta = c->arch == ENC_ROBERTA, mpnet = c->arch == ENC_MPNET;
		if (get_int(o, "vocab_size", roberta ? 50265 : mpnet ? 30527 : 30522, &c->vocab_size, err, errlen) ||
		    get_int(o, "hidden_size", 768, &c->hidden, err, errlen) ||
		    get_int(o, "num_hidden_layers", 12, &c->layers, err, errlen) ||
		    get_int(o, "num_attention_heads", 12, &c->heads, err, errlen) ||
		    get_int(o, "intermediate_size", 3072, &c->intermediate, err, errlen) ||
		    get_int(o, "max_position_embeddings", 512, &c->max_position, err, errlen) ||
		    get_int(o, "type_vocab_size", 2, &c->type_vocab_size, err, errlen) ||
		    get_int(o, "pad_token_id", roberta || mpnet ? 1 : 0, &c->pad_token_id, err, errlen) ||
		    get_float(o, "hidden_dropout_prob", 0.1, &c->hidden_dropout, err, errlen) ||
		    get_float(o, "attention_probs_dropout_prob", 0.1, &c->attention_dropout, err, errlen) ||
		    get_float(o, "initializer_range", 0.02, &c->initializer_range, err, errlen) ||
		    get_float(o, "layer_norm_eps", 1e-12, &c->layer_norm_eps, err, errlen))
			goto out;
		if (mpnet && mpnet_config(o, c, err, errlen))
			goto out;
		act = get_string(o, "hidden_act", "gelu");
		const char *pe = get_string(o, "position_embedding_type", "absolute");
		if (strcmp(pe, "absolute")) {
			snprintf(err, errlen, "config.json: position_embedding_type \"%s\" is not supported (only \"absolute\")", pe);
			goto out;
		}
	}
	if (!strcmp(act, "gelu") || !strcmp(act, "gelu_python"))
		c->act = ENC_ACT_GELU;
	else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_fast"))
		c->act = ENC_ACT_GELU_TANH;
	else if (!strcmp(act, "relu"))
		c->act = ENC_ACT_RELU;
	else {
		snprintf(err, errlen, "config.json: activation \"%s\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)", act);
		goto out;
	}
	if (c->vocab_size <= 0 || c->hidden <= 0 || c->layers <= 0 || c->heads <= 0 || c->intermediate <= 0 ||
	    c->max_position <= 0 || c->type_vocab_size < 0 || c->hidden % c->heads) {
		snprintf(err, errlen, "config.json: bad sizes (vocab_size %d, hidden %d, layers %d, heads %d, intermediate %d, "
			 "max_position_embeddings %d; hidden must be a multiple of heads)", c->vocab_size, c->hidden,
			 c->layers, c->heads, c->intermediate, c->max_position);
		goto out;
	}
	/* Past these no model fits in memory, and counts of layers times parameters would overflow an int: a
	 * config.json claiming 2^31-1 layers is refused here, not after a minute of building tables. */
	if (c->vocab_size > 1 << 24 || c->hidden > 1 << 16 || c->layers > 1024 || c->intermediate > 1 << 20 ||
	    c->max_position > 1 << 20 || c->type_vocab_size > 1 << 16) {
		snprintf(err, errlen, "config.json: sizes beyond what st supports (vocab_size %d <= 2^24, hidden %d <= 65536, "
			 "layers %d <= 1024, intermediate %d <= 2^20, max_position_embeddings %d <= 2^20, type_vocab_size %d "
			 "<= 65536)", c->vocab_size, c->hidden, c->layers, c->intermediate, c->max_position, c->type_vocab_size);
		goto out;
	}
	if (has_token_types(c) && c->type_vocab_size < 1) {
		snprintf(err, errlen, "config.json: type_vocab_size must be at least 1");
		goto out;
	}
	if (c->pad_token_id < 0 || c->pad_token_id >= c->vocab_size) {
		snprintf(err, errlen, "config.json: pad_token_id %d outside the vocabulary (%d)", c->pad_token_id, c->vocab_size);
		goto out;
	}
	if (enc_max_length(c) < 1) {
		snprintf(err, errlen, "config.json: max_position_embeddings %d leaves no room for positions after "
			 "padding_idx %d", c->max_position, c->pad_token_id);
		goto out;
	}
	if (!(c->hidden_dropout >= 0 && c->hidden_dropout < 1 && c->attention_dropout >= 0 && c->attention_dropout < 1 &&
	      c->layer_norm_eps > 0)) {
		snprintf(err, errlen, "config.json: dropout probabilities must be in [0, 1) and layer_norm_eps positive");
		goto out;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

int enc_max_length(const enc_config *c)
{
	/* RoBERTa and MPNet number real tokens from padding_idx + 1 */
	return padded_positions(c) ? c->max_position - c->pad_token_id - 1 : c->max_position;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* parameter layout */

/* Offsets (in floats) of the tensors; a layer's offsets are relative to that layer's start. */
typedef struct layer_off {
	size_t wqkv, bqkv;     /* (3H, H), (3H): query, key, value stacked */
	size_t wo, bo;         /* (H, H), (H): attention output dense */
	size_t ln1w, ln1b;     /* (H) */
	size_t wi, bi;         /* (I, H), (I) */
	size_t wo2, bo2;       /* (H, I), (H) */
	size_t ln2w, ln2b;     /* (H) */
} layer_off;

typedef struct layout {
	size_t word, pos, type, lnw, lnb;   /* (V, H), (P, H), (TV, H) or none, (H), (H) */
	size_t layer0, per_layer;
	layer_off l;
	size_t relb;   /* MPNet: (rel_buckets, NH) relative attention bias, after the layers */
	size_t total;
} layout;

static void make_layout(const enc_config *c, layout *y)
{
	size_t H = c->hidden, I = c->intermediate, o = 0;
	y->word = o, o += (size_t)c->vocab_size * H;
	y->pos = o, o += (size_t)c->max_position * H;
	y->type = o, o += (has_token_types(c) ? (size_t)c->type_vocab_size * H : 0);
	y->lnw = o, o += H;
	y->lnb = o, o += H;
	y->layer0 = o;
	size_t p = 0;
	y->l.wqkv = p, p += 3 * H * H;
	y->l.bqkv = p, p += 3 * H;
	y->l.wo = p, p += H * H;
	y->l.bo = p, p += H;
	y->l.ln1w = p, p += H;
	y->l.ln1b = p, p += H;
	y->l.wi = p, p += I * H;
	y->l.bi = p, p += I;
	y->l.wo2 = p, p += H * I;
	y->l.bo2 = p, p += H;
	y->l.ln2w = p, p += H;
	y->l.ln2b = p, p += H;
	y->per_layer = p;
	y->relb = o + p * c->layers;
	y->total = y->relb + (c->arch == ENC_MPNET ? (size_t)c->rel_buckets * c->heads : 0);
}

/* Where the tensors are for a forward pass: in one flat buffer (params + layout offsets) or anywhere (weights used
 * where they lie in a mapped file, enc_forward_at). Field names as in layout and layer_off. */
typedef struct layer_w {
	const float *wqkv, *bqkv, *wo, *bo, *ln1w, *ln1b, *wi, *bi, *wo2, *bo2, *ln2w, *ln2b;
	st_bf16_weight *const *bf16;  /* NULL, or bfloat16 copies of wqkv, wo, wi, wo2 (ENC_COMPUTE_BF16) */
} layer_w;

typedef struct enc_w {
	const float *word, *pos, *type, *lnw, *lnb, *relb;
	layer_w *layer;   /* [layers], owned */
} enc_w;

static void w_flat(const enc_config *c, const float *params, const layout *y, enc_w *w)
{
	w->word = params + y->word, w->pos = params + y->pos, w->type = params + y->type;
	w->lnw = params + y->lnw, w->lnb = params + y->lnb, w->relb = params + y->relb;
	w->layer = xmalloc(xmul(c->layers, sizeof *w->layer));
	for (int l = 0; l < c->layers; l++) {
		const float *lp = params + y->layer0 + (size_t)l * y->per_layer;
		const layer_off *o = &y->l;
		w->layer[l] = (layer_w){ lp + o->wqkv, lp + o->bqkv, lp + o->wo, lp + o->bo, lp + o->ln1w, lp + o->ln1b,
					 lp + o->wi, lp + o->bi, lp + o->wo2, lp + o->bo2, lp + o->ln2w, lp + o->ln2b, NULL };
	}
}

size_t enc_num_params(const enc_config *c)
{
	layout y;
	make_layout(c, &y);
	return y.total;
}

/* Tensor names live for the whole process: one pool per naming family, grown to the deepest model seen. */
static const char *const bert_layer_names[LAYER_TENSORS] = {
	"attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight",
	"attention.self.query.bias", "attention.self.key.bias", "attention.self.value.bias",
	"attention.output.dense.weight", "attention.output.dense.bias",
	"attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
	"intermediate.dense.weight", "intermediate.dense.bias",
	"output.dense.weight", "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias",
};
static const char *const distil_layer_names[LAYER_TENSORS] = {
	"attention.q_lin.weight", "attention.k_lin.weight", "attention.v_lin.weight",
	"attention.q_lin.bias", "attention.k_lin.bias", "attention.v_lin.bias",
	"attention.out_lin.weight", "attention.out_lin.bias", "sa_layer_norm.weight", "sa_layer_norm.bias",
	"ffn.lin1.weight", "ffn.lin1.bias", "ffn.lin2.weight", "ffn.lin2.bias",
	"output_layer_norm.weight", "output_layer_norm.bias",
};
static const char *const mpnet_layer_names[LAYER_TENSORS] = {
	"attention.attn.q.weight", "attention.attn.k.weight", "attention.attn.v.weight",
	"attention.attn.q.bias", "attention.attn.k.bias", "attention.attn.v.bias",
	"attention.attn.o.weight", "attention.attn.o.bias", "attention.LayerNorm.weight", "attention.LayerNorm.bias",
	"intermediate.dense.weight", "intermediate.dense.bias",
	"output.dense.weight", "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias",
};
enum { NAMES_BERT, NAMES_DISTIL, NAMES_MPNET, NAME_FAMILIES };
static const char *const *const family_names[NAME_FAMILIES] = { bert_layer_names, distil_layer_names, mpnet_layer_names };
static char **name_pool[NAME_FAMILIES];
static int name_pool_layers[NAME_FAMILIES];

static const char *layer_tensor_name(int fam, int layer, int k)
{
	const char *name;
#pragma omp critical(enc_names)
	{
		if (layer >= name_pool_layers[fam]) {
			int n = layer + 1;
			name_pool[fam] = xrealloc(name_pool[fam], xmul((size_t)n * LAYER_TENSORS, sizeof(char *)));
			for (int l = name_pool_layers[fam]; l < n; l++)
				for (int j = 0; j < LAYER_TENSORS; j++) {
					char buf[128];
					snprintf(buf, sizeof buf, "%s.layer.%d.%s", fam == NAMES_DISTIL ? "transformer" : "encoder",
						 l, family_names[fam][j]);
					name_pool[fam][(size_t)l * LAYER_TENSORS + j] = xstrdup(buf);
				}
			name_pool_layers[fam] = n;
		}
		name = name_pool[fam][(size_t)layer * LAYER_TENSORS + k];
	}
	return name;
}

static void put(enc_param *out, int *n, const char *name, int ndim, int64_t d0, int64_t d1, size_t offset, int no_decay)
{
	if (out) {
		enc_param *p = &out[*n];
		p->name = name;
		p->ndim = ndim;
		p->shape[0] = d0;
		p->shape[1] = ndim == 2 ? d1 : 0;
		p->offset = offset;
		p->count = ndim == 2 ? (size_t)d0 * d1 : (size_t)d0;
		p->no_decay = no_decay;
	}
	(*n)++;
}

int enc_param_table(const enc_config *c, enc_param *out)
{
	layout y;
	make_layout(c, &y);
	int n = 0;
	int fam = c->arch == ENC_DISTILBERT ? NAMES_DISTIL : c->arch == ENC_MPNET ? NAMES_MPNET : NAMES_BERT;
	int64_t H = c->hidden, I = c->intermediate;
	put(out, &n, "embeddings.word_embeddings.weight", 2, c->vocab_size, H, y.word, 0);
	put(out, &n, "embeddings.position_embeddings.weight", 2, c->max_position, H, y.pos, 0);
	if (has_token_types(c))
		put(out, &n, "embeddings.token_type_embeddings.weight", 2, c->type_vocab_size, H, y.type, 0);
	put(out, &n, "embeddings.LayerNorm.weight", 1, H, 0, y.lnw, 1);
	put(out, &n, "embeddings.LayerNorm.bias", 1, H, 0, y.lnb, 1);
	for (int l = 0; l < c->layers; l++) {
		size_t b = y.layer0 + (size_t)l * y.per_layer;
		/* shapes and offsets in the order of the name lists above */
		const int64_t rows[LAYER_TENSORS] = { H, H, H, H, H, H, H, H, H, H, I, I, H, H, H, H };
		const int64_t cols[LAYER_TENSORS] = { H, H, H, 0, 0, 0, H, 0, 0, 0, H, 0, I, 0, 0, 0 };
		const size_t offs[LAYER_TENSORS] = {
			y.l.wqkv, y.l.wqkv + H * H, y.l.wqkv + 2 * H * H, y.l.bqkv, y.l.bqkv + H, y.l.bqkv + 2 * H,
			y.l.wo, y.l.bo, y.l.ln1w, y.l.ln1b, y.l.wi, y.l.bi, y.l.wo2, y.l.bo2, y.l.ln2w, y.l.ln2b,
		};
		for (int k = 0; k < LAYER_TENSORS; k++)
			put(out, &n, out ? layer_tensor_name(fam, l, k) : NULL, cols[k] ? 2 : 1, rows[k], cols[k],
			    b + offs[k], cols[k] == 0 /* biases and LayerNorm */);
	}
	if (c->arch == ENC_MPNET)   /* "bias" in the name: no weight decay under either rule */
		put(out, &n, "encoder.relative_attention_bias.weight", 2, c->rel_buckets, c->heads, y.relb, 1);
	return n;
}

int enc_param_find(const enc_config *c, const char *name)
{
	int n = enc_param_table(c, NULL);
	enc_param *t = xmalloc(xmul(n, sizeof *t));
	enc_param_table(c, t);
	int found = -1;
	for (int i = 0; i < n && found < 0; i++)
		if (!strcmp(t[i].name, name))
			found = i;
	free(t);
	return found;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* random numbers: splitmix64, used both for initialisation and (as a hash) for dropout masks */

static inline uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double uniform01(uint64_t *state)
{
	*state += 0x9e3779b97f4a7c15ULL;
	return ((mix64(*state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);   /* (0, 1) */
}

static void fill_normal(float *w, size_t n, float std, uint64_t *state)
{
	for (size_t i = 0; i < n; i += 2) {
		/* Box-Muller: two normals per pair of uniforms */
		double r = sqrt(-2 * log(uniform01(state))), a = 2 * M_PI * uniform01(state);
		w[i] = (float)(std * r * cos(a));
		if (i + 1 < n)
			w[i + 1] = (float)(std * r * sin(a));
	}
}

void enc_init_random(const enc_config *c, float *params, uint64_t seed)
{
	layout y;
	make_layout(c, &y);
	size_t H = c->hidden, I = c->intermediate;
	float std = c->initializer_range;
	uint64_t s = mix64(seed ^ 0x656e636f646572ULL);
	memset(params, 0, y.total * sizeof(float));
	fill_normal(params + y.word, (size_t)c->vocab_size * H, std, &s);
	memset(params + y.word + (size_t)c->pad_token_id * H, 0, H * sizeof(float));   /* nn.Embedding padding_idx */
	fill_normal(params + y.pos, (size_t)c->max_position * H, std, &s);
	if (padded_positions(c))
		memset(params + y.pos + (size_t)c->pad_token_id * H, 0, H * sizeof(float));
	if (has_token_types(c))
		fill_normal(params + y.type, (size_t)c->type_vocab_size * H, std, &s);
	for (size_t i = 0; i < H; i++)
		params[y.lnw + i] = 1;
	for (int l = 0; l < c->layers; l++) {
		float *p = params + y.layer0 + (size_t)l * y.per_layer;
		fill_normal(p + y.l.wqkv, 3 * H * H, std, &s);
		fill_normal(p + y.l.wo, H * H, std, &s);
		fill_normal(p + y.l.wi, I * H, std, &s);
		fill_normal(p + y.l.wo2, H * I, std, &s);
		for (size_t i = 0; i < H; i++)
			p[y.l.ln1w + i] = p[y.l.ln2w + i] = 1;
	}
	if (c->arch == ENC_MPNET)   /* an nn.Embedding without padding_idx */
		fill_normal(params + y.relb, (size_t)c->rel_buckets * c->heads, std, &s);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* dropout: mask bit = hash(seed, step, column, row, layer, site, position, unit) >= p */

enum { SITE_EMBED, SITE_ATTN_PROBS, SITE_ATTN_OUT, SITE_FFN_OUT };

typedef struct dropctx {
	int on;
	uint64_t base;               /* hash of (seed, step, column) */
	int row0;
	uint32_t thresh_hidden, thresh_attn;   /* keep a unit when its 32-bit hash >= thresh */
	float scale_hidden, scale_attn;        /* 1 / (1 - p) */
} dropctx;

static uint32_t drop_threshold(float p)
{
	double t = (double)p * 4294967296.0;
	return t >= 4294967295.0 ? 0xffffffffu : (uint32_t)t;
}

static void drop_setup(dropctx *d, const enc_config *c, const enc_dropout *drop)
{
	memset(d, 0, sizeof *d);
	if (!drop || (c->hidden_dropout <= 0 && c->attention_dropout <= 0))
		return;
	d->on = 1;
	d->base = mix64(mix64(mix64(drop->seed) ^ (uint64_t)drop->step) ^ (uint64_t)(uint32_t)drop->column);
	d->row0 = drop->row0;
	d->thresh_hidden = drop_threshold(c->hidden_dropout);
	d->thresh_attn = drop_threshold(c->attention_dropout);
	d->scale_hidden = 1.0f / (1.0f - c->hidden_dropout);
	d->scale_attn = 1.0f / (1.0f - c->attention_dropout);
}

/* The key of one vector of units: (row in the whole batch, layer, site, position). */
static inline uint64_t drop_key(const dropctx *d, int b, int layer, int site, int pos)
{
	uint64_t h = mix64(d->base ^ (uint64_t)(uint32_t)(d->row0 + b));
	h = mix64(h ^ ((uint64_t)(uint32_t)layer << 8 | (uint64_t)site));
	return mix64(h ^ (uint64_t)(uint32_t)pos);
}

static inline int drop_keep(uint64_t key, uint64_t unit, uint32_t thresh)
{
	return (uint32_t)(mix64(key ^ unit) >> 32) >= thresh;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* the batch: packing of real tokens */

typedef struct batch {
	int B, T, N;
	const int32_t *ids, *len;   /* [B][T], [B] */
	int *start;                 /* [B+1]: first packed row of each sequence */
	int *tok_b, *tok_t;         /* [N]: sequence and position of each packed row */
	size_t *att_off;            /* [B+1]: offset of each sequence's (NH, L, L) probabilities */
	/* MPNet (else NULL): relative position d = j - i of key j to query i, at index d + T - 1 */
	int *rel_bucket;            /* [2T-1]: bucket of d */
	float *rel_bias;            /* [NH][2T-1]: the score bias of head h at distance d */
} batch;

static void batch_pack(const enc_config *c, batch *bt, const int32_t *ids, const int32_t *len, int B, int T)
{
	bt->B = B, bt->T = T, bt->ids = ids, bt->len = len;
	bt->rel_bucket = NULL, bt->rel_bias = NULL;
	bt->start = xmalloc(xmul(B + 1, sizeof(int)));
	bt->att_off = xmalloc(xmul(B + 1, sizeof(size_t)));
	size_t n = 0, att = 0;
	int maxlen = enc_max_length(c);
	for (int b = 0; b < B; b++) {
		if (len[b] < 0 || len[b] > T || len[b] > maxlen)
			die(EX_DATAERR, "row %d has length %d (padded length %d, the model allows %d tokens)", b, len[b], T,
			    maxlen);
		bt->start[b] = (int)n;
		bt->att_off[b] = att;
		n += len[b];
		att += (size_t)c->heads * len[b] * len[b];
	}
	if (n > 0x7fffffff)
		die(EX_DATAERR, "batch too large (%zu tokens)", n);
	bt->start[B] = bt->N = (int)n;
	bt->att_off[B] = att;
	bt->tok_b = xmalloc(xmul(n + 1, sizeof(int)));
	bt->tok_t = xmalloc(xmul(n + 1, sizeof(int)));
	for (int b = 0; b < B; b++)
		for (int t = 0; t < len[b]; t++) {
			bt->tok_b[bt->start[b] + t] = b;
			bt->tok_t[bt->start[b] + t] = t;
			int id = ids[(size_t)b * T + t];
			if (id < 0 || id >= c->vocab_size)
				die(EX_DATAERR, "token id %d outside the vocabulary of %d (row %d, position %d)", id,
				    c->vocab_size, b, t);
		}
}

static void batch_free(batch *bt)
{
	free(bt->start), free(bt->att_off), free(bt->tok_b), free(bt->tok_t), free(bt->rel_bucket), free(bt->rel_bias);
}

/* MPNet's bucket of relative position d = key - query: T5's bidirectional bucketing (relative_position_bucket with
 * num_buckets 32, max_distance 128). Half the buckets are for keys after the query; in each half, distances 0..7
 * have their own bucket and 8..127 share 8 log-spaced ones, farther ones the last. Computed in float32 as
 * Hugging Face does (same truncation at the bucket edges 16, 32, 64). */
static int mpnet_bucket(int d)
{
	int n = -d, ret = 0;
	if (n < 0)
		ret = 16, n = -n;
	if (n < 8)
		return ret + n;
	int big = 8 + (int)(logf((float)n / 8.0f) / (float)log(128.0 / 8.0) * 8.0f);
	return ret + (big < 15 ? big : 15);
}

/* The relative attention bias for the padded length T, shared by all layers (MPNetEncoder.compute_position_bias). */
static void relpos_setup(const enc_config *c, const enc_w *wt, batch *bt)
{
	if (c->arch != ENC_MPNET)
		return;
	int T = bt->T, D = 2 * T - 1, NH = c->heads;
	bt->rel_bucket = xmalloc(xmul(D > 0 ? D : 1, sizeof(int)));
	bt->rel_bias = xmalloc(xmul(xmul(NH, D > 0 ? D : 1), sizeof(float)));
	const float *w = wt->relb;   /* (rel_buckets, NH) */
	for (int k = 0; k < D; k++) {
		int bucket = mpnet_bucket(k - (T - 1));
		bt->rel_bucket[k] = bucket;
		for (int h = 0; h < NH; h++)
			bt->rel_bias[(size_t)h * D + k] = w[(size_t)bucket * NH + h];
	}
}

/* Position id of token t of row b. BERT, DistilBERT: t. RoBERTa: padding_idx + (number of non-pad ids up to t),
 * or padding_idx itself for a pad id (as create_position_ids_from_input_ids does). */
static void position_ids(const enc_config *c, const batch *bt, int *pos /* [N] */)
{
	for (int b = 0; b < bt->B; b++) {
		const int32_t *id = bt->ids + (size_t)b * bt->T;
		int count = 0;
		for (int t = 0; t < bt->len[b]; t++) {
			if (!padded_positions(c))
				pos[bt->start[b] + t] = t;
			else if (id[t] == c->pad_token_id)
				pos[bt->start[b] + t] = c->pad_token_id;
			else
				pos[bt->start[b] + t] = c->pad_token_id + ++count;
		}
	}
}

/* ------------------------------------------------------------------------------------------------------------ */
/* threads */

/* All parallel work is ours (OpenMP); OpenBLAS runs on the calling thread (st.h: st_blas_pool_off, which
 * st_sgemm's first call makes sure of). A pthreads OpenBLAS and OpenMP would otherwise take turns on the same
 * cores, and OpenMP workers spinning after each parallel region starve OpenBLAS's workers (measured 30x slower
 * on a small model). */
static int max_threads(void)
{
#ifdef _OPENMP
	return omp_get_max_threads();
#else
	return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
	return omp_get_thread_num();
#else
	return 0;
#endif
}

/* Vector versions from glibc's libmvec (linked through -lm), so that the element-wise loops below vectorise. */
float erff(float) __attribute__((simd("notinbranch")));
float expf(float) __attribute__((simd("notinbranch")));
float tanhf(float) __attribute__((simd("notinbranch")));

/* ------------------------------------------------------------------------------------------------------------ */
/* matmuls (PyTorch Linear: weight (OC, C)), split over threads by blocks of rows; each block runs a row-wise
 * epilogue (bias, activation, residual + LayerNorm) while its rows are still in cache */

typedef void (*rows_fn)(const void *ctx, int r0, int r1);

/* Below these sizes a parallel region costs more than it saves (and, on a busy machine, much more). */
#define PAR_MIN_FLOPS ((size_t)1 << 20)
#define PAR_MIN_ELEMS ((size_t)1 << 14)
/* linear_forward splits the output columns instead of the rows below this many rows a thread */
#define LINEAR_COLUMN_SPLIT_ROWS 64

/* Up to 1024 rows a block (measured faster than 256: OpenBLAS packs the weight once per call), a multiple of the
 * thread count so that every thread gets the same work. */
static int row_blocks(int N)
{
	int nt = max_threads(), nb = (N + 1023) / 1024;
	return (nb + nt - 1) / nt * nt;
}

/* out (N, OC) = inp (N, C) . weight^T, then fn(rows); w16: NULL or weight in bfloat16 (inference with
 * ENC_COMPUTE_BF16, lib/gemm_bf16.c), which then serves */
static void linear_forward(float *out, const float *inp, const float *weight, const st_bf16_weight *w16, int N,
			   int C, int OC, rows_fn fn, const void *ctx)
{
	if (N <= 0)
		return;
	if (w16) {
		st_bf16_linear(out, inp, N, w16, fn, ctx);
		return;
	}
	int par = (size_t)N * C * OC >= PAR_MIN_FLOPS, nt = max_threads();
	if (par && nt > 1 && N < LINEAR_COLUMN_SPLIT_ROWS * nt) {
		/* few rows: threads take slices of the output columns, so that each packs only its part of the weight
		 * (packing it whole for a few rows costs more than the product) */
		int panels = (OC + 31) / 32, parts = nt < panels ? nt : panels;
#pragma omp parallel num_threads(parts)
		{
#pragma omp for schedule(static)
			for (int j = 0; j < parts; j++) {
				int c0 = 32 * (panels * j / parts), c1 = j == parts - 1 ? OC : 32 * (panels * (j + 1) / parts);
				st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, c1 - c0, C, 1.0f, inp, C,
					 weight + (size_t)c0 * C, C, 0.0f, out + c0, OC);
			}
			if (fn) {
#pragma omp for schedule(static)
				for (int j = 0; j < parts; j++) {
					int r0 = (int)((int64_t)N * j / parts), r1 = (int)((int64_t)N * (j + 1) / parts);
					if (r1 > r0)
						fn(ctx, r0, r1);
				}
			}
		}
		return;
	}
	int nb = par ? row_blocks(N) : 1;
#pragma omp parallel for schedule(dynamic, 1) if(par)
	for (int k = 0; k < nb; k++) {
		int r0 = (int)((int64_t)N * k / nb), r1 = (int)((int64_t)N * (k + 1) / nb);
		if (r1 <= r0)
			continue;
		st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, OC, C, 1.0f, inp + (size_t)r0 * C, C, weight,
			 C, 0.0f, out + (size_t)r0 * OC, OC);
		if (fn)
			fn(ctx, r0, r1);
	}
}

/* dinp (N, C) = beta dinp + dout (N, OC) . weight, then fn(rows) */
static void linear_backward_input(float *dinp, float beta, const float *dout, const float *weight, int N, int C,
				  int OC, rows_fn fn, const void *ctx)
{
	if (N <= 0)
		return;
	int par = (size_t)N * C * OC >= PAR_MIN_FLOPS, nb = par ? row_blocks(N) : 1;
#pragma omp parallel for schedule(dynamic, 1) if(par)
	for (int k = 0; k < nb; k++) {
		int r0 = (int)((int64_t)N * k / nb), r1 = (int)((int64_t)N * (k + 1) / nb);
		if (r1 <= r0)
			continue;
		st_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, C, OC, 1.0f, dout + (size_t)r0 * OC, OC,
			    weight, C, beta, dinp + (size_t)r0 * C, C);
		if (fn)
			fn(ctx, r0, r1);
	}
}

/* dweight (OC, C) += dout^T . inp; dbias (OC) += column sums of dout. Threads take slices of output channels. */
static void linear_backward_weight(float *dweight, float *dbias, const float *dout, const float *inp,
				   const float *ones, int N, int C, int OC)
{
	if (N <= 0)
		return;
	int par = (size_t)N * C * OC >= PAR_MIN_FLOPS, parts = par ? max_threads() : 1;
#pragma omp parallel for schedule(static) if(par)
	for (int p = 0; p < parts; p++) {
		int o0 = (OC * p / parts) & ~15, o1 = p == parts - 1 ? OC : (OC * (p + 1) / parts) & ~15;
		if (o1 <= o0)
			continue;
		st_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o1 - o0, C, N, 1.0f, dout + o0, OC, inp, C, 1.0f,
			    dweight + (size_t)o0 * C, C);
		cblas_sgemv(CblasRowMajor, CblasTrans, N, o1 - o0, 1.0f, dout + o0, OC, ones, 1, 1.0f, dbias + o0, 1);
	}
}

/* epilogue: add a bias to each row */
typedef struct bias_ctx { float *out; const float *bias; int width; } bias_ctx;

static void bias_rows(const void *p, int r0, int r1)
{
	const bias_ctx *e = p;
	for (int r = r0; r < r1; r++) {
		float *o = e->out + (size_t)r * e->width;
#pragma omp simd
		for (int i = 0; i < e->width; i++)
			o[i] += e->bias[i];
	}
}

/* ------------------------------------------------------------------------------------------------------------ */
/* activation: hpre = h + bias, hact = act(hpre) (fused epilogue of the FFN's first matmul) */

#define SQRT1_2 0.70710678118654752f
#define SQRT2_PI 0.79788456080286536f   /* sqrt(2/pi) */
#define INV_SQRT_2PI 0.39894228040143268f

typedef struct act_ctx { float *hpre, *hact; const float *bias; int width, act; } act_ctx;

/* hact may alias hpre (inference keeps only hact) */
static void bias_act_rows(const void *p, int r0, int r1)
{
	const act_ctx *e = p;
	int n = e->width;
	enum st_kern kern = st_kern_impl();
	for (int r = r0; r < r1; r++) {
		float *h = e->hpre + (size_t)r * n, *a = e->hact + (size_t)r * n;
		const float *b = e->bias;
		if (e->act == ENC_ACT_GELU) {
			st_bias_gelu(kern, h, a, b, n);   /* kernels.c: AVX-512 erf where the CPU has it */
		} else if (e->act == ENC_ACT_GELU_TANH) {
#pragma omp simd
			for (int i = 0; i < n; i++) {
				float x = h[i] + b[i];
				h[i] = x;
				a[i] = 0.5f * x * (1.0f + tanhf(SQRT2_PI * (x + 0.044715f * x * x * x)));
			}
		} else {
#pragma omp simd
			for (int i = 0; i < n; i++) {
				float x = h[i] + b[i];
				h[i] = x;
				a[i] = x > 0 ? x : 0.0f;
			}
		}
	}
}

/* backward epilogue: dh *= act'(hpre) */
typedef struct dact_ctx { float *dh; const float *hpre; int width, act; } dact_ctx;

static void act_backward_rows(const void *p, int r0, int r1)
{
	const dact_ctx *e = p;
	int n = e->width;
	for (int r = r0; r < r1; r++) {
		float *g = e->dh + (size_t)r * n;
		const float *h = e->hpre + (size_t)r * n;
		if (e->act == ENC_ACT_GELU) {
			/* d/dx 0.5 x (1 + erf(x/sqrt2)) = 0.5 (1 + erf(x/sqrt2)) + x phi(x) */
#pragma omp simd
			for (int i = 0; i < n; i++) {
				float x = h[i];
				g[i] *= 0.5f * (1.0f + erff(x * SQRT1_2)) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
			}
		} else if (e->act == ENC_ACT_GELU_TANH) {
#pragma omp simd
			for (int i = 0; i < n; i++) {
				float x = h[i], t = tanhf(SQRT2_PI * (x + 0.044715f * x * x * x));
				g[i] *= 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * SQRT2_PI * (1.0f + 3 * 0.044715f * x * x);
			}
		} else {
#pragma omp simd
			for (int i = 0; i < n; i++)
				g[i] = h[i] > 0 ? g[i] : 0.0f;
		}
	}
}

/* ------------------------------------------------------------------------------------------------------------ */
/* LayerNorm */

/* out = (inp - mean) / sqrt(var + eps) * w + b, for a row of C; saves mean and rstd */
static inline void layernorm_row(float *out, float *mean_out, float *rstd_out, const float *inp, const float *w,
				 const float *bias, int C, float eps)
{
	float m = 0;
#pragma omp simd reduction(+:m)
	for (int i = 0; i < C; i++)
		m += inp[i];
	m /= C;
	float v = 0;
#pragma omp simd reduction(+:v)
	for (int i = 0; i < C; i++) {
		float d = inp[i] - m;
		v += d * d;
	}
	v /= C;
	float s = 1.0f / sqrtf(v + eps);
#pragma omp simd
	for (int i = 0; i < C; i++)
		out[i] = (inp[i] - m) * s * w[i] + bias[i];
	*mean_out = m;
	*rstd_out = s;
}

/* Backward of layernorm_row for N rows: dinp (=, not +=) from dout; dw, db += (per-thread sums, then added).
 * dinp may alias dout. */
static void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
			       const float *mean, const float *rstd, const float *w, int N, int C)
{
	int par = (size_t)N * C >= PAR_MIN_ELEMS, nt = par ? max_threads() : 1;
	float *part = xcalloc((size_t)nt * 2 * C, sizeof(float));   /* (nt, 2, C) partial dw, db */
#pragma omp parallel if(par)
	{
		float *pdw = part + (size_t)thread_id() * 2 * C, *pdb = pdw + C;
#pragma omp for schedule(static)
		for (int r = 0; r < N; r++) {
			const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
			float m = mean[r], s = rstd[r];
			/* dxhat = dy w; dx = s (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) */
			float sum_d = 0, sum_dx = 0;
#pragma omp simd reduction(+:sum_d, sum_dx)
			for (int i = 0; i < C; i++) {
				float xhat = (x[i] - m) * s, dxhat = dy[i] * w[i];
				sum_d += dxhat;
				sum_dx += dxhat * xhat;
				pdw[i] += dy[i] * xhat;
				pdb[i] += dy[i];
			}
			sum_d /= C;
			sum_dx /= C;
			float *dx = dinp + (size_t)r * C;
#pragma omp simd
			for (int i = 0; i < C; i++) {
				float xhat = (x[i] - m) * s;
				dx[i] = s * (dy[i] * w[i] - sum_d - xhat * sum_dx);
			}
		}
	}
	for (int t = 0; t < nt; t++)
		for (int i = 0; i < C; i++) {
			dw[i] += part[(size_t)t * 2 * C + i];
			db[i] += part[(size_t)t * 2 * C + C + i];
		}
	free(part);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* residual + dropout + LayerNorm: the epilogue of the attention output dense and of the FFN output dense */

typedef struct resln_ctx {
	const enc_config *c;
	const batch *bt;
	const dropctx *d;
	int layer, site, drop;
	float *out, *r, *mean, *rstd;                 /* (N, H), (N, H), (N), (N) */
	const float *x, *y, *bias, *lnw, *lnb;        /* residual (N, H), dense output (N, H), (H) x 3 */
} resln_ctx;

static int site_has_dropout(const enc_config *c, const dropctx *d, int site)
{
	/* DistilBERT has no dropout on the attention output */
	return d->on && d->thresh_hidden && !(site == SITE_ATTN_OUT && c->arch == ENC_DISTILBERT);
}

/* r = x + dropout(y + bias); out = LayerNorm(r). r may alias y, out may alias x. */
static void residual_ln_rows(const void *p, int r0, int r1)
{
	const resln_ctx *e = p;
	int H = e->c->hidden;
	const dropctx *d = e->d;
	for (int row = r0; row < r1; row++) {
		const float *xr = e->x + (size_t)row * H, *yr = e->y + (size_t)row * H, *b = e->bias;
		float *rr = e->r + (size_t)row * H;
		if (e->drop) {
			uint64_t key = drop_key(d, e->bt->tok_b[row], e->layer, e->site, e->bt->tok_t[row]);
			uint32_t thresh = d->thresh_hidden;
			float scale = d->scale_hidden;
#pragma omp simd
			for (int i = 0; i < H; i++)
				rr[i] = xr[i] + (drop_keep(key, i, thresh) ? (yr[i] + b[i]) * scale : 0.0f);
		} else {
#pragma omp simd
			for (int i = 0; i < H; i++)
				rr[i] = xr[i] + (yr[i] + b[i]);
		}
		layernorm_row(e->out + (size_t)row * H, &e->mean[row], &e->rstd[row], rr, e->lnw, e->lnb, H,
			      e->c->layer_norm_eps);
	}
}

/* Given dout of the LayerNorm output: dr (N, H) = gradient of r (the residual stream, so also of x),
 * dy (N, H) = gradient of y + bias (through the dropout). dr may alias dout. */
static void residual_ln_backward(const enc_config *c, const batch *bt, float *dr, float *dy, float *dlnw, float *dlnb,
				 const float *dout, const float *r, const float *mean, const float *rstd,
				 const float *lnw, int layer, int site, const dropctx *d)
{
	int H = c->hidden;
	layernorm_backward(dr, dlnw, dlnb, dout, r, mean, rstd, lnw, bt->N, H);
	int drop = site_has_dropout(c, d, site);
#pragma omp parallel for schedule(static) if((size_t)bt->N * H >= PAR_MIN_ELEMS)
	for (int row = 0; row < bt->N; row++) {
		const float *g = dr + (size_t)row * H;
		float *o = dy + (size_t)row * H;
		if (drop) {
			uint64_t key = drop_key(d, bt->tok_b[row], layer, site, bt->tok_t[row]);
			uint32_t thresh = d->thresh_hidden;
			float scale = d->scale_hidden;
#pragma omp simd
			for (int i = 0; i < H; i++)
				o[i] = drop_keep(key, i, thresh) ? g[i] * scale : 0.0f;
		} else {
			memcpy(o, g, H * sizeof(float));
		}
	}
}

/* ------------------------------------------------------------------------------------------------------------ */
/* embeddings */

/* sum (N, H) = word[id] + pos[position] (+ type[0]); x (N, H) = dropout(LayerNorm(sum)) */
static void embeddings_forward(const enc_config *c, const enc_w *w, const batch *bt,
			       const int *pos, float *sum, float *mean, float *rstd, float *x, const dropctx *d)
{
	int H = c->hidden;
	const float *word = w->word, *posw = w->pos;
	const float *type = has_token_types(c) ? w->type : NULL;   /* token type 0 */
#pragma omp parallel for schedule(static) if((size_t)bt->N * H >= PAR_MIN_ELEMS)
	for (int r = 0; r < bt->N; r++) {
		int b = bt->tok_b[r], t = bt->tok_t[r];
		const float *we = word + (size_t)bt->ids[(size_t)b * bt->T + t] * H, *pe = posw + (size_t)pos[r] * H;
		float *s = sum + (size_t)r * H, *o = x + (size_t)r * H;
		if (type) {
#pragma omp simd
			for (int i = 0; i < H; i++)
				s[i] = we[i] + pe[i] + type[i];
		} else {
#pragma omp simd
			for (int i = 0; i < H; i++)
				s[i] = we[i] + pe[i];
		}
		layernorm_row(o, &mean[r], &rstd[r], s, w->lnw, w->lnb, H, c->layer_norm_eps);
		if (d->on && d->thresh_hidden) {
			uint64_t key = drop_key(d, b, 0, SITE_EMBED, t);
			uint32_t thresh = d->thresh_hidden;
			float scale = d->scale_hidden;
#pragma omp simd
			for (int i = 0; i < H; i++)
				o[i] = drop_keep(key, i, thresh) ? o[i] * scale : 0.0f;
		}
	}
}

/* dx (N, H) is the gradient of the embeddings' output; it is overwritten. */
static void embeddings_backward(const enc_config *c, const float *params, float *grads, const layout *y,
				const batch *bt, const int *pos, const float *sum, const float *mean, const float *rstd,
				float *dx, const dropctx *d)
{
	int H = c->hidden;
	if (d->on && d->thresh_hidden) {
#pragma omp parallel for schedule(static) if((size_t)bt->N * H >= PAR_MIN_ELEMS)
		for (int r = 0; r < bt->N; r++) {
			uint64_t key = drop_key(d, bt->tok_b[r], 0, SITE_EMBED, bt->tok_t[r]);
			uint32_t thresh = d->thresh_hidden;
			float scale = d->scale_hidden, *g = dx + (size_t)r * H;
#pragma omp simd
			for (int i = 0; i < H; i++)
				g[i] = drop_keep(key, i, thresh) ? g[i] * scale : 0.0f;
		}
	}
	layernorm_backward(dx, grads + y->lnw, grads + y->lnb, dx, sum, mean, rstd, params + y->lnw, bt->N, H);
	/* in the forward pass: sum = word[id] + pos[p] + type[0]; each table row gathers the rows that used it.
	 * Threads take slices of the hidden units, so no two add into the same float. */
	float *dword = grads + y->word, *dpos = grads + y->pos;
	float *dtype = has_token_types(c) ? grads + y->type : NULL;
	int pos_pad = padded_positions(c) ? c->pad_token_id : -1;   /* padding_idx rows get no gradient */
	int par = (size_t)bt->N * H >= PAR_MIN_ELEMS, parts = par ? max_threads() : 1;
#pragma omp parallel for schedule(static) if(par)
	for (int p = 0; p < parts; p++) {
		int i0 = H * p / parts, i1 = H * (p + 1) / parts;
		for (int r = 0; r < bt->N; r++) {
			const float *g = dx + (size_t)r * H;
			int id = bt->ids[(size_t)bt->tok_b[r] * bt->T + bt->tok_t[r]];
			if (id != c->pad_token_id)
				for (int i = i0; i < i1; i++)
					dword[(size_t)id * H + i] += g[i];
			if (pos[r] != pos_pad)
				for (int i = i0; i < i1; i++)
					dpos[(size_t)pos[r] * H + i] += g[i];
			if (dtype)
				for (int i = i0; i < i1; i++)
					dtype[i] += g[i];
		}
	}
}

/* ------------------------------------------------------------------------------------------------------------ */
/* attention: per (sequence, head), over the sequence's own length L, with sgemm */

/* row += bias */
static inline void add_row(float *row, const float *bias, int L)
{
#pragma omp simd
	for (int j = 0; j < L; j++)
		row[j] += bias[j];
}

/* row *= dropout mask of query position i of head h */
static inline void attn_dropout_row(float *row, const dropctx *d, int b, int layer, int h, int i, int L)
{
	uint64_t key = drop_key(d, b, layer, SITE_ATTN_PROBS, i);
	uint32_t thresh = d->thresh_attn;
	float dscale = d->scale_attn;
#pragma omp simd
	for (int j = 0; j < L; j++)
		row[j] = drop_keep(key, (uint64_t)h << 32 | (uint32_t)j, thresh) ? row[j] * dscale : 0.0f;
}

/* qkv (N, 3H) holds q | k | v per row; ctx (N, H) = dropout(softmax(q k^T / sqrt(hs))) v per (sequence, head).
 * att: per sequence (NH, L, L) at att_off[b], the probabilities before dropout (NULL in inference).
 * (Register-tiled C kernels for the two products were tried: no faster than these sgemm calls.) */
static void attention_forward(const enc_config *c, const batch *bt, const float *qkv, float *ctx, float *att,
			      int layer, const dropctx *d)
{
	int H = c->hidden, NH = c->heads, hs = H / NH, H3 = 3 * H, T = bt->T;
	float scale = 1.0f / sqrtf((float)hs);
	int attn_drop = d->on && d->thresh_attn;
	enum st_kern kern = st_kern_impl();
	size_t nscratch = st_attn_scratch_floats(T, hs);
	nscratch = nscratch > 2 * (size_t)T * T ? nscratch : 2 * (size_t)T * T;
#pragma omp parallel if(bt->att_off[bt->B] * hs >= PAR_MIN_FLOPS)
	{
		float *scratch = xmalloc(xmul(nscratch, sizeof(float)));   /* (L, L) probabilities, dropped */
#pragma omp for schedule(dynamic, 1)
		for (int bh = 0; bh < bt->B * NH; bh++) {
			int b = bh / NH, h = bh % NH, L = bt->len[b];
			if (L == 0)
				continue;
			const float *q = qkv + (size_t)bt->start[b] * H3 + h * hs, *k = q + H, *v = q + 2 * H;
			const float *rb = bt->rel_bias ? bt->rel_bias + (size_t)h * (2 * T - 1) + (T - 1) : NULL;
			if (!attn_drop) {   /* kernels.c: per head, direct for short rows */
				st_attn_head(kern, L, hs, scale, q, k, v, H3, rb, att ? att + bt->att_off[b] + (size_t)h * L * L : NULL,
					     ctx + (size_t)bt->start[b] * H + h * hs, H, scratch);
				continue;
			}
			/* training with attention dropout: the probabilities before and after dropout */
			float *p = att ? att + bt->att_off[b] + (size_t)h * L * L : scratch;   /* (L, L) */
			float *pd = scratch + (size_t)T * T;
			/* scores p (L, L) = q (L, hs) . k^T / sqrt(hs) (+ MPNet's relative bias), then softmax by rows */
			st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, hs, scale, q, H3, k, H3, 0.0f, p, L);
			for (int i = 0; i < L; i++) {
				if (rb)
					add_row(p + (size_t)i * L, rb - i, L);   /* key j at distance j - i */
				st_softmax_row(p + (size_t)i * L, L);
				if (attn_drop) {
					memcpy(pd + (size_t)i * L, p + (size_t)i * L, L * sizeof(float));
					attn_dropout_row(pd + (size_t)i * L, d, b, layer, h, i, L);
				}
			}
			/* ctx (L, hs) = p (L, L) . v (L, hs) */
			st_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, hs, L, 1.0f, attn_drop ? pd : p, L, v, H3,
				    0.0f, ctx + (size_t)bt->start[b] * H + h * hs, H);
		}
		free(scratch);
	}
}

/* dqkv (N, 3H) = gradient of qkv, given dctx (N, H). MPNet: drelb (rel_buckets, NH) += gradient of the relative
 * attention bias (summed per (sequence, head) and distance first, then added in a fixed order: deterministic). */
static void attention_backward(const enc_config *c, const batch *bt, float *dqkv, const float *dctx,
			       const float *qkv, const float *att, int layer, const dropctx *d, float *drelb)
{
	int H = c->hidden, NH = c->heads, hs = H / NH, H3 = 3 * H, T = bt->T, D = 2 * T - 1;
	float scale = 1.0f / sqrtf((float)hs);
	/* with a bias, ds stays unscaled (it is the bias's gradient) and the scale goes into the matmuls */
	int rel = drelb != NULL && bt->rel_bucket != NULL;
	float gscale = rel ? 1.0f : scale, mscale = rel ? scale : 1.0f;
	float *ddist = rel ? xcalloc(xmul(xmul(bt->B, NH), D), sizeof(float)) : NULL;   /* (B, NH, 2T-1) */
	int attn_drop = d->on && d->thresh_attn;
	uint32_t thresh = d->thresh_attn;
	float dscale = d->scale_attn;
#pragma omp parallel if(bt->att_off[bt->B] * hs >= PAR_MIN_FLOPS)
	{
		float *scratch = xmalloc(xmul(2 * (size_t)T * T, sizeof(float)));
#pragma omp for schedule(dynamic, 1)
		for (int bh = 0; bh < bt->B * NH; bh++) {
			int b = bh / NH, h = bh % NH, L = bt->len[b];
			if (L == 0)
				continue;
			size_t r0 = bt->start[b];
			const float *q = qkv + r0 * H3 + h * hs, *k = q + H, *v = q + 2 * H;
			float *dq = dqkv + r0 * H3 + h * hs, *dk = dq + H, *dv = dq + 2 * H;
			const float *dout = dctx + r0 * H + h * hs;
			const float *p = att + bt->att_off[b] + (size_t)h * L * L;
			float *ds = scratch, *pd = scratch + (size_t)T * T;   /* (L, L) each */
			/* forward: ctx = pd v, pd = dropout(p). dpd = dout v^T; dv = pd^T dout */
			st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, hs, 1.0f, dout, H, v, H3, 0.0f, ds, L);
			if (attn_drop)
				for (int i = 0; i < L; i++) {
					uint64_t key = drop_key(d, b, layer, SITE_ATTN_PROBS, i);
					const float *pr = p + (size_t)i * L;
					float *rd = pd + (size_t)i * L, *g = ds + (size_t)i * L;
#pragma omp simd
					for (int j = 0; j < L; j++) {
						float m = drop_keep(key, (uint64_t)h << 32 | (uint32_t)j, thresh) ? dscale : 0.0f;
						rd[j] = pr[j] * m;
						g[j] *= m;
					}
				}
			st_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, hs, L, 1.0f, attn_drop ? pd : p, L, dout, H,
				    0.0f, dv, H3);
			/* softmax: ds_ij = p_ij (dp_ij - sum_k p_ik dp_ik), times the 1/sqrt(hs) of the scores */
			float *dd = rel ? ddist + (size_t)bh * D + (T - 1) : NULL;
			for (int i = 0; i < L; i++) {
				const float *pr = p + (size_t)i * L;
				float *g = ds + (size_t)i * L, dot = 0;
#pragma omp simd reduction(+:dot)
				for (int j = 0; j < L; j++)
					dot += pr[j] * g[j];
#pragma omp simd
				for (int j = 0; j < L; j++)
					g[j] = pr[j] * (g[j] - dot) * gscale;
				if (dd)
					add_row(dd - i, g, L);   /* by distance j - i */
			}
			/* s = q k^T / sqrt(hs) (+ bias): dq = ds k, dk = ds^T q */
			st_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, hs, L, mscale, ds, L, k, H3, 0.0f, dq, H3);
			st_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, hs, L, mscale, ds, L, q, H3, 0.0f, dk, H3);
		}
		free(scratch);
	}
	if (rel) {
		for (int bh = 0; bh < bt->B * NH; bh++)
			for (int k = 0; k < D; k++)
				drelb[(size_t)bt->rel_bucket[k] * NH + bh % NH] += ddist[(size_t)bh * D + k];
		free(ddist);
	}
}

/* ------------------------------------------------------------------------------------------------------------ */
/* one layer */

/* Where one layer's activations go. In inference several of them share a buffer (see enc_forward). */
typedef struct layer_acts {
	float *x;           /* (N, H) input */
	float *qkv;         /* (N, 3H) */
	float *att;         /* per sequence (NH, L, L) probabilities, NULL in inference */
	float *ctx;         /* (N, H) */
	float *r1;          /* (N, H) x + dropout(ctx Wo^T + bo), LayerNorm input (also the dense output scratch) */
	float *mean1, *rstd1;   /* (N) */
	float *x1;          /* (N, H) after attention */
	float *hpre;        /* (N, I) x1 Wi^T + bi */
	float *hact;        /* (N, I) act(hpre) */
	float *r2;          /* (N, H) x1 + dropout(hact Wo2^T + bo2) */
	float *mean2, *rstd2;
	float *out;         /* (N, H) layer output */
} layer_acts;

static void layer_forward(const enc_config *c, const layer_w *o, const batch *bt, const layer_acts *a,
			  int layer, const dropctx *d)
{
	int N = bt->N, H = c->hidden, I = c->intermediate;
	st_bf16_weight *const none[4] = { 0 }, *const *w16 = o->bf16 ? o->bf16 : none;
	/* qkv = x Wqkv^T + bqkv */
	bias_ctx eb = { a->qkv, o->bqkv, 3 * H };
	linear_forward(a->qkv, a->x, o->wqkv, w16[0], N, H, 3 * H, bias_rows, &eb);
	attention_forward(c, bt, a->qkv, a->ctx, a->att, layer, d);
	/* x1 = LN1(x + dropout(ctx Wo^T + bo)) */
	resln_ctx e1 = { c, bt, d, layer, SITE_ATTN_OUT, site_has_dropout(c, d, SITE_ATTN_OUT), a->x1, a->r1, a->mean1,
			 a->rstd1, a->x, a->r1, o->bo, o->ln1w, o->ln1b };
	linear_forward(a->r1, a->ctx, o->wo, w16[1], N, H, H, residual_ln_rows, &e1);
	/* hact = act(x1 Wi^T + bi) */
	act_ctx ea = { a->hpre, a->hact, o->bi, I, c->act };
	linear_forward(a->hpre, a->x1, o->wi, w16[2], N, H, I, bias_act_rows, &ea);
	/* out = LN2(x1 + dropout(hact Wo2^T + bo2)) */
	resln_ctx e2 = { c, bt, d, layer, SITE_FFN_OUT, site_has_dropout(c, d, SITE_FFN_OUT), a->out, a->r2, a->mean2,
			 a->rstd2, a->x1, a->r2, o->bo2, o->ln2w, o->ln2b };
	linear_forward(a->r2, a->hact, o->wo2, w16[3], N, I, H, residual_ln_rows, &e2);
}

/* Scratch for one layer's backward. */
typedef struct layer_scratch {
	float *dx1;    /* (N, H) */
	float *dy;     /* (N, H) */
	float *dh;     /* (N, I) */
	float *dctx;   /* (N, H) */
	float *dqkv;   /* (N, 3H) */
	const float *ones;   /* (N) of 1.0, for bias gradients */
	float *drelb;        /* MPNet: gradient of the relative attention bias shared by all layers, else NULL */
} layer_scratch;

/* dout (N, H): gradient of the layer output; on return it holds the gradient of the layer input. */
static void layer_backward(const enc_config *c, const float *lp, float *lg, const layout *y, const batch *bt,
			   const layer_acts *a, float *dout, const layer_scratch *s, int layer, const dropctx *d)
{
	int N = bt->N, H = c->hidden, I = c->intermediate;
	const layer_off *o = &y->l;
	/* out = LN2(x1 + dropout(hact Wo2^T + bo2)): dx1 gets the residual's share, dy the dense output's */
	residual_ln_backward(c, bt, s->dx1, s->dy, lg + o->ln2w, lg + o->ln2b, dout, a->r2, a->mean2, a->rstd2,
			     lp + o->ln2w, layer, SITE_FFN_OUT, d);
	linear_backward_weight(lg + o->wo2, lg + o->bo2, s->dy, a->hact, s->ones, N, I, H);
	/* dhpre = (dy Wo2) * act'(hpre) */
	dact_ctx ed = { s->dh, a->hpre, I, c->act };
	linear_backward_input(s->dh, 0.0f, s->dy, lp + o->wo2, N, I, H, act_backward_rows, &ed);
	/* hpre = x1 Wi^T + bi */
	linear_backward_weight(lg + o->wi, lg + o->bi, s->dh, a->x1, s->ones, N, H, I);
	linear_backward_input(s->dx1, 1.0f, s->dh, lp + o->wi, N, H, I, NULL, NULL);
	/* x1 = LN1(x + dropout(ctx Wo^T + bo)); dout becomes the gradient of x */
	residual_ln_backward(c, bt, dout, s->dy, lg + o->ln1w, lg + o->ln1b, s->dx1, a->r1, a->mean1, a->rstd1,
			     lp + o->ln1w, layer, SITE_ATTN_OUT, d);
	linear_backward_weight(lg + o->wo, lg + o->bo, s->dy, a->ctx, s->ones, N, H, H);
	linear_backward_input(s->dctx, 0.0f, s->dy, lp + o->wo, N, H, H, NULL, NULL);
	attention_backward(c, bt, s->dqkv, s->dctx, a->qkv, a->att, layer, d, s->drelb);
	/* qkv = x Wqkv^T + bqkv */
	linear_backward_weight(lg + o->wqkv, lg + o->bqkv, s->dqkv, a->x, s->ones, N, H, 3 * H);
	linear_backward_input(dout, 1.0f, s->dqkv, lp + o->wqkv, N, H, 3 * H, NULL, NULL);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* inference */

/* Buffers kept between calls of enc_forward, grown to the largest batch seen. */
static struct {
	size_t tokens, hidden, intermediate;
	float *x, *qkv, *ctx, *tmp, *x1, *h, *stats;
	int *pos;
} ws;

static void ws_reserve(const enc_config *c, size_t N)
{
	size_t H = c->hidden, I = c->intermediate;
	if (N <= ws.tokens && ws.hidden == H && ws.intermediate == I)
		return;
	free(ws.x), free(ws.qkv), free(ws.ctx), free(ws.tmp), free(ws.x1), free(ws.h), free(ws.stats), free(ws.pos);
	N = N < 64 ? 64 : N + N / 4;
	ws.x = xmalloc(xmul(N * H, sizeof(float)));
	ws.qkv = xmalloc(xmul(N * 3 * H, sizeof(float)));
	ws.ctx = xmalloc(xmul(N * H, sizeof(float)));
	ws.tmp = xmalloc(xmul(N * H, sizeof(float)));
	ws.x1 = xmalloc(xmul(N * H, sizeof(float)));
	ws.h = xmalloc(xmul(N * I, sizeof(float)));
	ws.stats = xmalloc(xmul(N * 4, sizeof(float)));
	ws.pos = xmalloc(xmul(N, sizeof(int)));
	ws.tokens = N;
	ws.hidden = H;
	ws.intermediate = I;
}

static void unpack_output(const enc_config *c, const batch *bt, const float *x, float *out)
{
	size_t H = c->hidden;
	for (int b = 0; b < bt->B; b++)
		if (bt->len[b] > 0)
			memcpy(out + (size_t)b * bt->T * H, x + (size_t)bt->start[b] * H, bt->len[b] * H * sizeof(float));
}

/* The bfloat16 copies of each layer's four projection weights (--compute bf16), kept with the model while its
 * weights stay as they are (model_freeze), remembered with the weights they were made from: a weight at another
 * address gets a new one. (Float32 copies packed once for st_sgemm were measured slower than packing each
 * product's panels into L2: docs/encoder.md, "Performance".) */
struct enc_packed {
	int layers;
	st_bf16_weight *(*bf16)[4];   /* [layers][wqkv, wo, wi, wo2] */
};

enc_packed *enc_packed_new(const enc_config *c)
{
	enc_packed *p = xcalloc(1, sizeof *p);
	p->layers = c->layers;
	p->bf16 = xcalloc(c->layers ? c->layers : 1, sizeof *p->bf16);
	return p;
}

void enc_packed_free(enc_packed *p)
{
	if (!p)
		return;
	for (int l = 0; l < p->layers; l++)
		for (int k = 0; k < 4; k++)
			st_bf16_weight_free(p->bf16[l][k]);
	free(p->bf16);
	free(p);
}

/* Points w's layers at pk's bfloat16 copies, made anew for weights not seen before. */
static void packed_attach(const enc_config *c, enc_packed *pk, enc_w *w)
{
	if (pk->layers != c->layers)
		die(EX_SOFTWARE, "enc_forward_packed: packed weights made for %d layers, model has %d", pk->layers,
		    c->layers);
	int H = c->hidden, I = c->intermediate;
	for (int l = 0; l < c->layers; l++) {
		layer_w *o = &w->layer[l];
		const float *src[4] = { o->wqkv, o->wo, o->wi, o->wo2 };
		const int in[4] = { H, H, H, I }, outw[4] = { 3 * H, H, I, H };   /* weight k is (outw, in) */
		for (int k = 0; k < 4; k++) {
			st_bf16_weight **p = &pk->bf16[l][k];
			if (*p && st_bf16_weight_source(*p) == src[k])
				continue;
			st_bf16_weight_free(*p);
			*p = st_bf16_pack(src[k], outw[k], in[k]);
		}
		o->bf16 = pk->bf16[l];
	}
}

static void forward_w(const enc_config *c, const enc_w *w, const int32_t *ids, const int32_t *lengths,
		      int B, int T, float *out, const enc_dropout *drop)
{
	batch bt;
	batch_pack(c, &bt, ids, lengths, B, T);
	relpos_setup(c, w, &bt);
	dropctx d;
	drop_setup(&d, c, drop);
	size_t N = bt.N;
	ws_reserve(c, N);
	position_ids(c, &bt, ws.pos);
	/* the embedding sum goes to tmp; its statistics are not needed afterwards */
	embeddings_forward(c, w, &bt, ws.pos, ws.tmp, ws.stats, ws.stats + N, ws.x, &d);
	layer_acts a = {
		.x = ws.x, .qkv = ws.qkv, .att = NULL, .ctx = ws.ctx, .r1 = ws.tmp, .mean1 = ws.stats,
		.rstd1 = ws.stats + N, .x1 = ws.x1, .hpre = ws.h, .hact = ws.h, .r2 = ws.tmp, .mean2 = ws.stats + 2 * N,
		.rstd2 = ws.stats + 3 * N, .out = ws.x,
	};
	for (int l = 0; l < c->layers; l++)
		layer_forward(c, &w->layer[l], &bt, &a, l, &d);
	unpack_output(c, &bt, ws.x, out);
	batch_free(&bt);
}

/* Runs forward_w, in bfloat16 for inference with ENC_COMPUTE_BF16: with pk's copies of the weights, or without
 * pk with copies made for this pass. */
static void forward_packed(const enc_config *c, enc_w *w, const int32_t *ids, const int32_t *lengths, int B,
			   int T, float *out, const enc_dropout *drop, enc_packed *pk)
{
	enc_packed *own = NULL;
	if (!drop && enc_get_compute() == ENC_COMPUTE_BF16) {
		if (!pk)
			pk = own = enc_packed_new(c);
		packed_attach(c, pk, w);
	}
	forward_w(c, w, ids, lengths, B, T, out, drop);
	enc_packed_free(own);
}

void enc_forward_packed(const enc_config *c, const float *params, const int32_t *ids, const int32_t *lengths,
			int B, int T, float *out, const enc_dropout *drop, enc_packed *pk)
{
	layout y;
	make_layout(c, &y);
	enc_w w;
	w_flat(c, params, &y, &w);
	forward_packed(c, &w, ids, lengths, B, T, out, drop, pk);
	free(w.layer);
}

void enc_forward(const enc_config *c, const float *params, const int32_t *ids, const int32_t *lengths,
		 int B, int T, float *out, const enc_dropout *drop)
{
	enc_forward_packed(c, params, ids, lengths, B, T, out, drop, NULL);
}

void enc_forward_at(const enc_config *c, const float *const *at, const int32_t *ids, const int32_t *lengths,
		    int B, int T, float *out, const enc_dropout *drop)
{
	enc_forward_at_packed(c, at, ids, lengths, B, T, out, drop, NULL);
}

void enc_forward_at_packed(const enc_config *c, const float *const *at, const int32_t *ids, const int32_t *lengths,
			   int B, int T, float *out, const enc_dropout *drop, enc_packed *pk)
{
	/* entries in enc_param_table order: word, position, (token type,) LayerNorm weight and bias, then
	 * LAYER_TENSORS per layer (query, key, value weights; their biases; ...), then MPNet's relative bias */
	size_t H = c->hidden;
	int k = 0;
	enc_w w = { 0 };
	w.word = at[k++];
	w.pos = at[k++];
	if (has_token_types(c))
		w.type = at[k++];
	w.lnw = at[k++];
	w.lnb = at[k++];
	w.layer = xmalloc(xmul(c->layers, sizeof *w.layer));
	for (int l = 0; l < c->layers; l++, k += LAYER_TENSORS) {
		const float *const *t = at + k;
		if (t[1] != t[0] + H * H || t[2] != t[1] + H * H || t[4] != t[3] + H || t[5] != t[4] + H)
			die(EX_SOFTWARE, "enc_forward_at: layer %d: query, key and value are not one [3H][H] block", l);
		w.layer[l] = (layer_w){ t[0], t[3], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15], NULL };
	}
	w.relb = c->arch == ENC_MPNET ? at[k] : NULL;
	forward_packed(c, &w, ids, lengths, B, T, out, drop, pk);
	free(w.layer);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* training: forward with activations, backward */

struct enc_acts {
	int Bmax, Tmax;
	size_t Nmax, attmax;   /* per-layer room: tokens, attention probabilities */
	/* the last forward_train */
	int B, T, valid;
	int32_t *ids, *len;
	enc_dropout drop;
	int has_drop;
	batch bt;
	int *pos;                              /* (N) */
	float *emb_sum, *emb_mean, *emb_rstd;  /* (N, H), (N), (N) */
	float *x0;                             /* (N, H) embeddings output = layer 0 input */
	/* per layer l at offset l * Nmax * width */
	float *qkv, *att, *ctx, *r1, *mean1, *rstd1, *x1, *hpre, *hact, *r2, *mean2, *rstd2, *xout;
	/* backward scratch */
	float *dx, *dx1, *dy, *dh, *dctx, *dqkv, *ones;
	int view;        /* the forward arrays lie in the caller's memory (enc_acts_view) */
	int borrowed;    /* the backward scratch is another enc_acts' (enc_acts_view's donor) */
};

/* The activation arrays, each X(field, floats) with Nm tokens of room, attmax attention probabilities, H, I
 * and L the model's widths and layers: the forward's (kept for the backward; per-layer arrays hold L blocks)
 * and the backward's scratch. One list for allocating, laying out in kept memory, sizing and freeing. */
#define ENC_FWD_ACTS(X) \
	X(emb_sum, Nm * H) X(emb_mean, Nm) X(emb_rstd, Nm) X(x0, Nm * H) \
	X(qkv, L * Nm * 3 * H) X(att, L * attmax) X(ctx, L * Nm * H) X(r1, L * Nm * H) X(mean1, L * Nm) \
	X(rstd1, L * Nm) X(x1, L * Nm * H) X(hpre, L * Nm * I) X(hact, L * Nm * I) X(r2, L * Nm * H) \
	X(mean2, L * Nm) X(rstd2, L * Nm) X(xout, L * Nm * H)
#define ENC_SCRATCH_ACTS(X) \
	X(dx, Nm * H) X(dx1, Nm * H) X(dy, Nm * H) X(dh, Nm * I) X(dctx, Nm * H) X(dqkv, Nm * 3 * H) X(ones, Nm)
#define ACTS_SIZES(c) size_t H = (c)->hidden, I = (c)->intermediate, L = (c)->layers; (void)H, (void)I, (void)L

static size_t fwd_acts_floats(const enc_config *c, size_t Nm, size_t attmax)
{
	ACTS_SIZES(c);
	size_t n = 0;
#define ADD(field, count) n += (count);
	ENC_FWD_ACTS(ADD)
#undef ADD
	return n;
}

static size_t scratch_acts_floats(const enc_config *c, size_t Nm)
{
	ACTS_SIZES(c);
	size_t n = 0;
#define ADD(field, count) n += (count);
	ENC_SCRATCH_ACTS(ADD)
#undef ADD
	return n;
}

size_t enc_acts_bytes(const enc_config *c, int B, int T)
{
	size_t Nm = (size_t)B * T, attmax = (size_t)B * c->heads * T * T;
	return (fwd_acts_floats(c, Nm, attmax) + scratch_acts_floats(c, Nm)) * sizeof(float) +
	       (size_t)B * T * 4 * sizeof(int);
}

#define ALLOC(field, count) a->field = xmalloc(xmul((count) + 1, sizeof(float)));

/* scratch for the backward of chunks of up to Nm tokens; a->ones filled */
static void scratch_alloc(const enc_config *c, enc_acts *a, size_t Nm)
{
	ACTS_SIZES(c);
	ENC_SCRATCH_ACTS(ALLOC)
	for (size_t i = 0; i < Nm; i++)
		a->ones[i] = 1.0f;
}

enc_acts *enc_acts_new(const enc_config *c, int B, int T)
{
	enc_acts *a = xcalloc(1, sizeof *a);
	ACTS_SIZES(c);
	a->Bmax = B, a->Tmax = T;
	a->Nmax = (size_t)B * T;
	a->attmax = xmul(xmul((size_t)B * c->heads, T), T);
	size_t Nm = a->Nmax, attmax = a->attmax;
	a->ids = xmalloc(xmul(Nm + 1, sizeof(int32_t)));
	a->len = xmalloc(xmul(B + 1, sizeof(int32_t)));
	a->pos = xmalloc(xmul(Nm + 1, sizeof(int)));
	ENC_FWD_ACTS(ALLOC)
	scratch_alloc(c, a, Nm);
	return a;
}
#undef ALLOC

void enc_acts_free(enc_acts *a)
{
	if (!a)
		return;
	if (a->valid)
		batch_free(&a->bt);
#define FREE(field, count) free(a->field);
	if (!a->view) {
		ENC_FWD_ACTS(FREE)
	}
	if (!a->borrowed) {
		ENC_SCRATCH_ACTS(FREE)
	}
#undef FREE
	free(a->ids), free(a->len), free(a->pos);
	free(a);
}

/* Activations laid out in the caller's memory, packed to the chunk's real tokens (no padding rows), so that
 * st-forward can keep a whole batch's for st-step (docs/training.md, "Kept activations"). Every array starts
 * on a multiple of 16 floats. */
static void kept_sizes(const enc_config *c, const int32_t *lengths, int B, size_t *Nmax, size_t *attmax)
{
	size_t N = 0, att = 0;
	for (int b = 0; b < B; b++) {
		N += (size_t)lengths[b];
		att += (size_t)c->heads * lengths[b] * lengths[b];
	}
	*Nmax = (N + 15) & ~(size_t)15;
	*attmax = (att + 15) & ~(size_t)15;
}

size_t enc_acts_kept_floats(const enc_config *c, const int32_t *lengths, int B)
{
	size_t Nmax, attmax;
	kept_sizes(c, lengths, B, &Nmax, &attmax);
	return fwd_acts_floats(c, Nmax, attmax);
}

enc_acts *enc_acts_view(const enc_config *c, const int32_t *lengths, int B, int T, float *mem, const enc_acts *donor)
{
	enc_acts *a = xcalloc(1, sizeof *a);
	ACTS_SIZES(c);
	a->Bmax = B, a->Tmax = T;
	kept_sizes(c, lengths, B, &a->Nmax, &a->attmax);
	size_t Nm = a->Nmax, attmax = a->attmax;
	a->ids = xmalloc(xmul((size_t)B * T + 1, sizeof(int32_t)));
	a->len = xmalloc(xmul(B + 1, sizeof(int32_t)));
	a->pos = xmalloc(xmul(Nm + 1, sizeof(int)));
	a->view = 1;
	float *p = mem;
#define TAKE(field, count) a->field = p, p += (count);
	ENC_FWD_ACTS(TAKE)
#undef TAKE
	a->borrowed = 1;   /* without a donor: no scratch, forward only */
	if (donor) {
		if (donor->Nmax < Nm)
			die(EX_SOFTWARE, "enc_acts_view: scratch for %zu tokens, the chunk has %zu", donor->Nmax, Nm);
#define SHARE(field, count) a->field = donor->field;
		ENC_SCRATCH_ACTS(SHARE)
#undef SHARE
	}
	return a;
}

enc_acts *enc_acts_scratch(const enc_config *c, size_t tokens)
{
	enc_acts *a = xcalloc(1, sizeof *a);
	a->Nmax = tokens;
	a->view = 1;   /* no forward arrays to free */
	scratch_alloc(c, a, tokens);
	return a;
}

size_t enc_acts_tokens(const enc_acts *a) { return a->Nmax; }

static layer_acts acts_layer(const enc_config *c, enc_acts *a, int l)
{
	size_t H = c->hidden, I = c->intermediate, Nm = a->Nmax;
	layer_acts la = {
		.x = l == 0 ? a->x0 : a->xout + (l - 1) * Nm * H,
		.qkv = a->qkv + l * Nm * 3 * H,
		.att = a->att + l * a->attmax,
		.ctx = a->ctx + l * Nm * H,
		.r1 = a->r1 + l * Nm * H,
		.mean1 = a->mean1 + l * Nm,
		.rstd1 = a->rstd1 + l * Nm,
		.x1 = a->x1 + l * Nm * H,
		.hpre = a->hpre + l * Nm * I,
		.hact = a->hact + l * Nm * I,
		.r2 = a->r2 + l * Nm * H,
		.mean2 = a->mean2 + l * Nm,
		.rstd2 = a->rstd2 + l * Nm,
		.out = a->xout + l * Nm * H,
	};
	return la;
}

static void acts_setup(const enc_config *c, const enc_w *w, const int32_t *ids, const int32_t *lengths, int B,
		       int T, const enc_dropout *drop, enc_acts *a);

void enc_forward_train(const enc_config *c, const float *params, const int32_t *ids, const int32_t *lengths,
		       int B, int T, float *out, const enc_dropout *drop, enc_acts *a)
{
	layout y;
	make_layout(c, &y);
	enc_w w;
	w_flat(c, params, &y, &w);
	acts_setup(c, &w, ids, lengths, B, T, drop, a);
	dropctx d;
	drop_setup(&d, c, drop);
	embeddings_forward(c, &w, &a->bt, a->pos, a->emb_sum, a->emb_mean, a->emb_rstd, a->x0, &d);
	for (int l = 0; l < c->layers; l++) {
		layer_acts la = acts_layer(c, a, l);
		layer_forward(c, &w.layer[l], &a->bt, &la, l, &d);
	}
	unpack_output(c, &a->bt, a->xout + (size_t)(c->layers - 1) * a->Nmax * c->hidden, out);
	free(w.layer);
}

static void (*grads_done)(void *ctx, size_t offset, size_t count);
static void *grads_done_ctx;

void enc_set_grads_done(void (*done)(void *ctx, size_t offset, size_t count), void *ctx)
{
	grads_done = done;
	grads_done_ctx = ctx;
}

void enc_acts_resume(const enc_config *c, const float *params, const int32_t *ids, const int32_t *lengths, int B,
		     int T, float *out, const enc_dropout *drop, enc_acts *a)
{
	layout y;
	make_layout(c, &y);
	enc_w w;
	w_flat(c, params, &y, &w);
	acts_setup(c, &w, ids, lengths, B, T, drop, a);
	free(w.layer);
	unpack_output(c, &a->bt, a->xout + (size_t)(c->layers - 1) * a->Nmax * c->hidden, out);
}

/* what enc_forward_train records besides the computed activations: ids, lengths, packing, positions, masks */
static void acts_setup(const enc_config *c, const enc_w *w, const int32_t *ids, const int32_t *lengths, int B,
		       int T, const enc_dropout *drop, enc_acts *a)
{
	if (B > a->Bmax || T > a->Tmax)
		die(EX_SOFTWARE, "enc_forward_train: batch %dx%d exceeds the activations' %dx%d", B, T, a->Bmax, a->Tmax);
	if (a->valid)
		batch_free(&a->bt);
	/* keep our own copy of the ids and lengths (the compact [B][T] layout) */
	memcpy(a->ids, ids, (size_t)B * T * sizeof(int32_t));
	memcpy(a->len, lengths, (size_t)B * sizeof(int32_t));
	a->B = B, a->T = T;
	batch_pack(c, &a->bt, a->ids, a->len, B, T);
	if (a->bt.N > a->Nmax)
		die(EX_SOFTWARE, "enc_forward_train: %zu tokens exceed the activations' %zu", (size_t)a->bt.N, a->Nmax);
	relpos_setup(c, w, &a->bt);
	a->valid = 1;
	a->has_drop = drop != NULL;
	if (drop)
		a->drop = *drop;
	position_ids(c, &a->bt, a->pos);
}

void enc_backward(const enc_config *c, const float *params, enc_acts *a, const float *dout, float *grads)
{
	if (!a->valid || !a->dx)
		die(EX_SOFTWARE, "enc_backward without enc_forward_train (or on a view without scratch)");
	layout y;
	make_layout(c, &y);
	const batch *bt = &a->bt;
	size_t H = c->hidden;
	dropctx d;
	drop_setup(&d, c, a->has_drop ? &a->drop : NULL);
	/* pack dout's real positions */
	for (int b = 0; b < bt->B; b++)
		if (bt->len[b] > 0)
			memcpy(a->dx + (size_t)bt->start[b] * H, dout + (size_t)b * bt->T * H, bt->len[b] * H * sizeof(float));
	layer_scratch s = { .dx1 = a->dx1, .dy = a->dy, .dh = a->dh, .dctx = a->dctx, .dqkv = a->dqkv, .ones = a->ones,
			    .drelb = c->arch == ENC_MPNET ? grads + y.relb : NULL };
	for (int l = c->layers - 1; l >= 0; l--) {
		layer_acts la = acts_layer(c, a, l);
		size_t off = y.layer0 + (size_t)l * y.per_layer;
		layer_backward(c, params + off, grads + off, &y, bt, &la, a->dx, &s, l, &d);
		if (grads_done)
			grads_done(grads_done_ctx, off, y.per_layer);
	}
	embeddings_backward(c, params, grads, &y, bt, a->pos, a->emb_sum, a->emb_mean, a->emb_rstd, a->dx, &d);
}
