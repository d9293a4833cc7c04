/* tokenizer_unigram.c: SentencePiece Unigram tokenizers (XLM-RoBERTa, multilingual-e5, paraphrase-multilingual-*)
 * as the Hugging Face `tokenizers` library runs them from tokenizer.json, with SentencePiece's own rules where
 * the two agree on XLM-R's pipeline (docs/tokenizers.md lists where they differ):
 *   normalizer    Precompiled (SentencePiece's charsmap: a Darts double-array trie over UTF-8 bytes whose
 *                 values index NUL-terminated replacement strings; longest match wins), Strip, Replace, Sequence
 *   pre-tokenizer Metaspace (spaces become U+2581, one is prepended, the text splits before each U+2581),
 *                 WhitespaceSplit, Sequence
 *   model         Viterbi over the lattice of vocabulary pieces by score; characters no piece covers become the
 *                 unknown piece (score: the lowest piece score minus 10), consecutive unknowns fuse into one,
 *                 and with byte_fallback an unknown span becomes its UTF-8 bytes <0xHH>.
 * It also reads SentencePiece's own ModelProto (sentencepiece.bpe.model) with a small protobuf reader and turns
 * it into the tokenizer.json that transformers' XLMRobertaConverter would write (fairseq ids: <s>=0, <pad>=1,
 * </s>=2, <unk>=3, piece ids + 1, <mask> last). */
#define _GNU_SOURCE
#define TOKENIZER_INTERNAL
#include "st.h"
#include "tokenizer.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>


#define METASPACE "\xE2\x96\x81"   /* U+2581 LOWER ONE EIGHTH BLOCK */

enum { STEP_PRECOMPILED, STEP_STRIP, STEP_REPLACE };
typedef struct {
	int kind;
	int left, right;          /* Strip */
	char *pat, *content;      /* Replace: literal pattern (pat) or regex (re) */
	size_t plen, clen;
	pcre2_code *re;
} ug_step;

enum { PREPEND_NEVER, PREPEND_ALWAYS, PREPEND_FIRST };

typedef struct {
	uint32_t key, child;
	int32_t id;               /* the piece ending at child, or -1 */
	uint32_t pad;
} ug_edge;

struct tok_unigram {
	double *score;            /* [nscore]: the model's pieces (added tokens may lie beyond) */
	int nscore;
	double unk_score;
	int byte_fallback;
	int spm_exact;            /* libsentencepiece's arithmetic (see viterbi) rather than the tokenizers library's */
	int32_t byte_id[256];
	/* the vocabulary trie: node 0 is the root; edges (node, byte) -> child in an open-addressing table whose
	 * slots hold the key (node << 8 | byte, never 0 as the root's edges live in root), the child and the
	 * piece id ending at the child, so that a step costs one memory access */
	size_t nnodes;
	ug_edge *edge;            /* key 0 = empty */
	size_t edge_cap, nedges;
	ug_edge root[256];
	/* the charsmap */
	uint8_t *charsmap;        /* the whole blob (trie size, trie, strings) */
	size_t charsmap_len;
	const uint8_t *trie;      /* units, little-endian uint32 */
	size_t trie_units;
	const char *norm;         /* replacement strings */
	size_t norm_len;
	uint8_t cm_first[256];    /* 1: some charsmap entry starts with this byte */
	ug_step *steps;
	int nsteps;
	/* pre-tokenizer */
	int ws_split, metaspace, prepend, split;
	char repl[8];
	size_t repl_len;
	/* the JSON parts saved back as they came */
	json_t *j_normalizer, *j_pre, *j_decoder;
	uint8_t *spm_raw;         /* the .model this came from, written back by tokenizer_save */
	size_t spm_raw_len;
	/* scratch */
	char *buf[2], *wbuf;
	size_t buf_cap[2], wcap;
	double *best;
	int32_t *best_start, *best_id;
	size_t best_cap;
	int32_t *path;
	size_t path_cap;
	pcre2_match_data *md;
};

/* ---------------------------------------------------------------- vocabulary trie */

static inline uint64_t edge_hash(uint32_t k)
{
	uint64_t x = k * 0x9E3779B97F4A7C15ull;
	return x >> 32 ^ x;
}

static void edge_grow(struct tok_unigram *u);

/* A zeroed table of n edges. The inserts touch it at random, so where the kernel grants huge pages on request
 * it gets them: one page fault per 2 MiB instead of one per 4 KiB (most of the load time of a large
 * vocabulary on machines where page faults are dear). */
static ug_edge *edge_table(size_t n)
{
	size_t bytes = xmul(n, sizeof(ug_edge)), huge = 2u << 20;
	if (bytes < huge)
		return xcalloc(n, sizeof(ug_edge));
	bytes = (bytes + huge - 1) & ~(huge - 1);
	ug_edge *e = aligned_alloc(huge, bytes);
	if (!e)
		die(EX_OSERR, "out of memory (%zu bytes)", bytes);
#ifdef MADV_HUGEPAGE
	madvise(e, bytes, MADV_HUGEPAGE);
#endif
	memset(e, 0, bytes);
	return e;
}

/* The slot of (node, b): its own, or the empty one where it would go. */
static inline ug_edge *edge_slot(const struct tok_unigram *u, uint32_t node, uint8_t b)
{
	if (!node)
		return (ug_edge *)&u->root[b];
	uint32_t key = node << 8 | b;
	size_t mask = u->edge_cap - 1, i = edge_hash(key) & mask;
	for (;;) {
		ug_edge *e = &u->edge[i];
		if (e->key == key || !e->key)
			return e;
		i = (i + 1) & mask;
	}
}

static ug_edge *edge_add(struct tok_unigram *u, uint32_t node, uint8_t b, uint32_t child, int32_t id)
{
	if (node && (u->nedges + 1) * 4 > u->edge_cap * 3)   /* load factor 3/4 */
		edge_grow(u);
	ug_edge *e = edge_slot(u, node, b);
	if (node)
		u->nedges++;
	*e = (ug_edge){ node ? node << 8 | b : 0, child, id, 0 };
	return e;
}

static void edge_grow(struct tok_unigram *u)
{
	size_t old = u->edge_cap;
	ug_edge *oe = u->edge;
	u->edge_cap = old ? old * 2 : 1024;
	u->edge = edge_table(u->edge_cap);
	u->nedges = 0;
	for (size_t i = 0; i < old; i++)
		if (oe[i].key)
			edge_add(u, oe[i].key >> 8, (uint8_t)oe[i].key, oe[i].child, oe[i].id);
	free(oe);
}

static int trie_insert(struct tok_unigram *u, const char *s, size_t n, int32_t id)
{
	uint32_t node = 0;
	for (size_t i = 0; i < n; i++) {
		if (u->nnodes >= (1u << 24) - 1)
			return -1;   /* keys hold 24 bits of node number */
		uint8_t b = (uint8_t)s[i];
		ug_edge *e = edge_slot(u, node, b);
		if (!e->child)
			e = edge_add(u, node, b, (uint32_t)u->nnodes++, -1);
		if (i + 1 == n)
			e->id = id;   /* a piece listed twice keeps its later id, as the token -> id map does */
		node = e->child;
	}
	return 0;
}

/* ---------------------------------------------------------------- charsmap (SentencePiece normalizer) */

/* Darts-clone double-array unit fields. */
static inline uint32_t unit_at(const struct tok_unigram *u, size_t i)
{
	const uint8_t *p = u->trie + 4 * i;
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline int unit_has_leaf(uint32_t x) { return (x >> 8) & 1; }
static inline uint32_t unit_value(uint32_t x) { return x & 0x7FFFFFFFu; }
static inline uint32_t unit_label(uint32_t x) { return x & (0x80000000u | 0xFF); }
static inline uint32_t unit_offset(uint32_t x) { return (x >> 10) << ((x & (1u << 9)) >> 6); }

/* Longest prefix of s[0..n) in the charsmap: its length (0: none) and the replacement in *rep, *replen. */
static size_t charsmap_match(const struct tok_unigram *u, const uint8_t *s, size_t n, const char **rep, size_t *replen)
{
	if (!u->trie_units)
		return 0;
	size_t best = 0;
	uint32_t best_value = 0;
	size_t pos = unit_offset(unit_at(u, 0));
	for (size_t i = 0; i < n; i++) {
		pos ^= s[i];
		if (pos >= u->trie_units)
			break;
		uint32_t x = unit_at(u, pos);
		if (unit_label(x) != s[i])
			break;
		pos ^= unit_offset(x);
		if (unit_has_leaf(x)) {
			if (pos >= u->trie_units)
				break;
			best = i + 1;
			best_value = unit_value(unit_at(u, pos));
		}
	}
	if (!best || best_value >= u->norm_len)
		return 0;
	*rep = u->norm + best_value;
	*replen = strnlen(*rep, u->norm_len - best_value);
	return best;
}

/* ---------------------------------------------------------------- scratch buffers */

static char *reserve(char **buf, size_t *cap, size_t need)
{
	if (need > *cap) {
		*cap = need > 2 * *cap ? need : 2 * *cap;
		*buf = xrealloc(*buf, *cap);
	}
	return *buf;
}

/* Rust's char::is_whitespace (Unicode White_Space), which Strip and WhitespaceSplit use. */
static int is_white_space(int32_t c)
{
	return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
	       c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* SentencePiece's UTF-8 length by the lead byte (it does not validate: neither does the lattice). */
static inline size_t one_char_len(uint8_t b)
{
	static const uint8_t len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
	return len[b >> 4];
}

/* One normalizer step from s[0..n) into dst (grown as needed); returns the new length. */
static size_t apply_step(struct tok_unigram *u, const ug_step *st, const char *s, size_t n, char **dst, size_t *cap)
{
	size_t o = 0;
	switch (st->kind) {
	case STEP_PRECOMPILED:
		reserve(dst, cap, n + 16);
		for (size_t i = 0; i < n;) {
			if ((uint8_t)s[i] < 0x80 && !u->cm_first[(uint8_t)s[i]]) {   /* ASCII no entry starts with */
				reserve(dst, cap, o + (n - i) + 16);
				(*dst)[o++] = s[i++];
				continue;
			}
			const char *rep;
			size_t replen, m = charsmap_match(u, (const uint8_t *)s + i, n - i, &rep, &replen);
			if (!m) {
				int32_t cp;
				int k = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp);
				if (cp < 0 || k <= 0) {   /* malformed: U+FFFD for one byte, as SentencePiece does */
					rep = "\xEF\xBF\xBD", replen = 3, m = 1;
				} else {
					rep = s + i, replen = (size_t)k, m = (size_t)k;
				}
			}
			reserve(dst, cap, o + replen + (n - i) + 16);
			memcpy(*dst + o, rep, replen);
			o += replen;
			i += m;
		}
		return o;
	case STEP_STRIP: {
		size_t a, b;
		tok_utf8_strip(s, n, st->left, st->right, is_white_space, &a, &b);
		reserve(dst, cap, b - a + 1);
		memcpy(*dst, s + a, b - a);
		return b - a;
	}
	case STEP_REPLACE:
		reserve(dst, cap, n + 16);
		if (!st->re) {
			for (size_t i = 0; i < n;) {
				if (st->plen && n - i >= st->plen && !memcmp(s + i, st->pat, st->plen)) {
					reserve(dst, cap, o + st->clen + (n - i) + 16);
					memcpy(*dst + o, st->content, st->clen);
					o += st->clen;
					i += st->plen;
				} else {
					(*dst)[o++] = s[i++];
				}
			}
			return o;
		}
		if (tok_utf8_invalid(s, n)) {   /* only a corrupt charsmap makes this: leave the text as it is */
			memcpy(*dst, s, n);
			return n;
		}
		if (!u->md)
			u->md = pcre2_match_data_create(4, NULL);
		for (size_t i = 0; i <= n;) {
			int rc = pcre2_match(st->re, (PCRE2_SPTR)s, n, i, PCRE2_NO_UTF_CHECK, u->md, NULL);
			if (rc < 0) {
				reserve(dst, cap, o + (n - i) + 1);
				memcpy(*dst + o, s + i, n - i);
				o += n - i;
				break;
			}
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(u->md);
			size_t a = ov[0], b = ov[1];
			reserve(dst, cap, o + (a - i) + st->clen + (n - b) + 16);
			memcpy(*dst + o, s + i, a - i);
			o += a - i;
			memcpy(*dst + o, st->content, st->clen);
			o += st->clen;
			if (b == a) {   /* empty match: keep one character and move on */
				if (a >= n)
					break;
				size_t k = one_char_len((uint8_t)s[a]);
				if (k > n - a)
					k = n - a;
				memcpy(*dst + o, s + a, k);
				o += k;
				b = a + k;
			}
			i = b;
		}
		return o;
	}
	return 0;
}

/* ---------------------------------------------------------------- Viterbi */

/* An unknown span: its UTF-8 bytes as <0xHH> pieces with byte_fallback (when all exist), else the unknown id. */
static void push_unknown(tokenizer *t, const char *s, size_t n)
{
	const struct tok_unigram *u = t->ug;
	if (u->byte_fallback) {
		size_t k = 0;
		while (k < n && u->byte_id[(uint8_t)s[k]] >= 0)
			k++;
		if (k == n) {
			for (k = 0; k < n; k++)
				tok_out_push(t, u->byte_id[(uint8_t)s[k]]);
			return;
		}
	}
	tok_out_push(t, t->unk_id);
}

/* The best segmentation of one pre-token s[0..n): the best path ending at each byte, found left to right; a
 * later candidate replaces an earlier one only when strictly better, so equal scores keep the path whose last
 * piece starts first (both libraries do so). The tokenizers library sums scores in double per pre-token;
 * libsentencepiece runs over the whole text, adds a piece's score in double (its score expression is a double
 * because of the user-defined-symbol branch) but keeps each best score as a float, and adds the unknown score
 * in float. That can break near-ties the other way ("▁15 0 00" against "▁15 00 0"): spm_exact follows
 * libsentencepiece, for models read from a .model file. */
static void viterbi(tokenizer *t, const char *s, size_t n)
{
	struct tok_unigram *u = t->ug;
	if (!n)
		return;
	if (n + 1 > u->best_cap) {
		u->best_cap = 2 * (n + 1);
		u->best = xrealloc(u->best, u->best_cap * sizeof *u->best);
		u->best_start = xrealloc(u->best_start, u->best_cap * sizeof *u->best_start);
		u->best_id = xrealloc(u->best_id, u->best_cap * sizeof *u->best_id);
	}
	double *best = u->best;
	int32_t *from = u->best_start, *bid = u->best_id;
	for (size_t i = 0; i <= n; i++)
		from[i] = -1;
	best[0] = 0;
	const uint8_t *p = (const uint8_t *)s;
	for (size_t start = 0; start < n;) {
		size_t mblen = one_char_len(p[start]);
		if (mblen > n - start)
			mblen = n - start;
		double here = best[start];
		int single = 0;
		uint32_t node = 0;
		for (size_t k = start; k < n; k++) {
			const ug_edge *e = edge_slot(u, node, p[k]);
			if (!e->child)
				break;
			node = e->child;
			int32_t id = e->id;
			if (id < 0)
				continue;
			size_t end = k + 1;
			double cand = u->score[id] + here;
			if (from[end] < 0 || cand > best[end]) {
				best[end] = u->spm_exact ? (double)(float)cand : cand;
				from[end] = (int32_t)start;
				bid[end] = id;
			}
			if (end - start == mblen)
				single = 1;
		}
		if (!single) {
			size_t end = start + mblen;
			double cand = u->spm_exact ? (double)((float)u->unk_score + (float)here) : u->unk_score + here;
			if (from[end] < 0 || cand > best[end]) {
				best[end] = cand;
				from[end] = (int32_t)start;
				bid[end] = -1;
			}
		}
		start += mblen;
	}
	/* backtrack into path (reversed), then emit left to right fusing unknown runs */
	size_t np = 0;
	for (size_t end = n; end > 0; end = (size_t)from[end]) {
		if (np == u->path_cap) {
			u->path_cap = u->path_cap ? 2 * u->path_cap : 64;
			u->path = xrealloc(u->path, u->path_cap * sizeof *u->path);
		}
		u->path[np++] = (int32_t)end;
	}
	size_t pos = 0;
	for (size_t k = np; k-- > 0;) {
		size_t end = (size_t)u->path[k];
		if (bid[end] >= 0) {
			tok_out_push(t, bid[end]);
			pos = end;
			continue;
		}
		size_t unk_start = pos;
		while (k > 0 && bid[u->path[k - 1]] < 0)
			end = (size_t)u->path[--k];
		push_unknown(t, s + unk_start, end - unk_start);
		pos = end;
	}
}

#define UG_CACHE_MAX 50000

/* viterbi through a cache of pre-tokens (words repeat); libsentencepiece's whole-text lattice has none. */
static void viterbi_cached(tokenizer *t, const char *s, size_t n)
{
	if (tok_cache_get(t, s, n))
		return;
	size_t first = t->out_n;
	viterbi(t, s, n);
	if (n > 128)
		return;
	tok_cache_put(t, s, n, first, UG_CACHE_MAX);
}

/* ---------------------------------------------------------------- pre-tokenizer */

/* Metaspace on one pre-token: spaces become the replacement, one is prepended (by the scheme), and the
 * text splits before each replacement. */
static void metaspace_word(tokenizer *t, const char *s, size_t n, int first)
{
	struct tok_unigram *u = t->ug;
	if (!u->metaspace) {
		viterbi_cached(t, s, n);
		return;
	}
	const char *r = u->repl;
	size_t rl = u->repl_len;
	reserve(&u->wbuf, &u->wcap, n * rl + rl + 1);
	size_t o = 0;
	if (!n)
		return;
	/* spaces are replaced first, so a leading space counts as a leading replacement */
	int prepend = u->prepend == PREPEND_ALWAYS || (u->prepend == PREPEND_FIRST && first);
	int starts = s[0] == ' ' || (n >= rl && !memcmp(s, r, rl));
	if (prepend && !starts) {
		memcpy(u->wbuf, r, rl);
		o = rl;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ') {
			memcpy(u->wbuf + o, r, rl);
			o += rl;
		} else {
			u->wbuf[o++] = s[i];
		}
	}
	const char *w = u->wbuf;
	if (u->spm_exact) {
		viterbi(t, w, o);
		return;
	}
	if (!u->split || !rl) {
		viterbi_cached(t, w, o);
		return;
	}
	size_t a = 0;
	for (size_t i = 0; i + rl <= o; i++) {
		if (i > a && w[i] == r[0] && !memcmp(w + i, r, rl)) {
			viterbi_cached(t, w + a, i - a);
			a = i;
		}
	}
	viterbi_cached(t, w + a, o - a);
}

void tok_unigram_segment(tokenizer *t, const char *s, size_t n, int at_start)
{
	struct tok_unigram *u = t->ug;
	int which = 0;
	for (int k = 0; k < u->nsteps; k++) {
		size_t m = apply_step(u, &u->steps[k], s, n, &u->buf[which], &u->buf_cap[which]);
		s = u->buf[which];
		n = m;
		which ^= 1;
	}
	if (!u->ws_split) {
		metaspace_word(t, s, n, at_start);
		return;
	}
	int first = at_start;
	for (size_t i = 0; i < n;) {
		int32_t cp;
		int k = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp);
		if (is_white_space(cp)) {
			i += k;
			continue;
		}
		size_t a = i;
		while (i < n) {
			k = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp);
			if (is_white_space(cp))
				break;
			i += k;
		}
		/* the copy: metaspace_word reuses the buffer s may live in only through wbuf, which is separate */
		metaspace_word(t, s + a, i - a, first);
		first = 0;
	}
}

/* ---------------------------------------------------------------- base64 */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static uint8_t *b64_decode(const char *s, size_t n, size_t *outlen)
{
	int8_t val[256];
	memset(val, -1, sizeof val);
	for (int i = 0; i < 64; i++)
		val[(uint8_t)b64_chars[i]] = (int8_t)i;
	uint8_t *out = xmalloc(n / 4 * 3 + 4);
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c == '=')
			break;
		if (c == '\n' || c == '\r')
			continue;
		if (val[c] < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)val[c];
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	*outlen = o;
	return out;
}

static char *b64_encode(const uint8_t *d, size_t n)
{
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
		*o++ = b64_chars[v >> 18 & 63];
		*o++ = b64_chars[v >> 12 & 63];
		*o++ = i + 1 < n ? b64_chars[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? b64_chars[v & 63] : '=';
	}
	*o = 0;
	return out;
}

/* ---------------------------------------------------------------- setup from tokenizer.json */

static int set_charsmap(struct tok_unigram *u, const char *b64, const char *file, char *err, size_t errlen)
{
	size_t n = 0;
	uint8_t *blob = b64_decode(b64, strlen(b64), &n);
	if (!blob)
		return ERR("%s: Precompiled: precompiled_charsmap is not base64", file);
	free(u->charsmap);
	u->charsmap = blob;
	u->charsmap_len = n;
	u->trie_units = 0;
	if (!n)
		return 0;   /* an empty charsmap changes nothing */
	if (n < 4)
		return ERR("%s: Precompiled: precompiled_charsmap is truncated", file);
	uint32_t tsize = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 | (uint32_t)blob[3] << 24;
	if (tsize > n - 4 || tsize % 4 || tsize < 4)
		return ERR("%s: Precompiled: precompiled_charsmap has a bad trie size (%u of %zu bytes)", file, tsize, n);
	u->trie = blob + 4;
	u->trie_units = tsize / 4;
	u->norm = (const char *)blob + 4 + tsize;
	u->norm_len = n - 4 - tsize;
	for (int b = 0; b < 256; b++) {
		size_t pos = unit_offset(unit_at(u, 0)) ^ (size_t)b;
		u->cm_first[b] = pos < u->trie_units && unit_label(unit_at(u, pos)) == (uint32_t)b;
	}
	return 0;
}

static int add_normalizer(struct tok_unigram *u, json_t *nj, int depth, const char *file, char *err, size_t errlen)
{
	if (!nj || json_is_null(nj))
		return 0;
	const char *type = json_string_value(json_object_get(nj, "type"));
	if (!type)
		return ERR("%s: normalizer has no type", file);
	if (!strcmp(type, "Sequence") && depth < 4) {
		json_t *list = json_object_get(nj, "normalizers"), *x;
		size_t i;
		if (!json_is_array(list))
			return ERR("%s: Sequence normalizer without a normalizers list", file);
		json_array_foreach(list, i, x)
			if (add_normalizer(u, x, depth + 1, file, err, errlen))
				return -1;
		return 0;
	}
	if (u->nsteps >= 16)
		return ERR("%s: too many normalizers", file);
	ug_step st = { 0 };
	if (!strcmp(type, "Precompiled")) {
		const char *cm = json_string_value(json_object_get(nj, "precompiled_charsmap"));
		if (u->charsmap)
			return ERR("%s: more than one Precompiled normalizer is not supported", file);
		if (!cm)
			return ERR("%s: Precompiled normalizer without precompiled_charsmap", file);
		if (set_charsmap(u, cm, file, err, errlen))
			return -1;
		st.kind = STEP_PRECOMPILED;
	} else if (!strcmp(type, "Strip")) {
		st.kind = STEP_STRIP;
		json_t *l = json_object_get(nj, "strip_left"), *r = json_object_get(nj, "strip_right");
		st.left = json_is_boolean(l) ? json_is_true(l) : 1;
		st.right = json_is_boolean(r) ? json_is_true(r) : 1;
	} else if (!strcmp(type, "Replace")) {
		json_t *pat = json_object_get(nj, "pattern");
		const char *content = json_string_value(json_object_get(nj, "content"));
		const char *lit = json_string_value(json_object_get(pat, "String"));
		const char *rx = json_string_value(json_object_get(pat, "Regex"));
		if (!content || (!lit && !rx))
			return ERR("%s: Replace normalizer needs pattern {String|Regex} and content", file);
		st.kind = STEP_REPLACE;
		st.content = xstrdup(content);
		st.clen = strlen(content);
		if (lit) {
			st.pat = xstrdup(lit);
			st.plen = strlen(lit);
		} else {
			int ec;
			PCRE2_SIZE off;
			st.re = pcre2_compile((PCRE2_SPTR)rx, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &off, NULL);
			if (!st.re) {
				free(st.content);
				return ERR("%s: Replace normalizer: regex \"%.60s\" does not compile", file, rx);
			}
			pcre2_jit_compile(st.re, PCRE2_JIT_COMPLETE);
		}
	} else {
		return ERR("%s: normalizer \"%s\" is not supported with Unigram (Precompiled, Strip, Replace, Sequence)",
			   file, type);
	}
	u->steps = xrealloc(u->steps, (u->nsteps + 1) * sizeof *u->steps);
	u->steps[u->nsteps++] = st;
	return 0;
}

static int add_pre_tokenizer(struct tok_unigram *u, json_t *pj, int depth, const char *file, char *err, size_t errlen)
{
	if (!pj || json_is_null(pj))
		return 0;
	const char *type = json_string_value(json_object_get(pj, "type"));
	if (!type)
		return ERR("%s: pre_tokenizer has no type", file);
	if (!strcmp(type, "Sequence") && depth < 4) {
		json_t *list = json_object_get(pj, "pretokenizers"), *x;
		size_t i;
		if (!json_is_array(list))
			return ERR("%s: Sequence pre_tokenizer without a pretokenizers list", file);
		json_array_foreach(list, i, x)
			if (add_pre_tokenizer(u, x, depth + 1, file, err, errlen))
				return -1;
		return 0;
	}
	if (!strcmp(type, "WhitespaceSplit")) {
		if (u->metaspace)
			return ERR("%s: WhitespaceSplit after Metaspace is not supported", file);
		u->ws_split = 1;
		return 0;
	}
	if (!strcmp(type, "Metaspace")) {
		if (u->metaspace)
			return ERR("%s: more than one Metaspace pre_tokenizer", file);
		const char *r = json_string_value(json_object_get(pj, "replacement"));
		if (!r)
			r = METASPACE;
		size_t rl = strlen(r);
		int32_t cp;
		if (!rl || rl > 4 || tok_utf8_decode((const uint8_t *)r, rl, &cp) != (int)rl)
			return ERR("%s: Metaspace replacement must be one character", file);
		memcpy(u->repl, r, rl);
		u->repl_len = rl;
		u->metaspace = 1;
		const char *scheme = json_string_value(json_object_get(pj, "prepend_scheme"));
		json_t *aps = json_object_get(pj, "add_prefix_space");
		if (scheme) {
			if (!strcmp(scheme, "always"))
				u->prepend = PREPEND_ALWAYS;
			else if (!strcmp(scheme, "first"))
				u->prepend = PREPEND_FIRST;
			else if (!strcmp(scheme, "never"))
				u->prepend = PREPEND_NEVER;
			else
				return ERR("%s: Metaspace prepend_scheme \"%s\" (always, first, never)", file, scheme);
		} else {
			u->prepend = !json_is_boolean(aps) || json_is_true(aps) ? PREPEND_ALWAYS : PREPEND_NEVER;
		}
		json_t *sp = json_object_get(pj, "split");
		u->split = json_is_boolean(sp) ? json_is_true(sp) : 1;
		return 0;
	}
	return ERR("%s: pre_tokenizer \"%s\" is not supported with Unigram (Metaspace, WhitespaceSplit, Sequence)", file,
		   type);
}

int tok_unigram_setup(tokenizer *t, const double *scores, int n, int32_t unk_id, int byte_fallback, json_t *normalizer,
		      json_t *pre, json_t *decoder, const char *file, char *err, size_t errlen)
{
	struct tok_unigram *u = xcalloc(1, sizeof *u);
	t->ug = u;
	if (unk_id < 0 || unk_id >= n || !t->id_tok[unk_id])
		return ERR("%s: Unigram unk_id %d is not in the vocabulary of %d pieces", file, (int)unk_id, n);
	t->unk_id = unk_id;
	u->byte_fallback = byte_fallback;
	u->score = xmalloc((size_t)(t->nid > 0 ? t->nid : 1) * sizeof *u->score);
	double min_score = INFINITY;
	u->nscore = t->nid;
	for (int i = 0; i < t->nid; i++) {
		u->score[i] = i < n ? scores[i] : 0;
		if (i < n && scores[i] < min_score)
			min_score = scores[i];
	}
	u->unk_score = (isfinite(min_score) ? min_score : 0) - 10.0;
	for (int b = 0; b < 256; b++) {
		char name[8];
		snprintf(name, sizeof name, "<0x%02X>", b);
		u->byte_id[b] = tok_map_get(&t->vocab, name, 6);
	}
	u->nnodes = 1;   /* the root */
	for (int b = 0; b < 256; b++)
		u->root[b].id = -1;
	/* a table that holds every edge without growing: at most one per piece byte */
	size_t bytes = 0;
	for (int i = 0; i < n && i < t->nid; i++)
		bytes += t->id_tok[i] ? strlen(t->id_tok[i]) : 0;
	u->edge_cap = 1024;
	while (u->edge_cap * 3 < bytes * 4)
		u->edge_cap *= 2;
	u->edge = edge_table(u->edge_cap);
	/* pieces the lattice may use: all but the unknown piece, and the byte pieces when they are fallbacks
	 * (libsentencepiece leaves them out; the tokenizers library would match "<0x41>" typed in the text) */
	for (int i = 0; i < n && i < t->nid; i++) {
		const char *p = t->id_tok[i];
		if (!p || i == unk_id || !*p)
			continue;
		size_t len = strlen(p);
		if (tok_map_get(&t->vocab, p, len) != i)
			continue;   /* a duplicate piece: the map keeps the later id */
		if (byte_fallback && len == 6 && !strncmp(p, "<0x", 3) && p[5] == '>')
			continue;
		if (trie_insert(u, p, len, i))
			return ERR("%s: Unigram vocabulary too large (over 16M trie nodes)", file);
	}
	if (add_normalizer(u, normalizer, 0, file, err, errlen) || add_pre_tokenizer(u, pre, 0, file, err, errlen))
		return -1;
	u->j_normalizer = normalizer ? json_deep_copy(normalizer) : NULL;
	u->j_pre = pre ? json_deep_copy(pre) : NULL;
	u->j_decoder = decoder ? json_deep_copy(decoder) : NULL;
	return 0;
}

void tok_unigram_free(struct tok_unigram *u)
{
	if (!u)
		return;
	free(u->score);
	free(u->edge);
	free(u->charsmap);
	for (int k = 0; k < u->nsteps; k++) {
		free(u->steps[k].pat);
		free(u->steps[k].content);
		if (u->steps[k].re)
			pcre2_code_free(u->steps[k].re);
	}
	free(u->steps);
	json_decref(u->j_normalizer);
	json_decref(u->j_pre);
	json_decref(u->j_decoder);
	free(u->spm_raw);
	free(u->buf[0]);
	free(u->buf[1]);
	free(u->wbuf);
	free(u->best);
	free(u->best_start);
	free(u->best_id);
	free(u->path);
	if (u->md)
		pcre2_match_data_free(u->md);
	free(u);
}

/* ---------------------------------------------------------------- saving */

/* Fills the parts of tokenizer.json that belong to the Unigram model. */
void tok_unigram_save(const tokenizer *t, json_t *root)
{
	const struct tok_unigram *u = t->ug;
	json_object_set_new(root, "normalizer", u->j_normalizer ? json_deep_copy(u->j_normalizer) : json_null());
	json_object_set_new(root, "pre_tokenizer", u->j_pre ? json_deep_copy(u->j_pre) : json_null());
	json_t *post = json_null();
	if (t->npre == 1 && t->nsuf == 1 && t->id_tok[t->pre[0]] && t->id_tok[t->suf[0]]) {
		const char *cls = t->id_tok[t->pre[0]], *sep = t->id_tok[t->suf[0]];
		json_t *single = json_pack("[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}]", "SpecialToken", "id", cls,
					   "type_id", 0, "Sequence", "id", "A", "type_id", 0, "SpecialToken", "id", sep,
					   "type_id", 0);
		json_t *pair = json_pack("[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}},"
					 " {s:{s:s, s:i}}, {s:{s:s, s:i}}]", "SpecialToken", "id", cls, "type_id", 0,
					 "Sequence", "id", "A", "type_id", 0, "SpecialToken", "id", sep, "type_id", 0,
					 "SpecialToken", "id", sep, "type_id", 0, "Sequence", "id", "B", "type_id", 0,
					 "SpecialToken", "id", sep, "type_id", 0);
		json_t *specials = json_object();
		json_object_set_new(specials, cls, json_pack("{s:s, s:[i], s:[s]}", "id", cls, "ids", (int)t->pre[0],
								     "tokens", cls));
		json_object_set_new(specials, sep, json_pack("{s:s, s:[i], s:[s]}", "id", sep, "ids", (int)t->suf[0],
								     "tokens", sep));
		post = json_pack("{s:s, s:o, s:o, s:o}", "type", "TemplateProcessing", "single", single, "pair", pair,
				 "special_tokens", specials);
	}
	json_object_set_new(root, "post_processor", post);
	json_object_set_new(root, "decoder", u->j_decoder ? json_deep_copy(u->j_decoder) : json_null());
	json_t *vocab = json_array();
	for (int i = 0; i < u->nscore; i++)
		json_array_append_new(vocab, json_pack("[s, f]", t->id_tok[i] ? t->id_tok[i] : "", u->score[i]));
	json_t *model = json_pack("{s:s, s:i, s:o, s:b}", "type", "Unigram", "unk_id", (int)t->unk_id, "vocab", vocab,
				  "byte_fallback", u->byte_fallback);
	json_object_set_new(root, "model", model);
}

/* The .model the tokenizer came from (NULL when it came from tokenizer.json), for sentencepiece.bpe.model. */
const uint8_t *tok_unigram_spm(const tokenizer *t, size_t *len)
{
	*len = t->ug ? t->ug->spm_raw_len : 0;
	return t->ug ? t->ug->spm_raw : NULL;
}

/* Keeps the .model for saving and switches to libsentencepiece's arithmetic. */
void tok_unigram_keep_spm(tokenizer *t, const uint8_t *data, size_t n)
{
	t->ug->spm_exact = 1;
	t->ug->unk_score = (double)((float)(t->ug->unk_score + 10.0) - 10.0f);
	free(t->ug->spm_raw);
	t->ug->spm_raw = xmalloc(n ? n : 1);
	memcpy(t->ug->spm_raw, data, n);
	t->ug->spm_raw_len = n;
}

/* ---------------------------------------------------------------- SentencePiece ModelProto */

typedef struct {
	const uint8_t *p, *end;
} pb_reader;

static int pb_varint(pb_reader *r, uint64_t *v)
{
	uint64_t x = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end)
			return -1;
		uint8_t b = *r->p++;
		x |= (uint64_t)(b & 0x7F) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

/* The next field: its number, wire type, and value (varint / fixed) or bytes (length-delimited).
 * 1: a field, 0: end of message, -1: malformed. */
static int pb_next(pb_reader *r, uint32_t *field, int *wire, uint64_t *val, const uint8_t **data, size_t *len)
{
	if (r->p >= r->end)
		return 0;
	uint64_t key;
	if (pb_varint(r, &key) || key >> 32 || (key >> 3) == 0)
		return -1;
	*field = (uint32_t)(key >> 3);
	*wire = (int)(key & 7);
	switch (*wire) {
	case 0:
		return pb_varint(r, val) ? -1 : 1;
	case 1:
		if (r->end - r->p < 8)
			return -1;
		*val = 0;
		for (int k = 7; k >= 0; k--)
			*val = *val << 8 | r->p[k];
		r->p += 8;
		return 1;
	case 5:
		if (r->end - r->p < 4)
			return -1;
		*val = (uint64_t)r->p[0] | (uint64_t)r->p[1] << 8 | (uint64_t)r->p[2] << 16 | (uint64_t)r->p[3] << 24;
		r->p += 4;
		return 1;
	case 2: {
		uint64_t n;
		if (pb_varint(r, &n) || n > (uint64_t)(r->end - r->p))
			return -1;
		*data = r->p;
		*len = (size_t)n;
		r->p += n;
		return 1;
	}
	}
	return -1;   /* groups (3, 4) and unknown wire types */
}

enum { SPM_NORMAL = 1, SPM_UNKNOWN = 2, SPM_CONTROL = 3, SPM_USER_DEFINED = 4, SPM_UNUSED = 5, SPM_BYTE = 6 };

typedef struct {
	char *piece;
	float score;
	int type;
} spm_piece;

static json_t *added_token(const char *content, int id, int special, int lstrip)
{
	return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content, "single_word", 0, "lstrip",
			 lstrip, "rstrip", 0, "normalized", 0, "special", special);
}

/* Parses a SentencePiece model (ModelProto) and returns the tokenizer.json (a jansson tree) that
 * transformers' XLMRobertaConverter makes of it, except that byte_fallback is kept (libsentencepiece and the
 * slow tokenizer use it; the converter drops it with a warning). NULL with err set when malformed or not a
 * Unigram model laid out as XLM-R's (<unk>, <s>, </s> first). */
json_t *tok_spm_to_json(const uint8_t *data, size_t size, const char *file, char *err, size_t errlen)
{
	pb_reader r = { data, data + size };
	spm_piece *pieces = NULL;
	size_t np = 0, cap = 0;
	int model_type = 1, byte_fallback = 0, unk_id = 0, suffix = 0;
	const uint8_t *charsmap = NULL;
	size_t charsmap_len = 0;
	json_t *root = NULL;
	uint32_t f;
	int w, rc;
	uint64_t v;
	const uint8_t *d;
	size_t dl;
	while ((rc = pb_next(&r, &f, &w, &v, &d, &dl)) == 1) {
		if (f == 1 && w == 2) {
			pb_reader pr = { d, d + dl };
			spm_piece sp = { NULL, 0, SPM_NORMAL };
			size_t plen = 0;
			uint32_t g;
			int gw, prc;
			uint64_t gv;
			const uint8_t *gd;
			size_t gl;
			while ((prc = pb_next(&pr, &g, &gw, &gv, &gd, &gl)) == 1) {
				if (g == 1 && gw == 2) {
					free(sp.piece);
					sp.piece = xmalloc(gl + 1);
					memcpy(sp.piece, gd, gl);
					sp.piece[gl] = 0;
					plen = gl;
				} else if (g == 2 && gw == 5) {
					uint32_t bits = (uint32_t)gv;
					memcpy(&sp.score, &bits, 4);
				} else if (g == 3 && gw == 0) {
					sp.type = (int)gv;
				}
			}
			if (prc < 0 || !sp.piece || !plen || strlen(sp.piece) != plen || tok_utf8_invalid(sp.piece, plen) ||
			    !isfinite(sp.score) || fabsf(sp.score) > 1e30f) {
				free(sp.piece);
				ERR("%s: piece %zu is malformed, empty, not UTF-8 or has no finite score", file, np);
				goto fail;
			}
			if (np == cap) {
				cap = cap ? 2 * cap : 1024;
				pieces = xrealloc(pieces, cap * sizeof *pieces);
			}
			pieces[np++] = sp;
			if (np > 10000000) {
				ERR("%s: too many pieces", file);
				goto fail;
			}
		} else if (f == 2 && w == 2) {
			pb_reader tr = { d, d + dl };
			uint32_t g;
			int gw, trc;
			uint64_t gv;
			const uint8_t *gd;
			size_t gl;
			while ((trc = pb_next(&tr, &g, &gw, &gv, &gd, &gl)) == 1) {
				if (gw != 0)
					continue;
				if (g == 3)
					model_type = (int)gv;
				else if (g == 35)
					byte_fallback = gv != 0;
				else if (g == 40)
					unk_id = (int)(int32_t)gv;
				else if (g == 24)
					suffix = gv != 0;
			}
			if (trc < 0) {
				ERR("%s: trainer_spec is malformed", file);
				goto fail;
			}
		} else if (f == 3 && w == 2) {
			pb_reader nr = { d, d + dl };
			uint32_t g;
			int gw, nrc;
			uint64_t gv;
			const uint8_t *gd;
			size_t gl;
			while ((nrc = pb_next(&nr, &g, &gw, &gv, &gd, &gl)) == 1)
				if (g == 2 && gw == 2)
					charsmap = gd, charsmap_len = gl;
			if (nrc < 0) {
				ERR("%s: normalizer_spec is malformed", file);
				goto fail;
			}
		}
	}
	if (rc < 0) {
		ERR("%s: not a SentencePiece model (malformed protobuf)", file);
		goto fail;
	}
	if (model_type != 1) {
		ERR("%s: SentencePiece model type %d is not supported (Unigram only)", file, model_type);
		goto fail;
	}
	if (suffix) {
		ERR("%s: treat_whitespace_as_suffix is not supported", file);
		goto fail;
	}
	if (np < 3 || unk_id != 0 || pieces[0].type != SPM_UNKNOWN || pieces[1].type != SPM_CONTROL ||
	    pieces[2].type != SPM_CONTROL) {
		ERR("%s: not laid out as XLM-R's SentencePiece model (<unk>, <s>, </s> as pieces 0-2)", file);
		goto fail;
	}
	if (np > 50000000) {
		ERR("%s: too many pieces", file);
		goto fail;
	}
	root = json_object();
	json_object_set_new(root, "version", json_string("1.0"));
	json_object_set_new(root, "truncation", json_null());
	json_object_set_new(root, "padding", json_null());
	json_t *added = json_array();
	json_array_append_new(added, added_token("<s>", 0, 1, 0));
	json_array_append_new(added, added_token("<pad>", 1, 1, 0));
	json_array_append_new(added, added_token("</s>", 2, 1, 0));
	json_array_append_new(added, added_token("<unk>", 3, 1, 0));
	for (size_t i = 3; i < np; i++)
		if (pieces[i].type == SPM_CONTROL || pieces[i].type == SPM_USER_DEFINED)
			json_array_append_new(added, added_token(pieces[i].piece, (int)i + 1, pieces[i].type == SPM_CONTROL, 0));
	json_array_append_new(added, added_token("<mask>", (int)np + 1, 1, 1));
	json_object_set_new(root, "added_tokens", added);
	json_t *norms = json_array();
	if (charsmap_len) {
		char *b64 = b64_encode(charsmap, charsmap_len);
		json_array_append_new(norms, json_pack("{s:s, s:s}", "type", "Precompiled", "precompiled_charsmap", b64));
		free(b64);
	}
	json_array_append_new(norms, json_pack("{s:s, s:b, s:b}", "type", "Strip", "strip_left", 0, "strip_right", 1));
	json_array_append_new(norms, json_pack("{s:s, s:{s:s}, s:s}", "type", "Replace", "pattern", "Regex", " {2,}",
					       "content", METASPACE));
	json_object_set_new(root, "normalizer", json_pack("{s:s, s:o}", "type", "Sequence", "normalizers", norms));
	json_object_set_new(root, "pre_tokenizer", json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement",
							     METASPACE, "prepend_scheme", "always", "split", 1));
	json_object_set_new(root, "post_processor", json_null());
	json_object_set_new(root, "decoder", json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement",
						       METASPACE, "prepend_scheme", "always", "split", 1));
	json_t *vocab = json_array();
	json_array_append_new(vocab, json_pack("[s, f]", "<s>", 0.0));
	json_array_append_new(vocab, json_pack("[s, f]", "<pad>", 0.0));
	json_array_append_new(vocab, json_pack("[s, f]", "</s>", 0.0));
	json_array_append_new(vocab, json_pack("[s, f]", "<unk>", 0.0));
	for (size_t i = 3; i < np; i++)
		json_array_append_new(vocab, json_pack("[s, f]", pieces[i].piece, (double)pieces[i].score));
	json_array_append_new(vocab, json_pack("[s, f]", "<mask>", 0.0));
	json_object_set_new(root, "model", json_pack("{s:s, s:i, s:o, s:b}", "type", "Unigram", "unk_id", 3, "vocab", vocab,
						     "byte_fallback", byte_fallback));
	/* the XLM-R template; the loader reads it like any tokenizer.json's */
	json_t *tp = json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]},"
			       " s:{s:s, s:[i], s:[s]}}}", "type", "TemplateProcessing", "single", "SpecialToken", "id",
			       "<s>", "type_id", 0, "Sequence", "id", "A", "type_id", 0, "SpecialToken", "id", "</s>",
			       "type_id", 0, "special_tokens", "<s>", "id", "<s>", "ids", 0, "tokens", "<s>", "</s>", "id",
			       "</s>", "ids", 2, "tokens", "</s>");
	json_object_set_new(root, "post_processor", tp);
fail:
	for (size_t i = 0; i < np; i++)
		free(pieces[i].piece);
	free(pieces);
	return root;
}
