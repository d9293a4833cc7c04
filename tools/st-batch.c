/* st-batch: groups tokenized examples into padded batches, over epochs, with the library's samplers
 * (docs/st-batch.md). All examples are read first (compactly: token ids and offsets only), so that epochs,
 * shuffling and the total step count are known before the first batch leaves. */
#include "st.h"
#include "stream.h"
#include "run.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: st-batch --size N [--epochs E] [--shuffle] [--seed S] [--drop-last]\n"
	"                [--sampler random|no-duplicates|group-by-label|label-runs] [--k K]\n"
	"                [--start-step K] [--json] [--rank R --world N]\n"
	"                < tokenized-examples > batches\n"
	"\n"
	"  --size N          examples per batch (required)\n"
	"  --epochs E        passes over the data (default 1)\n"
	"  --shuffle         a new permutation each epoch, seeded by --seed + epoch\n"
	"  --seed S          seed of the permutations (default 42)\n"
	"  --drop-last       drop each epoch's last, partial batch\n"
	"  --sampler NAME    random (default): every example once per epoch;\n"
	"                    no-duplicates: no text twice in a batch (for in-batch negatives);\n"
	"                    group-by-label: batches of P labels x K examples, labels taking turns\n"
	"                    (batch-*-triplet losses); label-runs: the older runs of one label\n"
	"  --k K             examples per label and turn for group-by-label (default 2)\n"
	"  --start-step K    begin at global step K (resuming a run)\n"
	"  --rank R --world N  data-parallel training: this process's share of every epoch (DistributedSampler):\n"
	"                    examples R, R+N, ... of the (shuffled) order, the tail padded from its start; default\n"
	"                    from Open MPI's OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_SIZE (docs/training.md)\n"
	"  --json            write JSON Lines instead of msgpack\n"
	"  --threads N       accepted for uniformity; batching runs on one core\n"
	"  --help            this text\n";

enum sampler { SAMPLER_RANDOM, SAMPLER_NO_DUPLICATES, SAMPLER_LABEL_RUNS, SAMPLER_PK };

/* The examples, compactly: the tokens of text t are tokens[text_off[t] .. text_off[t] + text_len[t]). */
static struct {
	size_t n, cap;          /* examples */
	size_t *first_text;     /* [n] index of the example's first text */
	int *ncols;             /* [n] texts of the example */
	float *labels;          /* [n][label_k] */
	int label_k;            /* 0: no labels; 1: scalar; K: vectors of K */
	int label_is_vector;
	size_t ntexts, tcap;
	size_t *text_off;
	int32_t *text_len;
	uint64_t *text_hash;
	int32_t *text_prompt;   /* [ntexts] prompt_length of each text (0: no prompt) */
	int any_prompt;         /* some example has prompt_length: batches carry prompt_lengths */
	int32_t *tokens;
	size_t ntok, tokcap;
} ds;

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull;   /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ull;
	return h;
}

/* Fisher-Yates with splitmix64; the same seed gives the same order on every machine. */
static void permute(uint32_t *a, size_t n, uint64_t seed)
{
	uint64_t s = seed;
	for (size_t i = n; i > 1; i--) {
		size_t j = splitmix64(&s) % i;
		uint32_t t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}

static void add_text(const int32_t *ids, size_t len, uint64_t hash)
{
	if (ds.ntexts == ds.tcap) {
		ds.tcap = ds.tcap ? ds.tcap * 2 : 1024;
		ds.text_off = xrealloc(ds.text_off, ds.tcap * sizeof *ds.text_off);
		ds.text_len = xrealloc(ds.text_len, ds.tcap * sizeof *ds.text_len);
		ds.text_hash = xrealloc(ds.text_hash, ds.tcap * sizeof *ds.text_hash);
		ds.text_prompt = xrealloc(ds.text_prompt, ds.tcap * sizeof *ds.text_prompt);
	}
	while (ds.ntok + len > ds.tokcap) {
		ds.tokcap = ds.tokcap ? ds.tokcap * 2 : 1 << 16;
		ds.tokens = xrealloc(ds.tokens, ds.tokcap * sizeof *ds.tokens);
	}
	memcpy(ds.tokens + ds.ntok, ids, len * sizeof *ids);
	ds.text_off[ds.ntexts] = ds.ntok;
	ds.text_len[ds.ntexts] = (int32_t)len;
	ds.text_hash[ds.ntexts] = hash;
	ds.text_prompt[ds.ntexts] = 0;
	ds.ntexts++;
	ds.ntok += len;
}

static void add_example(st_reader *in, const st_val *rec)
{
	const char *where = st_reader_where(in);
	st_val *ids = st_get(rec, "input_ids");
	if (!ids)
		die(EX_DATAERR, "stdin, %s: no input_ids (run st-tokenize before st-batch)", where);
	const char *texts[64];
	size_t lens[64];
	int ntexts = st_example_texts(rec, texts, lens, 64);

	if (ds.n == ds.cap) {
		ds.cap = ds.cap ? ds.cap * 2 : 1024;
		ds.first_text = xrealloc(ds.first_text, ds.cap * sizeof *ds.first_text);
		ds.ncols = xrealloc(ds.ncols, ds.cap * sizeof *ds.ncols);
	}
	size_t first = ds.ntexts;
	int cols = 0;
	/* input_ids: an array of 1-D int32 tensors (one per text), or one [texts][T] tensor */
	if (ids->type == ST_TENSOR && ids->t.dtype == ST_I32 && (ids->t.ndim == 1 || ids->t.ndim == 2)) {
		cols = ids->t.ndim == 1 ? 1 : (int)ids->t.shape[0];
		size_t T = ids->t.shape[ids->t.ndim - 1];
		for (int c = 0; c < cols; c++)
			add_text(ST_I32P(&ids->t) + c * T, T, 0);
	} else if (ids->type == ST_ARRAY) {
		for (size_t c = 0; c < ids->arr.n; c++) {
			st_val *t = ids->arr.items[c];
			if (t->type != ST_TENSOR || t->t.dtype != ST_I32 || t->t.ndim != 1)
				die(EX_DATAERR, "stdin, %s: input_ids must hold one list of token ids per text", where);
			add_text(ST_I32P(&t->t), t->t.count, 0);
		}
		cols = (int)ids->arr.n;
	} else {
		die(EX_DATAERR, "stdin, %s: input_ids must hold one list of token ids per text", where);
	}
	if (cols < 1)
		die(EX_DATAERR, "stdin, %s: input_ids holds no texts", where);
	/* prompt_length (st-tokenize --prompt): one count of prompt tokens per text */
	st_val *pl = st_get(rec, "prompt_length");
	if (pl && pl->type != ST_NIL) {
		double x;
		if (pl->type != ST_ARRAY || (int)pl->arr.n != cols)
			die(EX_DATAERR, "stdin, %s: prompt_length must be a list of %d numbers, one per text", where, cols);
		for (int c = 0; c < cols; c++) {
			if (st_num(pl->arr.items[c], &x) < 0 || !(x >= 0 && x < 1e9) || x != (double)(int32_t)x)
				die(EX_DATAERR, "stdin, %s: prompt_length[%d] is not a count of tokens", where, c);
			ds.text_prompt[first + c] = (int32_t)x;
		}
		ds.any_prompt = 1;
	}
	/* duplicates are judged on the texts when the example has them, else on the token ids */
	for (int c = 0; c < cols; c++) {
		size_t t = first + c;
		ds.text_hash[t] = c < ntexts && ntexts == cols ? hash_bytes(texts[c], lens[c])
			: hash_bytes(ds.tokens + ds.text_off[t], ds.text_len[t] * sizeof(int32_t));
	}
	ds.first_text[ds.n] = first;
	ds.ncols[ds.n] = cols;

	/* label: a number, or an array of numbers (e.g. teacher embeddings) */
	st_val *label = st_example_label(rec);
	int k = 0;
	double x;
	if (label && st_num(label, &x) == 0)
		k = 1;
	else if (label && label->type == ST_ARRAY)
		k = (int)label->arr.n;
	else if (label && label->type == ST_TENSOR)
		k = (int)label->t.count;
	else if (label && label->type != ST_NIL)
		die(EX_DATAERR, "stdin, %s: label must be a number or a list of numbers", where);
	int is_vector = label && label->type != ST_INT && label->type != ST_FLOAT;
	if (ds.n == 0) {
		ds.label_k = k;
		ds.label_is_vector = is_vector;
	} else if (k != ds.label_k || (k && is_vector != ds.label_is_vector)) {
		die(EX_DATAERR, "stdin, %s: label does not match the first example's (%s)", where,
		    ds.label_k == 0 ? "none" : ds.label_is_vector ? "a list" : "a number");
	}
	if (k) {
		ds.labels = xrealloc(ds.labels, xmul(ds.cap, k * sizeof(float)));
		float *dst = ds.labels + ds.n * k;
		if (!is_vector) {
			dst[0] = (float)x;
		} else if (label->type == ST_TENSOR) {
			for (int i = 0; i < k; i++) {
				double y = label->t.dtype == ST_F32 ? ((float *)label->t.data)[i]
					: label->t.dtype == ST_F64 ? ((double *)label->t.data)[i]
					: label->t.dtype == ST_I32 ? ((int32_t *)label->t.data)[i] : 0;
				dst[i] = (float)y;
			}
		} else {
			for (int i = 0; i < k; i++) {
				if (st_num(label->arr.items[i], &x) < 0)
					die(EX_DATAERR, "stdin, %s: label must be a number or a list of numbers", where);
				dst[i] = (float)x;
			}
		}
	}
	ds.n++;
}

/* ---- samplers: each fills `order` with one epoch's example indices, batch after batch, and `bounds` with
 * the batch boundaries (bounds[b] .. bounds[b+1]) ---- */
typedef struct { uint32_t *idx; size_t n, cap; size_t *bounds; size_t nb, bcap; } plan;

static void plan_push(plan *p, uint32_t i)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 1024;
		p->idx = xrealloc(p->idx, p->cap * sizeof *p->idx);
	}
	p->idx[p->n++] = i;
}

static void plan_cut(plan *p)
{
	if (p->nb + 2 > p->bcap) {
		p->bcap = p->bcap ? p->bcap * 2 : 256;
		p->bounds = xrealloc(p->bounds, p->bcap * sizeof *p->bounds);
	}
	if (p->nb == 0)
		p->bounds[0] = 0;
	p->bounds[++p->nb] = p->n;
}

/* Cuts idx[0..n) into batches of `size` onto p. */
static void plan_chunks(plan *p, const uint32_t *idx, size_t n, size_t size, int drop_last)
{
	for (size_t i = 0; i < n; i += size) {
		if (i + size > n && drop_last)
			break;
		for (size_t j = i; j < n && j < i + size; j++)
			plan_push(p, idx[j]);
		plan_cut(p);
	}
}

static int cmp_float(float a, float b) { return a < b ? -1 : a > b; }
static const float *sort_labels;
static int by_label(const void *a, const void *b)
{
	uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
	int c = cmp_float(sort_labels[i], sort_labels[j]);
	return c ? c : (i > j) - (i < j);
}

/* torch's DistributedSampler (drop_last=False): the epoch's order padded by repeating it from its start until
 * its length is a multiple of world, then every world-th example from rank on. Every rank gets the same count,
 * so all ranks make the same number of batches and meet at every step. Returns the new length. */
static size_t shard(uint32_t *idx, size_t n, long rank, long world)
{
	if (world <= 1)
		return n;
	size_t per = (n + world - 1) / world, total = per * world;
	uint32_t *padded = xmalloc(xmul(total, sizeof *padded));
	for (size_t i = 0; i < total; i++)
		padded[i] = idx[i % n];
	for (size_t i = 0; i < per; i++)
		idx[i] = padded[rank + i * world];
	free(padded);
	return per;
}

static long dist_rank, dist_world = 1;

static void plan_pk(plan *p, size_t size, size_t k, uint64_t seed, int drop_last);

static void epoch_plan(plan *p, enum sampler s, size_t size, size_t k, int shuffle, uint64_t seed, int epoch,
		       int drop_last)
{
	size_t n = ds.n;
	uint32_t *idx = xmalloc(xmul(n, sizeof *idx));
	for (size_t i = 0; i < n; i++)
		idx[i] = (uint32_t)i;
	uint64_t eseed = seed + (uint64_t)epoch;

	if (s == SAMPLER_PK) {
		plan_pk(p, size, k, eseed, drop_last);
	} else if (s == SAMPLER_RANDOM) {
		if (shuffle)
			permute(idx, n, eseed);
		n = shard(idx, n, dist_rank, dist_world);
		plan_chunks(p, idx, n, size, drop_last);
	} else if (s == SAMPLER_NO_DUPLICATES) {
		/* v3 NoDuplicatesBatchSampler: scan the remaining examples in (permuted) order, skip one that shares
		 * a text with the batch (it stays for a later batch), emit when full; a partial batch at the end of
		 * a scan is emitted unless --drop-last, its examples consumed either way. */
		if (shuffle)
			permute(idx, n, eseed);
		size_t remaining = n;
		uint64_t *seen = xmalloc(xmul(size * 64, sizeof *seen));
		uint32_t *batch = xmalloc(xmul(size, sizeof *batch));
		while (remaining > 0) {
			size_t nb = 0, nseen = 0, keep = 0;
			size_t i;
			for (i = 0; i < remaining && nb < size; i++) {
				uint32_t e = idx[i];
				int dup = 0;
				for (int c = 0; c < ds.ncols[e] && !dup; c++)
					for (size_t k = 0; k < nseen; k++)
						if (seen[k] == ds.text_hash[ds.first_text[e] + c]) {
							dup = 1;
							break;
						}
				if (dup) {
					idx[keep++] = e;   /* stays, in order, for later batches */
					continue;
				}
				batch[nb++] = e;
				for (int c = 0; c < ds.ncols[e] && c < 64; c++)
					seen[nseen++] = ds.text_hash[ds.first_text[e] + c];
			}
			for (; i < remaining; i++)
				idx[keep++] = idx[i];
			remaining = keep;
			if (nb == size || !drop_last) {
				for (size_t k = 0; k < nb; k++)
					plan_push(p, batch[k]);
				plan_cut(p);
			}
		}
		free(seen);
		free(batch);
	} else {
		/* label-runs, the GroupByLabelBatchSampler of the v3.0-era library: per label its examples in data
		 * order, cut to an even count (labels with one example dropped); labels visited in a (seeded) order;
		 * batches cut from the run, so most batches hold a single label. */
		if (ds.label_k != 1 || ds.label_is_vector)
			die(EX_DATAERR, "label-runs needs a number label on every example");
		sort_labels = ds.labels;
		qsort(idx, n, sizeof *idx, by_label);
		size_t ngroups = 0;
		size_t *gstart = xmalloc(xmul(n + 1, sizeof *gstart));
		for (size_t i = 0; i < n; i++)
			if (i == 0 || ds.labels[idx[i]] != ds.labels[idx[i - 1]])
				gstart[ngroups++] = i;
		gstart[ngroups] = n;
		uint32_t *gorder = xmalloc(xmul(ngroups ? ngroups : 1, sizeof *gorder));
		for (size_t g = 0; g < ngroups; g++)
			gorder[g] = (uint32_t)g;
		if (shuffle)
			permute(gorder, ngroups, eseed);
		uint32_t *run = xmalloc(xmul(n ? n : 1, sizeof *run));
		size_t nrun = 0;
		for (size_t k = 0; k < ngroups; k++) {
			size_t g = gorder[k], len = gstart[g + 1] - gstart[g];
			len -= len % 2;
			for (size_t i = 0; i < len; i++)
				run[nrun++] = idx[gstart[g] + i];
		}
		plan_chunks(p, run, nrun, size, drop_last);
		free(run);
		free(gorder);
		free(gstart);
	}
	free(idx);
}

/* group-by-label, the PK sampler of the current library's GroupByLabelBatchSampler: each label's examples
 * shuffled and cut to a multiple of K (labels with fewer than K dropped); then rounds in which every label
 * that has examples left gives K, in a freshly permuted label order, while at least two labels have examples
 * left; batches of `size` (a multiple of K) are cut from that stream. A round never starts with the label that
 * ended the previous one, so K-runs next to each other always differ in label and every batch of at least 2K
 * holds at least two labels with K examples each (the library lacks this guard: with 3 labels and batches of 4
 * it can emit a batch of one label). A last partial batch is kept, unless --drop-last, when it holds 2K. */
static void plan_pk(plan *p, size_t size, size_t k, uint64_t seed, int drop_last)
{
	size_t n = ds.n;
	if (ds.label_k != 1 || ds.label_is_vector)
		die(EX_DATAERR, "group-by-label needs a number label on every example");
	uint32_t *idx = xmalloc(xmul(n, sizeof *idx));
	for (size_t i = 0; i < n; i++)
		idx[i] = (uint32_t)i;
	sort_labels = ds.labels;
	qsort(idx, n, sizeof *idx, by_label);   /* labels in order, each label's examples in data order */
	/* queues: label q's examples are idx[qhead[q] .. qend[q]) */
	size_t *qhead = xmalloc(xmul(n + 1, sizeof *qhead)), *qend = xmalloc(xmul(n + 1, sizeof *qend));
	uint32_t *live = xmalloc(xmul(n + 1, sizeof *live));
	size_t nq = 0;
	uint64_t s = seed;
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && ds.labels[idx[j]] == ds.labels[idx[i]]; j++)
			;
		size_t len = (j - i) / k * k;
		if (len == 0)
			continue;
		permute(idx + i, j - i, splitmix64(&s));
		qhead[nq] = i;
		qend[nq] = i + len;
		live[nq] = (uint32_t)nq;
		nq++;
	}
	if (nq < 2)
		die(EX_DATAERR, "group-by-label needs at least 2 labels with %zu examples or more; the data has %zu", k, nq);
	size_t nlive = nq, start = p->n, last = SIZE_MAX;
	while (nlive >= 2) {
		permute(live, nlive, splitmix64(&s));
		if (live[0] == last) {   /* keep neighbouring K-runs apart in label */
			size_t j = 1 + splitmix64(&s) % (nlive - 1);
			uint32_t t = live[0];
			live[0] = live[j];
			live[j] = t;
		}
		for (size_t r = 0; r < nlive; r++) {
			size_t q = live[r];
			for (size_t t = 0; t < k; t++)
				plan_push(p, idx[qhead[q]++]);
			if (p->n - start == size) {
				plan_cut(p);
				start = p->n;
			}
		}
		last = live[nlive - 1];
		size_t keep = 0;
		for (size_t r = 0; r < nlive; r++)
			if (qhead[live[r]] < qend[live[r]])
				live[keep++] = live[r];
		nlive = keep;
	}
	if (p->n - start >= 2 * k && !drop_last)
		plan_cut(p);
	else
		p->n = start;   /* too small to hold two labels: dropped */
	free(live);
	free(qend);
	free(qhead);
	free(idx);
}

static void emit_batch(st_writer *out, const uint32_t *rows, size_t B, long step, int epoch, long steps)
{
	int C = ds.ncols[rows[0]];
	int64_t T = 1;
	for (size_t b = 0; b < B; b++) {
		if (ds.ncols[rows[b]] != C)
			die(EX_DATAERR, "record %u has %d texts, but record %u in the same batch has %d: examples in a batch "
			    "must have the same number of texts", rows[b] + 1, ds.ncols[rows[b]], rows[0] + 1, C);
		for (int c = 0; c < C; c++)
			if (ds.text_len[ds.first_text[rows[b]] + c] > T)
				T = ds.text_len[ds.first_text[rows[b]] + c];
	}
	st_val *rec = st_map();
	st_set(rec, "kind", st_str("batch"));
	st_set(rec, "step", st_int(step));
	st_set(rec, "epoch", st_int(epoch));
	st_set(rec, "steps", st_int(steps));
	int64_t shape[3] = { C, (int64_t)B, T };
	st_val *ids = st_tensor_new(ST_I32, 3, shape);
	st_val *lens = st_tensor_new(ST_I32, 2, shape);
	for (int c = 0; c < C; c++)
		for (size_t b = 0; b < B; b++) {
			size_t t = ds.first_text[rows[b]] + c;
			memcpy(ST_I32P(&ids->t) + ((size_t)c * B + b) * T, ds.tokens + ds.text_off[t], ds.text_len[t] * sizeof(int32_t));
			ST_I32P(&lens->t)[c * B + b] = ds.text_len[t];
		}
	st_set(rec, "input_ids", ids);
	st_set(rec, "lengths", lens);
	if (ds.any_prompt) {
		st_val *pl = st_tensor_new(ST_I32, 2, shape);
		for (int c = 0; c < C; c++)
			for (size_t b = 0; b < B; b++)
				ST_I32P(&pl->t)[c * B + b] = ds.text_prompt[ds.first_text[rows[b]] + c];
		st_set(rec, "prompt_lengths", pl);
	}
	if (ds.label_k) {
		int64_t lshape[2] = { (int64_t)B, ds.label_k };
		st_val *labels = st_tensor_new(ST_F32, ds.label_is_vector ? 2 : 1, lshape);
		for (size_t b = 0; b < B; b++)
			memcpy(ST_F32P(&labels->t) + b * ds.label_k, ds.labels + (size_t)rows[b] * ds.label_k, ds.label_k * sizeof(float));
		st_set(rec, "labels", labels);
	}
	int64_t n = (int64_t)B;
	st_val *ex = st_tensor_new(ST_I32, 1, &n);
	for (size_t b = 0; b < B; b++)
		ST_I32P(&ex->t)[b] = (int32_t)rows[b];
	st_set(rec, "example_ids", ex);
	st_write(out, rec);
	st_free(rec);
}

int main(int argc, char **argv)
{
	st_tool_init("st-batch", argc, argv, usage);
	long size = 0, epochs = 1, start_step = 0;
	uint64_t seed = 42;
	int shuffle = 0, drop_last = 0, json = 0;
	enum sampler sampler = SAMPLER_RANDOM;
	long k = 2;
	enum { O_SIZE = 256, O_EPOCHS, O_SEED, O_START, O_THREADS, O_SHUFFLE, O_DROPLAST, O_JSON, O_SAMPLER, O_RANK, O_WORLD,
	       O_K };
	static const struct option opts[] = {
		{ "size", required_argument, 0, O_SIZE }, { "epochs", required_argument, 0, O_EPOCHS },
		{ "seed", required_argument, 0, O_SEED }, { "start-step", required_argument, 0, O_START },
		{ "threads", required_argument, 0, O_THREADS }, { "shuffle", no_argument, 0, O_SHUFFLE },
		{ "drop-last", no_argument, 0, O_DROPLAST }, { "json", no_argument, 0, O_JSON },
		{ "sampler", required_argument, 0, O_SAMPLER }, { "rank", required_argument, 0, O_RANK },
		{ "world", required_argument, 0, O_WORLD }, { "k", required_argument, 0, O_K }, { 0 } };
	long rank = -1, world = -1;
	int c;
	while ((c = st_getopt(argc, argv, opts, usage)) != -1) {
		const char *a = argv[optind - 1], *v = optarg;
		switch (c) {
		case O_SIZE: size = st_parse_long(a, v); break;
		case O_EPOCHS: epochs = st_parse_long(a, v); break;
		case O_SEED: seed = (uint64_t)st_parse_long(a, v); break;
		case O_START: start_step = st_parse_long(a, v); break;
		case O_THREADS: st_set_threads((int)st_parse_long(a, v)); break;
		case O_SHUFFLE: shuffle = 1; break;
		case O_DROPLAST: drop_last = 1; break;
		case O_JSON: json = 1; break;
		case O_RANK: rank = st_parse_long(a, v); break;
		case O_WORLD: world = st_parse_long(a, v); break;
		case O_SAMPLER:
			if (!strcmp(v, "random")) sampler = SAMPLER_RANDOM;
			else if (!strcmp(v, "no-duplicates")) sampler = SAMPLER_NO_DUPLICATES;
			else if (!strcmp(v, "group-by-label")) sampler = SAMPLER_PK;
			else if (!strcmp(v, "label-runs")) sampler = SAMPLER_LABEL_RUNS;
			else usage_error(usage, "unknown sampler '%s' (random, no-duplicates, group-by-label, label-runs)", v);
			break;
		case O_K: k = st_parse_long(a, v); break;
		}
	}
	if (optind < argc)
		usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (start_step < 0)
		usage_error(usage, "--start-step must be 0 or more");
	if (size < 1)
		usage_error(usage, "--size N is required and must be at least 1");
	if (epochs < 1)
		usage_error(usage, "--epochs must be at least 1");
	if ((rank < 0) != (world < 0))
		usage_error(usage, "--rank and --world go together");
	if (world < 0) {   /* under mpirun: Open MPI tells every process its place */
		int w;
		rank = run_rank(&w);
		world = w;
	}
	if (world < 1 || rank < 0 || rank >= world)
		usage_error(usage, "--rank %ld of --world %ld: the rank must be 0 .. world-1", rank, world);
	if (world > 1 && sampler != SAMPLER_RANDOM)
		usage_error(usage, "--sampler %s is not sharded over ranks yet; use the random sampler with %ld ranks",
		            sampler == SAMPLER_NO_DUPLICATES ? "no-duplicates" :
		            sampler == SAMPLER_PK ? "group-by-label" : "label-runs", world);
	dist_rank = rank;
	dist_world = world;
	if (sampler == SAMPLER_LABEL_RUNS && size % 2)
		usage_error(usage, "label-runs needs an even --size");
	if (k < 2)
		usage_error(usage, "--k must be at least 2 (a label needs a positive for each anchor)");
	if (sampler == SAMPLER_PK && (size % k || size < 2 * k))
		usage_error(usage, "group-by-label needs a --size that is a multiple of --k (%ld) and at least 2 x %ld", k, k);

	st_reader *in = st_reader_open(0, "stdin");
	st_val *rec;
	while ((rec = st_read(in))) {
		add_example(in, rec);
		st_free(rec);
	}
	st_reader_close(in);
	if (ds.n == 0)
		return 0;

	/* every epoch's plan first: the total step count goes into every batch */
	plan *plans = xcalloc(epochs, sizeof *plans);
	long steps = 0;
	for (long e = 0; e < epochs; e++) {
		epoch_plan(&plans[e], sampler, size, (size_t)k, shuffle, seed, (int)e, drop_last);
		steps += plans[e].nb;
	}
	/* nothing to hand on would leave a resumed st-step waiting for batches that never come */
	if (start_step > steps)
		die(EX_USAGE, "--start-step %ld is past the end: the data makes %ld steps (0..%ld); resume at the newest "
		    "checkpoint's step", start_step, steps, steps - 1);
	st_writer *out = st_writer_open(1, json);
	long step = 0;
	for (long e = 0; e < epochs; e++) {
		for (size_t b = 0; b < plans[e].nb; b++, step++) {
			if (step < start_step)
				continue;
			size_t lo = plans[e].bounds[b], hi = plans[e].bounds[b + 1];
			emit_batch(out, plans[e].idx + lo, hi - lo, step, (int)e, steps);
		}
		free(plans[e].idx);
		free(plans[e].bounds);
	}
	st_writer_close(out);
	free(plans);
	return 0;
}
