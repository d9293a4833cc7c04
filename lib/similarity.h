/* similarity.h: the library's similarity functions -- model.similarity / util.cos_sim, dot_score, euclidean_sim,
 * manhattan_sim (a full matrix) and model.similarity_pairwise / util.pairwise_* (row by row) -- and the model's
 * choice among them (similarity_fn_name). Reference: sentence-transformers.md §5; docs/st-similarity.md.
 * Functions are named by the METRICS_* numbers of metrics.h; larger is more similar throughout (Euclidean and
 * Manhattan are negated distances, as in the library). */
#ifndef ST_SIMILARITY_H
#define ST_SIMILARITY_H

#include <stddef.h>

struct st_model;

/* similarity_fn_name of the model's config_sentence_transformers.json: METRICS_COSINE when the file, the key
 * or its value is absent (null), as the library defaults; -1 and a message for a name it does not know. */
int similarity_of_model(const struct st_model *m, char *err, size_t errlen);

/* out [n][m] = sim(a[i], b[j]) for a [n][d], b [m][d]. Cosine: rows divided by max(||row||, 1e-12), then one
 * sgemm (util.cos_sim), clamped to
 * [-1, 1] against rounding; dot: sgemm; euclidean, manhattan: -||a_i - b_j|| with p = 2 or 1, summed in double
 * (torch.cdist). */
void similarity_matrix(int sim, const float *a, size_t n, const float *b, size_t m, int d, float *out);

#endif
