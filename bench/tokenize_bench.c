/* tokenize_bench.c: tokens per second of the st tokenizer on one core. Built and run by bench/tokenize.sh.
 * usage: tokenize_bench TOKENIZER TEXTS-FILE [SECONDS]   (one text per line) */
#include "st.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: tokenize_bench TOKENIZER TEXTS-FILE [SECONDS]\n");
		return 64;
	}
	double min_s = argc > 3 ? atof(argv[3]) : 2.0;
	char err[1024];
	double t0 = st_now();
	tokenizer *t = tokenizer_load(argv[1], err, sizeof err);
	if (!t) {
		fprintf(stderr, "tokenize_bench: %s\n", err);
		return 66;
	}
	double load_s = st_now() - t0;
	size_t len;
	char *buf = st_read_file(argv[2], &len);
	if (!buf) {
		perror(argv[2]);
		return 66;
	}
	size_t ntext = 0, cap = 1024;
	char **text = malloc(cap * sizeof *text);
	size_t *tlen = malloc(cap * sizeof *tlen);
	for (char *p = buf; p < buf + len;) {
		char *nl = memchr(p, '\n', buf + len - p);
		if (!nl)
			nl = buf + len;
		if (ntext == cap) {
			cap *= 2;
			text = realloc(text, cap * sizeof *text);
			tlen = realloc(tlen, cap * sizeof *tlen);
		}
		text[ntext] = p;
		tlen[ntext++] = nl - p;
		p = nl + 1;
	}
	static int32_t ids[1 << 16];
	/* the first pass starts with an empty BPE cache; the timed passes after it show the steady state of a
	 * long run */
	size_t first_tokens = 0;
	t0 = st_now();
	for (size_t i = 0; i < ntext; i++)
		first_tokens += tokenizer_encode_hf(t, text[i], tlen[i], 1, -1, ids, 1 << 16);
	double first_s = st_now() - t0;
	size_t tokens = 0, passes = 0;
	t0 = st_now();
	double el;
	do {
		for (size_t i = 0; i < ntext; i++)
			tokens += tokenizer_encode_hf(t, text[i], tlen[i], 1, -1, ids, 1 << 16);
		passes++;
	} while ((el = st_now() - t0) < min_s);
	printf("{\"texts\": %zu, \"passes\": %zu, \"tokens\": %zu, \"seconds\": %.3f, \"tokens_per_s\": %.0f, \"first_pass_tokens_per_s\": %.0f, \"load_s\": %.3f}\n",
	       ntext, passes, tokens, el, tokens / el, first_tokens / first_s, load_s);
	tokenizer_free(t);
	free(buf);
	return 0;
}
