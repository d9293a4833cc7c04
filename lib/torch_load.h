/* torch_load: read the tensors of a PyTorch state dict file (pytorch_model.bin) without executing anything.
 *
 * Two containers are read: the zip archive torch.save writes since PyTorch 1.6 (PREFIX/data.pkl, the pickled
 * dict; PREFIX/data/KEY, one raw little-endian storage per key; PREFIX/version, PREFIX/byteorder) and the legacy
 * stream of older releases (magic, protocol and system-info pickles, the dict pickle, the sorted storage keys,
 * then each storage as an int64 element count and its bytes). The pickle is read by a restricted interpreter
 * that knows only what a state dict contains: dicts, strings, ints, tuples, persistent storage ids, and the
 * globals collections.OrderedDict, torch._utils._rebuild_tensor(_v2) / _rebuild_parameter and torch.*Storage.
 * Any other global (os.system, builtins.eval, ...) or opcode is refused with a message naming it; nothing in
 * the file is ever called. Every size, stride and offset is checked against the storage before use
 * (docs/model-directory.md, "Weight files"). */
#ifndef ST_TORCH_LOAD_H
#define ST_TORCH_LOAD_H

#include <stddef.h>
#include <stdint.h>

#define TCH_MAX_DIMS 8

typedef struct tch_tensor {
    char *name;
    char dtype[8];                 /* safetensors names: "F32", "F16", "BF16", "F64", "I64", "I32", ... */
    int ndim;
    int64_t shape[TCH_MAX_DIMS];
    int64_t stride[TCH_MAX_DIMS];  /* in elements, as torch keeps them */
    int64_t offset;                /* storage offset, in elements */
    int storage;                   /* index of the storage holding the data */
} tch_tensor;

typedef struct torch_file torch_file;

/* Opens and validates a whole file (memory-mapped); NULL + a message naming the file and the problem. */
torch_file *tch_open(const char *path, char *err, size_t errlen);
/* The same on a buffer the caller keeps alive until tch_close (the fuzzer and tests). */
torch_file *tch_open_mem(const void *buf, size_t len, const char *what, char *err, size_t errlen);
/* 1 when the first bytes look like a torch.save file (zip or legacy pickle), 0 otherwise. */
int tch_sniff(const void *buf, size_t len);
int tch_count(const torch_file *f);
const tch_tensor *tch_tensor_at(const torch_file *f, int i);   /* in the dict's order */
const tch_tensor *tch_find(const torch_file *f, const char *name);
size_t tch_numel(const tch_tensor *t);
/* F32, F16, BF16, F64 tensors (any strides) converted to float32 into out (tch_numel floats); -1 + message. */
int tch_read_f32(torch_file *f, const tch_tensor *t, float *out, char *err, size_t errlen);
void tch_close(torch_file *f);

#endif
