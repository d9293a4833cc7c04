/* st-vocab: learns a WordPiece vocabulary from raw text lines (or converts an existing tokenizer) and writes
 * the tokenizer files of a model directory. See docs/st-vocab.md. */
#define _GNU_SOURCE
#include "st.h"
#include "tokenizer.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: st-vocab -o DIR [options] < text\n"
	"       st-vocab --from PATH -o DIR\n"
	"\n"
	"Learns a WordPiece vocabulary from lines of raw text on stdin and writes vocab.txt, tokenizer.json,\n"
	"tokenizer_config.json and special_tokens_map.json into DIR. With --from, loads an existing tokenizer\n"
	"(tokenizer.json, vocab.txt, vocab.json + merges.txt, or a model directory) and writes the same files.\n"
	"\n"
	"  -o, --output DIR      where to write (created if absent)\n"
	"  --vocab-size N        at most N tokens, special tokens and alphabet included (default 30522)\n"
	"  --min-frequency N     merge only pairs seen at least N times (default 2)\n"
	"  --lowercase           lower-case and strip accents, as BERT uncased (default)\n"
	"  --cased               keep case and accents\n"
	"  --max-seq-length N    model_max_length written to tokenizer_config.json (default 512)\n"
	"  --from PATH           convert an existing tokenizer instead of training\n"
	"  --threads N           accepted for uniformity; training runs on one core\n"
	"  --help                this text\n";

int main(int argc, char **argv)
{
	st_tool_init("st-vocab", argc, argv, usage);
	const char *out = NULL, *from = NULL;
	long vocab_size = 30522, min_freq = 2, max_len = 512;
	int lowercase = 1;
	enum { O_VOCAB_SIZE = 256, O_MIN_FREQUENCY, O_MAX_SEQ_LENGTH, O_FROM, O_THREADS, O_LOWERCASE, O_CASED };
	static const struct option opts[] = {
		{"output", required_argument, 0, 'o'},
		{"vocab-size", required_argument, 0, O_VOCAB_SIZE},
		{"min-frequency", required_argument, 0, O_MIN_FREQUENCY},
		{"max-seq-length", required_argument, 0, O_MAX_SEQ_LENGTH},
		{"from", required_argument, 0, O_FROM},
		{"threads", required_argument, 0, O_THREADS},
		{"lowercase", no_argument, 0, O_LOWERCASE},
		{"cased", no_argument, 0, O_CASED},
		{0},
	};
	int c;
	while ((c = st_getopt(argc, argv, opts, usage)) != -1)
		switch (c) {
		case 'o': out = optarg; break;
		case O_VOCAB_SIZE: vocab_size = st_parse_long("--vocab-size", optarg); break;
		case O_MIN_FREQUENCY: min_freq = st_parse_long("--min-frequency", optarg); break;
		case O_MAX_SEQ_LENGTH: max_len = st_parse_long("--max-seq-length", optarg); break;
		case O_FROM: from = optarg; break;
		case O_THREADS: st_set_threads((int)st_parse_long("--threads", optarg)); break;
		case O_LOWERCASE: lowercase = 1; break;
		case O_CASED: lowercase = 0; break;
		}
	if (optind < argc)
		usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!out)
		usage_error(usage, "-o DIR is required");
	if (vocab_size < 6 || vocab_size > 10000000)
		usage_error(usage, "--vocab-size must be between 6 and 10000000");
	if (min_freq < 1)
		min_freq = 1;
	char err[1024];
	tokenizer *t;
	if (from) {
		t = tokenizer_load(from, err, sizeof err);
		if (!t)
			die(access(from, F_OK) ? EX_NOINPUT : EX_DATAERR, "%s", err);   /* missing: 66, broken: 65 */
	} else {
		tokenizer_trainer *tr = tokenizer_trainer_new(lowercase);
		char *line = NULL;
		size_t cap = 0, lines = 0;
		ssize_t n;
		while ((n = getline(&line, &cap, stdin)) >= 0) {
			tokenizer_trainer_feed(tr, line, (size_t)n);
			lines++;
		}
		if (ferror(stdin))
			die(EX_IOERR, "reading stdin failed");
		free(line);
		double t0 = st_now();
		t = tokenizer_trainer_finish(tr, (int)vocab_size, (int)min_freq, err, sizeof err);
		if (!t)
			die(EX_DATAERR, "stdin: %s", err);
		fprintf(stderr, "st-vocab: %d tokens from %zu lines, %zu distinct words (%.1f s)\n", tokenizer_vocab_size(t),
			lines, tokenizer_trainer_words(tr), st_now() - t0);
		tokenizer_trainer_free(tr);
		tokenizer_set_max_seq_length(t, (int)max_len);
	}
	if (tokenizer_save(t, out, err, sizeof err))
		die(EX_IOERR, "%s", err);
	tokenizer_free(t);
	return 0;
}
