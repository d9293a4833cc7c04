/* tokenizer_io.c: loading tokenizers from model directories (tokenizer.json, vocab.txt, vocab.json +
 * merges.txt, and the config files that adjust them) and saving them back in the Hugging Face layout. */
#define _GNU_SOURCE
#define TOKENIZER_INTERNAL
#include "st.h"
#include "tokenizer.h"
#include "mapfile.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


static const char *special_names[TOK_NSPECIAL] = {
	"unk_token", "cls_token", "sep_token", "pad_token", "mask_token", "bos_token", "eos_token",
};

static tokenizer *tok_new(int kind)
{
	tokenizer *t = xcalloc(1, sizeof *t);
	t->kind = kind;
	t->unk_id = -1;
	t->pad_id = -1;   /* until padding or a pad token says */
	t->wp_max_chars = 100;
	t->wp_prefix = xstrdup("##");
	t->bpe_use_regex = 1;
	t->bpe_trim_offsets = 1;
	return t;
}

static void set_special(tokenizer *t, int which, const char *s)
{
	free(t->special[which]);
	t->special[which] = s ? xstrdup(s) : NULL;
}

static int is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *path_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = xmalloc(a + b + 2);
	memcpy(p, dir, a);
	size_t o = a;
	if (a && dir[a - 1] != '/')
		p[o++] = '/';
	memcpy(p + o, name, b + 1);
	return p;
}

/* A JSON file; *root = NULL (and 0) when it does not exist, -1 with err naming file/line when malformed.
 * Config files are read with integers as reals: transformers writes model_max_length as 1e30, which is no
 * 64-bit integer. */
static int load_json_flags(const char *path, json_t **root, int flags, char *err, size_t errlen)
{
	*root = NULL;
	if (!is_file(path))
		return 0;
	json_error_t je;
	size_t n;
	char *text = st_read_file(path, &n);   /* whole, then parsed: json_load_file reads a byte per call */
	if (!text)
		return ERR("%s: %s", path, strerror(errno));
	*root = json_loadb(text, n, flags, &je);
	free(text);
	if (!*root)
		return ERR("%s: %s (line %d, column %d)", path, je.text, je.line, je.column);
	return 0;
}

static int load_json(const char *path, json_t **root, char *err, size_t errlen)
{
	return load_json_flags(path, root, 0, err, errlen);
}

/* ---------------------------------------------------------------- vocabulary */

/* Room in id_tok for ids below n (one allocation when the largest id is known beforehand). */
static void vocab_reserve(tokenizer *t, int n)
{
	if (n > t->nid_cap) {
		int cap = n > 2 * t->nid_cap ? n : 2 * t->nid_cap;
		t->id_tok = xrealloc(t->id_tok, cap * sizeof *t->id_tok);
		memset(t->id_tok + t->nid_cap, 0, (cap - t->nid_cap) * sizeof *t->id_tok);
		t->nid_cap = cap;
	}
}

/* Checks that id is free for tok and makes it a valid index of id_tok; 0 or -1 + message. */
static int vocab_claim(tokenizer *t, int64_t id, const char *tok, const char *file, char *err, size_t errlen)
{
	if (id < 0 || id > 50000000)
		return ERR("%s: id %lld of token \"%.40s\" out of range", file, (long long)id, tok);
	if (id >= t->nid) {
		vocab_reserve(t, (int)id + 1);
		t->nid = (int)id + 1;
	}
	if (t->id_tok[id])
		return ERR("%s: id %lld is given to both \"%.40s\" and \"%.40s\"", file, (long long)id, t->id_tok[id], tok);
	return 0;
}

static int vocab_set(tokenizer *t, int64_t id, const char *tok, size_t len, const char *file, char *err, size_t errlen)
{
	if (vocab_claim(t, id, tok, file, err, errlen))
		return -1;
	char *s = xmalloc(len + 1);
	memcpy(s, tok, len);
	s[len] = 0;
	t->id_tok[id] = s;
	return 0;
}

/* Indexes id_tok into the token -> id map. A token string given twice keeps its larger id (Python's dict
 * built in file order does the same). */
static void vocab_index(tokenizer *t)
{
	tok_map_reserve(&t->vocab, t->vocab.n + (size_t)t->nid);
	for (int i = 0; i < t->nid; i++) {
		if (!t->id_tok[i])
			continue;
		size_t n = strlen(t->id_tok[i]);
		tok_map_put(&t->vocab, t->id_tok[i], n, i);
		if (n > t->vocab_maxlen)
			t->vocab_maxlen = n;
	}
}

static int load_vocab_txt(tokenizer *t, const char *path, char *err, size_t errlen)
{
	size_t len;
	char *buf = st_read_file(path, &len);
	if (!buf)
		return ERR("%s: %s", path, strerror(errno));
	size_t line = 0;
	for (size_t i = 0; i < len;) {
		char *nl = memchr(buf + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - buf) : len;
		line++;
		if (tok_utf8_invalid(buf + i, e - i)) {
			free(buf);
			return ERR("%s: line %zu: invalid UTF-8", path, line);
		}
		if (memchr(buf + i, 0, e - i)) {
			free(buf);
			return ERR("%s: line %zu: NUL byte", path, line);
		}
		/* a token seen twice maps to its later line, as Python's dict does */
		if (vocab_set(t, line - 1, buf + i, e - i, path, err, errlen)) {
			free(buf);
			return -1;
		}
		tok_map_put(&t->vocab, t->id_tok[line - 1], e - i, (int32_t)(line - 1));
		if (e - i > t->vocab_maxlen)
			t->vocab_maxlen = e - i;
		i = e + 1;
	}
	free(buf);
	if (!t->nid)
		return ERR("%s: empty vocabulary", path);
	return 0;
}

static int load_vocab_json(tokenizer *t, json_t *vocab, const char *file, char *err, size_t errlen)
{
	if (!json_is_object(vocab))
		return ERR("%s: vocab is not an object of token: id", file);
	const char *key;
	json_t *val;
	json_object_foreach(vocab, key, val) {
		if (!json_is_integer(val))
			return ERR("%s: vocab entry \"%.40s\" has no integer id", file, key);
		if (vocab_set(t, json_integer_value(val), key, strlen(key), file, err, errlen))
			return -1;
	}
	if (!t->nid)
		return ERR("%s: empty vocabulary", file);
	vocab_index(t);
	return 0;
}

/* ---------------------------------------------------------------- tokenizer.json: the vocab without jansson
 *
 * A tokenizer.json is mostly its model's vocab (30k to 250k entries). Through jansson every entry becomes a
 * json_t, a hash table slot and a few mallocs, all freed again: most of a tool's start-up. So the loader finds
 * the vocab value by a structural scan, decodes it here into (token, id) or (piece, score) pairs, and lets
 * jansson parse the rest with the vocab replaced by an empty value of the same kind. Anything unusual (an
 * escape or byte jansson would refuse, a duplicate key, a number that is no plain integer, a key written with
 * escapes) gives up, and the file is loaded by jansson whole: results and messages stay those of that path. */

typedef struct fast_vocab {
	int kind;          /* '{': {token: id, ...}; '[': [[piece, score], ...] */
	size_t n, cap;
	char *arena;       /* the tokens, decoded and NUL-terminated one after another, in one block: owned until
			      handed to the tokenizer (its vocab_arena), so that 30k tokens are not 30k mallocs */
	size_t arena_len;
	uint32_t *off;     /* token i at arena + off[i] */
	int32_t *id;       /* '{' */
	double *score;     /* '[' */
} fast_vocab;

static void fast_vocab_free(fast_vocab *v)
{
	free(v->arena), free(v->off), free(v->id), free(v->score);
	memset(v, 0, sizeof *v);
}

static const char *js_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

/* p at '"': the byte after the closing quote, or NULL. *plain: no backslash inside. */
static const char *js_skip_string(const char *p, const char *end, int *plain)
{
	*plain = 1;
	for (p++; p < end; p++) {
		if (*p == '"')
			return p + 1;
		if (*p == '\\') {
			*plain = 0;
			p++;
		}
	}
	return NULL;
}

/* Any JSON value (checked only as far as finding its end; jansson or the decoders check the rest). */
static const char *js_skip_value(const char *p, const char *end, int depth)
{
	int plain;
	p = js_ws(p, end);
	if (p >= end || depth > 512)
		return NULL;
	if (*p == '"')
		return js_skip_string(p, end, &plain);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		p = js_ws(p + 1, end);
		if (p < end && *p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				p = js_ws(p, end);
				if (p >= end || *p != '"' || !(p = js_skip_string(p, end, &plain)))
					return NULL;
				p = js_ws(p, end);
				if (p >= end || *p++ != ':')
					return NULL;
			}
			if (!(p = js_skip_value(p, end, depth + 1)))
				return NULL;
			p = js_ws(p, end);
			if (p >= end)
				return NULL;
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	}
	while (p < end && !strchr(" \t\r\n,]}", *p))
		p++;
	return p;
}

/* Walks the object at p (whitespace before it allowed): the value of key goes to take(), which returns the
 * byte after it (NULL to give up); the other values are skipped. The byte after the object; NULL when key is
 * missing, there twice or written with escapes, or on anything malformed. One pass, so that the vocab is read
 * once rather than skipped by each level and then decoded. */
typedef const char *js_take_fn(const char *v, const char *end, void *ctx);
static const char *js_walk(const char *p, const char *end, const char *key, js_take_fn *take, void *ctx)
{
	size_t klen = strlen(key);
	int found = 0, plain;
	p = js_ws(p, end);
	if (p >= end || *p != '{')
		return NULL;
	p = js_ws(p + 1, end);
	if (p < end && *p == '}')
		return NULL;
	for (;;) {
		if (p >= end || *p != '"')
			return NULL;
		const char *k = p + 1, *ke = js_skip_string(p, end, &plain);
		if (!ke || !plain)
			return NULL;
		p = js_ws(ke, end);
		if (p >= end || *p++ != ':')
			return NULL;
		p = js_ws(p, end);
		if ((size_t)(ke - 1 - k) == klen && !memcmp(k, key, klen)) {
			if (found++)
				return NULL;
			p = take(p, end, ctx);
		} else
			p = js_skip_value(p, end, 1);
		if (!p)
			return NULL;
		p = js_ws(p, end);
		if (p >= end)
			return NULL;
		if (*p == '}')
			return found ? p + 1 : NULL;
		if (*p++ != ',')
			return NULL;
		p = js_ws(p, end);
	}
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9') v |= c - '0';
		else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
		else return -1;
	}
	*out = v;
	return 0;
}

/* p at '"': decodes the string into out (room for its raw length + 1: decoding never lengthens it),
 * NUL-terminated, its length in *outlen; the byte after the closing quote, or NULL where jansson would refuse
 * it (raw control characters, \\u0000, lone surrogates, invalid UTF-8) or on anything else unexpected. */
static const char *js_string(const char *p, const char *end, char *out, size_t *outlen)
{
	const char *q = ++p;
	int plain = 1;
	while (q < end && *q != '"') {
		if ((unsigned char)*q < 0x20)
			return NULL;
		if (*q == '\\') {
			plain = 0;
			q++;
		}
		q++;
	}
	if (q >= end)
		return NULL;
	char *o = out;
	if (plain) {
		memcpy(o, p, (size_t)(q - p));
		o += q - p;
	} else {
		while (p < q) {
			if (*p != '\\') {
				*o++ = *p++;
				continue;
			}
			p++;
			char c = *p++;
			switch (c) {
			case '"': case '\\': case '/': *o++ = c; break;
			case 'b': *o++ = '\b'; break;
			case 'f': *o++ = '\f'; break;
			case 'n': *o++ = '\n'; break;
			case 'r': *o++ = '\r'; break;
			case 't': *o++ = '\t'; break;
			case 'u': {
				unsigned u, lo;
				if (q - p < 4 || hex4(p, &u) < 0)
					return NULL;
				p += 4;
				if (u >= 0xDC00 && u <= 0xDFFF)
					return NULL;
				if (u >= 0xD800 && u <= 0xDBFF) {
					if (q - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 || lo < 0xDC00 ||
					    lo > 0xDFFF)
						return NULL;
					p += 6;
					u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
				}
				if (u == 0)
					return NULL;
				if (u < 0x80) {
					*o++ = (char)u;
				} else if (u < 0x800) {
					*o++ = (char)(0xC0 | u >> 6);
					*o++ = (char)(0x80 | (u & 0x3F));
				} else if (u < 0x10000) {
					*o++ = (char)(0xE0 | u >> 12);
					*o++ = (char)(0x80 | (u >> 6 & 0x3F));
					*o++ = (char)(0x80 | (u & 0x3F));
				} else {
					*o++ = (char)(0xF0 | u >> 18);
					*o++ = (char)(0x80 | (u >> 12 & 0x3F));
					*o++ = (char)(0x80 | (u >> 6 & 0x3F));
					*o++ = (char)(0x80 | (u & 0x3F));
				}
				break;
			}
			default:
				return NULL;
			}
		}
	}
	*o = 0;
	*outlen = (size_t)(o - out);
	if (tok_utf8_invalid(out, *outlen))
		return NULL;
	return q + 1;
}

/* A plain JSON integer (what jansson makes a json_integer of): -?(0|[1-9][0-9]*), at most 18 digits. */
static const char *js_int(const char *p, const char *end, int64_t *out)
{
	int neg = p < end && *p == '-';
	p += neg;
	const char *d = p;
	int64_t v = 0;
	while (p < end && *p >= '0' && *p <= '9' && p - d < 19)
		v = v * 10 + (*p++ - '0');
	if (p == d || p - d > 18 || (*d == '0' && p - d > 1) || (p < end && strchr(".eE0123456789", *p)))
		return NULL;
	*out = neg ? -v : v;
	return p;
}

/* A JSON number as jansson reads it (strtod in the C locale: st never changes LC_NUMERIC). */
static const char *js_number(const char *p, const char *end, double *out)
{
	char buf[64];
	size_t n = 0;
	const char *s = p;
	if (p < end && *p == '-')
		p++;
	if (p >= end || *p < '0' || *p > '9' || (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9'))
		return NULL;
	while (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-'))
		p++;
	n = (size_t)(p - s);
	if (n >= sizeof buf)
		return NULL;
	memcpy(buf, s, n);
	buf[n] = 0;
	char *e;
	errno = 0;
	*out = strtod(buf, &e);
	if (*e || errno)
		return NULL;
	return p;
}

/* Decodes the vocab value at p (its '{' or '['), at most up to end: the byte after it, or NULL to give up.
 * Sized once from the bytes left (an entry takes 5 or more of them, its decoded token no more than its text):
 * the blocks are mostly left untouched, and untouched pages cost nothing. */
static const char *fast_vocab_decode(fast_vocab *v, const char *p, const char *end)
{
	size_t room = (size_t)(end - p);
	if (room >= UINT32_MAX)
		return NULL;
	v->kind = *p;
	v->cap = room / 5 + 1;
	v->arena = xmalloc(room + 1);
	v->off = xmalloc(v->cap * sizeof *v->off);
	if (v->kind == '{')
		v->id = xmalloc(v->cap * sizeof *v->id);
	else
		v->score = xmalloc(v->cap * sizeof *v->score);
	p = js_ws(p + 1, end);
	char close = v->kind == '{' ? '}' : ']';
	if (p < end && *p == close)
		return NULL;   /* empty: the plain path says so */
	size_t used = 0;
	for (;;) {
		size_t len;
		if (v->n == v->cap)
			return NULL;
		if (v->kind == '{') {
			int64_t id;
			if (p >= end || *p != '"' || !(p = js_string(p, end, v->arena + used, &len)))
				return NULL;
			p = js_ws(p, end);
			if (p >= end || *p++ != ':' || !(p = js_int(js_ws(p, end), end, &id)) || id < INT32_MIN ||
			    id > INT32_MAX)
				return NULL;
			v->id[v->n] = (int32_t)id;
		} else {
			double score;
			if (p >= end || *p != '[')
				return NULL;
			p = js_ws(p + 1, end);
			if (p >= end || *p != '"' || !(p = js_string(p, end, v->arena + used, &len)))
				return NULL;
			p = js_ws(p, end);
			if (p >= end || *p++ != ',' || !(p = js_number(js_ws(p, end), end, &score)))
				return NULL;
			p = js_ws(p, end);
			if (p >= end || *p++ != ']')
				return NULL;
			v->score[v->n] = score;
		}
		v->off[v->n++] = (uint32_t)used;
		used += len + 1;
		p = js_ws(p, end);
		if (p >= end)
			return NULL;
		if (*p == close) {
			v->arena_len = used;
			return p + 1;
		}
		if (*p++ != ',')
			return NULL;
		p = js_ws(p, end);
	}
}

struct vocab_found {
	fast_vocab *v;
	const char *vocab, *vend;   /* where the vocab value lies */
};

static const char *take_vocab(const char *p, const char *end, void *ctx)
{
	struct vocab_found *f = ctx;
	if (p >= end || (*p != '{' && *p != '['))
		return NULL;
	const char *e = fast_vocab_decode(f->v, p, end);
	if (e)
		f->vocab = p, f->vend = e;
	return e;
}

static const char *take_model(const char *p, const char *end, void *ctx)
{
	return js_walk(p, end, "vocab", take_vocab, ctx);
}

/* text with root.model.vocab decoded into v and replaced by an empty value ("{}" or "[]") in *rest
 * (malloc'd); -1 when the file is not one this path takes (then jansson reads it whole). */
static int fast_vocab_split(const char *text, size_t n, fast_vocab *v, char **rest, size_t *restlen)
{
	const char *end = text + n;
	struct vocab_found f = { v, NULL, NULL };
	const char *after = js_walk(text, end, "model", take_model, &f);
	if (!after || !f.vocab || js_ws(after, end) != end) {
		fast_vocab_free(v);
		return -1;
	}
	const char *vocab = f.vocab, *vend = f.vend;
	size_t head = (size_t)(vocab - text), tail = (size_t)(end - vend);
	char *r = xmalloc(head + 2 + tail + 1);
	memcpy(r, text, head);
	r[head] = *vocab;
	r[head + 1] = *vocab == '{' ? '}' : ']';
	memcpy(r + head + 2, vend, tail);
	r[head + 2 + tail] = 0;
	*rest = r;
	*restlen = head + 2 + tail;
	return 0;
}

/* The decoded vocab into t (ids and index, as load_vocab_json / load_unigram do): the tokens stay in v's
 * block, which t takes over (vocab_arena). -1 + message, or -2 when a token appears twice (jansson would have
 * kept only the last: the caller takes the plain path). */
static int fast_vocab_apply(tokenizer *t, fast_vocab *v, const char *file, char *err, size_t errlen)
{
	if (t->vocab_arena || !v->arena)
		return -2;   /* not expected: one vocab per tokenizer */
	int64_t top = -1;
	for (size_t i = 0; i < v->n; i++) {
		int64_t id = v->kind == '{' ? v->id[i] : (int64_t)i;
		top = id > top ? id : top;
	}
	if (top < 50000000)
		vocab_reserve(t, (int)top + 1);
	t->vocab_arena = v->arena;
	t->vocab_arena_len = v->arena_len;
	v->arena = NULL;
	for (size_t i = 0; i < v->n; i++) {
		char *tok = t->vocab_arena + v->off[i];
		int64_t id = v->kind == '{' ? v->id[i] : (int64_t)i;
		if (vocab_claim(t, id, tok, file, err, errlen))
			return -1;
		t->id_tok[id] = tok;
	}
	size_t before = t->vocab.n;
	vocab_index(t);
	if (v->kind == '{' && t->vocab.n - before != v->n)
		return -2;
	return 0;
}

/* ---------------------------------------------------------------- model finishing */

static void wordpiece_finish(tokenizer *t)
{
	size_t plen = strlen(t->wp_prefix);
	size_t ncont = 0;
	for (size_t i = 0; i < t->vocab.cap && plen; i++)
		ncont += t->vocab.slots[i].key && t->vocab.slots[i].len > plen &&
			 !memcmp(t->vocab.slots[i].key, t->wp_prefix, plen);
	tok_map_reserve(&t->wp_cont, t->wp_cont.n + ncont);
	for (size_t i = 0; i < t->vocab.cap; i++) {
		tok_slot *s = &t->vocab.slots[i];
		if (s->key && plen && s->len > plen && !memcmp(s->key, t->wp_prefix, plen)) {
			tok_map_put(&t->wp_cont, s->key + plen, s->len - plen, s->val);
			if (s->len - plen > t->wp_cont_maxlen)
				t->wp_cont_maxlen = s->len - plen;
		}
	}
}

/* unit: "line" (merges.txt) or "merge" (index in tokenizer.json's list), for messages */
static int add_merge(tokenizer *t, const char *a, size_t na, const char *b, size_t nb, const char *file,
		     const char *unit, size_t line, char *err, size_t errlen)
{
	int32_t ia = tok_map_get(&t->vocab, a, na), ib = tok_map_get(&t->vocab, b, nb);
	if (ia < 0)
		return ERR("%s: %s %zu: \"%.*s\" is not in the vocabulary", file, unit, line, (int)na, a);
	if (ib < 0)
		return ERR("%s: %s %zu: \"%.*s\" is not in the vocabulary", file, unit, line, (int)nb, b);
	char *ab = xmalloc(na + nb + 1);
	memcpy(ab, a, na);
	memcpy(ab + na, b, nb);
	int32_t m = tok_map_get(&t->vocab, ab, na + nb);
	if (m < 0) {
		int e = ERR("%s: %s %zu: \"%.*s\" is not in the vocabulary", file, unit, line, (int)(na + nb), ab);
		free(ab);
		return e;
	}
	free(ab);
	int32_t r, mm;
	if (tok_pairs_get(&t->merges, ia, ib, &r, &mm))
		return 0;   /* a repeated pair keeps its first rank */
	tok_pairs_put(&t->merges, ia, ib, t->nmerges, m);
	if (t->nmerges == t->merge_cap) {
		t->merge_cap = t->merge_cap ? 2 * t->merge_cap : 1024;
		t->merge_list = xrealloc(t->merge_list, (size_t)t->merge_cap * 2 * sizeof *t->merge_list);
	}
	t->merge_list[2 * t->nmerges] = ia;
	t->merge_list[2 * t->nmerges + 1] = ib;
	t->nmerges++;
	return 0;
}

static int load_merges_txt(tokenizer *t, const char *path, char *err, size_t errlen)
{
	size_t len;
	char *buf = st_read_file(path, &len);
	if (!buf)
		return ERR("%s: %s", path, strerror(errno));
	size_t line = 0;
	int rc = 0;
	for (size_t i = 0; i < len && !rc;) {
		char *nl = memchr(buf + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - buf) : len;
		line++;
		size_t n = e - i;
		if (n && buf[i + n - 1] == '\r')
			n--;
		const char *s = buf + i;
		i = e + 1;
		if (!n || (line == 1 && n >= 8 && !memcmp(s, "#version", 8)))
			continue;
		const char *sp = memchr(s, ' ', n);
		if (!sp || sp == s || sp == s + n - 1 || memchr(sp + 1, ' ', s + n - sp - 1)) {
			rc = ERR("%s: line %zu: expected two tokens separated by one space", path, line);
			break;
		}
		if (tok_utf8_invalid(s, n)) {
			rc = ERR("%s: line %zu: invalid UTF-8", path, line);
			break;
		}
		rc = add_merge(t, s, sp - s, sp + 1, s + n - sp - 1, path, "line", line, err, errlen);
	}
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------- added and special tokens */

/* Adds an added token with the id its file gives (ids from a vocabulary are valid by construction; ids from
 * tokenizer.json's added_tokens are checked by the caller). A token given twice keeps its first id, as the
 * Hugging Face AddedVocabulary does. */
static void add_added(tokenizer *t, const char *content, int32_t id, int special, int lstrip, int rstrip,
		      int single_word, int normalized)
{
	size_t len = strlen(content);
	if (!len)
		return;
	for (int k = 0; k < t->nadded; k++)
		if (!strcmp(t->added[k].content, content))
			return;
	t->added = xrealloc(t->added, (t->nadded + 1) * sizeof *t->added);
	t->added[t->nadded++] = (tok_added){ xstrdup(content), len, id, special, lstrip, rstrip, single_word, normalized };
	t->added_first[(uint8_t)content[0]] = 1;
	if (id >= t->nid || !t->id_tok[id]) {
		char e[8];
		vocab_set(t, id, content, len, "added_tokens", e, sizeof e);
	}
}

/* Checks an id of tokenizer.json's added_tokens before it is used: the file format has u32 ids (the Hugging
 * Face reader refuses anything else), an added token outside the model's vocabulary continues it (ids from
 * the vocabulary size up to one past the last added token), a token of the vocabulary keeps its id, and one
 * id never names two different strings. */
static int check_added_id(const tokenizer *t, int nvocab, int nadded_file, const char *content, json_int_t id,
			  const char *file, size_t index, char *err, size_t errlen)
{
	if (id < 0 || id > INT32_MAX)
		return ERR("%s: added_tokens[%zu] \"%.40s\": id %lld is not a token id (0 to 2^31-1)", file, index,
			   content, (long long)id);
	if (id >= (json_int_t)nvocab + nadded_file)
		return ERR("%s: added_tokens[%zu] \"%.40s\": id %lld is beyond the vocabulary (%d tokens and %d added)",
			   file, index, content, (long long)id, nvocab, nadded_file);
	int32_t known = tok_map_get(&t->vocab, content, strlen(content));
	for (int k = 0; known < 0 && k < t->nadded; k++)
		if (!strcmp(t->added[k].content, content))
			known = t->added[k].id;
	if (known >= 0 && known != id)
		return ERR("%s: added_tokens[%zu] \"%.40s\" has id %lld but is token %d", file, index, content,
			   (long long)id, known);
	if (known < 0 && id < t->nid && t->id_tok[id])
		return ERR("%s: added_tokens[%zu]: id %lld is given to both \"%.40s\" and \"%.40s\"", file, index,
			   (long long)id, t->id_tok[id], content);
	return 0;
}

/* Every id the post-processor or padding will write must name a token. */
static int check_token_id(const tokenizer *t, int64_t id, const char *what, const char *file, char *err, size_t errlen)
{
	if (id < 0 || id >= t->nid || !t->id_tok[id])
		return ERR("%s: %s id %lld is not a token of the vocabulary (%d ids)", file, what, (long long)id, t->nid);
	return 0;
}

/* A special token in a config: "[CLS]" or {"content": "[CLS]", ...}. */
static const char *token_string(json_t *v)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_object(v) && json_is_string(json_object_get(v, "content")))
		return json_string_value(json_object_get(v, "content"));
	return NULL;
}

static void read_special_strings(tokenizer *t, json_t *cfg)
{
	if (!cfg)
		return;
	for (int k = 0; k < TOK_NSPECIAL; k++) {
		const char *s = token_string(json_object_get(cfg, special_names[k]));
		if (s)
			set_special(t, k, s);
	}
}

static int32_t special_id(const tokenizer *t, int which)
{
	return t->special[which] ? tokenizer_token_to_id(t, t->special[which], strlen(t->special[which])) : -1;
}

/* ---------------------------------------------------------------- tokenizer.json */

static int jbool(json_t *o, const char *key, int dflt)
{
	json_t *v = json_object_get(o, key);
	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A token id of a post-processor: a JSON integer that fits (whether it names a token is checked once the
 * whole file is read). */
static int pp_id(json_t *v, int32_t *out, const char *file, char *err, size_t errlen)
{
	if (!json_is_integer(v))
		return ERR("%s: post_processor id is not an integer", file);
	json_int_t x = json_integer_value(v);
	if (x < 0 || x > INT32_MAX)
		return ERR("%s: post_processor id %lld is not a token of the vocabulary", file, (long long)x);
	*out = (int32_t)x;
	return 0;
}

static int post_processor(tokenizer *t, json_t *pp, const char *file, char *err, size_t errlen)
{
	if (!pp || json_is_null(pp))
		return 0;
	const char *type = json_string_value(json_object_get(pp, "type"));
	if (!type)
		return ERR("%s: post_processor has no type", file);
	if (!strcmp(type, "Sequence")) {
		json_t *list = json_object_get(pp, "processors"), *p;
		size_t i;
		json_array_foreach(list, i, p)
			if (post_processor(t, p, file, err, errlen))
				return -1;
		return 0;
	}
	if (!strcmp(type, "ByteLevel"))
		return 0;
	if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
		json_t *cls = json_object_get(pp, "cls"), *sep = json_object_get(pp, "sep");
		if (!json_is_integer(json_array_get(cls, 1)) || !json_is_integer(json_array_get(sep, 1)))
			return ERR("%s: %s needs cls and sep as [token, id]", file, type);
		t->npre = t->nsuf = 1;
		if (pp_id(json_array_get(cls, 1), &t->pre[0], file, err, errlen) ||
		    pp_id(json_array_get(sep, 1), &t->suf[0], file, err, errlen))
			return -1;
		set_special(t, TOK_CLS, json_string_value(json_array_get(cls, 0)));
		set_special(t, TOK_SEP, json_string_value(json_array_get(sep, 0)));
		return 0;
	}
	if (!strcmp(type, "TemplateProcessing")) {
		json_t *single = json_object_get(pp, "single"), *specials = json_object_get(pp, "special_tokens"), *item;
		size_t i;
		int seen_seq = 0;
		t->npre = t->nsuf = 0;
		json_array_foreach(single, i, item) {
			if (json_object_get(item, "Sequence")) {
				seen_seq = 1;
				continue;
			}
			const char *name = json_string_value(json_object_get(json_object_get(item, "SpecialToken"), "id"));
			json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids"), *id;
			if (!name || !json_is_array(ids))
				return ERR("%s: TemplateProcessing: special token %s has no ids", file, name ? name : "?");
			size_t j;
			json_array_foreach(ids, j, id) {
				int *n = seen_seq ? &t->nsuf : &t->npre;
				int32_t *dst = seen_seq ? t->suf : t->pre;
				if (*n >= 4)
					return ERR("%s: TemplateProcessing: too many special tokens", file);
				if (pp_id(id, &dst[(*n)++], file, err, errlen))
					return -1;
			}
			set_special(t, seen_seq ? TOK_SEP : TOK_CLS, name);
		}
		return 0;
	}
	return ERR("%s: post_processor \"%s\" is not supported (TemplateProcessing, BertProcessing, RobertaProcessing, "
		   "ByteLevel)", file, type);
}

static int load_unigram(tokenizer *t, json_t *root, json_t *model, fast_vocab *fv, const char *path, char *err,
			size_t errlen);

/* A tokenizer.json already parsed (root), read from path (for messages). */
/* fv: the model's vocab decoded by the fast path (its place in root holds an empty value), or NULL. */
static int load_tokenizer_root(tokenizer **out, json_t *root, fast_vocab *fv, const char *path, char *err,
			       size_t errlen)
{
	int rc = -1;
	tokenizer *t = NULL;
	json_t *model = json_object_get(root, "model");
	const char *mtype = json_string_value(json_object_get(model, "type"));
	if (!json_is_object(model)) {
		ERR("%s: no \"model\" object", path);
		goto done;
	}
	if (!mtype)
		mtype = json_object_get(model, "merges") ? "BPE" : "WordPiece";
	json_t *norm = json_object_get(root, "normalizer"), *pre = json_object_get(root, "pre_tokenizer");
	const char *ntype = json_is_object(norm) ? json_string_value(json_object_get(norm, "type")) : NULL;
	const char *ptype = json_is_object(pre) ? json_string_value(json_object_get(pre, "type")) : NULL;
	if (!strcmp(mtype, "WordPiece")) {
		t = tok_new(TOKENIZER_WORDPIECE);
		if (fv && fv->kind == '{' ? fast_vocab_apply(t, fv, path, err, errlen)
					  : load_vocab_json(t, json_object_get(model, "vocab"), path, err, errlen))
			goto done;
		if (ntype && strcmp(ntype, "BertNormalizer")) {
			ERR("%s: normalizer \"%s\" is not supported with WordPiece (BertNormalizer or null)", path, ntype);
			goto done;
		}
		if (ntype) {
			int lower = jbool(norm, "lowercase", 1);
			json_t *sa = json_object_get(norm, "strip_accents");
			int strip = json_is_boolean(sa) ? json_is_true(sa) : lower;
			tok_bert_init(&t->bert, jbool(norm, "clean_text", 1), jbool(norm, "handle_chinese_chars", 1), strip, lower);
			t->has_normalizer = 1;
		} else {
			tok_bert_init(&t->bert, 0, 0, 0, 0);
		}
		if (ptype && strcmp(ptype, "BertPreTokenizer")) {
			ERR("%s: pre_tokenizer \"%s\" is not supported with WordPiece (BertPreTokenizer)", path, ptype);
			goto done;
		}
		const char *prefix = json_string_value(json_object_get(model, "continuing_subword_prefix"));
		if (prefix) {
			free(t->wp_prefix);
			t->wp_prefix = xstrdup(prefix);
		}
		json_t *mc = json_object_get(model, "max_input_chars_per_word");
		if (json_is_integer(mc))
			t->wp_max_chars = (int)json_integer_value(mc);
		wordpiece_finish(t);
	} else if (!strcmp(mtype, "BPE")) {
		t = tok_new(TOKENIZER_BPE);
		if (fv && fv->kind == '{' ? fast_vocab_apply(t, fv, path, err, errlen)
					  : load_vocab_json(t, json_object_get(model, "vocab"), path, err, errlen))
			goto done;
		if (ntype) {
			ERR("%s: normalizer \"%s\" is not supported with BPE (null)", path, ntype);
			goto done;
		}
		if (!ptype || strcmp(ptype, "ByteLevel")) {
			ERR("%s: pre_tokenizer \"%s\" is not supported with BPE (ByteLevel)", path, ptype ? ptype : "null");
			goto done;
		}
		const char *cs = json_string_value(json_object_get(model, "continuing_subword_prefix"));
		const char *ew = json_string_value(json_object_get(model, "end_of_word_suffix"));
		if ((cs && *cs) || (ew && *ew) || jbool(model, "byte_fallback", 0)) {
			ERR("%s: BPE with a subword prefix, word suffix or byte fallback is not supported", path);
			goto done;
		}
		t->bpe_add_prefix_space = jbool(pre, "add_prefix_space", 0);
		t->bpe_use_regex = jbool(pre, "use_regex", 1);
		t->bpe_trim_offsets = jbool(pre, "trim_offsets", 1);
		t->bpe_ignore_merges = jbool(model, "ignore_merges", 0);
		json_t *merges = json_object_get(model, "merges"), *m;
		size_t i;
		if (!json_is_array(merges)) {
			ERR("%s: BPE model without a merges list", path);
			goto done;
		}
		json_array_foreach(merges, i, m) {
			const char *a, *b;
			size_t na, nb;
			if (json_is_string(m)) {
				const char *s = json_string_value(m), *sp = strchr(s, ' ');
				if (!sp || strchr(sp + 1, ' ')) {
					ERR("%s: merge %zu: expected \"a b\"", path, i + 1);
					goto done;
				}
				a = s, na = sp - s, b = sp + 1, nb = strlen(sp + 1);
			} else if (json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
				a = json_string_value(json_array_get(m, 0)), na = strlen(a);
				b = json_string_value(json_array_get(m, 1)), nb = strlen(b);
			} else {
				ERR("%s: merge %zu: expected \"a b\" or [\"a\", \"b\"]", path, i + 1);
				goto done;
			}
			if (add_merge(t, a, na, b, nb, path, "merge", i + 1, err, errlen))
				goto done;
		}
		if (tok_bpe_compile(t, err, errlen))
			goto done;
	} else if (!strcmp(mtype, "Unigram")) {
		t = tok_new(TOKENIZER_UNIGRAM);
		if (load_unigram(t, root, model, fv && fv->kind == '[' ? fv : NULL, path, err, errlen))
			goto done;
	} else {
		ERR("%s: model \"%s\" is not supported (WordPiece, BPE, Unigram)", path, mtype);
		goto done;
	}
	const char *unk = json_string_value(json_object_get(model, "unk_token"));
	if (unk) {
		set_special(t, TOK_UNK, unk);
		t->unk_id = tok_map_get(&t->vocab, unk, strlen(unk));
	}
	json_t *added = json_object_get(root, "added_tokens"), *a;
	size_t i;
	int nvocab = t->nid;
	if (added && !json_is_array(added)) {
		ERR("%s: added_tokens is not a list", path);
		goto done;
	}
	json_array_foreach(added, i, a) {
		const char *content = json_string_value(json_object_get(a, "content"));
		json_t *id = json_object_get(a, "id");
		if (!content || !json_is_integer(id)) {
			ERR("%s: added_tokens[%zu] needs content and id", path, i);
			goto done;
		}
		if (check_added_id(t, nvocab, (int)json_array_size(added), content, json_integer_value(id), path, i,
				   err, errlen))
			goto done;
		add_added(t, content, (int32_t)json_integer_value(id), jbool(a, "special", 0), jbool(a, "lstrip", 0),
			  jbool(a, "rstrip", 0), jbool(a, "single_word", 0), jbool(a, "normalized", 0));
	}
	if (post_processor(t, json_object_get(root, "post_processor"), path, err, errlen))
		goto done;
	for (int k = 0; k < t->npre + t->nsuf; k++)
		if (check_token_id(t, k < t->npre ? t->pre[k] : t->suf[k - t->npre], "post_processor", path, err, errlen))
			goto done;
	json_t *pad = json_object_get(root, "padding");
	if (json_is_object(pad)) {
		if (json_is_integer(json_object_get(pad, "pad_id"))) {
			if (check_token_id(t, json_integer_value(json_object_get(pad, "pad_id")), "padding's pad_id", path,
					   err, errlen))
				goto done;
			t->pad_id = (int32_t)json_integer_value(json_object_get(pad, "pad_id"));
		}
		if (json_is_string(json_object_get(pad, "pad_token")))
			set_special(t, TOK_PAD, json_string_value(json_object_get(pad, "pad_token")));
	}
	rc = 0;
done:
	if (rc) {
		tokenizer_free(t);
		t = NULL;
	}
	*out = t;
	return rc;
}

static int load_tokenizer_json(tokenizer **out, const char *path, char *err, size_t errlen)
{
	/* the fast path (the vocab decoded here, the rest by jansson); on any failure the plain path below says
	 * what is wrong, or loads what the fast path did not take */
	size_t n, restlen;
	/* mapped, not read: the kernel maps the page cache a block at a time, where reading copies every page */
	const char *text = st_map_file(path, 1, "empty", &n, NULL, 0);
	char *rest = NULL;
	fast_vocab fv = { 0 };
	if (text && fast_vocab_split(text, n, &fv, &rest, &restlen) == 0) {
		json_error_t je;
		json_t *root = json_loadb(rest, restlen, 0, &je);
		free(rest);
		int rc = root ? load_tokenizer_root(out, root, &fv, path, err, errlen) : -1;
		json_decref(root);
		fast_vocab_free(&fv);
		if (rc == 0) {
			st_unmap_file(text, n);
			return 0;
		}
	}
	if (text)
		st_unmap_file(text, n);
	json_t *root;
	if (load_json(path, &root, err, errlen))
		return -1;
	if (!root)
		return ERR("%s: %s", path, strerror(ENOENT));
	int rc = load_tokenizer_root(out, root, NULL, path, err, errlen);
	json_decref(root);
	return rc;
}

/* The Unigram model of a tokenizer.json: vocab [[piece, score], ...] (id = index), unk_id, byte_fallback. */
static int load_unigram(tokenizer *t, json_t *root, json_t *model, fast_vocab *fv, const char *path, char *err,
			size_t errlen)
{
	json_t *vocab = json_object_get(model, "vocab"), *item;
	if (!fv && (!json_is_array(vocab) || !json_array_size(vocab)))
		return ERR("%s: Unigram model without a vocab list", path);
	size_t n = fv ? fv->n : json_array_size(vocab), i;
	if (n > 50000000)
		return ERR("%s: Unigram vocab too large", path);
	double *scores = xmalloc(n * sizeof *scores);
	int rc = -1;
	if (fv) {
		for (i = 0; i < n; i++)
			if (!(fv->score[i] > -1e30 && fv->score[i] < 1e30)) {
				ERR("%s: Unigram vocab[%zu]: score out of range", path, i);
				goto out;
			}
		memcpy(scores, fv->score, n * sizeof *scores);
		if (fast_vocab_apply(t, fv, path, err, errlen))
			goto out;
	} else {
		json_array_foreach(vocab, i, item) {
			const char *piece = json_string_value(json_array_get(item, 0));
			json_t *sc = json_array_get(item, 1);
			if (!piece || !json_is_number(sc) || json_array_size(item) != 2) {
				ERR("%s: Unigram vocab[%zu]: expected [piece, score]", path, i);
				goto out;
			}
			double d = json_number_value(sc);
			if (!(d > -1e30 && d < 1e30)) {
				ERR("%s: Unigram vocab[%zu]: score out of range", path, i);
				goto out;
			}
			scores[i] = d;
			if (vocab_set(t, (int64_t)i, piece, strlen(piece), path, err, errlen))
				goto out;
		}
		vocab_index(t);
	}
	json_t *unk = json_object_get(model, "unk_id");
	if (!json_is_integer(unk)) {
		ERR("%s: Unigram model without unk_id (null is not supported)", path);
		goto out;
	}
	long long uid = json_integer_value(unk);
	if (uid < 0 || uid >= (long long)n) {
		ERR("%s: Unigram unk_id %lld is out of the vocab", path, uid);
		goto out;
	}
	set_special(t, TOK_UNK, t->id_tok[uid]);
	rc = tok_unigram_setup(t, scores, (int)n, (int32_t)uid, jbool(model, "byte_fallback", 0),
			       json_object_get(root, "normalizer"), json_object_get(root, "pre_tokenizer"),
			       json_object_get(root, "decoder"), path, err, errlen);
out:
	free(scores);
	return rc;
}

/* A SentencePiece model file (sentencepiece.bpe.model), as XLMRobertaConverter turns it into tokenizer.json. */
static int load_spm_model(tokenizer **out, const char *path, char *err, size_t errlen)
{
	size_t n;
	char *data = st_read_file(path, &n);
	if (!data)
		return ERR("%s: %s", path, strerror(errno));
	json_t *root = tok_spm_to_json((const uint8_t *)data, n, path, err, errlen);
	int rc = -1;
	if (root) {
		rc = load_tokenizer_root(out, root, NULL, path, err, errlen);
		if (!rc)
			tok_unigram_keep_spm(*out, (const uint8_t *)data, n);
	}
	json_decref(root);
	free(data);
	return rc;
}

/* ---------------------------------------------------------------- directory loading */

static void default_specials(tokenizer *t)
{
	static const char *wp[TOK_NSPECIAL] = { "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", NULL, NULL };
	static const char *bpe[TOK_NSPECIAL] = { "<unk>", "<s>", "</s>", "<pad>", "<mask>", "<s>", "</s>" };
	const char **d = t->kind == TOKENIZER_WORDPIECE ? wp : bpe;
	for (int k = 0; k < TOK_NSPECIAL; k++)
		if (!t->special[k] && d[k] && tok_map_get(&t->vocab, d[k], strlen(d[k])) >= 0)
			set_special(t, k, d[k]);
}

/* MPNet: a WordPiece vocabulary (BERT's, behind <s> <pad> </s> <unk>) with RoBERTa's templates <s> A </s>. Such a
 * folder says so by tokenizer_class MPNetTokenizer(Fast) or model_type mpnet; a vocabulary with <s> and </s> but
 * no [CLS] is taken for one too (what st-init is given for a new MPNet model). */
static int mpnet_vocab(const tokenizer *t, json_t *tcfg, json_t *mcfg)
{
	const char *cls = json_string_value(json_object_get(tcfg, "tokenizer_class"));
	const char *type = json_string_value(json_object_get(mcfg, "model_type"));
	if (t->kind != TOKENIZER_WORDPIECE)
		return 0;
	if ((cls && !strncmp(cls, "MPNetTokenizer", 14)) || (type && !strcmp(type, "mpnet")))
		return 1;
	return tok_map_get(&t->vocab, "[CLS]", 5) < 0 && tok_map_get(&t->vocab, "<s>", 3) >= 0 &&
	       tok_map_get(&t->vocab, "</s>", 4) >= 0;
}

/* MPNetTokenizer's defaults, for the special tokens the files did not name (its unk_token is [UNK]). */
static void mpnet_specials(tokenizer *t)
{
	static const char *d[TOK_NSPECIAL] = { "[UNK]", "<s>", "</s>", "<pad>", "<mask>", "<s>", "</s>" };
	for (int k = 0; k < TOK_NSPECIAL; k++)
		if (!t->special[k] && tok_map_get(&t->vocab, d[k], strlen(d[k])) >= 0)
			set_special(t, k, d[k]);
	if (!t->special[TOK_UNK] && tok_map_get(&t->vocab, "<unk>", 5) >= 0)
		set_special(t, TOK_UNK, "<unk>");
}

/* A WordPiece tokenizer with <s> A </s> templates is MPNet's: saved with RobertaProcessing, as MPNetTokenizerFast. */
static int mpnet_style(const tokenizer *t)
{
	return t->kind == TOKENIZER_WORDPIECE && t->npre == 1 && t->nsuf == 1 && t->special[TOK_CLS] &&
	       t->special[TOK_SEP] && !strcmp(t->special[TOK_CLS], "<s>") && !strcmp(t->special[TOK_SEP], "</s>");
}

/* The folder holding the tokenizer files: dir itself, or the Transformer module's path from modules.json
 * (old sentence-transformers models keep it in 0_Transformer/). */
static char *tokenizer_dir(const char *dir)
{
	static const char *names[] = { "tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model" };
	for (int k = 0; k < 4; k++) {
		char *p = path_join(dir, names[k]);
		int f = is_file(p);
		free(p);
		if (f)
			return xstrdup(dir);
	}
	char *mp = path_join(dir, "modules.json");
	json_t *mods = json_load_file(mp, 0, NULL), *m;
	free(mp);
	size_t i;
	char *found = NULL;
	json_array_foreach(mods, i, m) {
		const char *type = json_string_value(json_object_get(m, "type"));
		const char *path = json_string_value(json_object_get(m, "path"));
		if (type && path && *path && strstr(type, "Transformer")) {
			found = path_join(dir, path);
			break;
		}
	}
	json_decref(mods);
	return found ? found : xstrdup(dir);
}

static int json_int(json_t *o, const char *key, long long *out)
{
	json_t *v = json_object_get(o, key);
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 1;
	}
	if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 9e18) {
		*out = (long long)json_real_value(v);
		return 1;
	}
	return 0;
}

tokenizer *tokenizer_load(const char *path, char *err, size_t errlen)
{
	char *dir = NULL, *file = NULL, *root_dir = NULL;
	if (is_dir(path)) {
		root_dir = xstrdup(path);
		dir = tokenizer_dir(path);
	} else if (is_file(path)) {
		file = xstrdup(path);
		const char *slash = strrchr(path, '/');
		dir = slash ? strndup(path, slash - path + 1) : xstrdup(".");
	} else {
		snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : ENOENT));
		return NULL;
	}
	tokenizer *t = NULL;
	json_t *tcfg = NULL, *smap = NULL, *sbert = NULL, *sbert_root = NULL, *mcfg = NULL;
	char *p;
#define CFG(var, name)                                                 \
	p = path_join(dir, name);                                      \
	if (load_json_flags(p, &var, JSON_DECODE_INT_AS_REAL, err, errlen)) { \
		free(p);                                               \
		goto fail;                                             \
	}                                                              \
	free(p);
	CFG(tcfg, "tokenizer_config.json");
	CFG(smap, "special_tokens_map.json");
	CFG(sbert, "sentence_bert_config.json");
	CFG(mcfg, "config.json");
	if (root_dir && !sbert) {
		p = path_join(root_dir, "sentence_bert_config.json");
		if (load_json_flags(p, &sbert_root, JSON_DECODE_INT_AS_REAL, err, errlen)) {
			free(p);
			goto fail;
		}
		free(p);
		sbert = sbert_root, sbert_root = NULL;
	}
	const char *base = file ? (strrchr(file, '/') ? strrchr(file, '/') + 1 : file) : NULL;
	char *tj = file ? NULL : path_join(dir, "tokenizer.json");
	char *vt = file ? NULL : path_join(dir, "vocab.txt");
	char *vj = file ? NULL : path_join(dir, "vocab.json");
	char *spm = file ? NULL : path_join(dir, "sentencepiece.bpe.model");
	int want_json = file ? (strstr(base, ".json") && strcmp(base, "vocab.json")) : is_file(tj);
	int want_spm = file ? strlen(base) > 6 && !strcmp(base + strlen(base) - 6, ".model") : !want_json && is_file(spm);
	int want_txt = file ? !want_json && !want_spm && strcmp(base, "vocab.json") : is_file(vt);
	int rc = 0;
	if (want_json) {
		rc = load_tokenizer_json(&t, file ? file : tj, err, errlen);
	} else if (want_spm) {
		rc = load_spm_model(&t, file ? file : spm, err, errlen);
	} else if (want_txt) {
		/* slow BertTokenizer settings, as the fast converter builds them */
		t = tok_new(TOKENIZER_WORDPIECE);
		rc = load_vocab_txt(t, file ? file : vt, err, errlen);
		if (!rc) {
			int lower = jbool(tcfg, "do_lower_case", 1);
			json_t *sa = json_object_get(tcfg, "strip_accents");
			int strip = json_is_boolean(sa) ? json_is_true(sa) : lower;
			tok_bert_init(&t->bert, 1, jbool(tcfg, "tokenize_chinese_chars", 1), strip, lower);
			t->has_normalizer = 1;
			wordpiece_finish(t);
		}
	} else if (file || is_file(vj)) {
		char *vjp = file ? xstrdup(file) : xstrdup(vj);
		char *mp = path_join(dir, "merges.txt");
		t = tok_new(TOKENIZER_BPE);
		json_t *vocab = NULL;
		rc = load_json(vjp, &vocab, err, errlen);
		if (!rc && !vocab)
			rc = ERR("%s: %s", vjp, strerror(ENOENT));
		if (!rc)
			rc = load_vocab_json(t, vocab, vjp, err, errlen);
		json_decref(vocab);
		if (!rc && !is_file(mp))
			rc = ERR("%s: missing (byte-level BPE needs merges.txt beside vocab.json)", mp);
		if (!rc)
			rc = load_merges_txt(t, mp, err, errlen);
		if (!rc) {
			t->bpe_add_prefix_space = jbool(tcfg, "add_prefix_space", 0);
			rc = tok_bpe_compile(t, err, errlen);
		}
		free(vjp);
		free(mp);
	} else {
		rc = ERR("%s: no tokenizer.json, vocab.txt or vocab.json + merges.txt", dir);
	}
	free(tj);
	free(vt);
	free(vj);
	free(spm);
	if (rc) {
		tokenizer_free(t);
		t = NULL;
		goto fail;
	}
	read_special_strings(t, smap);
	read_special_strings(t, tcfg);
	int mpnet = !want_json && mpnet_vocab(t, tcfg, mcfg);
	if (mpnet)
		mpnet_specials(t);
	default_specials(t);
	if (!want_json && !want_spm) {
		/* special tokens become added tokens; RoBERTa's and MPNet's <mask> takes the space before it */
		for (int k = 0; k < TOK_NSPECIAL; k++) {
			int32_t id = special_id(t, k);
			if (id >= 0)
				add_added(t, t->special[k], id, 1, (t->kind == TOKENIZER_BPE || mpnet) && k == TOK_MASK, 0, 0,
					  t->kind == TOKENIZER_BPE && k != TOK_MASK);
		}
		const char *cls = json_string_value(json_object_get(tcfg, "tokenizer_class"));
		int gpt2 = cls && strstr(cls, "GPT2");
		int32_t c = special_id(t, TOK_CLS), s = special_id(t, TOK_SEP);
		if (!gpt2 && c >= 0 && s >= 0) {
			t->npre = t->nsuf = 1;
			t->pre[0] = c;
			t->suf[0] = s;
		}
		t->unk_id = special_id(t, TOK_UNK);
	}
	if (t->pad_id < 0) {
		int32_t pad = special_id(t, TOK_PAD);
		t->pad_id = pad >= 0 ? pad : 0;
	}
	long long v;
	long long mml = json_int(tcfg, "model_max_length", &v) ? v : -1;
	long long mpe = json_int(mcfg, "max_position_embeddings", &v) ? v : -1;
	if (mml > 0 && mml < 100000000)
		t->model_max_length = (int)mml;
	if (json_int(sbert, "max_seq_length", &v) && v > 0 && v < 100000000)
		t->max_seq_length = (int)v;
	else if (mpe > 0)
		t->max_seq_length = (int)(mml > 0 && mml < mpe ? mml : mpe);
	else if (mml > 0 && mml < 100000000)
		t->max_seq_length = (int)mml;
	t->st_lower = jbool(sbert, "do_lower_case", 0);
fail:
	json_decref(tcfg);
	json_decref(smap);
	json_decref(sbert);
	json_decref(mcfg);
	free(dir);
	free(file);
	free(root_dir);
	return t;
}

tokenizer *tokenizer_wordpiece_new(const char *const *tokens, int n, int lowercase, char *err, size_t errlen)
{
	tokenizer *t = tok_new(TOKENIZER_WORDPIECE);
	for (int i = 0; i < n; i++) {
		if (tok_utf8_invalid(tokens[i], strlen(tokens[i])) ||
		    vocab_set(t, i, tokens[i], strlen(tokens[i]), "vocabulary", err, errlen)) {
			if (tok_utf8_invalid(tokens[i], strlen(tokens[i])))
				snprintf(err, errlen, "vocabulary: token %d is not valid UTF-8", i);
			tokenizer_free(t);
			return NULL;
		}
	}
	vocab_index(t);
	tok_bert_init(&t->bert, 1, 1, lowercase, lowercase);
	t->has_normalizer = 1;
	wordpiece_finish(t);
	default_specials(t);
	for (int k = 0; k < TOK_NSPECIAL; k++) {
		int32_t id = special_id(t, k);
		if (id >= 0)
			add_added(t, t->special[k], id, 1, 0, 0, 0, 0);
	}
	int32_t c = special_id(t, TOK_CLS), s = special_id(t, TOK_SEP);
	t->unk_id = special_id(t, TOK_UNK);
	if (c < 0 || s < 0 || t->unk_id < 0) {
		snprintf(err, errlen, "vocabulary: [CLS], [SEP] and [UNK] are required");
		tokenizer_free(t);
		return NULL;
	}
	t->npre = t->nsuf = 1;
	t->pre[0] = c;
	t->suf[0] = s;
	int32_t pad = special_id(t, TOK_PAD);
	t->pad_id = pad >= 0 ? pad : 0;
	return t;
}

/* ---------------------------------------------------------------- saving */

/* An added token as tokenizer.json lists it (with_id) or as tokenizer_config.json's added_tokens_decoder
 * does (keyed by id, so without one: transformers passes the fields to AddedToken). */
static json_t *added_json(const tok_added *a, int with_id)
{
	json_t *j = json_pack("{s:s, s:b, s:b, s:b, s:b, s:b}", "content", a->content, "single_word", a->single_word,
			      "lstrip", a->lstrip, "rstrip", a->rstrip, "normalized", a->normalized, "special", a->special);
	if (with_id)
		json_object_set_new(j, "id", json_integer(a->id));
	return j;
}

static int cmp_added(const void *x, const void *y)
{
	int32_t a = ((const tok_added *)x)->id, b = ((const tok_added *)y)->id;
	return (a > b) - (a < b);
}

/* Added tokens in id order, as the Hugging Face files list them. */
static tok_added *sorted_added(const tokenizer *t)
{
	tok_added *a = xmalloc((t->nadded + 1) * sizeof *a);
	if (t->nadded)
		memcpy(a, t->added, t->nadded * sizeof *a);
	qsort(a, t->nadded, sizeof *a, cmp_added);
	return a;
}

static int in_model_vocab(const tokenizer *t, int id)
{
	return t->id_tok[id] && tok_map_get(&t->vocab, t->id_tok[id], strlen(t->id_tok[id])) == id;
}

static json_t *tokenizer_json(const tokenizer *t)
{
	json_t *root = json_object();
	json_object_set_new(root, "version", json_string("1.0"));
	json_object_set_new(root, "truncation", json_null());
	json_object_set_new(root, "padding", json_null());
	json_t *added = json_array();
	tok_added *sorted = sorted_added(t);
	for (int k = 0; k < t->nadded; k++)
		json_array_append_new(added, added_json(&sorted[k], 1));
	free(sorted);
	json_object_set_new(root, "added_tokens", added);
	json_t *vocab = json_object();
	for (int i = 0; i < t->nid; i++)
		if (in_model_vocab(t, i))
			json_object_set_new(vocab, t->id_tok[i], json_integer(i));
	const char *cls = t->npre ? tokenizer_id_to_token(t, t->pre[0]) : NULL;
	const char *sep = t->nsuf ? tokenizer_id_to_token(t, t->suf[0]) : NULL;
	json_t *post = json_null();
	if (t->kind == TOKENIZER_WORDPIECE) {
		const tok_bert *b = &t->bert;
		json_object_set_new(root, "normalizer", t->has_normalizer
			? json_pack("{s:s, s:b, s:b, s:b, s:b}", "type", "BertNormalizer", "clean_text", b->clean,
				    "handle_chinese_chars", b->chinese, "strip_accents", b->strip, "lowercase", b->lower)
			: json_null());
		json_object_set_new(root, "pre_tokenizer", json_pack("{s:s}", "type", "BertPreTokenizer"));
		if (mpnet_style(t)) {
			post = json_pack("{s:s, s:[s, i], s:[s, i], s:b, s:b}", "type", "RobertaProcessing", "sep", sep,
					 (int)t->suf[0], "cls", cls, (int)t->pre[0], "trim_offsets", 1, "add_prefix_space", 0);
		} else if (cls && sep && t->npre == 1 && t->nsuf == 1) {
			post = json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}],"
					 " s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}],"
					 " s:{s:{s:s, s:[i], s:[s]}, s:{s:s, s:[i], s:[s]}}}",
				"type", "TemplateProcessing",
				"single", "SpecialToken", "id", cls, "type_id", 0, "Sequence", "id", "A", "type_id", 0,
				"SpecialToken", "id", sep, "type_id", 0,
				"pair", "SpecialToken", "id", cls, "type_id", 0, "Sequence", "id", "A", "type_id", 0,
				"SpecialToken", "id", sep, "type_id", 0, "Sequence", "id", "B", "type_id", 1,
				"SpecialToken", "id", sep, "type_id", 1,
				"special_tokens", cls, "id", cls, "ids", (int)t->pre[0], "tokens", cls,
				sep, "id", sep, "ids", (int)t->suf[0], "tokens", sep);
		}
		json_object_set_new(root, "post_processor", post);
		json_object_set_new(root, "decoder", json_pack("{s:s, s:s, s:b}", "type", "WordPiece", "prefix", t->wp_prefix,
							       "cleanup", 1));
		json_t *model = json_pack("{s:s, s:s, s:s, s:i}", "type", "WordPiece", "unk_token",
					  t->special[TOK_UNK] ? t->special[TOK_UNK] : "[UNK]", "continuing_subword_prefix",
					  t->wp_prefix, "max_input_chars_per_word", t->wp_max_chars);
		json_object_set_new(model, "vocab", vocab);
		json_object_set_new(root, "model", model);
	} else if (t->kind == TOKENIZER_UNIGRAM) {
		json_decref(vocab);
		tok_unigram_save(t, root);
	} else {
		json_object_set_new(root, "normalizer", json_null());
		json_object_set_new(root, "pre_tokenizer", json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel",
			"add_prefix_space", t->bpe_add_prefix_space, "trim_offsets", t->bpe_trim_offsets, "use_regex",
			t->bpe_use_regex));
		if (cls && sep && t->npre == 1 && t->nsuf == 1)
			post = json_pack("{s:s, s:[s, i], s:[s, i], s:b, s:b}", "type", "RobertaProcessing", "sep", sep,
					 (int)t->suf[0], "cls", cls, (int)t->pre[0], "trim_offsets", t->bpe_trim_offsets,
					 "add_prefix_space", t->bpe_add_prefix_space);
		json_object_set_new(root, "post_processor", post);
		json_object_set_new(root, "decoder", json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel",
			"add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1));
		json_t *merges = json_array();
		for (int k = 0; k < t->nmerges; k++) {
			const char *a = t->id_tok[t->merge_list[2 * k]], *b = t->id_tok[t->merge_list[2 * k + 1]];
			char *s = xmalloc(strlen(a) + strlen(b) + 2);
			sprintf(s, "%s %s", a, b);
			json_array_append_new(merges, json_string(s));
			free(s);
		}
		json_t *model = json_pack("{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:b}", "type", "BPE", "dropout", "unk_token",
					  "continuing_subword_prefix", "", "end_of_word_suffix", "", "fuse_unk", 0,
					  "byte_fallback", 0, "ignore_merges", t->bpe_ignore_merges);
		json_object_set_new(model, "vocab", vocab);
		json_object_set_new(model, "merges", merges);
		json_object_set_new(root, "model", model);
	}
	return root;
}

static int save_json(json_t *j, const char *dir, const char *name, int flags, char *err, size_t errlen)
{
	char *s = json_dumps(j, flags);
	json_decref(j);
	if (!s)
		return ERR("%s/%s: cannot serialize", dir, name);
	size_t n = strlen(s);
	s = xrealloc(s, n + 2);
	s[n++] = '\n';
	char *p = path_join(dir, name);
	int rc = st_write_file_atomic(p, s, n);
	if (rc)
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
	free(p);
	free(s);
	return rc;
}

static int save_text(const char *text, size_t n, const char *dir, const char *name, char *err, size_t errlen)
{
	char *p = path_join(dir, name);
	int rc = st_write_file_atomic(p, text, n);
	if (rc)
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
	free(p);
	return rc;
}

int tokenizer_save(const tokenizer *t, const char *dir, char *err, size_t errlen)
{
	if (!is_dir(dir) && mkdir(dir, 0777) && errno != EEXIST)
		return ERR("%s: %s", dir, strerror(errno));
	if (save_json(tokenizer_json(t), dir, "tokenizer.json", JSON_INDENT(2), err, errlen))
		return -1;
	/* the vocabulary files the slow tokenizers read */
	size_t cap = 1024, n = 0;
	char *buf = xmalloc(cap);
#define APPEND(s, len)                                      \
	do {                                                \
		size_t l_ = (len);                          \
		if (n + l_ + 2 > cap) {                     \
			cap = (n + l_ + 2) * 2;             \
			buf = xrealloc(buf, cap);           \
		}                                           \
		memcpy(buf + n, s, l_);                     \
		n += l_;                                    \
	} while (0)
	int rc;
	if (t->kind == TOKENIZER_WORDPIECE) {
		for (int i = 0; i < t->nid; i++) {
			char hole[32];
			const char *s = t->id_tok[i];
			if (!s) {
				snprintf(hole, sizeof hole, "[unused_id_%d]", i);
				s = hole;
			}
			APPEND(s, strlen(s));
			APPEND("\n", 1);
		}
		rc = save_text(buf, n, dir, "vocab.txt", err, errlen);
	} else if (t->kind == TOKENIZER_UNIGRAM) {
		/* the slow XLMRobertaTokenizer reads the SentencePiece model; only one loaded from it has it */
		size_t len;
		const uint8_t *m = tok_unigram_spm(t, &len);
		rc = m ? save_text((const char *)m, len, dir, "sentencepiece.bpe.model", err, errlen) : 0;
	} else {
		json_t *vocab = json_object();
		for (int i = 0; i < t->nid; i++)
			if (in_model_vocab(t, i))
				json_object_set_new(vocab, t->id_tok[i], json_integer(i));
		rc = save_json(vocab, dir, "vocab.json", JSON_COMPACT, err, errlen);
		APPEND("#version: 0.2\n", 14);
		for (int k = 0; k < t->nmerges && !rc; k++) {
			const char *a = t->id_tok[t->merge_list[2 * k]], *b = t->id_tok[t->merge_list[2 * k + 1]];
			APPEND(a, strlen(a));
			APPEND(" ", 1);
			APPEND(b, strlen(b));
			APPEND("\n", 1);
		}
		if (!rc)
			rc = save_text(buf, n, dir, "merges.txt", err, errlen);
	}
	free(buf);
	if (rc)
		return -1;
	json_t *cfg = json_object(), *smap = json_object(), *dec = json_object();
	for (int k = 0; k < TOK_NSPECIAL; k++)
		if (t->special[k] && !(t->kind == TOKENIZER_WORDPIECE && !mpnet_style(t) && (k == TOK_BOS || k == TOK_EOS))) {
			json_object_set_new(cfg, special_names[k], json_string(t->special[k]));
			json_object_set_new(smap, special_names[k], json_string(t->special[k]));
		}
	tok_added *sorted = sorted_added(t);
	for (int k = 0; k < t->nadded; k++) {
		char id[24];
		snprintf(id, sizeof id, "%d", (int)sorted[k].id);
		json_object_set_new(dec, id, added_json(&sorted[k], 0));
	}
	free(sorted);
	json_object_set_new(cfg, "added_tokens_decoder", dec);
	int mml = t->model_max_length > 0 ? t->model_max_length : t->max_seq_length > 0 ? t->max_seq_length : 512;
	json_object_set_new(cfg, "model_max_length", json_integer(mml));
	json_object_set_new(cfg, "clean_up_tokenization_spaces", json_true());
	if (t->kind == TOKENIZER_WORDPIECE) {
		json_object_set_new(cfg, "tokenizer_class", json_string(mpnet_style(t) ? "MPNetTokenizer" : "BertTokenizer"));
		json_object_set_new(cfg, "do_lower_case", json_boolean(t->bert.lower));
		json_object_set_new(cfg, "strip_accents", t->bert.strip == t->bert.lower ? json_null() : json_boolean(t->bert.strip));
		json_object_set_new(cfg, "tokenize_chinese_chars", json_boolean(t->bert.chinese));
	} else if (t->kind == TOKENIZER_UNIGRAM) {
		json_object_set_new(cfg, "tokenizer_class", json_string("XLMRobertaTokenizer"));
	} else {
		json_object_set_new(cfg, "tokenizer_class", json_string(t->npre ? "RobertaTokenizer" : "GPT2Tokenizer"));
		json_object_set_new(cfg, "add_prefix_space", json_boolean(t->bpe_add_prefix_space));
		json_object_set_new(cfg, "errors", json_string("replace"));
		json_object_set_new(cfg, "trim_offsets", json_boolean(t->bpe_trim_offsets));
	}
	if (save_json(cfg, dir, "tokenizer_config.json", JSON_INDENT(2), err, errlen))
		return -1;
	return save_json(smap, dir, "special_tokens_map.json", JSON_INDENT(2), err, errlen);
}
