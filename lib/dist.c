/* dist.c: dist.h on Open MPI (ST_MPI), or a one-process stub. */
#define _GNU_SOURCE   /* struct ucred */
#include "dist.h"
#include "st.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int world = 1, rank = 0, started;

static int launched_world(void)
{
	const char *w = getenv("OMPI_COMM_WORLD_SIZE");
	return w && atoi(w) > 1 ? atoi(w) : 1;
}

int dist_rank(void) { return rank; }
int dist_world(void) { return world; }

#ifdef ST_MPI
#include <mpi.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static double limit_s;   /* --wait-timeout; 0: for ever */

/* Each thread that calls MPI has its own pair of communicators: one for the collectives, one for the
 * "arrived" tokens that name the late ranks when a collective times out. */
struct channel {
	MPI_Comm comm, tok;
	unsigned seq;             /* collectives started: the tokens' tag */
	MPI_Request *sends;       /* [world] the tokens sent for the current collective */
	int tag, armed;
	char *alive;              /* [world] who answered the last ping */
};
static struct channel main_ch, gather_ch;

static void channel_init(struct channel *c)
{
	MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
	MPI_Comm_dup(MPI_COMM_WORLD, &c->tok);
	c->sends = xcalloc(world, sizeof *c->sends);
	c->alive = xcalloc(world, 1);
}

int dist_init(void)
{
	if (launched_world() <= 1)
		return 1;
	int provided;
	/* the main thread reduces gradients while st-gather's helper thread gathers embeddings */
	if (MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
		die(EX_UNAVAILABLE, "cannot start MPI (launched by mpirun with %d ranks)", launched_world());
	if (provided < MPI_THREAD_MULTIPLE)
		die(EX_UNAVAILABLE, "this Open MPI does not allow MPI calls from several threads (MPI_THREAD_MULTIPLE)");
	started = 1;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world);
	channel_init(&main_ch);
	channel_init(&gather_ch);
	return world;
}

void dist_set_timeout(double seconds) { limit_s = seconds; }

/* The tokens' tags are 0..TAG_PONG-1; a rank that waits long asks the others whether they are alive. */
enum { TAG_PONG = 32766, TAG_PING = 32767 };

/* This rank has reached the next collective of c: tell every other rank (zero-byte messages). */
static void arrive(struct channel *c)
{
	c->tag = (int)(c->seq++ % TAG_PONG);
	for (int r = 0; r < world; r++)
		c->sends[r] = MPI_REQUEST_NULL;
	for (int r = 0; r < world; r++)
		if (r != rank)
			MPI_Isend(NULL, 0, MPI_BYTE, r, c->tag, c->tok, &c->sends[r]);
	c->armed = 1;
}

/* A waiting rank answers the others' "are you alive" (a rank that is stopped or hung cannot). */
static void answer_pings(struct channel *c)
{
	for (;;) {
		int flag;
		MPI_Status st;
		MPI_Iprobe(MPI_ANY_SOURCE, TAG_PING, c->tok, &flag, &st);
		if (!flag)
			return;
		MPI_Recv(NULL, 0, MPI_BYTE, st.MPI_SOURCE, TAG_PING, c->tok, MPI_STATUS_IGNORE);
		MPI_Request req;
		MPI_Isend(NULL, 0, MPI_BYTE, st.MPI_SOURCE, TAG_PONG, c->tok, &req);
		MPI_Request_free(&req);
	}
}

/* How long before the timeout a waiting rank asks the others whether they are alive. */
static double patience(void)
{
	return limit_s / 4 < 1 ? 1 : limit_s / 4 > 5 ? 5 : limit_s / 4;
}

static void ping_all(struct channel *c)
{
	for (int r = 0; r < world; r++)
		if (r != rank) {
			MPI_Request req;
			MPI_Isend(NULL, 0, MPI_BYTE, r, TAG_PING, c->tok, &req);
			MPI_Request_free(&req);
		}
	memset(c->alive, 0, world);
	c->alive[rank] = 1;
}

static void take_pongs(struct channel *c)
{
	for (int r = 0; r < world; r++) {
		int flag = 0;
		if (!c->alive[r])
			MPI_Iprobe(r, TAG_PONG, c->tok, &flag, MPI_STATUS_IGNORE);
		if (flag) {
			MPI_Recv(NULL, 0, MPI_BYTE, r, TAG_PONG, c->tok, MPI_STATUS_IGNORE);
			c->alive[r] = 1;
		}
	}
}

/* The collective did not complete in time. The ranks whose token has not come never reached it; if all did,
 * one stopped inside it: the ranks that did not answer the ping sent a little before the timeout are named. */
static _Noreturn void late(struct channel *c, const char *what)
{
	char names[256] = "";
	size_t len = 0;
	int missing = 0;
	const char *alive = c->alive;
	for (int r = 0; r < world; r++) {
		int flag = 1;
		if (r != rank)
			MPI_Iprobe(r, c->tag, c->tok, &flag, MPI_STATUS_IGNORE);
		if (!flag && len + 16 < sizeof names)
			len += snprintf(names + len, sizeof names - len, "%s%d", missing++ ? ", " : "", r);
	}
	if (missing)
		die(EX_UNAVAILABLE, "rank %d: rank%s %s did not reach %s within %.0f s (--wait-timeout): stopped, hung "
		    "or far behind; stopping every rank", rank, missing > 1 ? "s" : "", names, what, limit_s);
	for (int r = 0; r < world; r++)
		if (!alive[r] && len + 16 < sizeof names)
			len += snprintf(names + len, sizeof names - len, "%s%d", missing++ ? ", " : "", r);
	if (missing)
		die(EX_UNAVAILABLE, "rank %d: %s did not complete within %.0f s (--wait-timeout): rank%s %s reached it, "
		    "then stopped answering (stopped or hung); stopping every rank", rank, what, limit_s,
		    missing > 1 ? "s" : "", names);
	die(EX_UNAVAILABLE, "rank %d: %s did not complete within %.0f s (--wait-timeout) although every rank reached "
	    "it and answers; stopping every rank", rank, what, limit_s);
}

/* Waits for reqs[n] (driving MPI's progress), at most limit_s; then takes in the other ranks' tokens. */
static void timed_wait(struct channel *c, int n, MPI_Request *reqs, const char *what)
{
	double t0 = st_now();
	int spins = 0, pinged = 0;
	for (;;) {
		int done;
		MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
		if (done)
			break;
		if (++spins > 1000) {   /* a long wait: poll less often, and watch the clock */
			double waited = st_now() - t0;
			if (limit_s > 0 && !pinged && waited > limit_s - patience()) {
				ping_all(c);
				pinged = 1;
			}
			if (pinged)
				take_pongs(c);
			if (limit_s > 0 && waited > limit_s)
				late(c, what);
			answer_pings(c);
			usleep(50);
		}
	}
	if (c->armed) {
		for (int r = 0; r < world; r++)   /* every rank sent one before starting the collective */
			if (r != rank)
				MPI_Recv(NULL, 0, MPI_BYTE, r, c->tag, c->tok, MPI_STATUS_IGNORE);
		MPI_Waitall(world, c->sends, MPI_STATUSES_IGNORE);
		c->armed = 0;
	}
}

static void allreduce(void *buf, int count, MPI_Datatype type, MPI_Op op, const char *what)
{
	MPI_Request req;
	arrive(&main_ch);
	MPI_Iallreduce(MPI_IN_PLACE, buf, count, type, op, main_ch.comm, &req);
	timed_wait(&main_ch, 1, &req, what);
}

void dist_mean_floats(float *x, size_t n)
{
	if (world == 1)
		return;
	dist_reduce_begin(x, n, 0);
	dist_reduce_finish("the gradient's allreduce");
}

double dist_mean_double(double x)
{
	if (world == 1)
		return x;
	allreduce(&x, 1, MPI_DOUBLE, MPI_SUM, "the loss's allreduce");
	return x / world;
}

int dist_same_u64(uint64_t v, uint64_t *lo, uint64_t *hi)
{
	*lo = *hi = v;
	if (world == 1)
		return 1;
	allreduce(lo, 1, MPI_UINT64_T, MPI_MIN, "the weights' hash check");
	allreduce(hi, 1, MPI_UINT64_T, MPI_MAX, "the weights' hash check");
	return *lo == *hi;
}

/* ---- the gradient in buckets ---- */

static struct {
	float *x;
	size_t n, bucket;
	size_t plo, phi;          /* final floats not yet in a bucket: [plo, phi) */
	size_t (*done)[2];        /* ranges whose reduction has started */
	int ndone, capdone;
	MPI_Request *reqs;
	int nreqs, capreqs;
	double waited;            /* seconds spent waiting in dist_reduce_finish (communication not hidden) */
	long reductions;
} red;

static void start_range(size_t lo, size_t hi)
{
	if (red.nreqs == 0 && !main_ch.armed)
		arrive(&main_ch);
	for (size_t off = lo; off < hi;) {   /* MPI counts are int */
		int cnt = hi - off > (1u << 30) ? 1 << 30 : (int)(hi - off);
		if (red.nreqs == red.capreqs) {
			red.capreqs = red.capreqs ? 2 * red.capreqs : 16;
			red.reqs = xrealloc(red.reqs, red.capreqs * sizeof *red.reqs);
		}
		MPI_Iallreduce(MPI_IN_PLACE, red.x + off, cnt, MPI_FLOAT, MPI_SUM, main_ch.comm, &red.reqs[red.nreqs++]);
		off += cnt;
	}
	if (red.ndone == red.capdone) {
		red.capdone = red.capdone ? 2 * red.capdone : 16;
		red.done = xrealloc(red.done, red.capdone * sizeof *red.done);
	}
	red.done[red.ndone][0] = lo;
	red.done[red.ndone++][1] = hi;
}

void dist_reduce_begin(float *x, size_t n, size_t bucket)
{
	red.x = x;
	red.n = n;
	red.bucket = bucket;
	red.plo = red.phi = 0;
	red.ndone = red.nreqs = 0;
}

void dist_reduce_ready(size_t off, size_t count)
{
	if (world == 1 || red.bucket == 0 || count == 0)
		return;
	if (red.phi > red.plo && off + count == red.plo) {
		red.plo = off;   /* the range just below: the backward's order */
	} else {
		if (red.phi > red.plo)
			start_range(red.plo, red.phi);
		red.plo = off;
		red.phi = off + count;
	}
	if (red.phi - red.plo >= red.bucket) {
		start_range(red.plo, red.phi);
		red.plo = red.phi = 0;
	}
	if (red.nreqs) {   /* MPI moves non-blocking collectives on only inside its calls */
		int flag;
		MPI_Testall(red.nreqs, red.reqs, &flag, MPI_STATUSES_IGNORE);
	}
}

static int cmp_range(const void *a, const void *b)
{
	const size_t *x = a, *y = b;
	return x[0] < y[0] ? -1 : x[0] > y[0];
}

void dist_reduce_finish(const char *what)
{
	if (world == 1)
		return;
	if (red.phi > red.plo)
		start_range(red.plo, red.phi);
	red.plo = red.phi = 0;
	/* the rest, lowest first: the gaps between the ranges started during the backward */
	int nearly = red.ndone;
	size_t (*early)[2] = xmalloc((nearly + 1) * sizeof *early);
	if (nearly)   /* without buckets (--bucket-mb 0) red.done is NULL */
		memcpy(early, red.done, nearly * sizeof *early);
	qsort(early, nearly, sizeof *early, cmp_range);
	size_t at = 0;
	for (int i = 0; i <= nearly; i++) {
		size_t end = i < nearly ? early[i][0] : red.n;
		if (end > at)
			start_range(at, end);
		if (i < nearly)
			at = early[i][1];
	}
	free(early);
	double t0 = st_now();
	timed_wait(&main_ch, red.nreqs, red.reqs, what);
	red.waited += st_now() - t0;
	red.reductions++;
	red.nreqs = 0;
	float inv = 1.0f / world;
	for (size_t i = 0; i < red.n; i++)
		red.x[i] *= inv;
}

/* ---- st-gather's helper ---- */

static int gather_listen = -1;
static volatile int gathering;   /* the helper thread is inside a gather (which has its own timeout) */

int dist_gathering(void) { return gathering; }

/* One request: uint64 n, n bytes. The answer: uint64 world, uint64 counts[world], the bytes of every rank in
 * rank order. */
static int serve_one(int fd)
{
	uint64_t n;
	if (st_read_full(fd, &n, sizeof n) != 0)
		return -1;
	if (n > (1ull << 31) - 1)
		die(EX_DATAERR, "st-gather sent %llu bytes: more than one gather can carry (2 GiB)", (unsigned long long)n);
	char *mine = xmalloc(n ? n : 1);
	if (st_read_full(fd, mine, n) != 0) {
		free(mine);
		return -1;
	}
	uint64_t *counts = xmalloc((world + 1) * sizeof *counts);
	MPI_Request req;
	gathering = 1;
	arrive(&gather_ch);
	MPI_Iallgather(&n, 1, MPI_UINT64_T, counts + 1, 1, MPI_UINT64_T, gather_ch.comm, &req);
	timed_wait(&gather_ch, 1, &req, "st-gather's all-gather of the embeddings");
	int *cnt = xmalloc(world * sizeof *cnt), *displ = xmalloc(world * sizeof *displ);
	uint64_t total = 0;
	for (int r = 0; r < world; r++) {
		displ[r] = (int)total;
		cnt[r] = (int)counts[1 + r];
		total += counts[1 + r];
	}
	if (total > (1ull << 31) - 1)
		die(EX_DATAERR, "the ranks' embeddings add up to %llu bytes: more than one gather can carry (2 GiB)",
		    (unsigned long long)total);
	char *all = xmalloc(total ? total : 1);
	arrive(&gather_ch);
	MPI_Iallgatherv(mine, (int)n, MPI_BYTE, all, cnt, displ, MPI_BYTE, gather_ch.comm, &req);
	timed_wait(&gather_ch, 1, &req, "st-gather's all-gather of the embeddings");
	gathering = 0;
	counts[0] = world;
	int rc = st_write_full(fd, counts, (world + 1) * sizeof *counts) || st_write_full(fd, all, total) ? -1 : 0;
	free(mine);
	free(counts);
	free(cnt);
	free(displ);
	free(all);
	return rc;
}

static void *gather_thread(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(gather_listen, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die(EX_OSERR, "st-gather's socket: %s", strerror(errno));
		}
		/* an abstract socket has no file permissions: serve only this user's processes */
		struct ucred cred;
		socklen_t len = sizeof cred;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == getuid())
			while (serve_one(fd) == 0)
				;
		close(fd);   /* st-gather ended (or went away): wait for another */
	}
	return NULL;
}

void dist_serve_gather(const char *run_stamp)
{
	if (world == 1)
		return;
	struct sockaddr_un a;
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	size_t len = dist_gather_socket_name(a.sun_path, sizeof a.sun_path, run_stamp, rank);
	gather_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (gather_listen < 0 || bind(gather_listen, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + len) != 0 ||
	    listen(gather_listen, 4) != 0)
		die(EX_OSERR, "cannot open st-gather's socket (%s): %s", a.sun_path + 1, strerror(errno));
	pthread_t th;
	if (pthread_create(&th, NULL, gather_thread, NULL) != 0)
		die(EX_OSERR, "cannot start a thread");
	pthread_detach(th);
}

void dist_abort(int status)
{
	if (started && world > 1)
		MPI_Abort(MPI_COMM_WORLD, status);
}

void dist_finish(void)
{
	if (started && getenv("ST_DIST_STATS"))   /* bench/mpi.sh */
		fprintf(stderr, "st-step: rank %d: %ld gradient reductions, %.3f s waiting for them (%.4f s per step)\n",
		        rank, red.reductions, red.waited, red.reductions ? red.waited / red.reductions : 0.0);
	if (started)
		MPI_Finalize();
	started = 0;
}

#else

int dist_init(void)
{
	if (launched_world() > 1)
		die(EX_USAGE, "started by mpirun with %d ranks, but this st-step was built without Open MPI (install "
		    "libopenmpi-dev and rebuild: make deps all)", launched_world());
	return 1;
}
void dist_set_timeout(double seconds) { (void)seconds; }
void dist_mean_floats(float *x, size_t n) { (void)x; (void)n; }
double dist_mean_double(double x) { return x; }
int dist_same_u64(uint64_t v, uint64_t *lo, uint64_t *hi) { *lo = *hi = v; return 1; }
void dist_reduce_begin(float *x, size_t n, size_t bucket) { (void)x; (void)n; (void)bucket; }
void dist_reduce_ready(size_t off, size_t count) { (void)off; (void)count; }
void dist_reduce_finish(const char *what) { (void)what; }
void dist_serve_gather(const char *run_stamp) { (void)run_stamp; }
int dist_gathering(void) { return 0; }
void dist_abort(int status) { (void)status; }
void dist_finish(void) {}

#endif
