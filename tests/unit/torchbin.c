/* Unit tests for lib/torch_load.c on hand-built pickles (legacy torch.save layout, values worked by hand):
 * a state dict read back, strided and offset views gathered, half and bfloat16 converted, and hostile
 * pickles refused with a message naming what was refused. Every buffer is an exact-size heap copy, so
 * AddressSanitizer or valgrind sees any read past the end.
 *
 *   build/t/torchbin.t                 the TAP tests
 *   build/t/torchbin.t --dump PATH     every tensor of PATH (a file, or a folder read as lib/weights.h does)
 *                                      as "name<TAB>dtype<TAB>d0,d1<TAB>v v v" lines, exit 65 + message on error;
 *                                      tests/torchbin.t compares this output with torch's own values.
 *   build/t/torchbin.t --resave DIR    model_load then model_save over DIR (weights become model.safetensors). */
#define _GNU_SOURCE   /* memmem */
#include "torch_load.h"
#include "weights.h"
#include "model.h"
#include "tap.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

/* ---- a small pickle writer (protocol 2 opcodes) ---- */
typedef struct { unsigned char b[4096]; size_t n; } buf;

static void put(buf *p, const void *s, size_t n) { memcpy(p->b + p->n, s, n); p->n += n; }
static void op(buf *p, int c) { p->b[p->n++] = (unsigned char)c; }
static void str(buf *p, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    op(p, 'X');
    put(p, &n, 4);
    put(p, s, n);
}
static void i1(buf *p, int v) { op(p, 'K'); op(p, v); }
static void global(buf *p, const char *module, const char *name)
{
    op(p, 'c');
    put(p, module, strlen(module));
    op(p, '\n');
    put(p, name, strlen(name));
    op(p, '\n');
}

/* The four legacy header pickles before the dict: magic, protocol 1001, system info. */
static void legacy_header(buf *p)
{
    static const unsigned char magic[] = { 0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8,
                                           0x50, 0x19, '.' };
    put(p, magic, sizeof magic);
    put(p, "\x80\x02M\xe9\x03.", 6);
    put(p, "\x80\x02}(X\x0d\x00\x00\x00little_endian\x88u.", 25);
}

/* One tensor NAME over storage "0" of type STYPE with NUMEL elements, shape/stride of ndim dims, offset. */
static void tensor(buf *p, const char *name, const char *stype, int numel, int offset, int ndim, const int *shape,
                   const int *stride)
{
    str(p, name);
    global(p, "torch._utils", "_rebuild_tensor_v2");
    op(p, '(');
    op(p, '(');
    str(p, "storage");
    global(p, "torch", stype);
    str(p, "0");
    str(p, "cpu");
    i1(p, numel);
    op(p, 'N');
    op(p, 't');
    op(p, 'Q');
    i1(p, offset);
    op(p, '(');
    for (int d = 0; d < ndim; d++)
        i1(p, shape[d]);
    op(p, 't');
    op(p, '(');
    for (int d = 0; d < ndim; d++)
        i1(p, stride[d]);
    op(p, 't');
    op(p, 0x89);
    global(p, "collections", "OrderedDict");
    op(p, ')');
    op(p, 'R');
    op(p, 't');
    op(p, 'R');
}

/* A legacy file: header, {name: tensor}, ['0'], then storage "0" (numel, bytes). */
static size_t legacy_file(buf *p, const char *name, const char *stype, int numel, int offset, int ndim,
                          const int *shape, const int *stride, const void *data, size_t esize)
{
    p->n = 0;
    legacy_header(p);
    put(p, "\x80\x02", 2);
    global(p, "collections", "OrderedDict");
    op(p, ')');
    op(p, 'R');
    op(p, '(');
    tensor(p, name, stype, numel, offset, ndim, shape, stride);
    op(p, 'u');
    op(p, '.');
    put(p, "\x80\x02](X\x01\x00\x00\x00" "0e.", 12);
    int64_t n64 = numel;
    put(p, &n64, 8);
    put(p, data, (size_t)numel * esize);
    return p->n;
}

static torch_file *open_copy(const buf *p, char *err, size_t errlen, void **keep)
{
    *keep = malloc(p->n);
    memcpy(*keep, p->b, p->n);
    return tch_open_mem(*keep, p->n, "test.bin", err, errlen);
}

static int dump(const char *path)
{
    char err[1024];
    struct stat st;
    weights *w = NULL;
    torch_file *f = NULL;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        w = weights_open(path, err, sizeof err);
    else
        f = tch_open(path, err, sizeof err);
    if (!w && !f) {
        fprintf(stderr, "torchbin: %s\n", err);
        return 65;
    }
    int n = w ? weights_count(w) : tch_count(f);
    for (int i = 0; i < n; i++) {
        const wt_tensor *wt = w ? weights_at(w, i) : NULL;
        const tch_tensor *t = f ? tch_tensor_at(f, i) : NULL;
        const char *name = w ? wt->name : t->name, *dtype = w ? wt->dtype : t->dtype;
        int ndim = w ? wt->ndim : t->ndim;
        const int64_t *shape = w ? wt->shape : t->shape;
        size_t numel = w ? weights_numel(wt) : tch_numel(t);
        printf("%s\t%s\t", name, dtype);
        for (int d = 0; d < ndim; d++)
            printf("%s%lld", d ? "," : "", (long long)shape[d]);
        printf("\t");
        float *v = malloc((numel ? numel : 1) * sizeof *v);
        int rc = w ? weights_read_f32(w, wt, v, err, sizeof err) : tch_read_f32(f, t, v, err, sizeof err);
        if (rc < 0)
            printf("unread");   /* integer buffers (position_ids) */
        for (size_t k = 0; rc == 0 && k < numel; k++)
            printf("%s%.9g", k ? " " : "", v[k]);
        printf("\n");
        free(v);
    }
    weights_close(w);
    tch_close(f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--dump"))
        return dump(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--resave")) {
        char msg[1024];
        st_model *m = model_load(argv[2], msg, sizeof msg);
        if (!m || model_save(m, argv[2], msg, sizeof msg) < 0) {
            fprintf(stderr, "torchbin: %s\n", msg);
            return 65;
        }
        model_free(m);
        return 0;
    }
    char err[512];
    void *keep;
    buf p;
    torch_file *f;

    /* a 2x3 float tensor, contiguous, read back whole */
    float six[6] = { 1, 2, 3, 4, 5, 6 };
    legacy_file(&p, "w", "FloatStorage", 6, 0, 2, (int[]){ 2, 3 }, (int[]){ 3, 1 }, six, 4);
    f = open_copy(&p, err, sizeof err, &keep);
    ok(f != NULL, "legacy file with one tensor opens%s%s", f ? "" : ": ", f ? "" : err);
    if (f) {
        const tch_tensor *t = tch_find(f, "w");
        float out[6] = { 0 };
        ok(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && !strcmp(t->dtype, "F32"), "w: F32 [2, 3]");
        ok(t && tch_read_f32(f, t, out, err, sizeof err) == 0 && !memcmp(out, six, sizeof six), "w: values 1..6");
        ok(!tch_find(f, "v") && tch_count(f) == 1, "one tensor, no other name");
        tch_close(f);
    }
    free(keep);

    /* the transpose (stride 1, 3) with offset 0: [[1,4],[2,5],[3,6]]; and offset 1 with stride 2: [2,4,6] */
    legacy_file(&p, "t", "FloatStorage", 6, 0, 2, (int[]){ 3, 2 }, (int[]){ 1, 3 }, six, 4);
    f = open_copy(&p, err, sizeof err, &keep);
    if (ok(f != NULL, "transposed view opens")) {
        float out[6], want[6] = { 1, 4, 2, 5, 3, 6 };
        ok(tch_read_f32(f, tch_find(f, "t"), out, err, sizeof err) == 0 && !memcmp(out, want, sizeof want),
           "transposed view gathered in row-major order");
        tch_close(f);
    }
    free(keep);
    legacy_file(&p, "s", "FloatStorage", 6, 1, 1, (int[]){ 3 }, (int[]){ 2 }, six, 4);
    f = open_copy(&p, err, sizeof err, &keep);
    if (ok(f != NULL, "strided view with an offset opens")) {
        float out[3], want[3] = { 2, 4, 6 };
        ok(tch_read_f32(f, tch_find(f, "s"), out, err, sizeof err) == 0 && !memcmp(out, want, sizeof want),
           "offset 1, stride 2 gives 2 4 6");
        tch_close(f);
    }
    free(keep);

    /* half 0x3c00 = 1, 0xc000 = -2, 0x3555 ~ 0.333251953125; bfloat16 0x3f80 = 1, 0x4049 = 3.140625 */
    uint16_t half[3] = { 0x3c00, 0xc000, 0x3555 }, bf[2] = { 0x3f80, 0x4049 };
    legacy_file(&p, "h", "HalfStorage", 3, 0, 1, (int[]){ 3 }, (int[]){ 1 }, half, 2);
    f = open_copy(&p, err, sizeof err, &keep);
    if (ok(f != NULL, "half tensor opens")) {
        float out[3];
        ok(tch_read_f32(f, tch_find(f, "h"), out, err, sizeof err) == 0 && out[0] == 1 && out[1] == -2 &&
           out[2] == 0.333251953125f, "half values 1, -2, 0.333251953125");
        tch_close(f);
    }
    free(keep);
    legacy_file(&p, "b", "BFloat16Storage", 2, 0, 1, (int[]){ 2 }, (int[]){ 1 }, bf, 2);
    f = open_copy(&p, err, sizeof err, &keep);
    if (ok(f != NULL, "bfloat16 tensor opens")) {
        float out[2];
        ok(tch_read_f32(f, tch_find(f, "b"), out, err, sizeof err) == 0 && out[0] == 1 && out[1] == 3.140625f,
           "bfloat16 values 1, 3.140625");
        tch_close(f);
    }
    free(keep);
    int64_t longs[2] = { 0, 1 };
    legacy_file(&p, "ids", "LongStorage", 2, 0, 1, (int[]){ 2 }, (int[]){ 1 }, longs, 8);
    f = open_copy(&p, err, sizeof err, &keep);
    if (ok(f != NULL, "int64 buffer opens (position_ids)")) {
        float out[2];
        ok(tch_read_f32(f, tch_find(f, "ids"), out, err, sizeof err) < 0 && strstr(err, "I64"),
           "reading it as float is refused naming I64 (%s)", err);
        tch_close(f);
    }
    free(keep);

    /* hostile: each must fail to open with a message naming the problem */
    struct { const char *what, *stype, *want; int numel, offset, shape, stride; } bad[] = {
        { "a view past the storage's end", "FloatStorage", "storage 0", 6, 4, 3, 1 },
        { "a huge element count", "FloatStorage", "more than the file holds", 100000000, 0, 3, 1 },
        { "a storage class that is not torch's", "os", "refusing global torch.os", 6, 0, 3, 1 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        legacy_file(&p, "x", bad[i].stype, bad[i].numel > 6 ? 6 : bad[i].numel, bad[i].offset, 1,
                    (int[]){ bad[i].shape }, (int[]){ bad[i].stride }, six, 4);
        if (bad[i].numel > 6) {   /* patch the count in the persistent id: BININT1 6 -> BININT 100000000 */
            unsigned char *at = memmem(p.b, p.n, "X\x03\x00\x00\x00" "cpuK\x06", 10);
            memmove(at + 13, at + 10, p.n - (size_t)(at + 10 - p.b));
            p.n += 3;
            at[8] = 'J';
            int32_t v = bad[i].numel;
            memcpy(at + 9, &v, 4);
        }
        f = open_copy(&p, err, sizeof err, &keep);
        ok(!f && strstr(err, bad[i].want), "refused: %s (%s)", bad[i].what, f ? "opened" : err);
        tch_close(f);
        free(keep);
    }

    /* os.system called through REDUCE: refused at the GLOBAL, before anything could be called */
    p.n = 0;
    legacy_header(&p);
    put(&p, "\x80\x02", 2);
    global(&p, "os", "system");
    op(&p, '(');
    str(&p, "touch /nonexistent-marker");
    op(&p, 't');
    op(&p, 'R');
    op(&p, '.');
    f = open_copy(&p, err, sizeof err, &keep);
    ok(!f && strstr(err, "refusing global os.system"), "os.system is refused by name (%s)", f ? "opened" : err);
    free(keep);

    /* the same through protocol 4's STACK_GLOBAL, and builtins.eval */
    p.n = 0;
    legacy_header(&p);
    put(&p, "\x80\x04", 2);
    str(&p, "builtins");
    str(&p, "eval");
    op(&p, 0x93);
    op(&p, '.');
    f = open_copy(&p, err, sizeof err, &keep);
    ok(!f && strstr(err, "refusing global builtins.eval"), "STACK_GLOBAL builtins.eval is refused (%s)",
       f ? "opened" : err);
    free(keep);

    /* opcodes that build arbitrary objects (OBJ, INST, NEWOBJ) are refused even without a global */
    const char *objs[] = { "\x80\x02(o.", "\x80\x02\x81.", "\x80\x02(i", NULL };
    for (int i = 0; objs[i]; i++) {
        p.n = 0;
        legacy_header(&p);
        put(&p, objs[i], strlen(objs[i]));
        f = open_copy(&p, err, sizeof err, &keep);
        ok(!f && strstr(err, "is not accepted"), "opcode %d refused (%s)", i, f ? "opened" : err);
        free(keep);
    }

    /* every truncation of a good file fails cleanly */
    legacy_file(&p, "w", "FloatStorage", 6, 0, 2, (int[]){ 2, 3 }, (int[]){ 3, 1 }, six, 4);
    int opened = 0;
    size_t full = p.n;
    for (size_t n = 0; n < full; n++) {
        p.n = n;
        f = open_copy(&p, err, sizeof err, &keep);
        opened += f != NULL;
        tch_close(f);
        free(keep);
    }
    ok(opened == 0, "none of the %zu truncations of a good file opens", full);
    return done_testing();
}
