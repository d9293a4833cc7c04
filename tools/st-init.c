/* st-init: create a sentence-transformers model directory -- wrap a Hugging Face checkpoint, or start from a
 * random encoder -- with Pooling, optional Dense layers and Normalize. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "st.h"
#include "model.h"

static const char usage[] =
	"usage: st-init --transformer HF_DIR [options] -o DIR\n"
	"       st-init --config CONFIG.json --vocab VOCAB [--seed S] [options] -o DIR\n"
	"\n"
	"Writes a complete sentence-transformers model directory (docs/model-directory.md).\n"
	"\n"
	"  --transformer DIR     wrap a Hugging Face checkpoint (config.json + model.safetensors + tokenizer files)\n"
	"                        or an existing sentence-transformers model, or a Hub name such as\n"
	"                        org/name[@revision], downloaded first (docs/hub.md)\n"
	"  --config FILE         a Hugging Face config.json for a new, randomly initialised encoder\n"
	"  --vocab PATH          its tokenizer: vocab.txt, tokenizer.json, or a directory of tokenizer files\n"
	"  --seed S              seed of the random initialisation (default 42)\n"
	"  --pooling MODES       cls, mean, max, mean_sqrt_len, weightedmean, lasttoken; comma-combined (default mean)\n"
	"  --dense OUT           add a Dense layer with OUT features (repeatable, applied in order)\n"
	"  --activation NAME     activation of the Dense layer before it: tanh (default), identity, relu, gelu, sigmoid\n"
	"  --no-bias             the Dense layer before it has no bias\n"
	"  --normalize           add a Normalize module (after the Dense layers given before it)\n"
	"  --max-seq-length N    longest input in tokens, special tokens included\n"
	"  --prompt NAME=TEXT    a prompt in config_sentence_transformers.json (repeatable), e.g. --prompt\n"
	"                        query='query: ' --prompt passage='passage: ' for an e5-style model\n"
	"  --default-prompt-name NAME  the prompt encoding applies when none is given (one of the prompts)\n"
	"  --no-include-prompt   include_prompt: false in 1_Pooling/config.json: prompt tokens are not pooled\n"
	"  -o, --output DIR      the model directory to write (built as DIR.tmp.PID, then renamed)\n"
	"  --force               replace DIR if it exists\n"
	"  --threads N           threads (default all cores)\n"
	"  --help                this text\n";

enum { OP_DENSE, OP_NORMALIZE };
struct head_op { int kind, out, act, bias; };

int main(int argc, char **argv)
{
	st_tool_init("st-init", argc, argv, usage);
	const char *transformer = NULL, *config = NULL, *vocab = NULL, *out = NULL, *pooling = NULL;
	long seed = 42, max_seq = 0;
	int force = 0, nops = 0;
	const char **prompts = NULL, *default_prompt = NULL;   /* --prompt NAME=TEXT, in order */
	int nprompts = 0, no_include_prompt = 0;
	struct head_op *ops = xcalloc(argc, sizeof *ops);
	enum { O_TRANSFORMER = 256, O_CONFIG, O_VOCAB, O_SEED, O_POOLING, O_DENSE, O_ACTIVATION, O_NO_BIAS,
	       O_NORMALIZE, O_MAX_SEQ_LENGTH, O_FORCE, O_THREADS, O_PROMPT, O_DEFAULT_PROMPT, O_NO_INCLUDE_PROMPT };
	static const struct option opts[] = {
		{"transformer", required_argument, 0, O_TRANSFORMER},
		{"config", required_argument, 0, O_CONFIG},
		{"vocab", required_argument, 0, O_VOCAB},
		{"seed", required_argument, 0, O_SEED},
		{"pooling", required_argument, 0, O_POOLING},
		{"dense", required_argument, 0, O_DENSE},
		{"activation", required_argument, 0, O_ACTIVATION},
		{"no-bias", no_argument, 0, O_NO_BIAS},
		{"normalize", no_argument, 0, O_NORMALIZE},
		{"max-seq-length", required_argument, 0, O_MAX_SEQ_LENGTH},
		{"prompt", required_argument, 0, O_PROMPT},
		{"default-prompt-name", required_argument, 0, O_DEFAULT_PROMPT},
		{"no-include-prompt", no_argument, 0, O_NO_INCLUDE_PROMPT},
		{"output", required_argument, 0, 'o'},
		{"force", no_argument, 0, O_FORCE},
		{"threads", required_argument, 0, O_THREADS},
		{0},
	};
	int c;
	/* the head options apply in command-line order, which getopt keeps */
	while ((c = st_getopt(argc, argv, opts, usage)) != -1)
		switch (c) {
		case O_TRANSFORMER: transformer = optarg; break;
		case O_CONFIG: config = optarg; break;
		case O_VOCAB: vocab = optarg; break;
		case O_SEED: seed = st_parse_long("--seed", optarg); break;
		case O_POOLING: pooling = optarg; break;
		case O_DENSE: {
			long n = st_parse_long("--dense", optarg);
			if (n <= 0 || n > 1 << 20)
				usage_error(usage, "--dense %s: out of range", optarg);
			ops[nops++] = (struct head_op){ OP_DENSE, (int)n, MODEL_ACT_TANH, 1 };
			break;
		}
		case O_ACTIVATION:
			if (!nops || ops[nops - 1].kind != OP_DENSE)
				usage_error(usage, "--activation must follow a --dense");
			if ((ops[nops - 1].act = model_activation_parse(optarg)) < 0)
				usage_error(usage, "unknown activation '%s' (tanh, identity, relu, gelu, sigmoid)", optarg);
			break;
		case O_NO_BIAS:
			if (!nops || ops[nops - 1].kind != OP_DENSE)
				usage_error(usage, "--no-bias must follow a --dense");
			ops[nops - 1].bias = 0;
			break;
		case O_NORMALIZE: ops[nops++] = (struct head_op){ OP_NORMALIZE, 0, 0, 0 }; break;
		case O_MAX_SEQ_LENGTH:
			if ((max_seq = st_parse_long("--max-seq-length", optarg)) <= 0)
				usage_error(usage, "--max-seq-length must be positive");
			break;
		case O_PROMPT:
			if (!strchr(optarg, '=') || *optarg == '=')
				usage_error(usage, "--prompt wants NAME=TEXT, not '%s'", optarg);
			prompts = xrealloc(prompts, sizeof *prompts * (size_t)(nprompts + 1));
			prompts[nprompts++] = optarg;
			break;
		case O_DEFAULT_PROMPT: default_prompt = optarg; break;
		case O_NO_INCLUDE_PROMPT: no_include_prompt = 1; break;
		case 'o': out = optarg; break;
		case O_FORCE: force = 1; break;
		case O_THREADS: st_set_threads((int)st_parse_long("--threads", optarg)); break;
		}
	if (optind < argc)
		usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!out)
		usage_error(usage, "-o DIR is required");
	if (!transformer == !config)
		usage_error(usage, "give either --transformer or --config");
	if (config && !vocab)
		usage_error(usage, "--config needs --vocab");
	if (transformer && vocab)
		usage_error(usage, "--vocab goes with --config (a checkpoint brings its tokenizer)");
	struct stat st;
	if (!force && stat(out, &st) == 0)
		die(EX_USAGE, "%s: exists (use --force to replace it)", out);

	char err[1024];
	st_model *m;
	if (transformer) {
		m = model_open(transformer);
	} else {
		size_t len;
		char *text = st_read_file(config, &len);
		if (!text)
			die(EX_NOINPUT, "%s: cannot read", config);
		if (stat(vocab, &st) < 0)
			die(EX_NOINPUT, "%s: no such file or directory", vocab);
		if (!(m = model_new_random(text, len, vocab, (uint64_t)seed, err, sizeof err)))
			die(EX_DATAERR, "%s (--config %s)", err, config);
		free(text);
	}

	/* heads: the loaded ones stay unless the command line describes new ones */
	if (pooling || nops || !transformer) {
		int modes = MODEL_POOL_MEAN;
		if (pooling && (modes = model_pooling_parse(pooling, err, sizeof err)) < 0)
			usage_error(usage, "--pooling: %s", err);
		model_set_pooling(m, modes);
		for (int k = 0; k < nops; k++) {
			if (ops[k].kind == OP_DENSE)
				model_add_dense(m, ops[k].out, ops[k].act, ops[k].bias, (uint64_t)seed + 1000003u * (k + 1));
			else
				model_add_normalize(m);
		}
	}
	for (int k = 0; k < nprompts; k++) {
		const char *eq = strchr(prompts[k], '=');
		char *name = xstrdup(prompts[k]);
		name[eq - prompts[k]] = 0;
		model_add_prompt(m, name, eq + 1);
		free(name);
	}
	if (default_prompt && model_set_default_prompt_name(m, default_prompt) < 0)
		usage_error(usage, "--default-prompt-name %s: the model has no prompt of that name (give --prompt %s=TEXT)",
			    default_prompt, default_prompt);
	if (no_include_prompt)
		model_set_include_prompt(m, 0);
	if (max_seq) {
		int limit = enc_max_length(model_encoder_config(m));
		if (max_seq > limit)
			die(EX_USAGE, "--max-seq-length %ld exceeds the position table (%d)", max_seq, limit);
		model_set_max_seq_length(m, (int)max_seq);
	}
	if (model_save(m, out, err, sizeof err) < 0)
		die(EX_IOERR, "%s", err);
	model_free(m);
	free(ops);
	free(prompts);
	return 0;
}
