/* st-export: a model directory as a file other runtimes load -- for now ONNX (lib/onnx.c, docs/st-export.md). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "onnx.h"
#include "st.h"

static const char usage[] =
	"usage: st-export --onnx --model DIR -o FILE\n"
	"\n"
	"Writes the model (Transformer + Pooling [+ Dense] [+ Normalize]) as one ONNX file (IR 8, opset 17) with\n"
	"dynamic batch and sequence length: inputs input_ids and attention_mask (int64 [batch, sequence]; BERT\n"
	"also token_type_ids), outputs sentence_embedding [batch, dim] and token_embeddings [batch, sequence,\n"
	"hidden]. The file is written to FILE.tmp.PID and renamed; models above 2 GB are refused.\n"
	"\n"
	"  --onnx                the format (the only one so far)\n"
	"  --model DIR           a sentence-transformers model directory (or a plain Hugging Face checkpoint)\n"
	"  -o, --output FILE     the file to write\n"
	"  --threads N           accepted for uniformity (exporting is a copy)\n"
	"  --help                this text\n"
	"\n"
	"Exit status: 0 written, 64 usage, 65 a model that cannot be exported, 66 no such model, 74 I/O error.\n";

enum { OPT_ONNX = 256, OPT_MODEL, OPT_THREADS };

int main(int argc, char **argv)
{
	st_tool_init("st-export", argc, argv, usage);
	static const struct option opts[] = {
		{ "onnx", no_argument, NULL, OPT_ONNX },
		{ "model", required_argument, NULL, OPT_MODEL },
		{ "output", required_argument, NULL, 'o' },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ 0 },
	};
	const char *model_path = NULL, *out_path = NULL;
	int onnx = 0, c;
	/* st_getopt is long-only; -o is the one short spelling this tool documents (as st-init does) */
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "-o"))
			argv[i] = "--output";
	while ((c = st_getopt(argc, argv, opts, usage)) != -1) {
		switch (c) {
		case OPT_ONNX: onnx = 1; break;
		case OPT_MODEL: model_path = optarg; break;
		case 'o': out_path = optarg; break;
		case OPT_THREADS: st_set_threads((int)st_parse_long("--threads", optarg)); break;
		}
	}
	if (optind < argc)
		usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!onnx)
		usage_error(usage, "give the format: --onnx");
	if (!model_path)
		usage_error(usage, "--model DIR is required");
	if (!out_path || !*out_path)
		usage_error(usage, "-o FILE is required");
	st_model *m = model_open(model_path);
	char err[1024];
	int too_large;
	if (onnx_export(m, out_path, &too_large, err, sizeof err) < 0)
		die(too_large ? EX_DATAERR : EX_IOERR, "%s: %s", model_path, err);
	model_free(m);
	return 0;
}
