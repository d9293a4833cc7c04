/* loss_softmax.c: the softmax loss's classifier as state of the loss stage: loaded from and saved to the
 * run directory, initialised as torch's nn.Linear, trained with the model's AdamW and schedule. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loss.h"
#include "optim.h"
#include "safetensors.h"
#include "st.h"

#define SOFTMAX_FILE "loss-softmax.safetensors"

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static const char *const sm_names[6] = {
	"classifier.weight", "classifier.bias",
	"optimizer.classifier.weight.exp_avg", "optimizer.classifier.bias.exp_avg",
	"optimizer.classifier.weight.exp_avg_sq", "optimizer.classifier.bias.exp_avg_sq",
};

static int sm_load(loss_softmax_state *s, float *m, float *v, char *err, size_t errlen)
{
	int NL = s->cls.num_labels, F = s->cls.in;
	char e2[512];
	safetensors *f = sft_open(s->path, e2, sizeof e2);
	if (!f) {
		snprintf(err, errlen, "%s", e2);
		return -1;
	}
	float *dst[6] = { s->cls.W, s->cls.b, m, m + (size_t)NL * F, v, v + (size_t)NL * F };
	int rc = 0;
	for (int k = 0; k < 6 && !rc; k++) {
		const sft_entry *e = sft_find(f, sm_names[k]);
		size_t want = k % 2 ? (size_t)NL : (size_t)NL * F;
		if (!e) {
			snprintf(err, errlen, "%s: no tensor %s", s->path, sm_names[k]);
			rc = -1;
		} else if (sft_numel(e) != want || e->ndim != (k % 2 ? 1 : 2) || e->shape[0] != NL) {
			snprintf(err, errlen, "%s: %s does not fit a classifier of %d labels x %d features (from --num-labels "
				 "and the concatenation options on these embeddings)", s->path, sm_names[k], NL, F);
			rc = -1;
		} else if (sft_read_f32(f, e, dst[k], e2, sizeof e2)) {
			snprintf(err, errlen, "%s", e2);
			rc = -1;
		}
	}
	const char *t = sft_metadata(f, "step"), *ls = sft_metadata(f, "last_step");
	if (!rc) {
		s->opt->t = t ? strtoll(t, NULL, 10) : 0;
		s->last_step = ls ? strtoll(ls, NULL, 10) : -1;
	}
	sft_close(f);
	return rc;
}

loss_softmax_state *loss_softmax_open(const char *dir, int num_labels, int in, uint64_t seed,
				      const struct optim_config *cfg, char *err, size_t errlen)
{
	loss_softmax_state *s = xcalloc(1, sizeof *s);
	size_t nW = xmul(num_labels, in), n = nW + num_labels;
	s->cls.num_labels = num_labels;
	s->cls.in = in;
	s->params = xmalloc(xmul(n, sizeof(float)));
	s->grads = xcalloc(n, sizeof(float));
	s->cls.W = s->params, s->cls.b = s->params + nW;
	s->cls.dW = s->grads, s->cls.db = s->grads + nW;
	s->last_step = -1;
	/* fit's two groups: the bias has no weight decay */
	optim_tensor t[2] = { { 0, nW, 0, 0 }, { nW, (size_t)num_labels, 1, 0 } };
	s->opt = optim_new(cfg, n, t, 2);
	s->path = xmalloc(strlen(dir) + sizeof SOFTMAX_FILE + 1);
	sprintf(s->path, "%s/%s", dir, SOFTMAX_FILE);
	struct stat st;
	if (stat(s->path, &st) == 0) {
		if (sm_load(s, s->opt->m, s->opt->v, err, errlen)) {
			loss_softmax_close(s);
			return NULL;
		}
		return s;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", s->path, strerror(errno));
		loss_softmax_close(s);
		return NULL;
	}
	/* nn.Linear's reset_parameters: kaiming_uniform(a=sqrt(5)) on the weight = U(-1/sqrt(in), 1/sqrt(in)), and
	 * the same bound for the bias */
	double bound = 1 / sqrt((double)in);
	uint64_t rs = seed;
	for (size_t k = 0; k < n; k++)
		s->params[k] = (float)((2 * ((splitmix64(&rs) >> 11) / 9007199254740992.0) - 1) * bound);
	return s;
}

double loss_softmax_update(loss_softmax_state *s, int64_t step, double lr, double max_grad_norm)
{
	size_t n = s->opt->n;
	double norm = optim_clip_grad_norm(s->grads, n, max_grad_norm);
	optim_step(s->opt, s->params, s->grads, lr);
	s->last_step = step;
	return norm;
}

int loss_softmax_save(loss_softmax_state *s, char *err, size_t errlen)
{
	int NL = s->cls.num_labels, F = s->cls.in;
	size_t nW = (size_t)NL * F;
	const float *src[6] = { s->cls.W, s->cls.b, s->opt->m, s->opt->m + nW, s->opt->v, s->opt->v + nW };
	sft_tensor_f32 t[6];
	for (int k = 0; k < 6; k++) {
		t[k].name = sm_names[k];
		t[k].data = src[k];
		t[k].ndim = k % 2 ? 1 : 2;
		t[k].shape[0] = NL;
		t[k].shape[1] = F;
	}
	char step[32], last[32];
	snprintf(step, sizeof step, "%" PRId64, s->opt->t);
	snprintf(last, sizeof last, "%" PRId64, s->last_step);
	const char *meta[] = { "format", "pt", "step", step, "last_step", last, NULL };
	return sft_write_f32(s->path, t, 6, meta, err, errlen);
}

void loss_softmax_close(loss_softmax_state *s)
{
	if (!s)
		return;
	optim_free(s->opt);
	free(s->params);
	free(s->grads);
	free(s->path);
	free(s);
}
