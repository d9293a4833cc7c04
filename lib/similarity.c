/* similarity.c: score matrices and the model's similarity function (similarity.h). Pairwise scores are
 * metrics_pairwise (metrics.h). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "metrics.h"
#include "model_impl.h"
#include "search.h"
#include "similarity.h"
#include "st.h"

int similarity_of_model(const st_model *m, char *err, size_t errlen)
{
	json_t *v = m->st_config ? json_object_get(m->st_config, "similarity_fn_name") : NULL;
	if (!v || json_is_null(v))
		return METRICS_COSINE;
	int sim = json_is_string(v) ? metrics_sim_parse(json_string_value(v)) : -1;
	if (sim < 0)
		snprintf(err, errlen, "config_sentence_transformers.json: similarity_fn_name %s%s%s is not one of cosine, "
			 "dot, euclidean, manhattan", json_is_string(v) ? "\"" : "",
			 json_is_string(v) ? json_string_value(v) : "(not a string)", json_is_string(v) ? "\"" : "");
	return sim;
}

void similarity_matrix(int sim, const float *a, size_t n, const float *b, size_t m, int d, float *out)
{
	if (n == 0 || m == 0)
		return;
	if (sim == METRICS_COSINE || sim == METRICS_DOT) {
		float *an = NULL, *bn = NULL;
		if (sim == METRICS_COSINE) {
			an = xmalloc(xmul(xmul(n, d), sizeof(float)));
			bn = xmalloc(xmul(xmul(m, d), sizeof(float)));
			memcpy(an, a, n * d * sizeof(float));
			memcpy(bn, b, m * d * sizeof(float));
			search_normalize(an, n, d);
			search_normalize(bn, m, d);
			a = an, b = bn;
		}
		/* out [n][m] = a [n][d] . b^T; in blocks of rows so that int sizes hold */
		for (size_t i0 = 0; i0 < n; i0 += 65536) {
			size_t rows = n - i0 < 65536 ? n - i0 : 65536;
			for (size_t j0 = 0; j0 < m; j0 += 65536) {
				size_t cols = m - j0 < 65536 ? m - j0 : 65536;
				st_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, d, 1.0f, a + i0 * d, d,
					 b + j0 * d, d, 0.0f, out + i0 * m + j0, (int)m);
			}
		}
		if (sim == METRICS_COSINE)
			/* rounding of the float products can pass 1 by an ulp; a cosine cannot */
			for (size_t i = 0; i < n * m; i++)
				out[i] = out[i] > 1.0f ? 1.0f : out[i] < -1.0f ? -1.0f : out[i];
		free(an);
		free(bn);
		return;
	}
	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < m; j++) {
			const float *x = a + i * d, *y = b + j * d;
			double s = 0;
			if (sim == METRICS_EUCLIDEAN) {
				for (int k = 0; k < d; k++) {
					double t = (double)x[k] - y[k];
					s += t * t;
				}
				s = sqrt(s);
			} else
				for (int k = 0; k < d; k++)
					s += fabs((double)x[k] - y[k]);
			out[i * m + j] = s > 0 ? (float)-s : 0.0f;   /* not -0 */
		}
}
