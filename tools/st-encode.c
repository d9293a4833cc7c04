/* st-encode: sentences in, embeddings out, in input order -- SentenceTransformer.encode as a filter.
 * Reads a window of lines, tokenizes them, sorts the window by length so that batches carry little padding,
 * embeds batch by batch, and writes the window back in input order: memory is bounded by the window. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "st.h"
#include "model.h"
#include "tokenizer.h"

static const char usage[] =
	"usage: st-encode --model DIR [options] [FILE...] > embeddings\n"
	"\n"
	"Encodes one text per line (or JSON Lines with a \"text\" field) of FILEs or stdin, and writes one\n"
	"{\"embedding\": [...]} line per input line, in input order.\n"
	"\n"
	"  --model DIR           a sentence-transformers model directory (or a plain Hugging Face checkpoint)\n"
	"  --format F            json (default): JSON Lines; f32: a raw little-endian float32 matrix [lines][dim]\n"
	"  --batch-size N        sentences per forward pass (default 32)\n"
	"  --window N            sentences read, sorted by length and written per round (default 4096)\n"
	"  --max-seq-length N    truncate to N tokens, special tokens included (default: the model's)\n"
	"  --threads N           threads (default all cores)\n"
	"  --help                this text\n";

struct item { int32_t *ids; int len; long line; };

static int by_length_desc(const void *a, const void *b)
{
	const struct item *x = *(const struct item *const *)a, *y = *(const struct item *const *)b;
	if (x->len != y->len)
		return y->len - x->len;
	return x->line < y->line ? -1 : x->line > y->line;
}

static void check_write(FILE *out)
{
	if (ferror(out)) {
		if (errno == EPIPE)
			exit(0);   /* a closed downstream pipe is not an error */
		die(EX_IOERR, "writing the output: %s", strerror(errno));
	}
}

/* Embeds items[0..n) (sorted by length), batch by batch, into emb [window][dim] at each item's slot. */
static void embed_window(st_model *m, struct item **sorted, int n, long first_line, int batch, float *emb)
{
	int dim = model_dim(m);
	int32_t *ids = NULL, *lens = xmalloc(sizeof(int32_t) * batch);
	float *out = xmalloc(xmul((size_t)batch * dim, sizeof(float)));
	for (int i0 = 0; i0 < n; i0 += batch) {
		int rows = n - i0 < batch ? n - i0 : batch;
		int T = sorted[i0]->len > 0 ? sorted[i0]->len : 1;   /* sorted: the first is the longest */
		ids = xrealloc(ids, xmul((size_t)rows * T, sizeof(int32_t)));
		memset(ids, 0, sizeof(int32_t) * rows * T);
		for (int b = 0; b < rows; b++) {
			memcpy(ids + (size_t)b * T, sorted[i0 + b]->ids, sizeof(int32_t) * sorted[i0 + b]->len);
			lens[b] = sorted[i0 + b]->len;
		}
		model_embed(m, ids, lens, rows, T, out, NULL);
		for (int b = 0; b < rows; b++)
			memcpy(emb + (size_t)(sorted[i0 + b]->line - first_line) * dim, out + (size_t)b * dim,
			       sizeof(float) * dim);
	}
	free(ids);
	free(lens);
	free(out);
}

static void write_window(FILE *out, const float *emb, int n, int dim, int f32)
{
	if (f32) {
		fwrite(emb, sizeof(float), (size_t)n * dim, out);
		check_write(out);
		return;
	}
	for (int i = 0; i < n; i++) {
		fputs("{\"embedding\": [", out);
		for (int k = 0; k < dim; k++)
			fprintf(out, k ? ",%.9g" : "%.9g", emb[(size_t)i * dim + k]);   /* 9 digits: float32 round trip */
		fputs("]}\n", out);
		check_write(out);
	}
}

int main(int argc, char **argv)
{
	st_tool_init("st-encode", argc, argv, usage);
	const char *model_path = NULL;
	long batch = 32, window = 4096, max_len = 0;
	int f32 = 0, nfiles = 0;
	const char **files = xcalloc(argc, sizeof *files);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() do { if (!v) usage_error(usage, "%s needs a value", a); i++; } while (0)
		if (!strcmp(a, "--model")) { NEED(); model_path = v; }
		else if (!strcmp(a, "--format")) {
			NEED();
			if (!strcmp(v, "f32")) f32 = 1;
			else if (!strcmp(v, "json") || !strcmp(v, "jsonl")) f32 = 0;
			else usage_error(usage, "--format is json or f32");
		} else if (!strcmp(a, "--batch-size")) {
			NEED();
			if ((batch = st_parse_long(a, v)) <= 0 || batch > 1 << 20)
				usage_error(usage, "--batch-size out of range");
		} else if (!strcmp(a, "--window")) {
			NEED();
			if ((window = st_parse_long(a, v)) <= 0 || window > 1 << 24)
				usage_error(usage, "--window out of range");
		} else if (!strcmp(a, "--max-seq-length")) {
			NEED();
			if ((max_len = st_parse_long(a, v)) <= 0)
				usage_error(usage, "--max-seq-length must be positive");
		} else if (!strcmp(a, "--threads")) { NEED(); st_set_threads((int)st_parse_long(a, v)); }
		else if (a[0] == '-' && a[1]) usage_error(usage, "unknown option %s", a);
		else files[nfiles++] = a;
#undef NEED
	}
	if (!model_path)
		usage_error(usage, "--model DIR is required");
	if (window < batch)
		window = batch;
	struct stat st;
	if (stat(model_path, &st) < 0)
		die(EX_NOINPUT, "%s: no such model directory", model_path);
	char err[1024];
	st_model *m = model_load(model_path, err, sizeof err);
	if (!m)
		die(EX_DATAERR, "%s", err);
	tokenizer *tok = tokenizer_load(model_path, err, sizeof err);
	if (!tok)
		die(EX_DATAERR, "%s", err);
	int limit = enc_max_length(model_encoder_config(m));
	if (!max_len)
		max_len = model_max_seq_length(m);
	if (max_len > limit)
		die(EX_USAGE, "--max-seq-length %ld exceeds the model's position table (%d)", max_len, limit);
	int vocab = model_encoder_config(m)->vocab_size;
	int dim = model_dim(m);

	struct item *items = xcalloc(window, sizeof *items);
	struct item **sorted = xcalloc(window, sizeof *sorted);
	int32_t *arena = xmalloc(xmul(xmul(window, max_len), sizeof(int32_t)));
	float *emb = xmalloc(xmul(xmul(window, dim), sizeof(float)));
	int json_input = -1;   /* decided by the first line */
	long line_no = 0, first_line = 0;
	int n = 0;
	char *line = NULL;
	size_t cap = 0;
	for (int fi = 0; fi < (nfiles ? nfiles : 1); fi++) {
		const char *name = nfiles ? files[fi] : "stdin";
		FILE *in = nfiles && strcmp(files[fi], "-") ? fopen(files[fi], "r") : stdin;
		if (!in)
			die(EX_NOINPUT, "%s: %s", name, strerror(errno));
		long file_line = 0;
		ssize_t got;
		for (;;) {
			got = getline(&line, &cap, in);
			if (got >= 0) {
				file_line++;
				while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
					line[--got] = 0;
				if (json_input < 0)
					json_input = got > 0 && line[0] == '{';
				const char *text = line;
				size_t len = got;
				json_t *j = NULL;
				if (json_input) {
					json_error_t je;
					j = json_loadb(line, got, 0, &je);
					json_t *t = json_object_get(j, "text");
					if (!json_is_string(t))
						die(EX_DATAERR, "%s line %ld: %s", name, file_line,
						    j ? "no \"text\" string" : je.text);
					text = json_string_value(t);
					len = json_string_length(t);
				}
				struct item *it = &items[n];
				it->ids = arena + (size_t)n * max_len;
				it->len = tokenizer_encode(tok, text, len, (int)max_len, it->ids, (int)max_len);
				it->line = line_no++;
				if (it->len > max_len)
					die(EX_SOFTWARE, "%s line %ld: tokenizer returned %d ids for at most %ld", name, file_line,
					    it->len, max_len);
				for (int k = 0; k < it->len; k++)
					if (it->ids[k] < 0 || it->ids[k] >= vocab)
						die(EX_DATAERR, "%s line %ld: token id %d outside the model's vocabulary 0..%d "
						    "(tokenizer and config.json disagree)", name, file_line, it->ids[k], vocab - 1);
				if (j)
					json_decref(j);
				n++;
			}
			if (n == window || (got < 0 && n > 0 && fi == (nfiles ? nfiles : 1) - 1)) {
				for (int i = 0; i < n; i++)
					sorted[i] = &items[i];
				qsort(sorted, n, sizeof *sorted, by_length_desc);
				embed_window(m, sorted, n, first_line, (int)batch, emb);
				write_window(stdout, emb, n, dim, f32);
				first_line += n;
				n = 0;
			}
			if (got < 0)
				break;
		}
		if (in != stdin)
			fclose(in);
	}
	fflush(stdout);
	check_write(stdout);
	free(line);
	free(arena);
	free(emb);
	free(items);
	free(sorted);
	free(files);
	tokenizer_free(tok);
	model_free(m);
	return 0;
}
