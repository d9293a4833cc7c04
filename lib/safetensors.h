/* safetensors: read and write the tensor file format of Hugging Face models.
 *
 * File layout: 8-byte little-endian u64 N, then N bytes of a JSON object header, then the data.
 * The header maps tensor names to {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (offsets
 * relative to the start of the data) plus an optional "__metadata__" object of string values.
 * sft_open memory-maps the file and validates the whole header before returning (see docs/safetensors.md):
 * every error is a NULL return with a message naming the file and tensor, never a crash. */
#ifndef ST_SAFETENSORS_H
#define ST_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define SFT_MAX_DIMS 8
#define SFT_MAX_HEADER (100u * 1000u * 1000u)   /* same cap as the Rust reference reader */

typedef struct sft_entry {
    char *name;
    char dtype[16];                /* "F32","F16","BF16","F64","I32","I64",... ("F8_E4M3FNUZ" needs 12) */
    int ndim;
    int64_t shape[SFT_MAX_DIMS];
    size_t begin, end;             /* byte offsets in the data section */
} sft_entry;

typedef struct safetensors safetensors;

/* mmap + full validation; NULL + message in err on any problem. */
safetensors *sft_open(const char *path, char *err, size_t errlen);
/* Same validation on a buffer the caller keeps alive until sft_close (used by the fuzzer and tests). */
safetensors *sft_open_mem(const void *buf, size_t len, const char *what, char *err, size_t errlen);
int sft_count(const safetensors *f);
/* Entries in the file's data order (ascending begin). */
const sft_entry *sft_entry_at(const safetensors *f, int i);
const sft_entry *sft_find(const safetensors *f, const char *name);
size_t sft_numel(const sft_entry *e);
/* Size in bytes of one element of dtype; 0 if unknown or smaller than a byte (F4, F6_*). */
size_t sft_dtype_size(const char *dtype);
/* Raw bytes of a tensor (possibly unaligned: copy with memcpy before casting). */
const void *sft_data(const safetensors *f, const sft_entry *e);

/* F32, F16, BF16 and F64 converted to float32 into out (sft_numel floats); -1 + message for other dtypes. */
int sft_read_f32(const safetensors *f, const sft_entry *e, float *out, char *err, size_t errlen);
/* n little-endian values of dtype F32, F16, BF16 or F64 at src (any alignment) to float32; -1 for other dtypes.
 * Shared with the pytorch_model.bin reader (lib/torch_load.c). */
int sft_convert_f32(const char *dtype, const void *src, size_t n, float *out);
/* I32 (and I64 when every value fits) into int32 out; -1 + message for other dtypes. */
int sft_read_i32(const safetensors *f, const sft_entry *e, int32_t *out, char *err, size_t errlen);
/* "__metadata__" string values; NULL if absent. */
const char *sft_metadata(const safetensors *f, const char *key);
void sft_close(safetensors *f);

typedef struct sft_tensor_f32 {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[SFT_MAX_DIMS];
} sft_tensor_f32;

/* Writes F32 tensors (sorted by name in the header and the data as Python does; header padded with spaces to
 * 8-byte alignment), atomically (temp name + rename). meta: NULL-terminated key,value,key,value... list for
 * __metadata__ (e.g. "format","pt"), or NULL for none. 0 on success, -1 + message. */
int sft_write_f32(const char *path, const sft_tensor_f32 *t, int n, const char *const *meta, char *err, size_t errlen);

#endif
