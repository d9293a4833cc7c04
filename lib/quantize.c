/* quantize.c: embedding quantization as sentence-transformers' quantize_embeddings (reference: quantization.py;
 * formulas only). */
#include <math.h>
#include <string.h>
#include "quantize.h"

static const char *const names[] = { "float32", "int8", "uint8", "binary", "ubinary" };

int quantize_parse(const char *name)
{
	for (int i = 0; i < 5; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

const char *quantize_name(int precision) { return precision >= 0 && precision < 5 ? names[precision] : "?"; }

size_t quantize_row_bytes(int precision, int d)
{
	switch (precision) {
	case QUANT_FLOAT32: return (size_t)d * 4;
	case QUANT_INT8:
	case QUANT_UINT8: return (size_t)d;
	default: return ((size_t)d + 7) / 8;
	}
}

void quantize_ranges(const float *x, size_t n, int d, float *mins, float *maxs)
{
	for (int k = 0; k < d; k++) {
		mins[k] = n ? x[k] : 0.0f;
		maxs[k] = n ? x[k] : 0.0f;
	}
	for (size_t i = 1; i < n; i++)
		for (int k = 0; k < d; k++) {
			float v = x[i * d + k];
			if (v < mins[k]) mins[k] = v;
			if (v > maxs[k]) maxs[k] = v;
		}
}

void quantize_rows(int precision, const float *x, size_t n, int d, const float *mins, const float *maxs,
		   uint8_t *out)
{
	size_t rb = quantize_row_bytes(precision, d);
	for (size_t i = 0; i < n; i++) {
		const float *row = x + i * d;
		uint8_t *o = out + i * rb;
		if (precision == QUANT_FLOAT32) {
			memcpy(o, row, rb);   /* little-endian hosts only, as the rest of st */
		} else if (precision == QUANT_INT8 || precision == QUANT_UINT8) {
			for (int k = 0; k < d; k++) {
				/* float32 arithmetic, as numpy on float32 arrays */
				float step = (maxs[k] - mins[k]) / 255.0f;
				float level = step > 0.0f ? (row[k] - mins[k]) / step : 0.0f;
				if (precision == QUANT_INT8) {
					float s = level - 128.0f;
					s = s < -128.0f ? -128.0f : s > 127.0f ? 127.0f : s;
					((int8_t *)o)[k] = (int8_t)truncf(s);
				} else {
					level = level < 0.0f ? 0.0f : level > 255.0f ? 255.0f : level;
					o[k] = (uint8_t)truncf(level);
				}
			}
		} else {
			memset(o, 0, rb);
			for (int k = 0; k < d; k++)
				if (row[k] > 0.0f)
					o[k / 8] |= (uint8_t)(0x80u >> (k % 8));
			if (precision == QUANT_BINARY)
				for (size_t b = 0; b < rb; b++)
					((int8_t *)o)[b] = (int8_t)((int)o[b] - 128);
		}
	}
}
