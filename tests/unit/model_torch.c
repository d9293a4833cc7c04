/* model_torch: whole models (encoder + Pooling + Dense + Normalize) against the independent PyTorch reference
 * tests/reference/model_ref.py: embeddings within 1e-4, every parameter gradient within 1e-3 of the tensor's
 * scale, for every pooling mode, Dense activations and Normalize, padded batches, BERT/RoBERTa/DistilBERT.
 * Also checks the structure of the written directories with the reference's "check" mode. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tap.h"
#include "st.h"
#include "safetensors.h"
#include "model.h"

#define V 40
#define B 5
#define T 7

static const char *configs[] = {
	"{\"model_type\": \"bert\", \"hidden_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
	"\"intermediate_size\": 24, \"max_position_embeddings\": 16, \"type_vocab_size\": 2, \"pad_token_id\": 0, "
	"\"layer_norm_eps\": 1e-12, \"hidden_act\": \"gelu\", \"vocab_size\": 40}",
	"{\"model_type\": \"roberta\", \"hidden_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 2, "
	"\"intermediate_size\": 20, \"max_position_embeddings\": 18, \"type_vocab_size\": 1, \"pad_token_id\": 1, "
	"\"layer_norm_eps\": 1e-05, \"hidden_act\": \"gelu\", \"vocab_size\": 40}",
	"{\"model_type\": \"distilbert\", \"dim\": 16, \"n_layers\": 2, \"n_heads\": 4, \"hidden_dim\": 24, "
	"\"max_position_embeddings\": 16, \"pad_token_id\": 0, \"activation\": \"gelu\", \"vocab_size\": 40}",
};

struct head { int dense, out, act, bias; };
struct tcase { int cfg; const char *pooling; int nheads; struct head heads[3]; };

static const struct tcase cases[] = {
	{ 0, "mean", 0, { { 0 } } },
	{ 0, "cls", 0, { { 0 } } },
	{ 0, "max", 0, { { 0 } } },
	{ 0, "mean_sqrt_len", 0, { { 0 } } },
	{ 0, "weightedmean", 0, { { 0 } } },
	{ 0, "lasttoken", 0, { { 0 } } },
	{ 0, "cls,max,mean,mean_sqrt_len,weightedmean,lasttoken", 3,
	  { { 1, 12, MODEL_ACT_RELU, 1 }, { 1, 8, MODEL_ACT_IDENTITY, 0 }, { 0, 0, 0, 0 } } },
	{ 0, "mean", 2, { { 1, 10, MODEL_ACT_GELU, 1 }, { 0, 0, 0, 0 } } },
	{ 0, "max,lasttoken", 1, { { 1, 6, MODEL_ACT_SIGMOID, 1 } } },
	{ 0, "cls", 2, { { 0, 0, 0, 0 }, { 1, 9, MODEL_ACT_TANH, 1 } } },   /* Normalize, then Dense */
	{ 1, "mean", 0, { { 0 } } },
	{ 1, "cls,max,mean,mean_sqrt_len,weightedmean,lasttoken", 2, { { 1, 12, MODEL_ACT_TANH, 1 }, { 0, 0, 0, 0 } } },
	{ 2, "cls", 0, { { 0 } } },
	{ 2, "cls,max,mean,mean_sqrt_len,weightedmean,lasttoken", 2, { { 1, 12, MODEL_ACT_GELU, 1 }, { 0, 0, 0, 0 } } },
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

static uint64_t rng = 88172645463325252ull;
static double uni(void)
{
	rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
	return (rng >> 11) * (1.0 / 9007199254740992.0);
}
static float gauss(void) { return (float)(sqrt(-2 * log(uni() + 1e-300)) * cos(2 * M_PI * uni())); }

static int python_has_torch(void)
{
	return system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") == 0;
}

int main(int argc, char **argv)
{
	if (access("tests/reference/model_ref.py", R_OK) != 0)
		skip_all("run from the project root (tests/reference/model_ref.py not found)");
	if (!python_has_torch())
		skip_all("/usr/bin/python3 with torch and numpy is not installed");
	st_set_threads(1);
	char tmp[] = "/tmp/st-model-torch.XXXXXX";
	if (!mkdtemp(tmp))
		return 1;
	char path[512], err[1024];
	snprintf(path, sizeof path, "%s/vocab.txt", tmp);
	FILE *f = fopen(path, "w");
	for (int i = 0; i < V; i++)
		fprintf(f, "tok%d\n", i);
	fclose(f);

	float *emb_c[NCASES], *grad_c[NCASES];
	st_model *models[NCASES];
	char cases_json[NCASES * 400 + 16];
	size_t cj = snprintf(cases_json, sizeof cases_json, "[");
	for (int k = 0; k < NCASES; k++) {
		const struct tcase *tc = &cases[k];
		snprintf(path, sizeof path, "%s/vocab.txt", tmp);
		st_model *m = model_new_random(configs[tc->cfg], strlen(configs[tc->cfg]), path, 7 + k, err, sizeof err);
		if (!ok(m != NULL, "case %d: new model", k)) {
			printf("# %s\n", err);
			return done_testing();
		}
		/* move every parameter off its initial value (LayerNorm 1/0, zero biases) */
		float *p = model_params(m);
		for (size_t i = 0; i < model_num_params(m); i++)
			p[i] += 0.05f * gauss();
		model_set_pooling(m, model_pooling_parse(tc->pooling, err, sizeof err));
		for (int h = 0; h < tc->nheads; h++) {
			if (tc->heads[h].dense)
				model_add_dense(m, tc->heads[h].out, tc->heads[h].act, tc->heads[h].bias, 100 + h);
			else
				model_add_normalize(m);
		}
		char dir[512];
		snprintf(dir, sizeof dir, "%s/case%d", tmp, k);
		ok(model_save(m, dir, err, sizeof err) == 0, "case %d: saved (%s)", k, tc->pooling);
		model_free(m);
		m = models[k] = model_load(dir, err, sizeof err);
		if (!ok(m != NULL, "case %d: loaded again", k)) {
			printf("# %s\n", err);
			return done_testing();
		}
		int dim = model_dim(m);
		int32_t ids[B * T] = { 0 }, lengths[B] = { T, 3, 1, 5, 2 };
		float idsf[B * T], lenf[B], *d_emb = malloc(sizeof(float) * B * dim);
		for (int b = 0; b < B; b++) {
			for (int t = 0; t < lengths[b]; t++)
				ids[b * T + t] = 2 + (int)(uni() * (V - 2));
			lenf[b] = (float)lengths[b];
		}
		for (int i = 0; i < B * T; i++)
			idsf[i] = (float)ids[i];
		for (int i = 0; i < B * dim; i++)
			d_emb[i] = gauss();
		emb_c[k] = malloc(sizeof(float) * B * dim);
		model_embed(m, ids, lengths, B, T, emb_c[k], NULL);
		grad_c[k] = calloc(model_num_params(m), sizeof(float));
		model_embed_backward(m, ids, lengths, B, T, NULL, d_emb, grad_c[k]);
		sft_tensor_f32 in[3] = {
			{ "ids", idsf, 2, { B, T } }, { "lengths", lenf, 1, { B } }, { "d_emb", d_emb, 2, { B, dim } },
		};
		snprintf(path, sizeof path, "%s/in%d.safetensors", tmp, k);
		if (sft_write_f32(path, in, 3, NULL, err, sizeof err) < 0)
			printf("# %s\n", err);
		free(d_emb);
		cj += snprintf(cases_json + cj, sizeof cases_json - cj,
			       "%s{\"model\": \"%s\", \"input\": \"%s/in%d.safetensors\", \"output\": \"%s/out%d.safetensors\"}",
			       k ? ", " : "", dir, tmp, k, tmp, k);
	}
	snprintf(cases_json + cj, sizeof cases_json - cj, "]");
	snprintf(path, sizeof path, "%s/cases.json", tmp);
	st_write_file_atomic(path, cases_json, strlen(cases_json));

	char cmd[1024];
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/reference/model_ref.py run %s/cases.json", tmp);
	if (!ok(system(cmd) == 0, "PyTorch reference ran"))
		return done_testing();
	for (int k = 0; k < NCASES; k++) {
		st_model *m = models[k];
		snprintf(path, sizeof path, "%s/out%d.safetensors", tmp, k);
		safetensors *ref = sft_open(path, err, sizeof err);
		if (!ok(ref != NULL, "case %d: reference output", k)) {
			printf("# %s\n", err);
			continue;
		}
		const char *arch = enc_arch_name(model_encoder_config(m)->arch);
		int dim = model_dim(m);
		float *want = malloc(sizeof(float) * B * dim);
		const sft_entry *e = sft_find(ref, "embeddings");
		double worst = 0;
		if (e && sft_numel(e) == (size_t)B * dim && sft_read_f32(ref, e, want, err, sizeof err) == 0)
			for (int i = 0; i < B * dim; i++)
				worst = fmax(worst, fabs(emb_c[k][i] - want[i]));
		else
			worst = INFINITY;
		char what[200];
		snprintf(what, sizeof what, "case %d %s %s: embeddings agree within 1e-4 (max |diff| %.2g)", k, arch,
			 cases[k].pooling, worst);
		near(worst, 0, 1e-4, what);
		free(want);

		/* every parameter: max |grad_c - grad_ref| <= 1e-3 * max |grad_ref| (the tensor's scale), plus 1e-7 for
		 * tensors whose true gradient is zero (attention key biases: softmax ignores a per-query constant) */
		int np = model_param_table(m, NULL);
		model_param *tab = calloc(np, sizeof *tab);
		model_param_table(m, tab);
		int bad = 0;
		double worst_rel = 0;
		char worst_name[300] = "";
		for (int i = 0; i < np; i++) {
			char name[300];
			snprintf(name, sizeof name, "grad:%s:%s", tab[i].file, tab[i].name);
			e = sft_find(ref, name);
			if (!e || sft_numel(e) != tab[i].count) {
				printf("#   %s: no reference gradient\n", name);
				bad++;
				continue;
			}
			float *g = malloc(sizeof(float) * tab[i].count);
			sft_read_f32(ref, e, g, err, sizeof err);
			double scale = 0, diff = 0;
			for (size_t j = 0; j < tab[i].count; j++) {
				scale = fmax(scale, fabs(g[j]));
				diff = fmax(diff, fabs(grad_c[k][tab[i].offset + j] - g[j]));
			}
			double rel = diff / (scale + 1e-4);
			if (rel > worst_rel) {
				worst_rel = rel;
				snprintf(worst_name, sizeof worst_name, "%s", name);
			}
			if (diff > 1e-3 * scale + 1e-7) {
				bad++;
				printf("#   %s: max |diff| %.3g, scale %.3g\n", name, diff, scale);
			}
			free(g);
		}
		ok(bad == 0, "case %d %s %s: %d parameter gradients agree (worst %.2g in %s)", k, arch, cases[k].pooling,
		   np, worst_rel, worst_name);
		free(tab);
		sft_close(ref);
		model_free(m);
		free(emb_c[k]);
		free(grad_c[k]);
	}

	/* the written folders have the structure Python's sentence-transformers loads */
	size_t n = snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/reference/model_ref.py check");
	for (int k = 0; k < NCASES && n < sizeof cmd; k++)
		n += snprintf(cmd + n, sizeof cmd - n, " %s/case%d", tmp, k);
	ok(system(cmd) == 0, "written model directories pass the structural check");

	snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
	if (system(cmd) != 0)
		return 1;
	return done_testing();
}
