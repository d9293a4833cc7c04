#!/usr/bin/python3
"""quant_search_ref.py: semantic search over quantized corpus embeddings in numpy, independent of st-search.

  quant_search_ref.py CORPUS.jsonl QUERIES.jsonl PRECISION HITS.jsonl [--multiplier M] [--top-k K]
                      [--score-function cosine|dot] [--calibration CAL.jsonl] [--float32-hits F.jsonl]
                      [--recall R] [--recall-tol T]

CORPUS, QUERIES, CAL: st-encode lines ({"embedding": [...]}). HITS: st-search's output for them with
--precision PRECISION. The reference does what sentence-transformers' quantize_embeddings and
semantic_search_faiss/usearch (rescore=True) do: rows L2-normalised for cosine; int8/uint8 levels
(x - min) / ((max - min) / 255) (- 128 for int8) in float32, truncated, with the ranges of CAL (else of the
corpus), out-of-range levels clipped (as st does; numpy's astype would wrap); binary/ubinary bits x > 0. The
float32 query is quantized the same way; the top_k * M rows with the best integer dot product (int8/uint8) or
the smallest Hamming distance (binary) are kept, ties to the smaller id, then rescored as float32 query . the
row's levels (int8/uint8) or its bits as 0/1 (binary), best first. float32: plain cosine / dot top k.

Prints "RC<TAB>description" lines (RC 0 = pass): st-search's hits equal the reference's (the same ids in the
same order for at least 95% of the queries, the others only swapped among scores equal within 1e-5; every
listed score within 1e-4 relative of the reference's score of that id); with --float32-hits, the reference's
recall@K of its quantized top K against F's top K, and --recall R (a figure computed elsewhere, e.g. by jq
from the hit files) equal to it within --recall-tol (default 5e-4). The last line, "# recall@K: X", is the
reference's figure.
"""
import json
import sys

import numpy as np


def rows(path):
    with open(path) as f:
        return np.array([json.loads(line)["embedding"] for line in f if line.strip()], dtype=np.float32)


def normalize(x):
    # 1 / max(||x||, 1e-12) in float32, multiplied (as st and torch.nn.functional.normalize compute it)
    inv = (1.0 / np.maximum(np.sqrt((x.astype(np.float64) ** 2).sum(1)), 1e-12)).astype(np.float32)
    return (x * inv[:, None]).astype(np.float32)


def quantize(x, precision, mins, maxs):
    if precision in ("int8", "uint8"):
        steps = ((maxs - mins) / np.float32(255)).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where(steps > 0, (x - mins) / steps, np.float32(0)).astype(np.float32)
        if precision == "int8":
            return np.trunc(np.clip(level - np.float32(128), -128, 127)).astype(np.int64)
        return np.trunc(np.clip(level, 0, 255)).astype(np.int64)
    return (x > 0).astype(np.int64)   # bits; binary and ubinary differ only in how the bytes are stored


def search(C, Q, precision, k, mult, sim, cal):
    if sim == "cosine":
        C, Q = normalize(C), normalize(Q)
        cal = normalize(cal) if cal is not None else None
    ids = np.arange(len(C))
    if precision == "float32":
        S = Q.astype(np.float64) @ C.astype(np.float64).T
        out = []
        for s in S:
            order = np.lexsort((ids, -s))[:k]
            out.append([(int(j), float(s[j])) for j in order])
        return out, lambda qi, j: float(S[qi, j])
    ref = cal if cal is not None else C
    mins, maxs = ref.min(0), ref.max(0)
    qc, qq = quantize(C, precision, mins, maxs), quantize(Q, precision, mins, maxs)
    m = min(k * mult, len(C))
    out = []
    for q, qv in zip(Q, qq):
        if precision in ("int8", "uint8"):
            cand = qc @ qv                              # integer dot product: larger is better
        else:
            cand = -(qc != qv).sum(1)                   # minus the Hamming distance
        top = np.lexsort((ids, -cand))[:m]
        res = qc[top].astype(np.float64) @ q.astype(np.float64)
        order = np.lexsort((top, -res))[:k]
        out.append([(int(top[j]), float(res[j])) for j in order])
    return out, lambda qi, j: float(qc[j].astype(np.float64) @ Q[qi].astype(np.float64))


def main():
    a = sys.argv[1:]
    if len(a) < 4:
        raise SystemExit(__doc__)
    corpus, queries, precision, hits_path = a[:4]
    o = {"multiplier": "2", "top-k": "10", "score-function": "cosine", "calibration": None,
         "float32-hits": None, "recall": None, "recall-tol": "5e-4"}
    for i in range(4, len(a), 2):
        o[a[i][2:]] = a[i + 1]
    k, mult = int(o["top-k"]), int(o["multiplier"])
    C, Q = rows(corpus), rows(queries)
    cal = rows(o["calibration"]) if o["calibration"] else None
    want, score_of = search(C, Q, precision, k, mult, o["score-function"], cal)
    with open(hits_path) as f:
        got = [json.loads(line) for line in f if line.strip()]
    # a query agrees when st-search lists numpy's ids in numpy's order, or (float rounding among near-equal
    # scores) when every position's score is numpy's score at that position and every listed id truly scores it
    same, near, worst = 0, 0, 0.0
    for qi, (g, w) in enumerate(zip(got, want)):
        gi = [h["corpus_id"] for h in g]
        for h in g:
            t = score_of(qi, h["corpus_id"])
            worst = max(worst, abs(h["score"] - t) / max(abs(t), 1e-6))
        if gi == [j for j, _ in w]:
            same += 1
        elif len(g) == len(w) and all(abs(h["score"] - s) <= 1e-5 * max(1.0, abs(s)) for h, (_, s) in zip(g, w)):
            near += 1
    n = len(want)
    print("%d\t%s: st-search's hits are numpy's for %d of %d queries, %d more up to near-equal scores (all needed, "
          "at least 95%% identical), every score within %.1e relative of numpy's"
          % (len(got) != n or same < 0.95 * n or same + near < n or worst > 1e-4, precision, same, n, near, worst))
    if o["float32-hits"]:
        with open(o["float32-hits"]) as f:
            base = [[h["corpus_id"] for h in json.loads(line)] for line in f if line.strip()]
        recall = float(np.mean([len(set(b) & {j for j, _ in w}) / len(b) for b, w in zip(base, want)]))
        if o["recall"] is not None:
            d = abs(float(o["recall"]) - recall)
            print("%d\t%s: recall@%d %s equals numpy's %.4f within %s" % (d > float(o["recall-tol"]), precision, k,
                                                                         o["recall"], recall, o["recall-tol"]))
        print("# recall@%d: %.4f" % (k, recall))


if __name__ == "__main__":
    main()
