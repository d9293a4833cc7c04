/* tokenizer.c: hand-worked WordPiece and byte-level BPE cases, truncation, the sentence-transformers
 * preprocessing, invalid UTF-8, loader errors that name file and line, and save/load round trips. */
#define _GNU_SOURCE
#include "st.h"
#include "tap.h"
#include "tokenizer.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static char tmp[256];
static int32_t ids[4096];

static void put(const char *name, const char *text, size_t len)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", tmp, name);
	FILE *f = fopen(p, "wb");
	fwrite(text, 1, len, f);
	fclose(f);
}
#define PUT(name, s) put(name, s, strlen(s))

/* Encodes and compares with a -1 terminated list. */
static int is_ids(tokenizer *t, const char *text, int st_mode, int max_len, const int *want, const char *what)
{
	int n = st_mode ? tokenizer_encode(t, text, strlen(text), max_len, ids, 4096)
			: tokenizer_encode_hf(t, text, strlen(text), 1, max_len, ids, 4096);
	int m = 0;
	while (want[m] >= 0)
		m++;
	int good = n == m;
	for (int i = 0; good && i < n; i++)
		good = ids[i] == want[i];
	if (!ok(good, "%s", what)) {
		printf("#   got ");
		for (int i = 0; i < n; i++)
			printf(" %d", ids[i]);
		printf("\n#   want");
		for (int i = 0; i < m; i++)
			printf(" %d", want[i]);
		printf("\n");
	}
	return good;
}
#define IDS(t, text, st, max, what, ...) is_ids(t, text, st, max, (const int[]){ __VA_ARGS__, -1 }, what)

/* ids: 0 [PAD] 1 [UNK] 2 [CLS] 3 [SEP] 4 [MASK] 5 un 6 ##aff 7 ##able 8 a 9 ##b 10 ##a 11 , 12 cafe 13 中 14 hello
 * 15 world 16 ##a##b 17 ##ff 18 aff 19 ! 20 $ */
static const char *wp_vocab[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a", "##b",
				  "##a", ",", "cafe", "中", "hello", "world", "##a##b", "##ff", "aff", "!", "$" };

static void wordpiece_cases(void)
{
	char err[512];
	tokenizer *t = tokenizer_wordpiece_new(wp_vocab, 21, 1, err, sizeof err);
	ok(t != NULL, "tokenizer_wordpiece_new");
	IDS(t, "unaffable", 0, -1, "greedy longest match: un ##aff ##able", 2, 5, 6, 7, 3);
	IDS(t, "unaffablex", 0, -1, "no piece for the rest: whole word [UNK]", 2, 1, 3);
	IDS(t, "ab aba", 0, -1, "continuations", 2, 8, 9, 8, 9, 10, 3);
	IDS(t, "Hello, WORLD!", 0, -1, "lower-case, punctuation split", 2, 14, 11, 15, 19, 3);
	IDS(t, "Café", 0, -1, "accents stripped (NFD, drop Mn)", 2, 12, 3);
	IDS(t, "Cafe\xcc\x81", 0, -1, "combining acute dropped", 2, 12, 3);
	IDS(t, "a中a", 0, -1, "CJK ideograph isolated", 2, 8, 13, 8, 3);
	IDS(t, "hel\x01lo\x7f \xe2\x80\x8bworld\xef\xbf\xbd", 0, -1, "controls, ZWSP (Cf) and U+FFFD dropped", 2, 14, 15, 3);
	IDS(t, "hello\xc2\xa0world\xe3\x80\x80!", 0, -1, "NBSP and ideographic space split", 2, 14, 15, 19, 3);
	IDS(t, "$a", 0, -1, "ASCII $ is punctuation", 2, 20, 8, 3);
	IDS(t, "hello[MASK]world", 0, -1, "special token inside text", 2, 14, 4, 15, 3);
	IDS(t, "[mask]", 0, -1, "special tokens match case-sensitively: [ mask ] each [UNK]", 2, 1, 1, 1, 3);
	IDS(t, "", 0, -1, "empty text: [CLS] [SEP]", 2, 3);
	IDS(t, " \t\n ", 0, -1, "whitespace only: [CLS] [SEP]", 2, 3);
	char w100[128], w101[128];
	strcpy(w100, "a");
	for (int i = 1; i < 100; i++)
		strcat(w100, "b");
	strcpy(w101, w100);
	strcat(w101, "b");
	int n = tokenizer_encode_hf(t, w100, 100, 1, -1, ids, 4096);
	ok(n == 102 && ids[1] == 8 && ids[100] == 9, "a 100-character word is split (%d ids)", n);
	IDS(t, w101, 0, -1, "a 101-character word is [UNK]", 2, 1, 3);
	IDS(t, "hello world hello world", 0, 4, "truncation counts [CLS] and [SEP]", 2, 14, 15, 3);
	IDS(t, "unaffable", 0, 3, "truncation can cut inside a word", 2, 5, 3);
	IDS(t, "hello", 0, 2, "max_len 2 leaves only the special tokens", 2, 3);
	n = tokenizer_encode_hf(t, "hello world", 11, 1, -1, ids, 2);
	ok(n == 4 && ids[0] == 2 && ids[1] == 14, "a small cap gets the first ids and the full count (%d)", n);
	n = tokenizer_encode_hf(t, "hello world", 11, 0, -1, ids, 4096);
	ok(n == 2 && ids[0] == 14, "add_special 0 leaves them out");
	size_t before = tokenizer_replacements(t);
	IDS(t, "hel\xfflo a\xe2\x82", 0, -1, "invalid UTF-8 becomes U+FFFD (then dropped by clean_text)", 2, 14, 8, 3);
	ok(tokenizer_replacements(t) - before == 2, "two ill-formed subparts counted (%zu)", tokenizer_replacements(t) - before);
	IDS(t, "  hello  ", 1, -1, "tokenizer_encode strips", 2, 14, 3);
	ok(tokenizer_pad_id(t) == 0 && tokenizer_unk_id(t) == 1 && tokenizer_vocab_size(t) == 21, "pad 0, unk 1, 21 ids");
	ok(tokenizer_token_to_id(t, "##able", 6) == 7 && !strcmp(tokenizer_id_to_token(t, 12), "cafe"), "id <-> token");

	/* save, reload from the directory (tokenizer.json) and from vocab.txt alone */
	char dir[300];
	snprintf(dir, sizeof dir, "%s/saved", tmp);
	ok(tokenizer_save(t, dir, err, sizeof err) == 0, "tokenizer_save: %s", err);
	tokenizer *t2 = tokenizer_load(dir, err, sizeof err);
	ok(t2 != NULL, "reload saved directory");
	char vt[320];
	snprintf(vt, sizeof vt, "%s/vocab.txt", dir);
	tokenizer *t3 = tokenizer_load(vt, err, sizeof err);
	ok(t3 != NULL, "reload saved vocab.txt");
	const char *texts[] = { "Unaffable, café!", "a中aba [SEP] x", "hello\tWORLD$", "" };
	int same = 1;
	for (int k = 0; k < 4 && t2 && t3; k++) {
		int32_t a[64], b[64], c[64];
		int na = tokenizer_encode_hf(t, texts[k], strlen(texts[k]), 1, -1, a, 64);
		int nb = tokenizer_encode_hf(t2, texts[k], strlen(texts[k]), 1, -1, b, 64);
		int nc = tokenizer_encode_hf(t3, texts[k], strlen(texts[k]), 1, -1, c, 64);
		same &= na == nb && na == nc && !memcmp(a, b, na * 4) && !memcmp(a, c, na * 4);
	}
	ok(same, "saved tokenizer.json and vocab.txt encode like the original");
	tokenizer_free(t2);
	tokenizer_free(t3);

	tokenizer *cased = tokenizer_wordpiece_new(wp_vocab, 21, 0, err, sizeof err);
	IDS(cased, "Hello hello café", 0, -1, "cased: no lower-casing or accent stripping", 2, 1, 14, 1, 3);
	tokenizer_free(cased);
	tokenizer_free(t);
}

/* sentence-transformers settings from the model directory */
static void st_config_cases(void)
{
	char err[512], dir[300];
	snprintf(dir, sizeof dir, "%s/stmodel", tmp);
	mkdir(dir, 0777);
	FILE *f;
	char p[1400];
	snprintf(p, sizeof p, "%s/vocab.txt", dir);
	f = fopen(p, "w");
	for (int i = 0; i < 21; i++)
		fprintf(f, "%s\n", wp_vocab[i]);
	fclose(f);
	snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
	f = fopen(p, "w");
	fputs("{\"do_lower_case\": false, \"model_max_length\": 1000000000000000019884624838656}", f);
	fclose(f);
	snprintf(p, sizeof p, "%s/sentence_bert_config.json", dir);
	f = fopen(p, "w");
	fputs("{\"max_seq_length\": 4, \"do_lower_case\": true}", f);
	fclose(f);
	snprintf(p, sizeof p, "%s/config.json", dir);
	f = fopen(p, "w");
	fputs("{\"max_position_embeddings\": 512, \"model_type\": \"bert\"}", f);
	fclose(f);
	tokenizer *t = tokenizer_load(dir, err, sizeof err);
	ok(t != NULL, "model directory with sentence_bert_config.json (model_max_length 1e30 as transformers writes it)");
	if (!t)
		return;
	ok(tokenizer_max_seq_length(t) == 4 && tokenizer_do_lower_case(t), "max_seq_length 4, do_lower_case");
	IDS(t, "HELLO", 0, -1, "the HF tokenizer alone is cased here", 2, 1, 3);
	IDS(t, "HELLO WORLD HELLO", 1, 0, "tokenizer_encode lower-cases and truncates to max_seq_length", 2, 14, 15, 3);
	tokenizer_free(t);
	/* without sentence_bert_config.json: min(model_max_length, max_position_embeddings) */
	snprintf(p, sizeof p, "%s/sentence_bert_config.json", dir);
	remove(p);
	t = tokenizer_load(dir, err, sizeof err);
	ok(t && tokenizer_max_seq_length(t) == 512 && !tokenizer_do_lower_case(t), "max_seq_length from config.json: 512");
	tokenizer_free(t);
	/* an old layout: tokenizer files in 0_Transformer/ named by modules.json */
	char root[300], sub[320];
	snprintf(root, sizeof root, "%s/oldmodel", tmp);
	snprintf(sub, sizeof sub, "%s/0_Transformer", root);
	mkdir(root, 0777);
	snprintf(p, sizeof p, "mv '%s'/* '%s' 2>/dev/null; true", dir, root);
	(void)!system(p);
	snprintf(p, sizeof p, "mkdir -p '%s' && mv '%s'/vocab.txt '%s'/*.json '%s'/", sub, root, root, sub);
	(void)!system(p);
	snprintf(p, sizeof p, "%s/modules.json", root);
	f = fopen(p, "w");
	fputs("[{\"idx\": 0, \"name\": \"0\", \"path\": \"0_Transformer\", \"type\": \"sentence_transformers.models.Transformer\"}]", f);
	fclose(f);
	t = tokenizer_load(root, err, sizeof err);
	ok(t && tokenizer_vocab_size(t) == 21, "0_Transformer/ found through modules.json: %s", t ? "" : err);
	tokenizer_free(t);
}

/* A tiny byte-level BPE: the 256 byte symbols, a few merges; ranks decide. */
static void bpe_cases(void)
{
	/* GPT-2 byte map, written out from its definition */
	int map[256], next = 256;
	for (int b = 0; b < 256; b++)
		map[b] = ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) ? b : next++;
	char *vj = xmalloc(65536);
	size_t o = 0;
	o += sprintf(vj + o, "{");
	for (int b = 0; b < 256; b++) {
		int c = map[b];
		char u[8];
		int k;
		if (c < 0x80)
			u[0] = (char)c, k = 1;
		else
			u[0] = (char)(0xC0 | c >> 6), u[1] = (char)(0x80 | (c & 0x3F)), k = 2;
		u[k] = 0;
		if (c == '"' || c == '\\')
			o += sprintf(vj + o, "\"\\%s\": %d, ", u, b + 10);
		else
			o += sprintf(vj + o, "\"%s\": %d, ", u, b + 10);
	}
	/* ids 0..4 specials; merged tokens from 300 */
	o += sprintf(vj + o, "\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3, \"<mask>\": 4, \"lo\": 300, \"ll\": 301, "
			     "\"llo\": 302, \"he\": 303, \"hello\": 304, \"\xc4\xa0h\": 305, \"\xc4\xa0he\": 306, \"hel\": 307}");
	put("vocab.json", vj, o);
	free(vj);
	/* "l o" outranks "l l": "llo" -> l + lo; "he" + "l" -> hel; "hel lo" -> hello */
	PUT("merges.txt", "#version: 0.2\nl o\nl l\nh e\nhe l\nhel lo\n\xc4\xa0 h\n\xc4\xa0h e\nll o\n");
	char err[512], p[300];
	snprintf(p, sizeof p, "%s/vocab.json", tmp);
	tokenizer *t = tokenizer_load(p, err, sizeof err);
	ok(t != NULL, "tiny BPE loads: %s", t ? "" : err);
	if (!t)
		return;
	IDS(t, "llo", 0, -1, "lower rank first: l + lo", 0, 'l' + 10, 300, 2);
	IDS(t, "hello", 0, -1, "he, hel, then hel+lo", 0, 304, 2);
	IDS(t, "hello hello", 0, -1, "\"hel lo\" (rank 4) merges before \"\xc4\xa0 h\" (rank 5): \xc4\xa0 + hello", 0, 304,
	    ' ' + 10, 304, 2);
	IDS(t, "hi!!  x", 0, -1, "pre-tokenizer: letters, punctuation run, spaces keep one for the next word",
	    0, 'h' + 10, 'i' + 10, '!' + 10, '!' + 10, ' ' + 10, ' ' + 10, 'x' + 10, 2);
	IDS(t, "it's", 0, -1, "contraction split", 0, 'i' + 10, 't' + 10, '\'' + 10, 's' + 10, 2);
	IDS(t, "a<mask>", 0, -1, "special token", 0, 'a' + 10, 4, 2);
	IDS(t, "\xc3\xa9", 0, -1, "a 2-byte character is two byte symbols", 0, 0xC3 + 10, 0xA9 + 10, 2);
	IDS(t, "\xff", 0, -1, "invalid byte -> U+FFFD bytes", 0, 0xEF + 10, 0xBF + 10, 0xBD + 10, 2);
	tokenizer_free(t);

	PUT("merges.txt", "#version: 0.2\nl o\nl  l\n");
	t = tokenizer_load(p, err, sizeof err);
	ok(!t && strstr(err, "merges.txt") && strstr(err, "line 3"), "malformed merges.txt names file and line: %s", err);
	tokenizer_free(t);
	PUT("merges.txt", "#version: 0.2\nl o\nq z\n");
	t = tokenizer_load(p, err, sizeof err);
	ok(!t && strstr(err, "merges.txt") && strstr(err, "line 3") && strstr(err, "qz"),
	   "merge result missing from vocabulary: %s", err);
	tokenizer_free(t);
}

static void error_cases(void)
{
	char err[512], p[300];
	snprintf(p, sizeof p, "%s/nothing-here", tmp);
	tokenizer *t = tokenizer_load(p, err, sizeof err);
	ok(!t && strstr(err, "nothing-here"), "missing path named: %s", err);
	snprintf(p, sizeof p, "%s/empty", tmp);
	mkdir(p, 0777);
	t = tokenizer_load(p, err, sizeof err);
	ok(!t && strstr(err, "no tokenizer.json"), "directory without tokenizer files: %s", err);
	put("vocab.txt", "[PAD]\n[UNK]\nbad\xff\n", 17);
	snprintf(p, sizeof p, "%s/vocab.txt", tmp);
	t = tokenizer_load(p, err, sizeof err);
	ok(!t && strstr(err, "vocab.txt") && strstr(err, "line 3"), "invalid UTF-8 in vocab.txt names line 3: %s", err);
	PUT("tok.json", "{\"model\": {\"type\": \"WordPiece\",\n \"vocab\": {\"a\": 0,}}}");
	snprintf(p, sizeof p, "%s/tok.json", tmp);
	t = tokenizer_load(p, err, sizeof err);
	ok(!t && strstr(err, "tok.json") && strstr(err, "line 2"), "malformed tokenizer.json names line 2: %s", err);
	PUT("tok.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
	t = tokenizer_load(p, err, sizeof err);
	ok(!t && strstr(err, "Unigram"), "unsupported model named: %s", err);
	PUT("tok.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"b\": 0}}}");
	t = tokenizer_load(p, err, sizeof err);
	ok(!t && strstr(err, "id 0"), "two tokens with one id: %s", err);
}

int main(void)
{
	snprintf(tmp, sizeof tmp, "%s/st-tokenizer-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmp))
		return 1;
	(void)near;
	(void)skip_all;
	wordpiece_cases();
	st_config_cases();
	bpe_cases();
	error_cases();
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	if (system(cmd))
		return 1;
	return done_testing();
}
