/* gemm_bf16.h: the encoder's projections (Linear layers) in bfloat16 on CPUs with AVX512-BF16 (vdpbf16ps):
 * inference only, float32 accumulation (docs/encoder.md, "Compute precision").
 *
 * A weight [OC][C] (PyTorch Linear) is rounded once to bfloat16 (round to nearest even) and packed in
 * 32-column panels of (k, k+1) pairs, the layout vdpbf16ps reads; the activations are rounded per call. Every
 * product of two bfloat16 numbers is exact in float32, and the sums are float32 additions, so the result is the
 * float32 product of the rounded inputs up to float32 summation error. Everything else of the encoder
 * (LayerNorm, softmax, GELU, attention, pooling) stays float32. */
#ifndef ST_GEMM_BF16_H
#define ST_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

/* 1 when this CPU (and its OS) runs AVX512-BF16: avx512f, avx512bw and avx512_bf16 in /proc/cpuinfo. */
int st_bf16_supported(void);

/* float32 -> bfloat16, round to nearest, ties to even; a NaN stays a (quiet) NaN. And back (exact). */
uint16_t st_bf16_round(float x);
float st_bf16_float(uint16_t h);

/* A weight [OC][C] rounded to bfloat16 and packed for the kernel. */
typedef struct st_bf16_weight st_bf16_weight;
st_bf16_weight *st_bf16_pack(const float *weight, int OC, int C);
const float *st_bf16_weight_source(const st_bf16_weight *w);   /* the weight it was made from */
void st_bf16_weight_free(st_bf16_weight *w);

/* out (N, OC) = bf16(inp) (N, C) . bf16(weight)^T with float32 sums, then fn(ctx, r0, r1) on each block of
 * rows while they are still in cache (as the encoder's linear layers do). Runs on the threads of
 * omp_get_max_threads() when the product is large, on one inside a parallel region. Dies (EX_SOFTWARE) on a
 * CPU without AVX512-BF16: callers check st_bf16_supported() first. */
void st_bf16_linear(float *out, const float *inp, int N, const st_bf16_weight *w,
		    void (*fn)(const void *ctx, int r0, int r1), const void *ctx);

/* The encoder's compute precision for inference (enc_forward / enc_forward_at without dropout); training
 * (dropout, enc_forward_train, enc_backward) is always float32. Default ENC_COMPUTE_FLOAT32. The bfloat16
 * copies of the weights are kept with the model's packed weights (enc_packed, model_freeze); a forward pass
 * without them makes and frees its own. */
enum enc_compute { ENC_COMPUTE_FLOAT32, ENC_COMPUTE_BF16 };
void enc_set_compute(enum enc_compute c);
enum enc_compute enc_get_compute(void);
/* The tools' --compute VALUE: "float32" or "bf16" (usage_error otherwise); bf16 on a CPU without
 * AVX512-BF16 ends the program with EX_USAGE (64) and a message naming what is missing. */
void enc_compute_option(const char *value, const char *usage);
#define ENC_COMPUTE_USAGE \
	"  --compute float32|bf16  arithmetic of the encoder's projections: float32 (default) or bfloat16\n" \
	"                        products with float32 sums (CPUs with AVX512-BF16; docs/encoder.md)\n"

#endif
