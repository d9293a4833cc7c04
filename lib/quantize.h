/* quantize.h: quantize_embeddings of sentence-transformers (quantization.py): float32 rows to int8, uint8
 * (per-dimension ranges, 255 steps) or packed bits (binary, ubinary). */
#ifndef ST_QUANTIZE_H
#define ST_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

enum { QUANT_FLOAT32, QUANT_INT8, QUANT_UINT8, QUANT_BINARY, QUANT_UBINARY };

/* "float32", "int8", "uint8", "binary", "ubinary" -> QUANT_*, or -1. */
int quantize_parse(const char *name);
const char *quantize_name(int precision);
/* Bytes of one quantized row of d dimensions: 4d, d, d, ceil(d/8), ceil(d/8). */
size_t quantize_row_bytes(int precision, int d);
/* Per-dimension min and max over rows x [n][d] (the library's ranges, np.min/np.max over axis 0). */
void quantize_ranges(const float *x, size_t n, int d, float *mins, float *maxs);
/* x [n][d] -> out [n][quantize_row_bytes]. int8/uint8: level = (x - min) / ((max - min) / 255), truncated
 * toward zero as numpy's astype, minus 128 for int8; levels outside 0..255 (values outside calibration
 * ranges) are clamped, a dimension with max == min gives level 0. binary/ubinary: bit x > 0, packed 8 to a
 * byte, first dimension in the high bit (np.packbits), the last byte zero-padded; binary = ubinary - 128. */
void quantize_rows(int precision, const float *x, size_t n, int d, const float *mins, const float *maxs,
		   uint8_t *out);

#endif
