/* model.c: a sentence-transformers model in memory -- the encoder's parameters and the heads after it -- and
 * the forward and backward passes through all of it. Files: model_dir.c. Head math: model_heads.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "st.h"
#include "model.h"
#include "model_impl.h"

void model_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int model_dim(const st_model *m)
{
	int d = model_pool_count(m->pool_modes) * m->enc.hidden;
	for (int k = 0; k < m->nheads; k++)
		if (m->heads[k].kind == MODEL_HEAD_DENSE)
			d = m->heads[k].out;
	return d;
}

int model_max_seq_length(const st_model *m) { return m->max_seq_length; }
const char *model_dir(const st_model *m) { return m->dir; }
const enc_config *model_encoder_config(const st_model *m) { return &m->enc; }
size_t model_num_params(const st_model *m) { return m->n_params; }
int model_pooling(const st_model *m) { return m->pool_modes; }

/* Forget the tensors used in place: params is the truth from now on. keep_pooler: a pooler used in place is
 * copied out first (the model lives on without the map); not when the model is being freed. */
static void drop_in_place(st_model *m, int keep_pooler)
{
	if (keep_pooler && m->pooler_w_at && m->wt) {
		size_t HH = (size_t)m->enc.hidden * m->enc.hidden;
		m->pooler = xmalloc(xmul(HH + m->enc.hidden, sizeof(float)));
		memcpy(m->pooler, m->pooler_w_at, HH * sizeof(float));
		memcpy(m->pooler + HH, m->pooler_b_at, m->enc.hidden * sizeof(float));
	}
	m->pooler_w_at = m->pooler_b_at = NULL;
	free(m->at);
	m->at = NULL;
	m->at_ready = 0;
	weights_close(m->wt);
	m->wt = NULL;
}

/* The flat buffer that training writes to: tensors still used in place in the read-only map are copied into
 * params first (a private, writable copy), and the map is let go. */
static void drop_packed(st_model *m);

float *model_params(st_model *m)
{
	drop_packed(m);   /* the caller may write the weights */
	if (m->at) {
		enc_param *tab = xcalloc(enc_param_table(&m->enc, NULL), sizeof *tab);
		int np = enc_param_table(&m->enc, tab);
		for (int k = 0; k < np; k++)
			if (m->at[k] != m->params + tab[k].offset)
				memcpy(m->params + tab[k].offset, m->at[k], tab[k].count * sizeof(float));
		free(tab);
		drop_in_place(m, 1);
	}
	return m->params;
}

/* The tensors for inference: the first call checks that each layer's query, key and value (weights, then
 * biases) follow one another as enc_forward_at needs, and gathers those that do not into params, at their
 * offsets (where they are one block). Files keep them apart (sorted by name, key comes first): in practice
 * this copies 3H x H floats a layer, once, on the first batch and not at start-up. */
static const float *const *inference_at(st_model *m)
{
	if (!m->at || m->at_ready)
		return m->at;
	enc_param *tab = xcalloc(enc_param_table(&m->enc, NULL), sizeof *tab);
	int np = enc_param_table(&m->enc, tab), L = m->enc.layers, first = 0;
	while (first < np && !strstr(tab[first].name, ".layer.0."))
		first++;
	int per_layer = L ? (np - first - (m->enc.arch == ENC_MPNET)) / L : 0;
	const size_t H = m->enc.hidden, HH = H * H;
	for (int l = 0; l < L; l++) {
		int k = first + l * per_layer;   /* query weight, key weight, value weight, their three biases */
		const float **t = m->at + k;
		if (t[1] == t[0] + HH && t[2] == t[1] + HH && t[4] == t[3] + H && t[5] == t[4] + H)
			continue;   /* already one block */
		for (int j = 0; j < 6; j++) {
			float *dst = m->params + tab[k + j].offset;
			if (t[j] != dst)
				memcpy(dst, t[j], tab[k + j].count * sizeof(float));
			t[j] = dst;
		}
	}
	free(tab);
	m->at_ready = 1;
	return m->at;
}

/* Packed weights of a frozen model go whenever the weights may change or move. */
static void drop_packed(st_model *m)
{
	enc_packed_free(m->packed);
	m->packed = NULL;
}

void model_freeze(st_model *m)
{
	m->frozen = 1;
}

void model_bind_params(st_model *m, float *buf)
{
	drop_packed(m);
	drop_in_place(m, 1);
	if (m->owns_params)
		free(m->params);
	m->params = buf;
	m->owns_params = 0;
}

int model_param_table(const st_model *m, model_param *out)
{
	int n_enc = enc_param_table(&m->enc, NULL);
	int n = n_enc;
	for (int k = 0; k < m->nheads; k++)
		if (m->heads[k].kind == MODEL_HEAD_DENSE)
			n += m->heads[k].bias ? 2 : 1;
	if (!out)
		return n;
	enc_param *ep = xcalloc(n_enc, sizeof *ep);
	enc_param_table(&m->enc, ep);
	for (int i = 0; i < n_enc; i++) {
		model_param *p = &out[i];
		memset(p, 0, sizeof *p);
		snprintf(p->name, sizeof p->name, "%s", ep[i].name);
		p->file = "model.safetensors";
		p->ndim = ep[i].ndim;
		p->shape[0] = ep[i].shape[0];
		p->shape[1] = ep[i].shape[1];
		p->offset = ep[i].offset;
		p->count = ep[i].count;
		p->no_decay = ep[i].no_decay;
	}
	free(ep);
	int i = n_enc;
	for (int k = 0; k < m->nheads; k++) {
		const struct model_head *h = &m->heads[k];
		if (h->kind != MODEL_HEAD_DENSE)
			continue;
		model_param *p = &out[i++];
		memset(p, 0, sizeof *p);
		snprintf(p->name, sizeof p->name, "linear.weight");
		p->file = h->file;
		p->ndim = 2;
		p->shape[0] = h->out;
		p->shape[1] = h->in;
		p->offset = h->w_off;
		p->count = (size_t)h->out * h->in;
		if (h->bias) {
			p = &out[i++];
			memset(p, 0, sizeof *p);
			snprintf(p->name, sizeof p->name, "linear.bias");
			p->file = h->file;
			p->ndim = 1;
			p->shape[0] = h->out;
			p->offset = h->b_off;
			p->count = h->out;
			p->no_decay = 1;
		}
	}
	return n;
}

/* ---- building ---- */

/* splitmix64: small, seedable, enough for initialisation */
static uint64_t mix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}
static double uniform01(uint64_t *s) { return (mix64(s) >> 11) * (1.0 / 9007199254740992.0); }

void model_fill_normal(float *x, size_t n, float std, uint64_t seed)
{
	uint64_t s = seed;
	for (size_t i = 0; i < n; i += 2) {
		double u1 = uniform01(&s), u2 = uniform01(&s);
		if (u1 < 1e-300) u1 = 1e-300;
		double r = sqrt(-2.0 * log(u1));
		x[i] = (float)(std * r * cos(2 * M_PI * u2));
		if (i + 1 < n)
			x[i + 1] = (float)(std * r * sin(2 * M_PI * u2));
	}
}

static void fill_uniform(float *x, size_t n, float bound, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (float)((2.0 * uniform01(s) - 1.0) * bound);
}

void model_set_pooling(st_model *m, int modes)
{
	m->pool_modes = modes;
	m->nheads = 0;
	m->n_params = m->n_enc;
}

/* Grows the owned parameter buffer to n floats (new ones zero). */
static void grow_params(st_model *m, size_t n)
{
	if (!m->owns_params)
		die(EX_SOFTWARE, "model: cannot add modules to a model whose parameters are bound to an external buffer");
	/* tensors converted into params move with it; those used in place stay where they are */
	int np = m->at ? enc_param_table(&m->enc, NULL) : 0;
	enc_param *tab = np ? xcalloc(np, sizeof *tab) : NULL;
	char *moves = np ? xcalloc(np, 1) : NULL;
	if (np)
		enc_param_table(&m->enc, tab);
	for (int k = 0; k < np; k++)
		moves[k] = m->at[k] == m->params + tab[k].offset;
	drop_packed(m);
	m->params = xrealloc(m->params, xmul(n, sizeof(float)));
	for (int k = 0; k < np; k++)
		if (moves[k])
			m->at[k] = m->params + tab[k].offset;
	free(tab);
	free(moves);
	if (n > m->n_params)
		memset(m->params + m->n_params, 0, (n - m->n_params) * sizeof(float));
	m->n_params = n;
}

static struct model_head *new_head(st_model *m, int kind)
{
	if (m->nheads >= MODEL_MAX_HEADS)
		die(EX_USAGE, "model: at most %d modules after pooling", MODEL_MAX_HEADS);
	struct model_head *h = &m->heads[m->nheads++];
	memset(h, 0, sizeof *h);
	h->kind = kind;
	/* the module's folder: index in modules.json (0 Transformer, 1 Pooling, then heads) */
	const char *cls = kind == MODEL_HEAD_DENSE ? "Dense" : "Normalize";
	snprintf(h->path, sizeof h->path, "%d_%s", m->nheads + 1, cls);
	snprintf(h->file, sizeof h->file, "%d_%s/model.safetensors", m->nheads + 1, cls);
	return h;
}

void model_add_dense(st_model *m, int out_features, int act, int bias, uint64_t seed)
{
	int in = model_dim(m);
	struct model_head *h = new_head(m, MODEL_HEAD_DENSE);
	h->in = in;
	h->out = out_features;
	h->act = act;
	h->bias = bias;
	h->w_off = m->n_params;
	h->b_off = h->w_off + (size_t)in * out_features;
	grow_params(m, h->b_off + (bias ? out_features : 0));
	/* torch.nn.Linear default: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), bias the same bound */
	uint64_t s = seed ^ (0x44656e7365ull * (uint64_t)m->nheads);
	float bound = 1.0f / sqrtf((float)in);
	fill_uniform(m->params + h->w_off, (size_t)in * out_features, bound, &s);
	if (bias)
		fill_uniform(m->params + h->b_off, out_features, bound, &s);
}

void model_add_normalize(st_model *m)
{
	new_head(m, MODEL_HEAD_NORMALIZE);
}

void model_set_max_seq_length(st_model *m, int n)
{
	m->max_seq_length = n;
}

void model_free(st_model *m)
{
	if (!m)
		return;
	drop_packed(m);
	drop_in_place(m, 0);
	if (m->owns_params)
		free(m->params);
	if (m->acts)
		enc_acts_free(m->acts);
	enc_acts_free(m->kept_scratch);
	free(m->pooler);
	free(m->prompt);
	free(m->pool_skip_rows);
	free(m->dir);
	free(m->tok_src);
	if (m->hf_config)
		json_decref(m->hf_config);
	if (m->st_config)
		json_decref(m->st_config);
	free(m);
}

/* ---- forward and backward ---- */

/* Width of the vector entering head k (k == nheads: the output). */
static int head_in_dim(const st_model *m, int k)
{
	int d = model_pool_count(m->pool_modes) * m->enc.hidden;
	for (int j = 0; j < k; j++)
		if (m->heads[j].kind == MODEL_HEAD_DENSE)
			d = m->heads[j].out;
	return d;
}

/* The positions of each row masked out of pooling (a prompt with include_prompt: false): training's per-row
 * prompt lengths, else inference's one prompt length; NULL when nothing is masked. Free it. */
static int32_t *pool_skip(const st_model *m, int B)
{
	if (m->pool_skip_n) {
		if (m->pool_skip_n != B)
			die(EX_SOFTWARE, "prompt lengths set for %d rows, pooling %d rows", m->pool_skip_n, B);
		int32_t *skip = xmalloc(sizeof(int32_t) * (size_t)B);
		memcpy(skip, m->pool_skip_rows, sizeof(int32_t) * (size_t)B);
		return skip;
	}
	if (m->pool_skip <= 0)
		return NULL;
	int32_t *skip = xmalloc(sizeof(int32_t) * (size_t)B);
	for (int b = 0; b < B; b++)
		skip[b] = m->pool_skip;
	return skip;
}

/* Runs pooling and the heads on token states tok [B][T][hidden]. With keep (nheads+1 buffers, plus z for each
 * Dense), the input of every head is kept for backward: keep[k] is the input of head k, keep[nheads] the output. */
static void heads_forward(st_model *m, const float *tok, const int32_t *lengths, int B, int T, float *emb,
			  float **keep, float **keep_z)
{
	int d0 = head_in_dim(m, 0);
	float *cur = keep ? keep[0] : xmalloc(xmul((size_t)B * d0, sizeof(float)));
	int32_t *skip = pool_skip(m, B);
	model_pool_forward_skip(m->pool_modes, tok, lengths, skip, B, T, m->enc.hidden, cur);
	free(skip);
	for (int k = 0; k < m->nheads; k++) {
		const struct model_head *h = &m->heads[k];
		int din = head_in_dim(m, k), dout = head_in_dim(m, k + 1);
		float *next = keep ? keep[k + 1] : xmalloc(xmul((size_t)B * dout, sizeof(float)));
		if (h->kind == MODEL_HEAD_DENSE)
			model_dense_forward(m->params + h->w_off, h->bias ? m->params + h->b_off : NULL, h->act, B,
					    din, dout, cur, keep ? keep_z[k] : NULL, next);
		else
			model_normalize_forward(B, din, cur, next);
		if (!keep)
			free(cur);
		cur = next;
	}
	memcpy(emb, cur, sizeof(float) * (size_t)B * model_dim(m));
	if (!keep)
		free(cur);
}

/* The encoder's forward on the tensors where they are: in place in the mapped file, or the flat buffer. */
static void model_token_states_drop(st_model *m, const int32_t *ids, const int32_t *lengths, int B, int T,
				    float *tok, const enc_dropout *drop)
{
	if (B <= 0)
		return;
	const float *const *at = inference_at(m);
	if (m->frozen && !m->packed)
		m->packed = enc_packed_new(&m->enc);
	if (at)
		enc_forward_at_packed(&m->enc, at, ids, lengths, B, T, tok, drop, m->packed);
	else
		enc_forward_packed(&m->enc, m->params, ids, lengths, B, T, tok, drop, m->packed);
}

void model_embed(st_model *m, const int32_t *ids, const int32_t *lengths, int B, int T, float *emb,
		 const enc_dropout *drop)
{
	if (B <= 0)
		return;
	float *tok = xmalloc(xmul(xmul((size_t)B, T), xmul(m->enc.hidden, sizeof(float))));
	model_token_states_drop(m, ids, lengths, B, T, tok, drop);
	heads_forward(m, tok, lengths, B, T, emb, NULL, NULL);
	free(tok);
}

static void heads_backward(st_model *m, enc_acts *a, const float *tok, const int32_t *lengths, int B, int T,
			   const float *d_emb, float *grads);

void model_embed_backward(st_model *m, const int32_t *ids, const int32_t *lengths, int B, int T,
			  const enc_dropout *drop, const float *d_emb, float *grads)
{
	if (B <= 0)
		return;
	model_params(m);   /* training reads and writes the flat buffer */
	/* activations are kept between calls and grown to the largest chunk seen */
	if (!m->acts || B > m->acts_B || T > m->acts_T) {
		if (m->acts)
			enc_acts_free(m->acts);
		m->acts_B = B > m->acts_B ? B : m->acts_B;
		m->acts_T = T > m->acts_T ? T : m->acts_T;
		m->acts = enc_acts_new(&m->enc, m->acts_B, m->acts_T);
	}
	float *tok = xmalloc(xmul(xmul(xmul((size_t)B, T), m->enc.hidden), sizeof(float)));
	enc_forward_train(&m->enc, m->params, ids, lengths, B, T, tok, drop, m->acts);
	heads_backward(m, m->acts, tok, lengths, B, T, d_emb, grads);
	free(tok);
}

size_t model_kept_floats(const st_model *m, const int32_t *lengths, int B)
{
	return enc_acts_kept_floats(&m->enc, lengths, B);
}

void model_embed_keep(st_model *m, const int32_t *ids, const int32_t *lengths, int B, int T, float *emb,
		      const enc_dropout *drop, float *mem)
{
	if (B <= 0)
		return;
	enc_acts *a = enc_acts_view(&m->enc, lengths, B, T, mem, NULL);
	float *tok = xmalloc(xmul(xmul(xmul((size_t)B, T), m->enc.hidden), sizeof(float)));
	enc_forward_train(&m->enc, m->params, ids, lengths, B, T, tok, drop, a);
	heads_forward(m, tok, lengths, B, T, emb, NULL, NULL);
	free(tok);
	enc_acts_free(a);
}

void model_embed_backward_kept(st_model *m, const int32_t *ids, const int32_t *lengths, int B, int T,
			       const enc_dropout *drop, const float *d_emb, float *grads, float *mem)
{
	if (B <= 0)
		return;
	size_t tokens = 0;
	for (int b = 0; b < B; b++)
		tokens += (size_t)lengths[b];
	tokens = (tokens + 15) & ~(size_t)15;
	if (!m->kept_scratch || enc_acts_tokens(m->kept_scratch) < tokens) {
		enc_acts_free(m->kept_scratch);
		m->kept_scratch = enc_acts_scratch(&m->enc, tokens + tokens / 4);
	}
	enc_acts *a = enc_acts_view(&m->enc, lengths, B, T, mem, m->kept_scratch);
	float *tok = xmalloc(xmul(xmul(xmul((size_t)B, T), m->enc.hidden), sizeof(float)));
	enc_acts_resume(&m->enc, m->params, ids, lengths, B, T, tok, drop, a);
	heads_backward(m, a, tok, lengths, B, T, d_emb, grads);
	free(tok);
	enc_acts_free(a);
}

/* pooling and heads with their inputs kept, then back through heads, pooling and encoder (activations a) */
static void heads_backward(st_model *m, enc_acts *a, const float *tok, const int32_t *lengths, int B, int T,
			   const float *d_emb, float *grads)
{
	size_t ntok = xmul(xmul((size_t)B, T), m->enc.hidden);
	float *keep[MODEL_MAX_HEADS + 1], *keep_z[MODEL_MAX_HEADS];
	for (int k = 0; k <= m->nheads; k++)
		keep[k] = xmalloc(xmul((size_t)B * head_in_dim(m, k), sizeof(float)));
	for (int k = 0; k < m->nheads; k++)
		keep_z[k] = m->heads[k].kind == MODEL_HEAD_DENSE
			? xmalloc(xmul((size_t)B * head_in_dim(m, k + 1), sizeof(float))) : NULL;
	float *emb = xmalloc(xmul((size_t)B * model_dim(m), sizeof(float)));
	heads_forward(m, tok, lengths, B, T, emb, keep, keep_z);
	free(emb);

	/* back through the heads, last first */
	int dlast = model_dim(m);
	float *g = xmalloc(xmul((size_t)B * dlast, sizeof(float)));
	memcpy(g, d_emb, sizeof(float) * (size_t)B * dlast);
	for (int k = m->nheads - 1; k >= 0; k--) {
		const struct model_head *h = &m->heads[k];
		int din = head_in_dim(m, k), dout = head_in_dim(m, k + 1);
		float *gin = xmalloc(xmul((size_t)B * din, sizeof(float)));
		if (h->kind == MODEL_HEAD_DENSE)
			model_dense_backward(m->params + h->w_off, h->act, B, din, dout, keep[k], keep_z[k], keep[k + 1],
					     g, grads + h->w_off, h->bias ? grads + h->b_off : NULL, gin);
		else
			model_normalize_backward(B, din, keep[k], g, gin);
		free(g);
		g = gin;
	}
	float *dtok = xmalloc(xmul(ntok, sizeof(float)));
	int32_t *skip = pool_skip(m, B);
	model_pool_backward_skip(m->pool_modes, tok, lengths, skip, B, T, m->enc.hidden, g, dtok);
	free(skip);
	enc_backward(&m->enc, m->params, a, dtok, grads);

	free(g);
	free(dtok);
	for (int k = 0; k <= m->nheads; k++)
		free(keep[k]);
	for (int k = 0; k < m->nheads; k++)
		free(keep_z[k]);
}

/* ---- names ---- */

static const struct { int bit; const char *name, *alias, *key; } pool_names[] = {
	{ MODEL_POOL_CLS, "cls", "cls_token", "pooling_mode_cls_token" },
	{ MODEL_POOL_MEAN, "mean", "mean_tokens", "pooling_mode_mean_tokens" },
	{ MODEL_POOL_MAX, "max", "max_tokens", "pooling_mode_max_tokens" },
	{ MODEL_POOL_MEAN_SQRT_LEN, "mean_sqrt_len", "mean_sqrt_len_tokens", "pooling_mode_mean_sqrt_len_tokens" },
	{ MODEL_POOL_WEIGHTEDMEAN, "weightedmean", "weightedmean_tokens", "pooling_mode_weightedmean_tokens" },
	{ MODEL_POOL_LASTTOKEN, "lasttoken", "last_token", "pooling_mode_lasttoken" },
};

/* The config.json keys in the order Python's Pooling.get_config_dict writes them. */
const char *model_pool_key(int i, int *bit)
{
	if (i < 0 || i >= 6)
		return NULL;
	*bit = pool_names[i].bit;
	return pool_names[i].key;
}

int model_pooling_parse(const char *s, char *err, size_t errlen)
{
	int modes = 0;
	char *copy = xstrdup(s), *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int found = 0;
		for (int i = 0; i < 6; i++)
			if (!strcasecmp(tok, pool_names[i].name) || !strcasecmp(tok, pool_names[i].alias)) {
				modes |= pool_names[i].bit;
				found = 1;
			}
		if (!found) {
			model_seterr(err, errlen, "unknown pooling mode '%s' (cls, mean, max, mean_sqrt_len, weightedmean, "
				     "lasttoken)", tok);
			free(copy);
			return -1;
		}
	}
	free(copy);
	if (!modes) {
		model_seterr(err, errlen, "no pooling mode given");
		return -1;
	}
	return modes;
}

static const struct { int act; const char *name, *cls; } act_names[] = {
	{ MODEL_ACT_IDENTITY, "identity", "torch.nn.modules.linear.Identity" },
	{ MODEL_ACT_TANH, "tanh", "torch.nn.modules.activation.Tanh" },
	{ MODEL_ACT_RELU, "relu", "torch.nn.modules.activation.ReLU" },
	{ MODEL_ACT_GELU, "gelu", "torch.nn.modules.activation.GELU" },
	{ MODEL_ACT_SIGMOID, "sigmoid", "torch.nn.modules.activation.Sigmoid" },
};

int model_activation_parse(const char *s)
{
	const char *dot = strrchr(s, '.');
	const char *base = dot ? dot + 1 : s;
	for (int i = 0; i < 5; i++)
		if (!strcmp(s, act_names[i].cls) || !strcasecmp(base, act_names[i].name))
			return act_names[i].act;
	return -1;
}

const char *model_activation_class(int act)
{
	for (int i = 0; i < 5; i++)
		if (act_names[i].act == act)
			return act_names[i].cls;
	return NULL;
}

void model_token_states(st_model *m, const int32_t *ids, const int32_t *lengths, int B, int T, float *tok)
{
	model_token_states_drop(m, ids, lengths, B, T, tok, NULL);
}

int model_resolve_prompt(const st_model *m, const char *name, const char *text, const char **prompt, char *err,
			 size_t errlen)
{
	*prompt = NULL;
	if (text) {   /* the library: prompt wins over prompt_name */
		*prompt = text;
		return 0;
	}
	json_t *prompts = m->st_config ? json_object_get(m->st_config, "prompts") : NULL;
	if (!name) {
		json_t *def = m->st_config ? json_object_get(m->st_config, "default_prompt_name") : NULL;
		if (!json_is_string(def))
			return 0;
		name = json_string_value(def);
	}
	json_t *p = json_object_get(prompts, name);
	if (!json_is_string(p)) {
		/* name the keys there are, as the library's ValueError does */
		char keys[512] = "";
		size_t used = 0;
		const char *k;
		json_t *v;
		if (json_is_object(prompts))
			json_object_foreach(prompts, k, v) {
				int w = snprintf(keys + used, sizeof keys - used, "%s%s", used ? ", " : "", k);
				if (w < 0 || (size_t)w >= sizeof keys - used)
					break;
				used += (size_t)w;
			}
		model_seterr(err, errlen, "prompt name '%s' not found in the prompts of %s/config_sentence_transformers.json "
			     "(%s%s)", name, m->dir, used ? "names: " : "it has none", keys);
		return -1;
	}
	*prompt = json_string_value(p);
	return 0;
}

void model_set_prompt(st_model *m, const char *prompt, int prompt_length)
{
	free(m->prompt);
	m->prompt = prompt && *prompt ? xstrdup(prompt) : NULL;
	m->pool_skip = m->prompt && !m->include_prompt && prompt_length > 0 ? prompt_length : 0;
}

void model_add_prompt(st_model *m, const char *name, const char *text)
{
	if (!m->st_config)
		m->st_config = json_object();
	json_t *prompts = json_object_get(m->st_config, "prompts");
	if (!json_is_object(prompts)) {
		prompts = json_object();
		json_object_set_new(m->st_config, "prompts", prompts);
	}
	json_object_set_new(prompts, name, json_string(text));
}

int model_set_default_prompt_name(st_model *m, const char *name)
{
	json_t *prompts = m->st_config ? json_object_get(m->st_config, "prompts") : NULL;
	if (name && !json_is_string(json_object_get(prompts, name)))
		return -1;
	if (!m->st_config)
		m->st_config = json_object();
	json_object_set_new(m->st_config, "default_prompt_name", name ? json_string(name) : json_null());
	return 0;
}

void model_set_include_prompt(st_model *m, int include) { m->include_prompt = include != 0; }

void model_set_prompt_lengths(st_model *m, const int32_t *rows, int B)
{
	free(m->pool_skip_rows);
	m->pool_skip_rows = NULL;
	m->pool_skip_n = 0;
	if (!rows || B <= 0 || m->include_prompt)
		return;
	m->pool_skip_rows = xmalloc(sizeof(int32_t) * (size_t)B);
	memcpy(m->pool_skip_rows, rows, sizeof(int32_t) * (size_t)B);
	m->pool_skip_n = B;
}

const char *model_prompt(const st_model *m) { return m->prompt; }
int model_include_prompt(const st_model *m) { return m->include_prompt; }

int model_truncate_dim(const st_model *m)
{
	json_t *t = m->st_config ? json_object_get(m->st_config, "truncate_dim") : NULL;
	return json_is_integer(t) && json_integer_value(t) > 0 ? (int)json_integer_value(t) : 0;
}
