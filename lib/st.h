/* st.h: what every st-* program and library file shares: errors, exit codes, allocation, threads. */
#ifndef ST_H
#define ST_H

#include <stddef.h>
#include <stdint.h>
#include <sysexits.h>   /* EX_USAGE 64, EX_DATAERR 65, EX_NOINPUT 66, EX_SOFTWARE 70, EX_IOERR 74 */

#define ST_FORMAT_VERSION 1

/* The program's name for diagnostics ("st-json"); set by st_tool_init. */
extern const char *st_prog;

/* Call first in main(): sets st_prog, ignores SIGPIPE (a closed downstream pipe is handled as a quiet
 * exit 0 by the writer), and handles --help / --version when argv[1] asks for them by printing usage. */
void st_tool_init(const char *name, int argc, char **argv, const char *usage);

/* "st-NAME: message\n" on stderr, then exit(code). Flushes complete records already written to stdout. */
_Noreturn void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "st-NAME: warning: message\n" on stderr. */
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints usage on stderr and exits 64. */
_Noreturn void usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* n * size, dying with EX_DATAERR on overflow (sizes that come from input). */
size_t xmul(size_t n, size_t size);

/* One knob for OpenBLAS and our own OpenMP loops. n <= 0 means all cores. Returns the count in use.
 * One thread pool, OpenMP's: OpenBLAS's pthreads build is kept on the calling thread (st_blas_pool_off) and
 * st_sgemm spreads its products over OpenMP's threads; an OpenMP build of OpenBLAS gets the count. */
int st_set_threads(int n);
/* OpenBLAS's pthreads build on the calling thread, the workers of its own pool ended: they spin for about 0.1 s
 * after the library loads and after every threaded call, and on a machine with as many cores as threads that
 * took a core from OpenMP's (a one-text st-encode ran 2.5x longer). Returns 1 for that build, 0 (nothing done)
 * for another build or without OpenBLAS. */
int st_blas_pool_off(void);
int st_threads(void);

/* One option parser for every tool: getopt_long without its own messages and without abbreviations.
 * Returns the option's val (its short letter or an enum past 255), -1 at the end of the options; an unknown
 * option or one without its argument is a usage error naming it. Positional arguments are left in
 * argv[optind..argc-1]. Define the table as `static const struct option opts[] = {..., {0}}`. */
struct option;
int st_getopt(int argc, char **argv, const struct option *opts, const char *usage);

/* Parses a whole decimal number or dies with EX_USAGE naming the option. */
long st_parse_long(const char *opt, const char *s);
double st_parse_double(const char *opt, const char *s);

/* True when stderr is a terminal (progress bars only then). */
int st_stderr_is_tty(void);

/* A progress line on stderr, only when it is a terminal (redrawn in place at most ten times a second; total
 * 0: unknown): "st-NAME: WHAT [####....] done/total  rate/s  ETA m:ss". Any message printed through die/warn
 * starts on a new line; the line is ended at exit or by st_progress_end. */
void st_progress(const char *what, double done, double total);
void st_progress_end(void);

/* Monotonic seconds. */
double st_now(void);

/* Writes a whole file atomically: data goes to PATH.tmp.PID, is fsynced, then renamed over PATH.
 * Returns 0, or -1 with errno set. */
int st_write_file_atomic(const char *path, const void *data, size_t len);
/* All n bytes to or from fd, through short counts and EINTR: 0, or -1 (errno set; reading, also at an end of
 * file before n bytes, with errno 0). */
int st_write_full(int fd, const void *buf, size_t n);
int st_read_full(int fd, void *buf, size_t n);
/* Reads a whole file (NUL-terminated for convenience); NULL with errno set on failure. */
char *st_read_file(const char *path, size_t *len);

#endif
