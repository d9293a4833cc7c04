/* fuzz_tokenizer_load.c: libFuzzer target for the tokenizer file loaders. The first byte picks the format:
 * tokenizer.json, vocab.txt, or vocab.json + merges.txt (split at the first NUL byte) by its value modulo 3,
 * or sentencepiece.bpe.model when it is 0xF0 or more; the rest is the file content. A tokenizer that loads must then encode, save and load again without trouble. */
#include "st.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static void put(const char *name, const uint8_t *d, size_t n)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "wb");
	if (!f)
		abort();
	fwrite(d, 1, n, f);
	fclose(f);
}

static void rm(const char *name)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	unlink(p);
}

static void cleanup(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd))
		return;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "%s/st-fuzz-load-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		if (!mkdtemp(dir))
			abort();
		atexit(cleanup);
	}
	if (size < 1 || size > 1 << 20)
		return 0;
	static const char *names[] = { "tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer_config.json",
				       "special_tokens_map.json", "sentence_bert_config.json", "sentencepiece.bpe.model" };
	for (int k = 0; k < 8; k++)
		rm(names[k]);
	const uint8_t *d = data + 1;
	size_t n = size - 1;
	switch (data[0] >= 0xF0 ? 3 : data[0] % 3) {
	case 3:
		put("sentencepiece.bpe.model", d, n);
		break;
	case 0:
		put("tokenizer.json", d, n);
		break;
	case 1:
		put("vocab.txt", d, n);
		break;
	default: {
		const uint8_t *z = memchr(d, 0, n);
		size_t a = z ? (size_t)(z - d) : n;
		put("vocab.json", d, a);
		put("merges.txt", z ? z + 1 : d + n, z ? n - a - 1 : 0);
	}
	}
	char err[512];
	tokenizer *t = tokenizer_load(dir, err, sizeof err);
	if (!t)
		return 0;
	int32_t ids[256];
	static const char *texts[] = { "Hello, world! café 中文 [MASK] <mask>", "", "   ", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	for (int k = 0; k < 4; k++)
		tokenizer_encode_hf(t, texts[k], strlen(texts[k]), 1, 64, ids, 256);
	char out[300];
	snprintf(out, sizeof out, "%s/saved", dir);
	if (tokenizer_save(t, out, err, sizeof err) == 0) {
		tokenizer *u = tokenizer_load(out, err, sizeof err);
		tokenizer_free(u);
	}
	tokenizer_free(t);
	return 0;
}
