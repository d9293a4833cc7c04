/* tokenizer.h: Hugging Face compatible tokenizers (BERT WordPiece, GPT-2/RoBERTa byte-level BPE), id for id.
 *
 * Loading follows what Python does for a model directory: tokenizer.json when present, else vocab.txt
 * (WordPiece), else vocab.json + merges.txt (byte-level BPE); tokenizer_config.json, special_tokens_map.json
 * and sentence_bert_config.json add do_lower_case, model_max_length and max_seq_length. docs/tokenizers.md
 * describes the exact rules and the known differences.
 *
 * A tokenizer keeps scratch buffers and a merge cache: use one per thread (load it once per thread). */
#ifndef ST_TOKENIZER_H
#define ST_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tokenizer tokenizer;

enum tokenizer_kind { TOKENIZER_WORDPIECE = 1, TOKENIZER_BPE = 2, TOKENIZER_UNIGRAM = 3 };

/* path: a model directory (sentence-transformers or Hugging Face layout; a 0_Transformer/ style sub-folder
 * named in modules.json is followed), or one file: tokenizer.json, vocab.txt, or vocab.json (merges.txt
 * beside it). NULL with a message naming the file (and line) in err on failure. */
tokenizer *tokenizer_load(const char *path, char *err, size_t errlen);
void tokenizer_free(tokenizer *t);

/* Encodes one text the way sentence-transformers' Transformer.tokenize does for a single column: Python's
 * str.strip(), lower-casing when sentence_bert_config.json says do_lower_case, then the Hugging Face
 * tokenizer with special tokens ([CLS] A [SEP], <s> A </s>) and truncation to max_len counting the special
 * tokens. max_len > 0: that limit; 0: the model's max_seq_length (none when unknown); < 0: no truncation.
 * Writes at most cap ids and returns the number of ids of the encoding (more than cap means ids_out was too
 * small: call again with a larger buffer). Text need not be valid UTF-8 (see tokenizer_replacements). */
int tokenizer_encode(tokenizer *t, const char *text, size_t len, int max_len, int32_t *ids_out, int cap);
/* The Hugging Face tokenizer alone: tokenizer(text, truncation=..., max_length=max_len)["input_ids"], no
 * strip, no extra lower-casing. add_special 0 leaves out [CLS]/[SEP]. */
int tokenizer_encode_hf(tokenizer *t, const char *text, size_t len, int add_special, int max_len,
			int32_t *ids_out, int cap);

/* sentence-transformers' prompt_length: the tokens of prompt encoded as a text (tokenizer_encode), less the
 * last one when it is a special token; the leading [CLS] or <s> counts. */
int tokenizer_prompt_length(tokenizer *t, const char *prompt, size_t len, int max_len);

/* Invalid UTF-8 sequences replaced by U+FFFD so far (each maximal ill-formed subpart counts once). */
size_t tokenizer_replacements(const tokenizer *t);

int tokenizer_kind(const tokenizer *t);
int tokenizer_pad_id(const tokenizer *t);
int tokenizer_unk_id(const tokenizer *t);
/* One more than the largest id (embedding rows needed). */
int tokenizer_vocab_size(const tokenizer *t);
/* max_seq_length from sentence_bert_config.json, else min(model_max_length, max_position_embeddings) as
 * sentence-transformers computes it; 0 when unknown. */
int tokenizer_max_seq_length(const tokenizer *t);
void tokenizer_set_max_seq_length(tokenizer *t, int n);
/* do_lower_case of sentence_bert_config.json (applied by tokenizer_encode before the HF tokenizer). */
int tokenizer_do_lower_case(const tokenizer *t);
/* The token string of an id (NULL when the id is unused) and the id of a token string (-1 when absent). */
const char *tokenizer_id_to_token(const tokenizer *t, int id);
int tokenizer_token_to_id(const tokenizer *t, const char *tok, size_t len);

/* Writes the tokenizer files a model directory needs, each atomically (temporary name + rename):
 * tokenizer.json, tokenizer_config.json, special_tokens_map.json, and vocab.txt (WordPiece) or vocab.json +
 * merges.txt (BPE). Python (AutoTokenizer) and transformers.js load the result. 0, or -1 with err set. */
int tokenizer_save(const tokenizer *t, const char *dir, char *err, size_t errlen);

/* A WordPiece tokenizer over tokens (id = index), with the BERT normalizer (lowercase also strips accents)
 * and [CLS]/[SEP]/[PAD]/[UNK]/[MASK] as special tokens, which must be in tokens. Used by st-vocab. */
tokenizer *tokenizer_wordpiece_new(const char *const *tokens, int n, int lowercase, char *err, size_t errlen);

/* The BERT normalizer + pre-tokenizer alone: calls fn for each word (normalized UTF-8) of text. Used by the
 * WordPiece trainer so that training sees exactly the words encoding sees. */
void tokenizer_bert_words(int lowercase, const char *text, size_t len,
			  void (*fn)(void *ctx, const char *word, size_t len), void *ctx);

/* ---- trainer (tokenizer_train.c), used by st-vocab ---- */
typedef struct tokenizer_trainer tokenizer_trainer;
/* lowercase: BERT uncased normalization of the training words. */
tokenizer_trainer *tokenizer_trainer_new(int lowercase);
/* Adds the words of one line of text. */
void tokenizer_trainer_feed(tokenizer_trainer *tr, const char *text, size_t len);
/* Learns a WordPiece vocabulary of at most vocab_size tokens: the special tokens [PAD] [UNK] [CLS] [SEP]
 * [MASK] first, then the character alphabet (each character as a word start and as a ##continuation), then
 * merges of the most frequent adjacent pair (counted over word frequencies) while its count is at least
 * min_frequency. Returns the tokenizer (NULL with err set when there is nothing to learn from). */
tokenizer *tokenizer_trainer_finish(tokenizer_trainer *tr, int vocab_size, int min_frequency, char *err, size_t errlen);
size_t tokenizer_trainer_words(const tokenizer_trainer *tr);   /* distinct words seen */
void tokenizer_trainer_free(tokenizer_trainer *tr);

/* ---- internals shared by tokenizer*.c only ---- */
#ifdef TOKENIZER_INTERNAL
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>
#include "errbuf.h"

/* `return ERR("...", ...)`: the message into the caller's err, errlen, and -1 */
#define ERR(...) errbuf_fail(err, errlen, __VA_ARGS__)

typedef struct { const char *key; uint32_t len; int32_t val; uint64_t h; } tok_slot;
typedef struct { tok_slot *slots; size_t cap, n; } tok_map;   /* bytes -> int32, keys not owned */
typedef struct { uint64_t key; int32_t rank, merged; } tok_pair_slot;
typedef struct { tok_pair_slot *slots; size_t cap, n; } tok_pairs;   /* (id, id) -> (rank, merged id) */

uint64_t tok_hash(const char *s, size_t n);
int32_t tok_map_get(const tok_map *m, const char *key, size_t n);
void tok_map_put(tok_map *m, const char *key, size_t n, int32_t val);
/* Room for n keys in all without growing (one table instead of a doubling series, for bulk loads). */
void tok_map_reserve(tok_map *m, size_t n);
void tok_map_free(tok_map *m, int free_keys);
int tok_pairs_get(const tok_pairs *p, int32_t a, int32_t b, int32_t *rank, int32_t *merged);
void tok_pairs_put(tok_pairs *p, int32_t a, int32_t b, int32_t rank, int32_t merged);

int tok_utf8_decode(const uint8_t *s, size_t n, int32_t *cp);
int tok_utf8_encode(int32_t c, char *out);
size_t tok_utf8_invalid(const char *s, size_t n);
char *tok_utf8_repair(const char *s, size_t n, size_t *outlen);
/* s[0..n) without the characters is_space accepts at its start (left) and end (right): [*start, *end). */
void tok_utf8_strip(const char *s, size_t n, int left, int right, int (*is_space)(int32_t), size_t *start, size_t *end);
int tok_is_ws(int32_t c);
void tok_byte_map(int32_t map[256]);

typedef struct {
	int clean, chinese, strip, lower;
	uint8_t cls[128];   /* what each ASCII byte does: kept, dropped, splits, punctuation */
	char low[128];
} tok_bert;
typedef int (*tok_word_fn)(void *ctx, const char *w, size_t n, int nchars);
void tok_bert_init(tok_bert *bn, int clean, int chinese, int strip, int lower);
void tok_bert_words(const tok_bert *bn, const char *s, size_t n, char **wbuf, size_t *wcap, tok_word_fn fn, void *ctx);

typedef struct {
	char *content;
	size_t len;
	int32_t id;
	int special, lstrip, rstrip, single_word, normalized;
} tok_added;

enum { TOK_UNK, TOK_CLS, TOK_SEP, TOK_PAD, TOK_MASK, TOK_BOS, TOK_EOS, TOK_NSPECIAL };

struct tokenizer {
	int kind;
	char **id_tok;   /* id -> token (NULL for unused ids) */
	char *vocab_arena;        /* a tokenizer.json's vocab tokens in one block: id_tok entries that point into */
	size_t vocab_arena_len;   /* it are not freed one by one */
	int nid, nid_cap;
	tok_map vocab;   /* token -> id; keys point into id_tok */
	size_t vocab_maxlen;
	/* WordPiece */
	tok_bert bert;
	int has_normalizer;
	char *wp_prefix;   /* "##" */
	tok_map wp_cont;   /* continuation pieces without the prefix -> id */
	size_t wp_cont_maxlen;
	int wp_max_chars;
	/* BPE */
	tok_pairs merges;
	int32_t *merge_list;   /* (a, b) id pairs in rank order, for saving */
	int nmerges, merge_cap;
	int bpe_add_prefix_space, bpe_use_regex, bpe_ignore_merges, bpe_trim_offsets;
	pcre2_code *re;
	pcre2_match_data *md;
	int32_t byte_id[256], byte_cp[256];
	tok_map bpe_cache;   /* piece bytes (owned keys) -> offset in cache_ids: count, ids... */
	int32_t *cache_ids;
	size_t cache_n, cache_cap;
	/* added tokens, matched on the raw text */
	tok_added *added;
	int nadded;
	uint8_t added_first[256];
	/* post-processing: pre ids + A + suf ids */
	int32_t pre[4], suf[4];
	int npre, nsuf;
	char *special[TOK_NSPECIAL];   /* special token strings (for saving), may be NULL */
	int32_t unk_id, pad_id;
	/* sentence-transformers settings */
	int max_seq_length, model_max_length, st_lower;
	size_t replacements;
	/* scratch */
	int32_t *out;
	size_t out_n, out_cap, out_limit;
	char *wbuf, *pbuf, *bpe_mapped;
	size_t wcap, pbuf_cap, bpe_mapped_cap, bpe_mapped_len;
	void *sym, *heap;
	size_t sym_cap, heap_n, heap_cap;
	struct tok_unigram *ug;   /* Unigram model, normalizer and pre-tokenizer (tokenizer_unigram.c) */
	const char *text_begin;   /* the text encode_text splits, for Metaspace's prepend_scheme "first" */
};

static inline void tok_out_push(tokenizer *t, int32_t id)
{
	if (t->out_n == t->out_cap) {
		t->out_cap = t->out_cap ? t->out_cap * 2 : 256;
		t->out = xrealloc(t->out, t->out_cap * sizeof *t->out);
	}
	t->out[t->out_n++] = id;
}

/* The ids of pre-tokens seen before (words repeat), for BPE and Unigram: tok_cache_get pushes the ids of s and
 * returns 1 when s is cached; tok_cache_put keeps the ids pushed since out[first] as those of s, emptying the
 * cache first when it holds max_words words. */
int tok_cache_get(tokenizer *t, const char *s, size_t n);
void tok_cache_put(tokenizer *t, const char *s, size_t n, size_t first, size_t max_words);

int tok_bpe_compile(tokenizer *t, char *err, size_t errlen);
extern const char *tok_gpt2_pattern;

/* SentencePiece Unigram (tokenizer_unigram.c). The vocabulary (id_tok, vocab) is set before setup. */
struct json_t;
int tok_unigram_setup(tokenizer *t, const double *scores, int n, int32_t unk_id, int byte_fallback,
		      struct json_t *normalizer, struct json_t *pre, struct json_t *decoder, const char *file, char *err,
		      size_t errlen);
void tok_unigram_segment(tokenizer *t, const char *s, size_t n, int at_start);
void tok_unigram_save(const tokenizer *t, struct json_t *root);
void tok_unigram_free(struct tok_unigram *u);
struct json_t *tok_spm_to_json(const uint8_t *data, size_t size, const char *file, char *err, size_t errlen);
void tok_unigram_keep_spm(tokenizer *t, const uint8_t *data, size_t n);
const uint8_t *tok_unigram_spm(const tokenizer *t, size_t *len);
#endif

#endif
