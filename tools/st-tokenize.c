/* st-tokenize: examples in, tokenized examples out. Adds "input_ids" (one int32 tensor per text, special
 * tokens included, truncated to max_seq_length) to every example record, and "prompt_length" (one count per
 * text) when a prompt is prepended. See docs/st-tokenize.md. */
#include "hub.h"
#include "st.h"
#include "stream.h"
#include "tokenizer.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: st-tokenize (--model DIR | --tokenizer PATH) [options] < examples > tokenized\n"
	"\n"
	"Adds \"input_ids\" (an array of int32 tensors, one per text, with special tokens) to each example.\n"
	"\n"
	"  --model DIR           model directory (tokenizer files, sentence_bert_config.json), or a Hub name\n"
	"                        such as org/name[@revision] (docs/hub.md)\n"
	"  --tokenizer PATH      tokenizer.json, vocab.txt, vocab.json (+ merges.txt) or a directory\n"
	"  --max-seq-length N    truncate to N ids counting special tokens (default: the model's;\n"
	"                        0 = the model's, -1 = no truncation)\n"
	"  --no-strip            do not strip surrounding whitespace from texts (sentence-transformers does)\n"
	"  --prompt-name NAME    prepend prompts[NAME] of the model's config_sentence_transformers.json to every text\n"
	"                        (training's prompts argument; no default prompt is applied in training)\n"
	"  --prompt TEXT         prepend TEXT to every text; both add \"prompt_length\" (the prompt's tokens, one\n"
	"                        per text), which st-forward and st-step leave out of pooling when the model's\n"
	"                        1_Pooling/config.json says include_prompt: false\n"
	"  --column-prompt-name C=NAME, --column-prompt C=TEXT\n"
	"                        the same for text column C only (0-based: 0 the anchors, 1 the positives, ...);\n"
	"                        repeatable, and they win over --prompt-name/--prompt for their column\n"
	"  --skip-bad            skip records without texts (with a warning) instead of failing\n"
	"  --json                write JSON Lines instead of msgpack\n"
	"  --threads N           accepted for uniformity; tokenization runs on one core\n"
	"  --help                this text\n";

#define MAX_TEXTS 256

/* The prompt of every text column: a default for all, and per-column overrides, with their token counts. */
static const char *col_prompt[MAX_TEXTS];

/* C=VALUE of --column-prompt(-name): the column, and VALUE in *value. */
static int column_arg(const char *opt, const char *arg, const char **value)
{
	const char *eq = strchr(arg, '=');
	char *end;
	long c = eq && eq > arg ? strtol(arg, &end, 10) : -1;
	if (!eq || eq == arg || end != eq || c < 0 || c >= MAX_TEXTS)
		usage_error(usage, "%s wants COLUMN=VALUE with COLUMN from 0 to %d, not '%s'", opt, MAX_TEXTS - 1, arg);
	*value = eq + 1;
	return (int)c;
}

/* prompts[name] of the model's config_sentence_transformers.json (loaded once into *stc). */
static const char *named_prompt(const char *model, const char *src, json_t **stc, const char *name)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/config_sentence_transformers.json", src);
	if (!model)
		usage_error(usage, "--prompt-name and --column-prompt-name need --model DIR (its "
			    "config_sentence_transformers.json)");
	if (!*stc) {
		json_error_t je;
		*stc = json_load_file(path, 0, &je);
	}
	json_t *p = json_object_get(json_object_get(*stc, "prompts"), name);
	if (!json_is_string(p))
		die(EX_DATAERR, "prompt name '%s' not found in the prompts of %s", name, path);
	return json_string_value(p);
}

int main(int argc, char **argv)
{
	st_tool_init("st-tokenize", argc, argv, usage);
	const char *model = NULL, *tok_path = NULL, *prompt_name = NULL, *prompt = NULL;
	const char *col_name_arg[MAX_TEXTS] = { 0 }, *col_text_arg[MAX_TEXTS] = { 0 };
	int max_len = 0, json = 0, skip_bad = 0, strip = 1;
	enum { O_MODEL = 256, O_TOKENIZER, O_MAX_SEQ_LENGTH, O_THREADS, O_JSON, O_SKIP_BAD, O_NO_STRIP, O_PROMPT_NAME,
	       O_PROMPT, O_COL_PROMPT_NAME, O_COL_PROMPT };
	static const struct option opts[] = {
		{"model", required_argument, 0, O_MODEL},
		{"tokenizer", required_argument, 0, O_TOKENIZER},
		{"max-seq-length", required_argument, 0, O_MAX_SEQ_LENGTH},
		{"threads", required_argument, 0, O_THREADS},
		{"json", no_argument, 0, O_JSON},
		{"skip-bad", no_argument, 0, O_SKIP_BAD},
		{"no-strip", no_argument, 0, O_NO_STRIP},
		{"prompt-name", required_argument, 0, O_PROMPT_NAME},
		{"prompt", required_argument, 0, O_PROMPT},
		{"column-prompt-name", required_argument, 0, O_COL_PROMPT_NAME},
		{"column-prompt", required_argument, 0, O_COL_PROMPT},
		{0},
	};
	int c;
	while ((c = st_getopt(argc, argv, opts, usage)) != -1)
		switch (c) {
		case O_MODEL: model = optarg; break;
		case O_TOKENIZER: tok_path = optarg; break;
		case O_MAX_SEQ_LENGTH: max_len = (int)st_parse_long("--max-seq-length", optarg); break;
		case O_THREADS: st_set_threads((int)st_parse_long("--threads", optarg)); break;
		case O_JSON: json = 1; break;
		case O_SKIP_BAD: skip_bad = 1; break;
		case O_NO_STRIP: strip = 0; break;
		case O_PROMPT_NAME: prompt_name = optarg; break;
		case O_PROMPT: prompt = optarg; break;
		case O_COL_PROMPT_NAME: {
			const char *v;
			int col = column_arg("--column-prompt-name", optarg, &v);
			col_name_arg[col] = v;
			break;
		}
		case O_COL_PROMPT: {
			const char *v;
			int col = column_arg("--column-prompt", optarg, &v);
			col_text_arg[col] = v;
			break;
		}
		}
	if (optind < argc)
		usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!model == !tok_path)
		usage_error(usage, "give one of --model DIR or --tokenizer PATH");
	char err[1024];
	const char *src = model ? hub_model_path(model) : tok_path;   /* a directory, or a Hub name's snapshot */
	tokenizer *t = tokenizer_load(src, err, sizeof err);
	if (!t)
		die(access(src, F_OK) ? EX_NOINPUT : EX_DATAERR, "%s", err);   /* missing: 66, broken: 65 */
	json_t *stc = NULL;
	if (prompt_name && !prompt)   /* --prompt wins, as in encode() */
		prompt = named_prompt(model, src, &stc, prompt_name);
	int any_prompt = prompt && *prompt;
	for (int c = 0; c < MAX_TEXTS; c++) {
		col_prompt[c] = prompt && *prompt ? prompt : NULL;
		if (col_text_arg[c] || col_name_arg[c]) {
			const char *p = col_text_arg[c] ? col_text_arg[c] : named_prompt(model, src, &stc, col_name_arg[c]);
			col_prompt[c] = *p ? p : NULL;
			any_prompt = 1;
		}
	}
	char *joined = NULL;   /* prompt + text */
	size_t joined_cap = 0;
	if (max_len < 0)
		max_len = -1;
	else if (max_len == 0 && tokenizer_max_seq_length(t) <= 0)
		max_len = -1;
	if (max_len == 0)
		max_len = tokenizer_max_seq_length(t);
	/* the trainer's prompt_length of each column: what pooling leaves out when include_prompt is false */
	int col_tokens[MAX_TEXTS];
	for (int c = 0; c < MAX_TEXTS; c++) {
		if (!col_prompt[c])
			col_tokens[c] = 0;
		else if (c && col_prompt[c] == col_prompt[c - 1])
			col_tokens[c] = col_tokens[c - 1];
		else
			col_tokens[c] = tokenizer_prompt_length(t, col_prompt[c], strlen(col_prompt[c]), max_len);
	}

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
			size_t prompt_len = col_prompt[k] ? strlen(col_prompt[k]) : 0;
			const char *prompt_k = col_prompt[k];
			if (prompt_len) {
				if (joined_cap < prompt_len + lens[k] + 1)
					joined = xrealloc(joined, joined_cap = 2 * (prompt_len + lens[k] + 1));
				memcpy(joined, prompt_k, prompt_len);
				memcpy(joined + prompt_len, texts[k], lens[k]);
				joined[prompt_len + lens[k]] = 0;
				texts[k] = joined;
				lens[k] += prompt_len;
			}
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
		if (any_prompt) {
			st_val *pl = st_array();
			for (int k = 0; k < n; k++)
				st_push(pl, st_int(col_tokens[k]));
			st_set(rec, "prompt_length", pl);
		}
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
	free(joined);
	if (stc)
		json_decref(stc);
	tokenizer_free(t);
	return 0;
}
