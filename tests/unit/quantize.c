/* quantize: lib/quantize.c on hand-worked cases of the library's quantize_embeddings formulas. */
#include <string.h>
#include "tap.h"
#include "quantize.h"

int main(void)
{
	/* 3 rows x 2 dims: dim 0 spans -1..1 (step 2/255), dim 1 is constant (step 0) */
	float x[6] = { -1.0f, 0.5f, 1.0f, 0.5f, 0.0f, 0.5f };
	float mins[2], maxs[2];
	quantize_ranges(x, 3, 2, mins, maxs);
	ok(mins[0] == -1.0f && maxs[0] == 1.0f && mins[1] == 0.5f && maxs[1] == 0.5f, "ranges: per-dimension min and max");
	uint8_t u[6];
	quantize_rows(QUANT_UINT8, x, 3, 2, mins, maxs, u);
	/* (x - start) / step in float32: -1 -> 0; 1 -> 2 / float32(2/255) = 254.99998 -> 254 (numpy gives 254 too:
	 * the top of the range truncates to 254); 0 -> 127.5 -> 127; constant dimension -> 0 */
	ok(u[0] == 0 && u[2] == 254 && u[4] == 127, "uint8 levels 0, 254, 127 (got %d %d %d)", u[0], u[2], u[4]);
	ok(u[1] == 0 && u[3] == 0 && u[5] == 0, "uint8: a constant dimension gives 0");
	int8_t s[6];
	quantize_rows(QUANT_INT8, x, 3, 2, mins, maxs, (uint8_t *)s);
	/* level - 128: -128, 126.99998 -> 126, -0.5 -> 0 (toward zero) */
	ok(s[0] == -128 && s[2] == 126 && s[4] == 0, "int8 levels -128, 126, 0 (got %d %d %d)", s[0], s[2], s[4]);
	/* values outside calibration ranges are clamped */
	float far[2] = { 3.0f, -7.0f };
	quantize_rows(QUANT_INT8, far, 1, 2, mins, maxs, (uint8_t *)s);
	ok(s[0] == 127, "int8: above the range clamps to 127 (got %d)", s[0]);
	quantize_rows(QUANT_UINT8, far + 1, 1, 1, mins, maxs, u);
	ok(u[0] == 0, "uint8: below the range clamps to 0 (got %d)", u[0]);
	/* 10 dims, signs + + - 0 + - - + | + -: bits 1100 1001 | 10 000000 -> 0xC9, 0x80 (0 is not > 0) */
	float b[10] = { 1, 2, -1, 0, 3, -2, -3, 4, 5, -5 };
	uint8_t ub[2];
	quantize_rows(QUANT_UBINARY, b, 1, 10, NULL, NULL, ub);
	ok(ub[0] == 0xC9 && ub[1] == 0x80, "ubinary packs the first dimension into the high bit (got %02x %02x)", ub[0],
	   ub[1]);
	int8_t sb[2];
	quantize_rows(QUANT_BINARY, b, 1, 10, NULL, NULL, (uint8_t *)sb);
	ok(sb[0] == 0xC9 - 128 && sb[1] == 0x80 - 128, "binary = ubinary - 128 (got %d %d)", sb[0], sb[1]);
	ok(quantize_row_bytes(QUANT_BINARY, 10) == 2 && quantize_row_bytes(QUANT_INT8, 10) == 10 &&
	   quantize_row_bytes(QUANT_FLOAT32, 10) == 40, "row sizes");
	ok(quantize_parse("ubinary") == QUANT_UBINARY && quantize_parse("int4") < 0, "names");
	return done_testing();
}
