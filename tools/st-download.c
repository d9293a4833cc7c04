/* st-download: resolves model names to local folders, downloading from the Hugging Face Hub into its cache
 * what is not there yet (lib/hub.h, docs/st-download.md, docs/hub.md). For scripts (st-card, st-push) and for
 * anyone who wants the files of a model. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "st.h"

static const char usage[] =
	"usage: st-download MODEL... > folders\n"
	"\n"
	"Prints, one a line, the local folder of each MODEL: a path that exists as it is; a Hub name\n"
	"(org/name, or name for sentence-transformers/name, with an optional @revision) as its snapshot in\n"
	"the Hugging Face cache ($HF_HUB_CACHE, ~/.cache/huggingface/hub), downloaded first when needed\n"
	"(only the files a sentence-transformers model uses). Environment: HF_ENDPOINT, HF_HOME,\n"
	"HF_HUB_CACHE, HF_HUB_OFFLINE=1, HF_TOKEN (docs/hub.md).\n"
	"\n"
	"  --threads N    accepted for uniformity\n"
	"  -h, --help     this text\n";

int main(int argc, char **argv)
{
	st_tool_init("st-download", argc, argv, usage);
	static const struct option opts[] = {
		{"threads", required_argument, NULL, 256},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	while ((c = st_getopt(argc, argv, opts, usage)) != -1)
		if (c == 256)
			st_set_threads((int)st_parse_long("--threads", optarg));
	if (optind == argc)
		usage_error(usage, "give at least one MODEL");
	for (int i = optind; i < argc; i++) {
		char *path = hub_model_path(argv[i]);   /* dies 66 (missing) or 74 (network, disk) */
		if (printf("%s\n", path) < 0 || fflush(stdout) == EOF) {
			if (errno == EPIPE)   /* the reader has gone: not an error */
				return 0;
			die(EX_IOERR, "cannot write to stdout (%s)", strerror(errno));
		}
		free(path);
	}
	return 0;
}
