/* libFuzzer target for the pytorch_model.bin reader (lib/torch_load.c): any byte string given to tch_open_mem
 * must be rejected with a message or accepted with every tensor findable and readable, never crash, read out of
 * bounds or allocate more than the input allows. Inputs that are neither a zip nor the legacy stream are also
 * run as the dict pickle of a legacy file (the header pickles prepended), so the unpickler itself is fuzzed and
 * not only libzip. Build and run with fuzz/torchbin.sh. */
#include "torch_load.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void one(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);   /* exact size, so ASan sees a read past the end */
    memcpy(copy, data, size);
    char err[512] = "";
    torch_file *f = tch_open_mem(copy, size, "fuzz", err, sizeof err);
    if (!f) {
        if (!err[0] || !memchr(err, 0, sizeof err))
            abort();   /* a rejection must say why */
        free(copy);
        return;
    }
    for (int i = 0; i < tch_count(f); i++) {
        const tch_tensor *t = tch_tensor_at(f, i);
        if (tch_find(f, t->name) != t)
            abort();
        size_t n = tch_numel(t);
        if (n > size * 8 + 64)
            abort();   /* validation bounds every tensor by its storage, and storages by the file */
        float *out = malloc((n ? n : 1) * sizeof *out);
        tch_read_f32(f, t, out, err, sizeof err);
        free(out);
    }
    tch_close(f);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    if (!tch_sniff(data, size)) {
        static const uint8_t header[] = { 0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8,
                                          0x50, 0x19, '.', 0x80, 0x02, 'M', 0xe9, 0x03, '.', 0x80, 0x02, '}', '.' };
        uint8_t *buf = malloc(sizeof header + size);
        memcpy(buf, header, sizeof header);
        memcpy(buf + sizeof header, data, size);
        one(buf, sizeof header + size);
        free(buf);
    }
    return 0;
}
