/* The cache of st_sgemm's timed choice (lib/gemm.c, docs/gemm.md): the first process writes it, the next one
 * uses it (same choice, same products), a damaged, stale or foreign file is ignored and replaced, ST_GEMM_CACHE=0
 * turns it off, and a cache folder that cannot be made leaves no file and changes nothing else. Each case runs in
 * a fresh process (fork before anything here calls st_sgemm), since the choice is made once per process. */
#define _GNU_SOURCE
#include "gemm.h"
#include "tap.h"

#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { M = 37, N = 70, K = 53 };

/* What a fresh process with XDG_CACHE_HOME=xdg (and ST_GEMM_CACHE=cache_env when not NULL) reports: its choice in
 * words, and whether its st_sgemm product matched a double-precision reference. */
struct outcome {
	char choice[600];
	uint64_t product_hash;   /* FNV-1a of C's bytes: equal choices give equal bits */
	int product_ok;
};

static void child(const char *xdg, const char *cache_env, int fd)
{
	setenv("XDG_CACHE_HOME", xdg, 1);
	unsetenv("ST_GEMM");
	if (cache_env)
		setenv("ST_GEMM_CACHE", cache_env, 1);
	else
		unsetenv("ST_GEMM_CACHE");
	static float A[M * K], B[K * N], C[M * N];
	for (int i = 0; i < M * K; i++)
		A[i] = (float)((i * 7) % 13) * 0.1f - 0.6f;
	for (int i = 0; i < K * N; i++)
		B[i] = (float)((i * 5) % 11) * 0.1f - 0.5f;
	st_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
	struct outcome o = { .product_ok = 1 };
	st_gemm_choice(o.choice, sizeof o.choice);
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			double want = 0;
			for (int k = 0; k < K; k++)
				want += (double)A[i * K + k] * B[k * N + j];
			if (fabs(C[i * N + j] - want) > 1e-4 * (1 + fabs(want)))
				o.product_ok = 0;
		}
	o.product_hash = 1469598103934665603ull;
	for (size_t i = 0; i < sizeof C; i++)
		o.product_hash = (o.product_hash ^ ((unsigned char *)C)[i]) * 1099511628211ull;
	if (write(fd, &o, sizeof o) != (ssize_t)sizeof o)
		_exit(1);
	_exit(0);
}

static int run(const char *xdg, const char *cache_env, struct outcome *o)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		child(xdg, cache_env, p[1]);
	}
	close(p[1]);
	ssize_t got = read(p[0], o, sizeof *o);
	close(p[0]);
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) || got != sizeof *o)
		return -1;
	return 0;
}

/* The one file in dir (its name into path), or 0 files, or -1 when there are more (a temporary left behind). */
static int files_in(const char *dir, char *path, size_t len)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, len, "%s/%s", dir, e->d_name);
			n++;
		}
	closedir(d);
	return n > 1 ? -1 : n;
}

static int cached(const struct outcome *o) { return strstr(o->choice, "cached in") != NULL; }

/* "projections X (OpenBLAS a, own b GFLOP/s), attention Y (...)": the part before ", timed" */
static int same_verdict(const struct outcome *a, const struct outcome *b)
{
	const char *ta = strstr(a->choice, ", timed"), *tb = strstr(b->choice, ", timed");
	return ta && tb && ta - a->choice == tb - b->choice && !memcmp(a->choice, b->choice, ta - a->choice);
}

int main(void)
{
	/* not st_gemm_own_impl(): that would make this process's choice, which the children would inherit */
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx512f") && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
		skip_all("no own kernel on this CPU: nothing is timed, nothing cached");
	if (getenv("ST_GEMM") && *getenv("ST_GEMM"))
		skip_all("ST_GEMM is set: the choice is forced, nothing is timed");
	char tmpl[] = "/tmp/st-gemm-cache.XXXXXX";
	const char *tmp = mkdtemp(tmpl);
	if (!tmp)
		skip_all("no temporary folder");
	char xdg[256], dir[600], file[900], again[900];
	snprintf(xdg, sizeof xdg, "%s/cache", tmp);
	snprintf(dir, sizeof dir, "%s/st", xdg);
	struct outcome first, second, o;

	ok(run(xdg, NULL, &first) == 0 && first.product_ok, "first process: st_sgemm matches the reference");
	printf("# %s\n", first.choice);
	ok(strstr(first.choice, "timed") && !cached(&first), "first process: timed, not from the cache");
	ok(files_in(dir, file, sizeof file) == 1, "first process: one cache file in $XDG_CACHE_HOME/st");
	struct stat st1, st2;
	stat(file, &st1);
	FILE *f = fopen(file, "r");
	char line[3][1100] = { "", "", "" };
	for (int i = 0; f && i < 3; i++)
		if (!fgets(line[i], sizeof line[i], f))
			line[i][0] = 0;
	if (f)
		fclose(f);
	ok(!strcmp(line[0], "st gemm choice 1\n") && strstr(line[1], "cpu=") && strstr(line[1], "core="),
	   "the file: a version line and the key (CPU, OpenBLAS core, ...)");

	ok(run(xdg, NULL, &second) == 0 && second.product_ok, "second process: st_sgemm matches the reference");
	printf("# %s\n", second.choice);
	ok(cached(&second) && strstr(second.choice, file), "second process: the choice came from the cache file");
	ok(same_verdict(&first, &second), "second process: the same choice and timings as the first");
	ok(first.product_hash == second.product_hash, "second process: the same product, bit for bit");
	stat(file, &st2);
	ok(st1.st_ino == st2.st_ino && files_in(dir, again, sizeof again) == 1, "second process: the file is left as it was");

	/* damaged: ignored, timed again, replaced by a good one */
	if ((f = fopen(file, "w"))) {
		fputs("st gemm choice 1\ngarbage\x01\xff\nblas blas nan -1\n", f);
		fclose(f);
	}
	ok(run(xdg, NULL, &o) == 0 && o.product_ok && !cached(&o), "a damaged cache file: ignored, timed again");
	ok(run(xdg, NULL, &o) == 0 && cached(&o), "... and replaced: the next process uses it");
	if ((f = fopen(file, "w"))) {
		fputs("st gemm choice 1\n", f);   /* cut short */
		fclose(f);
	}
	ok(run(xdg, NULL, &o) == 0 && o.product_ok && !cached(&o), "a cut-short cache file: ignored");

	/* stale: older than a week */
	struct timeval old[2] = { { time(NULL) - 8 * 86400, 0 }, { time(NULL) - 8 * 86400, 0 } };
	ok(utimes(file, old) == 0 && run(xdg, NULL, &o) == 0 && !cached(&o), "a cache file 8 days old: timed again");
	ok(run(xdg, NULL, &o) == 0 && cached(&o), "... and refreshed");

	/* turned off: neither read nor written */
	ok(run(xdg, "0", &o) == 0 && o.product_ok && !cached(&o), "ST_GEMM_CACHE=0: the file is not read");
	unlink(file);
	ok(run(xdg, "0", &o) == 0 && files_in(dir, again, sizeof again) == 0, "ST_GEMM_CACHE=0: no file written");

	/* a cache folder that cannot be made (XDG_CACHE_HOME is a file): no file, nothing else changes */
	char notdir[300];
	snprintf(notdir, sizeof notdir, "%s/plain-file", tmp);
	if ((f = fopen(notdir, "w")))
		fclose(f);
	ok(run(notdir, NULL, &o) == 0 && o.product_ok && !cached(&o) && strstr(o.choice, "timed"),
	   "an unusable cache folder: timed as without a cache");
	struct stat st3;
	ok(stat(notdir, &st3) == 0 && S_ISREG(st3.st_mode) && st3.st_size == 0, "... and nothing written");
	/* a relative XDG_CACHE_HOME is ignored (the XDG rule): HOME's .cache is used instead */
	char home[300];
	snprintf(home, sizeof home, "%s/home", tmp);
	mkdir(home, 0700);
	setenv("HOME", home, 1);
	ok(run("relative/cache", NULL, &o) == 0 && !cached(&o), "a relative XDG_CACHE_HOME: not used");
	snprintf(dir, sizeof dir, "%s/.cache/st", home);
	ok(files_in(dir, again, sizeof again) == 1 && access("relative", F_OK) != 0, "... the file goes to $HOME/.cache/st");

	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmp);
	return done_testing();
}
