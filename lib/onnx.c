/* onnx.c: the model as an ONNX graph (onnx.h), serialised with a small protobuf writer of our own.
 *
 * The graph computes what lib/encoder.c and lib/model_heads.c compute, with standard ops of opset 17. Where st
 * computes each row over its own length, the graph runs on the padded [batch, sequence] matrix and masks: padded
 * keys get -FLT_MAX added to their attention scores (exp gives exactly 0, as Hugging Face does), and the pooling
 * reads the attention mask. Field numbers are those of onnx/onnx.proto (proto2; repeated scalars are written
 * unpacked, which every parser accepts).
 *
 * Writing streams: the graph's small parts (nodes, inputs, outputs, constants) are built in memory, the weights
 * are written straight from the model's parameter buffer (transposed through one scratch matrix at a time), so
 * the length prefixes are computed from sizes rather than from a serialised copy of the whole model. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_impl.h"
#include "onnx.h"
#include "st.h"

/* ------------------------------------------------------------------------------------------------------------ */
/* the wire format */

enum { WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

/* onnx.proto field numbers */
enum {
	PB_MODEL_IR_VERSION = 1, PB_MODEL_PRODUCER_NAME = 2, PB_MODEL_PRODUCER_VERSION = 3, PB_MODEL_DOC_STRING = 6,
	PB_MODEL_GRAPH = 7, PB_MODEL_OPSET_IMPORT = 8,
	PB_OPSET_DOMAIN = 1, PB_OPSET_VERSION = 2,
	PB_GRAPH_NODE = 1, PB_GRAPH_NAME = 2, PB_GRAPH_INITIALIZER = 5, PB_GRAPH_INPUT = 11, PB_GRAPH_OUTPUT = 12,
	PB_NODE_INPUT = 1, PB_NODE_OUTPUT = 2, PB_NODE_NAME = 3, PB_NODE_OP_TYPE = 4, PB_NODE_ATTRIBUTE = 5,
	PB_ATTR_NAME = 1, PB_ATTR_F = 2, PB_ATTR_I = 3, PB_ATTR_INTS = 8, PB_ATTR_TYPE = 20,
	PB_TENSOR_DIMS = 1, PB_TENSOR_DATA_TYPE = 2, PB_TENSOR_NAME = 8, PB_TENSOR_RAW_DATA = 9,
	PB_VALUE_INFO_NAME = 1, PB_VALUE_INFO_TYPE = 2,
	PB_TYPE_TENSOR = 1, PB_TENSOR_TYPE_ELEM_TYPE = 1, PB_TENSOR_TYPE_SHAPE = 2,
	PB_SHAPE_DIM = 1, PB_DIM_VALUE = 1, PB_DIM_PARAM = 2,
};
/* AttributeProto.AttributeType and TensorProto.DataType values */
enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_INTS = 7 };
enum { DTYPE_FLOAT = 1, DTYPE_INT64 = 7, DTYPE_BOOL = 9 };

static void put_raw(onnx_buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = b->cap * 2 > b->n + n ? b->cap * 2 : b->n + n + 256;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;
	for (; v >= 0x80; v >>= 7)
		n++;
	return n;
}

void onnx_put_varint(onnx_buf *b, uint64_t v)
{
	uint8_t bytes[10];
	size_t n = 0;
	do {
		bytes[n] = v & 0x7f;
		v >>= 7;
		if (v)
			bytes[n] |= 0x80;
		n++;
	} while (v);
	put_raw(b, bytes, n);
}

void onnx_put_tag(onnx_buf *b, int field, int wire) { onnx_put_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }

void onnx_put_int(onnx_buf *b, int field, int64_t v)
{
	onnx_put_tag(b, field, WIRE_VARINT);
	onnx_put_varint(b, (uint64_t)v);   /* two's complement: a negative number takes 10 bytes */
}

void onnx_put_float(onnx_buf *b, int field, float v)
{
	uint32_t u;
	memcpy(&u, &v, sizeof u);
	uint8_t le[4] = { u & 0xff, u >> 8 & 0xff, u >> 16 & 0xff, u >> 24 };
	onnx_put_tag(b, field, WIRE_FIXED32);
	put_raw(b, le, 4);
}

void onnx_put_bytes(onnx_buf *b, int field, const void *p, size_t n)
{
	onnx_put_tag(b, field, WIRE_LEN);
	onnx_put_varint(b, n);
	put_raw(b, p, n);
}

void onnx_put_str(onnx_buf *b, int field, const char *s) { onnx_put_bytes(b, field, s, strlen(s)); }

void onnx_buf_free(onnx_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

static void put_msg(onnx_buf *b, int field, onnx_buf *msg)
{
	onnx_put_bytes(b, field, msg->p, msg->n);
	onnx_buf_free(msg);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* the graph under construction */

typedef struct weight {      /* a float32 initializer written from the model's buffer when the file is written */
	const float *src;
	int64_t rows, cols;      /* source [rows][cols]; cols 0: a vector [rows] */
	int transpose;           /* written as [cols][rows] */
	onnx_buf head;           /* the TensorProto up to the raw bytes: dims, data_type, name, raw_data tag + length */
	size_t raw;              /* raw bytes */
} weight;

typedef struct graph {
	onnx_buf nodes, consts, io;   /* GraphProto fields: node, small initializers, input and output */
	weight *w;
	int nw, capw;
	char **names;                 /* every value name made, owned */
	int nnames, capnames;
} graph;

static const char *intern(graph *g, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (g->nnames == g->capnames) {
		g->capnames = g->capnames ? 2 * g->capnames : 256;
		g->names = xrealloc(g->names, xmul(g->capnames, sizeof *g->names));
	}
	return g->names[g->nnames++] = xstrdup(buf);
}

typedef struct attr { const char *name; int type; int64_t i; float f; const int64_t *ints; int nints; } attr;
#define AI(n, v) ((attr){ .name = (n), .type = ATTR_INT, .i = (v) })
#define AF(n, v) ((attr){ .name = (n), .type = ATTR_FLOAT, .f = (v) })
#define AINTS(n, ...) ((attr){ .name = (n), .type = ATTR_INTS, .ints = (const int64_t[]){ __VA_ARGS__ }, \
	.nints = (int)(sizeof((const int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)) })
#define IN(...) (int)(sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *)), \
	(const char *const[]){ __VA_ARGS__ }
#define ATTRS(...) (int)(sizeof((const attr[]){ __VA_ARGS__ }) / sizeof(attr)), (const attr[]){ __VA_ARGS__ }
#define NOATTRS 0, NULL

/* One NodeProto; its output is named out, or op_N when out is NULL. Returns the output's name. */
static const char *node(graph *g, const char *op, const char *out, int nin, const char *const *in, int nattr,
			const attr *attrs)
{
	if (!out)
		out = intern(g, "%s_%d", op, g->nnames);
	onnx_buf n = { 0 };
	for (int i = 0; i < nin; i++)
		onnx_put_str(&n, PB_NODE_INPUT, in[i]);
	onnx_put_str(&n, PB_NODE_OUTPUT, out);
	onnx_put_str(&n, PB_NODE_NAME, out);
	onnx_put_str(&n, PB_NODE_OP_TYPE, op);
	for (int k = 0; k < nattr; k++) {
		const attr *a = &attrs[k];
		onnx_buf ab = { 0 };
		onnx_put_str(&ab, PB_ATTR_NAME, a->name);
		onnx_put_int(&ab, PB_ATTR_TYPE, a->type);
		if (a->type == ATTR_INT)
			onnx_put_int(&ab, PB_ATTR_I, a->i);
		else if (a->type == ATTR_FLOAT)
			onnx_put_float(&ab, PB_ATTR_F, a->f);
		else
			for (int j = 0; j < a->nints; j++)
				onnx_put_int(&ab, PB_ATTR_INTS, a->ints[j]);
		put_msg(&n, PB_NODE_ATTRIBUTE, &ab);
	}
	put_msg(&g->nodes, PB_GRAPH_NODE, &n);
	return out;
}

static void put_f32_le(onnx_buf *b, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &x[i], sizeof u);
		uint8_t le[4] = { u & 0xff, u >> 8 & 0xff, u >> 16 & 0xff, u >> 24 };
		put_raw(b, le, 4);
	}
}

/* A small constant initializer: ndim dims, n values of int64 or float (one of them NULL). */
static const char *constant(graph *g, int ndim, const int64_t *dims, const int64_t *i64, const float *f32, size_t n)
{
	const char *name = intern(g, "const_%d", g->nnames);
	onnx_buf t = { 0 };
	for (int d = 0; d < ndim; d++)
		onnx_put_int(&t, PB_TENSOR_DIMS, dims[d]);
	onnx_put_int(&t, PB_TENSOR_DATA_TYPE, i64 ? DTYPE_INT64 : DTYPE_FLOAT);
	onnx_put_str(&t, PB_TENSOR_NAME, name);
	onnx_buf raw = { 0 };
	if (f32)
		put_f32_le(&raw, f32, n);
	else
		for (size_t i = 0; i < n; i++)
			for (int k = 0; k < 8; k++) {
				uint8_t byte = (uint64_t)i64[i] >> (8 * k) & 0xff;
				put_raw(&raw, &byte, 1);
			}
	put_msg(&t, PB_TENSOR_RAW_DATA, &raw);
	put_msg(&g->consts, PB_GRAPH_INITIALIZER, &t);
	return name;
}

static const char *scalar_f(graph *g, float v) { return constant(g, 0, NULL, NULL, &v, 1); }
static const char *scalar_i(graph *g, int64_t v) { return constant(g, 0, NULL, &v, NULL, 1); }
#define INTS(g, ...) constant(g, 1, (const int64_t[]){ sizeof((const int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t) }, \
	(const int64_t[]){ __VA_ARGS__ }, NULL, sizeof((const int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t))

/* A weight of the model: src [rows][cols] (cols 0: a vector), written transposed when asked. */
static const char *weight_add(graph *g, const char *name, const float *src, int64_t rows, int64_t cols, int transpose)
{
	if (g->nw == g->capw) {
		g->capw = g->capw ? 2 * g->capw : 64;
		g->w = xrealloc(g->w, xmul(g->capw, sizeof *g->w));
	}
	weight *w = &g->w[g->nw++];
	memset(w, 0, sizeof *w);
	w->src = src, w->rows = rows, w->cols = cols, w->transpose = transpose && cols;
	w->raw = (size_t)rows * (cols ? (size_t)cols : 1) * sizeof(float);
	if (cols) {
		onnx_put_int(&w->head, PB_TENSOR_DIMS, w->transpose ? cols : rows);
		onnx_put_int(&w->head, PB_TENSOR_DIMS, w->transpose ? rows : cols);
	} else
		onnx_put_int(&w->head, PB_TENSOR_DIMS, rows);
	onnx_put_int(&w->head, PB_TENSOR_DATA_TYPE, DTYPE_FLOAT);
	onnx_put_str(&w->head, PB_TENSOR_NAME, name);
	onnx_put_tag(&w->head, PB_TENSOR_RAW_DATA, WIRE_LEN);
	onnx_put_varint(&w->head, w->raw);
	return intern(g, "%s", name);
}

/* A ValueInfoProto of an input or output: dims are "batch"-like names (dim_param) or, for NULL, the value. */
static void value_info(graph *g, int field, const char *name, int elem, int ndim, const char *const *params,
		       const int64_t *values)
{
	onnx_buf shape = { 0 };
	for (int d = 0; d < ndim; d++) {
		onnx_buf dim = { 0 };
		if (params[d])
			onnx_put_str(&dim, PB_DIM_PARAM, params[d]);
		else
			onnx_put_int(&dim, PB_DIM_VALUE, values[d]);
		put_msg(&shape, PB_SHAPE_DIM, &dim);
	}
	onnx_buf tensor = { 0 };
	onnx_put_int(&tensor, PB_TENSOR_TYPE_ELEM_TYPE, elem);
	put_msg(&tensor, PB_TENSOR_TYPE_SHAPE, &shape);
	onnx_buf type = { 0 };
	put_msg(&type, PB_TYPE_TENSOR, &tensor);
	onnx_buf vi = { 0 };
	onnx_put_str(&vi, PB_VALUE_INFO_NAME, name);
	put_msg(&vi, PB_VALUE_INFO_TYPE, &type);
	put_msg(&g->io, field, &vi);
}

static void graph_free(graph *g)
{
	onnx_buf_free(&g->nodes);
	onnx_buf_free(&g->consts);
	onnx_buf_free(&g->io);
	for (int i = 0; i < g->nw; i++)
		onnx_buf_free(&g->w[i].head);
	free(g->w);
	for (int i = 0; i < g->nnames; i++)
		free(g->names[i]);
	free(g->names);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* the model's mathematics as nodes */

static const char *op1(graph *g, const char *op, const char *a) { return node(g, op, NULL, IN(a), NOATTRS); }
static const char *op2(graph *g, const char *op, const char *a, const char *b)
{
	return node(g, op, NULL, IN(a, b), NOATTRS);
}
static const char *cast(graph *g, const char *a, int to) { return node(g, "Cast", NULL, IN(a), ATTRS(AI("to", to))); }
static const char *reduce_sum(graph *g, const char *x, int axis, int keepdims)
{
	/* opset 13+: the axes are an input */
	return node(g, "ReduceSum", NULL, IN(x, INTS(g, axis)), ATTRS(AI("keepdims", keepdims)));
}

/* y = x W^T + b for a PyTorch Linear W [out][in], as MatMul with W stored [in][out] */
static const char *linear(graph *g, const float *params, const char *x, const enc_param *w, const enc_param *b)
{
	const char *wt = weight_add(g, w->name, params + w->offset, w->shape[0], w->shape[1], 1);
	const char *bias = weight_add(g, b->name, params + b->offset, b->shape[0], 0, 0);
	return op2(g, "Add", op2(g, "MatMul", x, wt), bias);
}

static const char *layer_norm(graph *g, const float *params, const char *x, const enc_param *w, const enc_param *b,
			      float eps)
{
	const char *scale = weight_add(g, w->name, params + w->offset, w->shape[0], 0, 0);
	const char *bias = weight_add(g, b->name, params + b->offset, b->shape[0], 0, 0);
	return node(g, "LayerNormalization", NULL, IN(x, scale, bias), ATTRS(AI("axis", -1), AF("epsilon", eps)));
}

/* the encoder's FFN activation (encoder.c bias_act_rows) */
static const char *enc_activation(graph *g, const char *x, int act)
{
	if (act == ENC_ACT_RELU)
		return op1(g, "Relu", x);
	const char *half_x = op2(g, "Mul", x, scalar_f(g, 0.5f));
	const char *inner;
	if (act == ENC_ACT_GELU) {   /* 0.5 x (1 + erf(x / sqrt 2)) */
		inner = op1(g, "Erf", op2(g, "Mul", x, scalar_f(g, (float)M_SQRT1_2)));
	} else {                     /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
		const char *x3 = op2(g, "Mul", op2(g, "Mul", x, x), x);
		const char *u = op2(g, "Add", x, op2(g, "Mul", x3, scalar_f(g, 0.044715f)));
		inner = op1(g, "Tanh", op2(g, "Mul", u, scalar_f(g, 0.79788456080286536f)));
	}
	return op2(g, "Mul", half_x, op2(g, "Add", inner, scalar_f(g, 1.0f)));
}

/* Dense activations (model_heads.c act_forward) */
static const char *head_activation(graph *g, const char *x, int act)
{
	switch (act) {
	case MODEL_ACT_TANH: return op1(g, "Tanh", x);
	case MODEL_ACT_RELU: return op1(g, "Relu", x);
	case MODEL_ACT_SIGMOID: return op1(g, "Sigmoid", x);
	case MODEL_ACT_GELU: return enc_activation(g, x, ENC_ACT_GELU);
	default: return x;
	}
}

/* The transformer body: token states [B][T][H] from input_ids (and token_type_ids for BERT). */
static const char *encoder_graph(graph *g, const st_model *m, const float *params, const char *mask_bias)
{
	const enc_config *c = &m->enc;
	int n = enc_param_table(c, NULL);
	enc_param *t = xmalloc(xmul(n, sizeof *t));
	enc_param_table(c, t);
	int distil = c->arch == ENC_DISTILBERT, H = c->hidden, NH = c->heads, hs = H / NH;
	const enc_param *word = &t[0], *pos = &t[1], *type = distil ? NULL : &t[2];
	int k = distil ? 2 : 3;
	const enc_param *lnw = &t[k], *lnb = &t[k + 1];
	k += 2;

	/* embeddings: word[id] + position[p] (+ token_type[type]), then LayerNorm (encoder.c embeddings_forward) */
	const char *x = node(g, "Gather", NULL,
			     IN(weight_add(g, word->name, params + word->offset, word->shape[0], word->shape[1], 0),
				"input_ids"), NOATTRS);
	const char *pos_table = weight_add(g, pos->name, params + pos->offset, pos->shape[0], pos->shape[1], 0);
	const char *pe;
	if (c->arch == ENC_ROBERTA) {
		/* padding_idx + the running count of non-pad ids, padding_idx at pads (create_position_ids_from_input_ids) */
		const char *pad = scalar_i(g, c->pad_token_id);
		const char *real = cast(g, op1(g, "Not", op2(g, "Equal", "input_ids", pad)), DTYPE_INT64);
		const char *count = op2(g, "CumSum", real, scalar_i(g, 1));
		pe = node(g, "Gather", NULL, IN(pos_table, op2(g, "Add", op2(g, "Mul", count, real), pad)), NOATTRS);
	} else {
		/* positions 0..T-1: the first T rows of the table, broadcast over the batch */
		const char *len = node(g, "Shape", NULL, IN("input_ids"), ATTRS(AI("start", 1), AI("end", 2)));
		pe = node(g, "Slice", NULL, IN(pos_table, INTS(g, 0), len, INTS(g, 0)), NOATTRS);
	}
	x = op2(g, "Add", x, pe);
	if (type) {
		const char *type_table = weight_add(g, type->name, params + type->offset, type->shape[0], type->shape[1], 0);
		/* BERT takes token_type_ids (Optimum's inputs); RoBERTa always adds type 0, as st does */
		const char *ids = c->arch == ENC_BERT ? "token_type_ids" : scalar_i(g, 0);
		x = op2(g, "Add", x, node(g, "Gather", NULL, IN(type_table, ids), NOATTRS));
	}
	x = layer_norm(g, params, x, lnw, lnb, c->layer_norm_eps);

	const char *to_heads = INTS(g, 0, 0, NH, hs), *to_hidden = INTS(g, 0, 0, H);
	const char *scale = scalar_f(g, 1.0f / sqrtf((float)hs));
	for (int l = 0; l < c->layers; l++, k += 16) {
		/* enc_param_table order: q k v weights, q k v biases, attention output dense and LayerNorm, FFN in,
		 * FFN out, LayerNorm */
		const enc_param *p = &t[k];
		const char *q = linear(g, params, x, &p[0], &p[3]);
		const char *kk = linear(g, params, x, &p[1], &p[4]);
		const char *v = linear(g, params, x, &p[2], &p[5]);
		q = node(g, "Transpose", NULL, IN(op2(g, "Reshape", q, to_heads)), ATTRS(AINTS("perm", 0, 2, 1, 3)));
		kk = node(g, "Transpose", NULL, IN(op2(g, "Reshape", kk, to_heads)), ATTRS(AINTS("perm", 0, 2, 3, 1)));
		v = node(g, "Transpose", NULL, IN(op2(g, "Reshape", v, to_heads)), ATTRS(AINTS("perm", 0, 2, 1, 3)));
		/* scores [B][NH][T][T] = q k^T / sqrt(hs) + mask bias; softmax over the keys */
		const char *s = op2(g, "Add", op2(g, "Mul", op2(g, "MatMul", q, kk), scale), mask_bias);
		const char *prob = node(g, "Softmax", NULL, IN(s), ATTRS(AI("axis", -1)));
		const char *ctx = node(g, "Transpose", NULL, IN(op2(g, "MatMul", prob, v)), ATTRS(AINTS("perm", 0, 2, 1, 3)));
		ctx = op2(g, "Reshape", ctx, to_hidden);
		const char *x1 = layer_norm(g, params, op2(g, "Add", x, linear(g, params, ctx, &p[6], &p[7])), &p[8], &p[9],
					    c->layer_norm_eps);
		const char *h = enc_activation(g, linear(g, params, x1, &p[10], &p[11]), c->act);
		x = layer_norm(g, params, op2(g, "Add", x1, linear(g, params, h, &p[12], &p[13])), &p[14], &p[15],
			       c->layer_norm_eps);
	}
	free(t);
	return x;
}

/* Pooling (model_heads.c model_pool_forward): X [B][T][H] -> [B][count*H], modes in the library's order. */
static const char *pooling_graph(graph *g, int modes, const char *X, const char *maskf)
{
	const char *parts[6];
	int np = 0;
	const char *mask3 = node(g, "Unsqueeze", NULL, IN(maskf, INTS(g, 2)), NOATTRS);   /* [B][T][1] */
	if (modes & MODEL_POOL_CLS)
		parts[np++] = node(g, "Gather", NULL, IN(X, scalar_i(g, 0)), ATTRS(AI("axis", 1)));
	if (modes & MODEL_POOL_MAX) {
		/* pads set to -1e9 before the max */
		const char *keep = cast(g, mask3, DTYPE_BOOL);
		const char *masked = node(g, "Where", NULL, IN(keep, X, scalar_f(g, -1e9f)), NOATTRS);
		parts[np++] = node(g, "ReduceMax", NULL, IN(masked), ATTRS(AINTS("axes", 1), AI("keepdims", 0)));
	}
	if (modes & (MODEL_POOL_MEAN | MODEL_POOL_MEAN_SQRT_LEN)) {
		const char *sum = reduce_sum(g, op2(g, "Mul", X, mask3), 1, 0);                        /* [B][H] */
		const char *count = op2(g, "Max", reduce_sum(g, mask3, 1, 0), scalar_f(g, 1e-9f));     /* [B][1] */
		if (modes & MODEL_POOL_MEAN)
			parts[np++] = op2(g, "Div", sum, count);
		if (modes & MODEL_POOL_MEAN_SQRT_LEN)
			parts[np++] = op2(g, "Div", sum, op1(g, "Sqrt", count));
	}
	if (modes & (MODEL_POOL_WEIGHTEDMEAN | MODEL_POOL_LASTTOKEN)) {
		const char *len = node(g, "Gather", NULL, IN(op1(g, "Shape", maskf), scalar_i(g, 1)), NOATTRS);   /* T */
		if (modes & MODEL_POOL_WEIGHTEDMEAN) {
			/* weights 1..T, pads masked out */
			const char *lenf = cast(g, len, DTYPE_FLOAT);
			const char *w = node(g, "Range", NULL, IN(scalar_f(g, 1.0f), op2(g, "Add", lenf, scalar_f(g, 1.0f)),
								      scalar_f(g, 1.0f)), NOATTRS);
			const char *w3 = op2(g, "Mul", mask3, node(g, "Unsqueeze", NULL, IN(w, INTS(g, 1)), NOATTRS));
			const char *sum = reduce_sum(g, op2(g, "Mul", X, w3), 1, 0);
			parts[np++] = op2(g, "Div", sum, op2(g, "Max", reduce_sum(g, w3, 1, 0), scalar_f(g, 1e-9f)));
		}
		if (modes & MODEL_POOL_LASTTOKEN) {
			/* the last position whose mask is 1 (0 for an empty row, then zeroed by the mask) */
			const char *idx = cast(g, node(g, "Range", NULL, IN(scalar_i(g, 0), len, scalar_i(g, 1)), NOATTRS),
					       DTYPE_FLOAT);
			const char *last = node(g, "ReduceMax", NULL, IN(op2(g, "Mul", maskf, idx)),
						ATTRS(AINTS("axes", 1), AI("keepdims", 1)));                  /* [B][1] */
			const char *pick = op2(g, "Mul", cast(g, op2(g, "Equal", idx, last), DTYPE_FLOAT), maskf);   /* [B][T] */
			const char *pick3 = node(g, "Unsqueeze", NULL, IN(pick, INTS(g, 2)), NOATTRS);
			parts[np++] = reduce_sum(g, op2(g, "Mul", X, pick3), 1, 0);
		}
	}
	return np == 1 ? parts[0] : node(g, "Concat", NULL, np, parts, ATTRS(AI("axis", 1)));
}

static void build(graph *g, st_model *m)
{
	const enc_config *c = &m->enc;
	const float *params = model_params(m);   /* a copy when the weights were used in place */
	static const char *const bt[] = { "batch", "sequence" }, *const bth[] = { "batch", "sequence", NULL },
		*const bd[] = { "batch", NULL };
	value_info(g, PB_GRAPH_INPUT, "input_ids", DTYPE_INT64, 2, bt, NULL);
	value_info(g, PB_GRAPH_INPUT, "attention_mask", DTYPE_INT64, 2, bt, NULL);
	if (c->arch == ENC_BERT)
		value_info(g, PB_GRAPH_INPUT, "token_type_ids", DTYPE_INT64, 2, bt, NULL);

	/* attention mask as a bias on the scores [B][1][1][T]: 0 for tokens, -FLT_MAX for pads */
	const char *maskf = cast(g, "attention_mask", DTYPE_FLOAT);
	const char *bias = op2(g, "Mul", op2(g, "Sub", scalar_f(g, 1.0f), maskf), scalar_f(g, -FLT_MAX));
	bias = node(g, "Unsqueeze", NULL, IN(bias, INTS(g, 1, 2)), NOATTRS);

	const char *X = encoder_graph(g, m, params, bias);
	node(g, "Identity", "token_embeddings", IN(X), NOATTRS);
	const char *y = pooling_graph(g, m->pool_modes, X, maskf);
	for (int k = 0; k < m->nheads; k++) {
		const struct model_head *h = &m->heads[k];
		if (h->kind == MODEL_HEAD_DENSE) {
			char wname[96], bname[96];
			snprintf(wname, sizeof wname, "%s.linear.weight", h->path);
			snprintf(bname, sizeof bname, "%s.linear.bias", h->path);
			/* Gemm with transB: y = x W^T + b, W [out][in] as stored */
			const char *W = weight_add(g, wname, params + h->w_off, h->out, h->in, 0);
			if (h->bias)
				y = node(g, "Gemm", NULL, IN(y, W, weight_add(g, bname, params + h->b_off, h->out, 0, 0)),
					 ATTRS(AI("transB", 1)));
			else
				y = node(g, "Gemm", NULL, IN(y, W), ATTRS(AI("transB", 1)));
			y = head_activation(g, y, h->act);
		} else {
			/* x / max(||x||, 1e-12) */
			const char *norm = node(g, "ReduceL2", NULL, IN(y), ATTRS(AINTS("axes", 1), AI("keepdims", 1)));
			y = op2(g, "Div", y, op2(g, "Max", norm, scalar_f(g, 1e-12f)));
		}
	}
	node(g, "Identity", "sentence_embedding", IN(y), NOATTRS);
	int64_t dims_out[] = { 0, model_dim(m) }, dims_tok[] = { 0, 0, c->hidden };
	value_info(g, PB_GRAPH_OUTPUT, "sentence_embedding", DTYPE_FLOAT, 2, bd, dims_out);
	value_info(g, PB_GRAPH_OUTPUT, "token_embeddings", DTYPE_FLOAT, 3, bth, dims_tok);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* writing */

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

/* rows x cols floats from src (transposed when asked), little-endian, through a scratch buffer */
static int write_weight(FILE *f, const weight *w)
{
	const float *src = w->src;
	float *tmp = NULL;
	if (w->transpose) {
		tmp = malloc(w->raw);
		if (!tmp)
			return -1;
		for (int64_t r = 0; r < w->rows; r++)
			for (int64_t c = 0; c < w->cols; c++)
				tmp[(size_t)c * w->rows + r] = src[(size_t)r * w->cols + c];
		src = tmp;
	}
	int rc = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	rc = write_all(f, src, w->raw);
#else
	size_t n = w->raw / sizeof(float);
	for (size_t i = 0; i < n && !rc; i += 4096) {
		onnx_buf b = { 0 };
		put_f32_le(&b, src + i, n - i < 4096 ? n - i : 4096);
		rc = write_all(f, b.p, b.n);
		onnx_buf_free(&b);
	}
#endif
	free(tmp);
	return rc;
}

int onnx_export(st_model *m, const char *path, int *too_large, char *err, size_t errlen)
{
	*too_large = 0;
	graph g = { 0 };
	build(&g, m);

	/* the model's fields before the graph, and the graph's length */
	onnx_buf head = { 0 }, graph_head = { 0 };
	onnx_put_int(&head, PB_MODEL_IR_VERSION, ONNX_IR_VERSION);
	onnx_put_str(&head, PB_MODEL_PRODUCER_NAME, "st");
	onnx_put_str(&head, PB_MODEL_PRODUCER_VERSION, "1");
	onnx_put_str(&head, PB_MODEL_DOC_STRING, "sentence-transformers model exported by st-export: inputs input_ids, "
		     "attention_mask (and token_type_ids for BERT), outputs sentence_embedding and token_embeddings");
	onnx_buf opset = { 0 };
	onnx_put_str(&opset, PB_OPSET_DOMAIN, "");
	onnx_put_int(&opset, PB_OPSET_VERSION, ONNX_OPSET);
	put_msg(&head, PB_MODEL_OPSET_IMPORT, &opset);
	onnx_put_str(&graph_head, PB_GRAPH_NAME, "st");
	uint64_t graph_len = graph_head.n + g.nodes.n + g.io.n + g.consts.n;
	for (int i = 0; i < g.nw; i++) {
		uint64_t len = g.w[i].head.n + g.w[i].raw;
		graph_len += varint_len((uint64_t)PB_GRAPH_INITIALIZER << 3 | WIRE_LEN) + varint_len(len) + len;
	}
	onnx_put_tag(&head, PB_MODEL_GRAPH, WIRE_LEN);
	onnx_put_varint(&head, graph_len);
	uint64_t total = head.n + graph_len;
	int rc = -1;
	char *tmp = NULL;
	if (total > 0x7fffffffULL) {
		*too_large = 1;
		snprintf(err, errlen, "the ONNX file would take %.2f GB: one protobuf file holds at most 2 GB (ONNX's "
			 "external data is not supported)", total / 1e9);
		goto out;
	}

	size_t tmplen = strlen(path) + 32;
	tmp = xmalloc(tmplen);
	snprintf(tmp, tmplen, "%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	int bad = write_all(f, head.p, head.n) || write_all(f, graph_head.p, graph_head.n) ||
		  write_all(f, g.nodes.p, g.nodes.n) || write_all(f, g.io.p, g.io.n) || write_all(f, g.consts.p, g.consts.n);
	for (int i = 0; i < g.nw && !bad; i++) {
		onnx_buf prefix = { 0 };
		onnx_put_tag(&prefix, PB_GRAPH_INITIALIZER, WIRE_LEN);
		onnx_put_varint(&prefix, g.w[i].head.n + g.w[i].raw);
		bad = write_all(f, prefix.p, prefix.n) || write_all(f, g.w[i].head.p, g.w[i].head.n) ||
		      write_weight(f, &g.w[i]);
		onnx_buf_free(&prefix);
	}
	bad = bad || fflush(f) != 0 || fsync(fileno(f)) != 0;
	int saved = errno;
	if (fclose(f) != 0 && !bad)
		bad = 1, saved = errno;
	if (!bad && rename(tmp, path) != 0)
		bad = 1, saved = errno;
	if (bad) {
		unlink(tmp);
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(saved));
		goto out;
	}
	rc = 0;
out:
	free(tmp);
	onnx_buf_free(&head);
	onnx_buf_free(&graph_head);
	graph_free(&g);
	return rc;
}
