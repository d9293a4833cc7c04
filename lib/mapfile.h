/* mapfile: a whole regular file mapped read-only, for the weight readers (safetensors.c, torch_load.c).
 *
 * The file is opened with O_NONBLOCK (a FIFO would otherwise wait for a writer for ever) and refused when it is
 * not a regular file or is shorter than min_len (which also avoids mapping an empty file, which fails).
 * Depends on libc only, so that the fuzz targets can build it alone.
 *
 * A mapped file that shrinks while in use (rewritten in place by another program) makes the next read of a page
 * past its new end raise SIGBUS. The first map installs a SIGBUS handler that names the file and exits with
 * EX_IOERR (74) when the fault lies in one of the files mapped here; any other SIGBUS keeps its default action. */
#ifndef ST_MAPFILE_H
#define ST_MAPFILE_H

#include <stddef.h>

/* The map, its length in *len; NULL + a message naming path: "PATH: <strerror>", "PATH: not a regular file", or
 * "PATH: file is N bytes, <too_short>" when shorter than min_len. */
const void *st_map_file(const char *path, size_t min_len, const char *too_short, size_t *len, char *err,
                        size_t errlen);
void st_unmap_file(const void *map, size_t len);

#endif
