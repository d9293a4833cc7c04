/* stream.c: the record stream (docs/stream-format.md): a value tree, msgpack and JSON Lines readers with
 * zstd detection, and the writers. */
#define _GNU_SOURCE
#include "stream.h"
#include "st.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

/* ------------------------------------------------------------------------------------------------ values */

static st_val *val_new(enum st_type t)
{
	st_val *v = xcalloc(1, sizeof *v);
	v->type = t;
	return v;
}

st_val *st_nil(void) { return val_new(ST_NIL); }
st_val *st_bool(int b) { st_val *v = val_new(ST_BOOL); v->b = !!b; return v; }
st_val *st_int(int64_t i) { st_val *v = val_new(ST_INT); v->i = i; return v; }
st_val *st_float(double f) { st_val *v = val_new(ST_FLOAT); v->f = f; return v; }
st_val *st_array(void) { return val_new(ST_ARRAY); }
st_val *st_map(void) { return val_new(ST_MAP); }

st_val *st_strn(const char *s, size_t len)
{
	st_val *v = val_new(ST_STR);
	v->str.s = xmalloc(len + 1);
	if (len)   /* msgpack-c gives an empty string a NULL pointer */
		memcpy(v->str.s, s, len);
	v->str.s[len] = 0;
	v->str.len = len;
	return v;
}

st_val *st_str(const char *s) { return st_strn(s, strlen(s)); }

size_t st_dtype_size(enum st_dtype t)
{
	switch (t) {
	case ST_F32: case ST_I32: return 4;
	case ST_I64: case ST_F64: return 8;
	case ST_U8: return 1;
	}
	return 0;
}

static const char *dtype_names[] = { [ST_F32] = "f32", [ST_I32] = "i32", [ST_I64] = "i64", [ST_F64] = "f64", [ST_U8] = "u8" };

const char *st_dtype_name(enum st_dtype t) { return dtype_names[t]; }

static int dtype_parse(const char *s, size_t len, enum st_dtype *out)
{
	for (int i = 0; i < (int)(sizeof dtype_names / sizeof *dtype_names); i++)
		if (strlen(dtype_names[i]) == len && !memcmp(dtype_names[i], s, len)) {
			*out = i;
			return 0;
		}
	return -1;
}

st_val *st_tensor_new(enum st_dtype dtype, int ndim, const int64_t *shape)
{
	st_val *v = val_new(ST_TENSOR);
	st_tensor *t = &v->t;
	t->dtype = dtype;
	t->ndim = ndim;
	t->count = 1;
	for (int i = 0; i < ndim; i++) {
		t->shape[i] = shape[i];
		t->count = xmul(t->count, (size_t)shape[i]);
	}
	size_t bytes = xmul(t->count, st_dtype_size(dtype));
	size_t rounded = (bytes + 63) / 64 * 64;
	t->data = aligned_alloc(64, rounded ? rounded : 64);
	if (!t->data)
		die(EX_OSERR, "out of memory (tensor of %zu bytes)", bytes);
	memset(t->data, 0, rounded ? rounded : 64);
	return v;
}

void st_free(st_val *v)
{
	if (!v)
		return;
	switch (v->type) {
	case ST_STR: free(v->str.s); break;
	case ST_ARRAY:
		for (size_t i = 0; i < v->arr.n; i++)
			st_free(v->arr.items[i]);
		free(v->arr.items);
		break;
	case ST_MAP:
		for (size_t i = 0; i < v->map.n; i++) {
			free(v->map.keys[i]);
			st_free(v->map.vals[i]);
		}
		free(v->map.keys);
		free(v->map.vals);
		break;
	case ST_TENSOR: free(v->t.data); break;
	default: break;
	}
	free(v);
}

st_val *st_copy(const st_val *v)
{
	st_val *c;
	switch (v->type) {
	case ST_STR: return st_strn(v->str.s, v->str.len);
	case ST_ARRAY:
		c = st_array();
		for (size_t i = 0; i < v->arr.n; i++)
			st_push(c, st_copy(v->arr.items[i]));
		return c;
	case ST_MAP:
		c = st_map();
		for (size_t i = 0; i < v->map.n; i++)
			st_set(c, v->map.keys[i], st_copy(v->map.vals[i]));
		return c;
	case ST_TENSOR:
		c = st_tensor_new(v->t.dtype, v->t.ndim, v->t.shape);
		memcpy(c->t.data, v->t.data, v->t.count * st_dtype_size(v->t.dtype));
		return c;
	default:
		c = val_new(v->type);
		*c = *v;
		return c;
	}
}

void st_push(st_val *arr, st_val *item)
{
	if (arr->arr.n == arr->arr.cap) {
		arr->arr.cap = arr->arr.cap ? arr->arr.cap * 2 : 4;
		arr->arr.items = xrealloc(arr->arr.items, arr->arr.cap * sizeof *arr->arr.items);
	}
	arr->arr.items[arr->arr.n++] = item;
}

static long map_index(const st_val *map, const char *key)
{
	if (!map || map->type != ST_MAP)
		return -1;
	for (size_t i = 0; i < map->map.n; i++)
		if (!strcmp(map->map.keys[i], key))
			return (long)i;
	return -1;
}

static void map_append(st_val *map, char *key, st_val *v)
{
	if (map->map.n == map->map.cap) {
		map->map.cap = map->map.cap ? map->map.cap * 2 : 8;
		map->map.keys = xrealloc(map->map.keys, map->map.cap * sizeof *map->map.keys);
		map->map.vals = xrealloc(map->map.vals, map->map.cap * sizeof *map->map.vals);
	}
	map->map.keys[map->map.n] = key;
	map->map.vals[map->map.n++] = v;
}

void st_set(st_val *map, const char *key, st_val *v)
{
	long i = map_index(map, key);
	if (i >= 0) {
		st_free(map->map.vals[i]);
		map->map.vals[i] = v;
		return;
	}
	map_append(map, xstrdup(key), v);
}

st_val *st_get(const st_val *map, const char *key)
{
	long i = map_index(map, key);
	return i >= 0 ? map->map.vals[i] : NULL;
}

void st_del(st_val *map, const char *key)
{
	long i = map_index(map, key);
	if (i < 0)
		return;
	free(map->map.keys[i]);
	st_free(map->map.vals[i]);
	memmove(map->map.keys + i, map->map.keys + i + 1, (map->map.n - i - 1) * sizeof *map->map.keys);
	memmove(map->map.vals + i, map->map.vals + i + 1, (map->map.n - i - 1) * sizeof *map->map.vals);
	map->map.n--;
}

st_tensor *st_get_tensor(const st_val *map, const char *key)
{
	st_val *v = st_get(map, key);
	return v && v->type == ST_TENSOR ? &v->t : NULL;
}

const char *st_get_str(const st_val *map, const char *key)
{
	st_val *v = st_get(map, key);
	return v && v->type == ST_STR ? v->str.s : NULL;
}

int st_num(const st_val *v, double *out)
{
	if (!v)
		return -1;
	if (v->type == ST_INT) {
		*out = (double)v->i;
		return 0;
	}
	if (v->type == ST_FLOAT) {
		*out = v->f;
		return 0;
	}
	return -1;
}

int st_get_num(const st_val *map, const char *key, double *out) { return st_num(st_get(map, key), out); }

/* ------------------------------------------------------------------------------------------------ examples */

static int is_meta_key(const char *k)
{
	return !strcmp(k, "label") || !strcmp(k, "score") || !strcmp(k, "v") || !strcmp(k, "kind");
}

int st_example_texts(const st_val *rec, const char **texts, size_t *lens, int max)
{
	st_val *t = st_get(rec, "texts");
	int n = 0;
	if (t) {
		if (t->type != ST_ARRAY)
			return -1;
		for (size_t i = 0; i < t->arr.n; i++) {
			st_val *s = t->arr.items[i];
			if (s->type != ST_STR)
				return -1;
			if (n < max) {
				texts[n] = s->str.s;
				if (lens)
					lens[n] = s->str.len;
			}
			n++;
		}
		return n;
	}
	/* a Hugging Face datasets row: string columns are the texts, in column order */
	if (!rec || rec->type != ST_MAP)
		return -1;
	for (size_t i = 0; i < rec->map.n; i++) {
		st_val *s = rec->map.vals[i];
		if (s->type != ST_STR || is_meta_key(rec->map.keys[i]))
			continue;
		if (n < max) {
			texts[n] = s->str.s;
			if (lens)
				lens[n] = s->str.len;
		}
		n++;
	}
	return n ? n : -1;
}

st_val *st_example_label(const st_val *rec)
{
	st_val *l = st_get(rec, "label");
	return l ? l : st_get(rec, "score");
}

/* ------------------------------------------------------------------------------------------------ input bytes */

#define ZSTD_MAGIC 0xFD2FB528u

struct st_reader {
	const char *name;
	int fd;
	int eof;            /* the fd is exhausted */
	/* zstd */
	ZSTD_DCtx *zctx;
	unsigned char *zin;
	ZSTD_inBuffer zbuf;
	size_t zlast;       /* last return of ZSTD_decompressStream: 0 at a frame end */
	int zstarted;
	/* decoded bytes not yet consumed */
	char *buf;
	size_t len, pos, cap;
	int format;         /* 0 undecided, 1 msgpack, 2 JSON Lines, -1 empty */
	int skip_bad;
	long count;         /* records returned */
	long line;          /* JSON: line number of the last line read */
	char where[64];
};

static struct st_writer *die_flush_writer;
void st_writer_flush(struct st_writer *w);

static size_t fd_read(st_reader *r, void *dst, size_t cap)
{
	/* Output waits for no input: a stage that is about to block on its reader first hands on what it has
	 * written, or a pipeline that loops back (st-step publishing weights st-forward waits on) would stall. */
	if (die_flush_writer)
		st_writer_flush(die_flush_writer);
	for (;;) {
		ssize_t n = read(r->fd, dst, cap);
		if (n >= 0) {
			if (n == 0)
				r->eof = 1;
			return (size_t)n;
		}
		if (errno != EINTR)
			die(EX_IOERR, "cannot read %s: %s", r->name, strerror(errno));
	}
}

/* Reads up to cap decoded bytes; 0 only at the end of input. */
static size_t src_read(st_reader *r, char *dst, size_t cap)
{
	if (!r->zctx) {
		if (r->eof)
			return 0;
		return fd_read(r, dst, cap);
	}
	ZSTD_outBuffer out = { dst, cap, 0 };
	while (out.pos == 0) {
		if (r->zbuf.pos == r->zbuf.size) {
			if (r->eof)
				break;
			r->zbuf.size = fd_read(r, r->zin, ZSTD_DStreamInSize());
			r->zbuf.pos = 0;
			if (r->zbuf.size == 0) {
				if (r->zlast != 0)
					break;   /* flush below may still produce output */
				break;
			}
		}
		size_t ret = ZSTD_decompressStream(r->zctx, &out, &r->zbuf);
		if (ZSTD_isError(ret))
			die(EX_DATAERR, "%s: corrupt zstd data: %s", r->name, ZSTD_getErrorName(ret));
		r->zlast = ret;
		if (ret == 0 && r->zbuf.pos == r->zbuf.size && r->eof)
			break;
	}
	if (out.pos == 0 && r->eof && r->zlast != 0)
		die(EX_DATAERR, "%s: truncated zstd stream (after record %ld)", r->name, r->count);
	return out.pos;
}

/* Makes at least `need` bytes available at buf+pos unless the input ends; returns the bytes available. */
static size_t fill(st_reader *r, size_t need)
{
	if (r->pos > 0 && r->len - r->pos < need) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	while (r->len - r->pos < need) {
		if (r->len == r->cap)
			r->buf = xrealloc(r->buf, r->cap = r->cap ? r->cap * 2 : 1 << 16);
		size_t n = src_read(r, r->buf + r->len, r->cap - r->len);
		if (n == 0)
			break;
		r->len += n;
	}
	return r->len - r->pos;
}

st_reader *st_reader_open(int fd, const char *name)
{
	st_reader *r = xcalloc(1, sizeof *r);
	r->fd = fd;
	r->name = name;
	/* zstd is told by its magic number in the first four raw bytes */
	unsigned char head[4];
	size_t got = 0;
	while (got < 4) {
		size_t n = fd_read(r, head + got, 4 - got);
		if (n == 0)
			break;
		got += n;
	}
	uint32_t magic = got == 4 ? head[0] | head[1] << 8 | head[2] << 16 | (uint32_t)head[3] << 24 : 0;
	if (magic == ZSTD_MAGIC) {
		r->zctx = ZSTD_createDCtx();
		r->zin = xmalloc(ZSTD_DStreamInSize());
		memcpy(r->zin, head, 4);
		r->zbuf = (ZSTD_inBuffer){ r->zin, 4, 0 };
		r->zlast = 1;
	} else {
		r->buf = xmalloc(r->cap = 1 << 16);
		memcpy(r->buf, head, got);
		r->len = got;
	}
	return r;
}

void st_reader_skip_bad(st_reader *r, int skip) { r->skip_bad = skip; }
long st_reader_count(const st_reader *r) { return r->count; }
int st_reader_is_json(const st_reader *r) { return r->format == 2; }

const char *st_reader_where(const st_reader *r)
{
	st_reader *w = (st_reader *)r;
	if (r->format == 2)
		snprintf(w->where, sizeof w->where, "line %ld", r->line);
	else
		snprintf(w->where, sizeof w->where, "record %ld", r->count);
	return w->where;
}

void st_reader_close(st_reader *r)
{
	if (!r)
		return;
	if (r->zctx)
		ZSTD_freeDCtx(r->zctx);
	free(r->zin);
	free(r->buf);
	free(r);
}

/* Decides between msgpack and JSON Lines from the first non-blank byte. */
static void detect(st_reader *r)
{
	for (;;) {
		if (fill(r, 1) == 0) {
			r->format = -1;
			return;
		}
		char c = r->buf[r->pos];
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
			if (c == '\n')
				r->line++;
			r->pos++;
			continue;
		}
		break;
	}
	if (r->buf[r->pos] == '{') {
		r->format = 2;
		return;
	}
	r->format = 1;
}

/* ------------------------------------------------------------------------------------------------ UTF-8 */

static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		int k;
		unsigned min;
		if ((c & 0xE0) == 0xC0) { k = 1; min = 0x80; c &= 0x1F; }
		else if ((c & 0xF0) == 0xE0) { k = 2; min = 0x800; c &= 0x0F; }
		else if ((c & 0xF8) == 0xF0) { k = 3; min = 0x10000; c &= 0x07; }
		else return 0;
		if (i + k >= n)
			return 0;   /* truncated sequence */
		for (int j = 1; j <= k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return 0;
			c = c << 6 | (s[i + j] & 0x3F);
		}
		if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
			return 0;
		i += k + 1;
	}
	return 1;
}

/* ------------------------------------------------------------------------------------------------ msgpack in */

static int mp_is_str(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && !memcmp(o->via.str.ptr, s, n);
}

/* {"dtype", "shape", "data": bin} is a tensor; returns NULL when o is not of that shape, dies when it is
 * a malformed tensor. */
static st_val *mp_tensor(st_reader *r, const msgpack_object *o)
{
	const msgpack_object *dtype = NULL, *shape = NULL, *data = NULL;
	if (o->via.map.size != 3)
		return NULL;
	for (uint32_t i = 0; i < 3; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];
		if (mp_is_str(&kv->key, "dtype")) dtype = &kv->val;
		else if (mp_is_str(&kv->key, "shape")) shape = &kv->val;
		else if (mp_is_str(&kv->key, "data")) data = &kv->val;
	}
	if (!dtype || !shape || !data || data->type != MSGPACK_OBJECT_BIN)
		return NULL;
	enum st_dtype dt;
	if (dtype->type != MSGPACK_OBJECT_STR || dtype_parse(dtype->via.str.ptr, dtype->via.str.size, &dt) < 0)
		die(EX_DATAERR, "%s, %s: tensor with an unknown dtype", r->name, st_reader_where(r));
	if (shape->type != MSGPACK_OBJECT_ARRAY || shape->via.array.size > ST_MAX_DIMS)
		die(EX_DATAERR, "%s, %s: tensor shape is not an array of at most %d sizes", r->name, st_reader_where(r), ST_MAX_DIMS);
	int64_t dims[ST_MAX_DIMS];
	size_t count = 1;
	int nd = (int)shape->via.array.size;
	for (int i = 0; i < nd; i++) {
		const msgpack_object *d = &shape->via.array.ptr[i];
		if (d->type != MSGPACK_OBJECT_POSITIVE_INTEGER || d->via.u64 > (1ull << 40))
			die(EX_DATAERR, "%s, %s: tensor shape holds a bad size", r->name, st_reader_where(r));
		dims[i] = (int64_t)d->via.u64;
		if (__builtin_mul_overflow(count, (size_t)dims[i], &count))
			die(EX_DATAERR, "%s, %s: tensor shape overflows", r->name, st_reader_where(r));
	}
	size_t bytes;
	if (__builtin_mul_overflow(count, st_dtype_size(dt), &bytes) || bytes != data->via.bin.size)
		die(EX_DATAERR, "%s, %s: tensor data holds %u bytes, its dtype and shape need %zu", r->name,
		    st_reader_where(r), data->via.bin.size, count * st_dtype_size(dt));
	st_val *v = st_tensor_new(dt, nd, dims);
	if (bytes)
		memcpy(v->t.data, data->via.bin.ptr, bytes);
	return v;
}

static st_val *from_mp(st_reader *r, const msgpack_object *o, int depth)
{
	if (depth > 64)
		die(EX_DATAERR, "%s, %s: nested too deeply", r->name, st_reader_where(r));
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: return st_nil();
	case MSGPACK_OBJECT_BOOLEAN: return st_bool(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			die(EX_DATAERR, "%s, %s: integer out of range", r->name, st_reader_where(r));
		return st_int((int64_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return st_int(o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return st_float(o->via.f64);
	case MSGPACK_OBJECT_STR:
		if (!utf8_valid((const unsigned char *)o->via.str.ptr, o->via.str.size))
			die(EX_DATAERR, "%s, %s: invalid UTF-8 in a string", r->name, st_reader_where(r));
		return st_strn(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN: {
		int64_t n = o->via.bin.size;
		st_val *v = st_tensor_new(ST_U8, 1, &n);
		if (n)
			memcpy(v->t.data, o->via.bin.ptr, n);
		return v;
	}
	case MSGPACK_OBJECT_ARRAY: {
		st_val *a = st_array();
		for (uint32_t i = 0; i < o->via.array.size; i++)
			st_push(a, from_mp(r, &o->via.array.ptr[i], depth + 1));
		return a;
	}
	case MSGPACK_OBJECT_MAP: {
		st_val *t = mp_tensor(r, o);
		if (t)
			return t;
		st_val *m = st_map();
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			if (kv->key.type != MSGPACK_OBJECT_STR)
				die(EX_DATAERR, "%s, %s: map key is not a string", r->name, st_reader_where(r));
			if (!utf8_valid((const unsigned char *)kv->key.via.str.ptr, kv->key.via.str.size))
				die(EX_DATAERR, "%s, %s: invalid UTF-8 in a map key", r->name, st_reader_where(r));
			char *key = xmalloc(kv->key.via.str.size + 1);
			if (kv->key.via.str.size)
				memcpy(key, kv->key.via.str.ptr, kv->key.via.str.size);
			key[kv->key.via.str.size] = 0;
			if (map_index(m, key) >= 0)
				die(EX_DATAERR, "%s, %s: duplicate key \"%s\"", r->name, st_reader_where(r), key);
			map_append(m, key, from_mp(r, &kv->val, depth + 1));
		}
		return m;
	}
	default:
		die(EX_DATAERR, "%s, %s: unsupported msgpack type %d", r->name, st_reader_where(r), o->type);
	}
}

/* Big-endian unsigned integer of n bytes (1, 2 or 4). */
static uint64_t be_uint(const unsigned char *p, int n)
{
	uint64_t x = 0;
	for (int i = 0; i < n; i++)
		x = x << 8 | p[i];
	return x;
}

/* Length in bytes of the msgpack record at buf+pos, read from its headers alone, reading more input as
 * needed; 0 at a clean end of input. An array or map adds its element count to the items still to come, so
 * no count is believed before the bytes of its elements have arrived: msgpack-c allocates a whole array when
 * it meets the header, and a header claiming 4G elements would cost it 100 GiB. Decoding only a record whose
 * bytes are all here bounds what it allocates by the input's size. */
static size_t mp_extent(st_reader *r)
{
	size_t off = 0;
	uint64_t pending = 1;   /* objects still to walk */
#define NEED(n) do { if (r->len - r->pos < off + (n) && fill(r, off + (n)) < off + (n)) goto truncated; } while (0)
	while (pending) {
		if (r->len - r->pos < off + 1 && fill(r, off + 1) < off + 1) {
			if (off == 0)
				return 0;
			goto truncated;
		}
		unsigned char c = (unsigned char)r->buf[r->pos + off++];
		pending--;
		uint64_t items = 0, skip = 0;
		int lenbytes = 0, extra = 0, is_items = 0, pairs = 0;
		if (c <= 0x7f || c >= 0xe0)
			continue;
		if (c <= 0x8f)
			items = 2 * (uint64_t)(c & 15);
		else if (c <= 0x9f)
			items = c & 15;
		else if (c <= 0xbf)
			skip = c & 31;
		else
			switch (c) {
			case 0xc0: case 0xc2: case 0xc3: break;
			case 0xc4: case 0xd9: lenbytes = 1; break;
			case 0xc5: case 0xda: lenbytes = 2; break;
			case 0xc6: case 0xdb: lenbytes = 4; break;
			case 0xc7: lenbytes = 1, extra = 1; break;
			case 0xc8: lenbytes = 2, extra = 1; break;
			case 0xc9: lenbytes = 4, extra = 1; break;
			case 0xca: skip = 4; break;
			case 0xcb: skip = 8; break;
			case 0xcc: case 0xd0: skip = 1; break;
			case 0xcd: case 0xd1: skip = 2; break;
			case 0xce: case 0xd2: skip = 4; break;
			case 0xcf: case 0xd3: skip = 8; break;
			case 0xd4: skip = 2; break;
			case 0xd5: skip = 3; break;
			case 0xd6: skip = 5; break;
			case 0xd7: skip = 9; break;
			case 0xd8: skip = 17; break;
			case 0xdc: lenbytes = 2, is_items = 1; break;
			case 0xdd: lenbytes = 4, is_items = 1; break;
			case 0xde: lenbytes = 2, is_items = 1, pairs = 1; break;
			case 0xdf: lenbytes = 4, is_items = 1, pairs = 1; break;
			default: die(EX_DATAERR, "%s, record %ld: malformed msgpack", r->name, r->count + 1);
			}
		if (lenbytes) {
			NEED(lenbytes);
			uint64_t n = be_uint((const unsigned char *)r->buf + r->pos + off, lenbytes);
			off += lenbytes;
			if (is_items)
				items = pairs ? 2 * n : n;
			else
				skip = n + extra;
		}
		pending += items;
		if (skip) {
			NEED(skip);
			off += skip;
		}
	}
#undef NEED
	return off;
truncated:
	die(EX_DATAERR, "%s, record %ld: truncated msgpack record", r->name, r->count + 1);
}

static st_val *read_msgpack(st_reader *r)
{
	size_t n = mp_extent(r);
	if (n == 0)
		return NULL;
	msgpack_unpacked res;
	msgpack_unpacked_init(&res);
	size_t off = 0;
	msgpack_unpack_return ret = msgpack_unpack_next(&res, r->buf + r->pos, n, &off);
	if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
		die(EX_OSERR, "out of memory reading record %ld", r->count + 1);
	if (ret != MSGPACK_UNPACK_SUCCESS || off != n)
		die(EX_DATAERR, "%s, record %ld: malformed msgpack", r->name, r->count + 1);
	r->count++;
	if (res.data.type != MSGPACK_OBJECT_MAP)
		die(EX_DATAERR, "%s, record %ld: a record must be a map", r->name, r->count);
	st_val *v = from_mp(r, &res.data, 0);
	msgpack_unpacked_destroy(&res);
	r->pos += n;
	if (v->type != ST_MAP)
		die(EX_DATAERR, "%s, record %ld: a record must be a map, not a tensor", r->name, r->count);
	return v;
}

/* ------------------------------------------------------------------------------------------------ JSON in */

/* Keys whose nested number arrays become typed tensors. */
static const struct { const char *key; enum st_dtype dtype; } typed_keys[] = {
	{ "input_ids", ST_I32 }, { "lengths", ST_I32 }, { "prompt_lengths", ST_I32 }, { "embeddings", ST_F32 },
	{ "grad", ST_F32 },
	{ "labels", ST_F32 }, { "token_embeddings", ST_F32 },
};

static int typed_key(const char *key, enum st_dtype *dt)
{
	for (size_t i = 0; i < sizeof typed_keys / sizeof *typed_keys; i++)
		if (!strcmp(key, typed_keys[i].key)) {
			*dt = typed_keys[i].dtype;
			return 1;
		}
	return 0;
}

/* Shape of a rectangular nested array of numbers; -1 when ragged or not numeric. */
static int json_shape(json_t *j, int depth, int64_t *shape, int *ndim)
{
	if (json_is_number(j)) {
		if (*ndim < 0)
			*ndim = depth;
		return *ndim == depth ? 0 : -1;
	}
	if (!json_is_array(j) || depth >= ST_MAX_DIMS)
		return -1;
	int64_t n = (int64_t)json_array_size(j);
	if (*ndim >= 0 && depth >= *ndim)
		return -1;
	if (shape[depth] < 0)
		shape[depth] = n;
	else if (shape[depth] != n)
		return -1;
	if (n == 0) {
		/* an empty array ends the shape here */
		if (*ndim < 0)
			*ndim = depth + 1;
		return *ndim == depth + 1 ? 0 : -1;
	}
	for (size_t i = 0; i < (size_t)n; i++)
		if (json_shape(json_array_get(j, i), depth + 1, shape, ndim) < 0)
			return -1;
	return 0;
}

/* Where a JSON record failed to convert: the first bad typed value, and the key it was under. */
typedef struct {
	char *err;
	size_t errlen;
	const char *key;
	int failed;
} json_ctx;

/* Stores one JSON number in a tensor of a fixed dtype, refusing what the dtype cannot hold as it is: an
 * integer dtype takes integers in its range only (4294967301 is not 5 in int32, 7.9 is not 7), float32 takes
 * finite numbers that stay finite. */
static void json_fill(json_ctx *c, json_t *j, st_tensor *t, size_t *k)
{
	if (c->failed)
		return;
	if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++)
			json_fill(c, json_array_get(j, i), t, k);
		return;
	}
	double x = json_number_value(j);
	int integral = json_is_integer(j) || (x == x && floor(x) == x && fabs(x) < 9.2e18);
	json_int_t n = json_is_integer(j) ? json_integer_value(j) : integral ? (json_int_t)x : 0;
	const char *why = NULL;
	switch (t->dtype) {
	case ST_F32:
		if (!isfinite((float)x))
			why = "does not fit in float32";
		((float *)t->data)[*k] = (float)x;
		break;
	case ST_F64: ((double *)t->data)[*k] = x; break;
	case ST_I32:
		if (!integral)
			why = "is not an integer (int32)";
		else if (n < INT32_MIN || n > INT32_MAX)
			why = "is out of the range of int32";
		else
			((int32_t *)t->data)[*k] = (int32_t)n;
		break;
	case ST_I64:
		if (!integral)
			why = "is not an integer (int64)";
		else
			((int64_t *)t->data)[*k] = n;
		break;
	case ST_U8:
		if (!integral || n < 0 || n > 255)
			why = "is not an integer from 0 to 255 (uint8)";
		else
			((uint8_t *)t->data)[*k] = (uint8_t)n;
		break;
	}
	if (why) {
		char num[64];
		if (json_is_integer(j))
			snprintf(num, sizeof num, "%lld", (long long)json_integer_value(j));
		else if (snprintf(num, sizeof num, "%.15g", x), strtod(num, NULL) != x)
			snprintf(num, sizeof num, "%.17g", x);
		snprintf(c->err, c->errlen, "\"%s\": %s %s", c->key, num, why);
		c->failed = 1;
	}
	(*k)++;
}

static st_val *from_json(json_ctx *c, json_t *j, int typed, enum st_dtype dt);

/* A known key's value: one tensor when rectangular, else an array of tensors (ragged rows). */
static st_val *json_typed(json_ctx *c, json_t *j, enum st_dtype dt)
{
	int64_t shape[ST_MAX_DIMS];
	int ndim = -1;
	for (int i = 0; i < ST_MAX_DIMS; i++)
		shape[i] = -1;
	if (json_is_array(j) && json_shape(j, 0, shape, &ndim) == 0) {
		st_val *v = st_tensor_new(dt, ndim, shape);
		size_t k = 0;
		json_fill(c, j, &v->t, &k);
		return v;
	}
	if (json_is_array(j)) {
		st_val *a = st_array();
		for (size_t i = 0; i < json_array_size(j); i++)
			st_push(a, from_json(c, json_array_get(j, i), 1, dt));
		return a;
	}
	return from_json(c, j, 0, dt);
}

static st_val *from_json(json_ctx *c, json_t *j, int typed, enum st_dtype dt)
{
	if (typed)
		return json_typed(c, j, dt);
	switch (json_typeof(j)) {
	case JSON_NULL: return st_nil();
	case JSON_TRUE: return st_bool(1);
	case JSON_FALSE: return st_bool(0);
	case JSON_INTEGER: return st_int(json_integer_value(j));
	case JSON_REAL: return st_float(json_real_value(j));
	case JSON_STRING: return st_strn(json_string_value(j), json_string_length(j));
	case JSON_ARRAY: {
		st_val *a = st_array();
		for (size_t i = 0; i < json_array_size(j); i++)
			st_push(a, from_json(c, json_array_get(j, i), 0, dt));
		return a;
	}
	case JSON_OBJECT: {
		st_val *m = st_map();
		const char *key;
		json_t *val;
		json_object_foreach(j, key, val) {
			enum st_dtype kdt = ST_F32;
			int t = typed_key(key, &kdt);
			const char *outer = c->key;
			if (t)
				c->key = key;
			map_append(m, xstrdup(key), from_json(c, val, t, kdt));
			c->key = outer;
		}
		return m;
	}
	}
	return st_nil();
}

/* jansson's lexer carries on when growing its buffer fails, retrying the allocation at every byte: a long line
 * under an address-space limit then takes hours. An allocator that ends the stage makes it one message. */
static void *json_alloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		die(EX_OSERR, "out of memory decoding JSON (%zu more bytes); the input needs more memory than the limit", n);
	return p;
}

st_val *st_from_json(const char *text, size_t len, char *err, size_t errlen)
{
	static int alloc_set;
	if (!alloc_set) {
		json_set_alloc_funcs(json_alloc, free);
		alloc_set = 1;
	}
	json_error_t je;
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!j) {
		snprintf(err, errlen, "%s (column %d)", je.text, je.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		snprintf(err, errlen, "a record must be a JSON object");
		json_decref(j);
		return NULL;
	}
	json_ctx c = { err, errlen, "", 0 };
	st_val *v = from_json(&c, j, 0, ST_F32);
	json_decref(j);
	if (c.failed) {
		st_free(v);
		return NULL;
	}
	return v;
}

static st_val *read_json(st_reader *r)
{
	for (;;) {
		/* find the end of the next line */
		size_t scanned = 0;
		char *nl;
		for (;;) {
			size_t avail = r->len - r->pos;
			nl = memchr(r->buf + r->pos + scanned, '\n', avail - scanned);
			if (nl)
				break;
			scanned = avail;
			if (fill(r, avail + 1) == avail)
				break;   /* the last line has no newline */
		}
		size_t avail = r->len - r->pos;
		if (avail == 0)
			return NULL;
		char *line = r->buf + r->pos;
		size_t n = nl ? (size_t)(nl - line) : avail;
		r->pos += nl ? n + 1 : n;
		r->line++;
		size_t k = 0;
		while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
			k++;
		if (k == n)
			continue;   /* blank line */
		char err[256];
		st_val *v = st_from_json(line, n, err, sizeof err);
		if (!v) {
			if (r->skip_bad) {
				warn("%s, line %ld: skipped: %s", r->name, r->line, err);
				continue;
			}
			die(EX_DATAERR, "%s, line %ld: %s", r->name, r->line, err);
		}
		r->count++;
		return v;
	}
}

st_val *st_read(st_reader *r)
{
	if (r->format == 0)
		detect(r);
	st_val *v;
	switch (r->format) {
	case 1: v = read_msgpack(r); break;
	case 2: v = read_json(r); break;
	default: return NULL;
	}
	if (!v)
		return NULL;
	st_val *ver = st_get(v, "v");
	if (ver && !(ver->type == ST_INT && ver->i == ST_FORMAT_VERSION))
		die(EX_DATAERR, "%s, %s: stream format version is not %d", r->name, st_reader_where(r), ST_FORMAT_VERSION);
	return v;
}

/* ------------------------------------------------------------------------------------------------ output */

struct st_writer {
	int fd, json;
	char *buf;
	size_t len, cap;
	msgpack_packer pk;
};

extern void (*st_die_hook)(void);

static void out_write(st_writer *w, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(w->fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EPIPE)
				exit(0);   /* the reader downstream has finished: not an error */
			st_die_hook = NULL;
			die(EX_IOERR, "cannot write output: %s", strerror(errno));
		}
		p += k;
		n -= k;
	}
}

void st_writer_flush(st_writer *w)
{
	if (w->len) {
		size_t n = w->len;
		w->len = 0;
		out_write(w, w->buf, n);
	}
}

static void out_append(st_writer *w, const char *p, size_t n)
{
	if (w->len + n > w->cap) {
		st_writer_flush(w);
		if (n >= w->cap) {
			out_write(w, p, n);
			return;
		}
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static int pk_write(void *data, const char *buf, size_t len)
{
	out_append(data, buf, len);
	return 0;
}

static void die_hook(void)
{
	st_writer *w = die_flush_writer;
	st_die_hook = NULL;
	if (w)
		st_writer_flush(w);
}

st_writer *st_writer_open(int fd, int json)
{
	st_writer *w = xcalloc(1, sizeof *w);
	w->fd = fd;
	w->json = json;
	w->buf = xmalloc(w->cap = 1 << 20);
	msgpack_packer_init(&w->pk, w, pk_write);
	die_flush_writer = w;
	st_die_hook = die_hook;
	return w;
}

void st_writer_close(st_writer *w)
{
	if (!w)
		return;
	st_writer_flush(w);
	if (die_flush_writer == w) {
		die_flush_writer = NULL;
		st_die_hook = NULL;
	}
	free(w->buf);
	free(w);
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void pack(msgpack_packer *pk, const st_val *v)
{
	switch (v->type) {
	case ST_NIL: msgpack_pack_nil(pk); break;
	case ST_BOOL: if (v->b) msgpack_pack_true(pk); else msgpack_pack_false(pk); break;
	case ST_INT: msgpack_pack_int64(pk, v->i); break;
	case ST_FLOAT: msgpack_pack_double(pk, v->f); break;
	case ST_STR: pack_str(pk, v->str.s, v->str.len); break;
	case ST_ARRAY:
		msgpack_pack_array(pk, v->arr.n);
		for (size_t i = 0; i < v->arr.n; i++)
			pack(pk, v->arr.items[i]);
		break;
	case ST_MAP:
		msgpack_pack_map(pk, v->map.n);
		for (size_t i = 0; i < v->map.n; i++) {
			pack_str(pk, v->map.keys[i], strlen(v->map.keys[i]));
			pack(pk, v->map.vals[i]);
		}
		break;
	case ST_TENSOR: {
		const st_tensor *t = &v->t;
		msgpack_pack_map(pk, 3);
		pack_str(pk, "dtype", 5);
		const char *dn = st_dtype_name(t->dtype);
		pack_str(pk, dn, strlen(dn));
		pack_str(pk, "shape", 5);
		msgpack_pack_array(pk, t->ndim);
		for (int i = 0; i < t->ndim; i++)
			msgpack_pack_int64(pk, t->shape[i]);
		pack_str(pk, "data", 4);
		size_t bytes = t->count * st_dtype_size(t->dtype);
		msgpack_pack_bin(pk, bytes);
		msgpack_pack_bin_body(pk, t->data, bytes);
		break;
	}
	}
}

/* JSON text is built in a growable string, then appended whole. */
typedef struct { char *s; size_t n, cap; } sbuf;

static void sb_grow(sbuf *b, size_t extra)
{
	if (b->n + extra + 1 > b->cap) {
		while (b->n + extra + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 256;
		b->s = xrealloc(b->s, b->cap);
	}
}

static void sb_put(sbuf *b, const char *p, size_t n)
{
	sb_grow(b, n);
	memcpy(b->s + b->n, p, n);
	b->n += n;
	b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	sb_grow(b, n + 2);
	b->s[b->n++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			sb_grow(b, 1);
			b->s[b->n++] = c;
			continue;
		}
		char esc[7] = { '\\', 0 };
		size_t k = 2;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\t': esc[1] = 't'; break;
		case '\r': esc[1] = 'r'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			k = 6;
		}
		sb_put(b, esc, k);
	}
	sb_put(b, "\"", 1);
}

/* Shortest of %.6g and %.9g that reads back as the same float (%.9g always does). */
static void sb_f32(sbuf *b, float x)
{
	char tmp[32];
	if (!isfinite(x)) {
		sb_put(b, "null", 4);
		return;
	}
	int n = snprintf(tmp, sizeof tmp, "%.6g", x);
	if (strtof(tmp, NULL) != x)
		n = snprintf(tmp, sizeof tmp, "%.9g", x);
	sb_put(b, tmp, n);
}

static void sb_f64(sbuf *b, double x)
{
	char tmp[32];
	if (!isfinite(x)) {
		sb_put(b, "null", 4);
		return;
	}
	int n = 0;
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(tmp, sizeof tmp, "%.*g", prec, x);
		if (strtod(tmp, NULL) == x)
			break;
	}
	/* keep a float a float for readers that care (1.0 rather than 1) */
	if (!strpbrk(tmp, ".eEn"))
		n += snprintf(tmp + n, sizeof tmp - n, ".0");
	sb_put(b, tmp, n);
}

static void sb_tensor(sbuf *b, const st_tensor *t, int dim, size_t *k)
{
	char tmp[32];
	if (dim == t->ndim) {
		size_t i = (*k)++;
		int n;
		switch (t->dtype) {
		case ST_F32: sb_f32(b, ((float *)t->data)[i]); return;
		case ST_F64: sb_f64(b, ((double *)t->data)[i]); return;
		case ST_I32: n = snprintf(tmp, sizeof tmp, "%d", ((int32_t *)t->data)[i]); break;
		case ST_I64: n = snprintf(tmp, sizeof tmp, "%lld", (long long)((int64_t *)t->data)[i]); break;
		default: n = snprintf(tmp, sizeof tmp, "%u", ((uint8_t *)t->data)[i]); break;
		}
		sb_put(b, tmp, n);
		return;
	}
	sb_put(b, "[", 1);
	for (int64_t i = 0; i < t->shape[dim]; i++) {
		if (i)
			sb_put(b, ",", 1);
		sb_tensor(b, t, dim + 1, k);
	}
	sb_put(b, "]", 1);
}

static void to_json(sbuf *b, const st_val *v)
{
	char tmp[32];
	switch (v->type) {
	case ST_NIL: sb_put(b, "null", 4); break;
	case ST_BOOL: v->b ? sb_put(b, "true", 4) : sb_put(b, "false", 5); break;
	case ST_INT: sb_put(b, tmp, snprintf(tmp, sizeof tmp, "%lld", (long long)v->i)); break;
	case ST_FLOAT: sb_f64(b, v->f); break;
	case ST_STR: sb_str(b, v->str.s, v->str.len); break;
	case ST_ARRAY:
		sb_put(b, "[", 1);
		for (size_t i = 0; i < v->arr.n; i++) {
			if (i)
				sb_put(b, ",", 1);
			to_json(b, v->arr.items[i]);
		}
		sb_put(b, "]", 1);
		break;
	case ST_MAP:
		sb_put(b, "{", 1);
		for (size_t i = 0; i < v->map.n; i++) {
			if (i)
				sb_put(b, ",", 1);
			sb_str(b, v->map.keys[i], strlen(v->map.keys[i]));
			sb_put(b, ":", 1);
			to_json(b, v->map.vals[i]);
		}
		sb_put(b, "}", 1);
		break;
	case ST_TENSOR: {
		size_t k = 0;
		sb_tensor(b, &v->t, 0, &k);
		break;
	}
	}
}

char *st_to_json(const st_val *v, size_t *len)
{
	sbuf b = { 0 };
	to_json(&b, v);
	if (len)
		*len = b.n;
	return b.s;
}

void st_write(st_writer *w, const st_val *rec)
{
	int add_version = rec->type == ST_MAP && !st_get(rec, "v");
	if (w->json) {
		sbuf b = { 0 };
		if (add_version) {
			/* "v" first, then the record's own keys */
			sb_put(&b, "{\"v\":1", 6);
			for (size_t i = 0; i < rec->map.n; i++) {
				sb_put(&b, ",", 1);
				sb_str(&b, rec->map.keys[i], strlen(rec->map.keys[i]));
				sb_put(&b, ":", 1);
				to_json(&b, rec->map.vals[i]);
			}
			sb_put(&b, "}", 1);
		} else {
			to_json(&b, rec);
		}
		sb_put(&b, "\n", 1);
		out_append(w, b.s, b.n);
		free(b.s);
		return;
	}
	if (add_version) {
		msgpack_pack_map(&w->pk, rec->map.n + 1);
		pack_str(&w->pk, "v", 1);
		msgpack_pack_int(&w->pk, ST_FORMAT_VERSION);
		for (size_t i = 0; i < rec->map.n; i++) {
			pack_str(&w->pk, rec->map.keys[i], strlen(rec->map.keys[i]));
			pack(&w->pk, rec->map.vals[i]);
		}
	} else {
		pack(&w->pk, rec);
	}
}
