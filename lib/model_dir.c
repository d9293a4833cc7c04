/* model_dir.c: reading and writing the sentence-transformers model directory (docs/model-directory.md).
 *
 *   modules.json, config_sentence_transformers.json, sentence_bert_config.json, config.json, model.safetensors,
 *   tokenizer files, README.md, 1_Pooling/config.json, N_Dense/{config.json,model.safetensors}, N_Normalize/
 *
 * Keys and file names follow what Python's sentence-transformers writes, so either side loads the other's
 * folders. A plain Hugging Face folder (config.json + model.safetensors) loads as Transformer + mean pooling.
 * Weights are read through lib/weights.h, so pytorch_model.bin and sharded checkpoints load too; saving always
 * writes model.safetensors. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "st.h"
#include "safetensors.h"
#include "weights.h"
#include "tokenizer.h"
#include "model.h"
#include "model_impl.h"
#include "hub.h"

/* The sentence-transformers release whose folder layout this writes (config_sentence_transformers.json). */
#define MODEL_ST_FORMAT_VERSION "5.1.2"

static const char *tokenizer_files[] = {
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
	"merges.txt", "added_tokens.json", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model", NULL,
};

static const char *sbert_config_files[] = {
	"sentence_bert_config.json", "sentence_roberta_config.json", "sentence_distilbert_config.json",
	"sentence_camembert_config.json", "sentence_albert_config.json", "sentence_xlm-roberta_config.json",
	"sentence_xlnet_config.json", NULL,
};

static void join(char *out, const char *a, const char *b)
{
	if (!*a)
		snprintf(out, PATH_MAX, "%s", b);
	else if (!*b)
		snprintf(out, PATH_MAX, "%s", a);
	else
		snprintf(out, PATH_MAX, "%s%s%s", a, a[strlen(a) - 1] == '/' ? "" : "/", b);
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A JSON file as a jansson value; NULL + message naming the file. */
static json_t *load_json(const char *path, char *err, size_t errlen)
{
	size_t len;
	char *text = st_read_file(path, &len);
	if (!text) {
		model_seterr(err, errlen, "%s: %s", path, errno == ENOENT ? "missing" : strerror(errno));
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je);
	free(text);
	if (!j)
		model_seterr(err, errlen, "%s: bad JSON at line %d: %s", path, je.line, je.text);
	return j;
}

/* A JSON value written as Python's json.dump(indent=2) does; sorted keys for Hugging Face's config.json. */
/* Writes j (and releases it) as DIR/NAME, indented as Python's json.dump(indent=2); sort: keys sorted; newline:
 * a final newline (transformers' config.json has one, sentence-transformers' files do not). */
static int save_json(const char *dir, const char *name, json_t *j, int sort, int newline, char *err, size_t errlen)
{
	char path[PATH_MAX];
	join(path, dir, name);
	char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(15) | (sort ? JSON_SORT_KEYS : 0));
	json_decref(j);
	if (!text) {
		model_seterr(err, errlen, "%s: cannot format JSON", path);
		return -1;
	}
	size_t len = strlen(text);
	text = xrealloc(text, len + 2);
	if (newline)
		text[len++] = '\n';
	int rc = st_write_file_atomic(path, text, len);
	free(text);
	if (rc < 0)
		model_seterr(err, errlen, "%s: %s", path, strerror(errno));
	return rc;
}

static int write_text(const char *path, const char *text, size_t len, char *err, size_t errlen)
{
	if (st_write_file_atomic(path, text, len) < 0) {
		model_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int copy_file(const char *from, const char *to, char *err, size_t errlen)
{
	size_t len;
	char *data = st_read_file(from, &len);
	if (!data) {
		model_seterr(err, errlen, "%s: %s", from, strerror(errno));
		return -1;
	}
	int rc = write_text(to, data, len, err, errlen);
	free(data);
	return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void shape_str(char *out, size_t n, int ndim, const int64_t *shape)
{
	size_t k = snprintf(out, n, "[");
	for (int i = 0; i < ndim && k < n; i++)
		k += snprintf(out + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
	if (k < n)
		snprintf(out + k, n - k, "]");
}

/* 0 when tensor e of weights w has the shape that why needs; -1 + message. */
static int check_shape(weights *w, const wt_tensor *e, int ndim, const int64_t *shape, const char *why, char *err,
		       size_t errlen)
{
	int same = e->ndim == ndim;
	for (int i = 0; same && i < ndim; i++)
		same = e->shape[i] == shape[i];
	if (!same) {
		char got[96], want[96];
		shape_str(got, sizeof got, e->ndim, e->shape);
		shape_str(want, sizeof want, ndim, shape);
		model_seterr(err, errlen, "%s: tensor %s has shape %s but %s needs %s", weights_part_path(w, e), e->name,
			     got, why, want);
		return -1;
	}
	return 0;
}

/* Reads tensor e of weights w into out after checking its shape. */
static int read_tensor(weights *w, const wt_tensor *e, int ndim, const int64_t *shape, float *out, const char *why,
		       char *err, size_t errlen)
{
	if (check_shape(w, e, ndim, shape, why, err, errlen) < 0)
		return -1;
	return weights_read_f32(w, e, out, err, errlen);
}

/* Transparent huge pages for the parameter buffer where the kernel offers them on request: filling it (the
 * first batch gathering query/key/value, st-step's copy) then costs one page fault per 2 MiB, not per 4 KiB. */
static void huge_pages(void *p, size_t len)
{
#ifdef MADV_HUGEPAGE
	uintptr_t page = 2u << 20, b = ((uintptr_t)p + page - 1) & ~(page - 1), e = ((uintptr_t)p + len) & ~(page - 1);
	if (e > b)
		madvise((void *)b, e - b, MADV_HUGEPAGE);   /* advice only: nothing changes where it is refused */
#else
	(void)p, (void)len;
#endif
}

/* ST_WEIGHTS=copy: every tensor copied into the model's own buffer, none used in place (for tests and
 * for comparing the two paths). */
static int weights_in_place_allowed(void)
{
	const char *v = getenv("ST_WEIGHTS");
	return !(v && !strcmp(v, "copy"));
}

/* The name a tensor of a Hugging Face checkpoint has in sentence-transformers' saved BertModel: without the
 * task model's prefix, with the TF-era LayerNorm.gamma/beta names mapped. Empty for other modules' tensors
 * (MLM and classifier heads), which are ignored. */
static void canonical_name(const char *name, char *out, size_t n)
{
	static const char *prefixes[] = { "bert.", "roberta.", "distilbert.", "xlm-roberta.", "camembert.", "mpnet.", "model.", NULL };
	for (int i = 0; prefixes[i]; i++)
		if (!strncmp(name, prefixes[i], strlen(prefixes[i]))) {
			name += strlen(prefixes[i]);
			break;
		}
	if (strncmp(name, "embeddings.", 11) && strncmp(name, "encoder.", 8) && strncmp(name, "transformer.", 12) &&
	    strncmp(name, "pooler.", 7)) {
		*out = 0;
		return;
	}
	snprintf(out, n, "%s", name);
	size_t len = strlen(out);
	if (len + 1 < n && len >= 15 && !strcmp(out + len - 15, "LayerNorm.gamma"))
		strcpy(out + len - 5, "weight");
	else if (len >= 14 && !strcmp(out + len - 14, "LayerNorm.beta"))
		strcpy(out + len - 4, "bias");
}

static int is_float_dtype(const char *dt)
{
	return !strcmp(dt, "F32") || !strcmp(dt, "F16") || !strcmp(dt, "BF16") || !strcmp(dt, "F64");
}

/* The Transformer folder's weights (model.safetensors, pytorch_model.bin or a sharded index: lib/weights.h)
 * -> the encoder's tensors and m->pooler. A float32 tensor that the mapped file holds aligned is used where it
 * lies (m->at[k] points into the map, kept open as m->wt); any other is converted into m->params at its offset,
 * which is allocated whole but only touched there (untouched pages cost nothing). When no tensor is used in
 * place, m->at is dropped and m->params holds everything, as for a model that was copied. */
static int load_encoder_weights(st_model *m, const char *tdir, char *err, size_t errlen)
{
	weights *f = weights_open(tdir, err, errlen);
	if (!f)
		return -1;
	const char *path = weights_path(f);
	const enc_config *c = &m->enc;
	int np = enc_param_table(c, NULL);
	enc_param *tab = xcalloc(np, sizeof *tab);
	enc_param_table(c, tab);
	const wt_tensor **found = xcalloc(np, sizeof *found);
	const wt_tensor *pool_w = NULL, *pool_b = NULL;
	char why[160];
	snprintf(why, sizeof why, "config.json (%s, hidden %d, %d layers, vocab %d)", c->model_type, c->hidden,
		 c->layers, c->vocab_size);
	int rc = -1;
	for (int i = 0; i < weights_count(f); i++) {
		const wt_tensor *e = weights_at(f, i);
		char canon[256];
		canonical_name(e->name, canon, sizeof canon);
		if (!*canon)
			continue;
		if (!strcmp(canon, "pooler.dense.weight")) { pool_w = e; continue; }
		if (!strcmp(canon, "pooler.dense.bias")) { pool_b = e; continue; }
		int k = enc_param_find(c, canon);
		if (k < 0) {
			if (!is_float_dtype(e->dtype) || strstr(canon, "position_ids") || strstr(canon, "pooler."))
				continue;   /* buffers (position_ids) and unknown pooler parts */
			model_seterr(err, errlen, "%s: tensor %s does not belong to the model that %s describes", path,
				     e->name, why);
			goto out;
		}
		if (found[k] && !strcmp(found[k]->name, canon))
			continue;   /* an unprefixed copy wins over a prefixed one */
		found[k] = e;
	}
	m->params = xmalloc(xmul(m->n_enc, sizeof(float)));
	m->owns_params = 1;
	m->n_params = m->n_enc;
	huge_pages(m->params, m->n_enc * sizeof(float));
	m->at = xcalloc(np, sizeof *m->at);
	int in_place = 0, allowed = weights_in_place_allowed();
	for (int k = 0; k < np; k++) {
		if (!found[k]) {
			model_seterr(err, errlen, "%s: tensor %s is missing (needed by %s)", path, tab[k].name, why);
			goto out;
		}
		const float *p = allowed ? weights_f32_in_place(f, found[k]) : NULL;
		if (p) {
			if (check_shape(f, found[k], tab[k].ndim, tab[k].shape, why, err, errlen) < 0)
				goto out;
			m->at[k] = p;
			in_place++;
		} else {
			if (read_tensor(f, found[k], tab[k].ndim, tab[k].shape, m->params + tab[k].offset, why, err,
					errlen) < 0)
				goto out;
			m->at[k] = m->params + tab[k].offset;
		}
	}
	if (c->arch != ENC_DISTILBERT) {
		/* The pooler is unused but part of BertModel: keep it (or make one) so Python loads without warnings.
		 * Where the map holds it as float32, it stays there (like the encoder's tensors) until saved. */
		int H = c->hidden;
		int64_t sw[2] = { H, H }, sb[1] = { H };
		const float *pw = allowed && pool_w && pool_b ? weights_f32_in_place(f, pool_w) : NULL;
		const float *pb = pw ? weights_f32_in_place(f, pool_b) : NULL;
		if (pw && pb) {
			if (check_shape(f, pool_w, 2, sw, why, err, errlen) < 0 ||
			    check_shape(f, pool_b, 1, sb, why, err, errlen) < 0)
				goto out;
			m->pooler_w_at = pw;
			m->pooler_b_at = pb;
			in_place++;
		} else {
			m->pooler = xmalloc(xmul((size_t)H * H + H, sizeof(float)));
			if (pool_w && pool_b) {
				if (read_tensor(f, pool_w, 2, sw, m->pooler, why, err, errlen) < 0 ||
				    read_tensor(f, pool_b, 1, sb, m->pooler + (size_t)H * H, why, err, errlen) < 0)
					goto out;
			} else {
				model_fill_normal(m->pooler, (size_t)H * H, c->initializer_range, 0x706f6f6c6572ull);
				memset(m->pooler + (size_t)H * H, 0, sizeof(float) * H);
			}
		}
	}
	if (in_place) {
		m->wt = f;   /* kept open: tensors are read from it */
		f = NULL;
	} else {
		free(m->at);
		m->at = NULL;
	}
	rc = 0;
out:
	if (rc)   /* the map closes below */
		m->pooler_w_at = m->pooler_b_at = NULL;
	free(found);
	free(tab);
	weights_close(f);
	return rc;
}

static int json_int(const json_t *obj, const char *key, int *out)
{
	json_t *v = json_object_get(obj, key);
	if (!json_is_integer(v))
		return -1;
	*out = (int)json_integer_value(v);
	return 0;
}

static int json_flag(const json_t *obj, const char *key, int dflt)
{
	json_t *v = json_object_get(obj, key);
	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* The Transformer module: config.json, sentence_bert_config.json, weights. */
static int load_transformer(st_model *m, const char *tdir, char *err, size_t errlen)
{
	char path[PATH_MAX], msg[512];
	m->dir = xstrdup(tdir);
	join(path, tdir, "config.json");
	if (!(m->hf_config = load_json(path, err, errlen)))
		return -1;
	char *text = json_dumps(m->hf_config, 0);
	int rc = enc_config_parse(&m->enc, text, strlen(text), msg, sizeof msg);
	free(text);
	if (rc < 0) {
		model_seterr(err, errlen, "%s: %s", path, msg);
		return -1;
	}
	m->n_enc = enc_num_params(&m->enc);
	m->max_seq_length = enc_max_length(&m->enc);
	join(path, tdir, "tokenizer_config.json");
	if (exists(path)) {
		json_t *tc = load_json(path, err, errlen);
		int n;
		if (!tc)
			return -1;
		if (json_int(tc, "model_max_length", &n) == 0 && n > 0 && n < m->max_seq_length)
			m->max_seq_length = n;
		json_decref(tc);
	}
	for (int i = 0; sbert_config_files[i]; i++) {
		join(path, tdir, sbert_config_files[i]);
		if (!exists(path))
			continue;
		json_t *sc = load_json(path, err, errlen);
		if (!sc)
			return -1;
		int n;
		if (json_int(sc, "max_seq_length", &n) == 0) {
			if (n <= 0) {
				model_seterr(err, errlen, "%s: max_seq_length %d is not positive", path, n);
				json_decref(sc);
				return -1;
			}
			/* longer than the position table cannot run */
			m->max_seq_length = n < enc_max_length(&m->enc) ? n : enc_max_length(&m->enc);
		}
		m->do_lower_case = json_flag(sc, "do_lower_case", 0);
		json_decref(sc);
		break;
	}
	return load_encoder_weights(m, tdir, err, errlen);
}

static int load_pooling(st_model *m, const char *pdir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	join(path, pdir, "config.json");
	json_t *pc = load_json(path, err, errlen);
	if (!pc)
		return -1;
	int wed, modes = 0, bit;
	if (json_int(pc, "word_embedding_dimension", &wed) < 0) {
		model_seterr(err, errlen, "%s: word_embedding_dimension missing", path);
		json_decref(pc);
		return -1;
	}
	for (int i = 0; i < 6; i++) {
		const char *key = model_pool_key(i, &bit);
		if (json_flag(pc, key, 0))
			modes |= bit;
	}
	m->include_prompt = json_flag(pc, "include_prompt", 1);
	json_decref(pc);
	if (wed != m->enc.hidden) {
		model_seterr(err, errlen, "%s: word_embedding_dimension %d disagrees with the transformer's hidden size %d "
			     "(config.json)", path, wed, m->enc.hidden);
		return -1;
	}
	if (!modes) {
		model_seterr(err, errlen, "%s: no pooling mode is enabled", path);
		return -1;
	}
	model_set_pooling(m, modes);
	return 0;
}

static int load_dense(st_model *m, const char *ddir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	join(path, ddir, "config.json");
	json_t *dc = load_json(path, err, errlen);
	if (!dc)
		return -1;
	int in, out, act = MODEL_ACT_TANH;   /* Dense's default activation */
	int bias = json_flag(dc, "bias", 1);
	json_t *a = json_object_get(dc, "activation_function");
	int bad = json_int(dc, "in_features", &in) < 0 || json_int(dc, "out_features", &out) < 0 || in <= 0 || out <= 0;
	if (!bad && json_is_string(a) && (act = model_activation_parse(json_string_value(a))) < 0) {
		model_seterr(err, errlen, "%s: unsupported activation_function %s (Identity, Tanh, ReLU, GELU, Sigmoid)",
			     path, json_string_value(a));
		json_decref(dc);
		return -1;
	}
	json_decref(dc);
	if (bad) {
		model_seterr(err, errlen, "%s: in_features and out_features must be positive integers", path);
		return -1;
	}
	if (in != model_dim(m)) {
		model_seterr(err, errlen, "%s: in_features %d but the module before it gives %d", path, in, model_dim(m));
		return -1;
	}
	model_add_dense(m, out, act, bias, 0);
	struct model_head *h = &m->heads[m->nheads - 1];
	weights *f = weights_open(ddir, err, errlen);
	if (!f)
		return -1;
	snprintf(path, sizeof path, "%s", weights_path(f));
	int rc = -1;
	char why[64];
	snprintf(why, sizeof why, "config.json (%d -> %d)", in, out);
	int64_t sw[2] = { out, in }, sb[1] = { out };
	const wt_tensor *w = weights_find(f, "linear.weight"), *b = weights_find(f, "linear.bias");
	if (!w)
		model_seterr(err, errlen, "%s: tensor linear.weight is missing", path);
	else if (bias && !b)
		model_seterr(err, errlen, "%s: tensor linear.bias is missing (config.json says bias: true)", path);
	else if (read_tensor(f, w, 2, sw, m->params + h->w_off, why, err, errlen) == 0 &&
		 (!bias || read_tensor(f, b, 1, sb, m->params + h->b_off, why, err, errlen) == 0))
		rc = 0;
	weights_close(f);
	return rc;
}

/* "sentence_transformers.models.Pooling" -> "Pooling" */
static const char *class_name(const char *type)
{
	const char *dot = strrchr(type, '.');
	return dot ? dot + 1 : type;
}

/* An absolute path, or one with a ".." component: it can lead outside the directory it is relative to. */
static int path_climbs(const char *p)
{
	if (p[0] == '/')
		return 1;
	for (const char *c = p; *c;) {
		size_t n = strcspn(c, "/");
		if (n == 2 && c[0] == '.' && c[1] == '.')
			return 1;
		c += n;
		c += *c == '/';
	}
	return 0;
}

st_model *model_load(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX], sub[PATH_MAX];
	if (!is_dir(dir)) {
		model_seterr(err, errlen, "%s: %s", dir, exists(dir) ? "not a directory" : "no such model directory");
		return NULL;
	}
	st_model *m = xcalloc(1, sizeof *m);
	m->include_prompt = 1;
	join(path, dir, "modules.json");
	if (!exists(path)) {
		join(path, dir, "config.json");
		if (!exists(path)) {
			model_seterr(err, errlen, "%s: not a model directory (no modules.json or config.json)", dir);
			goto fail;
		}
		if (load_transformer(m, dir, err, errlen) < 0)
			goto fail;
		model_set_pooling(m, MODEL_POOL_MEAN);   /* as Python does for a plain checkpoint */
		return m;
	}
	json_t *mods = load_json(path, err, errlen);
	if (!mods)
		goto fail;
	if (!json_is_array(mods) || json_array_size(mods) == 0) {
		model_seterr(err, errlen, "%s: expected a list of modules", path);
		json_decref(mods);
		goto fail;
	}
	int have_pooling = 0;
	for (size_t i = 0; i < json_array_size(mods); i++) {
		json_t *mod = json_array_get(mods, i);
		json_t *type = json_object_get(mod, "type"), *mpath = json_object_get(mod, "path");
		if (!json_is_string(type)) {
			model_seterr(err, errlen, "%s: module %zu has no type", path, i);
			goto fail_mods;
		}
		const char *cls = class_name(json_string_value(type));
		const char *mp = json_is_string(mpath) ? json_string_value(mpath) : "";
		/* a module lives inside the model: a path that climbs out of it or starts at / is not followed */
		if (path_climbs(mp)) {
			model_seterr(err, errlen, "%s: module %zu's path \"%s\" leads outside the model directory", path,
				     i, mp);
			goto fail_mods;
		}
		join(sub, dir, mp);
		int rc = 0;
		if (!strcmp(cls, "Transformer")) {
			if (i != 0) {
				model_seterr(err, errlen, "%s: the Transformer must be the first module", path);
				goto fail_mods;
			}
			rc = load_transformer(m, sub, err, errlen);
		} else if (i == 0) {
			model_seterr(err, errlen, "%s: the first module is %s; only Transformer is supported there", path,
				     json_string_value(type));
			goto fail_mods;
		} else if (!strcmp(cls, "Pooling")) {
			if (have_pooling++) {
				model_seterr(err, errlen, "%s: more than one Pooling module", path);
				goto fail_mods;
			}
			rc = load_pooling(m, sub, err, errlen);
		} else if (!have_pooling && (!strcmp(cls, "Dense") || !strcmp(cls, "Normalize"))) {
			model_seterr(err, errlen, "%s: %s before Pooling is not supported", path, cls);
			goto fail_mods;
		} else if (!strcmp(cls, "Dense")) {
			rc = load_dense(m, sub, err, errlen);
		} else if (!strcmp(cls, "Normalize")) {
			if (m->nheads >= MODEL_MAX_HEADS) {
				model_seterr(err, errlen, "%s: too many modules", path);
				goto fail_mods;
			}
			model_add_normalize(m);
		} else {
			model_seterr(err, errlen, "%s: unsupported module type %s (Transformer, Pooling, Dense, Normalize)",
				     path, json_string_value(type));
			goto fail_mods;
		}
		if (rc < 0)
			goto fail_mods;
	}
	json_decref(mods);
	if (!have_pooling) {
		model_seterr(err, errlen, "%s: no Pooling module", path);
		goto fail;
	}
	join(path, dir, "config_sentence_transformers.json");
	if (exists(path) && !(m->st_config = load_json(path, err, errlen)))
		goto fail;
	return m;
fail_mods:
	json_decref(mods);
fail:
	model_free(m);
	return NULL;
}

st_model *model_open(const char *dir)
{
	char err[1024];
	/* a path that exists as it is; else a Hub name, from the cache or downloaded (dies 66 or 74) */
	char *path = hub_model_path(dir);
	st_model *m = model_load(path, err, sizeof err);
	free(path);
	if (!m)
		die(EX_DATAERR, "%s", err);
	return m;
}

/* ---- a new model ---- */

/* The number of embedding rows a tokenizer source needs (lib/tokenizer.h loads it as st-tokenize would). */
static long vocab_count(const char *src, char *err, size_t errlen)
{
	tokenizer *t = tokenizer_load(src, err, errlen);
	if (!t)
		return -1;
	long n = tokenizer_vocab_size(t);
	tokenizer_free(t);
	return n;
}

st_model *model_new_random(const char *config_json, size_t len, const char *tokenizer_src, uint64_t seed,
			   char *err, size_t errlen)
{
	char msg[512];
	json_error_t je;
	if (!exists(tokenizer_src)) {
		model_seterr(err, errlen, "%s: no such file or directory", tokenizer_src);
		return NULL;
	}
	long nvocab = vocab_count(tokenizer_src, err, errlen);
	if (nvocab < 0)
		return NULL;
	json_t *cfg = json_loadb(config_json, len, 0, &je);
	if (!json_is_object(cfg)) {
		model_seterr(err, errlen, "config: bad JSON at line %d: %s", je.line, cfg ? "not an object" : je.text);
		json_decref(cfg);
		return NULL;
	}
	/* a config written by hand may leave the vocabulary size to the tokenizer */
	if (!json_object_get(cfg, "vocab_size"))
		json_object_set_new(cfg, "vocab_size", json_integer(nvocab));
	st_model *m = xcalloc(1, sizeof *m);
	m->include_prompt = 1;
	m->hf_config = cfg;
	char *text = json_dumps(cfg, 0);
	int rc = enc_config_parse(&m->enc, text, strlen(text), msg, sizeof msg);
	free(text);
	if (rc < 0) {
		model_seterr(err, errlen, "config: %s", msg);
		goto fail;
	}
	if (nvocab > m->enc.vocab_size) {
		model_seterr(err, errlen, "config: vocab_size %d is smaller than the tokenizer's %ld tokens (%s)",
			     m->enc.vocab_size, nvocab, tokenizer_src);
		goto fail;
	}
	m->n_enc = m->n_params = enc_num_params(&m->enc);
	m->params = xmalloc(xmul(m->n_enc, sizeof(float)));
	m->owns_params = 1;
	enc_init_random(&m->enc, m->params, seed);
	if (m->enc.arch != ENC_DISTILBERT) {
		int H = m->enc.hidden;
		m->pooler = xmalloc(xmul((size_t)H * H + H, sizeof(float)));
		model_fill_normal(m->pooler, (size_t)H * H, m->enc.initializer_range, seed ^ 0x706f6f6c6572ull);
		memset(m->pooler + (size_t)H * H, 0, sizeof(float) * H);
	}
	m->max_seq_length = enc_max_length(&m->enc);
	m->tok_src = xstrdup(tokenizer_src);
	if (is_dir(tokenizer_src)) {
		m->dir = xstrdup(tokenizer_src);
	} else {
		char *copy = xstrdup(tokenizer_src), *slash = strrchr(copy, '/');
		if (slash)
			*slash = 0;
		m->dir = slash ? copy : (free(copy), xstrdup("."));
	}
	model_set_pooling(m, MODEL_POOL_MEAN);
	return m;
fail:
	model_free(m);
	return NULL;
}

/* ---- saving ---- */

static const char *architecture_name(const enc_config *c)
{
	if (!strcmp(c->model_type, "xlm-roberta")) return "XLMRobertaModel";
	if (!strcmp(c->model_type, "camembert")) return "CamembertModel";
	switch (c->arch) {
	case ENC_ROBERTA: return "RobertaModel";
	case ENC_DISTILBERT: return "DistilBertModel";
	case ENC_MPNET: return "MPNetModel";
	default: return "BertModel";
	}
}

static int save_tokenizer(const st_model *m, const char *tmp, char *err, size_t errlen)
{
	char from[PATH_MAX], to[PATH_MAX];
	const char *src = m->tok_src ? m->tok_src : m->dir;
	if (!is_dir(src)) {
		/* one vocabulary file: write the full set of tokenizer files Python's AutoTokenizer expects */
		tokenizer *t = tokenizer_load(src, err, errlen);
		if (!t)
			return -1;
		int rc = tokenizer_save(t, tmp, err, errlen);
		tokenizer_free(t);
		return rc;
	}
	for (int i = 0; tokenizer_files[i]; i++) {
		join(from, src, tokenizer_files[i]);
		join(to, tmp, tokenizer_files[i]);
		if (exists(from) && copy_file(from, to, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int save_encoder(const st_model *m, const char *tmp, char *err, size_t errlen)
{
	char path[PATH_MAX];
	const enc_config *c = &m->enc;
	int np = enc_param_table(c, NULL);
	enc_param *tab = xcalloc(np, sizeof *tab);
	enc_param_table(c, tab);
	sft_tensor_f32 *t = xcalloc(np + 2, sizeof *t);
	int n = 0;
	for (int k = 0; k < np; k++, n++) {
		t[n].name = tab[k].name;
		t[n].data = m->at ? m->at[k] : m->params + tab[k].offset;
		t[n].ndim = tab[k].ndim;
		t[n].shape[0] = tab[k].shape[0];
		t[n].shape[1] = tab[k].shape[1];
	}
	if (m->pooler || m->pooler_w_at) {
		t[n] = (sft_tensor_f32){ .name = "pooler.dense.weight", .data = m->pooler ? m->pooler : m->pooler_w_at,
					 .ndim = 2, .shape = { c->hidden, c->hidden } };
		n++;
		t[n] = (sft_tensor_f32){ .name = "pooler.dense.bias",
					 .data = m->pooler ? m->pooler + (size_t)c->hidden * c->hidden : m->pooler_b_at,
					 .ndim = 1, .shape = { c->hidden } };
		n++;
	}
	static const char *const meta[] = { "format", "pt", NULL };
	join(path, tmp, "model.safetensors");
	int rc = sft_write_f32(path, t, n, meta, err, errlen);
	free(t);
	free(tab);
	return rc;
}

static int save_dense(const st_model *m, const struct model_head *h, const char *ddir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	json_t *dc = json_object();
	json_object_set_new(dc, "in_features", json_integer(h->in));
	json_object_set_new(dc, "out_features", json_integer(h->out));
	json_object_set_new(dc, "bias", json_boolean(h->bias));
	json_object_set_new(dc, "activation_function", json_string(model_activation_class(h->act)));
	int rc = save_json(ddir, "config.json", dc, 0, 0, err, errlen);
	if (rc < 0)
		return -1;
	sft_tensor_f32 t[2] = {
		{ .name = "linear.weight", .data = m->params + h->w_off, .ndim = 2, .shape = { h->out, h->in } },
		{ .name = "linear.bias", .data = m->params + h->b_off, .ndim = 1, .shape = { h->out } },
	};
	static const char *const meta[] = { "format", "pt", NULL };
	join(path, ddir, "model.safetensors");
	return sft_write_f32(path, t, h->bias ? 2 : 1, meta, err, errlen);
}

static const char *pybool(int b) { return b ? "True" : "False"; }

/* A short model card in the spirit of Python's (v2 template): what the model is and how it is built. */
static char *model_card(const st_model *m)
{
	size_t cap = 8192, len = 0;
	char *s = xmalloc(cap);
#define CARD(...) do { \
		int k_ = snprintf(s + len, cap - len, __VA_ARGS__); \
		if (k_ >= 0 && (size_t)k_ >= cap - len) { cap = cap * 2 + k_; s = xrealloc(s, cap); \
			snprintf(s + len, cap - len, __VA_ARGS__); } \
		len += k_ > 0 ? k_ : 0; } while (0)
	CARD("---\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\ntags:\n"
	     "- sentence-transformers\n- sentence-similarity\n- feature-extraction\n---\n\n");
	CARD("# SentenceTransformer\n\nThis is a [sentence-transformers](https://www.SBERT.net) model: it maps sentences "
	     "& paragraphs to a %d dimensional dense vector space and can be used for tasks like clustering or "
	     "semantic search.\n\n", model_dim(m));
	CARD("## Model Details\n\n- **Maximum Sequence Length:** %d tokens\n- **Output Dimensionality:** %d dimensions\n"
	     "- **Similarity Function:** Cosine Similarity\n\n", m->max_seq_length, model_dim(m));
	CARD("## Usage\n\n```python\nfrom sentence_transformers import SentenceTransformer\n\n"
	     "model = SentenceTransformer(\"path/to/this/folder\")\nembeddings = model.encode([\"A sentence.\"])\n"
	     "```\n\n");
	CARD("## Full Model Architecture\n\n```\nSentenceTransformer(\n");
	CARD("  (0): Transformer({'max_seq_length': %d, 'do_lower_case': %s}) with Transformer model: %s \n",
	     m->max_seq_length, pybool(m->do_lower_case), architecture_name(&m->enc));
	CARD("  (1): Pooling({'word_embedding_dimension': %d", m->enc.hidden);
	for (int i = 0, bit; i < 6; i++) {
		const char *key = model_pool_key(i, &bit);
		CARD(", '%s': %s", key, pybool(m->pool_modes & bit));
	}
	CARD(", 'include_prompt': %s})\n", pybool(m->include_prompt));
	for (int k = 0; k < m->nheads; k++) {
		const struct model_head *h = &m->heads[k];
		if (h->kind == MODEL_HEAD_DENSE)
			CARD("  (%d): Dense({'in_features': %d, 'out_features': %d, 'bias': %s, 'activation_function': '%s'})\n",
			     k + 2, h->in, h->out, pybool(h->bias), model_activation_class(h->act));
		else
			CARD("  (%d): Normalize()\n", k + 2);
	}
	CARD(")\n```\n");
#undef CARD
	return s;
}

/* Files and folders that model_save writes or replaces; anything else found in the old folder is kept. */
static int model_owned(const char *name)
{
	static const char *owned[] = { "modules.json", "config_sentence_transformers.json", "config.json",
		"model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json",
		"README.md", NULL };
	for (int i = 0; owned[i]; i++)
		if (!strcmp(name, owned[i])) return 1;
	/* shards of the weights read at load ("model-00001-of-00002.safetensors"): model.safetensors replaces them */
	unsigned a, b;
	int end = 0;
	if ((sscanf(name, "model-%5u-of-%5u.safetensors%n", &a, &b, &end) == 2 ||
	     sscanf(name, "pytorch_model-%5u-of-%5u.bin%n", &a, &b, &end) == 2) && end && !name[end])
		return 1;
	for (int i = 0; tokenizer_files[i]; i++)
		if (!strcmp(name, tokenizer_files[i])) return 1;
	for (int i = 0; sbert_config_files[i]; i++)
		if (!strcmp(name, sbert_config_files[i])) return 1;
	/* module folders: "1_Pooling", "2_Dense", "0_Transformer" */
	const char *p = name;
	while (*p >= '0' && *p <= '9') p++;
	return p > name && *p == '_' && p[1];
}

/* Moves entries of old that model_save does not own (training state, checkpoints, notes) into new. */
static int carry_over(const char *old, const char *new, char *err, size_t errlen)
{
	DIR *d = opendir(old);
	if (!d)
		return 0;
	struct dirent *e;
	char from[PATH_MAX], to[PATH_MAX];
	int rc = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || model_owned(e->d_name))
			continue;
		join(from, old, e->d_name);
		join(to, new, e->d_name);
		if (exists(to))
			continue;
		if (rename(from, to) < 0) {
			model_seterr(err, errlen, "%s: cannot move into the new model directory: %s", from, strerror(errno));
			rc = -1;
			break;
		}
	}
	closedir(d);
	return rc;
}

static int make_dir(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0755) < 0) {
		model_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int model_save(const st_model *m, const char *dir_in, char *err, size_t errlen)
{
	char dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX], sub[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", dir_in);
	for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
		dir[n - 1] = 0;
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
	rm_rf(tmp);
	if (make_dir(tmp, err, errlen) < 0)
		return -1;

	/* modules.json */
	json_t *mods = json_array();
	int nmods = 2 + m->nheads;
	for (int i = 0; i < nmods; i++) {
		char name[16], mpath[32];
		const char *type;
		snprintf(name, sizeof name, "%d", i);
		if (i == 0) {
			type = "sentence_transformers.models.Transformer";
			mpath[0] = 0;
		} else if (i == 1) {
			type = "sentence_transformers.models.Pooling";
			snprintf(mpath, sizeof mpath, "1_Pooling");
		} else {
			const struct model_head *h = &m->heads[i - 2];
			type = h->kind == MODEL_HEAD_DENSE ? "sentence_transformers.models.Dense"
							  : "sentence_transformers.models.Normalize";
			snprintf(mpath, sizeof mpath, "%s", h->path);
		}
		json_t *o = json_object();
		json_object_set_new(o, "idx", json_integer(i));
		json_object_set_new(o, "name", json_string(name));
		json_object_set_new(o, "path", json_string(mpath));
		json_object_set_new(o, "type", json_string(type));
		json_array_append_new(mods, o);
	}
	int rc = save_json(tmp, "modules.json", mods, 0, 0, err, errlen);
	if (rc < 0)
		goto fail;

	/* config_sentence_transformers.json: what was read, with the keys Python v5 writes filled in */
	json_t *stc = m->st_config ? json_deep_copy(m->st_config) : json_object();
	json_t *ordered = json_object();
	if (!json_object_get(stc, "__version__")) {
		json_t *ver = json_object();
		json_object_set_new(ver, "sentence_transformers", json_string(MODEL_ST_FORMAT_VERSION));
		json_object_set_new(ordered, "__version__", ver);
	}
	if (!json_object_get(stc, "prompts"))
		json_object_set_new(ordered, "prompts", json_object());
	if (!json_object_get(stc, "default_prompt_name"))
		json_object_set_new(ordered, "default_prompt_name", json_null());
	if (!json_object_get(stc, "similarity_fn_name"))
		json_object_set_new(ordered, "similarity_fn_name", json_string("cosine"));
	if (!json_object_get(stc, "model_type"))
		json_object_set_new(ordered, "model_type", json_string("SentenceTransformer"));
	json_object_update(stc, ordered);   /* keeps stc's order, then the missing keys */
	json_decref(ordered);
	rc = save_json(tmp, "config_sentence_transformers.json", stc, 0, 0, err, errlen);
	if (rc < 0)
		goto fail;

	/* sentence_bert_config.json */
	json_t *sbc = json_object();
	json_object_set_new(sbc, "max_seq_length", json_integer(m->max_seq_length));
	json_object_set_new(sbc, "do_lower_case", json_boolean(m->do_lower_case));
	rc = save_json(tmp, "sentence_bert_config.json", sbc, 0, 0, err, errlen);
	if (rc < 0)
		goto fail;

	/* config.json: as read, naming the base model class Python saves, float32 weights */
	json_t *hfc = json_deep_copy(m->hf_config);
	json_t *arch = json_array();
	json_array_append_new(arch, json_string(architecture_name(&m->enc)));
	json_object_set_new(hfc, "architectures", arch);
	if (!json_object_get(hfc, "model_type"))
		json_object_set_new(hfc, "model_type", json_string(m->enc.model_type));
	json_object_set_new(hfc, json_object_get(hfc, "dtype") ? "dtype" : "torch_dtype", json_string("float32"));
	rc = save_json(tmp, "config.json", hfc, 1, 1, err, errlen);
	if (rc < 0 || save_encoder(m, tmp, err, errlen) < 0 || save_tokenizer(m, tmp, err, errlen) < 0)
		goto fail;

	/* 1_Pooling/config.json, keys in Python's order */
	join(sub, tmp, "1_Pooling");
	if (make_dir(sub, err, errlen) < 0)
		goto fail;
	json_t *pc = json_object();
	json_object_set_new(pc, "word_embedding_dimension", json_integer(m->enc.hidden));
	for (int i = 0, bit; i < 6; i++) {
		const char *key = model_pool_key(i, &bit);
		json_object_set_new(pc, key, json_boolean(m->pool_modes & bit));
	}
	json_object_set_new(pc, "include_prompt", json_boolean(m->include_prompt));
	rc = save_json(sub, "config.json", pc, 0, 0, err, errlen);
	if (rc < 0)
		goto fail;

	for (int k = 0; k < m->nheads; k++) {
		join(sub, tmp, m->heads[k].path);
		if (make_dir(sub, err, errlen) < 0)
			goto fail;
		if (m->heads[k].kind == MODEL_HEAD_DENSE && save_dense(m, &m->heads[k], sub, err, errlen) < 0)
			goto fail;
	}

	char *card = model_card(m);
	join(path, tmp, "README.md");
	rc = write_text(path, card, strlen(card), err, errlen);
	free(card);
	if (rc < 0)
		goto fail;

	/* swap the new folder in; what else was in the old one (training state) moves across */
	if (exists(dir)) {
		if (!is_dir(dir)) {
			model_seterr(err, errlen, "%s: exists and is not a directory", dir);
			goto fail;
		}
		if (carry_over(dir, tmp, err, errlen) < 0)
			goto fail;
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
			rm_rf(tmp);   /* now the old model */
			return 0;
		}
		char old[PATH_MAX];
		snprintf(old, sizeof old, "%s.old.%ld", dir, (long)getpid());
		if (rename(dir, old) < 0) {
			model_seterr(err, errlen, "%s: %s", dir, strerror(errno));
			goto fail;
		}
		if (rename(tmp, dir) < 0) {
			model_seterr(err, errlen, "%s: %s", dir, strerror(errno));
			rename(old, dir);
			goto fail;
		}
		rm_rf(old);
		return 0;
	}
	if (rename(tmp, dir) < 0) {
		model_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	rm_rf(tmp);
	return -1;
}
