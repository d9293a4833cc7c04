/* Unit tests of lib/metrics.c against hand-worked cases (tests/eval-metrics.t compares with scipy/numpy). */
#include <math.h>

#include "metrics.h"
#include "tap.h"

int main(void)
{
	double x[] = { 1, 2, 3, 4 }, y1[] = { 2, 4, 6, 8 }, y2[] = { 1, 3, 2, 4 };
	near(metrics_pearson(x, y1, 4), 1, 1e-12, "pearson of a line is 1");
	near(metrics_pearson(x, y2, 4), 0.8, 1e-12, "pearson by hand: 4/5");
	double c[] = { 3, 3, 3 };
	ok(isnan(metrics_pearson(x, c, 3)), "pearson with a constant side is NaN");

	double r[4], t[] = { 10, 20, 20, 30 };
	metrics_rankdata(t, 4, r);
	ok(r[0] == 1 && r[1] == 2.5 && r[2] == 2.5 && r[3] == 4, "rankdata averages ties: 1 2.5 2.5 4");
	double u[] = { 5, 1, 5, 5, 0 };
	double ru[5];
	metrics_rankdata(u, 5, ru);
	ok(ru[0] == 4 && ru[1] == 2 && ru[2] == 4 && ru[3] == 4 && ru[4] == 1, "rankdata: three-way tie at the top");

	double sx[] = { 1, 2, 3, 4, 5 }, sy[] = { 5, 6, 7, 8, 7 };
	near(metrics_spearman(sx, sy, 5), 8 / sqrt(95), 1e-12, "spearman with a tie: 8/sqrt(95)");
	double sz[] = { 50, 40, 30, 20, 10 };
	near(metrics_spearman(sx, sz, 5), -1, 1e-12, "spearman of a decreasing sequence is -1");

	double sc[] = { 0.9, 0.8, 0.7, 0.6, 0.5 };
	int lab[] = { 1, 1, 0, 1, 0 };
	double thr, p, rc;
	near(metrics_best_accuracy(sc, lab, 5, &thr), 0.8, 1e-12, "best accuracy 4/5");
	near(thr, 0.75, 1e-12, "accuracy threshold: first best cut, midpoint 0.75");
	/* the sweep does not depend on input order */
	double sc2[] = { 0.5, 0.7, 0.9, 0.6, 0.8 };
	int lab2[] = { 0, 0, 1, 1, 1 };
	near(metrics_best_accuracy(sc2, lab2, 5, &thr), 0.8, 1e-12, "best accuracy, shuffled input");
	near(metrics_best_f1(sc, lab, 5, &p, &rc, &thr), 6.0 / 7, 1e-12, "best F1 6/7");
	near(p, 0.75, 1e-12, "precision at the F1 threshold 3/4");
	near(rc, 1, 1e-12, "recall at the F1 threshold 1");
	near(thr, 0.55, 1e-12, "F1 threshold 0.55");
	near(metrics_average_precision(sc, lab, 5), (1 + 1 + 0.75) / 3, 1e-12, "AP: hits at ranks 1, 2, 4");
	double tie[] = { 0.9, 0.5, 0.5 };
	int tl[] = { 1, 0, 1 };
	near(metrics_average_precision(tie, tl, 3), 0.5 + 0.5 * 2 / 3.0, 1e-12, "AP: tied scores form one threshold");
	int none[] = { 0, 0, 0 };
	ok(isnan(metrics_average_precision(tie, none, 3)), "AP without positives is NaN");
	near(metrics_mcc(sc, lab, 5, 0.55), 3 / sqrt(24), 1e-12, "MCC at 0.55: tp 3 fp 1 tn 1 fn 0");
	near(metrics_mcc(sc, lab, 5, 2), 0, 1e-12, "MCC when nothing is predicted positive is 0");

	int rel[] = { 0, 1, 0, 1 };
	near(metrics_accuracy_at_k(rel, 4, 1), 0, 1e-12, "accuracy@1 0");
	near(metrics_accuracy_at_k(rel, 4, 3), 1, 1e-12, "accuracy@3 1");
	near(metrics_precision_at_k(rel, 4, 3), 1 / 3.0, 1e-12, "precision@3");
	near(metrics_precision_at_k(rel, 4, 10), 0.2, 1e-12, "precision@10 divides by k, not by hits");
	near(metrics_recall_at_k(rel, 4, 3, 3), 1 / 3.0, 1e-12, "recall@3");
	near(metrics_mrr_at_k(rel, 4, 10), 0.5, 1e-12, "MRR@10: first hit at rank 2");
	near(metrics_mrr_at_k(rel, 4, 1), 0, 1e-12, "MRR@1: none");
	near(metrics_ndcg_at_k(rel, 4, 3, 3), (1 / log2(3)) / (1 + 1 / log2(3) + 0.5), 1e-12, "NDCG@3");
	near(metrics_ndcg_at_k(rel, 4, 2, 10), (1 / log2(3) + 1 / log2(5)) / (1 + 1 / log2(3)), 1e-12,
	     "NDCG@10, two relevant docs at ranks 2 and 4");
	near(metrics_map_at_k(rel, 4, 3, 3), 0.5 / 3, 1e-12, "MAP@3");
	near(metrics_map_at_k(rel, 4, 3, 10), (0.5 + 0.5) / 3, 1e-12, "MAP@10");
	near(metrics_map_at_k(rel, 4, 5, 2), 0.5 / 2, 1e-12, "MAP@2 divides by min(k, |rel|)");

	double ps[] = { 0.9, 0.8, 0.7, 0.6 };
	int dup[] = { 1, 0, 1, 0 };
	double f1;
	near(metrics_paraphrase(ps, dup, 4, 3, &f1, &p, &rc, &thr), (1 + 2 / 3.0) / 3, 1e-12, "mining AP");
	near(f1, 2 / 3.0, 1e-12, "mining F1");
	near(p, 2 / 3.0, 1e-12, "mining precision");
	near(rc, 2 / 3.0, 1e-12, "mining recall");
	near(thr, 0.65, 1e-12, "mining threshold");
	int last[] = { 0, 0, 0, 1 };
	metrics_paraphrase(ps, last, 4, 1, &f1, &p, &rc, &thr);
	near(thr, 0.6, 1e-12, "mining threshold at the last pair uses the pair itself");

	float a[] = { 3, 4, 0, 0 }, b[] = { 4, 3, 1, 1 };
	double o[2];
	metrics_pairwise(METRICS_COSINE, a, b, 2, 2, o);
	near(o[0], 24 / 25.0, 1e-7, "cosine 24/25");
	near(o[1], 0, 1e-12, "cosine with a zero vector is 0 (norm clamped)");
	metrics_pairwise(METRICS_EUCLIDEAN, a, b, 1, 2, o);
	near(o[0], -sqrt(2), 1e-7, "euclidean is the negated distance");
	metrics_pairwise(METRICS_MANHATTAN, a, b, 1, 2, o);
	near(o[0], -2, 1e-7, "manhattan is the negated distance");
	metrics_pairwise(METRICS_DOT, a, b, 1, 2, o);
	near(o[0], 24, 1e-7, "dot");
	ok(metrics_sim_parse("cos_sim") == METRICS_COSINE && metrics_sim_parse("manhattan") == METRICS_MANHATTAN &&
	   metrics_sim_parse("nope") == -1, "similarity names parse");
	/* NDCG@k as sklearn's ndcg_score, worked by hand */
	double nd[3] = { 0.9, 0.5, 0.7 }, nt[2] = { 0.5, 0.5 }, nn[2] = { 0.5, NAN };
	int nl[3] = { 1, 0, 1 }, tl2[2] = { 1, 0 }, tl3[2] = { 0, 1 }, zero[2] = { 0, 0 };
	near(metrics_ndcg_ties(nd, nl, 3, 10), 1, 1e-12, "NDCG: both positives ranked first is 1");
	near(metrics_ndcg_ties(nd, nl, 3, 1), 1, 1e-12, "NDCG@1: a positive first is 1");
	near(metrics_ndcg_ties(nt, tl2, 2, 10), 0.5 * (1 + 1 / log2(3)), 1e-12,
	     "NDCG: two tied scores share the mean gain over both discounts");
	near(metrics_ndcg_ties(nt, tl3, 2, 1), 0.5, 1e-12, "NDCG@1 of a tie: half the gain of rank 1, whatever the order");
	near(metrics_ndcg_ties(nt, zero, 2, 10), 0, 1e-12, "NDCG without a positive is 0 (sklearn)");
	ok(isnan(metrics_ndcg_ties(nn, tl2, 2, 10)), "NDCG with a NaN score is NaN");
	return done_testing();
}
