/* loss.c: the losses of sentence-transformers on embedding arrays (see loss.h and docs/losses.md).
 *
 * Every loss reads E [C][B][D] and writes grad [C][B][D]. Sums run in double; big products (similarity
 * matrices, their gradients) go through cblas_sgemm in row chunks so memory stays bounded. */
#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "gemm.h"
#include "loss.h"
#include "st.h"

#define CHUNK 256   /* rows of a similarity matrix held at once */

static const char *const loss_names[LOSS_NKINDS] = {
	"triplet", "mnrl", "mnrl-symmetric", "megabatch-margin", "contrastive",
	"online-contrastive", "softmax", "cosine-similarity", "cosent", "angle",
	"batch-hard-triplet", "batch-hard-soft-margin-triplet", "batch-semi-hard-triplet",
	"batch-all-triplet", "mse", "margin-mse", "matryoshka",
};

int loss_kind_parse(const char *name)
{
	for (int k = 0; k < LOSS_NKINDS; k++)
		if (!strcmp(name, loss_names[k]))
			return k;
	return -1;
}

const char *loss_name(enum loss_kind k)
{
	return k < LOSS_NKINDS ? loss_names[k] : "?";
}

void loss_opts_default(loss_opts *o, enum loss_kind kind)
{
	memset(o, 0, sizeof *o);
	o->kind = kind;
	o->similarity = kind == LOSS_MARGIN_MSE ? LOSS_SIM_DOT : LOSS_SIM_COSINE;
	switch (kind) {
	case LOSS_CONTRASTIVE:
	case LOSS_ONLINE_CONTRASTIVE:
		o->distance = LOSS_COSINE;
		o->margin = 0.5;
		break;
	default:
		o->distance = LOSS_EUCLIDEAN;
		o->margin = 5;
	}
	o->scale = 20;
	o->positive_margin = 0.8;
	o->negative_margin = 0.3;
	o->mini_batch_size = 50;
	o->size_average = 1;
	o->cat_rep = 1;
	o->cat_diff = 1;
	o->cat_mul = 0;
}

void loss_opts_free_inner(loss_opts *o)
{
	if (o->inner) {
		loss_opts_free_inner(o->inner);
		free(o->inner);
		o->inner = NULL;
	}
}

int loss_softmax_in(const loss_opts *o, int D)
{
	return (2 * !!o->cat_rep + !!o->cat_diff + !!o->cat_mul) * D;
}

/* ---- normalisation ---- */

void loss_normalize(const float *x, int n, int d, double eps, float *xn, float *norms)
{
#pragma omp parallel for if (n * (long)d > 65536)
	for (int i = 0; i < n; i++) {
		const float *xi = x + (size_t)i * d;
		double s = 0;
		for (int k = 0; k < d; k++)
			s += (double)xi[k] * xi[k];
		double nrm = sqrt(s), div = nrm > eps ? nrm : eps;
		norms[i] = (float)nrm;
		for (int k = 0; k < d; k++)
			xn[(size_t)i * d + k] = (float)(xi[k] / div);
	}
}

/* y = x/n: dx = (dy - y (y.dy)) / n; when the norm was clamped to eps, y = x/eps and dx = dy/eps. */
void loss_normalize_back(const float *xn, const float *norms, int n, int d, double eps, const float *dxn,
			 float *dx)
{
#pragma omp parallel for if (n * (long)d > 65536)
	for (int i = 0; i < n; i++) {
		const float *y = xn + (size_t)i * d, *dy = dxn + (size_t)i * d;
		float *out = dx + (size_t)i * d;
		if (norms[i] > eps) {
			double dot = 0;
			for (int k = 0; k < d; k++)
				dot += (double)y[k] * dy[k];
			for (int k = 0; k < d; k++)
				out[k] += (float)((dy[k] - y[k] * dot) / norms[i]);
		} else {
			for (int k = 0; k < d; k++)
				out[k] += (float)(dy[k] / eps);
		}
	}
}

/* ---- row-pair primitives ---- */

static double dot_d(const float *x, const float *y, int D)
{
	double s = 0;
	for (int k = 0; k < D; k++)
		s += (double)x[k] * y[k];
	return s;
}

static double norm_d(const float *x, int D)
{
	return sqrt(dot_d(x, x, D));
}

/* cos(x,y) with each norm clamped at eps (1e-8: F.cosine_similarity; 1e-12: util.pairwise_cos_sim). */
static double cos_pair(const float *x, const float *y, int D, double eps)
{
	double nx = norm_d(x, D), ny = norm_d(y, D);
	return dot_d(x, y, D) / ((nx > eps ? nx : eps) * (ny > eps ? ny : eps));
}

/* gx += w dcos/dx, gy += w dcos/dy. */
static void cos_pair_back(const float *x, const float *y, int D, double eps, double w, float *gx, float *gy)
{
	double nx = norm_d(x, D), ny = norm_d(y, D);
	double cx = nx > eps ? nx : eps, cy = ny > eps ? ny : eps;
	double c = dot_d(x, y, D) / (cx * cy);
	for (int k = 0; k < D; k++) {
		double xh = x[k] / cx, yh = y[k] / cy;
		/* d(xh.yh)/dx = (yh - xh c)/nx when not clamped, yh/eps when clamped */
		double dx = nx > eps ? (yh - xh * c) / nx : yh / eps;
		double dy = ny > eps ? (xh - yh * c) / ny : xh / eps;
		gx[k] += (float)(w * dx);
		gy[k] += (float)(w * dy);
	}
}

#define PAIRWISE_EPS 1e-6   /* F.pairwise_distance adds it to the difference */

/* The distances of TripletLoss / ContrastiveLoss (v<=4 semantics: true distances). */
static double pair_dist(enum loss_distance dist, const float *x, const float *y, int D)
{
	double s = 0;
	switch (dist) {
	case LOSS_EUCLIDEAN:
		for (int k = 0; k < D; k++) {
			double u = (double)x[k] - y[k] + PAIRWISE_EPS;
			s += u * u;
		}
		return sqrt(s);
	case LOSS_MANHATTAN:
		for (int k = 0; k < D; k++)
			s += fabs((double)x[k] - y[k] + PAIRWISE_EPS);
		return s;
	case LOSS_COSINE:
		return 1 - cos_pair(x, y, D, 1e-8);
	}
	return NAN;
}

/* gx += w dd/dx, gy += w dd/dy; d is pair_dist's value. */
static void pair_dist_back(enum loss_distance dist, const float *x, const float *y, int D, double d, double w,
			   float *gx, float *gy)
{
	switch (dist) {
	case LOSS_EUCLIDEAN:
		if (d <= 0)
			return;
		for (int k = 0; k < D; k++) {
			double g = w * ((double)x[k] - y[k] + PAIRWISE_EPS) / d;
			gx[k] += (float)g;
			gy[k] -= (float)g;
		}
		return;
	case LOSS_MANHATTAN:
		for (int k = 0; k < D; k++) {
			double u = (double)x[k] - y[k] + PAIRWISE_EPS;
			double g = u > 0 ? w : u < 0 ? -w : 0;
			gx[k] += (float)g;
			gy[k] -= (float)g;
		}
		return;
	case LOSS_COSINE:
		cos_pair_back(x, y, D, 1e-8, -w, gx, gy);
		return;
	}
}

#define COL(b, c) ((b)->E + (size_t)(c) * (b)->B * (b)->D)
#define GCOL(g, b, c) ((g) + (size_t)(c) * (b)->B * (b)->D)
#define ROW(p, i, D) ((p) + (size_t)(i) * (D))

/* ---- triplet ---- */

static double loss_triplet(const loss_opts *o, const loss_batch *b, float *grad)
{
	int B = b->B, D = b->D;
	const float *A = COL(b, 0), *P = COL(b, 1), *N = COL(b, 2);
	float *gA = GCOL(grad, b, 0), *gP = GCOL(grad, b, 1), *gN = GCOL(grad, b, 2);
	double L = 0;
	for (int i = 0; i < B; i++) {
		double dap = pair_dist(o->distance, ROW(A, i, D), ROW(P, i, D), D);
		double dan = pair_dist(o->distance, ROW(A, i, D), ROW(N, i, D), D);
		double z = dap - dan + o->margin;
		if (z > 0) {
			L += z;
			pair_dist_back(o->distance, ROW(A, i, D), ROW(P, i, D), D, dap, 1.0 / B, ROW(gA, i, D), ROW(gP, i, D));
			pair_dist_back(o->distance, ROW(A, i, D), ROW(N, i, D), D, dan, -1.0 / B, ROW(gA, i, D), ROW(gN, i, D));
		}
	}
	return L / B;
}

/* ---- mnrl, mnrl-symmetric ---- */

/* Cross-entropy over rows of scores S [R][N] (already scaled) with targets t0..t0+R-1; S is replaced by
 * coef * (softmax - onehot) * scale, the gradient with respect to the unscaled similarities. Returns the
 * summed CE of the R rows. */
static double ce_rows(float *S, int R, int N, int t0, double scale, double coef)
{
	double L = 0;
#pragma omp parallel for reduction(+ : L) if (R * (long)N > 65536)
	for (int r = 0; r < R; r++) {
		float *s = S + (size_t)r * N;
		float mx = s[0];
		for (int j = 1; j < N; j++)
			if (s[j] > mx)
				mx = s[j];
		double z = 0;
		for (int j = 0; j < N; j++)
			z += exp((double)s[j] - mx);
		double lse = mx + log(z);
		L += lse - s[t0 + r];
		for (int j = 0; j < N; j++)
			s[j] = (float)(coef * scale * exp((double)s[j] - lse));
		s[t0 + r] -= (float)(coef * scale);
	}
	return L;
}

/* Anchors Q [B][D] against candidates K [N][D]: CE of scale*Q K^T with target i for row i, weight coef per
 * row; dQ, dK accumulate. S is a CHUNK x N scratch. */
static double ce_block(const float *Q, int B, const float *K, int N, int D, double scale, double coef,
		       float *dQ, float *dK, float *S)
{
	double L = 0;
	for (int r0 = 0; r0 < B; r0 += CHUNK) {
		int R = B - r0 < CHUNK ? B - r0 : CHUNK;
		/* S [R][N] = scale * Q[r0:r0+R] K^T */
		st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, N, D, (float)scale, Q + (size_t)r0 * D, D,
			    K, D, 0.0f, S, N);
		L += ce_rows(S, R, N, r0, scale, coef);
		/* dQ[r0:] += S K ; dK += S^T Q[r0:] */
		st_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, D, N, 1.0f, S, N, K, D, 1.0f,
			    dQ + (size_t)r0 * D, D);
		st_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, R, 1.0f, S, N, Q + (size_t)r0 * D, D,
			    1.0f, dK, D);
	}
	return L * coef;
}

static double loss_mnrl(const loss_opts *o, const loss_batch *b, float *grad, int symmetric)
{
	int B = b->B, D = b->D, N = B * (b->C - 1);
	size_t nall = (size_t)b->C * B;
	int cosine = o->similarity == LOSS_SIM_COSINE;
	const float *X = b->E;   /* anchors are rows 0..B-1, candidates (positives, then negatives) follow */
	float *Xn = NULL, *norms = NULL, *dX = grad;
	if (cosine) {
		Xn = xmalloc(xmul(nall * D, sizeof(float)));
		norms = xmalloc(xmul(nall, sizeof(float)));
		loss_normalize(b->E, (int)nall, D, 1e-12, Xn, norms);
		X = Xn;
		dX = xcalloc(nall * D, sizeof(float));
	}
	int wide = N > B ? N : B;
	float *S = xmalloc(xmul((size_t)CHUNK * wide, sizeof(float)));
	const float *A = X, *C = X + (size_t)B * D;
	float *dA = dX, *dC = dX + (size_t)B * D;
	double coef = symmetric ? 0.5 / B : 1.0 / B;
	double L = ce_block(A, B, C, N, D, o->scale, coef, dA, dC, S);
	if (symmetric)   /* positive j looks for its anchor among all anchors */
		L += ce_block(C, B, A, B, D, o->scale, coef, dC, dA, S);
	free(S);
	if (cosine) {
		loss_normalize_back(Xn, norms, (int)nall, D, 1e-12, dX, grad);
		free(dX);
		free(Xn);
		free(norms);
	}
	return L;
}

/* ---- megabatch-margin ---- */

static double loss_megabatch(const loss_opts *o, const loss_batch *b, float *grad)
{
	int B = b->B, D = b->D;
	const float *A = COL(b, 0), *P = COL(b, 1);
	float *gA = GCOL(grad, b, 0), *gP = GCOL(grad, b, 1);
	/* hardest negative: argmax_j cos_sim(a_i, p_j) - 2 [i = j], first index on ties (torch.max) */
	float *An = xmalloc(xmul((size_t)B * D, sizeof(float))), *Pn = xmalloc(xmul((size_t)B * D, sizeof(float)));
	float *nA = xmalloc(B * sizeof(float)), *nP = xmalloc(B * sizeof(float));
	float *S = xmalloc(xmul((size_t)CHUNK * B, sizeof(float)));
	int *neg = xmalloc(B * sizeof(int));
	loss_normalize(A, B, D, 1e-12, An, nA);
	loss_normalize(P, B, D, 1e-12, Pn, nP);
	for (int r0 = 0; r0 < B; r0 += CHUNK) {
		int R = B - r0 < CHUNK ? B - r0 : CHUNK;
		st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, B, D, 1.0f, An + (size_t)r0 * D, D, Pn, D,
			    0.0f, S, B);
		for (int r = 0; r < R; r++) {
			float *s = S + (size_t)r * B;
			s[r0 + r] -= 2;
			int best = 0;
			for (int j = 1; j < B; j++)
				if (s[j] > s[best])
					best = j;
			neg[r0 + r] = best;
		}
	}
	free(S);
	free(An);
	free(Pn);
	free(nA);
	free(nP);
	/* mean over mini-batches of the mini-batch means; every mini-batch back-propagates */
	int mb = o->mini_batch_size > 0 && o->mini_batch_size < B ? o->mini_batch_size : B;
	int nmb = (B + mb - 1) / mb;
	double L = 0;
	for (int s0 = 0; s0 < B; s0 += mb) {
		int m = B - s0 < mb ? B - s0 : mb;
		double w = 1.0 / ((double)m * nmb), Lmb = 0;
		for (int i = s0; i < s0 + m; i++) {
			int j = neg[i];
			double cp = cos_pair(ROW(A, i, D), ROW(P, i, D), D, 1e-8);
			/* j = i only when B = 1: the library's score is then cos - 2, below any margin */
			double cn = cos_pair(ROW(A, i, D), ROW(P, j, D), D, 1e-8) - 2.0 * (j == i);
			if (o->positive_margin - cp > 0) {
				Lmb += o->positive_margin - cp;
				cos_pair_back(ROW(A, i, D), ROW(P, i, D), D, 1e-8, -w, ROW(gA, i, D), ROW(gP, i, D));
			}
			if (cn - o->negative_margin > 0) {
				Lmb += cn - o->negative_margin;
				cos_pair_back(ROW(A, i, D), ROW(P, j, D), D, 1e-8, w, ROW(gA, i, D), ROW(gP, j, D));
			}
		}
		L += Lmb / m;
	}
	free(neg);
	return L / nmb;
}

/* ---- contrastive, online-contrastive ---- */

static double loss_contrastive(const loss_opts *o, const loss_batch *b, float *grad)
{
	int B = b->B, D = b->D;
	const float *X = COL(b, 0), *Y = COL(b, 1);
	double w = o->size_average ? 1.0 / B : 1.0, L = 0;
	for (int i = 0; i < B; i++) {
		double y = b->labels[i], d = pair_dist(o->distance, ROW(X, i, D), ROW(Y, i, D), D);
		double h = o->margin - d > 0 ? o->margin - d : 0;
		L += 0.5 * (y * d * d + (1 - y) * h * h);
		double dd = y * d - (1 - y) * h;
		if (dd != 0)
			pair_dist_back(o->distance, ROW(X, i, D), ROW(Y, i, D), D, d, w * dd, GCOL(grad, b, 0) + (size_t)i * D,
				       GCOL(grad, b, 1) + (size_t)i * D);
	}
	return L * w;
}

static double loss_online_contrastive(const loss_opts *o, const loss_batch *b, float *grad)
{
	int B = b->B, D = b->D;
	const float *X = COL(b, 0), *Y = COL(b, 1);
	double *d = xmalloc(B * sizeof(double));
	int npos = 0, nneg = 0;
	double maxpos = -INFINITY, minneg = INFINITY, sumpos = 0, sumneg = 0;
	for (int i = 0; i < B; i++) {
		d[i] = pair_dist(o->distance, ROW(X, i, D), ROW(Y, i, D), D);
		if (b->labels[i] == 1) {
			npos++, sumpos += d[i];
			if (d[i] > maxpos)
				maxpos = d[i];
		} else {
			nneg++, sumneg += d[i];
			if (d[i] < minneg)
				minneg = d[i];
		}
	}
	/* an empty mean is NaN in torch, and nothing compares true with NaN */
	double negthr = npos > 1 ? maxpos : nneg ? sumneg / nneg : NAN;
	double posthr = nneg > 1 ? minneg : npos ? sumpos / npos : NAN;
	double L = 0;
	for (int i = 0; i < B; i++) {
		double dd = 0;
		if (b->labels[i] == 1) {
			if (d[i] > posthr)
				L += d[i] * d[i], dd = 2 * d[i];
		} else if (d[i] < negthr) {
			double h = o->margin - d[i] > 0 ? o->margin - d[i] : 0;
			L += h * h, dd = -2 * h;
		}
		if (dd != 0)
			pair_dist_back(o->distance, ROW(X, i, D), ROW(Y, i, D), D, d[i], dd, GCOL(grad, b, 0) + (size_t)i * D,
				       GCOL(grad, b, 1) + (size_t)i * D);
	}
	free(d);
	return L;
}

/* ---- softmax ---- */

static double loss_softmax(const loss_opts *o, const loss_batch *b, loss_classifier *cls, float *grad)
{
	int B = b->B, D = b->D, F = cls->in, NL = cls->num_labels;
	const float *U = COL(b, 0), *V = COL(b, 1);
	float *gU = GCOL(grad, b, 0), *gV = GCOL(grad, b, 1);
	float *f = xmalloc(xmul((size_t)B * F, sizeof(float)));   /* [B][F]: u, v, |u-v|, u*v */
	float *logits = xmalloc(xmul((size_t)B * NL, sizeof(float)));
	for (int i = 0; i < B; i++) {
		float *fi = f + (size_t)i * F;
		const float *u = ROW(U, i, D), *v = ROW(V, i, D);
		int off = 0;
		if (o->cat_rep) {
			memcpy(fi, u, D * sizeof(float));
			memcpy(fi + D, v, D * sizeof(float));
			off = 2 * D;
		}
		if (o->cat_diff) {
			for (int k = 0; k < D; k++)
				fi[off + k] = fabsf(u[k] - v[k]);
			off += D;
		}
		if (o->cat_mul)
			for (int k = 0; k < D; k++)
				fi[off + k] = u[k] * v[k];
	}
	/* logits [B][NL] = f W^T + b */
	for (int i = 0; i < B; i++)
		memcpy(logits + (size_t)i * NL, cls->b, NL * sizeof(float));
	st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, NL, F, 1.0f, f, F, cls->W, F, 1.0f, logits, NL);
	double L = 0;
	for (int i = 0; i < B; i++) {
		float *z = logits + (size_t)i * NL;
		int t = (int)b->labels[i];
		double mx = z[0], s = 0;
		for (int j = 1; j < NL; j++)
			if (z[j] > mx)
				mx = z[j];
		for (int j = 0; j < NL; j++)
			s += exp(z[j] - mx);
		double lse = mx + log(s);
		L += lse - z[t];
		for (int j = 0; j < NL; j++)
			z[j] = (float)(exp(z[j] - lse) / B);
		z[t] -= 1.0f / B;
	}
	/* dW = dlogits^T f, db = column sums, df = dlogits W */
	st_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, NL, F, B, 1.0f, logits, NL, f, F, 0.0f, cls->dW, F);
	for (int j = 0; j < NL; j++) {
		double s = 0;
		for (int i = 0; i < B; i++)
			s += logits[(size_t)i * NL + j];
		cls->db[j] = (float)s;
	}
	st_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, F, NL, 1.0f, logits, NL, cls->W, F, 0.0f, f, F);
	for (int i = 0; i < B; i++) {
		const float *df = f + (size_t)i * F, *u = ROW(U, i, D), *v = ROW(V, i, D);
		float *gu = ROW(gU, i, D), *gv = ROW(gV, i, D);
		int off = 0;
		if (o->cat_rep) {
			for (int k = 0; k < D; k++)
				gu[k] += df[k], gv[k] += df[D + k];
			off = 2 * D;
		}
		if (o->cat_diff) {
			for (int k = 0; k < D; k++) {
				float s = u[k] > v[k] ? 1.0f : u[k] < v[k] ? -1.0f : 0.0f;   /* torch: sign(0) = 0 */
				gu[k] += s * df[off + k], gv[k] -= s * df[off + k];
			}
			off += D;
		}
		if (o->cat_mul)
			for (int k = 0; k < D; k++)
				gu[k] += v[k] * df[off + k], gv[k] += u[k] * df[off + k];
	}
	free(f);
	free(logits);
	return L / B;
}

/* ---- cosine-similarity, cosent, angle ---- */

static double loss_cosine_similarity(const loss_opts *o, const loss_batch *b, float *grad)
{
	int B = b->B, D = b->D;
	const float *X = COL(b, 0), *Y = COL(b, 1);
	double L = 0;
	for (int i = 0; i < B; i++) {
		double c = cos_pair(ROW(X, i, D), ROW(Y, i, D), D, 1e-8), e = c - b->labels[i];
		L += e * e;
		cos_pair_back(ROW(X, i, D), ROW(Y, i, D), D, 1e-8, 2 * e / B, GCOL(grad, b, 0) + (size_t)i * D,
			      GCOL(grad, b, 1) + (size_t)i * D);
	}
	return L / B;
}

/* pairwise_angle_sim: x = (a, b), y = (c, d) halves; |sum(a c + b d + b c - a d)| / (|x| |y|). */
static double angle_sim(const float *x, const float *y, int D)
{
	int h = D / 2;
	double T = 0;
	for (int k = 0; k < h; k++)
		T += (double)x[k] * y[k] + (double)x[h + k] * y[h + k] + (double)x[h + k] * y[k] - (double)x[k] * y[h + k];
	return fabs(T) / (norm_d(x, D) * norm_d(y, D));
}

static void angle_sim_back(const float *x, const float *y, int D, double w, float *gx, float *gy)
{
	int h = D / 2;
	double T = 0, nx = norm_d(x, D), ny = norm_d(y, D);
	for (int k = 0; k < h; k++)
		T += (double)x[k] * y[k] + (double)x[h + k] * y[h + k] + (double)x[h + k] * y[k] - (double)x[k] * y[h + k];
	double sg = T > 0 ? 1 : T < 0 ? -1 : 0, q = 1 / (nx * ny);
	for (int k = 0; k < h; k++) {
		double a = x[k], bb = x[h + k], c = y[k], d = y[h + k];
		gx[k] += (float)(w * sg * ((c - d) * q - T * a * q / (nx * nx)));
		gx[h + k] += (float)(w * sg * ((d + c) * q - T * bb * q / (nx * nx)));
		gy[k] += (float)(w * sg * ((a + bb) * q - T * c * q / (ny * ny)));
		gy[h + k] += (float)(w * sg * ((bb - a) * q - T * d * q / (ny * ny)));
	}
}

/* log(1 + sum over label-ordered pairs y_i < y_j of exp(s_i - s_j)), s = scale * sim. */
static double loss_cosent(const loss_opts *o, const loss_batch *b, float *grad, int angle)
{
	int B = b->B, D = b->D;
	const float *X = COL(b, 0), *Y = COL(b, 1);
	const float *y = b->labels;
	double *s = xmalloc(B * sizeof(double)), *ds = xcalloc(B, sizeof(double));
	for (int i = 0; i < B; i++)
		s[i] = o->scale * (angle ? angle_sim(ROW(X, i, D), ROW(Y, i, D), D)
					 : cos_pair(ROW(X, i, D), ROW(Y, i, D), D, 1e-12));
	double mx = 0;   /* the prepended 0 */
	for (int i = 0; i < B; i++)
		for (int j = 0; j < B; j++)
			if (y[i] < y[j] && s[i] - s[j] > mx)
				mx = s[i] - s[j];
	double z = exp(-mx);
	for (int i = 0; i < B; i++)
		for (int j = 0; j < B; j++)
			if (y[i] < y[j])
				z += exp(s[i] - s[j] - mx);
	double lse = mx + log(z);
	for (int i = 0; i < B; i++)
		for (int j = 0; j < B; j++)
			if (y[i] < y[j]) {
				double p = exp(s[i] - s[j] - lse);
				ds[i] += p, ds[j] -= p;
			}
	for (int i = 0; i < B; i++) {
		if (ds[i] == 0)
			continue;
		float *gx = GCOL(grad, b, 0) + (size_t)i * D, *gy = GCOL(grad, b, 1) + (size_t)i * D;
		if (angle)
			angle_sim_back(ROW(X, i, D), ROW(Y, i, D), D, o->scale * ds[i], gx, gy);
		else
			cos_pair_back(ROW(X, i, D), ROW(Y, i, D), D, 1e-12, o->scale * ds[i], gx, gy);
	}
	free(s);
	free(ds);
	return lse;
}

/* ---- batch triplet family: one column, class labels ---- */

/* Pairwise distance matrix Dm [B][B] of the rows of E. Euclidean follows the library: squared distances
 * clamped at 0, exact zeros stay 0 with zero gradient. Close pairs are recomputed from differences so that
 * duplicates give exactly 0 (the Gram form cancels). Cosine: 1 - cos_sim (eps 1e-12); En, nrm keep the
 * normalised rows for the backward pass. */
static void dist_matrix(enum loss_distance dist, const float *E, int B, int D, float *Dm, float *En, float *nrm)
{
	const float *X = E;
	if (dist == LOSS_COSINE) {
		loss_normalize(E, B, D, 1e-12, En, nrm);
		X = En;
	}
	st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, B, D, 1.0f, X, D, X, D, 0.0f, Dm, B);
	if (dist == LOSS_COSINE) {
		for (size_t k = 0; k < (size_t)B * B; k++)
			Dm[k] = 1 - Dm[k];
		return;
	}
	float *sq = xmalloc(B * sizeof(float));
	for (int i = 0; i < B; i++)
		sq[i] = Dm[(size_t)i * B + i];
#pragma omp parallel for if (B > 256)
	for (int i = 0; i < B; i++)
		for (int j = 0; j < B; j++) {
			double d2 = (double)sq[i] - 2.0 * Dm[(size_t)i * B + j] + sq[j];
			if (d2 < 1e-3 * ((double)sq[i] + sq[j])) {
				d2 = 0;
				for (int k = 0; k < D; k++) {
					double u = (double)E[(size_t)i * D + k] - E[(size_t)j * D + k];
					d2 += u * u;
				}
			}
			Dm[(size_t)i * B + j] = d2 > 0 ? (float)sqrt(d2) : 0.0f;
		}
	free(sq);
}

/* dE += dL/dE given dL/dDm (gD [B][B], consumed). */
static void dist_matrix_back(enum loss_distance dist, const float *E, int B, int D, const float *Dm, float *gD,
			     const float *En, const float *nrm, float *dE)
{
	/* symmetrise: W = gD + gD^T (scaled for the distance) */
	for (int i = 0; i < B; i++)
		for (int j = i; j < B; j++) {
			float w = gD[(size_t)i * B + j] + gD[(size_t)j * B + i];
			if (dist == LOSS_EUCLIDEAN) {
				float d = Dm[(size_t)i * B + j];
				w = d > 0 ? w / d : 0;   /* dD/de_i = (e_i - e_j)/D; zero distances have no gradient */
			}
			if (i == j)   /* D_ii is 0 for every E (1 - cos(x, x) too): no gradient, not rounding noise */
				w = 0;
			gD[(size_t)i * B + j] = gD[(size_t)j * B + i] = w;
		}
	if (dist == LOSS_COSINE) {
		/* D = 1 - En En^T: dEn = -W En, then back through the normalisation */
		float *dEn = xmalloc(xmul((size_t)B * D, sizeof(float)));
		st_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, D, B, -1.0f, gD, B, En, D, 0.0f, dEn, D);
		loss_normalize_back(En, nrm, B, D, 1e-12, dEn, dE);
		free(dEn);
		return;
	}
	/* dE_i = sum_j W_ij (e_i - e_j) = rowsum(W)_i e_i - (W E)_i */
	st_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, D, B, -1.0f, gD, B, E, D, 1.0f, dE, D);
	for (int i = 0; i < B; i++) {
		double s = 0;
		for (int j = 0; j < B; j++)
			s += gD[(size_t)i * B + j];
		for (int k = 0; k < D; k++)
			dE[(size_t)i * D + k] += (float)(s * E[(size_t)i * D + k]);
	}
}

static double softplus(double x)
{
	return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static double batch_hard(const loss_opts *o, const float *Dm, const float *y, int B, float *gD, int soft)
{
	double L = 0;
	for (int i = 0; i < B; i++) {
		const float *d = Dm + (size_t)i * B;
		float *g = gD + (size_t)i * B;
		/* hardest positive: max_j [y_j = y_i, j != i] D_ij (masked entries count as 0) */
		int jp = 0;
		float hp = (y[0] == y[i] && i != 0) ? d[0] : 0.0f;
		for (int j = 1; j < B; j++) {
			float v = (y[j] == y[i] && j != i) ? d[j] : 0.0f;
			if (v > hp)
				hp = v, jp = j;
		}
		/* hardest negative: min_k D_ik + rowmax [y_k = y_i] */
		int km = 0;
		for (int k = 1; k < B; k++)
			if (d[k] > d[km])
				km = k;
		int kn = 0;
		float hn = d[0] + (y[0] == y[i] ? d[km] : 0.0f);
		for (int k = 1; k < B; k++) {
			float v = d[k] + (y[k] == y[i] ? d[km] : 0.0f);
			if (v < hn)
				hn = v, kn = k;
		}
		double z = (double)hp - hn, w;
		if (soft) {
			L += softplus(z);
			w = 1 / (1 + exp(-z));
		} else {
			z += o->margin;
			if (z <= 0)
				continue;
			L += z;
			w = 1;
		}
		w /= B;
		if (y[jp] == y[i] && jp != i)
			g[jp] += (float)w;
		g[kn] -= (float)w;
		if (y[kn] == y[i])
			g[km] -= (float)w;
	}
	return L / B;
}

static double batch_semi_hard(const loss_opts *o, const float *Dm, const float *y, int B, float *gD)
{
	double L = 0, npos = 0;
	for (int a = 0; a < B; a++) {
		const float *d = Dm + (size_t)a * B;
		float *g = gD + (size_t)a * B;
		int kmax = 0, kmin = 0;
		for (int k = 1; k < B; k++) {
			if (d[k] > d[kmax])
				kmax = k;
			if (d[k] < d[kmin])
				kmin = k;
		}
		/* fallback negative: masked maximum over y_k != y_a by the library's shift (ties: first index) */
		int kin = 0;
		float best = (d[0] - d[kmin]) * (y[0] != y[a]);
		for (int k = 1; k < B; k++) {
			float v = (d[k] - d[kmin]) * (y[k] != y[a]);
			if (v > best)
				best = v, kin = k;
		}
		if (y[kin] == y[a])
			kin = kmin;
		for (int p = 0; p < B; p++) {
			if (p == a || y[p] != y[a])
				continue;
			npos++;
			/* semi-hard: masked minimum over y_k != y_a and D_ak > D_ap */
			int kout = -1, any = 0;
			float bo = 0;
			for (int k = 0; k < B; k++) {
				int m = y[k] != y[a] && d[k] > d[p];
				any |= m;
				float v = (d[k] - d[kmax]) * m;
				if (kout < 0 || v < bo)
					bo = v, kout = k;
			}
			int kneg = any ? (y[kout] != y[a] && d[kout] > d[p] ? kout : kmax) : kin;
			double z = (double)d[p] - d[kneg] + o->margin;
			if (z > 0) {
				L += z;
				g[p] += 1;
				g[kneg] -= 1;
			}
		}
	}
	if (npos == 0)   /* no positive pair: 0 (the library divides 0 by 0) */
		return 0;
	for (size_t k = 0; k < (size_t)B * B; k++)
		gD[k] /= (float)npos;
	return L / npos;
}

static double batch_all(const loss_opts *o, const float *Dm, const float *y, int B, float *gD)
{
	double L = 0;
	long count = 0;
	for (int i = 0; i < B; i++) {
		const float *d = Dm + (size_t)i * B;
		float *g = gD + (size_t)i * B;
		for (int j = 0; j < B; j++) {
			if (j == i || y[j] != y[i])
				continue;
			for (int k = 0; k < B; k++) {
				if (y[k] == y[i])
					continue;
				float v = d[j] - d[k] + (float)o->margin;
				if (v < 0)
					continue;
				L += v;
				count += v > 1e-16f;
				g[j] += 1;
				g[k] -= 1;
			}
		}
	}
	double div = count + 1e-16;
	for (size_t k = 0; k < (size_t)B * B; k++)
		gD[k] = (float)(gD[k] / div);
	return L / div;
}

static double loss_batch_triplet(const loss_opts *o, const loss_batch *b, float *grad)
{
	int B = b->B, D = b->D;
	float *Dm = xmalloc(xmul((size_t)B * B, sizeof(float))), *gD = xcalloc((size_t)B * B, sizeof(float));
	float *En = NULL, *nrm = NULL;
	if (o->distance == LOSS_COSINE) {
		En = xmalloc(xmul((size_t)B * D, sizeof(float)));
		nrm = xmalloc(B * sizeof(float));
	}
	dist_matrix(o->distance, b->E, B, D, Dm, En, nrm);
	double L = 0;
	switch (o->kind) {
	case LOSS_BATCH_HARD_TRIPLET: L = batch_hard(o, Dm, b->labels, B, gD, 0); break;
	case LOSS_BATCH_HARD_SOFT_MARGIN_TRIPLET: L = batch_hard(o, Dm, b->labels, B, gD, 1); break;
	case LOSS_BATCH_SEMI_HARD_TRIPLET: L = batch_semi_hard(o, Dm, b->labels, B, gD); break;
	default: L = batch_all(o, Dm, b->labels, B, gD); break;
	}
	dist_matrix_back(o->distance, b->E, B, D, Dm, gD, En, nrm, grad);
	free(Dm);
	free(gD);
	free(En);
	free(nrm);
	return L;
}

/* ---- mse, margin-mse ---- */

static double loss_mse(const loss_batch *b, float *grad)
{
	size_t BD = (size_t)b->B * b->D, n = (size_t)b->C * BD;
	double L = 0;
	for (int c = 0; c < b->C; c++)
		for (size_t k = 0; k < BD; k++) {
			double e = (double)b->E[c * BD + k] - b->labels[k];
			L += e * e;
			grad[c * BD + k] = (float)(2 * e / n);
		}
	return L / n;
}

static double sim_pair(const loss_opts *o, const float *x, const float *y, int D)
{
	return o->similarity == LOSS_SIM_DOT ? dot_d(x, y, D) : cos_pair(x, y, D, 1e-12);
}

static void sim_pair_back(const loss_opts *o, const float *x, const float *y, int D, double w, float *gx, float *gy)
{
	if (o->similarity == LOSS_SIM_COSINE) {
		cos_pair_back(x, y, D, 1e-12, w, gx, gy);
		return;
	}
	for (int k = 0; k < D; k++) {
		gx[k] += (float)(w * y[k]);
		gy[k] += (float)(w * x[k]);
	}
}

static double loss_margin_mse(const loss_opts *o, const loss_batch *b, float *grad)
{
	int B = b->B, D = b->D, nneg = b->C - 2, K = b->label_ndim == 1 ? 1 : b->K;
	double L = 0, n = (double)B * nneg;
	for (int i = 0; i < B; i++) {
		const float *q = ROW(COL(b, 0), i, D), *p = ROW(COL(b, 1), i, D), *t = b->labels + (size_t)i * K;
		float *gq = ROW(GCOL(grad, b, 0), i, D), *gp = ROW(GCOL(grad, b, 1), i, D);
		double sp = sim_pair(o, q, p, D);
		for (int j = 0; j < nneg; j++) {
			const float *ng = ROW(COL(b, 2 + j), i, D);
			double target = K == nneg ? t[j] : (double)t[0] - t[1 + j];
			double e = sp - sim_pair(o, q, ng, D) - target;
			L += e * e;
			sim_pair_back(o, q, p, D, 2 * e / n, gq, gp);
			sim_pair_back(o, q, ng, D, -2 * e / n, gq, ROW(GCOL(grad, b, 2 + j), i, D));
		}
	}
	return L / n;
}

/* ---- matryoshka ---- */

static double loss_matryoshka(const loss_opts *o, const loss_batch *b, loss_classifier *cls, float *grad)
{
	int C = b->C, B = b->B, D = b->D;
	size_t rows = (size_t)C * B;
	float *Ek = xmalloc(xmul(rows * D, sizeof(float))), *En = xmalloc(xmul(rows * D, sizeof(float)));
	float *nrm = xmalloc(rows * sizeof(float)), *gk = xmalloc(xmul(rows * D, sizeof(float)));
	float *dk = xmalloc(xmul(rows * D, sizeof(float)));
	float *lab = NULL;
	int truncate_labels = b->labels && b->label_ndim == 2 && b->K == D;
	if (truncate_labels)
		lab = xmalloc(xmul((size_t)B * D, sizeof(float)));
	double L = 0;
	for (int m = 0; m < o->ndims; m++) {
		int k = o->dims[m];
		for (size_t r = 0; r < rows; r++)
			memcpy(Ek + r * k, b->E + r * D, k * sizeof(float));
		loss_normalize(Ek, (int)rows, k, 1e-12, En, nrm);
		loss_batch bk = *b;
		bk.E = En;
		bk.D = k;
		if (truncate_labels) {
			for (int i = 0; i < B; i++)
				memcpy(lab + (size_t)i * k, b->labels + (size_t)i * D, k * sizeof(float));
			bk.labels = lab;
			bk.K = k;
		}
		memset(gk, 0, rows * k * sizeof(float));
		L += o->weights[m] * loss_eval(o->inner, &bk, cls, gk);
		for (size_t t = 0; t < rows * k; t++)
			gk[t] *= (float)o->weights[m];
		memset(dk, 0, rows * k * sizeof(float));
		loss_normalize_back(En, nrm, (int)rows, k, 1e-12, gk, dk);
		for (size_t r = 0; r < rows; r++)
			for (int t = 0; t < k; t++)
				grad[r * D + t] += dk[r * k + t];
	}
	free(Ek);
	free(En);
	free(nrm);
	free(gk);
	free(dk);
	free(lab);
	return L;
}

/* ---- checks and dispatch ---- */

static const char *plural(int n)
{
	return n == 1 ? "" : "s";
}

int loss_check(const loss_opts *o, const loss_batch *b, const loss_classifier *cls, char *err, size_t errlen)
{
	const char *name = loss_name(o->kind);
	int lo = 2, hi = 2;   /* text columns */
	switch (o->kind) {
	case LOSS_TRIPLET: lo = hi = 3; break;
	case LOSS_MNRL: case LOSS_MNRL_SYMMETRIC: hi = 0; break;
	case LOSS_MARGIN_MSE: lo = 3, hi = 0; break;
	case LOSS_MSE: lo = 1, hi = 0; break;
	case LOSS_BATCH_HARD_TRIPLET: case LOSS_BATCH_HARD_SOFT_MARGIN_TRIPLET: case LOSS_BATCH_SEMI_HARD_TRIPLET:
	case LOSS_BATCH_ALL_TRIPLET: lo = hi = 1; break;
	case LOSS_MATRYOSHKA: lo = 1, hi = 0; break;
	default: break;
	}
	if (b->C < lo || (hi && b->C > hi)) {
		if (hi == lo)
			return errbuf_fail(err, errlen, "%s needs %d text column%s; got %d", name, lo, plural(lo), b->C);
		return errbuf_fail(err, errlen, "%s needs %d or more text columns; got %d", name, lo, b->C);
	}
	if (b->B < 1 || b->D < 1)
		return errbuf_fail(err, errlen, "%s needs at least one row and one dimension; got %d rows of %d", name, b->B, b->D);
	int B = b->B;
	switch (o->kind) {
	case LOSS_CONTRASTIVE:
	case LOSS_ONLINE_CONTRASTIVE:
		if (!b->labels || b->label_ndim != 1)
			return errbuf_fail(err, errlen, "%s needs a label per row (labels [rows], 1 = similar, 0 = not)", name);
		for (int i = 0; i < B; i++)
			if (b->labels[i] != 0 && b->labels[i] != 1)
				return errbuf_fail(err, errlen, "%s needs labels 0 or 1; row %d has %g", name, i, b->labels[i]);
		break;
	case LOSS_SOFTMAX:
		if (!b->labels || b->label_ndim != 1)
			return errbuf_fail(err, errlen, "%s needs a class label per row (labels [rows], 0..%d)", name, o->num_labels - 1);
		for (int i = 0; i < B; i++)
			if (!(b->labels[i] >= 0 && b->labels[i] < o->num_labels) || b->labels[i] != (int)b->labels[i])
				return errbuf_fail(err, errlen, "%s needs class labels 0..%d; row %d has %g", name, o->num_labels - 1, i,
					    b->labels[i]);
		if (cls && cls->in != loss_softmax_in(o, b->D))
			return errbuf_fail(err, errlen, "%s: the classifier takes %d features; embeddings of %d dimensions give %d",
				    name, cls->in, b->D, loss_softmax_in(o, b->D));
		break;
	case LOSS_COSINE_SIMILARITY:
	case LOSS_COSENT:
	case LOSS_ANGLE:
		if (!b->labels || b->label_ndim != 1)
			return errbuf_fail(err, errlen, "%s needs a score per row (labels [rows])", name);
		if (o->kind == LOSS_ANGLE && b->D % 2)
			return errbuf_fail(err, errlen, "%s needs an even embedding dimension; got %d", name, b->D);
		break;
	case LOSS_BATCH_HARD_TRIPLET:
	case LOSS_BATCH_HARD_SOFT_MARGIN_TRIPLET:
	case LOSS_BATCH_SEMI_HARD_TRIPLET:
	case LOSS_BATCH_ALL_TRIPLET:
		if (!b->labels || b->label_ndim != 1)
			return errbuf_fail(err, errlen, "%s needs a class label per row (labels [rows])", name);
		break;
	case LOSS_MSE:
		if (!b->labels || b->label_ndim != 2 || b->K != b->D)
			return errbuf_fail(err, errlen, "%s needs the teacher embedding as label (labels [rows][%d])", name, b->D);
		break;
	case LOSS_MARGIN_MSE: {
		int k = b->C - 2;
		int okshape = b->labels && ((b->label_ndim == 1 && k == 1) ||
					    (b->label_ndim == 2 && (b->K == k || b->K == k + 1)));
		if (!okshape)
			return errbuf_fail(err, errlen, "%s needs teacher margins as label (labels [rows][%d], or [rows][%d] teacher "
				    "scores%s); %d negative column%s", name, k, k + 1, k == 1 ? ", or [rows]" : "", k, plural(k));
		break;
	}
	case LOSS_MATRYOSHKA: {
		for (int m = 0; m < o->ndims; m++)
			if (o->dims[m] > b->D)
				return errbuf_fail(err, errlen, "matryoshka: dimension %d is larger than the embeddings' %d", o->dims[m], b->D);
		/* the wrapped loss sees the truncated dims (the smallest decides e.g. angle's evenness) */
		for (int m = 0; m < o->ndims; m++) {
			loss_batch bk = *b;
			bk.D = o->dims[m];
			if (b->labels && b->label_ndim == 2 && b->K == b->D)
				bk.K = bk.D;
			char inner[400];
			if (loss_check(o->inner, &bk, NULL, inner, sizeof inner))
				return errbuf_fail(err, errlen, "matryoshka (dim %d): %s", bk.D, inner);
		}
		break;
	}
	default:
		break;
	}
	if (b->labels)
		for (size_t k = 0; k < (size_t)B * b->K; k++)
			if (!isfinite(b->labels[k]))
				return errbuf_fail(err, errlen, "%s: label %zu is not a finite number", name, k);
	return 0;
}

double loss_eval(const loss_opts *o, const loss_batch *b, loss_classifier *cls, float *grad)
{
	memset(grad, 0, (size_t)b->C * b->B * b->D * sizeof(float));
	switch (o->kind) {
	case LOSS_TRIPLET: return loss_triplet(o, b, grad);
	case LOSS_MNRL: return loss_mnrl(o, b, grad, 0);
	case LOSS_MNRL_SYMMETRIC: return loss_mnrl(o, b, grad, 1);
	case LOSS_MEGABATCH_MARGIN: return loss_megabatch(o, b, grad);
	case LOSS_CONTRASTIVE: return loss_contrastive(o, b, grad);
	case LOSS_ONLINE_CONTRASTIVE: return loss_online_contrastive(o, b, grad);
	case LOSS_SOFTMAX: return loss_softmax(o, b, cls, grad);
	case LOSS_COSINE_SIMILARITY: return loss_cosine_similarity(o, b, grad);
	case LOSS_COSENT: return loss_cosent(o, b, grad, 0);
	case LOSS_ANGLE: return loss_cosent(o, b, grad, 1);
	case LOSS_BATCH_HARD_TRIPLET:
	case LOSS_BATCH_HARD_SOFT_MARGIN_TRIPLET:
	case LOSS_BATCH_SEMI_HARD_TRIPLET:
	case LOSS_BATCH_ALL_TRIPLET: return loss_batch_triplet(o, b, grad);
	case LOSS_MSE: return loss_mse(b, grad);
	case LOSS_MARGIN_MSE: return loss_margin_mse(o, b, grad);
	case LOSS_MATRYOSHKA: return loss_matryoshka(o, b, cls, grad);
	default: return NAN;
	}
}
