/* metrics_nan.c: a NaN or infinite score makes the metrics built on it NaN (scipy's nan_policy="propagate"),
 * never a rank computed from NaN comparisons; finite inputs keep their hand-worked values. */
#include "metrics.h"
#include "tap.h"

int main(void)
{
	double x[4] = { 0.1, 0.4, 0.2, 0.9 }, y[4] = { 1, 3, 2, 4 };   /* same order: Spearman 1 */
	near(metrics_spearman(x, y, 4), 1, 1e-12, "spearman of two series in the same order is 1");
	double xn[4] = { 0.1, NAN, 0.2, 0.9 };
	ok(isnan(metrics_spearman(xn, y, 4)), "spearman with a NaN score is NaN (was a number from NaN ranks)");
	ok(isnan(metrics_spearman(y, xn, 4)), "... on either side");
	double xi[4] = { 0.1, INFINITY, 0.2, 0.9 };
	ok(isnan(metrics_spearman(xi, y, 4)), "... and with an infinite score");
	ok(isnan(metrics_pearson(xn, y, 4)), "pearson with a NaN score is NaN");
	int labels[4] = { 0, 1, 0, 1 };
	double thr = 0;
	/* scores 0.1 0.4 0.2 0.9 with labels 0 1 0 1: a cut between 0.4 and 0.2 separates them: accuracy 1 */
	near(metrics_best_accuracy(x, labels, 4, &thr), 1, 1e-12, "best accuracy of separable scores is 1");
	near(thr, 0.3, 1e-12, "... at the midpoint 0.3");
	ok(isnan(metrics_best_accuracy(xn, labels, 4, &thr)) && isnan(thr), "best accuracy with a NaN score is NaN");
	double p, r;
	ok(isnan(metrics_best_f1(xn, labels, 4, &p, &r, &thr)) && isnan(p) && isnan(r), "best F1 with a NaN score is NaN");
	near(metrics_average_precision(x, labels, 4), 1, 1e-12, "average precision of separable scores is 1");
	ok(isnan(metrics_average_precision(xn, labels, 4)), "average precision with a NaN score is NaN");
	ok(isnan(metrics_mcc(xn, labels, 4, 0.3)), "MCC with a NaN score is NaN");
	ok(isnan(metrics_mcc(x, labels, 4, NAN)), "MCC at a NaN threshold is NaN");
	int dup[2] = { 1, 0 };
	double sc[2] = { 0.9, NAN }, f1;
	ok(isnan(metrics_paraphrase(sc, dup, 2, 1, &f1, NULL, NULL, NULL)) && isnan(f1),
	   "paraphrase mining with a NaN score is NaN (NULL outputs allowed)");
	return done_testing();
}
