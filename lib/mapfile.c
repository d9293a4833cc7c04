/* mapfile.c: read-only maps of whole files, and a clear message instead of a bare SIGBUS when one shrinks. */
#define _GNU_SOURCE
#include "mapfile.h"
#include "errbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The files mapped now, for the SIGBUS handler. A slot is published by setting path last and withdrawn by
 * clearing it first, so the handler never reads a half-written slot (one thread maps at a time: load time). */
#define MAP_SLOTS 64
static struct { const char *volatile path; uintptr_t begin, end; } slots[MAP_SLOTS];
static struct sigaction old_bus;
static int handler_installed;

static void bus_handler(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	for (int i = 0; i < MAP_SLOTS; i++) {
		const char *path = slots[i].path;
		if (path && a >= slots[i].begin && a < slots[i].end) {
			static const char why[] = ": the file shrank while in use (rewritten in place by another program?); "
						  "replace model files by renaming a new file over them\n";
			const char *prog = program_invocation_short_name;
			/* write(2) only: nothing else is safe in a signal handler */
			if (write(2, prog, strlen(prog)) < 0 || write(2, ": ", 2) < 0 || write(2, path, strlen(path)) < 0 ||
			    write(2, why, sizeof why - 1) < 0)
				_exit(74);
			_exit(74);   /* EX_IOERR */
		}
	}
	/* not ours: the action that was there before */
	if (old_bus.sa_flags & SA_SIGINFO) {
		old_bus.sa_sigaction(sig, si, ctx);
	} else if (old_bus.sa_handler != SIG_DFL && old_bus.sa_handler != SIG_IGN) {
		old_bus.sa_handler(sig);
	} else {
		signal(SIGBUS, SIG_DFL);   /* the faulting access runs again and ends the process as it would have */
	}
}

static void watch(const char *path, const void *map, size_t len)
{
	if (!handler_installed) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = bus_handler;
		sa.sa_flags = SA_SIGINFO;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &old_bus) == 0)
			handler_installed = 1;
	}
	for (int i = 0; i < MAP_SLOTS; i++)
		if (!slots[i].path) {
			char *copy = strdup(path);
			if (!copy)
				return;   /* no message then, only the default SIGBUS */
			slots[i].begin = (uintptr_t)map;
			slots[i].end = (uintptr_t)map + len;
			slots[i].path = copy;
			return;
		}
}

static void unwatch(const void *map)
{
	for (int i = 0; i < MAP_SLOTS; i++)
		if (slots[i].path && slots[i].begin == (uintptr_t)map) {
			const char *path = slots[i].path;
			slots[i].path = NULL;
			free((char *)path);
			return;
		}
}

const void *st_map_file(const char *path, size_t min_len, const char *too_short, size_t *len, char *err,
			size_t errlen)
{
	/* O_NONBLOCK: opening a FIFO would wait for a writer for ever; it is refused below as not a regular file
	 * (the flag changes nothing for regular files, which are only mapped) */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		errbuf_set(err, errlen, "%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	size_t n = (size_t)st.st_size;
	if (n < min_len || n == 0) {
		errbuf_set(err, errlen, "%s: file is %zu bytes, %s", path, n, too_short);
		close(fd);
		return NULL;
	}
	/* MAP_PRIVATE, read-only: the weights are used where they lie and nothing can write to them by mistake */
	void *map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
	int mmap_errno = errno;
	close(fd);
	if (map == MAP_FAILED) {
		errbuf_set(err, errlen, "%s: mmap: %s", path, strerror(mmap_errno));
		return NULL;
	}
	watch(path, map, n);
	*len = n;
	return map;
}

void st_unmap_file(const void *map, size_t len)
{
	if (!map)
		return;
	unwatch(map);
	munmap((void *)map, len);
}
