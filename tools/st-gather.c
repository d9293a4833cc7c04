/* st-gather: in-batch negatives across ranks (docs/st-gather.md). Between st-forward --run and the loss stage of
 * a data-parallel run, it replaces each batch's embeddings by those of the global batch (every rank's, in rank
 * order) and marks the rows that are this rank's own, so that any loss stage computes one loss over the global
 * batch and st-step keeps its own rows' gradient. Without mpirun it passes its input through unchanged. */
#include "dist.h"
#include "run.h"
#include "st.h"
#include "stream.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char usage[] =
	"usage: st-gather [--json] [--wait-timeout S] [--threads N] < batches-with-embeddings > global-batches\n"
	"\n"
	"Under mpirun (data-parallel training, docs/training.md), between st-forward --run DIR and the loss stage:\n"
	"each batch's \"embeddings\" (and \"labels\", \"example_ids\") become those of the global batch, every\n"
	"rank's rows in rank order, and \"own_rows\": [first, count] marks this rank's; the loss then sees every\n"
	"rank's rows as in-batch negatives (the library's gather_across_devices=True), and st-step keeps its own\n"
	"rows' gradient. The gathering itself is done by the st-step --run DIR of the same rank (over MPI).\n"
	"Without mpirun (one process) the input is copied to the output unchanged.\n"
	"\n"
	"  --json            write JSON Lines instead of msgpack (under mpirun)\n"
	"  --wait-timeout S  how long to wait for this rank's st-step to be ready (default 60)\n"
	"  --threads N       accepted for uniformity; st-gather runs on one core\n"
	"  -h, --help        this text\n";

/* One process: the bytes as they come, each read written on at once (training answers batch by batch). */
static int pass_through(void)
{
	static char buf[1 << 16];
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(EX_IOERR, "reading stdin: %s", strerror(errno));
		if (n == 0)
			return 0;
		if (st_write_full(1, buf, n) != 0) {
			if (errno == EPIPE)
				return 0;
			die(EX_IOERR, "writing stdout: %s", strerror(errno));
		}
	}
}

static int connect_step(const char *stamp, int rank, double timeout)
{
	struct sockaddr_un a;
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	size_t len = dist_gather_socket_name(a.sun_path, sizeof a.sun_path, stamp, rank);
	double t0 = st_now();
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die(EX_OSERR, "socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + len) == 0)
			return fd;
		close(fd);
		if (st_now() - t0 > timeout)
			die(EX_UNAVAILABLE, "rank %d: no st-step of run %s to gather through after %g s: st-gather goes between "
			    "st-forward --run DIR and the loss stage, with st-step --run DIR of the same rank under the same "
			    "mpirun", rank, stamp, timeout);
		usleep(20000);
	}
}

/* What one rank sends: int64 C, B, D, label dims (0: none, 1: [B], 2: [B][K]), K, has example_ids; then
 * float32 embeddings [C][B][D], labels [B][K], int32 example_ids [B]. */
enum { H_C, H_B, H_D, H_LDIM, H_K, H_IDS, H_N };

static const st_tensor *tensor_or_die(const st_val *rec, const char *key, const char *where, int need)
{
	st_val *v = st_get(rec, key);
	if (!v) {
		if (need)
			die(EX_DATAERR, "batch without \"%s\" (%s): st-gather reads batches from st-forward", key, where);
		return NULL;
	}
	if (v->type != ST_TENSOR)
		die(EX_DATAERR, "\"%s\" must be a tensor (%s)", key, where);
	return &v->t;
}

static void gather_batch(st_val *rec, int fd, int rank, const char *where)
{
	const st_tensor *E = tensor_or_die(rec, "embeddings", where, 1);
	if (E->dtype != ST_F32 || E->ndim != 3)
		die(EX_DATAERR, "\"embeddings\" must be a 3-D f32 tensor [columns][rows][dim] (%s)", where);
	st_val *iv = st_get(rec, "example_ids");
	if (iv && iv->type == ST_ARRAY) {   /* read from JSON: a list of numbers */
		int64_t n = (int64_t)iv->arr.n;
		st_val *t = st_tensor_new(ST_I32, 1, &n);
		for (size_t i = 0; i < iv->arr.n; i++) {
			double x;
			if (st_num(iv->arr.items[i], &x) != 0)
				die(EX_DATAERR, "\"example_ids\" must be numbers (%s)", where);
			ST_I32P(&t->t)[i] = (int32_t)x;
		}
		st_set(rec, "example_ids", t);
	}
	const st_tensor *Lb = tensor_or_die(rec, "labels", where, 0), *ids = tensor_or_die(rec, "example_ids", where, 0);
	int64_t h[H_N] = { E->shape[0], E->shape[1], E->shape[2], 0, 1, 0 };
	if (Lb) {
		if (Lb->dtype != ST_F32 || Lb->ndim < 1 || Lb->ndim > 2 || Lb->shape[0] != h[H_B])
			die(EX_DATAERR, "\"labels\" must be f32 [rows] or [rows][K] with the rows of \"embeddings\" (%s)", where);
		h[H_LDIM] = Lb->ndim;
		h[H_K] = Lb->ndim == 2 ? Lb->shape[1] : 1;
	}
	if (ids) {
		if (ids->dtype != ST_I32 || ids->ndim != 1 || ids->shape[0] != h[H_B])
			die(EX_DATAERR, "\"example_ids\" must be i32 [rows] with the rows of \"embeddings\" (%s)", where);
		h[H_IDS] = 1;
	}
	size_t ne = E->count, nl = Lb ? Lb->count : 0, ni = ids ? ids->count : 0;
	uint64_t n = sizeof h + 4 * (ne + nl + ni);
	char *msg = xmalloc(n);
	memcpy(msg, h, sizeof h);
	memcpy(msg + sizeof h, E->data, 4 * ne);
	if (nl)
		memcpy(msg + sizeof h + 4 * ne, Lb->data, 4 * nl);
	if (ni)
		memcpy(msg + sizeof h + 4 * (ne + nl), ids->data, 4 * ni);
	if (st_write_full(fd, &n, sizeof n) != 0 || st_write_full(fd, msg, n) != 0)
		die(EX_UNAVAILABLE, "rank %d: this rank's st-step went away (%s)", rank, where);
	free(msg);

	uint64_t world;
	if (st_read_full(fd, &world, sizeof world) != 0 || world < 1 || world > 1 << 20)
		die(EX_UNAVAILABLE, "rank %d: this rank's st-step went away during the gather (%s)", rank, where);
	uint64_t *counts = xmalloc(world * sizeof *counts), total = 0;
	if (st_read_full(fd, counts, world * sizeof *counts) != 0)
		die(EX_UNAVAILABLE, "rank %d: this rank's st-step went away during the gather (%s)", rank, where);
	for (uint64_t r = 0; r < world; r++)
		total += counts[r];
	char *all = xmalloc(total ? total : 1);
	if (st_read_full(fd, all, total) != 0)
		die(EX_UNAVAILABLE, "rank %d: this rank's st-step went away during the gather (%s)", rank, where);
	/* every rank's part: the same columns, dim and label shape; its own number of rows */
	char **part = xmalloc(world * sizeof *part);
	int64_t rows = 0, first = 0;
	for (uint64_t r = 0, at = 0; r < world; at += counts[r], r++) {
		int64_t hr[H_N];
		if (counts[r] < sizeof hr)
			die(EX_DATAERR, "rank %llu sent no batch to gather (%s)", (unsigned long long)r, where);
		memcpy(hr, all + at, sizeof hr);
		if (hr[H_C] != h[H_C] || hr[H_D] != h[H_D] || hr[H_LDIM] != h[H_LDIM] || hr[H_K] != h[H_K] ||
		    hr[H_IDS] != h[H_IDS] || hr[H_B] < 0 ||
		    counts[r] != sizeof hr + 4 * (uint64_t)hr[H_B] * (hr[H_C] * hr[H_D] + (hr[H_LDIM] ? hr[H_K] : 0) + hr[H_IDS]))
			die(EX_DATAERR, "rank %llu's batch does not match rank %d's (columns, dim, labels or example_ids differ: "
			    "every rank must run the same pipeline) (%s)", (unsigned long long)r, rank, where);
		if ((int)r == rank)
			first = rows;
		rows += hr[H_B];
		part[r] = all + at;
	}
	int64_t C = h[H_C], D = h[H_D], K = h[H_K];
	int64_t es[3] = { C, rows, D };
	st_val *ge = st_tensor_new(ST_F32, 3, es);
	st_val *gl = NULL, *gi = NULL;
	if (h[H_LDIM]) {
		int64_t ls[2] = { rows, K };
		gl = st_tensor_new(ST_F32, (int)h[H_LDIM], ls);
	}
	if (h[H_IDS]) {
		int64_t is[1] = { rows };
		gi = st_tensor_new(ST_I32, 1, is);
	}
	for (int64_t r = 0, row0 = 0; r < (int64_t)world; r++) {
		int64_t hr[H_N];
		memcpy(hr, part[r], sizeof hr);
		int64_t B = hr[H_B];
		const char *p = part[r] + sizeof hr;
		for (int64_t c = 0; c < C; c++)   /* [C][B][D] into [C][rows][D] */
			memcpy(ST_F32P(&ge->t) + ((size_t)c * rows + row0) * D, p + 4 * (size_t)c * B * D, 4 * (size_t)B * D);
		p += 4 * (size_t)C * B * D;
		if (gl) {
			memcpy(ST_F32P(&gl->t) + (size_t)row0 * K, p, 4 * (size_t)B * K);
			p += 4 * (size_t)B * K;
		}
		if (gi)
			memcpy(ST_I32P(&gi->t) + row0, p, 4 * (size_t)B);
		row0 += B;
	}
	st_set(rec, "embeddings", ge);
	if (gl)
		st_set(rec, "labels", gl);
	if (gi)
		st_set(rec, "example_ids", gi);
	st_val *own = st_array();
	st_push(own, st_int(first));
	st_push(own, st_int(h[H_B]));
	st_set(rec, "own_rows", own);
	st_set(rec, "gather_rank", st_int(rank));
	st_set(rec, "gather_world", st_int((int64_t)world));
	free(part);
	free(all);
	free(counts);
}

int main(int argc, char **argv)
{
	st_tool_init("st-gather", argc, argv, usage);
	int json = 0;
	double timeout = 60;
	enum { O_JSON = 256, O_WAIT, O_THREADS };
	static const struct option opts[] = {
		{ "json", no_argument, 0, O_JSON },
		{ "wait-timeout", required_argument, 0, O_WAIT },
		{ "threads", required_argument, 0, O_THREADS },
		{ 0 },
	};
	int c;
	while ((c = st_getopt(argc, argv, opts, usage)) != -1)
		switch (c) {
		case O_JSON: json = 1; break;
		case O_WAIT: timeout = st_parse_double("--wait-timeout", optarg); break;
		case O_THREADS: st_parse_long("--threads", optarg); break;
		}
	if (optind < argc)
		usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (timeout < 0)
		usage_error(usage, "negative value");
	int world, rank = run_rank(&world);
	if (world == 1)
		return pass_through();

	st_reader *in = st_reader_open(0, "stdin");
	st_writer *out = st_writer_open(1, json);
	st_val *rec;
	int fd = -1;
	while ((rec = st_read(in))) {
		const char *kind = st_get_str(rec, "kind");
		if (kind && !strcmp(kind, "batch")) {
			const char *where = st_reader_where(in);
			const char *stamp = st_get_str(rec, "run_id");
			if (!stamp)
				die(EX_DATAERR, "batch without \"run_id\" (%s): under mpirun st-gather gathers through the st-step of "
				    "the run, so its input comes from st-forward --run DIR", where);
			if (!st_get(rec, "embeddings"))
				die(EX_DATAERR, "batch without \"embeddings\" (%s): st-gather reads batches from st-forward", where);
			if (fd < 0)
				fd = connect_step(stamp, rank, timeout);
			gather_batch(rec, fd, rank, where);
		} else if (st_get(rec, "embeddings")) {
			die(EX_DATAERR, "a record with \"embeddings\" but no \"kind\": \"batch\" (%s)", st_reader_where(in));
		}
		st_write(out, rec);
		st_writer_flush(out);
		st_free(rec);
	}
	st_writer_close(out);
	st_reader_close(in);
	if (fd >= 0)
		close(fd);
	return 0;
}
