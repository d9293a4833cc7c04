/* st-encode: sentences in, embeddings out, in input order -- SentenceTransformer.encode as a filter.
 * Reads a window of lines and hands it to search_encode (tokenize, sort by length so that batches carry little
 * padding, embed batch by batch), then writes the window in input order: memory is bounded by the window. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <unistd.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "st.h"
#include "gemm_bf16.h"
#include "model.h"
#include "quantize.h"
#include "search.h"
#include "stream.h"
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
	ENC_COMPUTE_USAGE
	"  --help                this text\n";

static void check_write(FILE *out)
{
	if (ferror(out)) {
		if (errno == EPIPE)
			exit(0);   /* a closed downstream pipe is not an error */
		die(EX_IOERR, "writing the output: %s", strerror(errno));
	}
}

/* Rows after the model: truncate, normalize (the library's order), then quantize with the ranges. */
struct post {
	int truncate, normalize, precision;
	float *mins, *maxs;
};

static void write_window(FILE *out, const float *emb, int n, int dim, int f32);

/* emb [n][dim] -> written with truncation, normalization and precision (emb is changed in place). */
static void write_post(FILE *out, float *emb, int n, int dim, const struct post *p, int f32)
{
	int d = p->truncate ? p->truncate : dim;
	if (d != dim)
		for (int i = 0; i < n; i++)
			memmove(emb + (size_t)i * d, emb + (size_t)i * dim, sizeof *emb * d);
	if (p->normalize)
		search_normalize(emb, n, d);
	if (p->precision == QUANT_FLOAT32) {
		write_window(out, emb, n, d, f32);
		return;
	}
	size_t rb = quantize_row_bytes(p->precision, d);
	uint8_t *q = xmalloc(xmul(n ? n : 1, rb));
	quantize_rows(p->precision, emb, n, d, p->mins, p->maxs, q);
	if (f32) {
		fwrite(q, 1, rb * n, out);
		check_write(out);
	} else
		for (int i = 0; i < n; i++) {
			fputs("{\"embedding\": [", out);
			for (size_t k = 0; k < rb; k++) {
				uint8_t b = q[i * rb + k];
				int v = p->precision == QUANT_INT8 || p->precision == QUANT_BINARY ? (int)(int8_t)b : (int)b;
				fprintf(out, k ? ",%d" : "%d", v);
			}
			fputs("]}\n", out);
			check_write(out);
		}
	free(q);
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

/* --output token_embeddings: one text at a time, every real token's state */
static void write_tokens(FILE *out, st_model *m, tokenizer *tok, const search_texts *w, int max_len,
			 const char **wfile, const long *wline, const char *model_path, int f32)
{
	int hidden = model_encoder_config(m)->hidden;
	for (size_t i = 0; i < w->n; i++) {
		float *states;
		int ntok;
		if (search_encode_tokens(m, tok, w->s[i], w->len[i], max_len, &states, &ntok) < 0)
			die(EX_DATAERR, "%s, line %ld: cannot tokenize the text for model %s", wfile[i], wline[i],
			    model_path);
		for (size_t k = 0; k < (size_t)ntok * hidden; k++)
			if (!isfinite(states[k]))
				die(EX_DATAERR, "%s, line %ld: the model gives a non-finite token embedding (model %s)",
				    wfile[i], wline[i], model_path);
		if (f32) {
			fwrite(states, sizeof(float), (size_t)ntok * hidden, out);
		} else {
			fputs("{\"token_embeddings\": [", out);
			for (int t = 0; t < ntok; t++) {
				fputs(t ? ",[" : "[", out);
				for (int k = 0; k < hidden; k++)
					fprintf(out, k ? ",%.9g" : "%.9g", states[(size_t)t * hidden + k]);
				fputc(']', out);
			}
			fputs("]}\n", out);
		}
		check_write(out);
		free(states);
	}
}

enum { OPT_MODEL = 256, OPT_FORMAT, OPT_BATCH, OPT_WINDOW, OPT_MAXLEN, OPT_THREADS, OPT_PROMPT_NAME, OPT_PROMPT,
       OPT_NORMALIZE, OPT_TRUNCATE, OPT_PRECISION, OPT_CALIBRATION, OPT_OUTPUT, OPT_COMPUTE };
static const struct option opts[] = {
	{ "model", required_argument, 0, OPT_MODEL },
	{ "format", required_argument, 0, OPT_FORMAT },
	{ "batch-size", required_argument, 0, OPT_BATCH },
	{ "window", required_argument, 0, OPT_WINDOW },
	{ "max-seq-length", required_argument, 0, OPT_MAXLEN },
	{ "threads", required_argument, 0, OPT_THREADS },
	{ "prompt-name", required_argument, 0, OPT_PROMPT_NAME },
	{ "prompt", required_argument, 0, OPT_PROMPT },
	{ "normalize", no_argument, 0, OPT_NORMALIZE },
	{ "truncate-dim", required_argument, 0, OPT_TRUNCATE },
	{ "precision", required_argument, 0, OPT_PRECISION },
	{ "calibration", required_argument, 0, OPT_CALIBRATION },
	{ "output", required_argument, 0, OPT_OUTPUT },
	{ "compute", required_argument, 0, OPT_COMPUTE },
	{ 0 }
};

int main(int argc, char **argv)
{
	st_tool_init("st-encode", argc, argv, usage);
	const char *model_path = NULL;
	long batch = 32, window_size = 4096, max_len = 0;
	int f32 = 0, c, tokens = 0;
	long truncate = 0;
	const char *calibration = NULL;
	struct post post = { 0 };
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
		case OPT_PROMPT_NAME: search_prompt_option(v, NULL); break;
		case OPT_PROMPT: search_prompt_option(NULL, v); break;
		case OPT_NORMALIZE: post.normalize = 1; break;
		case OPT_TRUNCATE:
			if ((truncate = st_parse_long("--truncate-dim", v)) <= 0)
				usage_error(usage, "--truncate-dim must be positive");
			break;
		case OPT_PRECISION:
			if ((post.precision = quantize_parse(v)) < 0)
				usage_error(usage, "--precision is float32, int8, uint8, binary or ubinary");
			break;
		case OPT_CALIBRATION: calibration = v; break;
		case OPT_COMPUTE: enc_compute_option(v, usage); break;
		case OPT_OUTPUT:
			if (!strcmp(v, "token_embeddings")) tokens = 1;
			else if (!strcmp(v, "sentence_embedding")) tokens = 0;
			else usage_error(usage, "--output is sentence_embedding or token_embeddings");
			break;
		}
	}
	const char **files = (const char **)argv + optind;
	int nfiles = argc - optind;
	if (!model_path)
		usage_error(usage, "--model DIR is required");
	if (window_size < batch)
		window_size = batch;
	if (tokens && (post.normalize || truncate || post.precision || calibration))
		usage_error(usage, "--output token_embeddings takes no --normalize, --truncate-dim, --precision");
	if (calibration && post.precision != QUANT_INT8 && post.precision != QUANT_UINT8)
		usage_error(usage, "--calibration goes with --precision int8 or uint8");
	st_model *m;
	tokenizer *tok;
	search_open_model(model_path, &m, &tok);
	int limit = enc_max_length(model_encoder_config(m));
	if (!max_len)
		max_len = model_max_seq_length(m);
	if (max_len > limit)
		die(EX_USAGE, "--max-seq-length %ld exceeds the model's position table (%d)", max_len, limit);
	int dim = model_dim(m);
	if (!truncate)
		truncate = model_truncate_dim(m);
	if (truncate > dim)
		die(EX_USAGE, "--truncate-dim %ld is larger than the model's embedding size %d (%s)", truncate, dim,
		    model_path);
	post.truncate = truncate == dim ? 0 : (int)truncate;
	int out_dim = truncate ? (int)truncate : dim;
	/* int8/uint8 without calibration: ranges from every embedding of the input, so all of them are kept */
	int hold = (post.precision == QUANT_INT8 || post.precision == QUANT_UINT8) && !calibration;
	float *held = NULL;
	size_t nheld = 0;
	if (calibration) {
		int dcal = out_dim;
		size_t ncal = 0;
		float *cal = search_read_calibration(calibration, &dcal, &ncal);
		post.mins = xmalloc(xmul(out_dim, sizeof(float)));
		post.maxs = xmalloc(xmul(out_dim, sizeof(float)));
		quantize_ranges(cal, ncal, out_dim, post.mins, post.maxs);
		free(cal);
	}

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
				if (tokens) {
					write_tokens(stdout, m, tok, &window, (int)max_len, wfile, wline, model_path, f32);
					search_texts_free(&window);
					if (got < 0)
						break;
					continue;
				}
				if (search_encode(m, tok, (const char *const *)window.s, window.len, window.n, (int)batch,
						  (int)max_len, emb, err, sizeof err) < 0) {
					size_t t;   /* search_encode names text t of the window: name its file and line */
					const char *colon = strchr(err, ':');
					if (sscanf(err, "text %zu:", &t) == 1 && colon && t >= 1 && t <= window.n)
						die(EX_DATAERR, "%s, line %ld: %s (model %s)", wfile[t - 1], wline[t - 1],
						    colon + 2, model_path);
					die(EX_DATAERR, "%s: %s", model_path, err);
				}
				if (hold) {
					/* truncated and normalized now; quantized at the end with the ranges of all */
					struct post now = post;
					now.precision = QUANT_FLOAT32;
					held = xrealloc(held, xmul(xmul(nheld + window.n, out_dim), sizeof(float)));
					int d = post.truncate ? post.truncate : dim;
					for (size_t i = 0; i < window.n; i++)
						memcpy(held + (nheld + i) * d, emb + i * dim, sizeof *emb * d);
					if (now.normalize)
						search_normalize(held + nheld * d, window.n, d);
					nheld += window.n;
				} else
					write_post(stdout, emb, (int)window.n, dim, &post, f32);
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
	if (hold) {
		post.mins = xmalloc(xmul(out_dim, sizeof(float)));
		post.maxs = xmalloc(xmul(out_dim, sizeof(float)));
		quantize_ranges(held, nheld, out_dim, post.mins, post.maxs);
		post.truncate = 0;
		post.normalize = 0;
		write_post(stdout, held, (int)nheld, out_dim, &post, f32);
		free(held);
	}
	free(post.mins);
	free(post.maxs);
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
