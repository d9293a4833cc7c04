/* encode_bench.c: sentences/s of enc_forward on a MiniLM-L6-H384-shaped random model (built by bench/encode.sh).
 *
 *   encode_bench --threads N --T T [--batch 64] [--reps R] [--write DIR]
 *
 * Batches of B rows with lengths uniform in [T/2, T] ([CLS] ... [SEP], random ids). --write DIR saves the model
 * (params.f32 + table.tsv + config.json) and the first batch (ids.i32, lengths.i32, out.f32 = C output) for
 * the PyTorch and ONNX Runtime drivers. Prints key=value lines. Also times OpenBLAS sgemm alone on the
 * projection shapes of the same batch, with OpenBLAS's own threads, for comparison. */
#include "encoder.h"
#include "gemm.h"
#include "st.h"

#include <cblas.h>
#undef I   /* from <complex.h>; I is the intermediate size here */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *openblas_get_corename(void);

static const char *config_json =
	"{\"model_type\": \"bert\", \"vocab_size\": 30522, \"hidden_size\": 384, \"num_hidden_layers\": 6,"
	" \"num_attention_heads\": 12, \"intermediate_size\": 1536, \"max_position_embeddings\": 512,"
	" \"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12, \"hidden_act\": \"gelu\", \"pad_token_id\": 0,"
	" \"initializer_range\": 0.02}";

static uint64_t rng = 2024;
static uint32_t rnd(void)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng >> 33);
}

static void save(const char *dir, const char *name, const void *data, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (st_write_file_atomic(path, data, n))
		die(74, "cannot write %s", path);
}

int main(int argc, char **argv)
{
	int threads = 2, T = 128, B = 64, reps = 5;
	const char *write_dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--T") && i + 1 < argc)
			T = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
			B = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--write") && i + 1 < argc)
			write_dir = argv[++i];
		else
			die(64, "usage: encode_bench [--threads N] [--T T] [--batch B] [--reps R] [--write DIR]");
	}
	st_set_threads(threads);
	enc_config c;
	char err[256];
	if (enc_config_parse(&c, config_json, strlen(config_json), err, sizeof err))
		die(70, "%s", err);
	size_t np = enc_num_params(&c), H = c.hidden;
	float *params = xmalloc(np * sizeof(float));
	enc_init_random(&c, params, 1);
	int32_t *ids = xcalloc((size_t)B * T, sizeof(int32_t)), *len = xmalloc(B * sizeof(int32_t));
	float *out = xcalloc((size_t)B * T * H, sizeof(float));
	/* one batch per rep, the same sequence of batches for every run */
	int nbatches = reps + 1;
	int32_t *all_ids = xcalloc((size_t)nbatches * B * T, sizeof(int32_t)), *all_len = xmalloc(nbatches * B * sizeof(int32_t));
	long tokens = 0;
	for (int k = 0; k < nbatches; k++)
		for (int b = 0; b < B; b++) {
			int L = T / 2 + rnd() % (T - T / 2 + 1);
			int32_t *row = all_ids + ((size_t)k * B + b) * T;
			all_len[k * B + b] = L;
			row[0] = 101;
			for (int t = 1; t < L - 1; t++)
				row[t] = 1000 + rnd() % (c.vocab_size - 1000);
			row[L - 1] = 102;
			if (k > 0)
				tokens += L;
		}
	/* warm-up (also the batch that --write saves) */
	enc_forward(&c, params, all_ids, all_len, B, T, out, NULL);
	if (write_dir) {
		mkdir(write_dir, 0777);
		save(write_dir, "params.f32", params, np * sizeof(float));
		int nt = enc_param_table(&c, NULL);
		enc_param *tab = xmalloc(nt * sizeof *tab);
		enc_param_table(&c, tab);
		char *tsv = xmalloc(256 * (size_t)nt), *w = tsv;
		for (int i = 0; i < nt; i++)
			w += sprintf(w, "%s\t%zu\t%zu\t%lld\t%lld\n", tab[i].name, tab[i].offset, tab[i].count,
				     (long long)tab[i].shape[0], (long long)tab[i].shape[1]);
		save(write_dir, "table.tsv", tsv, w - tsv);
		save(write_dir, "config.json", config_json, strlen(config_json));
		/* every batch, so the other drivers run the same work */
		save(write_dir, "ids.i32", all_ids, (size_t)nbatches * B * T * sizeof(int32_t));
		save(write_dir, "lengths.i32", all_len, (size_t)nbatches * B * sizeof(int32_t));
		save(write_dir, "out.f32", out, (size_t)B * T * H * sizeof(float));
		char shape[64];
		int n = snprintf(shape, sizeof shape, "%d %d %d %zu\n", nbatches, B, T, H);
		save(write_dir, "shape.txt", shape, n);
		free(tab), free(tsv);
	}
	double best = 1e30, total = 0;
	for (int k = 1; k < nbatches; k++) {
		double t0 = st_now();
		enc_forward(&c, params, all_ids + (size_t)k * B * T, all_len + (size_t)k * B, B, T, out, NULL);
		double dt = st_now() - t0;
		total += dt;
		if (dt < best)
			best = dt;
	}
	/* matmul work of the projections: per token 2 (4 H^2 + 2 H I) flops per layer */
	double flops = 2.0 * (4.0 * H * H + 2.0 * H * c.intermediate) * c.layers * ((double)tokens / reps);
	/* attention work: 2 matmuls of L^2 hs per head = 4 L^2 H per sequence and layer */
	double att = 0;
	for (int k = 1; k < nbatches; k++)
		for (int b = 0; b < B; b++)
			att += 4.0 * all_len[k * B + b] * all_len[k * B + b] * H * c.layers;
	att /= reps;
	/* OpenBLAS sgemm alone on the same shapes (mean tokens per batch rows), with its own threads */
	int N = (int)(tokens / reps), I = c.intermediate;
	float *a = xcalloc((size_t)N * I, sizeof(float)), *wt = xcalloc((size_t)I * H * 3, sizeof(float)),
	      *o = xcalloc((size_t)N * I * 2, sizeof(float));
	for (size_t i = 0; i < (size_t)N * I; i++)
		a[i] = (rnd() % 1000) * 1e-3f;
	for (size_t i = 0; i < (size_t)I * H * 3; i++)
		wt[i] = (rnd() % 1000) * 1e-3f;
	const int shapes[4][2] = { { (int)H, 3 * (int)H }, { (int)H, (int)H }, { (int)H, I }, { I, (int)H } };  /* C, OC */
	/* OpenBLAS as detected, with its own threads (st runs it on one: st.h, st_blas_pool_off), then st_sgemm */
	double gbest = 1e30, obest = 1e30;
	openblas_set_num_threads(threads);
	for (int rep = 0; rep < 3; rep++) {
		double t0 = st_now();
		for (int s = 0; s < 4; s++)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, shapes[s][1], shapes[s][0], 1.0f, a,
				    shapes[s][0], wt, shapes[s][0], 0.0f, o, shapes[s][1]);
		double dt = st_now() - t0;
		if (dt < gbest)
			gbest = dt;
	}
	st_blas_pool_off();
	for (int rep = 0; rep < 3; rep++) {
		double t0 = st_now();
		for (int s = 0; s < 4; s++)
			st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, shapes[s][1], shapes[s][0], 1.0f, a,
				 shapes[s][0], wt, shapes[s][0], 0.0f, o, shapes[s][1]);
		double dt = st_now() - t0;
		if (dt < obest)
			obest = dt;
	}
	double layer_flops = 2.0 * N * (4.0 * H * H + 2.0 * H * I);
	printf("corename=%s\nthreads=%d\nT=%d\nbatch=%d\nmean_tokens=%.1f\n", openblas_get_corename(), threads, T, B,
	       (double)tokens / reps / B);
	printf("best_s=%.4f\nmean_s=%.4f\nsentences_per_s=%.1f\n", best, total / reps, B / best);
	printf("projection_gflop=%.2f\nattention_gflop=%.2f\n", flops / 1e9, att / 1e9);
	printf("effective_gflops=%.1f\n", (flops + att) / best / 1e9);
	printf("sgemm_gflops=%.1f\n", layer_flops / gbest / 1e9);
	char choice[300];
	printf("st_sgemm_gflops=%.1f\ngemm_impl=%s\ngemm_choice=%s\n", layer_flops / obest / 1e9,
	       st_gemm_impl_name(st_gemm_impl()), st_gemm_choice(choice, sizeof choice));
	free(a), free(wt), free(o), free(params), free(ids), free(len), free(out), free(all_ids), free(all_len);
	return 0;
}
