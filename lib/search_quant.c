/* search_quant.c: semantic search over a quantized corpus with rescoring (search_quant.h). Brute force, as the
 * library's exact=True indexes: every row is scored in its quantized form, so memory is the quantized corpus. */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "quantize.h"
#include "search_quant.h"
#include "st.h"

void search_qindex_build(search_qindex *ix, int precision, const float *corpus, size_t n, int d, int sim,
			 const float *calib, size_t ncalib)
{
	memset(ix, 0, sizeof *ix);
	ix->precision = precision;
	ix->d = d;
	ix->n = n;
	ix->sim = sim;
	ix->row_bytes = quantize_row_bytes(precision, d);
	ix->mins = xmalloc(sizeof(float) * (size_t)d);
	ix->maxs = xmalloc(sizeof(float) * (size_t)d);
	float *x = xmalloc(xmul(xmul(n ? n : 1, d), sizeof(float)));
	memcpy(x, corpus, sizeof(float) * n * d);
	if (sim == METRICS_COSINE)
		search_normalize(x, n, d);
	if (calib) {
		float *c = xmalloc(xmul(xmul(ncalib ? ncalib : 1, d), sizeof(float)));
		memcpy(c, calib, sizeof(float) * ncalib * d);
		if (sim == METRICS_COSINE)
			search_normalize(c, ncalib, d);
		quantize_ranges(c, ncalib, d, ix->mins, ix->maxs);
		free(c);
	} else {
		quantize_ranges(x, n, d, ix->mins, ix->maxs);
	}
	ix->rows = xmalloc(xmul(n ? n : 1, ix->row_bytes));
	quantize_rows(precision, x, n, d, ix->mins, ix->maxs, ix->rows);
	free(x);
}

void search_qindex_free(search_qindex *ix)
{
	free(ix->rows);
	free(ix->mins);
	free(ix->maxs);
	memset(ix, 0, sizeof *ix);
}

/* ---- a min-heap of candidates on (quantized score, then larger id is worse) ---- */
typedef struct { int64_t score; int32_t id; } cand;

static int cand_worse(cand a, cand b) { return a.score < b.score || (a.score == b.score && a.id > b.id); }

static void cand_push(cand *h, int *n, int cap, cand x)
{
	if (*n < cap) {
		int i = (*n)++;
		h[i] = x;
		while (i > 0 && cand_worse(h[i], h[(i - 1) / 2])) {
			cand t = h[i];
			h[i] = h[(i - 1) / 2];
			h[(i - 1) / 2] = t;
			i = (i - 1) / 2;
		}
		return;
	}
	if (!cand_worse(h[0], x))
		return;
	h[0] = x;
	for (int i = 0;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		if (l < *n && cand_worse(h[l], h[m]))
			m = l;
		if (r < *n && cand_worse(h[r], h[m]))
			m = r;
		if (m == i)
			break;
		cand t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/* The quantized score of row against query q (both row_bytes long): larger is better. */
static int64_t quant_score(int precision, const uint8_t *q, const uint8_t *row, size_t nb)
{
	int64_t s = 0;
	if (precision == QUANT_INT8) {
		const int8_t *a = (const int8_t *)q, *b = (const int8_t *)row;
		for (size_t k = 0; k < nb; k++)
			s += (int32_t)a[k] * b[k];
	} else if (precision == QUANT_UINT8) {
		for (size_t k = 0; k < nb; k++)
			s += (int32_t)q[k] * row[k];
	} else {
		/* binary is ubinary - 128: the same bit patterns with the top bit flipped in both, so XOR agrees */
		for (size_t k = 0; k < nb; k++)
			s -= __builtin_popcount((unsigned)(q[k] ^ row[k]));
	}
	return s;
}

/* The float32 query dot the row's quantized values: levels for int8/uint8, bits 0/1 for binary/ubinary. */
static double rescore(int precision, const float *q, const uint8_t *row, int d)
{
	double s = 0;
	if (precision == QUANT_INT8) {
		for (int k = 0; k < d; k++)
			s += (double)q[k] * ((const int8_t *)row)[k];
	} else if (precision == QUANT_UINT8) {
		for (int k = 0; k < d; k++)
			s += (double)q[k] * row[k];
	} else {
		uint8_t flip = precision == QUANT_BINARY ? 0x80 : 0;   /* back to the ubinary bits */
		for (int k = 0; k < d; k++)
			if ((row[k / 8] ^ flip) & (0x80u >> (k % 8)))
				s += q[k];
	}
	return s;
}

static int hit_cmp(const void *pa, const void *pb)
{
	const search_hit *a = pa, *b = pb;
	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	return (a->id > b->id) - (a->id < b->id);
}

void search_topk_quantized(const search_qindex *ix, const float *queries, size_t nq, int top_k,
			   int rescore_multiplier, search_hit *hits, int *nhits)
{
	int d = ix->d;
	size_t nb = ix->row_bytes;
	int k = (size_t)top_k < ix->n ? top_k : (int)ix->n;
	int64_t want = (int64_t)k * (rescore_multiplier > 0 ? rescore_multiplier : 1);
	int m = want < (int64_t)ix->n ? (int)want : (int)ix->n;
#pragma omp parallel for schedule(dynamic, 16)
	for (size_t qi = 0; qi < nq; qi++) {
		float *q = xmalloc(sizeof(float) * (size_t)d);
		memcpy(q, queries + qi * d, sizeof(float) * (size_t)d);
		if (ix->sim == METRICS_COSINE)
			search_normalize(q, 1, d);
		uint8_t *qq = xmalloc(nb);
		quantize_rows(ix->precision, q, 1, d, ix->mins, ix->maxs, qq);
		cand *heap = xmalloc(sizeof(cand) * (size_t)(m ? m : 1));
		int n = 0;
		for (size_t j = 0; j < ix->n; j++) {
			cand c = { quant_score(ix->precision, qq, ix->rows + j * nb, nb), (int32_t)j };
			cand_push(heap, &n, m, c);
		}
		search_hit *rs = xmalloc(sizeof(search_hit) * (size_t)(n ? n : 1));
		for (int i = 0; i < n; i++) {
			rs[i].id = heap[i].id;
			rs[i].score = (float)rescore(ix->precision, q, ix->rows + (size_t)heap[i].id * nb, d);
		}
		qsort(rs, (size_t)n, sizeof *rs, hit_cmp);
		nhits[qi] = n < k ? n : k;
		memcpy(hits + qi * (size_t)top_k, rs, sizeof(search_hit) * (size_t)nhits[qi]);
		free(rs);
		free(heap);
		free(qq);
		free(q);
	}
}
