/* st-json: converts a record stream between msgpack and JSON Lines (docs/st-json.md). */
#include "st.h"
#include "stream.h"

#include <getopt.h>
#include <string.h>

static const char usage[] =
	"usage: st-json [--to-msgpack] [--skip-bad] [--threads N] < records > records\n"
	"\n"
	"Reads msgpack or JSON Lines (plain or zstd-compressed, told apart by their first bytes) and writes\n"
	"JSON Lines, tensors as nested arrays; with --to-msgpack writes msgpack, keys of known meaning\n"
	"(input_ids, lengths, embeddings, grad, labels) typed as tensors again.\n"
	"\n"
	"  --to-msgpack   write msgpack instead of JSON Lines\n"
	"  --skip-bad     skip malformed JSON lines with a warning instead of stopping\n"
	"  --threads N    accepted for uniformity; conversion runs on one core\n"
	"  -h, --help     this text\n";

int main(int argc, char **argv)
{
	st_tool_init("st-json", argc, argv, usage);
	int to_msgpack = 0, skip_bad = 0;
	enum { O_TO_MSGPACK = 256, O_SKIP_BAD, O_THREADS };
	static const struct option opts[] = {
		{"to-msgpack", no_argument, 0, O_TO_MSGPACK},
		{"skip-bad", no_argument, 0, O_SKIP_BAD},
		{"threads", required_argument, 0, O_THREADS},
		{0},
	};
	int c;
	while ((c = st_getopt(argc, argv, opts, usage)) != -1)
		switch (c) {
		case O_TO_MSGPACK: to_msgpack = 1; break;
		case O_SKIP_BAD: skip_bad = 1; break;
		case O_THREADS: st_set_threads((int)st_parse_long("--threads", optarg)); break;
		}
	if (optind < argc)
		usage_error(usage, "unexpected argument '%s'", argv[optind]);
	st_reader *in = st_reader_open(0, "stdin");
	st_reader_skip_bad(in, skip_bad);
	st_writer *out = st_writer_open(1, !to_msgpack);
	st_val *rec;
	while ((rec = st_read(in))) {
		st_write(out, rec);
		st_free(rec);
	}
	st_writer_close(out);
	st_reader_close(in);
	return 0;
}
