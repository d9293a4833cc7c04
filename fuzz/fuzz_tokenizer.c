/* fuzz_tokenizer.c: libFuzzer target: arbitrary bytes through the WordPiece and byte-level BPE encoders
 * (bert-base-uncased and roberta-base from ../shared/data when present, else a small built-in vocabulary), and
 * the SentencePiece Unigram encoder when ST_FUZZ_SPM names a .model (as read, and through the tokenizer.json
 * tokenizer_save writes for it).
 * Checks what must hold for any input: ids in range, [CLS]/[SEP] framing, truncation honoured, and the same
 * ids on a second call (the BPE cache must not change results). */
#include "st.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tokenizer *tok[5];
static int ntok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *shared = getenv("ST_SHARED") ? getenv("ST_SHARED") : "../shared/data";
	char p[1024], err[512];
	snprintf(p, sizeof p, "%s/tokenizers/bert-base-uncased", shared);
	if ((tok[ntok] = tokenizer_load(p, err, sizeof err)))
		ntok++;
	snprintf(p, sizeof p, "%s/tokenizers/roberta-base", shared);
	if ((tok[ntok] = tokenizer_load(p, err, sizeof err)))
		ntok++;
	static const char *small[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##a", "b", "##b", "ab", "##ab",
				       "中", "!", "é", "##é" };
	tok[ntok++] = tokenizer_wordpiece_new(small, 15, 1, err, sizeof err);
	const char *spm = getenv("ST_FUZZ_SPM");
	if (spm && (tok[ntok] = tokenizer_load(spm, err, sizeof err))) {
		char dir[256];
		snprintf(dir, sizeof dir, "%s.saved", spm);
		if (!tokenizer_save(tok[ntok++], dir, err, sizeof err) && (tok[ntok] = tokenizer_load(dir, err, sizeof err)))
			ntok++;
	}
	return 0;
}

static int32_t a[1 << 14], b[1 << 14];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 16)
		return 0;
	int max_len = size ? (data[0] % 4 == 0 ? 8 : -1) : -1;
	for (int k = 0; k < ntok; k++) {
		tokenizer *t = tok[k];
		int n = tokenizer_encode_hf(t, (const char *)data, size, 1, max_len, a, 1 << 14);
		int m = tokenizer_encode_hf(t, (const char *)data, size, 1, max_len, b, 1 << 14);
		if (n != m || n < 0 || (n <= (1 << 14) && memcmp(a, b, n * sizeof *a)))
			abort();   /* not deterministic */
		if (max_len > 0 && n > max_len)
			abort();   /* truncation ignored */
		for (int i = 0; i < n && i < (1 << 14); i++)
			if (a[i] < 0 || a[i] >= tokenizer_vocab_size(t) || !tokenizer_id_to_token(t, a[i]))
				abort();   /* id out of range */
		int s = tokenizer_encode(t, (const char *)data, size, max_len, a, 1 << 14);
		if (s < 2)
			abort();   /* both models add two special tokens */
	}
	return 0;
}
