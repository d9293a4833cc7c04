/* st-encode: sentences in, embeddings out, in input order -- SentenceTransformer.encode as a filter.
 * Reads a window of lines and hands it to search_encode (tokenize, sort by length so that batches carry little
 * padding, embed batch by batch), then writes the window in input order: memory is bounded by the window. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "st.h"
#include "model.h"
#include "search.h"
#include "tokenizer.h"

static const char usage[] =
	"usage: st-encode --model DIR [options] [FILE...] > embeddings\n"
	"\n"
	"Encodes one text per line (or JSON Lines with a \"text\" field) of FILEs or stdin, and writes one\n"
	"{\"embedding\": [...]} line per input line, in input order.\n"
	"\n"
	"  --model DIR           a sentence-transformers model directory (or a plain Hugging Face checkpoint),\n"
	"                        or a Hub name such as all-MiniLM-L6-v2 or org/name[@revision] (docs/hub.md)\n"
	"  --format F            json (default): JSON Lines; f32: a raw little-endian float32 matrix [lines][dim]\n"
	"  --batch-size N        sentences per forward pass (default 32)\n"
	"  --window N            sentences read, sorted by length and written per round (default 4096)\n"
	"  --max-seq-length N    truncate to N tokens, special tokens included (default: the model's)\n"
	"  --threads N           threads (default all cores)\n"
	"  --help                this text\n";

static void check_write(FILE *out)
{
	if (ferror(out)) {
		if (errno == EPIPE)
			exit(0);   /* a closed downstream pipe is not an error */
		die(EX_IOERR, "writing the output: %s", strerror(errno));
	}
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

enum { OPT_MODEL = 256, OPT_FORMAT, OPT_BATCH, OPT_WINDOW, OPT_MAXLEN, OPT_THREADS };
static const struct option opts[] = {
	{ "model", required_argument, 0, OPT_MODEL },
	{ "format", required_argument, 0, OPT_FORMAT },
	{ "batch-size", required_argument, 0, OPT_BATCH },
	{ "window", required_argument, 0, OPT_WINDOW },
	{ "max-seq-length", required_argument, 0, OPT_MAXLEN },
	{ "threads", required_argument, 0, OPT_THREADS },
	{ 0 }
};

int main(int argc, char **argv)
{
	st_tool_init("st-encode", argc, argv, usage);
	const char *model_path = NULL;
	long batch = 32, window_size = 4096, max_len = 0;
	int f32 = 0, c;
	while ((c = st_getopt(argc, argv, opts, usage)) != -1) {
		const char *v = optarg;
		switch (c) {
		case OPT_MODEL: model_path = v; break;
		case OPT_FORMAT:
			if (!strcmp(v, "f32")) f32 = 1;
			else if (!strcmp(v, "json") || !strcmp(v, "jsonl")) f32 = 0;
			else usage_error(usage, "--format is json or f32");
			break;
		case OPT_BATCH:
			if ((batch = st_parse_long("--batch-size", v)) <= 0 || batch > 1 << 20)
				usage_error(usage, "--batch-size out of range");
			break;
		case OPT_WINDOW:
			if ((window_size = st_parse_long("--window", v)) <= 0 || window_size > 1 << 24)
				usage_error(usage, "--window out of range");
			break;
		case OPT_MAXLEN:
			if ((max_len = st_parse_long("--max-seq-length", v)) <= 0)
				usage_error(usage, "--max-seq-length must be positive");
			break;
		case OPT_THREADS: st_set_threads((int)st_parse_long("--threads", v)); break;
		}
	}
	const char **files = (const char **)argv + optind;
	int nfiles = argc - optind;
	if (!model_path)
		usage_error(usage, "--model DIR is required");
	if (window_size < batch)
		window_size = batch;
	st_model *m;
	tokenizer *tok;
	search_open_model(model_path, &m, &tok);
	int limit = enc_max_length(model_encoder_config(m));
	if (!max_len)
		max_len = model_max_seq_length(m);
	if (max_len > limit)
		die(EX_USAGE, "--max-seq-length %ld exceeds the model's position table (%d)", max_len, limit);
	int dim = model_dim(m);

	/* a window of texts, embedded by search_encode (sorted by length, in batches) and written in input order */
	search_texts window = { 0 };
	float *emb = xmalloc(xmul(xmul(window_size, dim), sizeof(float)));
	char err[1024];
	int json_input = -1;   /* decided by the first line */
	char *line = NULL;
	size_t cap = 0;
	/* where each text of the window came from, to name it in an error */
	long *wline = xmalloc(xmul(window_size, sizeof *wline));
	const char **wfile = xmalloc(xmul(window_size, sizeof *wfile));
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
				const char *bad = search_line_problem(line, got, file_line);
				if (bad)
					die(EX_DATAERR, "%s, line %ld: %s", name, file_line, bad);
				if (json_input < 0)
					json_input = got > 0 && line[0] == '{';
				wline[window.n] = file_line;
				wfile[window.n] = name;
				if (json_input) {
					json_error_t je;
					json_t *j = json_loadb(line, got, 0, &je);
					json_t *t = json_object_get(j, "text");
					if (!json_is_string(t))
						die(EX_DATAERR, "%s, line %ld: %s", name, file_line, j ? "no \"text\" string" : je.text);
					search_texts_append(&window, json_string_value(t), json_string_length(t));
					json_decref(j);
				} else
					search_texts_append(&window, line, got);
			}
			if ((long)window.n == window_size || (got < 0 && window.n > 0 && fi == (nfiles ? nfiles : 1) - 1)) {
				if (search_encode(m, tok, (const char *const *)window.s, window.len, window.n, (int)batch,
						  (int)max_len, emb, err, sizeof err) < 0) {
					size_t t;   /* search_encode names text t of the window: name its file and line */
					const char *colon = strchr(err, ':');
					if (sscanf(err, "text %zu:", &t) == 1 && colon && t >= 1 && t <= window.n)
						die(EX_DATAERR, "%s, line %ld: %s (model %s)", wfile[t - 1], wline[t - 1],
						    colon + 2, model_path);
					die(EX_DATAERR, "%s: %s", model_path, err);
				}
				write_window(stdout, emb, (int)window.n, dim, f32);
				search_texts_free(&window);
			}
			if (got < 0)
				break;
		}
		if (ferror(in))   /* getline's -1 is also a read error or a line past the memory limit: not an end */
			die(errno == ENOMEM ? EX_OSERR : EX_IOERR, "cannot read %s (after line %ld): %s", name, file_line,
			    strerror(errno));
		if (in != stdin)
			fclose(in);
	}
	fflush(stdout);
	check_write(stdout);
	free(line);
	free(emb);
	free(wline);
	free(wfile);
	tokenizer_free(tok);
	model_free(m);
	return 0;
}
