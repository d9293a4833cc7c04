/* fuzz_stream.c: libFuzzer target for the record stream reader (lib/stream.c): any bytes -- msgpack, JSON
 * Lines, zstd-compressed either, or garbage -- must read as records or end in die() with a message, never crash,
 * read out of bounds or allocate more than the input justifies (run with -rss_limit_mb and -malloc_limit_mb).
 * die() is turned into a longjmp back here (st_die_hook), so the reader's memory on that path is not freed:
 * run with detect_leaks=0. Every record read is printed as JSON and read back. */
#include "st.h"
#include "stream.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void (*st_die_hook)(void);
static jmp_buf back;
static void die_back(void) { longjmp(back, 1); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 60000)   /* the whole input must fit in a pipe's buffer: written before it is read */
		return 0;
	int p[2];
	if (pipe(p))
		abort();
	if (size && write(p[1], data, size) != (ssize_t)size)
		abort();
	close(p[1]);
	st_die_hook = die_back;
	if (!setjmp(back)) {
		st_reader *r = st_reader_open(p[0], "fuzz");
		st_val *rec;
		while ((rec = st_read(r))) {
			if (rec->type != ST_MAP)
				abort();   /* a record is always a map */
			size_t len;
			char *json = st_to_json(rec, &len);
			char err[256];
			st_val *again = st_from_json(json, len, err, sizeof err);
			st_free(again);
			free(json);
			st_free(rec);
		}
		st_reader_close(r);
	}
	st_die_hook = NULL;
	close(p[0]);
	return 0;
}
