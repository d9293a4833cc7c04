/* Unit tests for lib/safetensors.c: the upstream fixtures, byte-exact writer output (the reference writer's own
 * test vectors), round trips, a cross-check with an independent Python parser/writer (torch conversions as
 * the oracle for F16/BF16/F64), and hostile headers, each of which must be a clear error. Every file is also
 * opened from an exact-size heap copy (sft_open_mem) so that AddressSanitizer or valgrind sees any read past
 * the end, which page-rounded mmap would hide. */
#include "safetensors.h"
#include "tap.h"

#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[PATH_MAX];   /* the repository root, found from argv[0] (build/t/safetensors.t) */
static char tmp[PATH_MAX];

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc(n ? n : 1);
    *len = fread(buf, 1, n, fp);
    fclose(fp);
    return buf;
}

static void spew(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    fwrite(data, 1, len, fp);
    fclose(fp);
}

/* Writes [u64 n_field][header][data_len bytes of 0x3f]: enough to build any hostile file. */
static void make_raw(const char *path, uint64_t n_field, const char *header, size_t header_len, size_t data_len)
{
    FILE *fp = fopen(path, "wb");
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(n_field >> (8 * i));
    fwrite(len8, 1, 8, fp);
    fwrite(header, 1, header_len, fp);
    for (size_t i = 0; i < data_len; i++)
        fputc(0x3f, fp);
    fclose(fp);
}

/* Opens path from an exact-size heap copy; the copy is returned in *copy (free after sft_close). */
static safetensors *open_copy(const char *path, unsigned char **copy, char *err, size_t errlen)
{
    size_t len = 0;
    *copy = slurp(path, &len);
    return sft_open_mem(*copy, len, path, err, errlen);
}

/* A file that must be rejected: both sft_open and sft_open_mem say so, with a message containing want. */
static void reject_file(const char *what, const char *path, const char *want)
{
    char err[512] = "", err2[512] = "";
    safetensors *f = sft_open(path, err, sizeof err);
    unsigned char *copy;
    safetensors *g = open_copy(path, &copy, err2, sizeof err2);
    int good = !f && !g && strstr(err, want) && strcmp(err, err2) == 0;
    if (!ok(good, "rejects %s", what))
        printf("#   error: '%s' (mem: '%s'), want it to contain '%s'\n", err, err2, want);
    sft_close(f);
    sft_close(g);
    free(copy);
}

static void reject_header(const char *what, const char *header, size_t data_len, const char *want)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/hostile.safetensors", tmp);
    make_raw(path, strlen(header), header, strlen(header), data_len);
    reject_file(what, path, want);
}

/* A file that must be accepted; returns the number of tensors (-1 if rejected). */
static int accept_header(const char *what, const char *header, size_t data_len)
{
    char path[PATH_MAX + 32], err[512] = "";
    snprintf(path, sizeof path, "%s/edge.safetensors", tmp);
    make_raw(path, strlen(header), header, strlen(header), data_len);
    unsigned char *copy;
    safetensors *f = open_copy(path, &copy, err, sizeof err);
    int n = f ? sft_count(f) : -1;
    if (!ok(f != NULL, "accepts %s", what))
        printf("#   error: %s\n", err);
    sft_close(f);
    free(copy);
    return n;
}

static void test_hostile(void)
{
    char path[PATH_MAX + 32], err[512];
    snprintf(path, sizeof path, "%s/hostile.safetensors", tmp);

    spew(path, "", 0);
    reject_file("an empty file", path, "too short");
    spew(path, "\x10\0\0\0", 4);
    reject_file("a 4-byte file", path, "too short");
    make_raw(path, 200, "{}", 2, 0);
    reject_file("a header length larger than the file", path, "larger than");
    make_raw(path, 2, "{}", 2, 0);
    FILE *fp = fopen(path, "r+b");
    ftruncate(fileno(fp), 9);
    fclose(fp);
    reject_file("a file truncated inside the header", path, "larger than");
    make_raw(path, (uint64_t)SFT_MAX_HEADER + 1, "{}", 2, 0);
    reject_file("a header length over the 100 MB cap", path, "limit");
    make_raw(path, UINT64_MAX, "{}", 2, 0);
    reject_file("header length 2^64-1", path, "limit");
    make_raw(path, 0, "", 0, 0);
    reject_file("a zero header length", path, "start with '{'");
    {   /* the real F32 tensor with its last byte cut off */
        const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        make_raw(path, strlen(h), h, strlen(h), 7);
        reject_file("a truncated data section", path, "truncated");
    }

    reject_header("a header that is not JSON", "{abc", 0, "not valid JSON");
    reject_header("a header with trailing garbage", "{} x", 0, "not valid JSON");
    reject_header("an array header", "[1,2]", 0, "start with '{'");
    reject_header("a string header", "\"x\"", 0, "start with '{'");
    make_raw(path, 4, "{}\0\0", 4, 0);
    reject_file("a header padded with NULs", path, "not valid JSON");
    {
        char h[] = "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}";
        reject_header("invalid UTF-8 in a name", h, 0, "not valid JSON");
    }
    reject_header("a NUL escape in a name", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0,
                  "not valid JSON");
    {   /* deep nesting in metadata: jansson's depth limit, not a stack overflow */
        static char h[20000];
        strcpy(h, "{\"__metadata__\":");
        size_t k = strlen(h);
        for (int i = 0; i < 5000; i++)
            h[k++] = '[';
        for (int i = 0; i < 5000; i++)
            h[k++] = ']';
        strcpy(h + k, "}");
        reject_header("nesting 5000 deep", h, 0, "not valid JSON");
    }
    reject_header("duplicate tensor names",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate");
    reject_header("overlapping tensors",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlaps");
    reject_header("two tensors aliasing the same bytes",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "overlaps");
    reject_header("a gap between tensors",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "gap");
    reject_header("a gap before the first tensor", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  8, "gap");
    reject_header("bytes after the last tensor", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                  5, "after the last tensor");
    reject_header("data bytes with no tensors", "{}", 4, "after the last tensor");
    reject_header("a tensor past the end of the file",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "truncated");
    reject_header("offsets near 2^63",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[9223372036854775800,9223372036854775804]}}",
                  4, "gap");
    reject_header("offsets over 2^64",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,18446744073709551620]}}", 4,
                  "not valid JSON");
    reject_header("a shape product that overflows 64 bits",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}", 0,
                  "overflows");
    reject_header("shape times dtype size overflowing",
                  "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", 0, "overflows");
    reject_header("a zero dim hiding an overflow-sized shape",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,9223372036854775807],\"data_offsets\":[0,4]}}", 4,
                  "needs 0");
    reject_header("a negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                  "shape[0]");
    reject_header("a non-integer dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
                  "shape[0]");
    reject_header("a string dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,\"3\"],\"data_offsets\":[0,24]}}", 24,
                  "shape[1]");
    reject_header("a shape that is not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16,
                  "arrays");
    reject_header("9 dimensions",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, "dimensions");
    reject_header("an unknown dtype", "{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16,
                  "unknown dtype");
    reject_header("a lowercase dtype", "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "unknown dtype");
    reject_header("a dtype that is not a string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "arrays");
    reject_header("a missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "arrays");
    reject_header("a tensor entry that is not an object", "{\"a\":[0,4]}", 4, "not an object");
    reject_header("data_offsets with one element", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4,
                  "data_offsets");
    reject_header("data_offsets with three elements",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "data_offsets");
    reject_header("negative data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
                  "data_offsets");
    reject_header("real data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", 4,
                  "data_offsets");
    reject_header("end before begin", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
                  "end before begin");
    reject_header("a dtype size mismatch (F32 [2] in 4 bytes)",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "needs 8");
    reject_header("a dtype size mismatch (F16 [2] in 8 bytes)",
                  "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "needs 4");
    reject_header("an F4 tensor of 3 elements (not whole bytes)",
                  "{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2, "whole number of bytes");
    reject_header("metadata that is not an object", "{\"__metadata__\":[\"pt\"]}", 0, "__metadata__");
    reject_header("a metadata value that is not a string", "{\"__metadata__\":{\"format\":1}}", 0, "not a string");

    snprintf(path, sizeof path, "%s/missing.safetensors", tmp);
    safetensors *f = sft_open(path, err, sizeof err);
    ok(!f && strstr(err, "No such file"), "a missing file: %s", err);
    f = sft_open(tmp, err, sizeof err);
    ok(!f && strstr(err, "not a regular file"), "a directory: %s", err);

    /* Edge cases the reference reader accepts. */
    ok(accept_header("an empty header object", "{}", 0) == 0, "  ... with no tensors");
    accept_header("a header padded with spaces", "{}      ", 0);
    accept_header("__metadata__: null", "{\"__metadata__\":null}", 0);
    ok(accept_header("empty tensors sharing an offset",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"c\":{\"dtype\":\"I64\",\"shape\":[3,0],\"data_offsets\":[4,4]}}", 4) == 3, "  ... all three");
    accept_header("a scalar (shape [])", "{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}", 8);
    accept_header("an unknown extra field (ignored, as upstream)",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"note\":1}}", 4);
    accept_header("an F4 tensor of 4 elements", "{\"a\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[0,2]}}", 2);
    accept_header("8 dimensions", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,2]}}", 2);
}

/* The four fixtures from swift-transformers; values from their PROVENANCE.md. */
static void test_fixtures(void)
{
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/../shared/data/safetensors-fixtures", root);
    struct stat st;
    if (stat(dir, &st) != 0) {
        ok(1, "# SKIP ../shared/data/safetensors-fixtures is absent");
        return;
    }
    static const struct { const char *file, *dtype; int ndim; int64_t shape[4]; int n; float v[18]; } fx[] = {
        {"tensor-1d-int32", "I32", 1, {3}, 3, {1, 2, 3}},
        {"tensor-2d-float64", "F64", 2, {2, 3}, 6, {1, 2, 3, 24, 25, 26}},
        {"tensor-3d-float32", "F32", 3, {2, 2, 3}, 12, {22, 23, 24, 11, 12, 13, 2, 3, 4, 1, 2, 3}},
        {"tensor-4d-float32", "F32", 4, {2, 3, 1, 3}, 18, {11, 12, 13, 1, 2, 3, 4, 5, 6, 22, 23, 24, 15, 16, 17, 17, 18, 19}},
    };
    for (int k = 0; k < 4; k++) {
        char path[PATH_MAX + 128], err[512] = "";
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, fx[k].file);
        for (int via_mem = 0; via_mem < 2; via_mem++) {
            unsigned char *copy = NULL;
            safetensors *f = via_mem ? open_copy(path, &copy, err, sizeof err) : sft_open(path, err, sizeof err);
            if (!ok(f != NULL, "%s opens%s", fx[k].file, via_mem ? " from memory" : "")) {
                printf("#   %s\n", err);
                free(copy);
                continue;
            }
            const sft_entry *e = sft_find(f, "embedding");
            int good = sft_count(f) == 1 && e == sft_entry_at(f, 0) && strcmp(e->dtype, fx[k].dtype) == 0 &&
                       e->ndim == fx[k].ndim && (int)sft_numel(e) == fx[k].n;
            for (int d = 0; e && d < fx[k].ndim; d++)
                good = good && e->shape[d] == fx[k].shape[d];
            ok(good, "%s: one tensor 'embedding', %s, shape as in PROVENANCE.md", fx[k].file, fx[k].dtype);
            if (!e) {
                sft_close(f);
                free(copy);
                continue;
            }
            float out[18];
            int32_t iv[18];
            if (strcmp(fx[k].dtype, "I32") == 0) {
                int rc = sft_read_f32(f, e, out, err, sizeof err);
                ok(rc == -1 && strstr(err, "unsupported dtype I32 for float read"), "%s: float read refused: %s",
                   fx[k].file, err);
                rc = sft_read_i32(f, e, iv, err, sizeof err);
                ok(rc == 0 && iv[0] == 1 && iv[1] == 2 && iv[2] == 3, "%s: int32 values 1 2 3", fx[k].file);
            } else {
                int rc = sft_read_f32(f, e, out, err, sizeof err);
                good = rc == 0;
                for (int i = 0; i < fx[k].n; i++)
                    good = good && out[i] == fx[k].v[i];
                ok(good, "%s: values as in PROVENANCE.md", fx[k].file);
                ok(sft_read_i32(f, e, iv, err, sizeof err) == -1, "%s: integer read refused: %s", fx[k].file, err);
            }
            ok(sft_find(f, "embeddings") == NULL && sft_find(f, "") == NULL, "%s: sft_find misses", fx[k].file);
            sft_close(f);
            free(copy);
        }
    }
}

/* Byte-exact output for the test vectors of the reference Rust writer (tensor.rs tests). */
static void expect_bytes(const char *what, const char *path, const char *header, const float *data, size_t nfloat)
{
    size_t hlen = strlen(header), len = 0, want_len = 8 + hlen + 4 * nfloat;
    unsigned char *got = slurp(path, &len), *want = malloc(want_len);
    for (int i = 0; i < 8; i++)
        want[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(want + 8, header, hlen);
    if (nfloat)
        memcpy(want + 8 + hlen, data, 4 * nfloat);
    if (!ok(got && len == want_len && memcmp(got, want, len) == 0, "%s: bytes as the Python writer", what))
        printf("#   got %zu bytes: %.*s\n", len, got && len > 8 ? (int)(len - 8) : 0, got ? (char *)got + 8 : "");
    free(got);
    free(want);
}

static void test_writer_bytes(void)
{
    char path[PATH_MAX + 32], err[512] = "";
    snprintf(path, sizeof path, "%s/w.safetensors", tmp);
    float v[6] = {0, 1, 2, 3, 4, 5};

    sft_tensor_f32 t = {"attn.0", v, 3, {1, 2, 3}};
    ok(sft_write_f32(path, &t, 1, NULL, err, sizeof err) == 0, "write attn.0");
    expect_bytes("attn.0 [1,2,3] (64-byte header, no padding)", path,
                 "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}", v, 6);

    sft_tensor_f32 t2 = {"attn0", v, 4, {1, 1, 2, 3}};
    ok(sft_write_f32(path, &t2, 1, NULL, err, sizeof err) == 0, "write attn0 over the previous file");
    expect_bytes("attn0 [1,1,2,3] (65 bytes padded to 72)", path,
                 "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ", v, 6);

    ok(sft_write_f32(path, NULL, 0, NULL, err, sizeof err) == 0, "write no tensors");
    expect_bytes("no tensors", path, "{}      ", NULL, 0);

    const char *meta[] = {"framework", "pt", NULL};
    ok(sft_write_f32(path, NULL, 0, meta, err, sizeof err) == 0, "write metadata only");
    expect_bytes("metadata only", path, "{\"__metadata__\":{\"framework\":\"pt\"}}     ", NULL, 0);

    /* Sorted by name, metadata first, offsets contiguous in name order. */
    float a[2] = {1, 2}, b[1] = {3};
    sft_tensor_f32 two[2] = {{"b", b, 1, {1}}, {"a", a, 2, {1, 2}}};
    const char *pt[] = {"format", "pt", NULL};
    ok(sft_write_f32(path, two, 2, pt, err, sizeof err) == 0, "write b, a");
    float ab[3] = {1, 2, 3};
    expect_bytes("two tensors sorted by name", path,
                 "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}   ", ab, 3);

    sft_tensor_f32 dup[2] = {{"a", a, 1, {1}}, {"a", b, 1, {1}}};
    ok(sft_write_f32(path, dup, 2, NULL, err, sizeof err) == -1 && strstr(err, "duplicate"), "refuses duplicate names");
    sft_tensor_f32 bad = {"__metadata__", a, 1, {1}};
    ok(sft_write_f32(path, &bad, 1, NULL, err, sizeof err) == -1, "refuses the name __metadata__");
    sft_tensor_f32 neg = {"n", a, 1, {-1}};
    ok(sft_write_f32(path, &neg, 1, NULL, err, sizeof err) == -1, "refuses a negative dim");
    char nodir[PATH_MAX + 32];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir.safetensors", tmp);
    ok(sft_write_f32(nodir, &t, 1, NULL, err, sizeof err) == -1 && strstr(err, "No such file"),
       "reports an unwritable path: %s", err);
}

/* Deterministic awkward values: signed zeros, subnormals, infinities, a NaN, ordinary numbers. */
static float awkward(size_t i)
{
    static const uint32_t special[] = {0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x7f800000,
                                       0xff800000, 0x7fc00001, 0x3f800000, 0x7f7fffff};
    uint32_t bits = i < 9 ? special[i] : (uint32_t)(i * 2654435761u) ^ 0x3c000000u;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static int run_python(const char *args, const char *out_path)
{
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/reference/safetensors_check.py' %s%s%s", root, args,
             out_path ? " > " : "", out_path ? out_path : "");
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_round_trip(int have_python)
{
    /* Names out of order, with JSON escapes and UTF-8; a scalar, an empty tensor, an 8-dim tensor. */
    enum { NT = 6 };
    static float big[3 * 1000], small[7], scalar[1], e8[2 * 3];
    for (size_t i = 0; i < 3000; i++)
        big[i] = awkward(i);
    for (int i = 0; i < 7; i++)
        small[i] = awkward(i + 3);
    scalar[0] = -0.5f;
    for (int i = 0; i < 6; i++)
        e8[i] = (float)i / 3;
    sft_tensor_f32 t[NT] = {
        {"encoder.layer.10.weight", big, 2, {3, 1000}},
        {"encoder.layer.2.weight", small, 1, {7}},
        {"quote\"back\\slash\ttab", scalar, 0, {0}},
        {"\xc3\xa9t\xc3\xa9", e8, 8, {1, 1, 2, 1, 1, 3, 1, 1}},
        {"empty", NULL, 2, {0, 5}},
        {"Z", scalar, 1, {1}},
    };
    char path[PATH_MAX + 32], err[512] = "";
    snprintf(path, sizeof path, "%s/round.safetensors", tmp);
    const char *meta[] = {"format", "pt", "note", "line\nbreak", NULL};
    ok(sft_write_f32(path, t, NT, meta, err, sizeof err) == 0, "round trip: write %d tensors", NT);

    char tmpname[PATH_MAX + 64];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", path, (long)getpid());
    ok(access(tmpname, F_OK) != 0, "round trip: no temporary file left behind");

    safetensors *f = sft_open(path, err, sizeof err);
    if (!ok(f != NULL, "round trip: reopen")) {
        printf("#   %s\n", err);
        return;
    }
    ok(sft_count(f) == NT, "round trip: %d tensors", sft_count(f));
    ok(sft_metadata(f, "format") && strcmp(sft_metadata(f, "format"), "pt") == 0 &&
       strcmp(sft_metadata(f, "note"), "line\nbreak") == 0 && !sft_metadata(f, "missing"), "round trip: metadata");
    int order_ok = 1;
    for (int i = 1; i < sft_count(f); i++)
        order_ok = order_ok && strcmp(sft_entry_at(f, i - 1)->name, sft_entry_at(f, i)->name) < 0 &&
                   sft_entry_at(f, i - 1)->end == sft_entry_at(f, i)->begin;
    ok(order_ok && sft_entry_at(f, NT) == NULL && sft_entry_at(f, -1) == NULL, "round trip: data in name order");
    for (int k = 0; k < NT; k++) {
        const sft_entry *e = sft_find(f, t[k].name);
        int good = e && strcmp(e->dtype, "F32") == 0 && e->ndim == t[k].ndim;
        for (int d = 0; good && d < t[k].ndim; d++)
            good = e->shape[d] == t[k].shape[d];
        size_t n = good ? sft_numel(e) : 0;
        float *back = malloc((n ? n : 1) * sizeof(float));
        good = good && sft_read_f32(f, e, back, err, sizeof err) == 0 &&
               (n == 0 || memcmp(back, t[k].data, n * sizeof(float)) == 0);
        ok(good, "round trip: '%s' (%zu floats) bit-identical", t[k].name, n);
        free(back);
    }
    sft_close(f);

    if (!have_python) {
        ok(1, "# SKIP /usr/bin/python3 absent: no independent check of the written file");
        return;
    }
    /* The independent parser checks the layout rules and hands back every value's bits. */
    char out[PATH_MAX + 32];
    snprintf(out, sizeof out, "%s/verify.json", tmp);
    char args[PATH_MAX + 64];
    snprintf(args, sizeof args, "verify '%s'", path);
    int rc = run_python(args, out);
    ok(rc == 0, "python parser: file layout is what the format and Python's writer say");
    json_error_t jerr;
    json_t *v = json_load_file(out, 0, &jerr);
    json_t *tensors = json_object_get(v, "tensors"), *md = json_object_get(v, "metadata");
    ok(json_object_size(tensors) == NT && json_object_size(md) == 2 &&
       strcmp(json_string_value(json_object_get(md, "note")), "line\nbreak") == 0, "python parser: names, metadata");
    for (int k = 0; k < NT; k++) {
        json_t *x = json_object_get(tensors, t[k].name), *bits = json_object_get(x, "bits");
        int good = x && (int)json_array_size(json_object_get(x, "shape")) == t[k].ndim;
        size_t n = json_array_size(bits);
        for (size_t i = 0; good && i < n; i++) {
            uint32_t want;
            memcpy(&want, &t[k].data[i], 4);
            good = (uint32_t)json_integer_value(json_array_get(bits, i)) == want;
        }
        ok(good, "python parser: '%s' values bit-identical (%zu)", t[k].name, n);
    }
    json_decref(v);
}

/* Files written by hand in Python (F16, BF16 every bit pattern; mixed dtypes at unaligned addresses), with
 * torch's float32 conversions as expected values. */
static void test_python_files(int have_python)
{
    if (!have_python) {
        ok(1, "# SKIP /usr/bin/python3 absent: no Python-written files");
        return;
    }
    char args[PATH_MAX + 16];
    snprintf(args, sizeof args, "make '%s'", tmp);
    int rc = run_python(args, NULL);
    if (rc == 2) {
        ok(1, "# SKIP torch or numpy missing in /usr/bin/python3");
        return;
    }
    if (!ok(rc == 0, "python wrote the F16/BF16/mixed files"))
        return;
    char path[PATH_MAX + 32], err[512] = "";
    snprintf(path, sizeof path, "%s/expect.json", tmp);
    json_error_t jerr;
    json_t *expect = json_load_file(path, 0, &jerr);
    const char *file;
    json_t *tensors;
    json_object_foreach(expect, file, tensors) {
        snprintf(path, sizeof path, "%s/%s", tmp, file);
        for (int via_mem = 0; via_mem < 2; via_mem++) {
            unsigned char *copy = NULL;
            safetensors *f = via_mem ? open_copy(path, &copy, err, sizeof err) : sft_open(path, err, sizeof err);
            if (!ok(f != NULL, "%s opens%s", file, via_mem ? " from memory" : "")) {
                printf("#   %s\n", err);
                free(copy);
                continue;
            }
            const char *name;
            json_t *want;
            json_object_foreach(tensors, name, want) {
                const sft_entry *e = sft_find(f, name);
                if (!ok(e != NULL, "%s: has '%s'", file, name))
                    continue;
                size_t n = sft_numel(e);
                json_t *fb = json_object_get(want, "f32bits"), *iv = json_object_get(want, "i32");
                if (fb) {
                    float *out = malloc(n * sizeof(float));
                    size_t bad = 0;
                    int good = n == json_array_size(fb) && sft_read_f32(f, e, out, err, sizeof err) == 0;
                    for (size_t i = 0; good && i < n; i++) {
                        uint32_t got, w = (uint32_t)json_integer_value(json_array_get(fb, i));
                        memcpy(&got, &out[i], 4);
                        float wf;
                        memcpy(&wf, &w, 4);
                        if (got != w && !(isnan(out[i]) && isnan(wf)))
                            bad++;
                    }
                    ok(good && bad == 0, "%s: '%s' %s -> float32 matches torch for all %zu values", file, name,
                       e->dtype, n);
                    if (bad)
                        printf("#   %zu mismatches\n", bad);
                    free(out);
                } else if (iv) {
                    int32_t out[16];
                    int good = n <= 16 && n == json_array_size(iv) && sft_read_i32(f, e, out, err, sizeof err) == 0;
                    for (size_t i = 0; good && i < n; i++)
                        good = out[i] == json_integer_value(json_array_get(iv, i));
                    ok(good, "%s: '%s' %s -> int32 values", file, name, e->dtype);
                } else if (json_object_get(want, "i32_error")) {
                    int32_t out[4];
                    ok(sft_read_i32(f, e, out, err, sizeof err) == -1 && strstr(err, "does not fit"),
                       "%s: '%s' out of int32 range refused: %s", file, name, err);
                } else {
                    float out[8];
                    ok(sft_read_f32(f, e, out, err, sizeof err) == -1 && strstr(err, "unsupported dtype"),
                       "%s: '%s' %s float read refused: %s", file, name, e->dtype, err);
                }
            }
            sft_close(f);
            free(copy);
        }
    }
    json_decref(expect);
}

int main(int argc, char **argv)
{
    (void)near;   /* tap.h helpers this test does not need */
    (void)skip_all;
    /* argv[0] is .../build/t/safetensors.t: the root is two directories up. */
    char self[PATH_MAX];
    if (!realpath(argv[0], self))
        snprintf(self, sizeof self, "build/t/x");
    snprintf(root, sizeof root, "%s", dirname(dirname(dirname(self))));
    const char *t = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/st-sft.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    char script[PATH_MAX + 64];
    snprintf(script, sizeof script, "%s/tests/reference/safetensors_check.py", root);
    int have_python = access("/usr/bin/python3", X_OK) == 0 && access(script, R_OK) == 0;

    test_hostile();
    test_fixtures();
    test_writer_bytes();
    test_round_trip(have_python);
    test_python_files(have_python);

    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmp);
    return done_testing();
}
