/* Unit tests of lib/encoder.c: configuration, parameter table, finite-difference gradients of every tensor,
 * dropout replay and chunking. With `--dump DIR CONFIG.json` it instead writes a small random model, a batch and
 * the C forward/backward results for tests/reference/encoder_ref.py (run by tests/encoder.t) to compare. */
#include "encoder.h"
#include "st.h"
#include "tap.h"

#include <float.h>
#include <stdint.h>
#include <string.h>

/* small, deterministic random numbers for the test data (independent of the library's generator) */
static uint64_t rng_state = 12345;
static uint32_t rnd32(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng_state >> 33);
}
static float rnd_uniform(void) { return (rnd32() + 0.5f) / 2147483648.0f - 1.0f; }   /* (-1, 1) */

static const char *cfg_bert =
	"{\"model_type\": \"bert\", \"vocab_size\": 100, \"hidden_size\": 32, \"num_hidden_layers\": 2,"
	" \"num_attention_heads\": 4, \"intermediate_size\": 64, \"max_position_embeddings\": 40,"
	" \"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12, \"hidden_act\": \"gelu\", \"pad_token_id\": 0,"
	" \"hidden_dropout_prob\": 0.1, \"attention_probs_dropout_prob\": 0.1, \"initializer_range\": 0.3}";
static const char *cfg_roberta =
	"{\"model_type\": \"xlm-roberta\", \"vocab_size\": 100, \"hidden_size\": 32, \"num_hidden_layers\": 2,"
	" \"num_attention_heads\": 4, \"intermediate_size\": 64, \"max_position_embeddings\": 42,"
	" \"type_vocab_size\": 1, \"layer_norm_eps\": 1e-5, \"hidden_act\": \"gelu_new\", \"pad_token_id\": 1,"
	" \"hidden_dropout_prob\": 0.2, \"attention_probs_dropout_prob\": 0.15, \"initializer_range\": 0.3}";
/* MPNet: all-mpnet-base-v2's eps and positions, 48 relative-bias buckets (only the first 32 are used) */
static const char *cfg_mpnet =
	"{\"model_type\": \"mpnet\", \"vocab_size\": 100, \"hidden_size\": 32, \"num_hidden_layers\": 2,"
	" \"num_attention_heads\": 4, \"intermediate_size\": 64, \"max_position_embeddings\": 42,"
	" \"layer_norm_eps\": 1e-5, \"hidden_act\": \"gelu\", \"pad_token_id\": 1, \"relative_attention_num_buckets\": 48,"
	" \"hidden_dropout_prob\": 0.1, \"attention_probs_dropout_prob\": 0.1, \"initializer_range\": 0.3}";
/* head sizes: BERT 8, XLM-R 8, DistilBERT 16, MPNet 8 */
static const char *cfg_distil =
	"{\"model_type\": \"distilbert\", \"vocab_size\": 100, \"dim\": 32, \"n_layers\": 2, \"n_heads\": 2,"
	" \"hidden_dim\": 64, \"max_position_embeddings\": 40, \"activation\": \"gelu\", \"pad_token_id\": 0,"
	" \"dropout\": 0.1, \"attention_dropout\": 0.1, \"initializer_range\": 0.3}";

static void parse_or_die(enc_config *c, const char *json)
{
	char err[256];
	if (enc_config_parse(c, json, strlen(json), err, sizeof err))
		die(70, "%s", err);
}

/* Random model: HF init, then LayerNorm weights and all biases moved off 1 and 0 so that every term matters. */
static float *random_model(const enc_config *c, uint64_t seed)
{
	size_t n = enc_num_params(c);
	float *p = xmalloc(n * sizeof(float));
	enc_init_random(c, p, seed);
	int nt = enc_param_table(c, NULL);
	enc_param *t = xmalloc(nt * sizeof *t);
	enc_param_table(c, t);
	for (int i = 0; i < nt; i++)
		if (t[i].ndim == 1)
			for (size_t j = 0; j < t[i].count; j++)
				p[t[i].offset + j] += 0.2f * rnd_uniform();
	free(t);
	return p;
}

/* A batch of 3 rows padded to T: lengths T, T-3, 2 (so one short row), with junk in the pad slots (the encoder
 * must not read them) and one pad id inside a real row. */
enum { TB = 3, TT = 9 };
static void make_batch_T(const enc_config *c, int32_t *ids, int32_t *len, int T)
{
	int lens[TB] = { T, T - 3, 2 };
	for (int b = 0; b < TB; b++) {
		len[b] = lens[b];
		for (int t = 0; t < T; t++)
			ids[b * T + t] = t < lens[b] ? (int32_t)(2 + rnd32() % (c->vocab_size - 2)) : (int32_t)(rnd32() % c->vocab_size);
	}
	ids[0 * T + 4] = c->pad_token_id;
}
static void make_batch(const enc_config *c, int32_t *ids, int32_t *len) { make_batch_T(c, ids, len, TT); }

/* dout: random at real positions, zero at pads */
static float *make_dout(const enc_config *c, const int32_t *len, int B, int T)
{
	size_t H = c->hidden;
	float *d = xcalloc((size_t)B * T * H, sizeof(float));
	for (int b = 0; b < B; b++)
		for (int t = 0; t < len[b]; t++)
			for (size_t i = 0; i < H; i++)
				d[((size_t)b * T + t) * H + i] = rnd_uniform();
	return d;
}

static int write_raw(const char *dir, const char *name, const void *data, size_t bytes)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return st_write_file_atomic(path, data, bytes);
}

/* --dump DIR CONFIG [T]: params.f32, ids.i32, lengths.i32, dout.f32, out.f32, grads.f32, table.tsv, shape.txt;
 * rows padded to T (default 9; MPNet's relative buckets need rows longer than 64 to be all used) */
static int dump(const char *dir, const char *config_path, int TT)
{
	size_t clen;
	char *json = st_read_file(config_path, &clen);
	if (!json)
		die(66, "cannot read %s", config_path);
	enc_config c;
	parse_or_die(&c, json);
	float *params = random_model(&c, 7);
	if (TT < 5 || TT > enc_max_length(&c))
		die(64, "--dump: padded length %d outside 5..%d", TT, enc_max_length(&c));
	int32_t *ids = xmalloc(TB * TT * sizeof *ids), len[TB];
	make_batch_T(&c, ids, len, TT);
	size_t H = c.hidden, np = enc_num_params(&c);
	float *dout = make_dout(&c, len, TB, TT);
	float *out = xcalloc((size_t)TB * TT * H, sizeof(float));
	float *grads = xcalloc(np, sizeof(float));
	enc_acts *a = enc_acts_new(&c, TB, TT);
	enc_forward_train(&c, params, ids, len, TB, TT, out, NULL, a);
	enc_backward(&c, params, a, dout, grads);
	int nt = enc_param_table(&c, NULL);
	enc_param *t = xmalloc(nt * sizeof *t);
	enc_param_table(&c, t);
	char *tsv = xmalloc(256 * (size_t)nt + 1), *w = tsv;
	for (int i = 0; i < nt; i++)
		w += sprintf(w, "%s\t%zu\t%zu\t%lld\t%lld\n", t[i].name, t[i].offset, t[i].count, (long long)t[i].shape[0],
			     (long long)t[i].shape[1]);
	char shape[64];
	int sl = snprintf(shape, sizeof shape, "%d %d %zu\n", TB, TT, H);
	if (write_raw(dir, "params.f32", params, np * 4) || write_raw(dir, "ids.i32", ids, TB * TT * sizeof *ids) ||
	    write_raw(dir, "lengths.i32", len, sizeof len) || write_raw(dir, "dout.f32", dout, TB * TT * H * 4) ||
	    write_raw(dir, "out.f32", out, TB * TT * H * 4) || write_raw(dir, "grads.f32", grads, np * 4) ||
	    write_raw(dir, "table.tsv", tsv, w - tsv) || write_raw(dir, "shape.txt", shape, sl))
		die(74, "cannot write into %s", dir);
	enc_acts_free(a);
	return 0;
}

/* loss = sum(out . dout) in double, over real positions */
static double loss_of(const enc_config *c, const float *params, const int32_t *ids, const int32_t *len, int B, int T,
		      const float *dout, const enc_dropout *drop, float *out)
{
	size_t H = c->hidden;
	enc_forward(c, params, ids, len, B, T, out, drop);
	double s = 0;
	for (int b = 0; b < B; b++)
		for (size_t k = (size_t)b * T * H; k < ((size_t)b * T + len[b]) * H; k++)
			s += (double)out[k] * dout[k];
	return s;
}

/* Finite differences on a few entries of every tensor, dropout on. */
static void test_gradients(const char *what, const char *json)
{
	enc_config c;
	parse_or_die(&c, json);
	float *params = random_model(&c, 3);
	int32_t ids[TB * TT], len[TB];
	make_batch(&c, ids, len);
	size_t H = c.hidden, np = enc_num_params(&c);
	float *dout = make_dout(&c, len, TB, TT);
	float *out = xcalloc((size_t)TB * TT * H, sizeof(float));
	float *grads = xcalloc(np, sizeof(float));
	enc_dropout drop = { .seed = 99, .step = 5, .column = 1, .row0 = 0 };
	enc_acts *a = enc_acts_new(&c, TB, TT);
	enc_forward_train(&c, params, ids, len, TB, TT, out, &drop, a);
	enc_backward(&c, params, a, dout, grads);
	int nt = enc_param_table(&c, NULL);
	enc_param *t = xmalloc(nt * sizeof *t);
	enc_param_table(&c, t);
	int bad_tensors = 0;
	for (int i = 0; i < nt; i++) {
		double worst = 0;
		/* entries used by the batch: for the embedding tables, rows of ids / positions seen; elsewhere random */
		for (int k = 0; k < 6; k++) {
			size_t j;
			if (!strcmp(t[i].name, "embeddings.word_embeddings.weight")) {
				int r = rnd32() % TB, p = rnd32() % len[r];
				j = (size_t)ids[r * TT + p] * H + rnd32() % H;
			} else if (!strcmp(t[i].name, "embeddings.position_embeddings.weight")) {
				int padded = c.arch == ENC_ROBERTA || c.arch == ENC_MPNET;
				j = (size_t)(padded ? c.pad_token_id + 1 + rnd32() % 2 : rnd32() % 2) * H + rnd32() % H;
			} else if (!strcmp(t[i].name, "encoder.relative_attention_bias.weight")) {
				/* buckets 0..8 (key at or before the query, up to 8 back) and 17..24 (after) occur in rows of 9 */
				int bucket = rnd32() % 2 ? (int)(rnd32() % 9) : 17 + (int)(rnd32() % 8);
				j = (size_t)bucket * c.heads + rnd32() % c.heads;
			} else {
				j = rnd32() % t[i].count;
			}
			float *p = params + t[i].offset + j, keep = *p, h = 1e-2f;
			*p = keep + h;
			double up = loss_of(&c, params, ids, len, TB, TT, dout, &drop, out);
			*p = keep - h;
			double down = loss_of(&c, params, ids, len, TB, TT, dout, &drop, out);
			*p = keep;
			double fd = (up - down) / (2.0 * h), an = grads[t[i].offset + j];
			double err = fabs(fd - an) / (fabs(fd) + fabs(an) + 0.05);
			if (err > worst)
				worst = err;
		}
		if (worst > 0.02) {
			bad_tensors++;
			printf("#   %s: worst relative error %.4g\n", t[i].name, worst);
		}
	}
	ok(bad_tensors == 0, "%s: finite differences agree with the gradient of all %d tensors (dropout on)", what, nt);
	/* padding_idx rows get nothing */
	int pad_clean = 1;
	for (size_t i = 0; i < H; i++)
		if (grads[t[0].offset + (size_t)c.pad_token_id * H + i] != 0)
			pad_clean = 0;
	ok(pad_clean, "%s: the padding row of the word embeddings gets no gradient (a pad id occurs inside a row)", what);

	/* chunked backward (GradCache): two chunks with row0 accumulate the same gradient as the whole batch */
	float *g2 = xcalloc(np, sizeof(float));
	int32_t len_a[1] = { len[0] }, len_b[2] = { len[1], len[2] };
	enc_dropout da = drop, db = drop;
	db.row0 = 1;
	enc_forward_train(&c, params, ids, len_a, 1, TT, out, &da, a);
	enc_backward(&c, params, a, dout, g2);
	enc_forward_train(&c, params, ids + TT, len_b, 2, TT, out, &db, a);
	enc_backward(&c, params, a, dout + TT * H, g2);
	double md = 0, mg = 0;
	for (size_t i = 0; i < np; i++) {
		md = fmax(md, fabs(g2[i] - grads[i]));
		mg = fmax(mg, fabs(grads[i]));
	}
	ok(md <= 1e-5 * mg, "%s: gradients of two chunks (row0 0 and 1) sum to the whole batch's (max diff %.3g of %.3g)",
	   what, md, mg);
	enc_acts_free(a);
	free(t), free(params), free(dout), free(out), free(grads), free(g2);
}

static void test_dropout(const char *what, const char *json)
{
	enc_config c;
	parse_or_die(&c, json);
	float *params = random_model(&c, 11);
	int32_t ids[TB * TT], len[TB];
	make_batch(&c, ids, len);
	size_t H = c.hidden, n = (size_t)TB * TT * H;
	float *o1 = xmalloc(n * 4), *o2 = xmalloc(n * 4), *o3 = xmalloc(n * 4), *o4 = xmalloc(n * 4);
	const float sentinel = -12345.0f;
	for (size_t i = 0; i < n; i++)
		o1[i] = o2[i] = o3[i] = o4[i] = sentinel;
	enc_dropout drop = { .seed = 42, .step = 3, .column = 0, .row0 = 0 };
	enc_forward(&c, params, ids, len, TB, TT, o1, &drop);
	enc_acts *a = enc_acts_new(&c, TB, TT);
	enc_forward_train(&c, params, ids, len, TB, TT, o2, &drop, a);
	ok(!memcmp(o1, o2, n * 4), "%s: enc_forward and enc_forward_train give identical outputs with dropout", what);
	int pads_kept = 1;
	for (int b = 0; b < TB; b++)
		for (size_t k = ((size_t)b * TT + len[b]) * H; k < (size_t)(b + 1) * TT * H; k++)
			if (o1[k] != sentinel)
				pads_kept = 0;
	ok(pads_kept, "%s: pad positions of the output are not written", what);

	/* chunks: rows {0}, {1, 2} with row0 0 and 1 give the same rows */
	int32_t len_a[1] = { len[0] }, len_b[2] = { len[1], len[2] };
	enc_dropout db = drop;
	enc_forward(&c, params, ids, len_a, 1, TT, o3, &drop);
	db.row0 = 1;
	enc_forward(&c, params, ids + TT, len_b, 2, TT, o3 + TT * H, &db);
	double md = 0;
	for (size_t i = 0; i < n; i++)
		md = fmax(md, fabs(o3[i] - o1[i]));
	ok(md < 1e-5, "%s: dropout masks do not depend on chunking (max diff %.3g)", what, md);
	/* and they are keyed on the row: the same rows at other row0 differ */
	enc_forward(&c, params, ids + TT, len_b, 2, TT, o4 + TT * H, &drop);
	md = 0;
	for (size_t i = TT * H; i < n; i++)
		md = fmax(md, fabs(o4[i] - o1[i]));
	ok(md > 1e-3, "%s: a different row index gives different masks", what);

	/* inference differs from dropout, another step differs */
	enc_forward(&c, params, ids, len, TB, TT, o3, NULL);
	md = 0;
	for (size_t i = 0; i < n; i++)
		md = fmax(md, fabs(o3[i] - o1[i]));
	ok(md > 1e-3, "%s: dropout changes the output (max diff %.3g)", what, md);
	drop.step = 4;
	enc_forward(&c, params, ids, len, TB, TT, o4, &drop);
	md = 0;
	for (size_t i = 0; i < n; i++)
		md = fmax(md, fabs(o4[i] - o1[i]));
	ok(md > 1e-3, "%s: another step gives other masks", what);

	/* p = 0: the same as inference, bit for bit */
	c.hidden_dropout = c.attention_dropout = 0;
	enc_forward(&c, params, ids, len, TB, TT, o1, &drop);
	enc_forward(&c, params, ids, len, TB, TT, o2, NULL);
	ok(!memcmp(o1, o2, n * 4), "%s: dropout with p = 0 equals inference", what);
	enc_acts_free(a);
	free(params), free(o1), free(o2), free(o3), free(o4);
}

/* The fraction of dropped units is p. A model whose weights are all zero except the embeddings' LayerNorm bias (1)
 * and the two block LayerNorm weights (1) passes the embedding dropout mask through: x0 = mask / (1-p), the
 * attention and FFN add zero, so out = LN(LN(x0)), positive where a unit was kept and negative where dropped. */
static void test_dropout_rate(void)
{
	const char *json = "{\"model_type\": \"bert\", \"vocab_size\": 10, \"hidden_size\": 64, \"num_hidden_layers\": 1,"
		" \"num_attention_heads\": 1, \"intermediate_size\": 4, \"max_position_embeddings\": 512,"
		" \"hidden_dropout_prob\": 0.3, \"attention_probs_dropout_prob\": 0.0}";
	enc_config c;
	parse_or_die(&c, json);
	size_t np = enc_num_params(&c);
	float *p = xcalloc(np, sizeof(float));
	int nt = enc_param_table(&c, NULL);
	enc_param *t = xmalloc(nt * sizeof *t);
	enc_param_table(&c, t);
	for (int i = 0; i < nt; i++)
		if (!strcmp(t[i].name, "embeddings.LayerNorm.bias"))
			for (size_t j = 0; j < t[i].count; j++)
				p[t[i].offset + j] = 1;
		else if (!strcmp(t[i].name, "encoder.layer.0.attention.output.LayerNorm.weight") ||
			 !strcmp(t[i].name, "encoder.layer.0.output.LayerNorm.weight"))
			for (size_t j = 0; j < t[i].count; j++)
				p[t[i].offset + j] = 1;
	int T = 500, B = 1;
	int32_t *ids = xcalloc(T, sizeof(int32_t)), len = T;
	float *out = xmalloc((size_t)T * 64 * sizeof(float));
	enc_dropout d = { .seed = 1, .step = 0, .column = 0, .row0 = 0 };
	enc_forward(&c, p, ids, &len, B, T, out, &d);
	size_t dropped = 0, total = (size_t)T * 64;
	for (size_t i = 0; i < total; i++)
		dropped += out[i] < 0;
	double rate = (double)dropped / total;
	/* binomial sd of the rate: sqrt(.3 * .7 / 32000) = 0.0026 */
	ok(fabs(rate - 0.3) < 0.012, "hidden dropout drops a fraction p of the units (%.4f for p = 0.3)", rate);
	free(p), free(t), free(ids), free(out);
}

/* A model big enough for the threaded paths (parallel regions start above a minimum size): 2 threads give
 * the same outputs and gradients as 1 thread, up to float rounding. */
static void test_threads(void)
{
	const char *json = "{\"model_type\": \"bert\", \"vocab_size\": 300, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
		" \"num_attention_heads\": 4, \"intermediate_size\": 256, \"max_position_embeddings\": 128,"
		" \"hidden_dropout_prob\": 0.1, \"attention_probs_dropout_prob\": 0.1, \"initializer_range\": 0.2}";
	enc_config c;
	parse_or_die(&c, json);
	float *params = random_model(&c, 5);
	enum { B = 8, T = 80 };
	int32_t ids[B * T], len[B];
	for (int b = 0; b < B; b++) {
		len[b] = T / 2 + rnd32() % (T / 2 + 1);
		for (int t = 0; t < T; t++)
			ids[b * T + t] = rnd32() % c.vocab_size;
	}
	size_t H = c.hidden, n = (size_t)B * T * H, np = enc_num_params(&c);
	float *dout = make_dout(&c, len, B, T);
	float *out[2], *g[2];
	enc_dropout drop = { .seed = 7, .step = 1, .column = 0, .row0 = 0 };
	enc_acts *a = enc_acts_new(&c, B, T);
	for (int k = 0; k < 2; k++) {
		st_set_threads(k + 1);
		out[k] = xcalloc(n, sizeof(float));
		g[k] = xcalloc(np, sizeof(float));
		enc_forward_train(&c, params, ids, len, B, T, out[k], &drop, a);
		enc_backward(&c, params, a, dout, g[k]);
	}
	double mo = 0, mg = 0, sg = 0;
	for (size_t i = 0; i < n; i++)
		mo = fmax(mo, fabs(out[1][i] - out[0][i]));
	for (size_t i = 0; i < np; i++) {
		mg = fmax(mg, fabs(g[1][i] - g[0][i]));
		sg = fmax(sg, fabs(g[0][i]));
	}
	ok(mo < 1e-5, "2 threads give the outputs of 1 thread (max diff %.3g)", mo);
	ok(mg <= 1e-5 * sg, "2 threads give the gradients of 1 thread (max diff %.3g of %.3g)", mg, sg);
	enc_acts_free(a);
	free(params), free(dout), free(out[0]), free(out[1]), free(g[0]), free(g[1]);
}

static void test_config_mpnet(void)
{
	enc_config c;
	char err[256];
	/* all-mpnet-base-v2: 109,486,464 parameters with its pooler (768 x 768 + 768), which is not part of the body */
	const char *json = "{\"model_type\": \"mpnet\", \"max_position_embeddings\": 514, \"layer_norm_eps\": 1e-5}";
	ok(enc_config_parse(&c, json, strlen(json), err, sizeof err) == 0 && c.arch == ENC_MPNET && c.vocab_size == 30527 &&
	   c.pad_token_id == 1 && c.rel_buckets == 32 && c.type_vocab_size == 0 && enc_max_length(&c) == 512 &&
	   !strcmp(enc_arch_name(c.arch), "mpnet"), "MPNet defaults; 514 positions allow 512 tokens");
	ok(enc_num_params(&c) == 109486464 - (768 * 768 + 768), "all-mpnet-base-v2's body has %zu parameters",
	   enc_num_params(&c));
	int nt = enc_param_table(&c, NULL);
	enc_param *t = xmalloc(nt * sizeof *t);
	enc_param_table(&c, t);
	int k = enc_param_find(&c, "encoder.relative_attention_bias.weight");
	ok(k == nt - 1 && t[k].shape[0] == 32 && t[k].shape[1] == 12 && t[k].no_decay && nt == 4 + 12 * 16 + 1 &&
	   enc_param_find(&c, "embeddings.token_type_embeddings.weight") < 0,
	   "MPNet table: no token types, relative_attention_bias.weight [32, 12] last, no decay (\"bias\" in its name)");
	k = enc_param_find(&c, "encoder.layer.11.attention.attn.o.weight");
	ok(k >= 0 && enc_param_find(&c, "encoder.layer.0.attention.LayerNorm.bias") >= 0 &&
	   enc_param_find(&c, "encoder.layer.3.attention.attn.k.bias") >= 0, "MPNet layer names (attention.attn.q/k/v/o)");
	free(t);
	json = "{\"model_type\": \"mpnet\", \"pad_token_id\": 0}";
	ok(enc_config_parse(&c, json, strlen(json), err, sizeof err) == -1 && strstr(err, "padding index 1"),
	   "MPNet with pad_token_id 0 is refused (%s)", err);
	json = "{\"model_type\": \"mpnet\", \"relative_attention_num_buckets\": 16}";
	ok(enc_config_parse(&c, json, strlen(json), err, sizeof err) == -1 && strstr(err, "32"),
	   "MPNet with fewer than 32 relative buckets is refused (%s)", err);
}

static void test_config(void)
{
	enc_config c;
	char err[256];
	const char *json = "{\"model_type\": \"deberta-v2\", \"hidden_size\": 32}";
	ok(enc_config_parse(&c, json, strlen(json), err, sizeof err) == -1 && strstr(err, "mpnet") && strstr(err, "deberta") &&
	   strstr(err, "bert") && strstr(err, "roberta") && strstr(err, "distilbert"),
	   "unknown model_type is refused, naming the supported ones (%s)", err);
	json = "{\"model_type\": \"bert\", \"hidden_act\": \"swish\"}";
	ok(enc_config_parse(&c, json, strlen(json), err, sizeof err) == -1 && strstr(err, "swish"), "unsupported hidden_act is refused");
	json = "{\"model_type\": \"bert\", \"hidden_size\": 30, \"num_attention_heads\": 4}";
	ok(enc_config_parse(&c, json, strlen(json), err, sizeof err) == -1, "hidden not a multiple of heads is refused");
	json = "{\"model_type\": \"bert\"}";
	ok(enc_config_parse(&c, json, strlen(json), err, sizeof err) == 0 && c.hidden == 768 && c.layers == 12 &&
	   c.vocab_size == 30522 && c.act == ENC_ACT_GELU && fabsf(c.layer_norm_eps - 1e-12f) < 1e-18 &&
	   c.type_vocab_size == 2 && enc_max_length(&c) == 512, "BERT defaults");
	json = "{\"model_type\": \"roberta\", \"max_position_embeddings\": 514, \"pad_token_id\": 1}";
	ok(enc_config_parse(&c, json, strlen(json), err, sizeof err) == 0 && c.arch == ENC_ROBERTA &&
	   enc_max_length(&c) == 512, "RoBERTa: 514 positions allow 512 tokens");
	parse_or_die(&c, cfg_distil);
	ok(c.arch == ENC_DISTILBERT && c.hidden == 32 && c.intermediate == 64 && c.layers == 2 && c.heads == 2 &&
	   c.type_vocab_size == 0, "DistilBERT names (dim, hidden_dim, n_layers, n_heads)");
	/* all-MiniLM-L6-v2 size: 22.7M parameters without the pooler */
	json = "{\"model_type\": \"bert\", \"hidden_size\": 384, \"num_hidden_layers\": 6, \"intermediate_size\": 1536}";
	enc_config_parse(&c, json, strlen(json), err, sizeof err);
	size_t n = enc_num_params(&c);
	/* embeddings 30522*384 + 512*384 + 2*384 + 2*384; per layer 4*(384*384+384) + 2*(384*1536) + 1536 + 384 + 4*384 */
	size_t want = 30522 * 384 + 512 * 384 + 2 * 384 + 2 * 384 +
		      6 * (4 * (384 * 384 + 384) + 2 * 384 * 1536 + 1536 + 384 + 4 * 384);
	ok(n == want, "MiniLM-L6 body has %zu parameters (want %zu)", n, want);
	int nt = enc_param_table(&c, NULL);
	enc_param *t = xmalloc(nt * sizeof *t);
	enc_param_table(&c, t);
	size_t end = 0;
	int contiguous = 1;
	for (int i = 0; i < nt; i++) {
		if (t[i].offset != end)
			contiguous = 0;
		end = t[i].offset + t[i].count;
	}
	ok(nt == 5 + 6 * 16 && contiguous && end == n, "parameter table: %d tensors tiling the buffer", nt);
	int k = enc_param_find(&c, "encoder.layer.5.output.LayerNorm.bias");
	ok(k == nt - 1 && t[k].no_decay, "last tensor is encoder.layer.5.output.LayerNorm.bias, no decay");
	k = enc_param_find(&c, "encoder.layer.0.attention.self.key.weight");
	ok(k >= 0 && !t[k].no_decay && t[k].shape[0] == 384 && t[k].shape[1] == 384, "key weight [384, 384], decayed");
	free(t);
	parse_or_die(&c, cfg_roberta);
	float *p = xmalloc(enc_num_params(&c) * sizeof(float));
	enc_init_random(&c, p, 1);
	int zero = 1;
	for (int i = 0; i < c.hidden; i++)
		zero &= p[c.pad_token_id * c.hidden + i] == 0 && p[(size_t)c.vocab_size * c.hidden + c.pad_token_id * c.hidden + i] == 0;
	ok(zero, "enc_init_random zeroes the padding rows (word and RoBERTa position)");
	free(p);
	test_config_mpnet();
}

int main(int argc, char **argv)
{
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "--dump"))
		return dump(argv[2], argv[3], argc == 5 ? atoi(argv[4]) : TT);
	/* the small models below run single-threaded anyway (too small for a parallel region) */
	st_set_threads(1);
	test_config();
	test_gradients("bert", cfg_bert);
	test_gradients("xlm-roberta", cfg_roberta);
	test_gradients("distilbert", cfg_distil);
	test_gradients("mpnet", cfg_mpnet);
	test_dropout("bert", cfg_bert);
	test_dropout("distilbert", cfg_distil);
	test_dropout("mpnet", cfg_mpnet);
	test_dropout_rate();
	test_threads();
	return done_testing();
}
