/* tokenizer_unigram.c: hand-worked cases for the Unigram tokenizer (tokenizer_unigram.c): the best path by
 * score, ties, unknown characters (fused, byte fallback), the normalizers, Metaspace's prepend schemes around
 * added tokens, a charsmap built by hand (a three-unit double array), and refused files. The ids against
 * libsentencepiece on trained models are in tests/tokenizer_unigram.t. */
#include "st.h"
#include "tap.h"
#include "tokenizer.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

/* vocab: ids 0-12; scores chosen so that every case below has one best path worked out by hand */
static const char *VOCAB = "[[\"<s>\", 0.0], [\"<pad>\", 0.0], [\"</s>\", 0.0], [\"<unk>\", 0.0], [\"\u2581\", -2.0],"
	" [\"\u2581a\", -1.0], [\"b\", -3.0], [\"\u2581ab\", -3.5], [\"c\", -2.5], [\"bc\", -6.0], [\"\u2581abc\", -10.0],"
	" [\"<0x7A>\", 0.0], [\"<mask>\", 0.0], [\"d\", -1.0], [\"e\", -1.0], [\"de\", -2.0]]";

static const char *ADDED = "[{\"id\": 0, \"content\": \"<s>\", \"special\": true}, {\"id\": 2, \"content\": \"</s>\","
	" \"special\": true}, {\"id\": 12, \"content\": \"<mask>\", \"special\": true, \"lstrip\": true}]";

static const char *POST = "{\"type\": \"RobertaProcessing\", \"sep\": [\"</s>\", 2], \"cls\": [\"<s>\", 0]}";

static tokenizer *load(const char *normalizer, const char *pre, int byte_fallback, const char *unk_id)
{
	char path[512], err[512];
	snprintf(path, sizeof path, "%s/tokenizer.json", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "{\"added_tokens\": %s, \"normalizer\": %s, \"pre_tokenizer\": %s, \"post_processor\": %s,"
		   " \"model\": {\"type\": \"Unigram\", \"unk_id\": %s, \"byte_fallback\": %s, \"vocab\": %s}}",
		ADDED, normalizer, pre, POST, unk_id, byte_fallback ? "true" : "false", VOCAB);
	fclose(f);
	tokenizer *t = tokenizer_load(path, err, sizeof err);
	if (!t)
		printf("# %s\n", err);
	return t;
}

static int ids_are(tokenizer *t, const char *text, const int32_t *want, int n, const char *what)
{
	int32_t got[64];
	int m = tokenizer_encode_hf(t, text, strlen(text), 1, -1, got, 64);
	int same = m == n;
	for (int k = 0; same && k < n; k++)
		same = got[k] == want[k];
	if (!ok(same, "%s", what)) {
		printf("#   got ");
		for (int k = 0; k < m && k < 64; k++)
			printf(" %d", got[k]);
		printf("\n");
	}
	return same;
}
#define IDS(t, text, what, ...)                                                             \
	do {                                                                                \
		const int32_t w_[] = { __VA_ARGS__ };                                       \
		ids_are(t, text, w_, (int)(sizeof w_ / sizeof *w_), what);                  \
	} while (0)

static const char *META = "{\"type\": \"Metaspace\", \"replacement\": \"\u2581\", \"prepend_scheme\": \"always\", \"split\": true}";
static const char *COLLAPSE = "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Strip\", \"strip_left\": false,"
	" \"strip_right\": true}, {\"type\": \"Replace\", \"pattern\": {\"Regex\": \" {2,}\"}, \"content\": \"\u2581\"}]}";

/* base64 of the bytes, for the hand-built charsmap */
static void b64(const uint8_t *d, size_t n, char *out)
{
	static const char c[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
		*out++ = c[v >> 18 & 63];
		*out++ = c[v >> 12 & 63];
		*out++ = i + 1 < n ? c[v >> 6 & 63] : '=';
		*out++ = i + 2 < n ? c[v & 63] : '=';
	}
	*out = 0;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

int main(void)
{
	snprintf(dir, sizeof dir, "%s/st-unigram-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		return 1;

	tokenizer *t = load(COLLAPSE, META, 0, "3");
	ok(t && tokenizer_kind(t) == TOKENIZER_UNIGRAM, "a Unigram tokenizer.json loads");
	ok(t && tokenizer_vocab_size(t) == 16 && tokenizer_unk_id(t) == 3, "vocab size 16, unk 3");
	ok(t && tokenizer_pad_id(t) == 1, "pad id 1 (<pad>)");
	/* "▁ab": ▁ab -3.5 beats ▁a + b -4.0 */
	IDS(t, "ab", "ab -> <s> ▁ab </s>", 0, 7, 2);
	/* "▁abc": ▁ab + c -6.0, ▁a + b + c -6.5, ▁a + bc -7.0, ▁abc -10.0 */
	IDS(t, "abc", "abc -> ▁ab c", 0, 7, 8, 2);
	/* "a▁bc" after the collapse: "▁a" and "▁bc"; ▁ + b + c -7.5 beats ▁ + bc -8.0 */
	IDS(t, "a  bc  ", "runs of spaces collapse, trailing ones go: ▁a ▁ b c", 0, 5, 4, 6, 8, 2);
	/* "▁de": ▁ + de and ▁ + d + e both -4.0: the path whose last piece starts first wins */
	IDS(t, "de", "equal scores: ▁ de", 0, 4, 15, 2);
	/* unknown characters: z and y have no piece; consecutive ones are one <unk> */
	IDS(t, "a zyz", "unknown characters fuse: ▁a ▁ <unk>", 0, 5, 4, 3, 2);
	IDS(t, "a <mask> b", "<mask> takes the space before it: ▁a <mask> ▁ b", 0, 5, 12, 4, 6, 2);
	IDS(t, "a<mask>b", "prepend_scheme always: a piece after an added token gets ▁", 0, 5, 12, 4, 6, 2);
	tokenizer_free(t);

	t = load(COLLAPSE, "{\"type\": \"Metaspace\", \"replacement\": \"\u2581\", \"prepend_scheme\": \"first\"}", 0, "3");
	IDS(t, "a<mask>b", "prepend_scheme first: only the text's start gets ▁", 0, 5, 12, 6, 2);
	tokenizer_free(t);
	t = load("null", "{\"type\": \"Metaspace\", \"replacement\": \"\u2581\", \"add_prefix_space\": false}", 0, "3");
	IDS(t, "bc", "add_prefix_space false, b + c -5.5 beats bc -6.0", 0, 6, 8, 2);
	tokenizer_free(t);

	t = load(COLLAPSE, META, 1, "3");
	/* byte fallback: z is <0x7A> (id 11); "zz" is two of them; y (0x79) has no byte piece: <unk> */
	IDS(t, "a zz", "byte fallback: ▁a ▁ <0x7A> <0x7A>", 0, 5, 4, 11, 11, 2);
	IDS(t, "a zy", "byte fallback needs every byte: ▁a ▁ <unk>", 0, 5, 4, 3, 2);
	IDS(t, "<0x7A>", "a byte piece's name in the text is not a piece", 0, 4, 3, 2);
	tokenizer_free(t);

	/* the older Hub layout: WhitespaceSplit then Metaspace(add_prefix_space), Strip and a literal Replace */
	t = load("{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Strip\"}, {\"type\": \"Replace\", \"pattern\":"
		 " {\"String\": \"q\"}, \"content\": \"c\"}]}",
		 "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"WhitespaceSplit\"}, {\"type\": \"Metaspace\","
		 " \"replacement\": \"\u2581\", \"add_prefix_space\": true}]}", 0, "3");
	IDS(t, " \t a\u3000\u00a0abq \n", "WhitespaceSplit drops Unicode spaces; Replace q -> c: ▁a ▁ab c", 0, 5, 7, 8, 2);
	tokenizer_free(t);

	/* a charsmap by hand: the root (unit 0, offset 1) leads by 'A' (1 ^ 0x41 = 64) to a unit labelled 'A'
	 * with a leaf (offset 1: 64 ^ 1 = 65) whose value 0 points at "a" in the strings after the trie */
	uint8_t blob[4 + 66 * 4 + 2];
	memset(blob, 0, sizeof blob);
	put32(blob, 66 * 4);
	put32(blob + 4 + 0 * 4, 1u << 10);
	put32(blob + 4 + 64 * 4, 1u << 10 | 1u << 8 | 0x41);
	put32(blob + 4 + 65 * 4, 0x80000000u | 0);
	blob[4 + 66 * 4] = 'a';
	char enc[400], norm[600];
	b64(blob, sizeof blob, enc);
	snprintf(norm, sizeof norm, "{\"type\": \"Precompiled\", \"precompiled_charsmap\": \"%s\"}", enc);
	t = load(norm, META, 0, "3");
	ok(t != NULL, "a Precompiled normalizer with a hand-built charsmap loads");
	IDS(t, "AB", "the charsmap maps A to a (B is unknown): ▁a <unk>", 0, 5, 3, 2);
	tokenizer_free(t);

	/* an added token past the model's vocabulary survives save and reload (found by the loader fuzzer) */
	{
		char p[1100], e[512], saved[512];
		snprintf(p, sizeof p, "%s/tokenizer.json", dir);
		FILE *g = fopen(p, "w");
		fprintf(g, "{\"added_tokens\": [{\"id\": 16, \"content\": \"<x>\", \"special\": true}],"
			   " \"pre_tokenizer\": %s, \"post_processor\": %s, \"model\": {\"type\": \"Unigram\","
			   " \"unk_id\": 3, \"vocab\": %s}}", META, POST, VOCAB);
		fclose(g);
		tokenizer *a = tokenizer_load(p, e, sizeof e);
		snprintf(saved, sizeof saved, "%s/saved", dir);
		ok(a && tokenizer_save(a, saved, e, sizeof e) == 0, "save with an added token past the vocabulary");
		tokenizer *b = tokenizer_load(saved, e, sizeof e);
		ok(b && tokenizer_vocab_size(b) == 17, "reloaded: 16 pieces and the added token");
		if (b)
			IDS(b, "a<x>b", "reloaded: ▁a <x> ▁ b", 0, 5, 16, 4, 6, 2);
		tokenizer_free(a);
		tokenizer_free(b);
		static const char *files[] = { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" };
		for (int k = 0; k < 3; k++) {
			snprintf(p, sizeof p, "%s/%s", saved, files[k]);
			unlink(p);
		}
		rmdir(saved);
	}

	/* refused */
	char err[512], path[512];
	snprintf(path, sizeof path, "%s/tokenizer.json", dir);
	ok(!load(COLLAPSE, META, 0, "99"), "unk_id outside the vocab is refused");
	ok(!load("{\"type\": \"NFKD\"}", META, 0, "3"), "an unsupported normalizer is refused");
	ok(!load("{\"type\": \"Precompiled\", \"precompiled_charsmap\": \"AAAA\"}", META, 0, "3"),
	   "a charsmap with a bad trie size is refused");
	ok(!load(COLLAPSE, "{\"type\": \"Whitespace\"}", 0, "3"), "an unsupported pre_tokenizer is refused");
	unlink(path);
	snprintf(path, sizeof path, "%s/sentencepiece.bpe.model", dir);
	FILE *f = fopen(path, "w");
	fputs("\x0a\x09\x0a\x03<un", f);   /* a piece message cut short */
	fclose(f);
	t = tokenizer_load(path, err, sizeof err);
	ok(!t && strstr(err, "sentencepiece.bpe.model"), "a truncated .model is refused naming the file (%s)", err);
	unlink(path);
	rmdir(dir);
	printf("1..%d\n", tap_n);
	return tap_failed != 0;
}
