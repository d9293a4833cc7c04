/* onnx.c: the protobuf writer of lib/onnx.c against bytes worked out by hand from the wire-format rules
 * (varints 7 bits at a time, low group first; tag = field << 3 | wire type; two's complement for negatives). */
#include <string.h>
#include "onnx.h"
#include "tap.h"

static int same(onnx_buf *b, const unsigned char *want, size_t n, const char *what)
{
	int good = b->n == n && !memcmp(b->p, want, n);
	ok(good, "%s", what);
	if (!good) {
		printf("#   got ");
		for (size_t i = 0; i < b->n; i++)
			printf("%02x ", b->p[i]);
		printf("\n");
	}
	onnx_buf_free(b);
	return good;
}

int main(void)
{
	onnx_buf b = { 0 };
	onnx_put_varint(&b, 1);
	same(&b, (const unsigned char[]){ 0x01 }, 1, "varint 1");
	onnx_put_varint(&b, 300);   /* 300 = 0b10_0101100: 0xac (low 7 bits + continuation), 0x02 */
	same(&b, (const unsigned char[]){ 0xac, 0x02 }, 2, "varint 300");
	onnx_put_int(&b, 1, 8);     /* ir_version 8: tag 0x08, value 0x08 */
	same(&b, (const unsigned char[]){ 0x08, 0x08 }, 2, "int field 1 = 8");
	onnx_put_int(&b, 3, -1);    /* tag 0x18, then 2^64-1 as ten bytes */
	same(&b, (const unsigned char[]){ 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 }, 11,
	     "int field 3 = -1 (ten bytes)");
	onnx_put_float(&b, 2, 1.0f);   /* tag 2 << 3 | 5 = 0x15; 1.0f = 0x3f800000 little-endian */
	same(&b, (const unsigned char[]){ 0x15, 0x00, 0x00, 0x80, 0x3f }, 5, "float field 2 = 1.0");
	onnx_put_str(&b, 8, "ab");     /* tag 8 << 3 | 2 = 0x42, length 2 */
	same(&b, (const unsigned char[]){ 0x42, 0x02, 'a', 'b' }, 4, "string field 8 = \"ab\"");
	onnx_put_tag(&b, 20, 0);       /* 160 = 0xa0 0x01 */
	same(&b, (const unsigned char[]){ 0xa0, 0x01 }, 2, "tag of field 20 takes two bytes");
	printf("1..%d\n", tap_n);
	return tap_failed != 0;
}
