/* hub.h: models by name from the Hugging Face Hub, kept in the cache huggingface_hub uses, so that Python and st
 * share downloads (docs/hub.md).
 *
 * Every tool that takes a model resolves its argument here (model_open, st-step, st-tokenize --model): a path
 * that exists is used as it is; otherwise "org/name" or "name" (the library's rule: sentence-transformers/name),
 * with an optional "@revision", becomes a snapshot directory of the cache, downloaded when needed. */
#ifndef ST_HUB_H
#define ST_HUB_H

#include <stddef.h>

/* "org/name@rev" -> repo "org/name", revision "rev" ("main" when absent). A bare name gets the library's
 * organisation (sentence-transformers/) unless it is one of the old models without one (bert-base-uncased, ...).
 * 0, or -1 when ARG is not a Hub model name (a path with more than one '/', characters a repo id cannot have). */
typedef struct hub_name {
	char repo[160];        /* org/name */
	char revision[256];    /* branch, tag or commit */
} hub_name;
int hub_parse_name(const char *arg, hub_name *out);

/* The cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
 * ~/.cache/huggingface/hub. */
void hub_cache_dir(char *out, size_t outlen);

/* ARG itself (a copy) when that path exists; otherwise the snapshot directory of the Hub model ARG names,
 * from the cache or downloaded into it. NULL with *code (EX_NOINPUT: no such model, not cached while
 * offline, access refused; EX_IOERR: the network or the disk failed, a download did not match its checksum)
 * and a message naming the model. The token is never part of a message. */
char *hub_resolve(const char *arg, int *code, char *err, size_t errlen);

/* For tools: hub_resolve, or die with its code and message. */
char *hub_model_path(const char *arg);

#endif
