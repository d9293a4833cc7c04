/* eval: the sentence-transformers v3 evaluators as a library: st-eval is option parsing around eval_run, and a
 * training loop can score its model in-process (docs/st-eval.md for the metrics and their definitions).
 *
 *   struct eval_opts o;
 *   eval_opts_init(&o);                         defaults: cosine (or the model's), batch 32, k lists of the library
 *   o.kind = EVAL_SIMILARITY; o.model = "run/model"; o.name = "sts-dev";
 *   struct eval_result r;
 *   eval_run(&o, reader, "dev.jsonl", &r);      examples from a record stream; a CSV row when o.output_dir
 *   double score = eval_result_primary(&o, &r); the score st-step keeps (NaN when undefined)
 *   eval_result_free(&r);
 *
 * Bad data, a missing model or an unwritable CSV end the process through die() with the documented codes. */
#ifndef ST_EVAL_H
#define ST_EVAL_H

#include <stddef.h>

#include "metrics.h"
#include "stream.h"

enum eval_kind { EVAL_SIMILARITY, EVAL_TRIPLET, EVAL_BINARY, EVAL_IR, EVAL_MINING, EVAL_LABEL_ACCURACY, EVAL_MSE,
		 EVAL_RERANKING, EVAL_TRANSLATION, EVAL_SEQUENTIAL };
#define EVAL_MAXSEQ 16
#define EVAL_MAXK 16

struct eval_opts {
	enum eval_kind kind;
	const char *model;        /* the model directory (NULL with embeddings) */
	const char *name;         /* prefix of the metric names and part of the CSV name ("" for none) */
	const char *output_dir;   /* append a row to OUTPUT_DIR/<evaluator>[_NAME]_results.csv; NULL: no CSV */
	const char *corpus;       /* ir: extra corpus documents */
	int embeddings;           /* read precomputed embeddings instead of texts */
	int batch_size, top_k;
	int nsims, sims[METRICS_NSIM];   /* similarity functions; none: the model's (cosine without a model) */
	long epoch, steps;        /* the CSV's first columns */
	double margin;            /* triplet */
	size_t max_pairs, corpus_chunk;   /* paraphrase mining */
	int mrr[EVAL_MAXK], nmrr, ndcg[EVAL_MAXK], nndcg, acc[EVAL_MAXK], nacc, pr[EVAL_MAXK], npr,
	    map[EVAL_MAXK], nmap;   /* ir: the k of each metric */
	const char *classifier;   /* label-accuracy: the softmax classifier (RUN/loss-softmax.safetensors) */
	const char *teacher;      /* mse: the model that encodes the source sentences */
	int at_k;                 /* reranking: the k of mrr@k and ndcg@k (default 10) */
	const char *evals[EVAL_MAXSEQ];   /* sequential: "KIND [OPTIONS] < FILE" per evaluator */
	int nevals, main_mean;    /* sequential: main score the mean of the primary scores instead of the last */
	const char *self;         /* sequential: the st-eval program that runs each evaluator */
};

/* The metrics in the library's order: names[k] (with the name prefix) = vals[k]; NaN is undefined. */
struct eval_result {
	char **names;
	double *vals;
	size_t n, cap;
};

void eval_opts_init(struct eval_opts *o);
/* "similarity", "triplet", "binary", "ir", "paraphrase-mining", "label-accuracy", "mse", "reranking",
 * "translation", "sequential" -> enum eval_kind; -1 for another name */
int eval_kind_parse(const char *name);
/* "cosine,dot,euclidean,manhattan" or "all" into o->sims; -1 for an unknown name or an empty list */
int eval_sims_parse(struct eval_opts *o, const char *list);
/* "1,3,5" into out[EVAL_MAXK]; dies with EX_USAGE naming OPT on a bad list; returns the count */
int eval_parse_klist(const char *opt, const char *s, int *out);

/* Reads every example from IN (SOURCE names it in messages), encodes, scores, writes the CSV row. */
void eval_run(struct eval_opts *o, st_reader *in, const char *source, struct eval_result *r);
/* The metrics as one JSON object, numbers as Python prints them, null for NaN, the primary metric last
 * (malloc'd, no newline). */
char *eval_result_json(const struct eval_opts *o, const struct eval_result *r);
double eval_result_primary(const struct eval_opts *o, const struct eval_result *r);
void eval_result_free(struct eval_result *r);

#endif
