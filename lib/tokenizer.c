/* tokenizer.c: BERT WordPiece and GPT-2/RoBERTa byte-level BPE, matching the Hugging Face `tokenizers`
 * library id for id (docs/tokenizers.md). Unicode properties come from utf8proc, the GPT-2 pre-tokenizer
 * regex runs on PCRE2, JSON goes through jansson. Loading and saving live in tokenizer_io.c. */
#define _GNU_SOURCE
#define TOKENIZER_INTERNAL
#include "st.h"
#include "tokenizer.h"

#include <stdio.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- hash maps */

uint64_t tok_hash(const char *s, size_t n)
{
	/* FNV-1a; keys are short (vocabulary pieces) */
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
	return h ^ (h >> 29);
}

static void map_resize(tok_map *m, size_t ncap)
{
	tok_slot *ns = xcalloc(ncap, sizeof *ns);
	for (size_t i = 0; i < m->cap; i++) {
		tok_slot *s = &m->slots[i];
		if (!s->key)
			continue;
		size_t j = s->h & (ncap - 1);
		while (ns[j].key)
			j = (j + 1) & (ncap - 1);
		ns[j] = *s;
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
}

static void map_grow(tok_map *m)
{
	map_resize(m, m->cap ? m->cap * 2 : 64);
}

void tok_map_reserve(tok_map *m, size_t n)
{
	size_t cap = m->cap ? m->cap : 64;
	while ((n + 1) * 4 >= cap * 3)   /* the load limit of tok_map_put */
		cap *= 2;
	if (cap > m->cap)
		map_resize(m, cap);
}

int32_t tok_map_get(const tok_map *m, const char *key, size_t n)
{
	if (!m->cap)
		return -1;
	uint64_t h = tok_hash(key, n);
	size_t j = h & (m->cap - 1);
	for (;;) {
		const tok_slot *s = &m->slots[j];
		if (!s->key)
			return -1;
		if (s->h == h && s->len == n && !memcmp(s->key, key, n))
			return s->val;
		j = (j + 1) & (m->cap - 1);
	}
}

/* key must stay valid as long as the map (it is not copied). A key already present gets the new value. */
void tok_map_put(tok_map *m, const char *key, size_t n, int32_t val)
{
	if ((m->n + 1) * 4 >= m->cap * 3)
		map_grow(m);
	uint64_t h = tok_hash(key, n);
	size_t j = h & (m->cap - 1);
	for (;;) {
		tok_slot *s = &m->slots[j];
		if (!s->key) {
			s->key = key;
			s->len = (uint32_t)n;
			s->h = h;
			s->val = val;
			m->n++;
			return;
		}
		if (s->h == h && s->len == n && !memcmp(s->key, key, n)) {
			s->val = val;
			return;
		}
		j = (j + 1) & (m->cap - 1);
	}
}

void tok_map_free(tok_map *m, int free_keys)
{
	if (free_keys)
		for (size_t i = 0; i < m->cap; i++)
			free((char *)m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof *m);
}

static uint64_t pair_hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}

#define PAIR_EMPTY UINT64_MAX

int tok_pairs_get(const tok_pairs *p, int32_t a, int32_t b, int32_t *rank, int32_t *merged)
{
	if (!p->cap)
		return 0;
	uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	size_t j = pair_hash(k) & (p->cap - 1);
	for (;;) {
		const tok_pair_slot *s = &p->slots[j];
		if (s->key == PAIR_EMPTY)
			return 0;
		if (s->key == k) {
			*rank = s->rank;
			*merged = s->merged;
			return 1;
		}
		j = (j + 1) & (p->cap - 1);
	}
}

/* The first rank given for a pair wins (a later duplicate line of merges.txt is ignored, as in tokenizers). */
void tok_pairs_put(tok_pairs *p, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
	if ((p->n + 1) * 2 >= p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 1024;
		tok_pair_slot *ns = xmalloc(ncap * sizeof *ns);
		for (size_t i = 0; i < ncap; i++)
			ns[i].key = PAIR_EMPTY;
		for (size_t i = 0; i < p->cap; i++) {
			if (p->slots[i].key == PAIR_EMPTY)
				continue;
			size_t j = pair_hash(p->slots[i].key) & (ncap - 1);
			while (ns[j].key != PAIR_EMPTY)
				j = (j + 1) & (ncap - 1);
			ns[j] = p->slots[i];
		}
		free(p->slots);
		p->slots = ns;
		p->cap = ncap;
	}
	uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	size_t j = pair_hash(k) & (p->cap - 1);
	while (p->slots[j].key != PAIR_EMPTY) {
		if (p->slots[j].key == k)
			return;
		j = (j + 1) & (p->cap - 1);
	}
	p->slots[j].key = k;
	p->slots[j].rank = rank;
	p->slots[j].merged = merged;
	p->n++;
}

/* ---------------------------------------------------------------- UTF-8 */

/* Decodes one code point; an ill-formed sequence gives *cp = -1 and consumes its maximal subpart (at least
 * one byte), the replacement practice of Unicode chapter 3 and of Python's errors="replace". */
int tok_utf8_decode(const uint8_t *s, size_t n, int32_t *cp)
{
	uint8_t b = s[0];
	if (b < 0x80) {
		*cp = b;
		return 1;
	}
	int need;
	int32_t c;
	uint8_t lo = 0x80, hi = 0xBF;
	if (b >= 0xC2 && b <= 0xDF) {
		need = 1;
		c = b & 0x1F;
	} else if (b >= 0xE0 && b <= 0xEF) {
		need = 2;
		c = b & 0x0F;
		if (b == 0xE0)
			lo = 0xA0;
		if (b == 0xED)
			hi = 0x9F;   /* no surrogates */
	} else if (b >= 0xF0 && b <= 0xF4) {
		need = 3;
		c = b & 0x07;
		if (b == 0xF0)
			lo = 0x90;
		if (b == 0xF4)
			hi = 0x8F;
	} else {
		*cp = -1;
		return 1;
	}
	for (int i = 1; i <= need; i++) {
		if ((size_t)i >= n || s[i] < lo || s[i] > hi) {
			*cp = -1;
			return i;
		}
		lo = 0x80;
		hi = 0xBF;
		c = c << 6 | (s[i] & 0x3F);
	}
	*cp = c;
	return need + 1;
}

int tok_utf8_encode(int32_t c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xC0 | c >> 6);
		out[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xE0 | c >> 12);
		out[1] = (char)(0x80 | (c >> 6 & 0x3F));
		out[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | c >> 18);
	out[1] = (char)(0x80 | (c >> 12 & 0x3F));
	out[2] = (char)(0x80 | (c >> 6 & 0x3F));
	out[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

/* Number of ill-formed subparts in s (0 when valid). */
size_t tok_utf8_invalid(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t bad = 0;
	for (size_t i = 0; i < n;) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		int32_t cp;
		i += tok_utf8_decode(p + i, n - i, &cp);
		bad += cp < 0;
	}
	return bad;
}

/* A copy of s with every ill-formed subpart replaced by U+FFFD (EF BF BD). */
char *tok_utf8_repair(const char *s, size_t n, size_t *outlen)
{
	char *out = xmalloc(xmul(n + 1, 3));
	const uint8_t *p = (const uint8_t *)s;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		int32_t cp;
		int k = tok_utf8_decode(p + i, n - i, &cp);
		if (cp < 0) {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
		} else {
			memcpy(out + o, s + i, k);
			o += k;
		}
		i += k;
	}
	out[o] = 0;
	*outlen = o;
	return out;
}

/* ---------------------------------------------------------------- Unicode classes (Rust tokenizers rules) */

/* char::is_whitespace: the White_Space property = Zs, Zl, Zp, U+0009..000D, U+0085. */
int tok_is_ws(int32_t c)
{
	if (c < 0x80)
		return c == ' ' || (c >= 9 && c <= 13);
	if (c == 0x85)
		return 1;
	int cat = utf8proc_category(c);
	return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

/* BertNormalizer's is_control: Cc, Cf, Co except tab, newline, carriage return. */
static int is_control(int32_t c)
{
	if (c == '\t' || c == '\n' || c == '\r')
		return 0;
	int cat = utf8proc_category(c);
	return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO;
}

/* BertPreTokenizer: ASCII punctuation (which includes $ + < = > ^ ` | ~) or Unicode P*. */
static int is_punct(int32_t c)
{
	if (c < 0x80)
		return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
	int cat = utf8proc_category(c);
	return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

static int is_cjk(int32_t c)
{
	return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
	       (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
	       (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* ---------------------------------------------------------------- BERT normalizer + pre-tokenizer */

enum { ASC_CHAR, ASC_DROP, ASC_SPLIT, ASC_PUNCT };

void tok_bert_init(tok_bert *bn, int clean, int chinese, int strip, int lower)
{
	bn->clean = clean;
	bn->chinese = chinese;
	bn->strip = strip;
	bn->lower = lower;
	for (int c = 0; c < 128; c++) {
		bn->low[c] = (char)(lower && c >= 'A' && c <= 'Z' ? c + 32 : c);
		if (clean && (c == 0 || is_control(c)))
			bn->cls[c] = ASC_DROP;
		else if (tok_is_ws(c))
			bn->cls[c] = ASC_SPLIT;
		else if (is_punct(c))
			bn->cls[c] = ASC_PUNCT;
		else
			bn->cls[c] = ASC_CHAR;
	}
}

typedef struct {
	char *w;
	size_t len, cap;
	int nchars;
	tok_word_fn fn;
	void *ctx;
	int stop;
} wstate;

static inline void ws_flush(wstate *st)
{
	if (st->len) {
		if (st->fn(st->ctx, st->w, st->len, st->nchars))
			st->stop = 1;
		st->len = 0;
		st->nchars = 0;
	}
}

static inline void ws_reserve(wstate *st, size_t more)
{
	if (st->len + more > st->cap) {
		st->cap = (st->len + more) * 2;
		st->w = xrealloc(st->w, st->cap);
	}
}

static inline void ws_put(wstate *st, int32_t c)
{
	ws_reserve(st, 4);
	st->len += tok_utf8_encode(c, st->w + st->len);
	st->nchars++;
}

/* A normalized character reaches the pre-tokenizer: split on whitespace, isolate punctuation. */
static inline void ws_emit(wstate *st, int32_t c)
{
	if (tok_is_ws(c)) {
		ws_flush(st);
	} else if (is_punct(c)) {
		ws_flush(st);
		ws_put(st, c);
		ws_flush(st);
	} else {
		ws_put(st, c);
	}
}

static void emit_lower(const tok_bert *bn, wstate *st, int32_t c)
{
	if (!bn->lower) {
		ws_emit(st, c);
	} else if (c == 0x130) {
		/* the one unconditional multi-character lower-case mapping: İ -> i + combining dot above */
		ws_emit(st, 'i');
		ws_emit(st, 0x307);
	} else {
		ws_emit(st, utf8proc_tolower(c));
	}
}

/* Strip accents, then lowercase (the Rust BertNormalizer order). */
static void emit_accents(const tok_bert *bn, wstate *st, int32_t c)
{
	if (bn->strip) {
		utf8proc_int32_t d[32];
		int last = 0;
		utf8proc_ssize_t nd = utf8proc_decompose_char(c, d, 32, UTF8PROC_DECOMPOSE, &last);
		if (nd < 1 || nd > 32) {
			d[0] = c;
			nd = 1;
		}
		for (utf8proc_ssize_t k = 0; k < nd; k++)
			if (utf8proc_category(d[k]) != UTF8PROC_CATEGORY_MN)
				emit_lower(bn, st, d[k]);
	} else {
		emit_lower(bn, st, c);
	}
}

/* Runs normalizer + pre-tokenizer over valid UTF-8, calling fn for each word until fn returns nonzero.
 * wbuf, wcap: a reusable word buffer. */
void tok_bert_words(const tok_bert *bn, const char *s, size_t n, char **wbuf, size_t *wcap, tok_word_fn fn, void *ctx)
{
	wstate st = { .w = *wbuf, .cap = *wcap, .fn = fn, .ctx = ctx };
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;
	while (i < n && !st.stop) {
		uint8_t b = p[i];
		if (b < 0x80) {
			switch (bn->cls[b]) {
			case ASC_CHAR:
				ws_reserve(&st, 1);
				st.w[st.len++] = bn->low[b];
				st.nchars++;
				break;
			case ASC_SPLIT:
				ws_flush(&st);
				break;
			case ASC_PUNCT:
				ws_flush(&st);
				ws_reserve(&st, 1);
				st.w[st.len++] = (char)b;
				st.nchars = 1;
				ws_flush(&st);
				break;
			default:
				break;
			}
			i++;
			continue;
		}
		int32_t c;
		i += tok_utf8_decode(p + i, n - i, &c);
		if (c < 0)
			c = 0xFFFD;   /* callers repair the text first; this keeps a stray byte harmless */
		if (bn->clean) {
			if (c == 0xFFFD || is_control(c))
				continue;
			if (tok_is_ws(c)) {
				ws_flush(&st);
				continue;
			}
		}
		if (bn->chinese && is_cjk(c)) {
			ws_flush(&st);
			emit_accents(bn, &st, c);
			ws_flush(&st);
			continue;
		}
		emit_accents(bn, &st, c);
	}
	if (!st.stop)
		ws_flush(&st);
	*wbuf = st.w;
	*wcap = st.cap;
}

struct words_cb {
	void (*fn)(void *ctx, const char *word, size_t len);
	void *ctx;
};

static int words_cb(void *ctx, const char *w, size_t n, int nchars)
{
	struct words_cb *c = ctx;
	c->fn(c->ctx, w, n);
	return 0;
}

void tokenizer_bert_words(int lowercase, const char *text, size_t len,
			  void (*fn)(void *ctx, const char *word, size_t len), void *ctx)
{
	tok_bert bn;
	tok_bert_init(&bn, 1, 1, lowercase, lowercase);
	char *buf = NULL;
	size_t cap = 0, n = len;
	char *fixed = NULL;
	if (tok_utf8_invalid(text, len))
		text = fixed = tok_utf8_repair(text, len, &n);
	struct words_cb c = { fn, ctx };
	tok_bert_words(&bn, text, n, &buf, &cap, words_cb, &c);
	free(buf);
	free(fixed);
}

/* ---------------------------------------------------------------- word cache */

int tok_cache_get(tokenizer *t, const char *s, size_t n)
{
	int32_t at = tok_map_get(&t->bpe_cache, s, n);
	if (at < 0)
		return 0;
	for (int32_t k = 0; k < t->cache_ids[at]; k++)
		tok_out_push(t, t->cache_ids[at + 1 + k]);
	return 1;
}

void tok_cache_put(tokenizer *t, const char *s, size_t n, size_t first, size_t max_words)
{
	if (t->bpe_cache.n >= max_words) {
		tok_map_free(&t->bpe_cache, 1);
		t->cache_n = 0;
	}
	size_t cnt = t->out_n - first;
	if (t->cache_n + cnt + 1 > t->cache_cap) {
		t->cache_cap = (t->cache_n + cnt + 1) * 2;
		t->cache_ids = xrealloc(t->cache_ids, t->cache_cap * sizeof *t->cache_ids);
	}
	int32_t pos = (int32_t)t->cache_n;
	t->cache_ids[t->cache_n++] = (int32_t)cnt;
	memcpy(t->cache_ids + t->cache_n, t->out + first, cnt * sizeof *t->out);
	t->cache_n += cnt;
	char *key = xmalloc(n + 1);
	memcpy(key, s, n);
	key[n] = 0;
	tok_map_put(&t->bpe_cache, key, n, pos);
}

/* ---------------------------------------------------------------- WordPiece */

/* Greedy longest-match-first; the whole word becomes [UNK] when a position has no match. */
static int wordpiece_word(void *ctx, const char *w, size_t n, int nchars)
{
	tokenizer *t = ctx;
	if (nchars > t->wp_max_chars) {
		tok_out_push(t, t->unk_id);
		return t->out_n >= t->out_limit;
	}
	size_t mark = t->out_n;
	size_t start = 0;
	while (start < n) {
		const tok_map *m = start ? &t->wp_cont : &t->vocab;
		size_t maxb = start ? t->wp_cont_maxlen : t->vocab_maxlen;
		size_t end = n - start > maxb ? start + maxb : n;
		int32_t id = -1;
		while (end > start) {
			if (end == n || ((uint8_t)w[end] & 0xC0) != 0x80) {
				id = tok_map_get(m, w + start, end - start);
				if (id >= 0)
					break;
			}
			end--;
		}
		if (id < 0) {
			t->out_n = mark;
			if (t->unk_id >= 0)
				tok_out_push(t, t->unk_id);
			return t->out_n >= t->out_limit;
		}
		tok_out_push(t, id);
		start = end;
	}
	return t->out_n >= t->out_limit;
}

static void wordpiece_segment(tokenizer *t, const char *s, size_t n)
{
	tok_bert_words(&t->bert, s, n, &t->wbuf, &t->wcap, wordpiece_word, t);
}

/* ---------------------------------------------------------------- byte-level BPE */

/* GPT-2's byte -> printable code point map: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in increasing byte order. */
void tok_byte_map(int32_t map[256])
{
	int next = 256;
	for (int b = 0; b < 256; b++) {
		int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
		map[b] = printable ? b : next++;
	}
}

typedef struct {
	int32_t rank, pos, merged;
} bpe_merge;

static inline int merge_less(const bpe_merge *a, const bpe_merge *b)
{
	return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(tokenizer *t, bpe_merge m)
{
	if (t->heap_n == t->heap_cap) {
		t->heap_cap = t->heap_cap ? t->heap_cap * 2 : 64;
		t->heap = xrealloc(t->heap, t->heap_cap * sizeof(bpe_merge));
	}
	bpe_merge *h = t->heap;
	size_t i = t->heap_n++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!merge_less(&m, &h[parent]))
			break;
		h[i] = h[parent];
		i = parent;
	}
	h[i] = m;
}

static bpe_merge heap_pop(tokenizer *t)
{
	bpe_merge *h = t->heap;
	bpe_merge top = h[0], last = h[--t->heap_n];
	size_t i = 0, n = t->heap_n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && merge_less(&h[c + 1], &h[c]))
			c++;
		if (!merge_less(&h[c], &last))
			break;
		h[i] = h[c];
		i = c;
	}
	if (n)
		h[i] = last;
	return top;
}

typedef struct {
	int32_t id, prev, next, alive;
} bpe_sym;

static void try_pair(tokenizer *t, const bpe_sym *sym, int32_t left)
{
	int32_t right = sym[left].next, rank, merged;
	if (right >= 0 && tok_pairs_get(&t->merges, sym[left].id, sym[right].id, &rank, &merged))
		heap_push(t, (bpe_merge){ rank, left, merged });
}

/* BPE of one pre-token (bytes): lowest-ranked adjacent pair first, leftmost among equal ranks, as the Rust
 * Word::merge_all does. Appends the ids to t->out. */
static void bpe_word(tokenizer *t, const char *s, size_t n)
{
	if (t->bpe_ignore_merges) {
		int32_t id = tok_map_get(&t->vocab, t->bpe_mapped, t->bpe_mapped_len);
		if (id >= 0) {
			tok_out_push(t, id);
			return;
		}
	}
	if (n > t->sym_cap) {
		t->sym_cap = n * 2;
		t->sym = xrealloc(t->sym, t->sym_cap * sizeof(bpe_sym));
	}
	bpe_sym *sym = t->sym;
	int32_t nsym = 0;
	for (size_t i = 0; i < n; i++) {
		int32_t id = t->byte_id[(uint8_t)s[i]];
		if (id < 0)
			continue;   /* a byte without a vocabulary entry is dropped (no unk in byte-level BPE) */
		sym[nsym] = (bpe_sym){ id, nsym - 1, nsym + 1, 1 };
		nsym++;
	}
	if (!nsym)
		return;
	sym[nsym - 1].next = -1;
	t->heap_n = 0;
	for (int32_t i = 0; i + 1 < nsym; i++)
		try_pair(t, sym, i);
	while (t->heap_n) {
		bpe_merge m = heap_pop(t);
		bpe_sym *a = &sym[m.pos];
		if (!a->alive || a->next < 0)
			continue;
		int32_t rank, merged;
		if (!tok_pairs_get(&t->merges, a->id, sym[a->next].id, &rank, &merged) || merged != m.merged)
			continue;
		int32_t b = a->next;
		a->id = merged;
		sym[b].alive = 0;
		a->next = sym[b].next;
		if (a->next >= 0)
			sym[a->next].prev = m.pos;
		if (a->prev >= 0)
			try_pair(t, sym, a->prev);
		try_pair(t, sym, m.pos);
	}
	for (int32_t i = 0; i >= 0; i = sym[i].next)
		tok_out_push(t, sym[i].id);
}

#define BPE_CACHE_MAX 200000

static void bpe_piece(tokenizer *t, const char *s, size_t n)
{
	if (tok_cache_get(t, s, n))
		return;
	if (t->bpe_ignore_merges) {
		/* the piece as mapped characters, for the whole-word lookup */
		size_t need = n * 2 + 1;
		if (need > t->bpe_mapped_cap) {
			t->bpe_mapped_cap = need * 2;
			t->bpe_mapped = xrealloc(t->bpe_mapped, t->bpe_mapped_cap);
		}
		size_t o = 0;
		for (size_t i = 0; i < n; i++)
			o += tok_utf8_encode(t->byte_cp[(uint8_t)s[i]], t->bpe_mapped + o);
		t->bpe_mapped_len = o;
	}
	size_t first = t->out_n;
	bpe_word(t, s, n);
	if (n > 256)
		return;   /* long runs are rare; keep the cache for words */
	tok_cache_put(t, s, n, first, BPE_CACHE_MAX);
}

static void bpe_segment(tokenizer *t, const char *s, size_t n)
{
	if (t->bpe_add_prefix_space && (n == 0 || s[0] != ' ')) {
		/* ByteLevel(add_prefix_space) prepends a space to each split that does not start with one */
		if (n + 2 > t->pbuf_cap) {
			t->pbuf_cap = n * 2 + 2;
			t->pbuf = xrealloc(t->pbuf, t->pbuf_cap);
		}
		t->pbuf[0] = ' ';
		memcpy(t->pbuf + 1, s, n);
		s = t->pbuf;
		n++;
	}
	if (!t->bpe_use_regex) {
		bpe_piece(t, s, n);
		return;
	}
	size_t off = 0;
	while (off < n && t->out_n < t->out_limit) {
		int rc = pcre2_match(t->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, t->md, NULL);
		if (rc < 0) {
			bpe_piece(t, s + off, n - off);   /* cannot happen with the GPT-2 pattern: it matches any char */
			break;
		}
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
		if (ov[0] > off)
			bpe_piece(t, s + off, ov[0] - off);
		if (ov[1] == ov[0]) {   /* empty match: step one character */
			int32_t cp;
			size_t k = tok_utf8_decode((const uint8_t *)s + ov[0], n - ov[0], &cp);
			bpe_piece(t, s + ov[0], k);
			off = ov[0] + k;
			continue;
		}
		bpe_piece(t, s + ov[0], ov[1] - ov[0]);
		off = ov[1];
	}
}

/* The GPT-2 pattern as the Oniguruma engine of `tokenizers` reads it: its \s also matches U+0085, PCRE2's
 * does not, so \s is spelled out as [\s\x{85}]. */
const char *tok_gpt2_pattern =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\x{85}\\p{L}\\p{N}]+|[\\s\\x{85}]+(?![^\\s\\x{85}])|[\\s\\x{85}]+";

int tok_bpe_compile(tokenizer *t, char *err, size_t errlen)
{
	int ec;
	PCRE2_SIZE eo;
	t->re = pcre2_compile((PCRE2_SPTR)tok_gpt2_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
	if (!t->re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ec, msg, sizeof msg);
		snprintf(err, errlen, "pre-tokenizer regex: %s (offset %zu)", (char *)msg, (size_t)eo);
		return -1;
	}
	pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE);   /* falls back to the interpreter when JIT is absent */
	t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
	int32_t map[256];
	tok_byte_map(map);
	for (int b = 0; b < 256; b++) {
		char u[4];
		int k = tok_utf8_encode(map[b], u);
		t->byte_cp[b] = map[b];
		t->byte_id[b] = tok_map_get(&t->vocab, u, k);
	}
	return 0;
}

/* ---------------------------------------------------------------- added tokens */

static int added_match_at(const tokenizer *t, const char *s, size_t n, size_t i)
{
	int best = -1;
	size_t best_len = 0;
	for (int k = 0; k < t->nadded; k++) {
		const tok_added *a = &t->added[k];
		if (a->len > best_len && a->len <= n - i && !memcmp(s + i, a->content, a->len)) {
			best = k;
			best_len = a->len;
		}
	}
	return best;
}

static int32_t cp_before(const char *s, size_t i, size_t *start)
{
	size_t j = i;
	while (j > 0 && ((uint8_t)s[j - 1] & 0xC0) == 0x80)
		j--;
	if (j > 0)
		j--;
	*start = j;
	int32_t cp;
	tok_utf8_decode((const uint8_t *)s + j, i - j, &cp);
	return cp;
}

void tok_utf8_strip(const char *s, size_t n, int left, int right, int (*is_space)(int32_t), size_t *start, size_t *end)
{
	size_t a = 0, b = n;
	while (left && a < b) {
		int32_t cp;
		int k = tok_utf8_decode((const uint8_t *)s + a, b - a, &cp);
		if (!is_space(cp))
			break;
		a += k;
	}
	while (right && b > a) {
		size_t j;
		if (!is_space(cp_before(s + a, b - a, &j)))
			break;
		b = a + j;
	}
	*start = a;
	*end = b;
}

static void model_segment(tokenizer *t, const char *s, size_t n)
{
	if (!n || t->out_n >= t->out_limit)
		return;
	if (t->kind == TOKENIZER_WORDPIECE)
		wordpiece_segment(t, s, n);
	else if (t->kind == TOKENIZER_UNIGRAM)
		tok_unigram_segment(t, s, n, s == t->text_begin);
	else
		bpe_segment(t, s, n);
}

/* Splits the text on added tokens (leftmost, longest), honouring lstrip/rstrip, and runs the model on the
 * pieces between them. */
static void encode_text(tokenizer *t, const char *s, size_t n)
{
	size_t seg = 0, i = 0;
	t->text_begin = s;
	while (i < n && t->out_n < t->out_limit) {
		if (!t->nadded || !t->added_first[(uint8_t)s[i]]) {
			i++;
			continue;
		}
		int k = added_match_at(t, s, n, i);
		if (k < 0) {
			i++;
			continue;
		}
		const tok_added *a = &t->added[k];
		size_t end = i + a->len, seg_end = i;
		if (a->lstrip) {
			while (seg_end > seg) {
				size_t j;
				if (!tok_is_ws(cp_before(s, seg_end, &j)))
					break;
				seg_end = j;
			}
		}
		if (a->rstrip) {
			while (end < n) {
				int32_t cp;
				int len = tok_utf8_decode((const uint8_t *)s + end, n - end, &cp);
				if (!tok_is_ws(cp))
					break;
				end += len;
			}
		}
		model_segment(t, s + seg, seg_end - seg);
		if (t->out_n < t->out_limit)
			tok_out_push(t, a->id);
		seg = i = end;
	}
	if (t->out_n < t->out_limit)
		model_segment(t, s + seg, n - seg);
}

/* ---------------------------------------------------------------- encoding API */

int tokenizer_encode_hf(tokenizer *t, const char *text, size_t len, int add_special, int max_len,
			int32_t *ids_out, int cap)
{
	char *fixed = NULL;
	size_t bad = tok_utf8_invalid(text, len);
	if (bad) {
		t->replacements += bad;
		text = fixed = tok_utf8_repair(text, len, &len);
	}
	int npre = add_special ? t->npre : 0, nsuf = add_special ? t->nsuf : 0;
	size_t limit = SIZE_MAX;
	if (max_len > 0)
		limit = max_len > npre + nsuf ? (size_t)(max_len - npre - nsuf) : 0;
	t->out_n = 0;
	t->out_limit = limit;
	encode_text(t, text, len);
	free(fixed);
	size_t body = t->out_n < limit ? t->out_n : limit;
	size_t total = npre + body + nsuf;
	if (total > INT_MAX)
		total = INT_MAX;
	size_t o = 0;
	for (int k = 0; k < npre; k++, o++)
		if (o < (size_t)cap)
			ids_out[o] = t->pre[k];
	for (size_t k = 0; k < body; k++, o++)
		if (o < (size_t)cap)
			ids_out[o] = t->out[k];
	for (int k = 0; k < nsuf; k++, o++)
		if (o < (size_t)cap)
			ids_out[o] = t->suf[k];
	return (int)total;
}

/* Python's str.isspace: category Zs or bidirectional class WS, B or S. */
static int py_isspace(int32_t c)
{
	if (c < 0x80)
		return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x1F);
	const utf8proc_property_t *p = utf8proc_get_property(c);
	return p->category == UTF8PROC_CATEGORY_ZS || p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
	       p->bidi_class == UTF8PROC_BIDI_CLASS_B || p->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

int tokenizer_encode(tokenizer *t, const char *text, size_t len, int max_len, int32_t *ids_out, int cap)
{
	char *fixed = NULL;
	size_t bad = tok_utf8_invalid(text, len);
	if (bad) {
		t->replacements += bad;
		text = fixed = tok_utf8_repair(text, len, &len);
	}
	/* str.strip() */
	size_t a, b;
	tok_utf8_strip(text, len, 1, 1, py_isspace, &a, &b);
	char *lowered = NULL;
	const char *s = text + a;
	size_t n = b - a;
	if (t->st_lower) {
		/* str.lower(), per character (no final-sigma context) */
		lowered = xmalloc(xmul(n + 1, 2));
		size_t o = 0;
		for (size_t i = 0; i < n;) {
			int32_t cp;
			i += tok_utf8_decode((const uint8_t *)s + i, n - i, &cp);
			if (cp == 0x130) {
				o += tok_utf8_encode('i', lowered + o);
				o += tok_utf8_encode(0x307, lowered + o);
			} else {
				o += tok_utf8_encode(utf8proc_tolower(cp), lowered + o);
			}
		}
		s = lowered;
		n = o;
	}
	if (max_len == 0)
		max_len = t->max_seq_length;
	int r = tokenizer_encode_hf(t, s, n, 1, max_len, ids_out, cap);
	free(lowered);
	free(fixed);
	return r;
}

/* The library's prompt_length (SentenceTransformerDataCollator._get_prompt_length): the prompt encoded as a text
 * is, less its last token when that is a special token (the [SEP] or </s> the post-processor appends). */
int tokenizer_prompt_length(tokenizer *t, const char *prompt, size_t len, int max_len)
{
	int32_t small[256], *ids = small;
	int n = tokenizer_encode(t, prompt, len, max_len, ids, 256);
	if (n > 256) {
		ids = xmalloc(sizeof(int32_t) * (size_t)n);
		tokenizer_encode(t, prompt, len, max_len, ids, n);
	}
	int special = 0;
	if (n > 0) {
		int32_t last = ids[n - 1];
		for (int i = 0; i < t->nsuf; i++)
			special |= t->suf[i] == last;
		for (int i = 0; i < t->npre; i++)
			special |= t->pre[i] == last;
		for (int i = 0; i < t->nadded; i++)
			special |= t->added[i].special && t->added[i].id == last;
	}
	if (ids != small)
		free(ids);
	return n - special;
}

size_t tokenizer_replacements(const tokenizer *t) { return t->replacements; }
int tokenizer_kind(const tokenizer *t) { return t->kind; }
int tokenizer_pad_id(const tokenizer *t) { return t->pad_id; }
int tokenizer_unk_id(const tokenizer *t) { return t->unk_id; }
int tokenizer_vocab_size(const tokenizer *t) { return t->nid; }
int tokenizer_max_seq_length(const tokenizer *t) { return t->max_seq_length; }
void tokenizer_set_max_seq_length(tokenizer *t, int n) { t->max_seq_length = n; }
int tokenizer_do_lower_case(const tokenizer *t) { return t->st_lower; }

const char *tokenizer_id_to_token(const tokenizer *t, int id)
{
	return id >= 0 && id < t->nid ? t->id_tok[id] : NULL;
}

int tokenizer_token_to_id(const tokenizer *t, const char *tok, size_t len)
{
	int32_t id = tok_map_get(&t->vocab, tok, len);
	if (id >= 0)
		return id;
	for (int k = 0; k < t->nadded; k++)
		if (t->added[k].len == len && !memcmp(t->added[k].content, tok, len))
			return t->added[k].id;
	return -1;
}

void tokenizer_free(tokenizer *t)
{
	if (!t)
		return;
	uintptr_t arena = (uintptr_t)t->vocab_arena;
	for (int i = 0; i < t->nid; i++)
		if (!arena || (uintptr_t)t->id_tok[i] - arena >= t->vocab_arena_len)
			free(t->id_tok[i]);
	free(t->id_tok);
	free(t->vocab_arena);
	tok_map_free(&t->vocab, 0);
	tok_map_free(&t->wp_cont, 0);
	tok_map_free(&t->bpe_cache, 1);
	free(t->merges.slots);
	for (int k = 0; k < t->nadded; k++)
		free(t->added[k].content);
	free(t->added);
	for (int k = 0; k < TOK_NSPECIAL; k++)
		free(t->special[k]);
	free(t->merge_list);
	free(t->wp_prefix);
	free(t->out);
	free(t->wbuf);
	free(t->pbuf);
	free(t->sym);
	free(t->heap);
	free(t->cache_ids);
	free(t->bpe_mapped);
	tok_unigram_free(t->ug);
	if (t->md)
		pcre2_match_data_free(t->md);
	if (t->re)
		pcre2_code_free(t->re);
	free(t);
}
