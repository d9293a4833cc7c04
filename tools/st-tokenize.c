/* st-tokenize: examples in, tokenized examples out. Adds "input_ids" (one int32 tensor per text, special
 * tokens included, truncated to max_seq_length) to every example record. See docs/st-tokenize.md. */
#include "st.h"
#include "stream.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: st-tokenize (--model DIR | --tokenizer PATH) [options] < examples > tokenized\n"
	"\n"
	"Adds \"input_ids\" (an array of int32 tensors, one per text, with special tokens) to each example.\n"
	"\n"
	"  --model DIR           model directory (tokenizer files, sentence_bert_config.json)\n"
	"  --tokenizer PATH      tokenizer.json, vocab.txt, vocab.json (+ merges.txt) or a directory\n"
	"  --max-seq-length N    truncate to N ids counting special tokens (default: the model's;\n"
	"                        0 = the model's, -1 = no truncation)\n"
	"  --no-strip            do not strip surrounding whitespace from texts (sentence-transformers does)\n"
	"  --skip-bad            skip records without texts (with a warning) instead of failing\n"
	"  --json                write JSON Lines instead of msgpack\n"
	"  --threads N           accepted for uniformity; tokenization runs on one core\n"
	"  --help                this text\n";

#define MAX_TEXTS 256

int main(int argc, char **argv)
{
	st_tool_init("st-tokenize", argc, argv, usage);
	const char *model = NULL, *tok_path = NULL;
	int max_len = 0, json = 0, skip_bad = 0, strip = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--model") && next)
			model = argv[++i];
		else if (!strcmp(a, "--tokenizer") && next)
			tok_path = argv[++i];
		else if (!strcmp(a, "--max-seq-length") && next)
			max_len = (int)st_parse_long(a, argv[++i]);
		else if (!strcmp(a, "--threads") && next)
			st_set_threads((int)st_parse_long(a, argv[++i]));
		else if (!strcmp(a, "--json"))
			json = 1;
		else if (!strcmp(a, "--skip-bad"))
			skip_bad = 1;
		else if (!strcmp(a, "--no-strip"))
			strip = 0;
		else
			usage_error(usage, "unknown or incomplete option '%s'", a);
	}
	if (!model == !tok_path)
		usage_error(usage, "give one of --model DIR or --tokenizer PATH");
	char err[1024];
	const char *src = model ? model : tok_path;
	tokenizer *t = tokenizer_load(src, err, sizeof err);
	if (!t)
		die(access(src, F_OK) ? EX_NOINPUT : EX_DATAERR, "%s", err);   /* missing: 66, broken: 65 */
	if (max_len < 0)
		max_len = -1;
	else if (max_len == 0 && tokenizer_max_seq_length(t) <= 0)
		max_len = -1;
	if (max_len == 0)
		max_len = tokenizer_max_seq_length(t);

	st_reader *r = st_reader_open(0, "stdin");
	st_reader_skip_bad(r, skip_bad);
	st_writer *w = st_writer_open(1, json);
	int cap = max_len > 0 ? max_len : 4096;
	int32_t *ids = xmalloc(cap * sizeof *ids);
	size_t replaced = 0;
	char first_bad[64] = "";
	long skipped = 0;
	st_val *rec;
	while ((rec = st_read(r))) {
		const char *texts[MAX_TEXTS];
		size_t lens[MAX_TEXTS];
		int n = st_example_texts(rec, texts, lens, MAX_TEXTS);
		if (n < 0 || n > MAX_TEXTS) {
			const char *why = n < 0 ? "has no texts" : "has more than 256 texts";
			if (!skip_bad)
				die(EX_DATAERR, "%s %s", st_reader_where(r), why);
			warn("%s %s; skipped", st_reader_where(r), why);
			skipped++;
			st_free(rec);
			continue;
		}
		st_val *arr = st_array();
		for (int k = 0; k < n; k++) {
			int m;
			for (;;) {
				m = strip ? tokenizer_encode(t, texts[k], lens[k], max_len, ids, cap)
					  : tokenizer_encode_hf(t, texts[k], lens[k], 1, max_len, ids, cap);
				if (m <= cap)
					break;
				cap = m * 2;
				ids = xrealloc(ids, cap * sizeof *ids);
			}
			int64_t shape[1] = { m };
			st_val *tv = st_tensor_new(ST_I32, 1, shape);
			if (m)
				memcpy(tv->t.data, ids, m * sizeof *ids);
			st_push(arr, tv);
		}
		if (tokenizer_replacements(t) != replaced) {
			if (!replaced)
				snprintf(first_bad, sizeof first_bad, "%s", st_reader_where(r));
			replaced = tokenizer_replacements(t);
		}
		st_set(rec, "input_ids", arr);
		st_write(w, rec);
		st_free(rec);
	}
	if (replaced)
		warn("replaced %zu invalid UTF-8 sequence%s with U+FFFD (first in %s)", replaced, replaced == 1 ? "" : "s",
		     first_bad);
	if (skipped)
		warn("skipped %ld record%s without texts", skipped, skipped == 1 ? "" : "s");
	st_writer_close(w);
	st_reader_close(r);
	free(ids);
	tokenizer_free(t);
	return 0;
}
