/* model_dir: model directories -- save/load round trips, plain Hugging Face folders and their name variants,
 * hostile folders (missing file, wrong shape, config/weights disagreement) with errors naming file and
 * tensor, the parameter table, external parameter buffers, and dropout replay across chunks. */
#define _GNU_SOURCE
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tap.h"
#include "st.h"
#include "safetensors.h"
#include "model.h"

#define B 4
#define T 9

static char tmp[] = "/tmp/st-model-dir.XXXXXX";
static char path[1024], path2[1024], err[1024];
static int32_t ids[B * T], lengths[B] = { 9, 4, 1, 6 };

static const char *bert_config =
	"{\"model_type\": \"bert\", \"hidden_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
	"\"intermediate_size\": 32, \"max_position_embeddings\": 32, \"hidden_dropout_prob\": 0.1, "
	"\"attention_probs_dropout_prob\": 0.1}";

static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		printf("# command failed: %s\n", cmd);
}

static int same_embeddings(st_model *a, st_model *b, double tol, double *worst_out)
{
	int dim = model_dim(a);
	if (model_dim(b) != dim)
		return 0;
	float *ea = malloc(sizeof(float) * B * dim), *eb = malloc(sizeof(float) * B * dim);
	model_embed(a, ids, lengths, B, T, ea, NULL);
	model_embed(b, ids, lengths, B, T, eb, NULL);
	double worst = 0;
	for (int i = 0; i < B * dim; i++)
		worst = fmax(worst, fabs(ea[i] - eb[i]));
	free(ea);
	free(eb);
	if (worst_out)
		*worst_out = worst;
	return worst <= tol;
}

/* Edits a JSON file: key = integer value (value < 0 deletes the key). */
static void json_set_int(const char *file, const char *key, long value)
{
	json_error_t je;
	json_t *j = json_load_file(file, 0, &je);
	if (value < 0)
		json_object_del(j, key);
	else
		json_object_set_new(j, key, json_integer(value));
	json_dump_file(j, file, JSON_INDENT(2));
	json_decref(j);
}

/* Loads dir, expecting failure with every word of want in the message. */
static void expect_error(const char *dir, const char *want1, const char *want2, const char *what)
{
	st_model *m = model_load(dir, err, sizeof err);
	int good = !m && strstr(err, want1) && (!want2 || strstr(err, want2));
	if (!ok(good, "%s: error names %s%s%s", what, want1, want2 ? " and " : "", want2 ? want2 : ""))
		printf("#   got: %s\n", m ? "(loaded)" : err);
	model_free(m);
}

/* Rewrites dir/model.safetensors with each tensor passed through edit (rename, reshape, drop, add). */
typedef int (*edit_fn)(sft_tensor_f32 *t, char *name);
static void rewrite_weights(const char *file, edit_fn edit, const char *extra_name)
{
	safetensors *f = sft_open(file, err, sizeof err);
	int n = sft_count(f);
	sft_tensor_f32 *t = calloc(n + 1, sizeof *t);
	char (*names)[160] = calloc(n + 1, sizeof *names);
	float **bufs = calloc(n + 1, sizeof *bufs);
	int k = 0;
	for (int i = 0; i < n; i++) {
		const sft_entry *e = sft_entry_at(f, i);
		bufs[k] = malloc(sizeof(float) * sft_numel(e) + 4);
		sft_read_f32(f, e, bufs[k], err, sizeof err);
		snprintf(names[k], sizeof names[k], "%s", e->name);
		t[k] = (sft_tensor_f32){ .name = names[k], .data = bufs[k], .ndim = e->ndim };
		for (int d = 0; d < e->ndim; d++)
			t[k].shape[d] = e->shape[d];
		if (edit(&t[k], names[k]))
			k++;
		else
			free(bufs[k]);
	}
	if (extra_name) {
		bufs[k] = calloc(4, sizeof(float));
		snprintf(names[k], sizeof names[k], "%s", extra_name);
		t[k] = (sft_tensor_f32){ .name = names[k], .data = bufs[k], .ndim = 1, .shape = { 4 } };
		k++;
	}
	sft_close(f);
	static const char *const meta[] = { "format", "pt", NULL };
	if (sft_write_f32(file, t, k, meta, err, sizeof err) < 0)
		printf("# %s\n", err);
	for (int i = 0; i < k; i++)
		free(bufs[i]);
	free(bufs);
	free(names);
	free(t);
}

static int edit_prefix(sft_tensor_f32 *t, char *name)
{
	char buf[160];
	if (!strncmp(name, "pooler.", 7))
		return 1;
	size_t len = strlen(name);
	snprintf(buf, sizeof buf, "bert.%s", name);
	/* TF-era LayerNorm names in the embeddings */
	if (!strcmp(name, "embeddings.LayerNorm.weight"))
		snprintf(buf, sizeof buf, "bert.embeddings.LayerNorm.gamma");
	(void)len;
	strcpy(name, buf);
	return 1;
}
static int edit_shape(sft_tensor_f32 *t, char *name)
{
	if (!strcmp(name, "encoder.layer.1.attention.self.query.weight"))
		t->shape[0] /= 2;   /* [16][16] -> [8][16]; the data is cut short with it */
	return 1;
}
static int edit_drop(sft_tensor_f32 *t, char *name)
{
	return strcmp(name, "encoder.layer.0.output.dense.bias") != 0;
}

int main(void)
{
	(void)near;
	(void)skip_all;
	st_set_threads(1);
	if (!mkdtemp(tmp))
		return 1;
	snprintf(path, sizeof path, "%s/vocab.txt", tmp);
	FILE *f = fopen(path, "w");
	fprintf(f, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
	for (int i = 0; i < 45; i++)
		fprintf(f, "w%d\n", i);
	fclose(f);
	for (int b = 0; b < B; b++)
		for (int t = 0; t < lengths[b]; t++)
			ids[b * T + t] = t == 0 ? 2 : t == lengths[b] - 1 ? 3 : 5 + (b * 7 + t * 3) % 45;

	st_model *m = model_new_random(bert_config, strlen(bert_config), path, 1, err, sizeof err);
	if (!ok(m != NULL, "a random BERT from a config and a vocab.txt"))
		return printf("# %s\n", err), done_testing();
	ok(model_encoder_config(m)->vocab_size == 50, "vocab_size taken from the tokenizer when config.json has none");
	model_set_pooling(m, MODEL_POOL_CLS | MODEL_POOL_MEAN);
	model_add_dense(m, 12, MODEL_ACT_TANH, 1, 5);
	model_add_normalize(m);
	model_add_dense(m, 6, MODEL_ACT_IDENTITY, 0, 6);
	ok(model_dim(m) == 6, "dim after Dense 32->12, Normalize, Dense 12->6");

	/* the parameter table tiles the buffer */
	int np = model_param_table(m, NULL);
	model_param *tab = calloc(np, sizeof *tab);
	model_param_table(m, tab);
	size_t next = 0;
	int tiled = 1;
	for (int i = 0; i < np; i++) {
		tiled &= tab[i].offset == next;
		next = tab[i].offset + tab[i].count;
	}
	ok(tiled && next == model_num_params(m), "parameter table covers the flat buffer in order (%d tensors)", np);
	ok(!strcmp(tab[np - 3].name, "linear.weight") && !strcmp(tab[np - 3].file, "2_Dense/model.safetensors") &&
	   tab[np - 2].no_decay && !strcmp(tab[np - 1].file, "4_Dense/model.safetensors") && tab[np - 1].shape[0] == 6,
	   "Dense tensors are named as in their folders");
	free(tab);

	/* round trip */
	char dir_a[600], dir_b[600];
	snprintf(dir_a, sizeof dir_a, "%s/a", tmp);
	snprintf(dir_b, sizeof dir_b, "%s/b", tmp);
	ok(model_save(m, dir_a, err, sizeof err) == 0, "saved");
	st_model *a = model_load(dir_a, err, sizeof err);
	double worst;
	ok(a && same_embeddings(m, a, 0, &worst), "a saved and loaded model gives identical embeddings");
	ok(a && model_save(a, dir_b, err, sizeof err) == 0, "saved again");
	sh("cmp -s %s/model.safetensors %s/model.safetensors && cmp -s %s/2_Dense/model.safetensors "
	   "%s/2_Dense/model.safetensors && diff -r %s %s >/dev/null && echo same > %s/same", dir_a, dir_b, dir_a, dir_b,
	   dir_a, dir_b, tmp);
	snprintf(path, sizeof path, "%s/same", tmp);
	ok(access(path, F_OK) == 0, "save(load(save(m))) writes the same bytes");

	/* a bound external buffer */
	float *ext = malloc(sizeof(float) * model_num_params(a));
	memcpy(ext, model_params(a), sizeof(float) * model_num_params(a));
	model_bind_params(a, ext);
	ok(model_params(a) == ext && same_embeddings(m, a, 0, NULL), "embeddings from a bound external buffer");
	ext[model_num_params(a) - 1] += 1.0f;
	ok(!same_embeddings(m, a, 1e-6, NULL), "the bound buffer is the one used");
	model_free(a);
	free(ext);

	/* saving over a folder keeps what is not the model's (training state), drops stale modules */
	sh("mkdir -p %s/checkpoint-3 %s/9_Dense && echo '{}' > %s/trainer_state.json", dir_b, dir_b, dir_b);
	ok(model_save(m, dir_b, err, sizeof err) == 0, "saved over an existing folder");
	snprintf(path, sizeof path, "%s/trainer_state.json", dir_b);
	snprintf(path2, sizeof path2, "%s/checkpoint-3", dir_b);
	ok(access(path, F_OK) == 0 && access(path2, F_OK) == 0, "other files and folders are carried over");
	snprintf(path, sizeof path, "%s/9_Dense", dir_b);
	ok(access(path, F_OK) != 0, "a stale module folder is gone");
	snprintf(path, sizeof path, "%s/b.tmp.%ld", tmp, (long)getpid());
	ok(access(path, F_OK) != 0, "no temporary folder left behind");

	/* a plain Hugging Face folder: Transformer + mean pooling, task-model prefixes and TF names tolerated */
	st_model *mean = model_load(dir_a, err, sizeof err);
	model_set_pooling(mean, MODEL_POOL_MEAN);
	char hf[600];
	snprintf(hf, sizeof hf, "%s/hf", tmp);
	sh("mkdir -p %s && cp %s/config.json %s/model.safetensors %s/vocab.txt %s/", hf, dir_a, dir_a, dir_a, hf);
	st_model *h = model_load(hf, err, sizeof err);
	ok(h && model_pooling(h) == MODEL_POOL_MEAN && model_dim(h) == 16, "a plain HF folder loads with mean pooling");
	ok(h && same_embeddings(mean, h, 0, NULL), "... and gives the mean-pooled embeddings");
	model_free(h);
	snprintf(path, sizeof path, "%s/model.safetensors", hf);
	rewrite_weights(path, edit_prefix, "cls.predictions.bias");
	h = model_load(hf, err, sizeof err);
	if (!ok(h && same_embeddings(mean, h, 0, NULL), "\"bert.\" prefixes, LayerNorm.gamma and an MLM head are read"))
		printf("#   %s\n", h ? "" : err);
	model_free(h);

	/* hostile folders */
	char bad[600];
	snprintf(bad, sizeof bad, "%s/bad", tmp);
#define FRESH() sh("rm -rf %s && cp -r %s %s", bad, dir_a, bad)
	FRESH();
	sh("rm %s/model.safetensors", bad);
	expect_error(bad, "model.safetensors", "missing", "missing weights");
	FRESH();
	sh("rm %s/1_Pooling/config.json", bad);
	expect_error(bad, "1_Pooling/config.json", "missing", "missing pooling config");
	FRESH();
	sh("rm %s/2_Dense/model.safetensors", bad);
	expect_error(bad, "2_Dense/model.safetensors", "missing", "missing Dense weights");
	FRESH();
	sh("rm %s/config.json", bad);
	expect_error(bad, "config.json", "missing", "missing config.json");
	FRESH();
	snprintf(path, sizeof path, "%s/model.safetensors", bad);
	rewrite_weights(path, edit_shape, NULL);
	expect_error(bad, "encoder.layer.1.attention.self.query.weight", "shape [8, 16]", "a tensor of the wrong shape");
	FRESH();
	rewrite_weights(path, edit_drop, NULL);
	expect_error(bad, "encoder.layer.0.output.dense.bias", "missing", "a missing tensor");
	FRESH();
	snprintf(path, sizeof path, "%s/config.json", bad);
	json_set_int(path, "num_hidden_layers", 1);
	expect_error(bad, "encoder.layer.1.", "does not belong", "config.json with fewer layers than the weights");
	FRESH();
	json_set_int(path, "num_hidden_layers", 3);
	expect_error(bad, "encoder.layer.2.", "missing", "config.json with more layers than the weights");
	FRESH();
	json_set_int(path, "intermediate_size", 64);
	expect_error(bad, "encoder.layer.0.intermediate.dense.weight", "shape [32, 16]", "config.json with another FFN size");
	FRESH();
	json_set_int(path, "vocab_size", 60);
	expect_error(bad, "embeddings.word_embeddings.weight", "[60, 16]", "config.json with another vocab_size");
	FRESH();
	snprintf(path, sizeof path, "%s/1_Pooling/config.json", bad);
	json_set_int(path, "word_embedding_dimension", 32);
	expect_error(bad, "1_Pooling/config.json", "word_embedding_dimension", "pooling config against the hidden size");
	FRESH();
	snprintf(path, sizeof path, "%s/2_Dense/config.json", bad);
	json_set_int(path, "in_features", 16);
	expect_error(bad, "2_Dense/config.json", "in_features", "Dense in_features against the pooling output");
	FRESH();
	json_set_int(path, "out_features", 11);
	expect_error(bad, "linear.weight", "2_Dense/model.safetensors", "Dense weights against out_features");
	FRESH();
	sh("printf '[{\"idx\": 0' > %s/modules.json", bad);
	expect_error(bad, "modules.json", "JSON", "truncated modules.json");
	FRESH();
	sh("sed -i 's/models.Normalize/models.Quantize/' %s/modules.json", bad);
	expect_error(bad, "modules.json", "models.Quantize", "an unknown module type");
	FRESH();
	sh("truncate -s 1000 %s/model.safetensors", bad);
	expect_error(bad, "model.safetensors", NULL, "a truncated safetensors file");
	FRESH();
	sh("mv %s/model.safetensors %s/pytorch_model.bin", bad, bad);
	expect_error(bad, "pytorch_model.bin", "zip archive", "a safetensors file named pytorch_model.bin (not a torch.save file)");
	snprintf(path, sizeof path, "%s/nonexistent", tmp);
	expect_error(path, "nonexistent", NULL, "no folder");

	/* dropout: replayed by model_embed_backward, and independent of how a batch is cut into chunks */
	int dim = model_dim(m);
	float e_all[B * 6], e_chunks[B * 6], d_emb[B * 6];
	enc_dropout drop = { 99, 3, 1, 0 };
	model_embed(m, ids, lengths, B, T, e_all, &drop);
	enc_dropout d0 = { 99, 3, 1, 0 }, d1 = { 99, 3, 1, 2 };
	model_embed(m, ids, lengths, 2, T, e_chunks, &d0);
	model_embed(m, ids + 2 * T, lengths + 2, 2, T, e_chunks + 2 * dim, &d1);
	worst = 0;
	for (int i = 0; i < B * dim; i++)
		worst = fmax(worst, fabs(e_all[i] - e_chunks[i]));
	ok(worst < 1e-6, "dropout masks do not depend on the chunking (max diff %.2g)", worst);
	float e_inf[B * 6];
	model_embed(m, ids, lengths, B, T, e_inf, NULL);
	worst = 0;
	for (int i = 0; i < B * dim; i++)
		worst = fmax(worst, fabs(e_all[i] - e_inf[i]));
	ok(worst > 1e-4, "dropout changes the embeddings");
	for (int i = 0; i < B * dim; i++)
		d_emb[i] = (float)sin(1.7 * i);
	float *grads = calloc(model_num_params(m), sizeof(float));
	model_embed_backward(m, ids, lengths, B, T, &drop, d_emb, grads);
	/* finite differences through model_embed with the same masks, on Dense and encoder parameters */
	float *p = model_params(m);
	size_t probes[6] = { model_num_params(m) - 1, model_num_params(m) - 50, model_num_params(m) - 6 * 12 - 3,
			     model_num_params(m) / 2, 1000, 5 * 16 + 3 };
	double fd_worst = 0;
	for (int k = 0; k < 6; k++) {
		size_t i = probes[k];
		float save = p[i], eps = 1e-2f;
		double l[2];
		for (int s = 0; s < 2; s++) {
			p[i] = save + (s ? -eps : eps);
			float e[B * 6];
			model_embed(m, ids, lengths, B, T, e, &drop);
			l[s] = 0;
			for (int j = 0; j < B * dim; j++)
				l[s] += (double)e[j] * d_emb[j];
		}
		p[i] = save;
		double fd = (l[0] - l[1]) / (2 * eps);
		fd_worst = fmax(fd_worst, fabs(fd - grads[i]) / fmax(1e-2, fabs(fd)));
	}
	ok(fd_worst < 2e-2, "model_embed_backward with dropout matches finite differences of model_embed (rel %.2g)",
	   fd_worst);
	free(grads);
	model_free(mean);
	model_free(m);
	sh("rm -rf %s", tmp);
	return done_testing();
}
