/* acts.c: kept activations from st-forward to st-step through a memory file (acts.h). */
#define _GNU_SOURCE
#include "acts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run.h"
#include "st.h"

#define ACTS_MAGIC "st-activations1"
#define ACTS_HEADER 4096

typedef struct acts_header {
	char magic[16];
	uint32_t complete;   /* 1: the key, table and chunks describe one batch; 0 while st-forward writes */
	uint32_t pad;
	acts_key key;
	uint64_t nchunks, floats;   /* table entries; floats of the chunks after the table */
} acts_header;

uint64_t acts_hash(const int32_t *ids, size_t nids, const int32_t *lengths, size_t nlengths)
{
	uint64_t h = 1469598103934665603ull;   /* FNV-1a over the 32-bit words */
	for (size_t i = 0; i < nids; i++)
		h = (h ^ (uint32_t)ids[i]) * 1099511628211ull;
	for (size_t i = 0; i < nlengths; i++)
		h = (h ^ (uint32_t)lengths[i]) * 1099511628211ull;
	return h;
}

static size_t table_floats(size_t nchunks)
{
	return (nchunks * 2 + 15) & ~(size_t)15;   /* u64 entries, rounded to 16 floats */
}

static char *note_path(const char *run_dir, int objective)
{
	char *dir = run_rank_dir(run_dir);
	size_t n = strlen(dir) + 40;
	char *p = xmalloc(n);
	snprintf(p, n, "%s/activations-%d", dir, objective);
	free(dir);
	return p;
}

/* ---- st-forward ---- */

struct acts_out {
	int fd;
	char *note;
	size_t budget, cap;   /* bytes */
	char *map;
};

acts_out *acts_out_create(const char *run_dir, int objective, size_t budget, char *err, size_t errlen)
{
	int fd = memfd_create("st-activations", MFD_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot make a memory file for the activations: %s", strerror(errno));
		return NULL;
	}
	acts_out *o = xcalloc(1, sizeof *o);
	o->fd = fd;
	o->budget = budget;
	o->note = note_path(run_dir, objective);
	/* RUN/activations-K names the file; written under a temporary name, then renamed */
	size_t n = strlen(o->note) + 32;
	char *tmp = xmalloc(n);
	snprintf(tmp, n, "%s.tmp.%ld", o->note, (long)getpid());
	FILE *f = fopen(tmp, "w");
	int ok = f && fprintf(f, "st-activations %ld %d\n", (long)getpid(), fd) > 0;
	if (f && fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp, o->note) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", o->note, strerror(errno));
		unlink(tmp);
		free(tmp);
		acts_out_close(o);
		return NULL;
	}
	free(tmp);
	return o;
}

float *acts_out_begin(acts_out *o, size_t nchunks, size_t floats, uint64_t **table)
{
	if (o->map)
		__atomic_store_n(&((acts_header *)o->map)->complete, 0, __ATOMIC_RELEASE);
	size_t bytes = ACTS_HEADER + (table_floats(nchunks) + floats) * sizeof(float);
	if (bytes > o->budget)
		return NULL;
	if (bytes > o->cap) {
		/* grow by a quarter more than asked: batches vary in length */
		size_t cap = bytes + bytes / 4;
		cap = cap > o->budget ? bytes : cap;
		cap = (cap + 4095) & ~(size_t)4095;
		if (o->map)
			munmap(o->map, o->cap);
		o->map = NULL;
		o->cap = 0;
		if (ftruncate(o->fd, (off_t)cap) != 0)
			return NULL;
		void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, o->fd, 0);
		if (p == MAP_FAILED)
			return NULL;
		o->map = p;
		o->cap = cap;
		memcpy(((acts_header *)o->map)->magic, ACTS_MAGIC, sizeof ACTS_MAGIC);
	}
	acts_header *h = (acts_header *)o->map;
	h->nchunks = nchunks;
	h->floats = floats;
	*table = (uint64_t *)(o->map + ACTS_HEADER);
	return (float *)(o->map + ACTS_HEADER) + table_floats(nchunks);
}

void acts_out_commit(acts_out *o, const acts_key *k)
{
	acts_header *h = (acts_header *)o->map;
	h->key = *k;
	__atomic_store_n(&h->complete, 1, __ATOMIC_RELEASE);
}

void acts_out_close(acts_out *o)
{
	if (!o)
		return;
	/* the name goes only while it names our file (a later st-forward may have replaced it) */
	char line[128], mine[128];
	snprintf(mine, sizeof mine, "st-activations %ld %d\n", (long)getpid(), o->fd);
	FILE *f = fopen(o->note, "r");
	if (f) {
		if (fgets(line, sizeof line, f) && !strcmp(line, mine))
			unlink(o->note);
		fclose(f);
	}
	if (o->map)
		munmap(o->map, o->cap);
	close(o->fd);
	free(o->note);
	free(o);
}

/* ---- st-step ---- */

struct acts_in {
	char *note;
	int fd;
	char *map;
	size_t size;
	acts_key tried;   /* the last key the note was read again for */
	int have_tried;
};

acts_in *acts_in_new(const char *run_dir, int objective)
{
	acts_in *in = xcalloc(1, sizeof *in);
	in->note = note_path(run_dir, objective);
	in->fd = -1;
	return in;
}

static void in_unmap(acts_in *in)
{
	if (in->map)
		munmap(in->map, in->size);
	if (in->fd >= 0)
		close(in->fd);
	in->map = NULL;
	in->size = 0;
	in->fd = -1;
}

/* (re)open the file RUN/activations-K names */
static void in_open(acts_in *in)
{
	in_unmap(in);
	FILE *f = fopen(in->note, "r");
	if (!f)
		return;
	long pid = -1;
	int fd = -1;
	int got = fscanf(f, "st-activations %ld %d", &pid, &fd);
	fclose(f);
	if (got != 2 || pid <= 0 || fd < 0)
		return;
	char path[64], target[64];
	snprintf(path, sizeof path, "/proc/%ld/fd/%d", pid, fd);
	/* the note may outlive its st-forward (kill -9), and the pid be another process's now: open only a memory
	 * file of st-forward's, never a FIFO or anything else that process has open */
	ssize_t n = readlink(path, target, sizeof target - 1);
	if (n < 0)
		return;
	target[n] = 0;
	if (strncmp(target, "/memfd:st-activations", 21) != 0)
		return;
	in->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
}

/* maps all of the file (it only grows) */
static int in_map(acts_in *in)
{
	struct stat sb;
	if (in->fd < 0 || fstat(in->fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size < ACTS_HEADER)
		return -1;
	if ((size_t)sb.st_size != in->size) {
		if (in->map)
			munmap(in->map, in->size);
		in->map = NULL;
		in->size = 0;
		void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, in->fd, 0);
		if (p == MAP_FAILED)
			return -1;
		in->map = p;
		in->size = (size_t)sb.st_size;
	}
	return memcmp(in->map, ACTS_MAGIC, sizeof ACTS_MAGIC) == 0 ? 0 : -1;
}

static int matches(acts_in *in, const acts_key *k)
{
	if (in_map(in) != 0)
		return 0;
	const acts_header *h = (const acts_header *)in->map;
	if (!__atomic_load_n(&h->complete, __ATOMIC_ACQUIRE) || memcmp(&h->key, k, sizeof *k) != 0)
		return 0;
	return ACTS_HEADER + (table_floats(h->nchunks) + h->floats) * sizeof(float) <= in->size;
}

float *acts_in_find(acts_in *in, const acts_key *k, size_t chunk)
{
	if (!matches(in, k)) {
		if (in->have_tried && !memcmp(&in->tried, k, sizeof *k))
			return NULL;
		in->tried = *k;   /* a new st-forward, or none: read the note once per batch */
		in->have_tried = 1;
		in_open(in);
		if (!matches(in, k))
			return NULL;
	}
	const acts_header *h = (const acts_header *)in->map;
	if (chunk >= h->nchunks)
		return NULL;
	uint64_t off = ((const uint64_t *)(in->map + ACTS_HEADER))[chunk];
	if (off == UINT64_MAX || off >= h->floats)
		return NULL;
	return (float *)(in->map + ACTS_HEADER) + table_floats(h->nchunks) + off;
}

void acts_in_free(acts_in *in)
{
	if (!in)
		return;
	in_unmap(in);
	free(in->note);
	free(in);
}
