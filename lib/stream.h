/* stream.h: the record stream between st-* stages (docs/stream-format.md).
 *
 * A record is a map. Values form a small tree (st_val). Tensors are typed little-endian blobs with a
 * shape; in msgpack they travel as the map {"dtype": "f32", "shape": [..], "data": <bin>}, in JSON Lines
 * as nested arrays. Input is msgpack or JSON Lines, plain or zstd-compressed, detected from the first
 * bytes; output is msgpack, or JSON Lines with --json. */
#ifndef ST_STREAM_H
#define ST_STREAM_H

#include <stddef.h>
#include <stdint.h>

enum st_type { ST_NIL, ST_BOOL, ST_INT, ST_FLOAT, ST_STR, ST_ARRAY, ST_MAP, ST_TENSOR };
enum st_dtype { ST_F32, ST_I32, ST_I64, ST_F64, ST_U8 };

#define ST_MAX_DIMS 8

typedef struct st_tensor {
	enum st_dtype dtype;
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	size_t count;   /* product of shape */
	void *data;     /* count elements of dtype, owned, 64-byte aligned */
} st_tensor;

typedef struct st_val st_val;
struct st_val {
	enum st_type type;
	union {
		int b;
		int64_t i;
		double f;
		struct { char *s; size_t len; } str;            /* NUL-terminated too */
		struct { st_val **items; size_t n, cap; } arr;
		struct { char **keys; st_val **vals; size_t n, cap; } map;   /* insertion order kept */
		st_tensor t;
	};
};

/* ---- values ---- */
st_val *st_nil(void);
st_val *st_bool(int b);
st_val *st_int(int64_t i);
st_val *st_float(double f);
st_val *st_str(const char *s);
st_val *st_strn(const char *s, size_t len);
st_val *st_array(void);
st_val *st_map(void);
/* A zero-filled tensor; shape has ndim entries. */
st_val *st_tensor_new(enum st_dtype dtype, int ndim, const int64_t *shape);
void st_free(st_val *v);
st_val *st_copy(const st_val *v);

void st_push(st_val *arr, st_val *item);            /* takes ownership */
void st_set(st_val *map, const char *key, st_val *v); /* takes ownership; replaces (and frees) an old value */
st_val *st_get(const st_val *map, const char *key);  /* NULL when absent or map is not a map */
void st_del(st_val *map, const char *key);

/* Typed accessors for a key; NULL when absent or of another type. */
st_tensor *st_get_tensor(const st_val *map, const char *key);
const char *st_get_str(const st_val *map, const char *key);
/* Number (int or float) under key into *out; returns 0 when present and numeric, -1 otherwise. */
int st_get_num(const st_val *map, const char *key, double *out);
int st_num(const st_val *v, double *out);   /* same for a value */

size_t st_dtype_size(enum st_dtype t);
const char *st_dtype_name(enum st_dtype t);
#define ST_F32P(t) ((float *)(t)->data)
#define ST_I32P(t) ((int32_t *)(t)->data)

/* ---- examples (the JSON view: {"texts": [...], "label": x}, or a Hugging Face datasets row whose string
 * columns are the texts in column order and whose "label" or "score" is the label) ---- */
/* Fills texts[] (up to max) with pointers into rec; returns the number of texts, or -1 when rec has none. */
int st_example_texts(const st_val *rec, const char **texts, size_t *lens, int max);
/* The label value ("label", else "score"), or NULL. */
st_val *st_example_label(const st_val *rec);

/* ---- reading ---- */
typedef struct st_reader st_reader;
/* name is used in messages ("stdin" or a file name). */
st_reader *st_reader_open(int fd, const char *name);
/* With skip_bad, a malformed JSON line is reported as a warning and skipped (msgpack cannot resync:
 * a malformed msgpack record always ends the stream with an error). */
void st_reader_skip_bad(st_reader *r, int skip);
/* The next record (a map), or NULL at end of input. Bad data dies with EX_DATAERR naming the record. */
st_val *st_read(st_reader *r);
/* 1-based number of the last record returned, and "record N" or "line N" for messages. */
long st_reader_count(const st_reader *r);
const char *st_reader_where(const st_reader *r);
int st_reader_is_json(const st_reader *r);
void st_reader_close(st_reader *r);

/* ---- writing ---- */
typedef struct st_writer st_writer;
/* json != 0 writes JSON Lines. A closed downstream pipe (EPIPE) exits 0 quietly. */
st_writer *st_writer_open(int fd, int json);
/* Adds "v": ST_FORMAT_VERSION when the record has no "v". */
void st_write(st_writer *w, const st_val *rec);
void st_writer_flush(st_writer *w);
void st_writer_close(st_writer *w);

/* Parse one JSON text (a record) into a value, typing known keys as tensors; NULL and a message in
 * err (size errlen) on failure. */
st_val *st_from_json(const char *text, size_t len, char *err, size_t errlen);
/* Serialize a value as JSON (tensors as nested arrays) into a malloc'd string. */
char *st_to_json(const st_val *v, size_t *len);

#endif
