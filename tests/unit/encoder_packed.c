/* tests/unit/encoder_packed.c: enc_forward_packed and enc_forward_at_packed give enc_forward's result bit for
 * bit, batch after batch, in float32 and with --compute bf16 (whose weight copies pk keeps: a weight that moves
 * gets a new copy). The reference, enc_forward, is checked against PyTorch elsewhere (tests/encoder.t), its
 * bfloat16 form in tests/compute_bf16.t. */
#include "encoder.h"
#include "gemm_bf16.h"
#include "gemm.h"
#include "st.h"
#include "tap.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>

int main(void)
{
	setenv("ST_GEMM", "own", 1);   /* before the first product: st_sgemm decides once */
	if (st_gemm_impl() == ST_GEMM_BLAS)
		skip_all("no own AVX2/AVX-512 kernel on this CPU: nothing is packed");
	/* sizes that are not multiples of the tiles; intermediate 3 x hidden: 4 different weight shapes */
	static const char json[] = "{\"model_type\": \"bert\", \"vocab_size\": 97, \"hidden_size\": 52, "
		"\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"intermediate_size\": 156, "
		"\"max_position_embeddings\": 64, \"hidden_act\": \"gelu\"}";
	enc_config c;
	char err[256];
	if (enc_config_parse(&c, json, strlen(json), err, sizeof err))
		die(70, "%s", err);
	size_t np = enc_num_params(&c);
	float *params = xmalloc(np * sizeof(float));
	enc_init_random(&c, params, 7);
	omp_set_num_threads(2);
	enum { B = 5, T = 40 };
	int32_t ids[B * T], len[B] = { 40, 33, 17, 9, 1 };
	for (int i = 0; i < B * T; i++)
		ids[i] = 5 + (i * 31) % 90;
	size_t nout = (size_t)B * T * c.hidden;
	float *want = xcalloc(nout, sizeof(float)), *got = xcalloc(nout, sizeof(float));
	enc_packed *pk = enc_packed_new(&c);
	int same = 1;
	for (int round = 0; round < 3; round++) {
		len[4] = 1 + round * 7;
		enc_forward(&c, params, ids, len, B, T, want, NULL);
		enc_forward_packed(&c, params, ids, len, B, T, got, NULL, pk);
		same &= !memcmp(want, got, nout * sizeof(float));
	}
	ok(same, "enc_forward_packed == enc_forward bit for bit, 3 batches");

	/* the same weights at another address (a copy), through enc_forward_at_packed */
	float *moved = xmalloc(np * sizeof(float));
	memcpy(moved, params, np * sizeof(float));
	int n = enc_param_table(&c, NULL);
	enc_param *tab = xcalloc(n, sizeof *tab);
	enc_param_table(&c, tab);
	const float **at = xcalloc(n, sizeof *at);
	for (int k = 0; k < n; k++)
		at[k] = moved + tab[k].offset;
	/* change the copy: a stale packed copy of the old weights would give the old result */
	for (size_t i = 0; i < np; i++)
		moved[i] *= 0.5f;
	enc_forward(&c, moved, ids, len, B, T, want, NULL);
	enc_forward_at_packed(&c, at, ids, len, B, T, got, NULL, pk);
	ok(!memcmp(want, got, nout * sizeof(float)), "float32: enc_forward_at_packed, weights at a new address (bit for bit)");
	enc_forward_at_packed(&c, at, ids, len, B, T, got, NULL, pk);
	ok(!memcmp(want, got, nout * sizeof(float)), "... twice (bit for bit)");
	enc_packed_free(pk);

	/* --compute bf16: the bfloat16 copies kept in enc_packed give what a pass making its own gives, and weights
	 * at a new address (changed) get new copies */
	if (st_bf16_supported()) {
		enc_set_compute(ENC_COMPUTE_BF16);
		pk = enc_packed_new(&c);
		enc_forward(&c, params, ids, len, B, T, want, NULL);
		enc_forward_packed(&c, params, ids, len, B, T, got, NULL, pk);
		int same16 = !memcmp(want, got, nout * sizeof(float));
		enc_forward_packed(&c, params, ids, len, B, T, got, NULL, pk);
		same16 &= !memcmp(want, got, nout * sizeof(float));
		ok(same16, "bf16: kept copies == copies made per pass, twice (bit for bit)");
		enc_forward(&c, moved, ids, len, B, T, want, NULL);
		enc_forward_at_packed(&c, at, ids, len, B, T, got, NULL, pk);
		ok(!memcmp(want, got, nout * sizeof(float)), "bf16: weights at a new address get new copies");
		enc_packed_free(pk);
		enc_set_compute(ENC_COMPUTE_FLOAT32);
	} else {
		ok(1, "# SKIP no AVX512-BF16");
		ok(1, "# SKIP no AVX512-BF16");
	}
	free(tab), free(at), free(moved), free(params), free(want), free(got);
	return done_testing();
}
