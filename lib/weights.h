/* weights: the tensors of a module folder, whatever file holds them.
 *
 * One table of (name, dtype, shape) over, in the order tried (as transformers does, safetensors first):
 *   model.safetensors                                    (lib/safetensors.c)
 *   model.safetensors.index.json + the shards it names
 *   pytorch_model.bin                                    (lib/torch_load.c: zip or legacy torch.save, never executed)
 *   pytorch_model.bin.index.json + the shards it names
 * A sharded index is {"weight_map": {tensor name: shard file name}}; every shard it names is read whole, each
 * name must be in the shard the map gives, and no name may be in two shards. Saving stays model.safetensors. */
#ifndef ST_WEIGHTS_H
#define ST_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#define WT_MAX_DIMS 8

typedef struct wt_tensor {
    const char *name;
    const char *dtype;             /* safetensors names: "F32", "F16", "BF16", "I64", ... */
    int ndim;
    const int64_t *shape;
    int part;                      /* which file (weights_part_path) */
    const void *entry;             /* the reader's own record */
} wt_tensor;

typedef struct weights weights;

/* Opens the weights of folder dir; NULL + message naming the file. When no weight file is there at all,
 * errno is ENOENT and the message names dir/model.safetensors. */
weights *weights_open(const char *dir, char *err, size_t errlen);
int weights_count(const weights *w);
const wt_tensor *weights_at(const weights *w, int i);
const wt_tensor *weights_find(const weights *w, const char *name);
/* The file a tensor comes from, for messages; weights_path(w) is the file or index that was opened. */
const char *weights_part_path(const weights *w, const wt_tensor *t);
const char *weights_path(const weights *w);
size_t weights_numel(const wt_tensor *t);
/* F32, F16, BF16, F64 to float32 into out (weights_numel floats); -1 + message naming file and tensor. */
int weights_read_f32(weights *w, const wt_tensor *t, float *out, char *err, size_t errlen);
/* The tensor's float32 values where they lie in the mapped file, for use in place: only an F32 tensor of a
 * safetensors file whose bytes sit at a 4-byte-aligned address (a header padded as the reference writer pads
 * it). NULL otherwise: read it with weights_read_f32. Valid until weights_close; read-only (writing faults). */
const float *weights_f32_in_place(const weights *w, const wt_tensor *t);
void weights_close(weights *w);

#endif
