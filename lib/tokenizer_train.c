/* tokenizer_train.c: learning a WordPiece vocabulary from raw text, the way the `tokenizers` WordPieceTrainer
 * does it: BPE merges over words split into characters, where every character after the first carries the
 * "##" continuation prefix, counted over word frequencies; the merged pieces are the vocabulary. */
#define _GNU_SOURCE
#define TOKENIZER_INTERNAL
#include "st.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tokenizer_trainer {
	int lowercase;
	tok_map words;   /* word (owned key) -> index */
	char **word;
	int64_t *count;
	size_t nwords, cap;
};

tokenizer_trainer *tokenizer_trainer_new(int lowercase)
{
	tokenizer_trainer *tr = xcalloc(1, sizeof *tr);
	tr->lowercase = lowercase;
	return tr;
}

static void count_word(void *ctx, const char *w, size_t n)
{
	tokenizer_trainer *tr = ctx;
	int32_t i = tok_map_get(&tr->words, w, n);
	if (i >= 0) {
		tr->count[i]++;
		return;
	}
	if (tr->nwords == tr->cap) {
		tr->cap = tr->cap ? tr->cap * 2 : 4096;
		tr->word = xrealloc(tr->word, tr->cap * sizeof *tr->word);
		tr->count = xrealloc(tr->count, tr->cap * sizeof *tr->count);
	}
	char *k = xmalloc(n + 1);
	memcpy(k, w, n);
	k[n] = 0;
	tr->word[tr->nwords] = k;
	tr->count[tr->nwords] = 1;
	tok_map_put(&tr->words, k, n, (int32_t)tr->nwords);
	tr->nwords++;
}

void tokenizer_trainer_feed(tokenizer_trainer *tr, const char *text, size_t len)
{
	tokenizer_bert_words(tr->lowercase, text, len, count_word, tr);
}

size_t tokenizer_trainer_words(const tokenizer_trainer *tr) { return tr->nwords; }

void tokenizer_trainer_free(tokenizer_trainer *tr)
{
	if (!tr)
		return;
	tok_map_free(&tr->words, 1);
	free(tr->word);
	free(tr->count);
	free(tr);
}

/* ---- training state ---- */

typedef struct {
	int32_t a, b;
	int64_t count;
	int32_t *words;   /* words where the pair occurred (may repeat; filtered when merging) */
	size_t nw, cw;
} pair_t;

typedef struct {
	int64_t count;
	int32_t a, b, p;
} heap_t;

typedef struct {
	/* vocabulary being built */
	char **tok;
	size_t ntok, ctok;
	tok_map index;   /* token -> id (keys point into tok) */
	/* words as symbol ids */
	int32_t **sym;
	int32_t *len;
	int64_t *wc;
	size_t nwords;
	/* pairs */
	tok_pairs pidx;   /* (a, b) -> pair index in .rank */
	pair_t *pairs;
	size_t npairs, cpairs;
	heap_t *heap;
	size_t nheap, cheap;
} train_t;

static int32_t vocab_add(train_t *s, const char *tok)
{
	int32_t id = tok_map_get(&s->index, tok, strlen(tok));
	if (id >= 0)
		return id;
	if (s->ntok == s->ctok) {
		s->ctok = s->ctok ? s->ctok * 2 : 1024;
		s->tok = xrealloc(s->tok, s->ctok * sizeof *s->tok);   /* the map keys are the strings, which stay */
	}
	s->tok[s->ntok] = xstrdup(tok);
	tok_map_put(&s->index, s->tok[s->ntok], strlen(tok), (int32_t)s->ntok);
	return (int32_t)s->ntok++;
}

static int heap_before(const heap_t *x, const heap_t *y)
{
	if (x->count != y->count)
		return x->count > y->count;
	return x->a != y->a ? x->a < y->a : x->b < y->b;
}

static void hpush(train_t *s, int32_t p)
{
	if (s->nheap == s->cheap) {
		s->cheap = s->cheap ? s->cheap * 2 : 4096;
		s->heap = xrealloc(s->heap, s->cheap * sizeof *s->heap);
	}
	heap_t e = { s->pairs[p].count, s->pairs[p].a, s->pairs[p].b, p };
	size_t i = s->nheap++;
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (!heap_before(&e, &s->heap[up]))
			break;
		s->heap[i] = s->heap[up];
		i = up;
	}
	s->heap[i] = e;
}

static heap_t hpop(train_t *s)
{
	heap_t top = s->heap[0], last = s->heap[--s->nheap];
	size_t i = 0, n = s->nheap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && heap_before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!heap_before(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (n)
		s->heap[i] = last;
	return top;
}

static int32_t pair_get(train_t *s, int32_t a, int32_t b)
{
	int32_t p, unused;
	if (tok_pairs_get(&s->pidx, a, b, &p, &unused))
		return p;
	if (s->npairs == s->cpairs) {
		s->cpairs = s->cpairs ? s->cpairs * 2 : 4096;
		s->pairs = xrealloc(s->pairs, s->cpairs * sizeof *s->pairs);
	}
	p = (int32_t)s->npairs++;
	s->pairs[p] = (pair_t){ a, b, 0, NULL, 0, 0 };
	tok_pairs_put(&s->pidx, a, b, p, 0);
	return p;
}

static void pair_add(train_t *s, int32_t a, int32_t b, int64_t delta, int32_t word, int push)
{
	int32_t p = pair_get(s, a, b);
	pair_t *q = &s->pairs[p];
	q->count += delta;
	if (delta > 0) {
		if (!q->nw || q->words[q->nw - 1] != word) {
			if (q->nw == q->cw) {
				q->cw = q->cw ? q->cw * 2 : 4;
				q->words = xrealloc(q->words, q->cw * sizeof *q->words);
			}
			q->words[q->nw++] = word;
		}
		if (push)
			hpush(s, p);
	}
}

/* The token for a character: "c" at a word start, "##c" after. */
static int32_t char_id(train_t *s, const char *c, size_t n, int cont)
{
	char buf[16];
	size_t o = 0;
	if (cont) {
		memcpy(buf, "##", 2);
		o = 2;
	}
	memcpy(buf + o, c, n);
	buf[o + n] = 0;
	int32_t id = tok_map_get(&s->index, buf, o + n);
	return id;
}

static int cmp_cp(const void *x, const void *y)
{
	int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
	return (a > b) - (a < b);
}

tokenizer *tokenizer_trainer_finish(tokenizer_trainer *tr, int vocab_size, int min_frequency, char *err, size_t errlen)
{
	train_t s = { 0 };
	static const char *specials[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
	for (int k = 0; k < 5; k++)
		vocab_add(&s, specials[k]);

	/* the alphabet, by code point: each character as a word start, then as a continuation */
	tok_map seen = { 0 };
	int32_t *cps = NULL;
	size_t ncps = 0, ccps = 0;
	for (size_t w = 0; w < tr->nwords; w++) {
		const char *x = tr->word[w];
		size_t n = strlen(x);
		for (size_t i = 0; i < n;) {
			int32_t cp;
			int k = tok_utf8_decode((const uint8_t *)x + i, n - i, &cp);
			if (tok_map_get(&seen, x + i, k) < 0) {
				tok_map_put(&seen, x + i, k, 1);
				if (ncps == ccps) {
					ccps = ccps ? ccps * 2 : 256;
					cps = xrealloc(cps, ccps * sizeof *cps);
				}
				cps[ncps++] = cp;
			}
			i += k;
		}
	}
	tok_map_free(&seen, 0);
	if (ncps)   /* qsort(NULL, 0) is undefined */
		qsort(cps, ncps, sizeof *cps, cmp_cp);
	for (int cont = 0; cont < 2; cont++)
		for (size_t i = 0; i < ncps; i++) {
			char buf[8] = "##";
			int k = tok_utf8_encode(cps[i], buf + 2);
			buf[2 + k] = 0;
			vocab_add(&s, cont ? buf : buf + 2);
		}
	free(cps);

	/* words as symbols, and the initial pair counts */
	s.nwords = tr->nwords;
	s.sym = xcalloc(s.nwords ? s.nwords : 1, sizeof *s.sym);
	s.len = xcalloc(s.nwords ? s.nwords : 1, sizeof *s.len);
	s.wc = tr->count;
	for (size_t w = 0; w < s.nwords; w++) {
		const char *x = tr->word[w];
		size_t n = strlen(x);
		s.sym[w] = xmalloc((n + 1) * sizeof **s.sym);
		int32_t m = 0;
		for (size_t i = 0; i < n;) {
			int32_t cp;
			int k = tok_utf8_decode((const uint8_t *)x + i, n - i, &cp);
			s.sym[w][m++] = char_id(&s, x + i, k, i > 0);
			i += k;
		}
		s.len[w] = m;
		for (int32_t i = 0; i + 1 < m; i++)
			pair_add(&s, s.sym[w][i], s.sym[w][i + 1], s.wc[w], (int32_t)w, 0);
	}
	for (size_t p = 0; p < s.npairs; p++)
		hpush(&s, (int32_t)p);

	int32_t *stamp = xcalloc(s.nwords ? s.nwords : 1, sizeof *stamp);
	int32_t iter = 0;
	while (s.ntok < (size_t)vocab_size && s.nheap) {
		heap_t top = hpop(&s);
		pair_t *q = &s.pairs[top.p];
		if (top.count != q->count) {
			if (q->count > 0)
				hpush(&s, top.p);
			continue;
		}
		if (q->count < min_frequency || q->count <= 0)
			break;
		int32_t a = q->a, b = q->b;
		const char *ta = s.tok[a], *tb = s.tok[b];
		if (!strncmp(tb, "##", 2))
			tb += 2;
		char *joined = xmalloc(strlen(ta) + strlen(tb) + 1);
		sprintf(joined, "%s%s", ta, tb);
		int32_t nid = vocab_add(&s, joined);
		free(joined);
		q = &s.pairs[top.p];
		iter++;
		/* words can be appended to q->words while merging (a new pair equal to (a, b) cannot arise, so
		 * the list is stable), but pair_add may move s.pairs: index it afresh each time */
		size_t nw = q->nw;
		int32_t *words = q->words;
		q->words = NULL;
		q->nw = q->cw = 0;
		for (size_t k = 0; k < nw; k++) {
			int32_t w = words[k];
			if (stamp[w] == iter)
				continue;
			stamp[w] = iter;
			int32_t *x = s.sym[w], m = s.len[w];
			int64_t c = s.wc[w];
			for (int32_t i = 0; i + 1 < m; i++) {
				if (x[i] != a || x[i + 1] != b)
					continue;
				pair_add(&s, a, b, -c, w, 0);
				if (i > 0) {
					pair_add(&s, x[i - 1], a, -c, w, 0);
					pair_add(&s, x[i - 1], nid, c, w, 1);
				}
				if (i + 2 < m) {
					pair_add(&s, b, x[i + 2], -c, w, 0);
					pair_add(&s, nid, x[i + 2], c, w, 1);
				}
				x[i] = nid;
				memmove(x + i + 1, x + i + 2, (m - i - 2) * sizeof *x);
				m--;
			}
			s.len[w] = m;
		}
		free(words);
	}
	free(stamp);

	tokenizer *t = NULL;
	if (s.ntok <= 5 + 0)
		snprintf(err, errlen, "no words to learn from");
	else
		t = tokenizer_wordpiece_new((const char *const *)s.tok, (int)s.ntok, tr->lowercase, err, errlen);
	for (size_t i = 0; i < s.ntok; i++)
		free(s.tok[i]);
	free(s.tok);
	tok_map_free(&s.index, 0);
	for (size_t w = 0; w < s.nwords; w++)
		free(s.sym[w]);
	free(s.sym);
	free(s.len);
	for (size_t p = 0; p < s.npairs; p++)
		free(s.pairs[p].words);
	free(s.pairs);
	free(s.pidx.slots);
	free(s.heap);
	return t;
}
