/* metrics.h: the evaluation metrics of the sentence-transformers v3 evaluators, as pure functions over arrays
 * (docs/st-eval.md; reference: sentence-transformers' evaluators). Scores are "greater is more similar" throughout:
 * Euclidean and Manhattan enter as negated distances (the mathematically intended behaviour, without the
 * v3.3-v5 sign bug of BinaryClassificationEvaluator). A NaN or infinite score makes every metric computed
 * from it NaN (scipy's nan_policy="propagate"): a rank of NaN means nothing. */
#ifndef ST_METRICS_H
#define ST_METRICS_H

#include <stddef.h>

/* Similarity functions, in the library's names. */
enum metrics_sim { METRICS_COSINE, METRICS_DOT, METRICS_EUCLIDEAN, METRICS_MANHATTAN, METRICS_NSIM };
const char *metrics_sim_name(int sim);          /* "cosine", "dot", "euclidean", "manhattan" */
int metrics_sim_parse(const char *name);        /* also "cos_sim", "dot_score", "dot_product"; -1 if unknown */

/* Row-wise similarity of a [n][d] and b [n][d] into out [n] (double accumulation): cosine with norms
 * clamped at 1e-12 (util.pairwise_cos_sim), dot, -L2, -L1. */
void metrics_pairwise(int sim, const float *a, const float *b, size_t n, int d, double *out);

/* Pearson correlation (scipy.stats.pearsonr); NaN when either side is constant or n < 2. */
double metrics_pearson(const double *x, const double *y, size_t n);
/* Ranks 1..n, ties get the average of their ranks (scipy.stats.rankdata, method "average"). */
void metrics_rankdata(const double *x, size_t n, double *ranks);
/* Spearman correlation = Pearson of the average ranks (scipy.stats.spearmanr). */
double metrics_spearman(const double *x, const double *y, size_t n);

/* BinaryClassificationEvaluator's sweeps: rows sorted by score, descending, ties in input order (Python's
 * stable sort); the cut after each of the first n-1 rows; threshold = midpoint of the scores around the cut.
 * labels are 0/1. */
double metrics_best_accuracy(const double *scores, const int *labels, size_t n, double *threshold);
double metrics_best_f1(const double *scores, const int *labels, size_t n, double *precision, double *recall,
                       double *threshold);
/* sklearn.metrics.average_precision_score: sum over distinct score thresholds (descending) of
 * (R_k - R_{k-1}) * P_k. NaN (with sklearn's warning case) when there are no positives. */
double metrics_average_precision(const double *scores, const int *labels, size_t n);
/* sklearn.metrics.matthews_corrcoef of labels against (score >= threshold); 0 when undefined. */
double metrics_mcc(const double *scores, const int *labels, size_t n, double threshold);

/* InformationRetrievalEvaluator, one query: relevant[r] != 0 when the hit at rank r (0-based, best first)
 * is relevant; nhits hits retrieved; nrel relevant documents in all (> 0). */
double metrics_accuracy_at_k(const int *relevant, int nhits, int k);
double metrics_precision_at_k(const int *relevant, int nhits, int k);
double metrics_recall_at_k(const int *relevant, int nhits, int nrel, int k);
double metrics_mrr_at_k(const int *relevant, int nhits, int k);
double metrics_ndcg_at_k(const int *relevant, int nhits, int nrel, int k);
double metrics_map_at_k(const int *relevant, int nhits, int nrel, int k);

/* ParaphraseMiningEvaluator over mined pairs ranked best first: is_dup[p] != 0 when pair p is a gold pair;
 * ndup gold pairs in all. Returns the average precision; best F1 with its precision, recall and threshold
 * (midpoint of the pair's score and the next one's). */
double metrics_paraphrase(const double *scores, const int *is_dup, size_t npairs, double ndup,
                          double *f1, double *precision, double *recall, double *threshold);

/* sklearn.metrics.ndcg_score(labels, scores, k) of one query with 0/1 labels: tied scores share their mean gain
 * over the discounts of their ranks; 0 when there is no positive; NaN for a non-finite score. */
double metrics_ndcg_ties(const double *scores, const int *labels, size_t n, int k);

#endif
