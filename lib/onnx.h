/* onnx.h: a sentence-transformers model (Transformer + Pooling [+ Dense...] [+ Normalize]) as an ONNX graph,
 * written by st itself in ONNX's protobuf wire format (docs/st-export.md).
 *
 * The graph (IR version 8, opset 17, standard ops only) has dynamic batch and sequence length:
 *   inputs   input_ids      int64 [batch, sequence]
 *            attention_mask int64 [batch, sequence]   1 for real tokens, 0 for padding
 *            token_type_ids int64 [batch, sequence]   BERT only (as Optimum and TEI export BERT; zeros = what st
 *                                                     computes); RoBERTa/XLM-R and DistilBERT have none
 *   outputs  sentence_embedding [batch, dim]             what st-encode writes for the same ids
 *            token_embeddings   [batch, sequence, hidden] the transformer's last hidden states
 * Weights are float32 initializers (raw_data) named as the model's safetensors names them; Linear weights of the
 * encoder are stored transposed ([in][out], for MatMul). One file holds everything, so models whose file would
 * pass protobuf's 2 GB limit are refused (ONNX's external data is not written). */
#ifndef ST_ONNX_H
#define ST_ONNX_H

#include <stddef.h>
#include <stdint.h>

struct st_model;

#define ONNX_IR_VERSION 8
#define ONNX_OPSET 17

/* Writes m as an ONNX model to path, atomically (path.tmp.PID, fsynced, renamed). Returns 0, or -1 with a
 * message in err: *too_large set when the model does not fit in one ONNX file (else an I/O error). */
int onnx_export(struct st_model *m, const char *path, int *too_large, char *err, size_t errlen);

/* ---- the protobuf wire format, exposed for the unit test ---- */
typedef struct onnx_buf { uint8_t *p; size_t n, cap; } onnx_buf;
void onnx_put_varint(onnx_buf *b, uint64_t v);
/* field number and wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32) */
void onnx_put_tag(onnx_buf *b, int field, int wire);
void onnx_put_int(onnx_buf *b, int field, int64_t v);               /* int32/int64: negative as 10 bytes */
void onnx_put_float(onnx_buf *b, int field, float v);               /* fixed32, little-endian */
void onnx_put_bytes(onnx_buf *b, int field, const void *p, size_t n);
void onnx_put_str(onnx_buf *b, int field, const char *s);
void onnx_buf_free(onnx_buf *b);

#endif
