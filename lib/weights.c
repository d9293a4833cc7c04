/* weights.c: one tensor table over model.safetensors, pytorch_model.bin and their sharded forms (weights.h). */
#include "weights.h"
#include "errbuf.h"
#include "safetensors.h"
#include "torch_load.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct wt_part {
    char path[PATH_MAX];
    safetensors *sft;    /* one of the two */
    torch_file *tch;
} wt_part;

struct weights {
    char path[PATH_MAX];
    wt_part *parts;
    int nparts;
    wt_tensor *t;
    int n;
    const wt_tensor **by_name;
};

static void wt_join(char *out, const char *dir, const char *name)
{
    size_t n = strlen(dir);
    snprintf(out, PATH_MAX, "%s%s%s", dir, n && dir[n - 1] != '/' ? "/" : "", name);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

void weights_close(weights *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->nparts; i++) {
        sft_close(w->parts[i].sft);
        tch_close(w->parts[i].tch);
    }
    free(w->parts);
    free(w->t);
    free(w->by_name);
    free(w);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const wt_tensor *const *)a)->name, (*(const wt_tensor *const *)b)->name);
}

/* Opens one file as a part and appends its tensors to the table. */
static int add_part(weights *w, const char *path, int torch, char *err, size_t errlen)
{
    wt_part *parts = realloc(w->parts, (size_t)(w->nparts + 1) * sizeof *parts);
    if (!parts) {
        errbuf_set(err, errlen, "%s: out of memory", path);
        return -1;
    }
    w->parts = parts;
    wt_part *p = &parts[w->nparts];
    memset(p, 0, sizeof *p);
    snprintf(p->path, sizeof p->path, "%s", path);
    int count;
    if (torch) {
        if (!(p->tch = tch_open(path, err, errlen)))
            return -1;
        count = tch_count(p->tch);
    } else {
        if (!(p->sft = sft_open(path, err, errlen)))
            return -1;
        count = sft_count(p->sft);
    }
    int part = w->nparts++;
    wt_tensor *t = realloc(w->t, (size_t)(w->n + count + 1) * sizeof *t);
    if (!t) {
        errbuf_set(err, errlen, "%s: out of memory", path);
        return -1;
    }
    w->t = t;
    for (int i = 0; i < count; i++) {
        wt_tensor *x = &w->t[w->n++];
        x->part = part;
        if (torch) {
            const tch_tensor *e = tch_tensor_at(p->tch, i);
            x->name = e->name, x->dtype = e->dtype, x->ndim = e->ndim, x->shape = e->shape, x->entry = e;
        } else {
            const sft_entry *e = sft_entry_at(p->sft, i);
            x->name = e->name, x->dtype = e->dtype, x->ndim = e->ndim, x->shape = e->shape, x->entry = e;
        }
    }
    return 0;
}

/* index.json: {"weight_map": {name: shard}} -> every shard opened once, every name checked in its shard. */
static int add_index(weights *w, const char *dir, const char *path, int torch, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        errbuf_set(err, errlen, "%s: bad JSON at line %d: %s", path, je.line, je.text);
        return -1;
    }
    int rc = -1;
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map) || !json_object_size(map)) {
        errbuf_set(err, errlen, "%s: no \"weight_map\" object of tensor name -> shard file", path);
        goto out;
    }
    const char *name;
    json_t *v;
    json_object_foreach(map, name, v) {
        const char *shard = json_string_value(v);
        if (!shard || !*shard || strchr(shard, '/') || !strcmp(shard, ".") || !strcmp(shard, "..")) {
            errbuf_set(err, errlen, "%s: shard of tensor %s is not a file name in the same folder", path, name);
            goto out;
        }
        char spath[PATH_MAX];
        wt_join(spath, dir, shard);
        int known = 0;
        for (int i = 0; i < w->nparts && !known; i++)
            known = !strcmp(w->parts[i].path, spath);
        if (!known && add_part(w, spath, torch, err, errlen) < 0)
            goto out;
    }
    rc = 0;
out:
    if (rc == 0) {   /* each name where the map says (checked once the table is sorted, in weights_open) */
        json_object_foreach(map, name, v) {
            char spath[PATH_MAX];
            wt_join(spath, dir, json_string_value(v));
            int found = 0;
            for (int i = 0; i < w->n && !found; i++)
                found = !strcmp(w->t[i].name, name) && !strcmp(w->parts[w->t[i].part].path, spath);
            if (!found) {
                errbuf_set(err, errlen,
                           "%s: tensor %s is not in %s, the shard the weight_map names", path, name, spath);
                rc = -1;
                break;
            }
        }
    }
    json_decref(root);
    return rc;
}

weights *weights_open(const char *dir, char *err, size_t errlen)
{
    static const struct { const char *file; int torch, index; } kinds[] = {
        {"model.safetensors", 0, 0}, {"model.safetensors.index.json", 0, 1},
        {"pytorch_model.bin", 1, 0}, {"pytorch_model.bin.index.json", 1, 1},
    };
    weights *w = calloc(1, sizeof *w);
    if (!w) {
        errbuf_set(err, errlen, "%s: out of memory", dir);
        return NULL;
    }
    int k;
    for (k = 0; k < 4; k++) {
        wt_join(w->path, dir, kinds[k].file);
        if (is_file(w->path))
            break;
    }
    if (k == 4) {
        wt_join(w->path, dir, "model.safetensors");
        errbuf_set(err, errlen, "%s: missing (nor pytorch_model.bin, nor a sharded index of either)", w->path);
        weights_close(w);
        errno = ENOENT;
        return NULL;
    }
    int rc = kinds[k].index ? add_index(w, dir, w->path, kinds[k].torch, err, errlen)
                            : add_part(w, w->path, kinds[k].torch, err, errlen);
    if (rc == 0 && !(w->by_name = calloc((size_t)w->n + 1, sizeof *w->by_name))) {
        errbuf_set(err, errlen, "%s: out of memory", w->path);
        rc = -1;
    }
    if (rc == 0) {
        for (int i = 0; i < w->n; i++)
            w->by_name[i] = &w->t[i];
        qsort(w->by_name, (size_t)w->n, sizeof *w->by_name, cmp_name);
        for (int i = 1; i < w->n && rc == 0; i++)
            if (!strcmp(w->by_name[i - 1]->name, w->by_name[i]->name)) {
                errbuf_set(err, errlen, "%s: tensor %s is in both %s and %s", w->path, w->by_name[i]->name,
                       w->parts[w->by_name[i - 1]->part].path, w->parts[w->by_name[i]->part].path);
                rc = -1;
            }
    }
    if (rc < 0) {
        weights_close(w);
        errno = EINVAL;
        return NULL;
    }
    return w;
}

int weights_count(const weights *w) { return w->n; }

const wt_tensor *weights_at(const weights *w, int i) { return i >= 0 && i < w->n ? &w->t[i] : NULL; }

const wt_tensor *weights_find(const weights *w, const char *name)
{
    wt_tensor key = {.name = name};
    const wt_tensor *kp = &key;
    const wt_tensor **hit = bsearch(&kp, w->by_name, (size_t)w->n, sizeof *w->by_name, cmp_name);
    return hit ? *hit : NULL;
}

const char *weights_part_path(const weights *w, const wt_tensor *t) { return w->parts[t->part].path; }

const char *weights_path(const weights *w) { return w->path; }

size_t weights_numel(const wt_tensor *t)
{
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

int weights_read_f32(weights *w, const wt_tensor *t, float *out, char *err, size_t errlen)
{
    const wt_part *p = &w->parts[t->part];
    char msg[512];
    int rc = p->tch ? tch_read_f32(p->tch, t->entry, out, msg, sizeof msg)
                    : sft_read_f32(p->sft, t->entry, out, msg, sizeof msg);
    if (rc < 0)   /* the torch reader names the file already; the safetensors one names the tensor only */
        errbuf_set(err, errlen, p->tch ? "%s%s" : "%s: %s", p->tch ? "" : p->path, msg);
    return rc;
}

const float *weights_f32_in_place(const weights *w, const wt_tensor *t)
{
    const wt_part *p = &w->parts[t->part];
    if (!p->sft || strcmp(t->dtype, "F32"))
        return NULL;   /* pytorch_model.bin storages are read through libzip (CRC checked): always copied */
    const void *data = sft_data(p->sft, t->entry);
    return (uintptr_t)data % _Alignof(float) ? NULL : data;
}
