/* BERT's pooler (unused by sentence-transformers, kept so that Python loads the model without warnings) is used
 * where it lies in a mapped model.safetensors, like the encoder's tensors, not copied at load (lib/model_dir.c).
 * Whatever the path, model_save must write it back unchanged: checked byte for byte against the file it came
 * from, read with the safetensors reader, after a plain load, after model_params (the training path, which lets
 * the map go) and with ST_WEIGHTS=copy. */
#define _GNU_SOURCE
#include "model.h"
#include "model_impl.h"
#include "safetensors.h"
#include "st.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static const char *bert_config =
	"{\"model_type\": \"bert\", \"hidden_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
	"\"intermediate_size\": 32, \"max_position_embeddings\": 32}";

/* 1 when tensor NAME has the same dtype, shape and bytes in both files */
static int same_tensor(const char *dir_a, const char *dir_b, const char *name)
{
	char pa[600], pb[600], err[512];
	snprintf(pa, sizeof pa, "%s/model.safetensors", dir_a);
	snprintf(pb, sizeof pb, "%s/model.safetensors", dir_b);
	safetensors *a = sft_open(pa, err, sizeof err), *b = sft_open(pb, err, sizeof err);
	const sft_entry *ea = a ? sft_find(a, name) : NULL, *eb = b ? sft_find(b, name) : NULL;
	int same = ea && eb && !strcmp(ea->dtype, eb->dtype) && ea->ndim == eb->ndim &&
		   ea->end - ea->begin == eb->end - eb->begin &&
		   !memcmp(sft_data(a, ea), sft_data(b, eb), ea->end - ea->begin);
	if (!same)
		printf("# %s: %s differs (or is missing)\n", dir_b, name);
	sft_close(a);
	sft_close(b);
	return same;
}

static int pooler_kept(const char *orig, const char *saved)
{
	return same_tensor(orig, saved, "pooler.dense.weight") && same_tensor(orig, saved, "pooler.dense.bias") &&
	       same_tensor(orig, saved, "encoder.layer.1.output.dense.weight");
}

int main(void)
{
	st_set_threads(1);
	char tmp[] = "/tmp/st-pooler.XXXXXX", path[300], orig[300], out[300], err[1024];
	if (!mkdtemp(tmp))
		skip_all("no temporary folder");
	snprintf(path, sizeof path, "%s/vocab.txt", tmp);
	FILE *f = fopen(path, "w");
	fprintf(f, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
	for (int i = 0; i < 45; i++)
		fprintf(f, "w%d\n", i);
	fclose(f);
	snprintf(orig, sizeof orig, "%s/orig", tmp);
	st_model *m = model_new_random(bert_config, strlen(bert_config), path, 3, err, sizeof err);
	if (!ok(m && model_save(m, orig, err, sizeof err) == 0, "a random BERT saved (its pooler random too)"))
		return printf("# %s\n", err), done_testing();
	model_free(m);

	m = model_open(orig);
	ok(!m->pooler && m->pooler_w_at && m->pooler_b_at, "loaded: the pooler is used in place, not copied");
	snprintf(out, sizeof out, "%s/saved", tmp);
	ok(model_save(m, out, err, sizeof err) == 0 && pooler_kept(orig, out), "saved from the map: the same pooler");
	model_params(m);   /* training takes a writable copy and lets the map go */
	ok(m->pooler && !m->pooler_w_at, "after model_params: the pooler copied out of the map");
	snprintf(out, sizeof out, "%s/trained", tmp);
	ok(model_save(m, out, err, sizeof err) == 0 && pooler_kept(orig, out), "saved after model_params: the same pooler");
	model_free(m);

	setenv("ST_WEIGHTS", "copy", 1);
	m = model_open(orig);
	ok(m->pooler && !m->pooler_w_at, "ST_WEIGHTS=copy: the pooler copied");
	snprintf(out, sizeof out, "%s/copied", tmp);
	ok(model_save(m, out, err, sizeof err) == 0 && pooler_kept(orig, out), "saved from the copy: the same pooler");
	model_free(m);

	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmp);
	return done_testing();
}
