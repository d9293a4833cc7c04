/* mining.c: hard-negative mining and community detection (mining.h, docs/st-mine.md). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "metrics.h"
#include "mining.h"
#include "search.h"
#include "st.h"

int mining_default_range_max(const mining_hn_opts *o, int max_positives)
{
	int filters = o->has_margin || o->has_relative_margin || o->has_max_score || o->has_min_score;
	long r = (long)o->range_min + (long)o->num_negatives * (filters ? 10 : 1) + max_positives;
	return r > INT32_MAX / 2 ? INT32_MAX / 2 : (int)r;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* uniform in [0, n) without modulo bias */
static size_t rand_below(uint64_t *s, size_t n)
{
	uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
	while ((x = splitmix64(s)) >= lim)
		;
	return (size_t)(x % n);
}

static float dot(const float *a, const float *b, int d)
{
	double s = 0;
	for (int k = 0; k < d; k++)
		s += (double)a[k] * b[k];
	return (float)s;
}

void mining_hard_negatives(const float *Q, size_t nq, const float *C, size_t nc, int d, const size_t *pos_start,
			   const int32_t *pos_ids, const mining_hn_opts *o, int32_t *neg, float *neg_score,
			   int *nneg)
{
	int nn = o->num_negatives, max_pos = 0;
	for (size_t q = 0; q < nq; q++)
		if ((int)(pos_start[q + 1] - pos_start[q]) > max_pos)
			max_pos = (int)(pos_start[q + 1] - pos_start[q]);
	int range_max = o->range_max >= 0 ? o->range_max : mining_default_range_max(o, max_pos);
	/* candidates per query: range_max + max_positives, at most the corpus */
	long kl = (long)range_max + max_pos;
	int K = kl < (long)nc ? (int)kl : (int)nc;
	if (range_max > K)
		range_max = K;
	for (size_t i = 0; i < xmul(nq, nn); i++)
		neg[i] = -1, neg_score[i] = -INFINITY;
	memset(nneg, 0, nq * sizeof *nneg);
	if (K <= 0 || nn <= 0)
		return;
	uint64_t rng = o->seed;
	size_t chunk = 256;
	search_hit *hits = xmalloc(xmul(xmul(chunk, K), sizeof *hits));
	int *nhits = xmalloc(chunk * sizeof *nhits);
	search_hit *keep = xmalloc((size_t)K * sizeof *keep);
	for (size_t q0 = 0; q0 < nq; q0 += chunk) {
		size_t qn = nq - q0 < chunk ? nq - q0 : chunk;
		search_topk(Q + q0 * d, qn, C, nc, d, METRICS_DOT, K, hits, nhits);
		for (size_t qi = 0; qi < qn; qi++) {
			size_t q = q0 + qi;
			const search_hit *h = hits + qi * K;
			/* the smallest positive score: the margin is measured from the hardest positive */
			float pmin = INFINITY;
			for (size_t p = pos_start[q]; p < pos_start[q + 1]; p++) {
				float s = dot(Q + q * d, C + (size_t)pos_ids[p] * d, d);
				if (s < pmin)
					pmin = s;
			}
			/* the candidates that survive every rule, best first (the library's topk puts the discarded,
			 * scored -inf, after them) */
			int nk = 0;
			for (int r = 0; r < nhits[qi]; r++) {
				float s = h[r].score;
				int is_pos = 0;
				for (size_t p = pos_start[q]; p < pos_start[q + 1] && !is_pos; p++)
					is_pos = pos_ids[p] == h[r].id;
				if (is_pos)
					continue;
				if (o->has_margin && (double)s + o->margin > (double)pmin)
					continue;
				if (o->has_relative_margin && (double)s > (double)pmin * (1 - o->relative_margin))
					continue;
				if (o->has_max_score && (double)s > o->max_score)
					continue;
				if (o->has_min_score && (double)s < o->min_score)
					continue;
				keep[nk++] = h[r];
			}
			/* ranks range_min .. range_max - 1 of that list */
			int hi = nk < range_max ? nk : range_max;
			int lo = o->range_min;
			int avail = hi - lo;
			if (avail <= 0)
				continue;
			search_hit *cand = keep + lo;
			int take = avail < nn ? avail : nn;
			if (o->random) {
				/* partial Fisher-Yates over the indices, then best first again */
				int *idx = xmalloc((size_t)avail * sizeof *idx);
				for (int i = 0; i < avail; i++)
					idx[i] = i;
				for (int i = 0; i < take; i++) {
					int j = i + (int)rand_below(&rng, (size_t)(avail - i));
					int t = idx[i];
					idx[i] = idx[j], idx[j] = t;
				}
				/* sorting the chosen indices ascending sorts the scores descending */
				for (int i = 1; i < take; i++)
					for (int j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
						int t = idx[j];
						idx[j] = idx[j - 1], idx[j - 1] = t;
					}
				for (int i = 0; i < take; i++) {
					neg[q * nn + i] = cand[idx[i]].id;
					neg_score[q * nn + i] = cand[idx[i]].score;
				}
				free(idx);
			} else {
				for (int i = 0; i < take; i++) {
					neg[q * nn + i] = cand[i].id;
					neg_score[q * nn + i] = cand[i].score;
				}
			}
			nneg[q] = take;
		}
	}
	free(keep);
	free(hits);
	free(nhits);
}

typedef struct { float score; int32_t id; } scored;

static int by_score_desc(const void *a, const void *b)
{
	const scored *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

typedef struct { size_t start, len, order; } span;

static int by_len_desc(const void *a, const void *b)
{
	const span *x = a, *y = b;
	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return (x->order > y->order) - (x->order < y->order);   /* stable: Python's sorted */
}

size_t mining_communities(const float *E, size_t n, int d, double threshold, size_t min_size, int32_t **members,
			  size_t **start)
{
	if (min_size > n)
		min_size = n;
	if (min_size < 1)
		min_size = 1;
	/* first pass: every row's community (members best first), concatenated */
	size_t cap = 64, used = 0, ncand = 0, spcap = 16;
	int32_t *all = xmalloc(cap * sizeof *all);
	span *sp = xmalloc(spcap * sizeof *sp);
	size_t block = 256;
	float *S = xmalloc(xmul(xmul(block, n ? n : 1), sizeof *S));
	scored *row = xmalloc((n ? n : 1) * sizeof *row);
	for (size_t i0 = 0; i0 < n; i0 += block) {
		size_t bn = n - i0 < block ? n - i0 : block;
		/* S [bn][n] = E[i0 .. i0+bn) E^T */
		st_sgemm_with(ST_GEMM_BLAS, CblasRowMajor, CblasNoTrans, CblasTrans, (int)bn, (int)n, d, 1.0f, E + i0 * d,
			      d, E, d, 0.0f, S, (int)n);
		for (size_t bi = 0; bi < bn; bi++) {
			const float *s = S + bi * n;
			size_t nabove = 0;
			for (size_t j = 0; j < n; j++)
				if (s[j] >= threshold)
					row[nabove].score = s[j], row[nabove].id = (int32_t)j, nabove++;
			/* the min_size-th best score is >= threshold exactly when min_size scores are */
			if (nabove < min_size)
				continue;
			qsort(row, nabove, sizeof *row, by_score_desc);
			if (used + nabove > cap) {
				while (used + nabove > cap)
					cap *= 2;
				all = xrealloc(all, cap * sizeof *all);
			}
			if (ncand == spcap)
				sp = xrealloc(sp, (spcap *= 2) * sizeof *sp);
			sp[ncand] = (span){ used, nabove, ncand };
			for (size_t k = 0; k < nabove; k++)
				all[used++] = row[k].id;
			ncand++;
		}
	}
	free(S);
	free(row);
	qsort(sp, ncand, sizeof *sp, by_len_desc);
	/* second pass: no row in two communities */
	unsigned char *taken = xcalloc(n ? n : 1, 1);
	int32_t *out = xmalloc((used ? used : 1) * sizeof *out);
	span *kept = xmalloc((ncand ? ncand : 1) * sizeof *kept);
	size_t nout = 0, nkept = 0;
	int32_t *tmp = xmalloc((n ? n : 1) * sizeof *tmp);
	for (size_t c = 0; c < ncand; c++) {
		size_t m = 0;
		for (size_t k = 0; k < sp[c].len; k++)
			if (!taken[all[sp[c].start + k]])
				tmp[m++] = all[sp[c].start + k];
		if (m < min_size)
			continue;
		for (size_t k = 0; k < m; k++)
			taken[tmp[k]] = 1, out[nout + k] = tmp[k];
		kept[nkept] = (span){ nout, m, nkept };
		nkept++;
		nout += m;
	}
	qsort(kept, nkept, sizeof *kept, by_len_desc);
	*members = xmalloc((nout ? nout : 1) * sizeof **members);
	*start = xmalloc((nkept + 1) * sizeof **start);
	size_t at = 0;
	for (size_t k = 0; k < nkept; k++) {
		(*start)[k] = at;
		memcpy(*members + at, out + kept[k].start, kept[k].len * sizeof *out);
		at += kept[k].len;
	}
	(*start)[nkept] = at;
	free(tmp);
	free(kept);
	free(out);
	free(taken);
	free(all);
	free(sp);
	return nkept;
}
