/* metrics.c: evaluation metrics of the sentence-transformers v3 evaluators (metrics.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "st.h"

static const char *const sim_names[METRICS_NSIM] = { "cosine", "dot", "euclidean", "manhattan" };

const char *metrics_sim_name(int sim)
{
	return sim >= 0 && sim < METRICS_NSIM ? sim_names[sim] : "?";
}

int metrics_sim_parse(const char *name)
{
	for (int i = 0; i < METRICS_NSIM; i++)
		if (!strcmp(name, sim_names[i]))
			return i;
	if (!strcmp(name, "cos_sim") || !strcmp(name, "cos"))
		return METRICS_COSINE;
	if (!strcmp(name, "dot_score") || !strcmp(name, "dot_product"))
		return METRICS_DOT;
	return -1;
}

void metrics_pairwise(int sim, const float *a, const float *b, size_t n, int d, double *out)
{
	for (size_t i = 0; i < n; i++) {
		const float *x = a + i * d, *y = b + i * d;
		double s = 0, xx = 0, yy = 0;
		switch (sim) {
		case METRICS_COSINE:
			for (int k = 0; k < d; k++) {
				s += (double)x[k] * y[k];
				xx += (double)x[k] * x[k];
				yy += (double)y[k] * y[k];
			}
			/* F.normalize: x / max(||x||, 1e-12) */
			out[i] = s / (fmax(sqrt(xx), 1e-12) * fmax(sqrt(yy), 1e-12));
			break;
		case METRICS_DOT:
			for (int k = 0; k < d; k++)
				s += (double)x[k] * y[k];
			out[i] = s;
			break;
		case METRICS_EUCLIDEAN:
			for (int k = 0; k < d; k++) {
				double t = (double)x[k] - y[k];
				s += t * t;
			}
			out[i] = -sqrt(s);
			break;
		default:
			for (int k = 0; k < d; k++)
				s += fabs((double)x[k] - y[k]);
			out[i] = -s;
		}
	}
}

/* ---- correlation ---- */

double metrics_pearson(const double *x, const double *y, size_t n)
{
	if (n < 2)
		return NAN;
	double mx = 0, my = 0;
	for (size_t i = 0; i < n; i++) {
		mx += x[i];
		my += y[i];
	}
	mx /= n;
	my /= n;
	double sxy = 0, sxx = 0, syy = 0;
	for (size_t i = 0; i < n; i++) {
		double dx = x[i] - mx, dy = y[i] - my;
		sxy += dx * dy;
		sxx += dx * dx;
		syy += dy * dy;
	}
	if (sxx == 0 || syy == 0)
		return NAN;
	double r = sxy / (sqrt(sxx) * sqrt(syy));
	return r > 1 ? 1 : r < -1 ? -1 : r;
}

/* qsort has no stable mode and no context argument: sort indices with the keys in a file-local pointer,
 * ties broken by index, which makes the order total and deterministic. Descending by score. */
static const double *sort_keys;

static int by_key_desc(const void *pa, const void *pb)
{
	size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
	if (sort_keys[a] > sort_keys[b])
		return -1;
	if (sort_keys[a] < sort_keys[b])
		return 1;
	return a < b ? -1 : a > b;
}

static size_t *order_desc(const double *keys, size_t n)
{
	size_t *idx = xmalloc(xmul(n ? n : 1, sizeof *idx));
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	sort_keys = keys;
	qsort(idx, n, sizeof *idx, by_key_desc);
	return idx;
}

void metrics_rankdata(const double *x, size_t n, double *ranks)
{
	size_t *idx = order_desc(x, n);
	/* idx is descending; ascending rank r (1-based) of position p is n - p */
	for (size_t p = 0; p < n;) {
		size_t q = p;
		while (q + 1 < n && x[idx[q + 1]] == x[idx[p]])
			q++;
		/* positions p..q tie: ascending ranks n-q .. n-p, average (2n - p - q) / 2 */
		double avg = (2.0 * n - p - q) / 2;
		for (size_t k = p; k <= q; k++)
			ranks[idx[k]] = avg;
		p = q + 1;
	}
	free(idx);
}

/* Any NaN or infinity among n values? A rank or a sweep over scores that holds one means nothing (NaN compares
 * neither above nor below): the metrics built on them return NaN, as scipy's nan_policy="propagate" does. */
static int any_nonfinite(const double *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return 1;
	return 0;
}

double metrics_spearman(const double *x, const double *y, size_t n)
{
	if (any_nonfinite(x, n) || any_nonfinite(y, n))
		return NAN;
	double *rx = xmalloc(xmul(n ? n : 1, 2 * sizeof(double))), *ry = rx + n;
	metrics_rankdata(x, n, rx);
	metrics_rankdata(y, n, ry);
	double r = metrics_pearson(rx, ry, n);
	free(rx);
	return r;
}

/* ---- binary classification ---- */

double metrics_best_accuracy(const double *scores, const int *labels, size_t n, double *threshold)
{
	if (any_nonfinite(scores, n)) {
		if (threshold)
			*threshold = NAN;
		return NAN;
	}
	size_t *idx = order_desc(scores, n);
	size_t negatives = 0;
	for (size_t i = 0; i < n; i++)
		negatives += labels[i] == 0;
	double best = 0, thr = -1;
	size_t positives_above = 0, negatives_below = negatives;
	for (size_t i = 0; i + 1 < n; i++) {
		if (labels[idx[i]] == 1)
			positives_above++;
		else
			negatives_below--;
		double acc = (double)(positives_above + negatives_below) / n;
		if (acc > best) {
			best = acc;
			thr = (scores[idx[i]] + scores[idx[i + 1]]) / 2;
		}
	}
	free(idx);
	if (threshold)
		*threshold = thr;
	return best;
}

double metrics_best_f1(const double *scores, const int *labels, size_t n, double *precision, double *recall,
                       double *threshold)
{
	if (any_nonfinite(scores, n)) {
		if (precision)
			*precision = NAN;
		if (recall)
			*recall = NAN;
		if (threshold)
			*threshold = NAN;
		return NAN;
	}
	size_t *idx = order_desc(scores, n);
	size_t duplicates = 0;
	for (size_t i = 0; i < n; i++)
		duplicates += labels[i] != 0;
	double best_f1 = 0, best_p = 0, best_r = 0, thr = 0;
	size_t extracted = 0, correct = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		extracted++;
		if (labels[idx[i]] == 1)
			correct++;
		if (correct > 0) {
			double p = (double)correct / extracted, r = (double)correct / duplicates;
			double f1 = 2 * p * r / (p + r);
			if (f1 > best_f1) {
				best_f1 = f1;
				best_p = p;
				best_r = r;
				thr = (scores[idx[i]] + scores[idx[i + 1]]) / 2;
			}
		}
	}
	free(idx);
	if (precision)
		*precision = best_p;
	if (recall)
		*recall = best_r;
	if (threshold)
		*threshold = thr;
	return best_f1;
}

double metrics_average_precision(const double *scores, const int *labels, size_t n)
{
	if (any_nonfinite(scores, n))
		return NAN;
	size_t positives = 0;
	for (size_t i = 0; i < n; i++)
		positives += labels[i] != 0;
	if (positives == 0)
		return NAN;
	size_t *idx = order_desc(scores, n);
	double ap = 0, prev_recall = 0;
	size_t tp = 0;
	for (size_t i = 0; i < n; i++) {
		tp += labels[idx[i]] != 0;
		/* a threshold is the last row of a run of equal scores */
		if (i + 1 < n && scores[idx[i + 1]] == scores[idx[i]])
			continue;
		double recall = (double)tp / positives, precision = (double)tp / (i + 1);
		ap += (recall - prev_recall) * precision;
		prev_recall = recall;
	}
	free(idx);
	return ap;
}

double metrics_mcc(const double *scores, const int *labels, size_t n, double threshold)
{
	if (any_nonfinite(scores, n) || !isfinite(threshold))
		return NAN;
	double tp = 0, tn = 0, fp = 0, fn = 0;
	for (size_t i = 0; i < n; i++) {
		int pred = scores[i] >= threshold, gold = labels[i] != 0;
		tp += pred && gold;
		tn += !pred && !gold;
		fp += pred && !gold;
		fn += !pred && gold;
	}
	double den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn);
	return den == 0 ? 0 : (tp * tn - fp * fn) / sqrt(den);
}

/* ---- information retrieval ---- */

static int min_int(int a, int b) { return a < b ? a : b; }

double metrics_accuracy_at_k(const int *relevant, int nhits, int k)
{
	for (int r = 0; r < min_int(nhits, k); r++)
		if (relevant[r])
			return 1;
	return 0;
}

double metrics_precision_at_k(const int *relevant, int nhits, int k)
{
	int correct = 0;
	for (int r = 0; r < min_int(nhits, k); r++)
		correct += relevant[r] != 0;
	return (double)correct / k;
}

double metrics_recall_at_k(const int *relevant, int nhits, int nrel, int k)
{
	int correct = 0;
	for (int r = 0; r < min_int(nhits, k); r++)
		correct += relevant[r] != 0;
	return (double)correct / nrel;
}

double metrics_mrr_at_k(const int *relevant, int nhits, int k)
{
	for (int r = 0; r < min_int(nhits, k); r++)
		if (relevant[r])
			return 1.0 / (r + 1);
	return 0;
}

double metrics_ndcg_at_k(const int *relevant, int nhits, int nrel, int k)
{
	double dcg = 0, ideal = 0;
	for (int r = 0; r < min_int(nhits, k); r++)
		if (relevant[r])
			dcg += 1 / log2(r + 2.0);
	for (int r = 0; r < min_int(nrel, k); r++)
		ideal += 1 / log2(r + 2.0);
	return dcg / ideal;
}

double metrics_map_at_k(const int *relevant, int nhits, int nrel, int k)
{
	int correct = 0;
	double sum = 0;
	for (int r = 0; r < min_int(nhits, k); r++)
		if (relevant[r]) {
			correct++;
			sum += (double)correct / (r + 1);
		}
	return sum / min_int(k, nrel);
}

/* ---- paraphrase mining ---- */

double metrics_paraphrase(const double *scores, const int *is_dup, size_t npairs, double ndup,
                          double *f1, double *precision, double *recall, double *threshold)
{
	if (any_nonfinite(scores, npairs)) {
		double *outs[] = { f1, precision, recall, threshold };
		for (int k = 0; k < 4; k++)
			if (outs[k])
				*outs[k] = NAN;
		return NAN;
	}
	double ap = 0, best_f1 = 0, best_p = 0, best_r = 0, thr = 0;
	size_t extracted = 0, correct = 0;
	for (size_t p = 0; p < npairs; p++) {
		extracted++;
		if (!is_dup[p])
			continue;
		correct++;
		double prec = (double)correct / extracted, rec = correct / ndup;
		double f = 2 * prec * rec / (prec + rec);
		ap += prec;
		if (f > best_f1) {
			best_f1 = f;
			best_p = prec;
			best_r = rec;
			thr = (scores[p] + scores[p + 1 < npairs ? p + 1 : npairs - 1]) / 2;
		}
	}
	if (f1)
		*f1 = best_f1;
	if (precision)
		*precision = best_p;
	if (recall)
		*recall = best_r;
	if (threshold)
		*threshold = thr;
	return ndup > 0 ? ap / ndup : NAN;
}

double metrics_ndcg_ties(const double *scores, const int *labels, size_t n, int k)
{
	if (any_nonfinite(scores, n))
		return NAN;
	/* discounts 1/log2(rank + 2), zero from rank k on; cumulated for runs of tied scores */
	double *cum = xmalloc(xmul(n + 1, sizeof *cum));
	cum[0] = 0;
	for (size_t r = 0; r < n; r++)
		cum[r + 1] = cum[r] + ((int)r < k ? 1 / log2((double)r + 2) : 0);
	size_t *idx = order_desc(scores, n);
	double dcg = 0;
	for (size_t i = 0; i < n;) {   /* a run of equal scores shares the mean gain of its rows */
		size_t j = i;
		double gain = 0;
		while (j < n && scores[idx[j]] == scores[idx[i]])
			gain += labels[idx[j++]] != 0;
		dcg += gain / (j - i) * (cum[j] - cum[i]);
		i = j;
	}
	size_t positives = 0;
	for (size_t i = 0; i < n; i++)
		positives += labels[i] != 0;
	double ideal = cum[positives];   /* all positives first */
	free(idx);
	free(cum);
	return ideal > 0 ? dcg / ideal : 0;
}
