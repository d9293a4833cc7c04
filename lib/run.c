/* run.c: the run directory (run.h; docs/training.md): shared weights with a published update counter,
 * trainer and optimizer state, checkpoints, all written under temporary names and renamed. */
#define _GNU_SOURCE
#include "run.h"
#include "errbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#include "st.h"

#define RUN_MAGIC "STRUNW1"
#define RUN_HEADER_BYTES 4096
enum { RUN_RUNNING = 1, RUN_FINISHED = 2 };

/* The first page of weights.bin; the parameters follow at RUN_HEADER_BYTES (page aligned). */
struct run_header {
	char magic[8];
	uint64_t header_bytes;
	uint64_t nparams;
	uint64_t seed;
	uint32_t objectives;
	uint32_t state;
	uint64_t updates;    /* published: stored with release after the parameters are written */
	uint32_t wake;       /* futex word, bumped on every publish */
	uint32_t trainer_pid;
	uint64_t run_id;     /* random per st-step start: st-forward stamps it on the batches it embeds */
};

struct run_weights {
	int fd, lock_fd, trainer;
	void *map;
	size_t map_bytes;
	struct run_header *h;
	float *params;
	char *path;
};

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = xmalloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - floor(s)) * 1e9) };
	nanosleep(&ts, NULL);
}

static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

static char *dir_of(const char *path)
{
	char *d = xstrdup(path);
	char *slash = strrchr(d, '/');
	if (!slash)
		strcpy(d, ".");
	else if (slash == d)
		d[1] = '\0';
	else
		*slash = '\0';
	return d;
}

/* ---- st-forward's side ---- */

static int live_trainer(int fd)
{
	/* st-step holds LOCK_EX for its whole life; if a shared lock succeeds, nobody trains with this file */
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		return 0;
	}
	return errno == EWOULDBLOCK;
}

static int same_file(int fd, const char *path)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

extern double st_started;

/* When process PID was forked, in clock ticks after boot (/proc/PID/stat, field 22): exec keeps it, so the stages
 * of one pipeline, forked by the shell left to right, are ordered by it however slowly each one starts. 0 when
 * unknown (no /proc). */
static unsigned long long process_forked(pid_t pid)
{
	char path[64], text[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = 0;
	/* the command name (field 2) is in parentheses and may hold spaces and parentheses: count from the last ')' */
	char *p = strrchr(text, ')');
	unsigned long long ticks = 0;
	if (!p)
		return 0;
	p++;
	for (int field = 3; field < 22 && *p; field++) {
		while (*p == ' ')
			p++;
		while (*p && *p != ' ')
			p++;
	}
	if (sscanf(p, " %llu", &ticks) != 1)
		return 0;
	return ticks;
}

/* DIR/failed, a note by an st-step that exited before publishing the run: its exit status when the note is for
 * this st-forward, else -1. The note names st-step's process group, pid and fork time. One of our pipeline: the
 * same process group (a shell pipeline's stages share it), forked after us (the shell forks the stages left to
 * right; a note of an earlier pipeline of the same script was forked before us), whatever its age: st-step may
 * fail before a slow st-forward even reaches main(). Else (another process group: `timeout st-step`, mpirun; or
 * no /proc) a note written since this process started (`since`, realtime seconds), give or take 0.05 s. */
static int recent_failure(const char *dir, double since)
{
	char *p = path_join(dir, "failed");
	struct stat sb;
	int status = -1;
	FILE *f = fopen(p, "r");
	free(p);
	if (!f)
		return -1;
	if (fstat(fileno(f), &sb) != 0) {
		fclose(f);
		return -1;
	}
	double written = (double)sb.st_mtim.tv_sec + sb.st_mtim.tv_nsec * 1e-9;
	int noted_status, group, pid;
	unsigned long long forked, own_forked = process_forked(getpid());
	int have_status = fscanf(f, "st-step exited with status %d", &noted_status) == 1;
	int have_id = have_status && fscanf(f, " process group %d pid %d forked %llu", &group, &pid, &forked) == 3;
	fclose(f);
	int ours;
	if (have_id && forked && own_forked && group == (int)getpgrp()) {
		int later = forked > own_forked || (forked == own_forked && pid > (int)getpid());
		ours = later || written >= since;   /* an earlier-forked st-step of our group that failed meanwhile */
	} else {
		ours = written >= since - 0.05;
	}
	if (ours)
		status = have_status ? noted_status : 1;
	return status;
}

int run_rank(int *world)
{
	const char *r = getenv("OMPI_COMM_WORLD_RANK"), *w = getenv("OMPI_COMM_WORLD_SIZE");
	int rank = r && *r ? atoi(r) : 0, size = w && *w ? atoi(w) : 1;
	if (size < 1 || rank < 0 || rank >= size)
		rank = 0, size = 1;
	if (world)
		*world = size;
	return rank;
}

char *run_rank_dir(const char *dir)
{
	int rank = run_rank(NULL);
	if (rank == 0)
		return xstrdup(dir);
	size_t n = strlen(dir) + 32;
	char *p = xmalloc(n);
	snprintf(p, n, "%s/rank-%d", dir, rank);
	return p;
}

static run_weights *open_weights_in(const char *dir, size_t nparams, double timeout_s, char *err, size_t errlen);

run_weights *run_open_weights(const char *dir, size_t nparams, double timeout_s, char *err, size_t errlen)
{
	char *own = run_rank_dir(dir);
	run_weights *w = open_weights_in(own, nparams, timeout_s, err, errlen);
	free(own);
	return w;
}

static run_weights *open_weights_in(const char *dir, size_t nparams, double timeout_s, char *err, size_t errlen)
{
	char *path = path_join(dir, "weights.bin");
	double start = st_now();
	int said = 0;
	for (double pause = 0.001;; pause = pause < 0.1 ? pause * 2 : 0.1) {
		int failed = recent_failure(dir, st_started);
		if (failed >= 0) {
			errbuf_set(err, errlen, "st-step --run %s failed before it began (exit status %d; its message says why)",
			        dir, failed);
			free(path);
			return NULL;
		}
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			struct stat sb;
			struct run_header h;
			int good = live_trainer(fd) && same_file(fd, path) && fstat(fd, &sb) == 0 &&
			           pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h && !memcmp(h.magic, RUN_MAGIC, 8) &&
			           h.state == RUN_RUNNING;
			if (good) {
				if (h.nparams != nparams || h.header_bytes != RUN_HEADER_BYTES ||
				    (uint64_t)sb.st_size != RUN_HEADER_BYTES + h.nparams * sizeof(float)) {
					errbuf_set(err, errlen, "%s holds %llu parameters, the model has %zu (another model?)", path,
					        (unsigned long long)h.nparams, nparams);
					close(fd);
					free(path);
					return NULL;
				}
				size_t bytes = (size_t)sb.st_size;
				void *map = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);
				if (map == MAP_FAILED) {
					errbuf_set(err, errlen, "cannot map %s: %s", path, strerror(errno));
					close(fd);
					free(path);
					return NULL;
				}
				run_weights *w = xcalloc(1, sizeof *w);
				w->fd = fd;
				w->lock_fd = -1;
				w->map = map;
				w->map_bytes = bytes;
				w->h = map;
				w->params = (float *)((char *)map + RUN_HEADER_BYTES);
				w->path = path;
				return w;
			}
			close(fd);
		}
		double waited = st_now() - start;
		if (timeout_s > 0 && waited > timeout_s) {
			errbuf_set(err, errlen, "no st-step published %s within %.0f s (--wait-timeout): start st-step --run %s "
			        "in the same pipeline, and see its messages", path, timeout_s, dir);
			free(path);
			return NULL;
		}
		if (!said && waited > 5) {
			char until[64] = "";
			if (timeout_s > 0)
				snprintf(until, sizeof until, "; giving up after %.0f s (--wait-timeout)", timeout_s);
			fprintf(stderr, "%s: waiting for st-step --run %s to publish %s (is st-step running with the same "
			        "--run, and did it start?%s)\n", st_prog ? st_prog : "st", dir, path, until);
			said = 1;
		}
		sleep_s(pause);
	}
}

float *run_params(run_weights *w) { return w->params; }
uint64_t run_seed(const run_weights *w) { return w->h->seed; }
int run_objectives(const run_weights *w) { return (int)w->h->objectives; }

uint64_t run_id(const run_weights *w) { return w->h->run_id; }

uint64_t run_published(const run_weights *w)
{
	return __atomic_load_n(&w->h->updates, __ATOMIC_ACQUIRE);
}

uint64_t run_update_index(const run_weights *w, int64_t step, int objective)
{
	return (uint64_t)step * w->h->objectives + (uint64_t)objective;
}

static void futex_wait(uint32_t *word, uint32_t seen, double timeout_s)
{
#ifdef __linux__
	struct timespec ts = { (time_t)timeout_s, (long)((timeout_s - floor(timeout_s)) * 1e9) };
	syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0);
#else
	(void)word, (void)seen;
	sleep_s(timeout_s < 0.001 ? timeout_s : 0.001);
#endif
}

static void futex_wake(uint32_t *word)
{
#ifdef __linux__
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
#else
	(void)word;
#endif
}

/* Why a wait for the trainer is long: st-step has not received the batches written so far. */
double st_started;

static const char buffering_hint[] =
	"st-step has not yet received the batches written before; a stage between st-forward and st-step that "
	"buffers its output stalls the pipeline (jq needs --unbuffered; other programs stdbuf -oL, or a flush "
	"after each record)";

int run_wait(run_weights *w, uint64_t updates, double timeout_s, char *err, size_t errlen)
{
	/* a long wait is one much longer than the longest so far (a step of a big model takes a while) */
	static double longest;
	double start = st_now(), last_check = start;
	int said = 0;
	for (;;) {
		uint32_t seen = __atomic_load_n(&w->h->wake, __ATOMIC_ACQUIRE);
		if (__atomic_load_n(&w->h->updates, __ATOMIC_ACQUIRE) >= updates) {
			double waited = st_now() - start;
			longest = waited > longest ? waited : longest;
			return 0;
		}
		if (__atomic_load_n(&w->h->state, __ATOMIC_ACQUIRE) == RUN_FINISHED) {
			errbuf_set(err, errlen, "st-step finished after %llu updates; update %llu will not come",
			        (unsigned long long)run_published(w), (unsigned long long)updates);
			return 1;
		}
		futex_wait(&w->h->wake, seen, 0.1);
		double now = st_now(), waited = now - start;
		if (now - last_check > 0.5) {
			last_check = now;
			if (!live_trainer(w->fd) &&
			    __atomic_load_n(&w->h->updates, __ATOMIC_ACQUIRE) < updates) {
				errbuf_set(err, errlen, "st-step of %s went away after %llu updates (waiting for %llu)", w->path,
				        (unsigned long long)run_published(w), (unsigned long long)updates);
				return -1;
			}
		}
		if (timeout_s > 0 && waited > timeout_s) {
			errbuf_set(err, errlen, "gave up after %.0f s (--wait-timeout) waiting for st-step to apply update %llu "
			        "(it has applied %llu): %s", timeout_s, (unsigned long long)updates,
			        (unsigned long long)run_published(w), buffering_hint);
			return -2;
		}
		if (!said && waited > 5 && waited > 4 * longest) {
			fprintf(stderr, "%s: waiting %.0f s for st-step to apply update %llu (it has applied %llu): %s%s\n",
			        st_prog ? st_prog : "st", waited, (unsigned long long)updates,
			        (unsigned long long)run_published(w), buffering_hint,
			        timeout_s > 0 ? "; giving up at --wait-timeout" : "");
			said = 1;
		}
	}
}

void run_close(run_weights *w)
{
	if (!w)
		return;
	munmap(w->map, w->map_bytes);
	if (w->lock_fd >= 0)
		close(w->lock_fd);
	close(w->fd);
	free(w->path);
	free(w);
}

/* ---- st-step's side ---- */

/* The names st gives its own files in a run directory; only temporary copies of these are st's to remove. */
static int own_base(const char *name, size_t len)
{
	static const char *const names[] = { "weights.bin", "trainer.json", "training.json", "model", "best",
	                                     "current", "start", "loss-softmax.safetensors", "failed", NULL };
	for (int i = 0; names[i]; i++)
		if (strlen(names[i]) == len && !strncmp(name, names[i], len))
			return 1;
	if (len > 11 && !strncmp(name, "checkpoint-", 11)) {
		for (size_t i = 11; i < len; i++)
			if (name[i] < '0' || name[i] > '9')
				return 0;
		return 1;
	}
	return 0;
}

/* digits at p (at least one) followed by `tail`: their value, else -1 */
static long pid_then(const char *p, const char *tail)
{
	long v = 0;
	const char *q = p;
	for (; *q >= '0' && *q <= '9'; q++)
		v = v * 10 + (*q - '0');
	return q > p && q - p < 10 && !strcmp(q, tail) ? v : -1;
}

static int pid_alive(long pid)
{
	/* our own pid: a leftover of an earlier process that had it (run_create runs before we write anything) */
	return pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* A leftover st may remove: BASE.tmp.PID or BASE.tmp.PID.old (temporary copies) or BASE.old.PID (the previous
 * BASE during a replacement) of one of st's own names, written by a process that is gone. *kind: 't' or 'o'. */
static int own_leftover(const char *name, size_t *base_len, int *kind)
{
	const char *t = strstr(name, ".tmp."), *o = strstr(name, ".old.");
	long pid = -1;
	if (t && (pid = pid_then(t + 5, "")) < 0)
		pid = pid_then(t + 5, ".old");
	if (t && pid >= 0) {
		*kind = 't', *base_len = (size_t)(t - name);
	} else if (o && (pid = pid_then(o + 5, "")) >= 0) {
		*kind = 'o', *base_len = (size_t)(o - name);
	} else
		return 0;
	/* under the run's lock every st-step writing here is gone (even if not yet reaped); only st-loss's classifier
	 * may be written by a live process */
	if (!own_base(name, *base_len))
		return 0;
	if (*base_len == strlen("loss-softmax.safetensors") && !strncmp(name, "loss-softmax.safetensors", *base_len))
		return !pid_alive(pid);
	return 1;
}

int run_clear(const char *dir, char *err, size_t errlen);
int run_settings_write(const char *dir, const run_settings *s, char *err, size_t errlen);

static uint64_t new_run_id(void)
{
	uint64_t id = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, &id, sizeof id) != (ssize_t)sizeof id)
			id = 0;
		close(fd);
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t mix = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40);
	id ^= mix * 0x9E3779B97F4A7C15ull;
	return id ? id : 1;
}

static run_weights *create_in(const char *dir, const float *params, size_t nparams, uint64_t seed, int objectives,
                              uint64_t updates, int clear, const struct run_settings *settings, char *err,
                              size_t errlen);

run_weights *run_create(const char *dir, const float *params, size_t nparams, uint64_t seed, int objectives,
                        uint64_t updates, int clear, const struct run_settings *settings, char *err, size_t errlen)
{
	if (run_rank(NULL) > 0 && mkdir(dir, 0777) != 0 && errno != EEXIST) {   /* DIR, then DIR/rank-R */
		errbuf_set(err, errlen, "cannot create run directory %s: %s", dir, strerror(errno));
		return NULL;
	}
	char *own = run_rank_dir(dir);
	run_weights *w = create_in(own, params, nparams, seed, objectives, updates, clear, settings, err, errlen);
	free(own);
	return w;
}

static run_weights *create_in(const char *dir, const float *params, size_t nparams, uint64_t seed, int objectives,
                              uint64_t updates, int clear, const struct run_settings *settings, char *err,
                              size_t errlen)
{
	if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
		errbuf_set(err, errlen, "cannot create run directory %s: %s", dir, strerror(errno));
		return NULL;
	}
	char *lock_path = path_join(dir, ".lock");
	int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		errbuf_set(err, errlen, lock_fd < 0 ? "cannot open %s: %s" : "%s: another st-step is training in this run (%s)",
		        lock_path, strerror(errno));
		if (lock_fd >= 0)
			close(lock_fd);
		free(lock_path);
		return NULL;
	}
	free(lock_path);

	/* We own the run: temporary files and folders left by a killed run can go; a NAME.old.PID folder is the
	 * previous NAME when a replacement was killed between its two renames, so it goes back if NAME is gone. */
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		size_t base_len;
		int kind;
		while ((e = readdir(d)) != NULL) {
			if (!own_leftover(e->d_name, &base_len, &kind))
				continue;
			char *p = path_join(dir, e->d_name);
			if (kind == 'o') {
				char *base = xstrdup(p);
				base[strlen(dir) + 1 + base_len] = '\0';
				struct stat sb;
				if (stat(base, &sb) != 0 && rename(p, base) == 0) {
					free(base);
					free(p);
					continue;
				}
				free(base);
			}
			run_remove_tree(p);
			free(p);
		}
		closedir(d);
	}

	int fd = -1;
	char *path = path_join(dir, "weights.bin");
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
	if (clear && run_clear(dir, err, errlen) != 0)
		goto fail;
	/* DIR/model means "finished": not while this run trains; an earlier start's failure note is old news */
	static const char *const unfinished[] = { "model", "current", "failed" };
	for (int i = 0; i < 3; i++) {
		char *p = path_join(dir, unfinished[i]);
		int rc = run_remove_tree(p);
		free(p);
		if (rc != 0) {
			errbuf_set(err, errlen, "cannot remove %s/%s: %s", dir, unfinished[i], strerror(errno));
			goto fail;
		}
	}
	if (settings && run_settings_write(dir, settings, err, errlen) != 0)
		goto fail;
	size_t bytes = RUN_HEADER_BYTES + nparams * sizeof(float);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0) {
		errbuf_set(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto fail;
	}
	/* the blocks are reserved now: a full file system is an error here, not a SIGBUS when the map is written */
	int rc = posix_fallocate(fd, 0, (off_t)bytes);
	if (rc != 0) {
		errbuf_set(err, errlen, "cannot create %s (%zu bytes): %s", tmp, bytes, strerror(rc));
		errno = rc;
		goto fail;
	}
	void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		errbuf_set(err, errlen, "cannot map %s: %s", tmp, strerror(errno));
		goto fail;
	}
	struct run_header *h = map;
	memcpy(h->magic, RUN_MAGIC, 8);
	h->header_bytes = RUN_HEADER_BYTES;
	h->nparams = nparams;
	h->seed = seed;
	h->objectives = objectives > 0 ? objectives : 1;
	h->state = RUN_RUNNING;
	h->updates = updates;
	h->trainer_pid = (uint32_t)getpid();
	h->run_id = new_run_id();
	float *p = (float *)((char *)map + RUN_HEADER_BYTES);
	memcpy(p, params, nparams * sizeof(float));
	/* lock before the file appears under its name, so it is never seen there without a live owner */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0 || rename(tmp, path) != 0) {
		errbuf_set(err, errlen, "cannot publish %s: %s", path, strerror(errno));
		munmap(map, bytes);
		goto fail;
	}
	fsync_dir(dir);
	run_weights *w = xcalloc(1, sizeof *w);
	w->fd = fd;
	w->lock_fd = lock_fd;
	w->trainer = 1;
	w->map = map;
	w->map_bytes = bytes;
	w->h = h;
	w->params = p;
	w->path = path;
	return w;
fail:;
	int saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	close(lock_fd);
	free(path);
	errno = saved;
	return NULL;
}

void run_publish(run_weights *w, uint64_t updates)
{
	__atomic_store_n(&w->h->updates, updates, __ATOMIC_RELEASE);
	__atomic_add_fetch(&w->h->wake, 1, __ATOMIC_RELEASE);
	futex_wake(&w->h->wake);
}

void run_finish(run_weights *w)
{
	__atomic_store_n(&w->h->state, RUN_FINISHED, __ATOMIC_RELEASE);
	__atomic_add_fetch(&w->h->wake, 1, __ATOMIC_RELEASE);
	futex_wake(&w->h->wake);
	msync(w->map, w->map_bytes, MS_ASYNC);
	flock(w->fd, LOCK_UN);
	run_close(w);
}

/* ---- trainer state ---- */

void run_state_init(run_state *s)
{
	memset(s, 0, sizeof *s);
	s->objectives = 1;
	s->best_score = -INFINITY;
	s->best_step = -1;
	s->last_loss = NAN;
	strcpy(s->scheduler, "warmuplinear");
	strcpy(s->optimizer, "adamw");
}

int run_state_write(const char *path, const run_state *s, char *err, size_t errlen)
{
	json_t *o = json_object();
	json_object_set_new(o, "v", json_integer(1));
	json_object_set_new(o, "step", json_integer(s->step));
	json_object_set_new(o, "epoch", json_integer(s->epoch));
	json_object_set_new(o, "updates", json_integer((json_int_t)s->updates));
	/* a string: JSON readers lose 64-bit integers */
	char seed[32];
	snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
	json_object_set_new(o, "seed", json_string(seed));
	json_object_set_new(o, "objectives", json_integer(s->objectives));
	json_object_set_new(o, "total_steps", json_integer(s->total_steps));
	json_object_set_new(o, "warmup_steps", json_integer(s->warmup_steps));
	json_object_set_new(o, "scheduler", json_string(s->scheduler));
	json_object_set_new(o, "optimizer", json_string(s->optimizer));
	json_object_set_new(o, "lr", json_real(s->lr));
	json_object_set_new(o, "weight_decay", json_real(s->weight_decay));
	json_object_set_new(o, "max_grad_norm", json_real(s->max_grad_norm));
	json_object_set_new(o, "eps", json_real(s->eps));
	json_object_set_new(o, "examples", json_real(s->examples));
	json_object_set_new(o, "best_score", isfinite(s->best_score) ? json_real(s->best_score) : json_null());
	json_object_set_new(o, "best_step", json_integer(s->best_step));
	json_object_set_new(o, "last_loss", isfinite(s->last_loss) ? json_real(s->last_loss) : json_null());
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	json_decref(o);
	size_t len = strlen(text);
	text = xrealloc(text, len + 2);
	text[len++] = '\n';
	int rc = st_write_file_atomic(path, text, len);
	if (rc != 0)
		errbuf_set(err, errlen, "cannot write %s: %s", path, strerror(errno));
	free(text);
	return rc;
}

static double num_or(json_t *o, const char *k, double dflt)
{
	json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : dflt;
}

int run_state_read(const char *path, run_state *s, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o = json_load_file(path, 0, &je);
	if (!o || !json_is_object(o)) {
		errbuf_set(err, errlen, "cannot read %s: %s (line %d)", path, o ? "not an object" : je.text, je.line);
		json_decref(o);
		return -1;
	}
	run_state_init(s);
	json_t *step = json_object_get(o, "step"), *seed = json_object_get(o, "seed");
	if (!json_is_integer(step) || !json_is_string(seed)) {
		errbuf_set(err, errlen, "%s: \"step\" or \"seed\" missing", path);
		json_decref(o);
		return -1;
	}
	s->step = json_integer_value(step);
	s->seed = strtoull(json_string_value(seed), NULL, 10);
	s->epoch = (int64_t)num_or(o, "epoch", 0);
	s->updates = (uint64_t)num_or(o, "updates", (double)s->step);
	s->objectives = (int)num_or(o, "objectives", 1);
	s->total_steps = (int64_t)num_or(o, "total_steps", 0);
	s->warmup_steps = (int64_t)num_or(o, "warmup_steps", 0);
	const char *sched = json_string_value(json_object_get(o, "scheduler"));
	if (sched)
		snprintf(s->scheduler, sizeof s->scheduler, "%s", sched);
	const char *opt = json_string_value(json_object_get(o, "optimizer"));
	if (opt)
		snprintf(s->optimizer, sizeof s->optimizer, "%s", opt);
	s->lr = num_or(o, "lr", 0);
	s->weight_decay = num_or(o, "weight_decay", 0);
	s->max_grad_norm = num_or(o, "max_grad_norm", 0);
	s->eps = num_or(o, "eps", 0);
	s->examples = num_or(o, "examples", 0);
	s->best_score = num_or(o, "best_score", -INFINITY);
	s->best_step = (int64_t)num_or(o, "best_step", -1);
	s->last_loss = num_or(o, "last_loss", NAN);
	json_decref(o);
	return 0;
}

/* ---- optimizer state ---- */

/* Writes parts to path.tmp.PID, fsyncs, renames. Large buffers are written directly (no copy). */
static int write_parts_atomic(const char *path, int n, const void *const *ptr, const size_t *len, char *err,
                              size_t errlen)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0) {
		errbuf_set(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		const char *p = ptr[i];
		size_t left = len[i];
		while (left > 0) {
			ssize_t w = write(fd, p, left);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				errbuf_set(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
				close(fd);
				unlink(tmp);
				return -1;
			}
			p += w;
			left -= (size_t)w;
		}
	}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
		errbuf_set(err, errlen, "cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	char *d = dir_of(path);
	fsync_dir(d);
	free(d);
	return 0;
}

#define OPTIM_MAGIC "STOPTIM1"

int run_optim_write(const char *path, optim *const *opts, int k, char *err, size_t errlen)
{
	int nparts = 1 + 3 * k;
	const void **ptr = xmalloc(sizeof *ptr * nparts);
	size_t *len = xmalloc(sizeof *len * nparts);
	uint64_t head[3] = { 0, opts[0]->n, (uint64_t)k };
	memcpy(&head[0], OPTIM_MAGIC, 8);
	int64_t *ts = xmalloc(sizeof *ts * k);
	ptr[0] = head;
	len[0] = sizeof head;
	for (int i = 0; i < k; i++) {
		ts[i] = opts[i]->t;
		ptr[1 + 3 * i] = &ts[i];
		len[1 + 3 * i] = sizeof ts[i];
		ptr[2 + 3 * i] = opts[i]->m;
		len[2 + 3 * i] = opts[i]->n * sizeof(float);
		ptr[3 + 3 * i] = opts[i]->v;
		len[3 + 3 * i] = opts[i]->n * sizeof(float);
	}
	int rc = write_parts_atomic(path, nparts, ptr, len, err, errlen);
	free(ptr);
	free(len);
	free(ts);
	return rc;
}

static int read_full(FILE *f, void *p, size_t n)
{
	return fread(p, 1, n, f) == n;
}

int run_optim_read(const char *path, optim *const *opts, int k, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		errbuf_set(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	uint64_t head[3];
	if (!read_full(f, head, sizeof head) || memcmp(head, OPTIM_MAGIC, 8) != 0) {
		errbuf_set(err, errlen, "%s is not an optimizer state file", path);
		fclose(f);
		return -1;
	}
	if (head[1] != opts[0]->n || head[2] != (uint64_t)k) {
		errbuf_set(err, errlen, "%s holds %llu objectives of %llu parameters, the run has %d of %zu", path,
		        (unsigned long long)head[2], (unsigned long long)head[1], k, opts[0]->n);
		fclose(f);
		return -1;
	}
	for (int i = 0; i < k; i++) {
		int64_t t;
		if (!read_full(f, &t, sizeof t) || !read_full(f, opts[i]->m, opts[i]->n * sizeof(float)) ||
		    !read_full(f, opts[i]->v, opts[i]->n * sizeof(float))) {
			errbuf_set(err, errlen, "%s is truncated (objective %d)", path, i);
			fclose(f);
			return -1;
		}
		opts[i]->t = t;
	}
	fclose(f);
	return 0;
}

/* ---- checkpoints ---- */

static int checkpoint_step(const char *name, int64_t *step)
{
	const char *p = name + strlen("checkpoint-");
	if (strncmp(name, "checkpoint-", 11) != 0 || !*p)
		return 0;
	int64_t s = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		s = s * 10 + (*p - '0');
	}
	*step = s;
	return 1;
}

/* A checkpoint appears under its name only complete (renamed into place); checked anyway, so that a folder
 * damaged by other hands is passed over rather than resumed from. */
static int checkpoint_complete(const char *dir, const char *name)
{
	static const char *const need[] = { "trainer.json", "optimizer.bin", "model/config.json" };
	char *d = path_join(dir, name);
	int good = 1;
	for (int i = 0; i < 3 && good; i++) {
		char *p = path_join(d, need[i]);
		good = access(p, R_OK) == 0;
		free(p);
	}
	free(d);
	return good;
}

static int64_t *list_checkpoints(const char *dir, int *count)
{
	DIR *d = opendir(dir);
	int n = 0, cap = 0;
	int64_t *steps = NULL, s;
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			if (checkpoint_step(e->d_name, &s) && checkpoint_complete(dir, e->d_name)) {
				if (n == cap)
					steps = xrealloc(steps, sizeof *steps * (cap = cap ? 2 * cap : 16));
				steps[n++] = s;
			}
		closedir(d);
	}
	for (int i = 1; i < n; i++)   /* insertion sort, ascending */
		for (int j = i; j > 0 && steps[j - 1] > steps[j]; j--) {
			int64_t t = steps[j];
			steps[j] = steps[j - 1];
			steps[j - 1] = t;
		}
	*count = n;
	return steps;
}

int64_t run_latest_checkpoint(const char *dir)
{
	int n;
	int64_t *steps = list_checkpoints(dir, &n), best = -1;
	if (n > 0)
		best = steps[n - 1];
	free(steps);
	return best;
}

void run_prune_checkpoints(const char *dir, int limit)
{
	if (limit <= 0)
		return;
	int n;
	int64_t *steps = list_checkpoints(dir, &n);
	for (int i = 0; i + limit < n; i++) {
		/* renamed away first, so that a kill in the middle of the removal leaves no half checkpoint under
		 * a checkpoint's name (run_create removes *.tmp.* leftovers) */
		char name[64], gone[96];
		snprintf(name, sizeof name, "checkpoint-%lld", (long long)steps[i]);
		snprintf(gone, sizeof gone, "checkpoint-%lld.tmp.%d.old", (long long)steps[i], (int)getpid());
		char *p = path_join(dir, name), *q = path_join(dir, gone);
		if (rename(p, q) == 0)
			run_remove_tree(q);
		free(p);
		free(q);
	}
	free(steps);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

int run_remove_tree(const char *path)
{
	struct stat sb;
	if (lstat(path, &sb) != 0)
		return errno == ENOENT ? 0 : -1;
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void fsync_tree_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *p = path_join(dir, e->d_name);
		struct stat sb;
		if (lstat(p, &sb) == 0) {
			if (S_ISDIR(sb.st_mode))
				fsync_tree_files(p);
			else if (S_ISREG(sb.st_mode)) {
				int fd = open(p, O_RDONLY);
				if (fd >= 0) {
					fsync(fd);
					close(fd);
				}
			}
		}
		free(p);
	}
	closedir(d);
	fsync_dir(dir);
}

int run_write_dir(const char *final, int (*fill)(const char *tmpdir, void *ctx, char *err, size_t errlen),
                  void *ctx, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", final, (int)getpid());
	run_remove_tree(tmp);
	if (mkdir(tmp, 0777) != 0) {
		errbuf_set(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (fill(tmp, ctx, err, errlen) != 0) {
		run_remove_tree(tmp);
		return -1;
	}
	fsync_tree_files(tmp);
	struct stat sb;
	if (stat(final, &sb) == 0) {
		/* swap the complete new folder with the old one in one step where the file system can, so FINAL
		 * always names a whole model; then the old one (now at tmp) goes */
#ifdef RENAME_EXCHANGE
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
			run_remove_tree(tmp);
			char *d = dir_of(final);
			fsync_dir(d);
			free(d);
			return 0;
		}
#endif
		char old[PATH_MAX];
		snprintf(old, sizeof old, "%s.old.%d", final, (int)getpid());   /* run_create puts it back if need be */
		if (rename(final, old) != 0) {
			errbuf_set(err, errlen, "cannot replace %s: %s", final, strerror(errno));
			run_remove_tree(tmp);
			return -1;
		}
		if (rename(tmp, final) != 0) {
			errbuf_set(err, errlen, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
			rename(old, final);
			return -1;
		}
		run_remove_tree(old);
	} else if (rename(tmp, final) != 0) {
		errbuf_set(err, errlen, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
		run_remove_tree(tmp);
		return -1;
	}
	char *d = dir_of(final);
	fsync_dir(d);
	free(d);
	return 0;
}

/* ---- an earlier run's state ---- */

static const char *const state_names[] = { "trainer.json", "model", "best", "current", "start", NULL };

const char *run_old_state(const char *dir, char *name, size_t len)
{
	int64_t step = run_latest_checkpoint(dir);
	if (step >= 0) {
		snprintf(name, len, "checkpoint-%lld", (long long)step);
		return name;
	}
	for (int i = 0; state_names[i]; i++) {
		char *p = path_join(dir, state_names[i]);
		struct stat sb;
		int there = lstat(p, &sb) == 0;
		free(p);
		if (there) {
			snprintf(name, len, "%s", state_names[i]);
			return name;
		}
	}
	return NULL;
}

int run_clear(const char *dir, char *err, size_t errlen)
{
	static const char *const files[] = { "trainer.json", "training.json", "eval.jsonl", "loss-softmax.safetensors",
	                                     "model", "best", "current", "start", NULL };
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : (errbuf_set(err, errlen, "cannot read %s: %s", dir, strerror(errno)), -1);
	struct dirent *e;
	int rc = 0;
	int64_t step;
	while ((e = readdir(d)) != NULL) {
		int ours = checkpoint_step(e->d_name, &step);
		for (int i = 0; files[i] && !ours; i++)
			ours = !strcmp(e->d_name, files[i]);
		if (!ours)
			continue;
		char *p = path_join(dir, e->d_name);
		if (run_remove_tree(p) != 0 && !rc) {
			errbuf_set(err, errlen, "cannot remove %s: %s", p, strerror(errno));
			rc = -1;
		}
		free(p);
	}
	closedir(d);
	return rc;
}

void run_note_failure(const char *shared, int status)
{
	char *dir = run_rank_dir(shared);
	struct stat sb;
	if (strcmp(dir, shared) != 0 && stat(shared, &sb) == 0 && S_ISDIR(sb.st_mode) && !run_is_model_dir(shared))
		mkdir(dir, 0777);   /* rank R's st-forward waits in RUN/rank-R */
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || run_is_model_dir(dir)) {
		free(dir);
		return;
	}
	char text[160], *p = path_join(dir, "failed");
	int n = snprintf(text, sizeof text, "st-step exited with status %d\nprocess group %d pid %d forked %llu\n",
	                 status, (int)getpgrp(), (int)getpid(), process_forked(getpid()));
	st_write_file_atomic(p, text, (size_t)n);
	free(p);
	free(dir);
}

int run_is_model_dir(const char *dir)
{
	static const char *const marks[] = { "modules.json", "config.json", "model.safetensors", NULL };
	for (int i = 0; marks[i]; i++) {
		char *p = path_join(dir, marks[i]);
		int there = access(p, F_OK) == 0;
		free(p);
		if (there)
			return 1;
	}
	return 0;
}

/* ---- the optimizer settings, for st-loss softmax ---- */

int run_settings_write(const char *dir, const run_settings *s, char *err, size_t errlen)
{
	json_t *o = json_object();
	char seed[32];
	snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
	json_object_set_new(o, "lr", json_real(s->lr));
	json_object_set_new(o, "scheduler", json_string(s->scheduler));
	json_object_set_new(o, "warmup_steps", json_string(s->warmup));
	json_object_set_new(o, "weight_decay", json_real(s->weight_decay));
	json_object_set_new(o, "max_grad_norm", json_real(s->max_grad_norm));
	json_object_set_new(o, "optimizer", json_string(s->optimizer));
	json_object_set_new(o, "eps", json_real(s->eps));
	json_object_set_new(o, "seed", json_string(seed));
	json_object_set_new(o, "steps", json_integer(s->steps));
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	json_decref(o);
	size_t len = strlen(text);
	text = xrealloc(text, len + 2);
	text[len++] = '\n';
	char *path = path_join(dir, "training.json");
	int rc = st_write_file_atomic(path, text, len);
	if (rc != 0)
		errbuf_set(err, errlen, "cannot write %s: %s", path, strerror(errno));
	free(path);
	free(text);
	return rc;
}

int run_settings_read(const char *dir, run_settings *s, char *err, size_t errlen)
{
	char *path = path_join(dir, "training.json");
	if (access(path, F_OK) != 0) {
		free(path);
		return 1;
	}
	json_error_t je;
	json_t *o = json_load_file(path, 0, &je);
	const char *sched = json_string_value(json_object_get(o, "scheduler"));
	const char *warm = json_string_value(json_object_get(o, "warmup_steps"));
	const char *opt = json_string_value(json_object_get(o, "optimizer"));
	const char *seed = json_string_value(json_object_get(o, "seed"));
	if (!o || !sched || !warm || !opt || !seed || !json_is_number(json_object_get(o, "lr"))) {
		errbuf_set(err, errlen, "cannot read %s: %s", path, o ? "a setting is missing" : je.text);
		json_decref(o);
		free(path);
		return -1;
	}
	memset(s, 0, sizeof *s);
	s->lr = num_or(o, "lr", 0);
	s->weight_decay = num_or(o, "weight_decay", 0);
	s->max_grad_norm = num_or(o, "max_grad_norm", 0);
	s->eps = num_or(o, "eps", 1e-8);
	s->steps = (int64_t)num_or(o, "steps", 0);
	snprintf(s->scheduler, sizeof s->scheduler, "%s", sched);
	snprintf(s->warmup, sizeof s->warmup, "%s", warm);
	snprintf(s->optimizer, sizeof s->optimizer, "%s", opt);
	s->seed = strtoull(seed, NULL, 10);
	json_decref(o);
	free(path);
	return 0;
}
