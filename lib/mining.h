/* mining.h: hard-negative mining (util.mine_hard_negatives) and community detection
 * (util.community_detection) of sentence-transformers over L2-normalised embedding matrices (docs/st-mine.md). */
#ifndef ST_MINING_H
#define ST_MINING_H

#include <stddef.h>
#include <stdint.h>

typedef struct mining_hn_opts {
	int range_min;          /* skip this many of the best remaining candidates */
	int range_max;          /* candidates considered; < 0: the library's default (mining_default_range_max) */
	int num_negatives;
	int random;             /* 0: the best num_negatives; 1: a uniform sample of the remaining candidates */
	uint64_t seed;
	int has_margin, has_relative_margin, has_max_score, has_min_score;
	double margin;          /* keep a candidate when score + margin <= positive score */
	double relative_margin; /* keep when score <= positive score * (1 - relative_margin) */
	double max_score;       /* keep when score <= max_score */
	double min_score;       /* keep when score >= min_score */
} mining_hn_opts;

/* The library's default range_max: range_min + num_negatives (x10 when a margin or a max/min score may discard
 * candidates) + the most positives any query has. */
int mining_default_range_max(const mining_hn_opts *o, int max_positives);

/* For every (unique) query q of Q [nq][d] with positives pos_ids[pos_start[q] .. pos_start[q+1]) in C [nc][d]
 * (both L2-normalised, so a dot product is the cosine): its candidates are the range_max + max_positives most
 * similar corpus rows (equal scores: smaller id first); the query's positives are never candidates; a margin
 * compares with the smallest score of the query's positives; the first range_min remaining candidates are
 * skipped, range_max bounds the ranks looked at; "top" takes the next num_negatives, "random" a seeded uniform
 * sample of them, best first. neg [nq][num_negatives] gets corpus ids (-1 past the last negative found),
 * neg_score their scores; nneg[q] their number. */
void mining_hard_negatives(const float *Q, size_t nq, const float *C, size_t nc, int d, const size_t *pos_start,
			   const int32_t *pos_ids, const mining_hn_opts *o, int32_t *neg, float *neg_score,
			   int *nneg);

/* community_detection: a row whose min_size-th best cosine (itself included) is >= threshold starts a
 * community of every row with cosine >= threshold, best first; communities are ordered by size (stable, row
 * order for equal sizes); then, largest first, the members not already taken by a kept community form the
 * community, kept when at least min_size remain; the kept ones are sorted by size again. E [n][d] is
 * L2-normalised. Returns the number of communities; (*members)[(*start)[k] .. (*start)[k+1]) is community k
 * (both malloc'd). */
size_t mining_communities(const float *E, size_t n, int d, double threshold, size_t min_size, int32_t **members,
			  size_t **start);

#endif
