/* tokenizer_oracles.c: exact ids against the reference Python tokenizers (../shared/data/tokenizer-oracles):
 * 10,570 SQuAD questions (WordPiece), the bert-base-uncased cases of tokenizer_tests.json, a long French
 * text, and 83 multilingual inputs for bge-small-en-v1.5 (BERT uncased) and roberta-base. */
#include "st.h"
#include "tap.h"
#include "tokenizer.h"

#include <jansson.h>
#include <string.h>

static const char *shared;
static char path_buf[4096];

static const char *P(const char *rel)
{
	snprintf(path_buf, sizeof path_buf, "%s/%s", shared, rel);
	return path_buf;
}

static json_t *load(const char *rel)
{
	json_error_t je;
	json_t *j = json_load_file(P(rel), 0, &je);
	if (!j) {
		printf("Bail out! %s: %s\n", P(rel), je.text);
		exit(1);
	}
	return j;
}

static tokenizer *tok(const char *rel)
{
	char err[512];
	tokenizer *t = tokenizer_load(P(rel), err, sizeof err);
	if (!t) {
		printf("Bail out! %s\n", err);
		exit(1);
	}
	return t;
}

static int32_t ids[1 << 16];

/* Encodes text and compares with want (a JSON array of ints); prints the first difference. */
static int same(tokenizer *t, const char *text, size_t len, int add_special, json_t *want, const char *what, int *shown)
{
	int n = tokenizer_encode_hf(t, text, len, add_special, -1, ids, 1 << 16);
	int good = n == (int)json_array_size(want);
	for (int i = 0; good && i < n; i++)
		good = ids[i] == json_integer_value(json_array_get(want, i));
	if (!good && (*shown)++ < 5) {
		printf("# %s mismatch on \"%.80s\"\n#   got ", what, text);
		for (int i = 0; i < n && i < 40; i++)
			printf(" %d", ids[i]);
		printf("\n#   want");
		for (size_t i = 0; i < json_array_size(want) && i < 40; i++)
			printf(" %lld", (long long)json_integer_value(json_array_get(want, i)));
		printf("\n");
	}
	return good;
}

int main(void)
{
	(void)near;
	shared = getenv("ST_SHARED") ? getenv("ST_SHARED") : "../shared/data";
	FILE *f = fopen(P("tokenizer-oracles/PROVENANCE.md"), "r");
	if (!f)
		skip_all("../shared/data/tokenizer-oracles is absent");
	fclose(f);

	tokenizer *vocab_txt = tok("tokenizers/bert-base-uncased");
	tokenizer *minilm = tok("tokenizers/all-MiniLM-L6-v2/tokenizer.json");
	tokenizer *roberta = tok("tokenizers/roberta-base");
	ok(tokenizer_kind(vocab_txt) == TOKENIZER_WORDPIECE && tokenizer_vocab_size(vocab_txt) == 30522,
	   "bert-base-uncased vocab.txt: WordPiece, 30522 ids");
	ok(tokenizer_kind(roberta) == TOKENIZER_BPE && tokenizer_vocab_size(roberta) == 50265,
	   "roberta-base vocab.json + merges.txt: BPE, 50265 ids");

	/* SQuAD questions: ids without [CLS]/[SEP] */
	json_t *q = load("tokenizer-oracles/question_tokens.json"), *qi = load("tokenizer-oracles/tokenized_questions.json");
	tokenizer *both[2] = { vocab_txt, minilm };
	const char *names[2] = { "vocab.txt", "tokenizer.json" };
	for (int k = 0; k < 2; k++) {
		int good = 0, shown = 0;
		size_t n = json_array_size(q);
		for (size_t i = 0; i < n; i++) {
			const char *text = json_string_value(json_object_get(json_array_get(q, i), "original"));
			good += same(both[k], text, strlen(text), 0, json_array_get(qi, i), names[k], &shown);
		}
		ok(good == (int)n && n == 10570, "SQuAD questions (%s): %d of %zu exact", names[k], good, n);
	}
	json_decref(q);
	json_decref(qi);

	/* transformers.js-style cases, with [CLS]/[SEP] */
	json_t *tt = load("tokenizer-oracles/tokenizer_tests.json"), *c;
	for (int k = 0; k < 2; k++) {
		int good = 0, shown = 0;
		size_t i, n = 0;
		const char *keys[2] = { "bert-base-uncased", "google-bert/bert-base-uncased" };
		for (int kk = 0; kk < 2; kk++)
			json_array_foreach(json_object_get(tt, keys[kk]), i, c) {
				const char *text = json_string_value(json_object_get(c, "input"));
				good += same(both[k], text, strlen(text), 1,
					     json_object_get(json_object_get(c, "encoded"), "input_ids"), names[k], &shown);
				n++;
			}
		ok(good == (int)n && n == 36, "tokenizer_tests.json bert-base-uncased (%s): %d of %zu exact", names[k], good, n);
	}
	json_decref(tt);

	json_t *fr = load("tokenizer-oracles/bert_uncased_encoded.json");
	for (int k = 0; k < 2; k++) {
		int shown = 0;
		const char *text = json_string_value(json_object_get(fr, "text"));
		ok(same(both[k], text, strlen(text), 1, json_object_get(fr, "token_ids"), names[k], &shown),
		   "bert_uncased_encoded.json long French text (%s)", names[k]);
	}
	json_decref(fr);

	/* multilingual conformance */
	json_t *in = load("tokenizer-oracles/multilingual/inputs.json");
	json_t *bge = json_object_get(load("tokenizer-oracles/multilingual/bge_small_en_v1.5.json"), "entries");
	json_t *rob = json_object_get(load("tokenizer-oracles/multilingual/roberta_base.json"), "entries");
	struct { tokenizer *t; json_t *want; const char *name; } sets[3] = {
		{ vocab_txt, bge, "bge-small-en-v1.5 via vocab.txt" },
		{ minilm, bge, "bge-small-en-v1.5 via tokenizer.json" },
		{ roberta, rob, "roberta-base" },
	};
	for (int k = 0; k < 3; k++) {
		int good = 0, shown = 0;
		size_t i, n = json_array_size(in);
		json_array_foreach(in, i, c) {
			const char *id = json_string_value(json_object_get(c, "id"));
			json_t *e = NULL, *x;
			size_t j;
			json_array_foreach(sets[k].want, j, x)
				if (!strcmp(json_string_value(json_object_get(x, "id")), id))
					e = x;
			const char *text = json_string_value(json_object_get(c, "text"));
			good += e && same(sets[k].t, text, strlen(text), 1, json_object_get(e, "input_ids"), sets[k].name, &shown);
		}
		ok(good == (int)n && n == 83, "multilingual %s: %d of %zu exact", sets[k].name, good, n);
	}
	tokenizer_free(vocab_txt);
	tokenizer_free(minilm);
	tokenizer_free(roberta);
	return done_testing();
}
