/* libFuzzer target for the safetensors reader: any byte string given to sft_open_mem must be rejected with a
 * message or accepted with every tensor readable, never crash or read out of bounds. Build and run with
 * fuzz/safetensors.sh (clang -fsanitize=fuzzer,address,undefined with lib/safetensors.c only). */
#include "safetensors.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy so that ASan sees a read one byte past the end. */
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    char err[256];
    safetensors *f = sft_open_mem(copy, size, "fuzz", err, sizeof err);
    if (!f) {
        if (!err[0] || !memchr(err, 0, sizeof err))
            abort();   /* a rejection must say why */
        free(copy);
        return 0;
    }
    size_t total = 0;
    for (int i = 0; i < sft_count(f); i++) {
        const sft_entry *e = sft_entry_at(f, i);
        if (sft_find(f, e->name) != e || e->end < e->begin)
            abort();
        total += e->end - e->begin;
        size_t n = sft_numel(e);
        /* Validation bounds n by the file size (times 2 for 4-bit types), so this allocation is small. */
        float *out = malloc((n ? n : 1) * sizeof(float));
        sft_read_f32(f, e, out, err, sizeof err);
        sft_read_i32(f, e, (int32_t *)out, err, sizeof err);
        const volatile unsigned char *raw = sft_data(f, e);
        for (size_t b = 0; b < e->end - e->begin; b++)
            (void)raw[b];
        free(out);
    }
    if (total + 8 > size)
        abort();   /* tensors can never claim more bytes than the file has */
    sft_metadata(f, "format");
    sft_close(f);
    free(copy);
    return 0;
}
