/* st.c: errors, allocation, threads and small file helpers shared by every st-* program. */
#define _GNU_SOURCE
#include "st.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

const char *st_prog = "st";
static int threads_in_use = 1;

/* The stream writer registers a flush hook so die() keeps the complete records already written. */
void (*st_die_hook)(void);

void st_tool_init(const char *name, int argc, char **argv, const char *usage)
{
	st_prog = name;
	signal(SIGPIPE, SIG_IGN);   /* EPIPE is handled where we write */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			exit(0);
		}
	}
	st_set_threads(0);
}

int st_getopt(int argc, char **argv, const struct option *opts, const char *usage)
{
	opterr = 0;
	/* the short letters are those of the table (e.g. {"output", required_argument, 0, 'o'} accepts -o FILE) */
	char shorts[128] = ":";
	size_t k = 1;
	for (const struct option *o = opts; o->name && k + 3 < sizeof shorts; o++)
		if (!o->flag && o->val > 0 && o->val < 128 && isalnum(o->val)) {
			shorts[k++] = (char)o->val;
			if (o->has_arg == required_argument)
				shorts[k++] = ':';
		}
	shorts[k] = '\0';
	/* getopt_long would take "--mod" for "--model": refuse abbreviations, as a documented CLI must */
	int idx = -1;
	int c = getopt_long(argc, argv, shorts, opts, &idx);
	if (c == -1)
		return -1;
	/* the element just parsed: the one before optind, or the one before its separate value; not argv[optind]
	 * as it was before the call, as getopt_long steps over positional arguments (st-eval KIND --mod ...) */
	const char *arg = optind >= 1 && optind - 1 < argc ? argv[optind - 1] : "";
	if (optarg && optind >= 2 && optarg == argv[optind - 1])
		arg = argv[optind - 2];
	if (c == '?' || c == ':') {
		if (strncmp(arg, "--", 2) != 0) {
			if (c == ':')
				usage_error(usage, "option '-%c' needs a value", optopt);
			usage_error(usage, "unknown option '-%c'", optopt ? optopt : '?');
		}
		char name[256];
		snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
		if (c == ':')
			usage_error(usage, "option '%s' needs a value", name);
		if (strchr(arg, '='))
			for (const struct option *o = opts; o->name; o++)
				if (!strcmp(o->name, name + 2) && o->has_arg == no_argument)
					usage_error(usage, "option '%s' takes no value", name);
		usage_error(usage, "unknown option '%s'", name);
	}
	if (idx >= 0 && !strncmp(arg, "--", 2)) {
		size_t n = strcspn(arg + 2, "=");
		if (strlen(opts[idx].name) != n)
			usage_error(usage, "unknown option '%s' (did you mean '--%s'?)", arg, opts[idx].name);
	}
	return c;
}

static int progress_on;   /* a progress line is on the terminal's current line: messages start below it */

static void vmessage(const char *prefix, const char *fmt, va_list ap)
{
	if (progress_on) {
		progress_on = 0;
		if (write(2, "\n", 1) < 0)
			return;
	}
	char buf[4096];
	int n = snprintf(buf, sizeof buf, "%s: %s", st_prog, prefix);
	if (n < 0 || n >= (int)sizeof buf)
		n = 0;
	vsnprintf(buf + n, sizeof buf - n, fmt, ap);
	size_t len = strlen(buf);
	if (len + 1 < sizeof buf)
		buf[len++] = '\n';
	/* one write, so messages from stages of a pipeline do not interleave mid-line */
	if (write(2, buf, len) < 0)
		return;
}

void die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage("", fmt, ap);
	va_end(ap);
	if (st_die_hook)
		st_die_hook();
	exit(code);
}

void warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage("warning: ", fmt, ap);
	va_end(ap);
}

void usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage("", fmt, ap);
	va_end(ap);
	fputs(usage, stderr);
	exit(EX_USAGE);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die(EX_OSERR, "out of memory (%zu bytes)", n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die(EX_OSERR, "out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die(EX_OSERR, "out of memory (%zu bytes)", n);
	return p;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

size_t xmul(size_t n, size_t size)
{
	size_t r;
	if (__builtin_mul_overflow(n, size, &r))
		die(EX_DATAERR, "size overflow (%zu x %zu)", n, size);
	return r;
}

/* Weak, so that this file alone does not make a tool need OpenBLAS: the Makefile links with --as-needed, and a
 * tool without matrix products (st-tokenize, st-batch) then starts without loading it and its thread pool.
 * blas_thread_shutdown_ is what OpenBLAS's pthreads build runs before a fork: it ends the pool's workers. */
#pragma weak openblas_set_num_threads
#pragma weak openblas_get_num_threads
#pragma weak openblas_get_parallel
int blas_thread_shutdown_(void) __attribute__((weak));

int st_blas_pool_off(void)
{
	if (!openblas_set_num_threads || !openblas_get_parallel || openblas_get_parallel() != 1)
		return 0;   /* no OpenBLAS, or not its pthreads build */
	if (openblas_get_num_threads() != 1)
		openblas_set_num_threads(1);   /* (this can start the pool again: it is ended next) */
	if (blas_thread_shutdown_)
		blas_thread_shutdown_();
	return 1;
}

int st_set_threads(int n)
{
	if (n <= 0) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		n = cores > 0 ? (int)cores : 1;
	}
	threads_in_use = n;
	if (!st_blas_pool_off() && openblas_set_num_threads)
		openblas_set_num_threads(n);   /* an OpenMP build of OpenBLAS: OpenMP's count */
#ifdef _OPENMP
	omp_set_num_threads(n);
#endif
	return n;
}

int st_threads(void) { return threads_in_use; }

long st_parse_long(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	long v = s ? strtol(s, &end, 10) : 0;
	if (!s || !*s || *end || errno)
		die(EX_USAGE, "%s needs a whole number; got '%s'", opt, s ? s : "");
	return v;
}

double st_parse_double(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	double v = s ? strtod(s, &end) : 0;
	if (!s || !*s || *end || errno)
		die(EX_USAGE, "%s needs a number; got '%s'", opt, s ? s : "");
	return v;
}

int st_stderr_is_tty(void) { return isatty(2); }

double st_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int st_write_full(int fd, const void *buf, size_t n)
{
	for (size_t put = 0; put < n;) {
		ssize_t k = write(fd, (const char *)buf + put, n - put);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		put += (size_t)k;
	}
	return 0;
}

int st_read_full(int fd, void *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t k = read(fd, (char *)buf + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0)
			errno = 0;
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

int st_write_file_atomic(const char *path, const void *data, size_t len)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	if (st_write_full(fd, data, len) < 0)
		goto fail;
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:;
	int e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = e;
	return -1;
}

char *st_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
		if (cap - n - 1 == 0)
			buf = xrealloc(buf, cap *= 2);
	}
	int err = ferror(f);
	fclose(f);
	if (err) {
		free(buf);
		errno = EIO;
		return NULL;
	}
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

/* ---- progress on a terminal ---- */
static double progress_t0, progress_last;

void st_progress_end(void)
{
	if (progress_on) {
		progress_on = 0;
		if (write(2, "\n", 1) < 0)
			return;
	}
}

static void progress_atexit(void) { st_progress_end(); }

void st_progress(const char *what, double done, double total)
{
	static int checked, tty;
	if (!checked) {
		checked = 1;
		tty = st_stderr_is_tty();
		if (tty)
			atexit(progress_atexit);
		progress_t0 = st_now();
	}
	if (!tty)
		return;
	double now = st_now();
	if (now - progress_last < 0.1 && done < total)
		return;   /* a tenth of a second between redraws */
	progress_last = now;
	double rate = now > progress_t0 ? done / (now - progress_t0) : 0;
	char line[256];
	if (total > 0) {
		double left = rate > 0 ? (total - done) / rate : 0;
		int width = 24, fill = (int)(width * (done / total));
		char bar[32];
		for (int i = 0; i < width; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[width] = 0;
		snprintf(line, sizeof line, "\r%s: %s [%s] %.0f/%.0f  %.0f/s  ETA %d:%02d   ", st_prog, what, bar, done,
			 total, rate, (int)(left / 60), (int)left % 60);
	} else
		snprintf(line, sizeof line, "\r%s: %s %.0f  %.0f/s   ", st_prog, what, done, rate);
	if (write(2, line, strlen(line)) >= 0)
		progress_on = 1;
}
