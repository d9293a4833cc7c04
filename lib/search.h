/* search.h: semantic search and paraphrase mining over embedding matrices (util.semantic_search and
 * util.paraphrase_mining of sentence-transformers, reference §5.6), and encoding texts with a model.
 *
 * Scores come from cblas_sgemm over blocks of queries x corpus rows, so memory is bounded by the block, not
 * by the corpus; each query keeps a min-heap of its best hits. Similarities: METRICS_COSINE (rows
 * L2-normalised with norms clamped at 1e-12, as util.cos_sim) or METRICS_DOT (metrics.h). */
#ifndef ST_SEARCH_H
#define ST_SEARCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct search_hit { float score; int32_t id; } search_hit;
typedef struct search_pair { float score; int32_t i, j; } search_pair;

/* Rows of x [n][d] divided by max(||row||, 1e-12), in place. */
void search_normalize(float *x, size_t n, int d);

/* For every query the top_k corpus rows: hits [nq][top_k], nhits[q] = min(top_k, nc) of them, best first
 * (equal scores: smaller id first). The same hits as the library's chunked search whatever the chunking. */
void search_topk(const float *queries, size_t nq, const float *corpus, size_t nc, int d, int sim, int top_k,
                 search_hit *hits, int *nhits);

/* paraphrase_mining_embeddings: for every corpus chunk (corpus_chunk rows, library default 100000) and every
 * row i, the top_k + 1 rows j of the chunk; pairs with i != j and a score above the admission threshold go
 * into a min-priority queue on (score, i, j); from the max_pairs-th insertion on, every insertion pops the
 * minimum, which becomes the threshold. Unordered duplicates are dropped (the one leaving the queue first is
 * kept, as i < j) and the pairs are returned best first. *pairs is malloc'd; returns their number. */
size_t search_mine(const float *emb, size_t n, int d, int sim, int top_k, size_t max_pairs, size_t corpus_chunk,
                   search_pair **pairs);

/* Encoding texts (model.h + tokenizer.h), as SentenceTransformer.encode: tokenizes (truncating to max_len
 * tokens; 0: the model's max_seq_length), checks the ids against the model's vocabulary, sorts by length
 * (longest first, so batches carry little padding), embeds batch_size rows at a time; out [n][model_dim] in
 * input order. Returns 0, or -1 with a message naming the text (1-based); a non-finite embedding is such an
 * error. */
struct st_model;
struct tokenizer;
int search_encode(struct st_model *m, struct tokenizer *tok, const char *const *texts, const size_t *lens,
                  size_t n, int batch_size, int max_len, float *out, char *err, size_t errlen);

/* For the tools that encode: model_open(DIR) and, when tok is not NULL, its tokenizer (65 when that cannot be
 * loaded). */
void search_open_model(const char *dir, struct st_model **m, struct tokenizer **tok);
/* Prompts (config_sentence_transformers.json), as encode(prompt_name=, prompt=): the tool's --prompt-name
 * and --prompt, kept for search_open_model, which applies them (or the config's default_prompt_name) with
 * search_prompt_setup to every model it opens with a tokenizer; search_encode then prepends the prompt. */
void search_prompt_option(const char *name, const char *text);
/* The tools' option table entries and st_getopt values for --prompt-name NAME and --prompt TEXT. */
enum { SEARCH_OPT_PROMPT_NAME = 0x7001, SEARCH_OPT_PROMPT };
#define SEARCH_PROMPT_OPTIONS \
	{ "prompt-name", required_argument, 0, SEARCH_OPT_PROMPT_NAME }, { "prompt", required_argument, 0, SEARCH_OPT_PROMPT }
#define SEARCH_PROMPT_USAGE \
	"  --prompt-name NAME    prepend prompts[NAME] of the model's config_sentence_transformers.json to every\n" \
	"                        text encoded (default: its default_prompt_name, when set)\n" \
	"  --prompt TEXT         prepend TEXT instead ('' turns the default prompt off)\n"
/* model_resolve_prompt + the prompt's token length for include_prompt: false; -1 + message. */
int search_prompt_setup(struct st_model *m, struct tokenizer *tok, const char *name, const char *text, char *err,
			size_t errlen);
/* output_value="token_embeddings" for one text (with the model's prompt): *states [*ntok][hidden], malloc'd,
 * every real token. -1 when the text cannot be tokenized or gives ids outside the vocabulary. */
int search_encode_tokens(struct st_model *m, struct tokenizer *tok, const char *text, size_t len, int max_len,
			 float **states, int *ntok);

/* Embedding cache files: "STEMB1\0\0", uint64 n, uint64 d, uint64 key, then n*d float32 little-endian.
 * key identifies what was embedded (search_cache_key of the weights and the texts). Written atomically. */
uint64_t search_cache_key(const float *params, size_t nparams, const char *const *texts, const size_t *lens,
                          size_t n);
int search_cache_write(const char *path, const float *emb, size_t n, int d, uint64_t key);
/* 0 when path is absent or is an embedding cache (magic and a size that agrees with its header), which may be
 * overwritten; -1 for any other file, which is not st's to replace. */
int search_cache_check(const char *path);
/* The cached matrix when the file exists and matches n, d and key, else NULL. */
float *search_cache_read(const char *path, size_t n, int d, uint64_t key);

/* A set of byte strings in insertion order (texts, or any key), for de-duplication. */
typedef struct search_texts {
	char **s;          /* owned, NUL-terminated */
	size_t *len;
	size_t n, cap;
	size_t *slots;     /* open addressing: index + 1, 0 = empty */
	size_t nslots;
} search_texts;
/* The index of s (added when new). */
size_t search_texts_add(search_texts *t, const char *s, size_t len);
/* Appends s without looking for it (the set then holds it twice if it did already); its index. */
size_t search_texts_append(search_texts *t, const char *s, size_t len);
/* The index of s, or (size_t)-1. */
size_t search_texts_find(const search_texts *t, const char *s, size_t len);
void search_texts_free(search_texts *t);

/* Reads one text per line from f: a JSON object line gives its "text" (or its first "texts" entry), any
 * other line is the text itself (a trailing CR is dropped). Empty lines are skipped. Appends to t without
 * de-duplication when dedup is 0. Returns -1 and a message for a malformed JSON line or one that is not text
 * (search_line_problem). */
int search_read_lines(FILE *f, const char *name, search_texts *t, int dedup, char *err, size_t errlen);
/* Why a line of text input is not text (NULL when it is): zstd or gzip data (told on line 1), a NUL byte,
 * invalid UTF-8. The tools that read text lines refuse such input with exit 65 rather than embed bytes. */
const char *search_line_problem(const char *line, size_t len, long lineno);
/* search_read_lines for input that continues earlier lines: line numbers start after lines_before. */
int search_read_lines_at(FILE *f, const char *name, long lines_before, search_texts *t, int dedup, char *err,
			 size_t errlen);

/* Reads embedding rows from a record stream: "embeddings" as a float32 tensor [dim] or [rows][dim], or
 * "embedding" as a plain array of numbers (st-encode's lines). Appends to *emb (realloc'd), counting rows in
 * *n; *d is set by the first row (or checked when already set). -1 and a message naming the record. */
struct st_reader;
int search_read_rows(struct st_reader *in, const char *name, float **emb, size_t *n, int *d, char *err,
                     size_t errlen);

/* Every embedding row of the file PATH (quantize_embeddings' calibration_embeddings), of width d (0: any, set
 * into *d). Dies naming the file when it cannot be opened or read, holds no row or has another width. */
float *search_read_calibration(const char *path, int *d, size_t *n);

/* s as a JSON string (quoted, escaped; UTF-8 passes through) on out. */
void search_write_json_string(FILE *out, const char *s, size_t len);
/* A score as printed: a cosine never above 1 (float rounding of unit vectors can give 1.0000001). */
float search_clamp_cosine(float score, int sim);

#endif
