/* torch_load.c: pytorch_model.bin (torch.save's zip archive or the legacy stream) read by a restricted pickle
 * interpreter. Nothing is ever called: GLOBAL only names one of a few known functions, and REDUCE on one of
 * them builds a plain record (a dict, a tensor view of a storage). Everything else is refused.
 * Depends on libc, libzip (opened on the first zip archive: lib/dynlib.h) and lib/safetensors.c (dtype
 * conversion) only, so the fuzz target builds it alone. */
#include "torch_load.h"
#include "dynlib.h"
#include "errbuf.h"
#include "safetensors.h"
#include "mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "torch storages are read as little-endian; this reader assumes a little-endian host"
#endif

#define TCH_MAX_PICKLE (256u << 20)   /* a state dict's pickle is kilobytes; the data lives in storages */
#define TCH_MAX_KEY 64

/* libzip is opened on the first zip archive (lib/dynlib.h), not linked: it and what it pulls in (libcrypto,
 * libbz2) cost every tool's start ~5 ms, and safetensors models never need it. The prototypes are zip.h's. */
static struct {
    __typeof__(zip_source_buffer_create) *source_buffer_create;
    __typeof__(zip_source_free) *source_free;
    __typeof__(zip_open_from_source) *open_from_source;
    __typeof__(zip_discard) *discard;
    __typeof__(zip_error_init) *error_init;
    __typeof__(zip_error_fini) *error_fini;
    __typeof__(zip_error_strerror) *error_strerror;
    __typeof__(zip_get_error) *get_error;
    __typeof__(zip_file_get_error) *file_get_error;
    __typeof__(zip_get_num_entries) *get_num_entries;
    __typeof__(zip_get_name) *get_name;
    __typeof__(zip_name_locate) *name_locate;
    __typeof__(zip_stat_index) *stat_index;
    __typeof__(zip_fopen_index) *fopen_index;
    __typeof__(zip_fread) *fread;
    __typeof__(zip_fclose) *fclose;
} lz;
#define LZ(f) { "zip_" #f, offsetof(__typeof__(lz), f) }
static const struct dynlib_sym lz_syms[] = {
    LZ(source_buffer_create), LZ(source_free), LZ(open_from_source), LZ(discard), LZ(error_init), LZ(error_fini),
    LZ(error_strerror), LZ(get_error), LZ(file_get_error), LZ(get_num_entries), LZ(get_name), LZ(name_locate),
    LZ(stat_index), LZ(fopen_index), LZ(fread), LZ(fclose),
};
static const char *const lz_names[] = { "libzip.so.5", "libzip.so.4", "libzip.so", NULL };
static dynlib lz_lib = DYNLIB("libzip (pytorch_model.bin archives need it)", lz_names, lz_syms, lz);

typedef struct tch_storage {
    char key[TCH_MAX_KEY];
    char dtype[8];
    size_t esize;
    uint64_t numel;
    zip_int64_t zindex;   /* zip: entry index */
    size_t pos;           /* legacy: byte offset of the data in the buffer */
} tch_storage;

struct torch_file {
    const unsigned char *buf;   /* whole file */
    size_t len;
    int mapped;
    char *what;
    zip_t *zip;                 /* NULL for the legacy format */
    int n, nstorage;
    tch_tensor *tensors;        /* dict order */
    const tch_tensor **by_name; /* sorted, for tch_find */
    tch_storage *storages;
    int cached;                 /* zip: the storage whose bytes are in cache (-1 none): tensors sharing one */
    unsigned char *cache;       /* storage (tied or flattened weights) read it once */
};

/* ---- the restricted unpickler ---- */

enum pkind { P_NONE, P_BOOL, P_INT, P_FLOAT, P_STR, P_TUPLE, P_LIST, P_DICT, P_GLOBAL, P_STORAGE, P_TENSOR, P_MARK };
/* The only globals a state dict needs. Storage types carry their dtype. */
enum pglobal { G_ODICT, G_REBUILD_V2, G_REBUILD_V1, G_REBUILD_PARAM, G_STORAGE_TYPE };

typedef struct pval {
    enum pkind kind;
    int64_t i;                  /* INT, BOOL; GLOBAL: enum pglobal; STORAGE: storage index; TENSOR: tensor index */
    char *s;                    /* STR (NUL-free); GLOBAL storage type: dtype name */
    struct pval **items;        /* TUPLE, LIST; DICT: key, value, key, value ... */
    size_t n, cap;
    int dtype_index;            /* GLOBAL storage type */
} pval;

typedef struct unpickler {
    const unsigned char *p, *end, *start;
    const unsigned char *origin;   /* byte 0 for messages: the file (legacy) or data.pkl (zip) */
    const char *what, *part;    /* for messages: file, "data.pkl" */
    pval **all;                 /* every value made, freed at the end */
    size_t nall, capall;
    pval **stack;
    size_t sp, capstack;
    size_t *marks;
    size_t nmarks, capmarks;
    pval **memo;
    size_t capmemo, nmemo;      /* nmemo: entries set (MEMOIZE's next index) */
    int legacy;                 /* persistent ids have a 6th field (view metadata) */
    torch_file *f;              /* storages and tensors are registered here */
    tch_tensor *tmp;            /* tensors made by REDUCE, named when the dict is read */
    int ntmp, captmp;
    char *err;
    size_t errlen;
} unpickler;

static const struct { const char *name, *dtype; size_t esize; } storage_types[] = {
    {"FloatStorage", "F32", 4}, {"HalfStorage", "F16", 2}, {"BFloat16Storage", "BF16", 2},
    {"DoubleStorage", "F64", 8}, {"LongStorage", "I64", 8}, {"IntStorage", "I32", 4}, {"ShortStorage", "I16", 2},
    {"CharStorage", "I8", 1}, {"ByteStorage", "U8", 1}, {"BoolStorage", "BOOL", 1},
};

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int fail(unpickler *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(unpickler *u, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    errbuf_set(u->err, u->errlen, "%s: %s, byte %zu: %s", u->what, u->part, (size_t)(u->p - u->origin), msg);
    return -1;
}

static pval *newval(unpickler *u, enum pkind kind)
{
    if (grow((void **)&u->all, &u->capall, u->nall + 1, sizeof *u->all) < 0)
        return NULL;
    pval *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->kind = kind;
    u->all[u->nall++] = v;
    return v;
}

static int push(unpickler *u, pval *v)
{
    if (!v || grow((void **)&u->stack, &u->capstack, u->sp + 1, sizeof *u->stack) < 0)
        return fail(u, "out of memory");
    u->stack[u->sp++] = v;
    return 0;
}

static pval *pop(unpickler *u)
{
    size_t floor = u->nmarks ? u->marks[u->nmarks - 1] : 0;
    if (u->sp <= floor) {
        fail(u, "stack underflow");
        return NULL;
    }
    return u->stack[--u->sp];
}

static int need(unpickler *u, size_t n)
{
    if ((size_t)(u->end - u->p) < n)
        return fail(u, "truncated (%zu more bytes needed)", n);
    return 0;
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int add_item(unpickler *u, pval *c, pval *v)
{
    if (grow((void **)&c->items, &c->cap, c->n + 1, sizeof *c->items) < 0)
        return fail(u, "out of memory");
    c->items[c->n++] = v;
    return 0;
}

/* Items above the top mark, removed from the stack (the mark too); count in *n. */
static pval **pop_mark(unpickler *u, size_t *n)
{
    if (!u->nmarks) {
        fail(u, "no MARK on the stack");
        return NULL;
    }
    size_t m = u->marks[--u->nmarks];
    *n = u->sp - m;
    u->sp = m;
    return u->stack + m;   /* still valid until the next push */
}

static int make_tuple(unpickler *u, pval **items, size_t n)
{
    pval *t = newval(u, P_TUPLE);
    if (!t)
        return fail(u, "out of memory");
    pval **copy = n ? malloc(n * sizeof *copy) : NULL;
    if (n && !copy)
        return fail(u, "out of memory");
    if (n)
        memcpy(copy, items, n * sizeof *copy);
    t->items = copy;
    t->n = t->cap = n;
    return push(u, t);
}

static int make_string(unpickler *u, uint64_t n)
{
    if (need(u, n) < 0)
        return -1;
    if (memchr(u->p, 0, n))
        return fail(u, "string with a NUL byte");
    pval *v = newval(u, P_STR);
    if (!v || !(v->s = malloc(n + 1)))
        return fail(u, "out of memory");
    memcpy(v->s, u->p, n);
    v->s[n] = 0;
    v->n = n;
    u->p += n;
    return push(u, v);
}

/* GLOBAL module name: one of the allowed functions or storage types, anything else refused by name. */
static int make_global(unpickler *u, const char *module, const char *name)
{
    pval *g = newval(u, P_GLOBAL);
    if (!g)
        return fail(u, "out of memory");
    if (!strcmp(module, "collections") && !strcmp(name, "OrderedDict"))
        g->i = G_ODICT;
    else if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_tensor_v2"))
        g->i = G_REBUILD_V2;
    else if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_tensor"))
        g->i = G_REBUILD_V1;
    else if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_parameter"))
        g->i = G_REBUILD_PARAM;
    else {
        int k = -1;
        if (!strcmp(module, "torch"))
            for (size_t j = 0; j < sizeof storage_types / sizeof storage_types[0]; j++)
                if (!strcmp(name, storage_types[j].name))
                    k = (int)j;
        if (k < 0)
            return fail(u, "refusing global %s.%s: a state dict holds only tensors (nothing was executed)", module,
                        name);
        g->i = G_STORAGE_TYPE;
        g->dtype_index = k;
    }
    return push(u, g);
}

static int get_int(const pval *v, int64_t *out)
{
    if (!v || v->kind != P_INT)
        return -1;
    *out = v->i;
    return 0;
}

/* BINPERSID: ('storage', torch.XStorage, key, location, numel[, view_metadata]) -> a storage reference. */
static int persistent_load(unpickler *u, pval *pid)
{
    size_t want = u->legacy ? 6 : 5;
    if (pid->kind != P_TUPLE || pid->n != want || pid->items[0]->kind != P_STR || strcmp(pid->items[0]->s, "storage"))
        return fail(u, "persistent id is not ('storage', type, key, location, size%s)", u->legacy ? ", view" : "");
    pval *type = pid->items[1], *key = pid->items[2], *loc = pid->items[3];
    int64_t numel;
    if (type->kind != P_GLOBAL || type->i != G_STORAGE_TYPE)
        return fail(u, "persistent id: the storage type is not a torch storage class");
    if (key->kind != P_STR || !key->n || key->n >= TCH_MAX_KEY || strspn(key->s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_") != key->n)
        return fail(u, "persistent id: storage key is not a short alphanumeric name");
    if (loc->kind != P_STR)
        return fail(u, "persistent id: location is not a string");
    if (get_int(pid->items[4], &numel) < 0 || numel < 0)
        return fail(u, "persistent id: storage size is not a non-negative integer");
    if (u->legacy && pid->items[5]->kind != P_NONE)
        return fail(u, "storage views (legacy view metadata) are not supported");
    const char *dtype = storage_types[type->dtype_index].dtype;
    size_t esize = storage_types[type->dtype_index].esize;
    uint64_t nbytes;
    if (__builtin_mul_overflow((uint64_t)numel, (uint64_t)esize, &nbytes) || nbytes > u->f->len)
        return fail(u, "storage %s claims %lld elements of %s, more than the file holds", key->s, (long long)numel,
                    dtype);
    torch_file *f = u->f;
    int k;
    for (k = 0; k < f->nstorage; k++)
        if (!strcmp(f->storages[k].key, key->s))
            break;
    if (k < f->nstorage) {
        if (strcmp(f->storages[k].dtype, dtype) || f->storages[k].numel != (uint64_t)numel)
            return fail(u, "storage %s is described twice with different types or sizes", key->s);
    } else {
        size_t cap = (size_t)f->nstorage;   /* grown one by one: few storages per tensor, none past the input size */
        tch_storage *s = realloc(f->storages, (cap + 1) * sizeof *s);
        if (!s)
            return fail(u, "out of memory");
        f->storages = s;
        memset(&s[k], 0, sizeof s[k]);
        snprintf(s[k].key, sizeof s[k].key, "%s", key->s);
        snprintf(s[k].dtype, sizeof s[k].dtype, "%s", dtype);
        s[k].esize = esize;
        s[k].numel = (uint64_t)numel;
        f->nstorage++;
    }
    pval *v = newval(u, P_STORAGE);
    if (!v)
        return fail(u, "out of memory");
    v->i = k;
    return push(u, v);
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]) and
 * _rebuild_tensor(storage, offset, size, stride): a view of the storage, checked to lie inside it. */
static int rebuild_tensor(unpickler *u, pval *args, int v2)
{
    if (args->n < 4 || (v2 && args->n > 7) || (!v2 && args->n != 4))
        return fail(u, "%s: wrong number of arguments (%zu)", v2 ? "_rebuild_tensor_v2" : "_rebuild_tensor", args->n);
    pval *st = args->items[0], *size = args->items[2], *stride = args->items[3];
    int64_t offset;
    if (st->kind != P_STORAGE)
        return fail(u, "tensor: first argument is not a storage");
    if (get_int(args->items[1], &offset) < 0 || offset < 0)
        return fail(u, "tensor: storage offset is not a non-negative integer");
    if (size->kind != P_TUPLE || stride->kind != P_TUPLE || size->n != stride->n)
        return fail(u, "tensor: size and stride are not tuples of the same length");
    if (size->n > TCH_MAX_DIMS)
        return fail(u, "tensor: %zu dimensions, at most %d are supported", size->n, TCH_MAX_DIMS);
    tch_tensor t = {0};
    t.ndim = (int)size->n;
    t.offset = offset;
    t.storage = (int)st->i;
    const tch_storage *s = &u->f->storages[t.storage];
    snprintf(t.dtype, sizeof t.dtype, "%s", s->dtype);
    uint64_t numel = 1, last = (uint64_t)offset;   /* last: index of the furthest element */
    for (int d = 0; d < t.ndim; d++) {
        if (get_int(size->items[d], &t.shape[d]) < 0 || t.shape[d] < 0 || get_int(stride->items[d], &t.stride[d]) < 0 ||
            t.stride[d] < 0)
            return fail(u, "tensor: size and stride must be non-negative integers");
        if (__builtin_mul_overflow(numel, (uint64_t)t.shape[d], &numel))
            return fail(u, "tensor: shape product overflows");
    }
    /* Zero strides (expanded views) could claim any number of elements over a one-element storage; a state
     * dict has none, and refusing them bounds every tensor's memory by the file's size. */
    if (numel > s->numel)
        return fail(u, "tensor of %llu elements over storage %s of %llu", (unsigned long long)numel, s->key,
                    (unsigned long long)s->numel);
    if (numel) {
        for (int d = 0; d < t.ndim; d++) {
            uint64_t span;
            if (__builtin_mul_overflow((uint64_t)(t.shape[d] - 1), (uint64_t)t.stride[d], &span) ||
                __builtin_add_overflow(last, span, &last))
                return fail(u, "tensor: extent overflows");
        }
        if (last >= s->numel)
            return fail(u, "tensor needs element %llu of storage %s, which has %llu (size, stride or offset wrong)",
                        (unsigned long long)last, s->key, (unsigned long long)s->numel);
    }
    if (u->ntmp == u->captmp) {
        size_t cap = (size_t)u->captmp;
        if (grow((void **)&u->tmp, &cap, cap + 1, sizeof *u->tmp) < 0)
            return fail(u, "out of memory");
        u->captmp = (int)cap;
    }
    u->tmp[u->ntmp] = t;
    pval *v = newval(u, P_TENSOR);
    if (!v)
        return fail(u, "out of memory");
    v->i = u->ntmp++;
    return push(u, v);
}

static int reduce(unpickler *u)
{
    pval *args = pop(u), *fn = args ? pop(u) : NULL;
    if (!fn)
        return -1;
    if (fn->kind != P_GLOBAL || args->kind != P_TUPLE)
        return fail(u, "REDUCE needs a known function and an argument tuple");
    switch (fn->i) {
    case G_ODICT:
        if (args->n)
            return fail(u, "OrderedDict with arguments");
        return push(u, newval(u, P_DICT));
    case G_REBUILD_V2:
    case G_REBUILD_V1:
        return rebuild_tensor(u, args, fn->i == G_REBUILD_V2);
    case G_REBUILD_PARAM:   /* _rebuild_parameter(data, requires_grad, hooks): the tensor itself */
        if (args->n != 3 || args->items[0]->kind != P_TENSOR)
            return fail(u, "_rebuild_parameter: expected (tensor, requires_grad, hooks)");
        return push(u, args->items[0]);
    default:
        return fail(u, "a storage class cannot be called");
    }
}

static int setitems(unpickler *u, pval **items, size_t n)
{
    pval *d = pop(u);
    if (!d)
        return -1;
    if (d->kind != P_DICT || n % 2)
        return fail(u, "SETITEM(S) on something that is not a dict, or a key without a value");
    for (size_t i = 0; i < n; i++)
        if (add_item(u, d, items[i]) < 0)
            return -1;
    return push(u, d);
}

static int memo_put(unpickler *u, uint64_t idx)
{
    if (!u->sp)
        return fail(u, "memo put on an empty stack");
    /* Python's pickler numbers memo entries 0, 1, 2, ...: an index past the pickle's length is hostile. */
    if (idx > (uint64_t)(u->end - u->start))
        return fail(u, "memo index %llu out of range", (unsigned long long)idx);
    size_t cap = u->capmemo;
    if (grow((void **)&u->memo, &cap, (size_t)idx + 1, sizeof *u->memo) < 0)
        return fail(u, "out of memory");
    for (size_t i = u->capmemo; i < cap; i++)
        u->memo[i] = NULL;
    u->capmemo = cap;
    if (!u->memo[idx])
        u->nmemo++;
    u->memo[idx] = u->stack[u->sp - 1];
    return 0;
}

static int memo_get(unpickler *u, uint64_t idx)
{
    if (idx >= u->capmemo || !u->memo[idx])
        return fail(u, "memo index %llu was never set", (unsigned long long)idx);
    return push(u, u->memo[idx]);
}

/* Runs one pickle from u->p to its STOP; *out is the result. */
static int unpickle(unpickler *u, pval **out)
{
    u->sp = 0;
    u->nmarks = 0;
    u->start = u->p;
    if (grow((void **)&u->stack, &u->capstack, 16, sizeof *u->stack) < 0)   /* pop_mark points into it */
        return fail(u, "out of memory");
    for (size_t i = 0; i < u->capmemo; i++)
        u->memo[i] = NULL;
    u->nmemo = 0;
    while (1) {
        if (need(u, 1) < 0)
            return -1;
        int op = *u->p++;
        pval *v, *w;
        size_t n;
        pval **items;
        switch (op) {
        case 0x80:   /* PROTO */
            if (need(u, 1) < 0)
                return -1;
            if (*u->p < 2 || *u->p > 5)
                return fail(u, "pickle protocol %d is not read (2 to 5 are)", *u->p);
            u->p++;
            break;
        case 0x95:   /* FRAME: a length hint only */
            if (need(u, 8) < 0)
                return -1;
            u->p += 8;
            break;
        case '.':    /* STOP */
            if (!(v = pop(u)))
                return -1;
            *out = v;
            return 0;
        case '(':    /* MARK */
            if (grow((void **)&u->marks, &u->capmarks, u->nmarks + 1, sizeof *u->marks) < 0)
                return fail(u, "out of memory");
            u->marks[u->nmarks++] = u->sp;
            break;
        case '}':
            if (push(u, newval(u, P_DICT)) < 0)
                return -1;
            break;
        case ']':
            if (push(u, newval(u, P_LIST)) < 0)
                return -1;
            break;
        case ')':
            if (make_tuple(u, NULL, 0) < 0)
                return -1;
            break;
        case 't':
            if (!(items = pop_mark(u, &n)) || make_tuple(u, items, n) < 0)
                return -1;
            break;
        case 0x85: case 0x86: case 0x87: {   /* TUPLE1..3 */
            size_t k = (size_t)(op - 0x84), floor = u->nmarks ? u->marks[u->nmarks - 1] : 0;
            if (u->sp < floor + k)
                return fail(u, "stack underflow");
            u->sp -= k;
            if (make_tuple(u, u->stack + u->sp, k) < 0)
                return -1;
            break;
        }
        case 'd':    /* DICT */
            if (!(items = pop_mark(u, &n)))
                return -1;
            if (n % 2)
                return fail(u, "DICT with an odd number of items");
            if (!(v = newval(u, P_DICT)))
                return fail(u, "out of memory");
            for (size_t i = 0; i < n; i++)
                if (add_item(u, v, items[i]) < 0)
                    return -1;
            if (push(u, v) < 0)
                return -1;
            break;
        case 'l':    /* LIST */
            if (!(items = pop_mark(u, &n)))
                return -1;
            if (!(v = newval(u, P_LIST)))
                return fail(u, "out of memory");
            for (size_t i = 0; i < n; i++)
                if (add_item(u, v, items[i]) < 0)
                    return -1;
            if (push(u, v) < 0)
                return -1;
            break;
        case 'a':    /* APPEND */
            if (!(w = pop(u)) || !(v = pop(u)))
                return -1;
            if (v->kind != P_LIST)
                return fail(u, "APPEND to something that is not a list");
            if (add_item(u, v, w) < 0 || push(u, v) < 0)
                return -1;
            break;
        case 'e':    /* APPENDS */
            if (!(items = pop_mark(u, &n)) || !(v = pop(u)))
                return -1;
            if (v->kind != P_LIST)
                return fail(u, "APPENDS to something that is not a list");
            for (size_t i = 0; i < n; i++)
                if (add_item(u, v, items[i]) < 0)
                    return -1;
            if (push(u, v) < 0)
                return -1;
            break;
        case 's':    /* SETITEM */
            if (u->sp < 2 + (u->nmarks ? u->marks[u->nmarks - 1] : 0))
                return fail(u, "stack underflow");
            u->sp -= 2;
            if (setitems(u, u->stack + u->sp, 2) < 0)
                return -1;
            break;
        case 'u': {  /* SETITEMS */
            if (!(items = pop_mark(u, &n)))
                return -1;
            /* items sit above the dict on the stack: keep them aside while the dict is popped and pushed */
            pval **copy = n ? malloc(n * sizeof *copy) : NULL;
            if (n && !copy)
                return fail(u, "out of memory");
            if (n)
                memcpy(copy, items, n * sizeof *copy);
            int rc = setitems(u, copy, n);
            free(copy);
            if (rc < 0)
                return -1;
            break;
        }
        case 'X':    /* BINUNICODE */
            if (need(u, 4) < 0)
                return -1;
            n = (size_t)le(u->p, 4);
            u->p += 4;
            if (make_string(u, n) < 0)
                return -1;
            break;
        case 0x8c:   /* SHORT_BINUNICODE */
            if (need(u, 1) < 0)
                return -1;
            n = *u->p++;
            if (make_string(u, n) < 0)
                return -1;
            break;
        case 0x8d: { /* BINUNICODE8 */
            if (need(u, 8) < 0)
                return -1;
            uint64_t n8 = le(u->p, 8);
            u->p += 8;
            if (make_string(u, n8) < 0)
                return -1;
            break;
        }
        case 'q':    /* BINPUT */
            if (need(u, 1) < 0 || memo_put(u, *u->p++) < 0)
                return -1;
            break;
        case 'r':    /* LONG_BINPUT */
            if (need(u, 4) < 0)
                return -1;
            u->p += 4;
            if (memo_put(u, le(u->p - 4, 4)) < 0)
                return -1;
            break;
        case 0x94:   /* MEMOIZE: index len(memo), as Python numbers them */
            if (memo_put(u, u->nmemo) < 0)
                return -1;
            break;
        case 'h':    /* BINGET */
            if (need(u, 1) < 0 || memo_get(u, *u->p++) < 0)
                return -1;
            break;
        case 'j':    /* LONG_BINGET */
            if (need(u, 4) < 0)
                return -1;
            u->p += 4;
            if (memo_get(u, le(u->p - 4, 4)) < 0)
                return -1;
            break;
        case 'c': {  /* GLOBAL "module\nname\n" */
            char module[128], name[128];
            const unsigned char *nl1 = memchr(u->p, '\n', (size_t)(u->end - u->p));
            const unsigned char *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(u->end - nl1 - 1)) : NULL;
            if (!nl2)
                return fail(u, "truncated GLOBAL");
            snprintf(module, sizeof module, "%.*s", (int)(nl1 - u->p < 127 ? nl1 - u->p : 127), (const char *)u->p);
            snprintf(name, sizeof name, "%.*s", (int)(nl2 - nl1 - 1 < 127 ? nl2 - nl1 - 1 : 127),
                     (const char *)nl1 + 1);
            for (char *c = module; *c; c++)   /* printable in the message */
                if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) *c = '?';
            for (char *c = name; *c; c++)
                if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) *c = '?';
            u->p = nl2 + 1;
            if (make_global(u, module, name) < 0)
                return -1;
            break;
        }
        case 0x93:   /* STACK_GLOBAL */
            if (!(w = pop(u)) || !(v = pop(u)))
                return -1;
            if (v->kind != P_STR || w->kind != P_STR)
                return fail(u, "STACK_GLOBAL needs two strings");
            if (make_global(u, v->s, w->s) < 0)
                return -1;
            break;
        case 'Q':    /* BINPERSID */
            if (!(v = pop(u)) || persistent_load(u, v) < 0)
                return -1;
            break;
        case 'K':    /* BININT1 */
        case 'M':    /* BININT2 */
        case 'J': {  /* BININT */
            int k = op == 'K' ? 1 : op == 'M' ? 2 : 4;
            if (need(u, k) < 0 || !(v = newval(u, P_INT)))
                return need(u, k) < 0 ? -1 : fail(u, "out of memory");
            uint64_t x = le(u->p, k);
            v->i = op == 'J' ? (int64_t)(int32_t)(uint32_t)x : (int64_t)x;
            u->p += k;
            if (push(u, v) < 0)
                return -1;
            break;
        }
        case 0x8a: { /* LONG1: little-endian two's complement, up to 8 bytes here */
            if (need(u, 1) < 0)
                return -1;
            int k = *u->p++;
            if (k > 8)
                return fail(u, "integer of %d bytes is too large", k);
            if (need(u, k) < 0 || !(v = newval(u, P_INT)))
                return need(u, k) < 0 ? -1 : fail(u, "out of memory");
            uint64_t x = le(u->p, k);
            if (k && k < 8 && (u->p[k - 1] & 0x80))   /* sign-extend */
                x |= ~(uint64_t)0 << (8 * k);
            v->i = (int64_t)x;
            u->p += k;
            if (push(u, v) < 0)
                return -1;
            break;
        }
        case 'G':    /* BINFLOAT (kept only as a value; never part of a tensor) */
            if (need(u, 8) < 0)
                return -1;
            u->p += 8;
            if (push(u, newval(u, P_FLOAT)) < 0)
                return -1;
            break;
        case 0x88:   /* NEWTRUE */
        case 0x89:   /* NEWFALSE */
            if (!(v = newval(u, P_BOOL)))
                return fail(u, "out of memory");
            v->i = op == 0x88;
            if (push(u, v) < 0)
                return -1;
            break;
        case 'N':
            if (push(u, newval(u, P_NONE)) < 0)
                return -1;
            break;
        case 'R':
            if (reduce(u) < 0)
                return -1;
            break;
        case 'b':    /* BUILD: the state (e.g. the state dict's _metadata) is dropped; nothing is set or called */
            if (!(w = pop(u)) || !(v = pop(u)))
                return -1;
            if (v->kind != P_DICT && v->kind != P_TENSOR)
                return fail(u, "BUILD on something that is not a dict or a tensor");
            if (push(u, v) < 0)
                return -1;
            break;
        case '0':    /* POP */
            if (!pop(u))
                return -1;
            break;
        case '1':    /* POP_MARK */
            if (!pop_mark(u, &n))
                return -1;
            break;
        case '2':    /* DUP */
            if (!u->sp)
                return fail(u, "DUP on an empty stack");
            if (push(u, u->stack[u->sp - 1]) < 0)
                return -1;
            break;
        default:
            u->p--;
            return fail(u, "pickle opcode 0x%02x ('%c') is not accepted in a state dict", op,
                        op >= 0x20 && op < 0x7f ? op : '?');
        }
    }
}

static void unpickler_free(unpickler *u)
{
    for (size_t i = 0; i < u->nall; i++) {
        free(u->all[i]->s);
        free(u->all[i]->items);
        free(u->all[i]);
    }
    free(u->all);
    free(u->stack);
    free(u->marks);
    free(u->memo);
    free(u->tmp);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const tch_tensor *const *)a)->name, (*(const tch_tensor *const *)b)->name);
}

/* The unpickled object must be a dict of name -> tensor. */
static int take_dict(unpickler *u, const pval *d)
{
    torch_file *f = u->f;
    if (d->kind != P_DICT)
        return fail(u, "the file does not hold a dict of tensors (a state dict)");
    size_t n = d->n / 2;
    if (!(f->tensors = calloc(n + 1, sizeof *f->tensors)))
        return fail(u, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const pval *k = d->items[2 * i], *v = d->items[2 * i + 1];
        if (k->kind != P_STR)
            return fail(u, "a key of the state dict is not a string");
        if (v->kind != P_TENSOR)
            return fail(u, "state dict entry '%.200s' is not a tensor", k->s);
        f->tensors[f->n] = u->tmp[v->i];
        if (!(f->tensors[f->n].name = strdup(k->s)))
            return fail(u, "out of memory");
        f->n++;
    }
    if (!(f->by_name = calloc((size_t)f->n + 1, sizeof *f->by_name)))
        return fail(u, "out of memory");
    for (int i = 0; i < f->n; i++)
        f->by_name[i] = &f->tensors[i];
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(f->by_name[i - 1]->name, f->by_name[i]->name))
            return fail(u, "tensor name '%.200s' appears twice", f->by_name[i]->name);
    return 0;
}

/* ---- containers ---- */

int tch_sniff(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    return (len >= 4 && !memcmp(p, "PK\003\004", 4)) || (len >= 3 && p[0] == 0x80 && p[1] == 2 && p[2] == 0x8a);
}

static int open_zip(torch_file *f, char *err, size_t errlen)
{
    char why[600];
    if (dynlib_open(&lz_lib, why, sizeof why) < 0) {
        errbuf_set(err, errlen, "%s: %s", f->what, why);
        return -1;
    }
    zip_error_t ze;
    lz.error_init(&ze);
    zip_source_t *src = lz.source_buffer_create(f->buf, f->len, 0, &ze);
    if (!src || !(f->zip = lz.open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze))) {
        errbuf_set(err, errlen, "%s: not a readable zip archive: %s", f->what, lz.error_strerror(&ze));
        if (src)
            lz.source_free(src);
        lz.error_fini(&ze);
        return -1;
    }
    lz.error_fini(&ze);

    /* PREFIX/data.pkl, the one pickle of the archive (PREFIX is the saved file's stem, or "archive") */
    zip_int64_t nent = lz.get_num_entries(f->zip, 0), pkl = -1;
    char prefix[256] = "";
    for (zip_int64_t i = 0; i < nent; i++) {
        const char *name = lz.get_name(f->zip, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        const char *slash = name ? strchr(name, '/') : NULL;
        if (slash && !strcmp(slash, "/data.pkl") && slash - name < (int)sizeof prefix) {
            if (pkl >= 0) {
                errbuf_set(err, errlen, "%s: more than one data.pkl in the archive", f->what);
                return -1;
            }
            pkl = i;
            snprintf(prefix, sizeof prefix, "%.*s", (int)(slash - name), name);
        }
    }
    if (pkl < 0) {
        errbuf_set(err, errlen, "%s: zip archive without PREFIX/data.pkl: not a torch.save file", f->what);
        return -1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/byteorder", prefix);
    zip_int64_t bo = lz.name_locate(f->zip, path, ZIP_FL_ENC_RAW);
    if (bo >= 0) {
        char order[16] = "";
        zip_file_t *zf = lz.fopen_index(f->zip, (zip_uint64_t)bo, 0);
        zip_int64_t got = zf ? lz.fread(zf, order, sizeof order - 1) : -1;
        if (zf)
            lz.fclose(zf);
        if (got < 0 || strncmp(order, "little", 6)) {
            errbuf_set(err, errlen, "%s: %s is not \"little\": only little-endian storages are read", f->what, path);
            return -1;
        }
    }

    zip_stat_t zs;
    if (lz.stat_index(f->zip, (zip_uint64_t)pkl, 0, &zs) < 0 || !(zs.valid & ZIP_STAT_SIZE) || zs.size > TCH_MAX_PICKLE) {
        errbuf_set(err, errlen, "%s: %s/data.pkl is missing its size or larger than %u bytes", f->what, prefix,
                TCH_MAX_PICKLE);
        return -1;
    }
    unsigned char *pickle = malloc(zs.size ? zs.size : 1);
    zip_file_t *zf = pickle ? lz.fopen_index(f->zip, (zip_uint64_t)pkl, 0) : NULL;
    zip_int64_t got = zf ? lz.fread(zf, pickle, zs.size) : -1;
    if (!zf || got != (zip_int64_t)zs.size) {
        errbuf_set(err, errlen, "%s: cannot read %s/data.pkl: %s", f->what, prefix,
                zf ? lz.error_strerror(lz.file_get_error(zf)) : lz.error_strerror(lz.get_error(f->zip)));
        if (zf)
            lz.fclose(zf);
        free(pickle);
        return -1;
    }
    lz.fclose(zf);

    unpickler u = {.p = pickle, .origin = pickle, .end = pickle + zs.size, .what = f->what, .part = "data.pkl", .f = f, .err = err,
                   .errlen = errlen};
    pval *root = NULL;
    int rc = unpickle(&u, &root);
    if (rc == 0 && u.p != u.end)
        rc = fail(&u, "%zu bytes after the pickle's STOP", (size_t)(u.end - u.p));
    if (rc == 0)
        rc = take_dict(&u, root);
    unpickler_free(&u);
    free(pickle);
    if (rc < 0)
        return -1;

    /* every storage: PREFIX/data/KEY, stored (torch never compresses), exactly numel * element size bytes */
    for (int k = 0; k < f->nstorage; k++) {
        tch_storage *s = &f->storages[k];
        snprintf(path, sizeof path, "%s/data/%s", prefix, s->key);
        s->zindex = lz.name_locate(f->zip, path, ZIP_FL_ENC_RAW);
        if (s->zindex < 0 || lz.stat_index(f->zip, (zip_uint64_t)s->zindex, 0, &zs) < 0) {
            errbuf_set(err, errlen, "%s: storage %s is missing from the archive", f->what, path);
            return -1;
        }
        if (!(zs.valid & ZIP_STAT_COMP_METHOD) || zs.comp_method != ZIP_CM_STORE) {
            errbuf_set(err, errlen, "%s: %s is compressed; torch.save stores storages uncompressed", f->what, path);
            return -1;
        }
        if (zs.size != s->numel * s->esize) {
            errbuf_set(err, errlen, "%s: %s holds %llu bytes but the pickle says %llu elements of %s (%llu bytes)",
                    f->what, path, (unsigned long long)zs.size, (unsigned long long)s->numel, s->dtype,
                    (unsigned long long)(s->numel * s->esize));
            return -1;
        }
    }
    return 0;
}

/* The legacy stream: pickles of the magic number, protocol 1001, system info, the dict, the storage keys;
 * then for each key in that order an int64 element count and the raw storage. */
static int open_legacy(torch_file *f, char *err, size_t errlen)
{
    static const unsigned char magic[] = { 0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8,
                                           0x50, 0x19, '.' };
    if (f->len < sizeof magic || memcmp(f->buf, magic, sizeof magic)) {
        errbuf_set(err, errlen, "%s: neither a zip archive nor torch's legacy format (wrong magic number)", f->what);
        return -1;
    }
    unpickler u = {.p = f->buf + sizeof magic, .origin = f->buf, .end = f->buf + f->len, .what = f->what, .part = "legacy header",
                   .f = f, .err = err, .errlen = errlen, .legacy = 1};
    pval *v = NULL, *root = NULL;
    int rc = -1;
    if (unpickle(&u, &v) < 0)
        goto out;
    if (v->kind != P_INT || v->i != 1001) {
        fail(&u, "legacy protocol version is not 1001");
        goto out;
    }
    if (unpickle(&u, &v) < 0)
        goto out;
    if (v->kind != P_DICT) {
        fail(&u, "legacy system info is not a dict");
        goto out;
    }
    for (size_t i = 0; i + 1 < v->n; i += 2)
        if (v->items[i]->kind == P_STR && !strcmp(v->items[i]->s, "little_endian") &&
            !(v->items[i + 1]->kind == P_BOOL && v->items[i + 1]->i)) {
            fail(&u, "the file was written on a big-endian machine");
            goto out;
        }
    u.part = "legacy pickle";
    if (unpickle(&u, &root) < 0)
        goto out;
    u.part = "legacy storage keys";
    if (unpickle(&u, &v) < 0)
        goto out;
    if (v->kind != P_LIST) {
        fail(&u, "storage key list is not a list");
        goto out;
    }
    size_t pos = (size_t)(u.p - f->buf);
    int *seen = calloc((size_t)f->nstorage + 1, sizeof *seen);
    if (!seen) {
        fail(&u, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < v->n; i++) {
        const pval *key = v->items[i];
        int k;
        for (k = 0; k < f->nstorage && (key->kind != P_STR || strcmp(f->storages[k].key, key->s)); k++)
            ;
        if (k == f->nstorage || seen[k]) {
            errbuf_set(err, errlen, "%s: storage key %zu of the list is unknown or repeated", f->what, i);
            free(seen);
            goto out;
        }
        seen[k] = 1;
        tch_storage *s = &f->storages[k];
        if (f->len - pos < 8 || le(f->buf + pos, 8) != s->numel || (f->len - pos - 8) / s->esize < s->numel) {
            errbuf_set(err, errlen,
                       "%s: storage %s: size record wrong or data truncated (byte %zu)", f->what, s->key, pos);
            free(seen);
            goto out;
        }
        s->pos = pos + 8;
        pos = s->pos + s->numel * s->esize;
    }
    for (int k = 0; k < f->nstorage; k++)
        if (!seen[k]) {
            errbuf_set(err, errlen, "%s: storage %s has no data", f->what, f->storages[k].key);
            free(seen);
            goto out;
        }
    free(seen);
    if (pos != f->len) {
        errbuf_set(err, errlen, "%s: %zu bytes after the last storage", f->what, f->len - pos);
        goto out;
    }
    rc = take_dict(&u, root);
out:
    unpickler_free(&u);
    return rc;
}

void tch_close(torch_file *f)
{
    if (!f)
        return;
    if (f->zip)
        lz.discard(f->zip);   /* read-only: nothing to write back */
    if (f->mapped)
        st_unmap_file(f->buf, f->len);
    for (int i = 0; i < f->n; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    free(f->by_name);
    free(f->storages);
    free(f->cache);
    free(f->what);
    free(f);
}

torch_file *tch_open_mem(const void *buf, size_t len, const char *what, char *err, size_t errlen)
{
    torch_file *f = calloc(1, sizeof *f);
    if (!f || !(f->what = strdup(what ? what : "pytorch_model.bin"))) {
        free(f);
        errbuf_set(err, errlen, "%s: out of memory", what ? what : "pytorch_model.bin");
        return NULL;
    }
    f->buf = buf;
    f->len = len;
    f->cached = -1;
    int rc = len >= 4 && !memcmp(buf, "PK\003\004", 4) ? open_zip(f, err, errlen) : open_legacy(f, err, errlen);
    if (rc < 0) {
        tch_close(f);
        return NULL;
    }
    return f;
}

torch_file *tch_open(const char *path, char *err, size_t errlen)
{
    size_t len;
    const void *map = st_map_file(path, 16, "too short for a torch.save file", &len, err, errlen);
    if (!map)
        return NULL;
    torch_file *f = tch_open_mem(map, len, path, err, errlen);
    if (!f) {
        st_unmap_file(map, len);
        return NULL;
    }
    f->mapped = 1;
    return f;
}

int tch_count(const torch_file *f) { return f->n; }

const tch_tensor *tch_tensor_at(const torch_file *f, int i) { return i >= 0 && i < f->n ? &f->tensors[i] : NULL; }

const tch_tensor *tch_find(const torch_file *f, const char *name)
{
    tch_tensor key = {.name = (char *)name};
    const tch_tensor *kp = &key;
    const tch_tensor **hit = bsearch(&kp, f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name);
    return hit ? *hit : NULL;
}

size_t tch_numel(const tch_tensor *t)
{
    size_t n = 1;   /* checked at open: no overflow */
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

int tch_read_f32(torch_file *f, const tch_tensor *t, float *out, char *err, size_t errlen)
{
    const tch_storage *s = &f->storages[t->storage];
    size_t n = tch_numel(t), es = s->esize;
    if (strcmp(t->dtype, "F32") && strcmp(t->dtype, "F16") && strcmp(t->dtype, "BF16") && strcmp(t->dtype, "F64")) {
        errbuf_set(err, errlen, "%s: tensor '%s': dtype %s is not a floating type (F32, F16, BF16, F64 are read)",
                f->what, t->name, t->dtype);
        return -1;
    }
    if (!n)
        return 0;
    const unsigned char *data;
    size_t nbytes = (size_t)s->numel * es;
    if (f->zip && f->cached != t->storage) {   /* through libzip, which checks the entry's CRC */
        free(f->cache);
        f->cache = NULL;
        f->cached = -1;
        zip_file_t *zf = lz.fopen_index(f->zip, (zip_uint64_t)s->zindex, 0);
        unsigned char *bytes = malloc(nbytes ? nbytes : 1);
        zip_int64_t got = zf && bytes ? lz.fread(zf, bytes, nbytes) : -1;
        char probe;
        if (got == (zip_int64_t)nbytes && lz.fread(zf, &probe, 1) != 0)   /* reading to the end checks the CRC */
            got = -1;
        if (got != (zip_int64_t)nbytes) {
            errbuf_set(err, errlen, "%s: storage %s of tensor '%s': %s", f->what, s->key, t->name,
                    zf ? lz.error_strerror(lz.file_get_error(zf)) : "cannot open");
            if (zf)
                lz.fclose(zf);
            free(bytes);
            return -1;
        }
        lz.fclose(zf);
        f->cache = bytes;
        f->cached = t->storage;
    }
    data = f->zip ? f->cache : f->buf + s->pos;
    int contiguous = 1;
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expect)
            contiguous = 0;
        expect *= t->shape[d];
    }
    int rc = 0;
    if (contiguous) {
        rc = sft_convert_f32(t->dtype, data + (size_t)t->offset * es, n, out);
    } else {   /* gather the view element by element (row-major over shape), then convert */
        unsigned char *tmp = malloc(n * es);
        int64_t idx[TCH_MAX_DIMS] = {0};
        if (!tmp) {
            errbuf_set(err, errlen, "%s: tensor '%s': out of memory", f->what, t->name);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            size_t at = (size_t)t->offset;
            for (int d = 0; d < t->ndim; d++)
                at += (size_t)(idx[d] * t->stride[d]);
            memcpy(tmp + i * es, data + at * es, es);
            for (int d = t->ndim - 1; d >= 0; d--) {
                if (++idx[d] < t->shape[d])
                    break;
                idx[d] = 0;
            }
        }
        rc = sft_convert_f32(t->dtype, tmp, n, out);
        free(tmp);
    }
    return rc;
}
