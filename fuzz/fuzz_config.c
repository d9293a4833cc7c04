/* fuzz_config.c: libFuzzer target for the model directory's JSON files. The first byte picks the file:
 * 0: config.json through enc_config_parse alone; 1: modules.json, 2: 1_Pooling/config.json, 3: config.json,
 * 4: sentence_bert_config.json of a tiny model made at start-up, then loaded with model_load. A file must
 * load or be refused with a message (or die() with one, turned into a longjmp: run with detect_leaks=0),
 * never crash, and never make the loader read a module outside the model directory. */
#include "encoder.h"
#include "model.h"
#include "st.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void (*st_die_hook)(void);
static jmp_buf back;
static void die_back(void) { longjmp(back, 1); }

static char dir[256], model[300];
static char *saved[5];
static size_t saved_len[5];
static const char *files[5] = { NULL, "modules.json", "1_Pooling/config.json", "config.json", "sentence_bert_config.json" };

static void put(const char *name, const void *d, size_t n)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", model, name);
	FILE *f = fopen(p, "wb");
	if (!f)
		abort();
	fwrite(d, 1, n, f);
	fclose(f);
}

static void cleanup(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd))
		return;
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "%s/st-fuzz-config-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	char vocab[300];
	snprintf(vocab, sizeof vocab, "%s/vocab.txt", dir);
	FILE *f = fopen(vocab, "w");
	fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\n", f);
	fclose(f);
	static const char cfg[] = "{\"model_type\": \"bert\", \"hidden_size\": 8, \"num_hidden_layers\": 1, "
				  "\"num_attention_heads\": 2, \"intermediate_size\": 16, \"max_position_embeddings\": 16}";
	char err[1024];
	st_model *m = model_new_random(cfg, strlen(cfg), vocab, 1, err, sizeof err);
	snprintf(model, sizeof model, "%s/m", dir);
	if (!m || model_save(m, model, err, sizeof err)) {
		fprintf(stderr, "fuzz_config: cannot make the model: %s\n", err);
		abort();
	}
	model_free(m);
	for (int k = 1; k < 5; k++) {
		char p[512];
		snprintf(p, sizeof p, "%s/%s", model, files[k]);
		saved[k] = st_read_file(p, &saved_len[k]);
		if (!saved[k])
			saved[k] = xstrdup(""), saved_len[k] = 0;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0])
		setup();
	if (size < 1 || size > 1 << 16)
		return 0;
	int which = data[0] % 5;
	char err[1024];
	st_die_hook = die_back;
	if (!setjmp(back)) {
		if (which == 0) {
			enc_config c;
			if (enc_config_parse(&c, (const char *)data + 1, size - 1, err, sizeof err) < 0 && !err[0])
				abort();   /* a refusal says why */
		} else {
			put(files[which], data + 1, size - 1);
			st_model *m = model_load(model, err, sizeof err);
			if (!m && !err[0])
				abort();
			model_free(m);
		}
	}
	st_die_hook = NULL;
	if (which)
		put(files[which], saved[which], saved_len[which]);
	return 0;
}
