/* safetensors.c: a validating, memory-mapped reader and an atomic F32 writer for the safetensors format.
 *
 * The reader trusts nothing in the file: the header length, the JSON, every shape and offset are checked
 * (with overflow-checked arithmetic) before any tensor byte is touched, following the rules of the reference
 * Rust reader (docs/safetensors.md lists them). Tensor bytes may sit at any address (older writers do not pad
 * the header), so values are always copied out with memcpy, never by casting the mapped pointer.
 * This file depends only on libc, jansson and lib/mapfile.c so that the fuzz target can build it alone. */
#include "safetensors.h"
#include "errbuf.h"
#include "mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

struct safetensors {
    const unsigned char *map;   /* the whole file */
    size_t map_len;
    int mapped;                 /* 1: munmap on close; 0: caller's buffer */
    const unsigned char *data;  /* start of the data section (map + 8 + N) */
    size_t data_len;
    int n;
    sft_entry *entries;         /* sorted by data offset */
    const sft_entry **by_name;  /* sorted by name, for sft_find */
    int n_meta;
    char **meta;                /* key, value, key, value ... */
};

/* Element sizes in bits, all dtypes the reference format knows (sub-byte floats included). */
static const struct { const char *name; unsigned bits; } sft_dtypes[] = {
    {"BOOL", 8},    {"F4", 4},       {"F6_E2M3", 6},     {"F6_E3M2", 6},     {"U8", 8},
    {"I8", 8},      {"F8_E5M2", 8},  {"F8_E4M3", 8},     {"F8_E8M0", 8},     {"F8_E4M3FNUZ", 8},
    {"F8_E5M2FNUZ", 8}, {"I16", 16}, {"U16", 16},        {"F16", 16},        {"BF16", 16},
    {"I32", 32},    {"U32", 32},     {"F32", 32},        {"C64", 64},        {"F64", 64},
    {"I64", 64},    {"U64", 64},
};

static unsigned sft_dtype_bits(const char *dtype)
{
    for (size_t i = 0; i < sizeof sft_dtypes / sizeof sft_dtypes[0]; i++)
        if (strcmp(dtype, sft_dtypes[i].name) == 0)
            return sft_dtypes[i].bits;
    return 0;
}

size_t sft_dtype_size(const char *dtype)
{
    unsigned bits = sft_dtype_bits(dtype);
    return bits % 8 ? 0 : bits / 8;
}

static void sft_free(safetensors *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++)
        free(f->entries[i].name);
    free(f->entries);
    free(f->by_name);
    for (int i = 0; i < 2 * f->n_meta; i++)
        free(f->meta[i]);
    free(f->meta);
    free(f);
}

void sft_close(safetensors *f)
{
    if (!f)
        return;
    if (f->mapped)
        st_unmap_file(f->map, f->map_len);
    sft_free(f);
}

/* A JSON integer that is a valid size (>= 0). Reals ("2.0"), negatives and strings are rejected. */
static int sft_json_size(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int sft_cmp_offset(const void *a, const void *b)
{
    const sft_entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int sft_cmp_name(const void *a, const void *b)
{
    return strcmp((*(const sft_entry *const *)a)->name, (*(const sft_entry *const *)b)->name);
}

/* Fills e from one header entry {"dtype", "shape", "data_offsets"}; -1 + message naming the tensor. */
static int sft_parse_entry(const char *what, const char *name, const json_t *v, sft_entry *e, char *err, size_t errlen)
{
    if (!json_is_object(v)) {
        errbuf_set(err, errlen, "%s: tensor '%s': header entry is not an object", what, name);
        return -1;
    }
    const json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
                 *offsets = json_object_get(v, "data_offsets");
    if (!json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offsets)) {
        errbuf_set(err, errlen, "%s: tensor '%s': needs \"dtype\" (string), \"shape\" and \"data_offsets\" (arrays)",
                what, name);
        return -1;
    }
    const char *dt = json_string_value(dtype);
    unsigned bits = sft_dtype_bits(dt);
    if (!bits) {
        errbuf_set(err, errlen, "%s: tensor '%s': unknown dtype \"%.20s\"", what, name, dt);
        return -1;
    }
    snprintf(e->dtype, sizeof e->dtype, "%s", dt);

    size_t ndim = json_array_size(shape);
    if (ndim > SFT_MAX_DIMS) {
        errbuf_set(err, errlen, "%s: tensor '%s': %zu dimensions, at most %d are supported", what, name, ndim,
                SFT_MAX_DIMS);
        return -1;
    }
    e->ndim = (int)ndim;
    uint64_t numel = 1;
    for (size_t d = 0; d < ndim; d++) {
        uint64_t dim;
        if (sft_json_size(json_array_get(shape, d), &dim) < 0) {
            errbuf_set(err, errlen, "%s: tensor '%s': shape[%zu] is not a non-negative integer", what, name, d);
            return -1;
        }
        if (__builtin_mul_overflow(numel, dim, &numel)) {
            errbuf_set(err, errlen, "%s: tensor '%s': shape product overflows", what, name);
            return -1;
        }
        e->shape[d] = (int64_t)dim;
    }
    uint64_t nbits;
    if (__builtin_mul_overflow(numel, (uint64_t)bits, &nbits)) {
        errbuf_set(err, errlen, "%s: tensor '%s': shape product times dtype size overflows", what, name);
        return -1;
    }
    if (nbits % 8) {
        errbuf_set(err, errlen, "%s: tensor '%s': %s data of %llu elements is not a whole number of bytes", what,
                name, dt, (unsigned long long)numel);
        return -1;
    }

    uint64_t begin, end;
    if (json_array_size(offsets) != 2 || sft_json_size(json_array_get(offsets, 0), &begin) < 0 ||
        sft_json_size(json_array_get(offsets, 1), &end) < 0) {
        errbuf_set(err, errlen, "%s: tensor '%s': data_offsets must be [begin, end], two non-negative integers", what,
                name);
        return -1;
    }
    if (end < begin) {
        errbuf_set(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] end before begin", what, name,
                (unsigned long long)begin, (unsigned long long)end);
        return -1;
    }
    if (end - begin != nbits / 8) {
        errbuf_set(err, errlen, "%s: tensor '%s': data_offsets span %llu bytes but %s shape needs %llu", what, name,
                (unsigned long long)(end - begin), dt, (unsigned long long)(nbits / 8));
        return -1;
    }
    if (end > SIZE_MAX) {
        errbuf_set(err, errlen, "%s: tensor '%s': data_offsets too large", what, name);
        return -1;
    }
    e->begin = (size_t)begin;
    e->end = (size_t)end;
    return 0;
}

static int sft_parse_metadata(safetensors *f, const char *what, const json_t *m, char *err, size_t errlen)
{
    if (json_is_null(m))   /* the reference reader accepts "__metadata__": null as no metadata */
        return 0;
    if (!json_is_object(m)) {
        errbuf_set(err, errlen, "%s: __metadata__ is not an object", what);
        return -1;
    }
    size_t n = json_object_size(m);
    f->meta = calloc(2 * n + 1, sizeof *f->meta);
    if (!f->meta) {
        errbuf_set(err, errlen, "%s: out of memory", what);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)m, key, v) {
        if (!json_is_string(v)) {
            errbuf_set(err, errlen, "%s: __metadata__ value of '%s' is not a string", what, key);
            return -1;
        }
        char *k = strdup(key), *s = strdup(json_string_value(v));
        f->meta[2 * f->n_meta] = k;
        f->meta[2 * f->n_meta + 1] = s;
        f->n_meta++;
        if (!k || !s) {
            errbuf_set(err, errlen, "%s: out of memory", what);
            return -1;
        }
    }
    return 0;
}

safetensors *sft_open_mem(const void *buf, size_t len, const char *what, char *err, size_t errlen)
{
    const unsigned char *p = buf;
    if (!what)
        what = "safetensors";
    if (len < 8) {
        errbuf_set(err, errlen, "%s: file is %zu bytes, too short for the 8-byte header length", what, len);
        return NULL;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | p[i];
    if (n > SFT_MAX_HEADER) {
        errbuf_set(err, errlen, "%s: header length %llu exceeds the %u-byte limit", what, (unsigned long long)n,
                SFT_MAX_HEADER);
        return NULL;
    }
    if (n > len - 8) {
        errbuf_set(err, errlen, "%s: header length %llu is larger than the %zu bytes after it (truncated file?)", what,
                (unsigned long long)n, len - 8);
        return NULL;
    }
    const char *header = (const char *)p + 8;
    if (n == 0 || header[0] != '{') {
        errbuf_set(err, errlen, "%s: header does not start with '{'", what);
        return NULL;
    }

    json_error_t jerr;
    json_t *root = json_loadb(header, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        errbuf_set(err, errlen, "%s: header is not valid JSON: %s (header byte %d)", what, jerr.text, jerr.position);
        return NULL;
    }
    safetensors *f = calloc(1, sizeof *f);
    size_t cap = json_object_size(root);
    if (!f || !(f->entries = calloc(cap + 1, sizeof *f->entries))) {
        errbuf_set(err, errlen, "%s: out of memory", what);
        goto fail;
    }
    f->map = p;
    f->map_len = len;
    f->data = p + 8 + n;
    f->data_len = len - 8 - (size_t)n;
    if (!json_is_object(root)) {   /* the '{' check above makes this unreachable; kept for safety */
        errbuf_set(err, errlen, "%s: header is not a JSON object", what);
        goto fail;
    }

    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (sft_parse_metadata(f, what, v, err, errlen) < 0)
                goto fail;
            continue;
        }
        if (f->n >= INT_MAX - 1) {
            errbuf_set(err, errlen, "%s: too many tensors", what);
            goto fail;
        }
        sft_entry *e = &f->entries[f->n];
        memset(e, 0, sizeof *e);
        if (sft_parse_entry(what, key, v, e, err, errlen) < 0)
            goto fail;
        if (!(e->name = strdup(key))) {
            errbuf_set(err, errlen, "%s: out of memory", what);
            goto fail;
        }
        f->n++;
    }

    /* Contiguous coverage: sorted by offset, every tensor starts where the previous one ended and the last
     * one ends at the end of the file. No overlap means memory use is bounded by the file size; no holes
     * means no room for hidden content. */
    qsort(f->entries, f->n, sizeof *f->entries, sft_cmp_offset);
    size_t pos = 0;
    for (int i = 0; i < f->n; i++) {
        const sft_entry *e = &f->entries[i];
        if (e->begin != pos) {
            if (e->begin < pos)
                errbuf_set(err, errlen, "%s: tensor '%s' (bytes %zu..%zu) overlaps the tensor before it (ends at %zu)",
                        what, e->name, e->begin, e->end, pos);
            else
                errbuf_set(err, errlen, "%s: gap of %zu bytes before tensor '%s' (starts at %zu, previous end %zu)",
                        what, e->begin - pos, e->name, e->begin, pos);
            goto fail;
        }
        pos = e->end;
    }
    if (pos != f->data_len) {
        if (pos > f->data_len)
            errbuf_set(err, errlen, "%s: tensors need %zu data bytes but the file has %zu (truncated file?)", what, pos,
                    f->data_len);
        else
            errbuf_set(err, errlen, "%s: %zu bytes after the last tensor (tensors end at %zu of %zu)", what,
                    f->data_len - pos, pos, f->data_len);
        goto fail;
    }

    f->by_name = calloc(f->n + 1, sizeof *f->by_name);
    if (!f->by_name) {
        errbuf_set(err, errlen, "%s: out of memory", what);
        goto fail;
    }
    for (int i = 0; i < f->n; i++)
        f->by_name[i] = &f->entries[i];
    qsort(f->by_name, f->n, sizeof *f->by_name, sft_cmp_name);
    json_decref(root);
    return f;

fail:
    json_decref(root);
    sft_free(f);
    return NULL;
}

safetensors *sft_open(const char *path, char *err, size_t errlen)
{
    size_t len;
    const void *map = st_map_file(path, 8, "too short for the 8-byte header length", &len, err, errlen);
    if (!map)
        return NULL;
    safetensors *f = sft_open_mem(map, len, path, err, errlen);
    if (!f) {
        st_unmap_file(map, len);
        return NULL;
    }
    f->mapped = 1;
    return f;
}

int sft_count(const safetensors *f) { return f->n; }

const sft_entry *sft_entry_at(const safetensors *f, int i)
{
    return i >= 0 && i < f->n ? &f->entries[i] : NULL;
}

const sft_entry *sft_find(const safetensors *f, const char *name)
{
    sft_entry key = {.name = (char *)name};
    const sft_entry *kp = &key;
    const sft_entry **hit = bsearch(&kp, f->by_name, f->n, sizeof *f->by_name, sft_cmp_name);
    return hit ? *hit : NULL;
}

size_t sft_numel(const sft_entry *e)
{
    size_t n = 1;   /* validated at open: the product does not overflow */
    for (int d = 0; d < e->ndim; d++)
        n *= (size_t)e->shape[d];
    return n;
}

const void *sft_data(const safetensors *f, const sft_entry *e) { return f->data + e->begin; }

const char *sft_metadata(const safetensors *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[2 * i], key) == 0)
            return f->meta[2 * i + 1];
    return NULL;
}

/* IEEE binary16 -> binary32, exact (every half value is a float value). */
static float sft_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {   /* zero or subnormal: mant * 2^-24 */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    if (exp == 31)   /* inf / NaN, payload kept */
        bits = sign | 0x7f800000u | mant << 13;
    else
        bits = sign | (exp + 127 - 15) << 23 | mant << 13;
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

int sft_convert_f32(const char *dtype, const void *from, size_t n, float *out)
{
    const unsigned char *src = from;
    if (strcmp(dtype, "F32") == 0) {
        if (n)
            memcpy(out, src, n * 4);
    } else if (strcmp(dtype, "F16") == 0) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = sft_f16_to_f32(h);
        }
    } else if (strcmp(dtype, "BF16") == 0) {   /* bfloat16 is the top half of a float32 */
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
        }
    } else if (strcmp(dtype, "F64") == 0) {
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            out[i] = (float)d;
        }
    } else {
        return -1;
    }
    return 0;
}

int sft_read_f32(const safetensors *f, const sft_entry *e, float *out, char *err, size_t errlen)
{
    if (sft_convert_f32(e->dtype, f->data + e->begin, sft_numel(e), out) < 0) {
        errbuf_set(err, errlen, "tensor '%s': unsupported dtype %s for float read (F32, F16, BF16, F64 are)", e->name,
                e->dtype);
        return -1;
    }
    return 0;
}

int sft_read_i32(const safetensors *f, const sft_entry *e, int32_t *out, char *err, size_t errlen)
{
    size_t n = sft_numel(e);
    const unsigned char *src = f->data + e->begin;
    if (strcmp(e->dtype, "I32") == 0) {
        if (n)
            memcpy(out, src, n * 4);
    } else if (strcmp(e->dtype, "I64") == 0) {
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, src + 8 * i, 8);
            if (v < INT32_MIN || v > INT32_MAX) {
                errbuf_set(err, errlen, "tensor '%s': I64 value %lld at index %zu does not fit in int32", e->name,
                        (long long)v, i);
                return -1;
            }
            out[i] = (int32_t)v;
        }
    } else {
        errbuf_set(err, errlen, "tensor '%s': unsupported dtype %s for integer read (I32, I64 are)", e->name, e->dtype);
        return -1;
    }
    return 0;
}

/* ---- writer ---- */

typedef struct { char *s; size_t len, cap; int oom; } sft_buf;

static void sft_put(sft_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sft_puts(sft_buf *b, const char *s) { sft_put(b, s, strlen(s)); }

/* A JSON string escaped as serde_json does: quote, backslash and control characters only. */
static void sft_put_json_string(sft_buf *b, const char *s)
{
    sft_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': sft_puts(b, "\\\""); break;
        case '\\': sft_puts(b, "\\\\"); break;
        case '\b': sft_puts(b, "\\b"); break;
        case '\f': sft_puts(b, "\\f"); break;
        case '\n': sft_puts(b, "\\n"); break;
        case '\r': sft_puts(b, "\\r"); break;
        case '\t': sft_puts(b, "\\t"); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                sft_puts(b, esc);
            } else {
                sft_put(b, (const char *)p, 1);
            }
        }
    }
    sft_put(b, "\"", 1);
}

static int sft_cmp_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const sft_tensor_f32 *const *)a)->name, (*(const sft_tensor_f32 *const *)b)->name);
}

int sft_write_f32(const char *path, const sft_tensor_f32 *t, int n, const char *const *meta, char *err, size_t errlen)
{
    const sft_tensor_f32 **order = NULL;
    size_t *nbytes = NULL;
    sft_buf h = {0};
    char *tmp = NULL;
    FILE *fp = NULL;
    int ret = -1;

    if (n < 0 || !(order = calloc((size_t)n + 1, sizeof *order)) || !(nbytes = calloc((size_t)n + 1, sizeof *nbytes))) {
        errbuf_set(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const sft_tensor_f32 *x = &t[i];
        if (!x->name || strcmp(x->name, "__metadata__") == 0 || x->ndim < 0 || x->ndim > SFT_MAX_DIMS) {
            errbuf_set(err, errlen, "%s: tensor %d: bad name or ndim", path, i);
            goto out;
        }
        size_t numel = 1;
        for (int d = 0; d < x->ndim; d++)
            if (x->shape[d] < 0 || __builtin_mul_overflow(numel, (size_t)x->shape[d], &numel)) {
                errbuf_set(err, errlen, "%s: tensor '%s': bad shape", path, x->name);
                goto out;
            }
        if (__builtin_mul_overflow(numel, (size_t)4, &nbytes[i]) || (numel && !x->data)) {
            errbuf_set(err, errlen, "%s: tensor '%s': bad size or no data", path, x->name);
            goto out;
        }
        order[i] = x;
    }
    /* Python's writer orders by descending dtype alignment, then name: for all-F32 that is by name. */
    qsort(order, n, sizeof *order, sft_cmp_tensor_name);
    for (int i = 1; i < n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            errbuf_set(err, errlen, "%s: duplicate tensor name '%s'", path, order[i]->name);
            goto out;
        }

    sft_puts(&h, "{");
    int first = 1;
    if (meta && meta[0]) {
        sft_put_json_string(&h, "__metadata__");
        sft_puts(&h, ":{");
        for (int k = 0; meta[k]; k += 2) {
            if (!meta[k + 1]) {
                errbuf_set(err, errlen, "%s: metadata key '%s' has no value", path, meta[k]);
                goto out;
            }
            for (int j = 0; j < k; j += 2)
                if (strcmp(meta[j], meta[k]) == 0) {
                    errbuf_set(err, errlen, "%s: duplicate metadata key '%s'", path, meta[k]);
                    goto out;
                }
            if (k)
                sft_puts(&h, ",");
            sft_put_json_string(&h, meta[k]);
            sft_puts(&h, ":");
            sft_put_json_string(&h, meta[k + 1]);
        }
        sft_puts(&h, "}");
        first = 0;
    }
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        const sft_tensor_f32 *x = order[i];
        size_t bytes = nbytes[x - t];
        char num[64];
        if (!first)
            sft_puts(&h, ",");
        first = 0;
        sft_put_json_string(&h, x->name);
        sft_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < x->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)x->shape[d]);
            sft_puts(&h, num);
        }
        if (__builtin_add_overflow(offset, bytes, &(size_t){0})) {
            errbuf_set(err, errlen, "%s: total size overflows", path);
            goto out;
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", offset, offset + bytes);
        sft_puts(&h, num);
        offset += bytes;
    }
    sft_puts(&h, "}");
    while (h.len % 8)   /* pad so the data section starts 8-byte aligned */
        sft_puts(&h, " ");
    if (h.oom) {
        errbuf_set(err, errlen, "%s: out of memory", path);
        goto out;
    }
    if (h.len > SFT_MAX_HEADER) {
        errbuf_set(err, errlen, "%s: header of %zu bytes exceeds the %u-byte limit", path, h.len, SFT_MAX_HEADER);
        goto out;
    }

    size_t tlen = strlen(path) + 32;
    if (!(tmp = malloc(tlen))) {
        errbuf_set(err, errlen, "%s: out of memory", path);
        goto out;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    if (!(fp = fopen(tmp, "wb"))) {
        errbuf_set(err, errlen, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int bad = fwrite(len8, 1, 8, fp) != 8 || fwrite(h.s, 1, h.len, fp) != h.len;
    for (int i = 0; i < n && !bad; i++)
        bad = nbytes[order[i] - t] && fwrite(order[i]->data, 1, nbytes[order[i] - t], fp) != nbytes[order[i] - t];
    if (bad || fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        errbuf_set(err, errlen, "%s: write: %s", tmp, strerror(errno));
        goto out;
    }
    int rc = fclose(fp);
    fp = NULL;
    if (rc != 0) {
        errbuf_set(err, errlen, "%s: close: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        errbuf_set(err, errlen, "%s: rename: %s", path, strerror(errno));
        goto out;
    }
    ret = 0;
out:
    if (fp)
        fclose(fp);
    if (ret != 0 && tmp)
        unlink(tmp);
    free(tmp);
    free(h.s);
    free(order);
    free(nbytes);
    return ret;
}
