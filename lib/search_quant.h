/* search_quant.h: semantic search over a quantized corpus, as sentence-transformers' semantic_search_faiss and
 * semantic_search_usearch do it (util/quantization.py) with rescoring: the float32 query is quantized like the
 * corpus, the top_k * rescore_multiplier rows with the best quantized scores are kept (int8/uint8: the integer
 * dot product; binary/ubinary: the fewest differing bits, as a Hamming index), and those are rescored as the
 * float32 query dot the row's quantized values (int8/uint8 levels; bits as 0/1, np.unpackbits), best first. */
#ifndef ST_SEARCH_QUANT_H
#define ST_SEARCH_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "search.h"

typedef struct search_qindex {
	int precision, d;   /* QUANT_* of quantize.h (not float32); embedding dimension */
	size_t n, row_bytes;
	uint8_t *rows;      /* [n][row_bytes], quantize_rows */
	float *mins, *maxs; /* [d] ranges of int8/uint8 */
	int sim;            /* METRICS_COSINE: rows (and queries) L2-normalised before quantizing */
} search_qindex;

/* Quantizes corpus [n][d] (normalised first when sim is cosine). int8/uint8 ranges: the per-dimension min and
 * max of calib [ncalib][d] (normalised likewise) when given, else of the corpus itself (quantize_embeddings
 * without calibration embeddings); queries are quantized with the same ranges. */
void search_qindex_build(search_qindex *ix, int precision, const float *corpus, size_t n, int d, int sim,
			 const float *calib, size_t ncalib);
void search_qindex_free(search_qindex *ix);

/* hits [nq][top_k], nhits[q] = min(top_k, n), best first, scores the rescored dot products. Candidates with
 * equal quantized scores, and hits with equal rescored scores, go smaller id first. rescore_multiplier >= 1. */
void search_topk_quantized(const search_qindex *ix, const float *queries, size_t nq, int top_k,
			   int rescore_multiplier, search_hit *hits, int *nhits);

#endif
