#!/usr/bin/python3
"""Independent numpy/scipy computations of the evaluator metrics, semantic search and paraphrase mining, and
the checks that compare bin/st-eval, bin/st-search and bin/st-mine with them on random embeddings.

usage: metrics_ref.py CHECK [SEED]     CHECK: similarity, similarity-ties, triplet, binary, binary-ties, ir,
                                       mining, search, mine,
                                       label-accuracy, mse, reranking, translation, sequential
Prints 'ok' or what differs and exits 0 or 1."""
import json
import os
import subprocess
import sys

import numpy as np
from scipy import stats

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "bin")
TOL = 1e-5


def run(cmd, records=None, text=None):
    data = text if text is not None else "".join(json.dumps(r) + "\n" for r in records)
    p = subprocess.run([os.path.join(BIN, cmd[0])] + cmd[1:], input=data.encode(), capture_output=True)
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.decode()))
    return p.stdout.decode()


def sims(fn, a, b):
    """Row-wise similarity in float64: cosine, dot, negated euclidean / manhattan distance."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if fn == "cosine":
        na = np.maximum(np.linalg.norm(a, axis=1), 1e-12)
        nb = np.maximum(np.linalg.norm(b, axis=1), 1e-12)
        return (a * b).sum(1) / (na * nb)
    if fn == "dot":
        return (a * b).sum(1)
    if fn == "euclidean":
        return -np.linalg.norm(a - b, axis=1)
    return -np.abs(a - b).sum(1)


def best_cut(scores, labels):
    """Every cut after the first i+1 rows of the stable descending order, vectorised."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    n = len(s)
    pos_above = np.cumsum(y)[:-1]
    neg_below = (y == 0).sum() - np.cumsum(y == 0)[:-1]
    acc = (pos_above + neg_below) / n
    i = int(np.argmax(acc))   # first maximum, as the strict '>' sweep keeps
    acc_thr = (s[i] + s[i + 1]) / 2
    extracted = np.arange(1, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = pos_above / extracted
        rec = pos_above / y.sum()
        f1 = np.where(pos_above > 0, 2 * prec * rec / (prec + rec), 0)
    j = int(np.argmax(f1))
    return acc[i], acc_thr, f1[j], prec[j], rec[j], (s[j] + s[j + 1]) / 2


def average_precision(scores, labels):
    """sklearn's definition: sum over distinct thresholds t (descending) of (R(t) - R(prev)) * P(t)."""
    ap, prev = 0.0, 0.0
    for t in np.unique(scores)[::-1]:
        sel = scores >= t
        tp = labels[sel].sum()
        r, p = tp / labels.sum(), tp / sel.sum()
        ap += (r - prev) * p
        prev = r
    return ap


def mcc(scores, labels, thr):
    pred = scores >= thr
    tp = float((pred & (labels == 1)).sum()); tn = float((~pred & (labels == 0)).sum())
    fp = float((pred & (labels == 0)).sum()); fn = float((~pred & (labels == 1)).sum())
    den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return 0.0 if den == 0 else (tp * tn - fp * fn) / np.sqrt(den)


def compare(got, want):
    bad = []
    for k, v in want.items():
        if k not in got:
            bad.append("missing %s" % k)
        elif got[k] is None or abs(got[k] - v) > TOL * max(1, abs(v)):
            bad.append("%s: got %r, want %r" % (k, got[k], v))
    extra = set(got) - set(want)
    if extra:
        bad.append("unexpected keys %s" % sorted(extra))
    return bad


def check_similarity(rng, ties):
    n, d = 200, 16
    a = rng.standard_normal((n, d)).astype(np.float32)
    b = (a + rng.standard_normal((n, d)) * 1.5).astype(np.float32)
    if ties:   # gold scores 0..5 in steps of 0.5 (STS-like), many ties; some identical embeddings
        gold = np.round(rng.uniform(0, 5, n) * 2) / 2
        b[:20] = b[20:40]
        a[:20] = a[20:40]
    else:
        gold = rng.uniform(0, 5, n)
    recs = [{"embeddings": [a[i].tolist(), b[i].tolist()], "label": float(gold[i])} for i in range(n)]
    got = json.loads(run(["st-eval", "similarity", "--embeddings", "--similarity-fn-names", "all"], recs))
    a32, b32 = np.array([r["embeddings"][0] for r in recs], np.float32), np.array([r["embeddings"][1] for r in recs], np.float32)
    want = {}
    for fn in ["cosine", "euclidean", "manhattan", "dot"]:
        s = sims(fn, a32, b32)
        want["pearson_" + fn] = stats.pearsonr(gold, s)[0]
        want["spearman_" + fn] = stats.spearmanr(gold, s)[0]
    want["pearson_max"] = max(want["pearson_" + f] for f in ["cosine", "euclidean", "manhattan", "dot"])
    want["spearman_max"] = max(want["spearman_" + f] for f in ["cosine", "euclidean", "manhattan", "dot"])
    bad = compare(got, want)
    if list(got)[-1] != "spearman_max":
        bad.append("primary metric spearman_max is not last: %s" % list(got)[-1])
    return bad


def check_triplet(rng):
    n, d = 300, 8
    x = rng.standard_normal((3, n, d)).astype(np.float32)
    x[1] = x[0] + 0.9 * x[1]
    recs = [{"embeddings": x[:, i].tolist()} for i in range(n)]
    got = json.loads(run(["st-eval", "triplet", "--embeddings", "--similarity-fn-names", "cosine,dot,manhattan",
                          "--name", "t"], recs))
    want = {}
    for fn in ["cosine", "dot", "manhattan"]:
        want["t_%s_accuracy" % fn] = float(np.mean(sims(fn, x[0], x[1]) > sims(fn, x[0], x[2])))
    want["t_max_accuracy"] = max(want.values())
    bad = compare(got, want)
    got = json.loads(run(["st-eval", "triplet", "--embeddings", "--margin", "0.3"], recs))
    bad += compare(got, {"cosine_accuracy": float(np.mean(sims("cosine", x[0], x[1]) > sims("cosine", x[0], x[2]) + 0.3))})
    return bad


def check_binary(rng, ties):
    n, d = 400, 8
    a = rng.standard_normal((n, d)).astype(np.float32)
    labels = (rng.uniform(size=n) < 0.4).astype(int)
    b = (a * labels[:, None] * 0.8 + rng.standard_normal((n, d))).astype(np.float32)
    if ties:   # coarse embeddings: many equal scores
        a = np.round(a).astype(np.float32)
        b = np.round(b).astype(np.float32)
    recs = [{"embeddings": [a[i].tolist(), b[i].tolist()], "label": int(labels[i])} for i in range(n)]
    got = json.loads(run(["st-eval", "binary", "--embeddings", "--similarity-fn-names", "cosine,euclidean"], recs))
    want = {}
    for fn in ["cosine", "euclidean"]:
        s = sims(fn, a, b)
        acc, athr, f1, p, r, fthr = best_cut(s, labels)
        want.update({fn + "_accuracy": acc, fn + "_accuracy_threshold": athr, fn + "_f1": f1,
                     fn + "_f1_threshold": fthr, fn + "_precision": p, fn + "_recall": r,
                     fn + "_ap": average_precision(s, labels), fn + "_mcc": mcc(s, labels, fthr)})
    for m in ["accuracy", "accuracy_threshold", "f1", "f1_threshold", "precision", "recall", "ap", "mcc"]:
        want["max_" + m] = max(want["cosine_" + m], want["euclidean_" + m])
    if ties:   # tied rows sort in input order, which this independent sweep reproduces only up to
        # float32 rounding of equal-looking scores; thresholds are still checked on the untied case
        for k in list(want):
            if "threshold" in k:
                del want[k]
                got.pop(k, None)
    return compare(got, want)


def ir_metrics(S, rel, ks):
    """Brute force: full score matrix, stable descending order per query."""
    out = {}
    nq = S.shape[0]
    order = np.argsort(-S, axis=1, kind="stable")
    acc = {k: 0.0 for k in ks["acc"]}; prec = {k: 0.0 for k in ks["pr"]}; recl = {k: 0.0 for k in ks["pr"]}
    mrr = {k: 0.0 for k in ks["mrr"]}; ndcg = {k: 0.0 for k in ks["ndcg"]}; mp = {k: 0.0 for k in ks["map"]}
    for q in range(nq):
        r = np.array([c in rel[q] for c in order[q]], float)
        for k in ks["acc"]:
            acc[k] += float(r[:k].any())
        for k in ks["pr"]:
            prec[k] += r[:k].sum() / k
            recl[k] += r[:k].sum() / len(rel[q])
        for k in ks["mrr"]:
            hit = np.nonzero(r[:k])[0]
            mrr[k] += 1 / (hit[0] + 1) if len(hit) else 0
        for k in ks["ndcg"]:
            disc = 1 / np.log2(np.arange(2, k + 2))
            ndcg[k] += (r[:k] * disc[:len(r[:k])]).sum() / disc[:min(k, len(rel[q]))].sum()
        for k in ks["map"]:
            hits = np.nonzero(r[:k])[0]
            mp[k] += sum((i + 1) / (h + 1) for i, h in enumerate(hits)) / min(k, len(rel[q]))
    for k in ks["acc"]:
        out["cosine_accuracy@%d" % k] = acc[k] / nq
    for k in ks["pr"]:
        out["cosine_precision@%d" % k] = prec[k] / nq
        out["cosine_recall@%d" % k] = recl[k] / nq
    for k in ks["ndcg"]:
        out["cosine_ndcg@%d" % k] = ndcg[k] / nq
    for k in ks["mrr"]:
        out["cosine_mrr@%d" % k] = mrr[k] / nq
    for k in ks["map"]:
        out["cosine_map@%d" % k] = mp[k] / nq
    return out


def normalize(x):
    x = x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def check_ir(rng):
    nq, nc, d = 60, 500, 12
    Q = rng.standard_normal((nq, d)).astype(np.float32)
    C = rng.standard_normal((nc, d)).astype(np.float32)
    rel = []
    recs = []
    for q in range(nq):
        docs = set(rng.choice(nc, size=rng.integers(1, 4), replace=False).tolist())
        for c in docs:   # relevant documents lean towards their query
            C[c] += 0.7 * Q[q]
        rel.append(docs)
    for q in range(nq):
        for c in sorted(rel[q]):
            recs.append({"texts": ["q%d" % q, "c%d" % c], "embeddings": [Q[q].tolist(), C[c].tolist()]})
    # one query without relevant documents: dropped
    recs.append({"texts": ["qx", "c0"], "embeddings": [Q[0].tolist(), C[0].tolist()], "label": 0})
    corpus_path = os.path.join(os.environ.get("TMP", "/tmp"), "ir_corpus.%d.jsonl" % os.getpid())
    with open(corpus_path, "w") as f:
        for c in range(nc):
            f.write(json.dumps({"text": "c%d" % c, "embeddings": C[c].tolist()}) + "\n")
    try:
        got = json.loads(run(["st-eval", "ir", "--embeddings", "--corpus", corpus_path, "--map-at-k", "5,100",
                              "--ndcg-at-k", "3,10"], recs))
    finally:
        os.unlink(corpus_path)
    S = normalize(Q) @ normalize(C).T
    ks = {"acc": [1, 3, 5, 10], "pr": [1, 3, 5, 10], "mrr": [10], "ndcg": [3, 10], "map": [5, 100]}
    bad = compare(got, ir_metrics(S, rel, ks))
    if list(got)[-1] != "cosine_ndcg@10":
        bad.append("primary metric cosine_ndcg@10 is not last")
    return bad


def mine_pairs(E, top_k, chunk=None):
    """Library semantics without a max_pairs limit: for each row its top_k+1 (self included) per corpus
    chunk; unordered pairs, best first."""
    S = normalize(E) @ normalize(E).T
    n = len(E)
    chunk = chunk or n
    cand = {}
    for c0 in range(0, n, chunk):
        sub = S[:, c0:c0 + chunk]
        k = min(top_k + 1, sub.shape[1])
        top = np.argsort(-sub, axis=1, kind="stable")[:, :k]
        for i in range(n):
            for j in top[i] + c0:
                if i != j:
                    cand[(min(i, j), max(i, j))] = S[i, j]
    return sorted(((s, i, j) for (i, j), s in cand.items()), key=lambda t: -t[0])


def check_mining(rng):
    n, d = 150, 6
    E = rng.standard_normal((n, d)).astype(np.float32)
    dups = set()
    for _ in range(40):
        i, j = rng.choice(n, 2, replace=False)
        E[j] = E[i] + 0.3 * rng.standard_normal(d)
        dups.add((min(i, j), max(i, j)))
    recs = [{"texts": ["s%d" % i, "s%d" % j], "embeddings": [E[i].tolist(), E[j].tolist()]} for i, j in sorted(dups)]
    recs += [{"texts": ["s%d" % i], "embeddings": [E[i].tolist()]} for i in range(n)]
    got = json.loads(run(["st-eval", "paraphrase-mining", "--embeddings", "--top-k", "10"], recs))
    # sentence ids are the order of first appearance in the stream
    order = []
    for r in recs:
        for t in r["texts"]:
            if t not in order:
                order.append(t)
    idx = [int(t[1:]) for t in order]
    pairs = mine_pairs(E[idx], 10)
    gold = {(min(order.index("s%d" % i), order.index("s%d" % j)), max(order.index("s%d" % i), order.index("s%d" % j)))
            for i, j in dups}
    nc = ap = 0
    best = (0, 0, 0, 0)
    for p, (s, i, j) in enumerate(pairs):
        if (i, j) in gold:
            nc += 1
            prec, rec = nc / (p + 1), nc / len(gold)
            f1 = 2 * prec * rec / (prec + rec)
            ap += prec
            if f1 > best[0]:
                best = (f1, prec, rec, (s + pairs[min(p + 1, len(pairs) - 1)][0]) / 2)
    want = {"average_precision": ap / len(gold), "f1": best[0], "precision": best[1], "recall": best[2],
            "threshold": best[3]}
    return compare(got, want)


def check_search(rng):
    nq, nc, d, k = 37, 1000, 24, 7
    Q = rng.standard_normal((nq, d)).astype(np.float32)
    C = rng.standard_normal((nc, d)).astype(np.float32)
    path = os.path.join(os.environ.get("TMP", "/tmp"), "corpus.%d.jsonl" % os.getpid())
    with open(path, "w") as f:
        for c in range(nc):
            f.write(json.dumps({"embedding": C[c].tolist()}) + "\n")
    bad = []
    try:
        for fn in ["cosine", "dot"]:
            out = run(["st-search", "--embeddings", "--corpus", path, "--top-k", str(k), "--score-function", fn],
                      text="".join(json.dumps({"embedding": q.tolist()}) + "\n" for q in Q))
            lines = [json.loads(l) for l in out.splitlines()]
            S = normalize(Q) @ normalize(C).T if fn == "cosine" else Q.astype(np.float64) @ C.T.astype(np.float64)
            if len(lines) != nq:
                return ["%d result lines for %d queries" % (len(lines), nq)]
            for q in range(nq):
                want = np.argsort(-S[q], kind="stable")[:k]
                ids = [h["corpus_id"] for h in lines[q]]
                if ids != want.tolist():
                    bad.append("%s query %d: ids %s, want %s" % (fn, q, ids, want.tolist()))
                for h in lines[q]:
                    if abs(h["score"] - S[q, h["corpus_id"]]) > 1e-4 * max(1, abs(S[q, h["corpus_id"]])):
                        bad.append("%s query %d: score %r, want %r" % (fn, q, h["score"], S[q, h["corpus_id"]]))
    finally:
        os.unlink(path)
    return bad[:5]


def check_mine(rng):
    n, d = 700, 10
    E = rng.standard_normal((n, d)).astype(np.float32)
    E[100:150] = E[:50] + 0.2 * rng.standard_normal((50, d))
    text = "".join(json.dumps({"embedding": e.tolist()}) + "\n" for e in E)
    bad = []
    for top_k, chunk in [(5, None), (3, 256)]:
        args = ["st-mine", "--embeddings", "--top-k", str(top_k), "--max-pairs", "1000000"]
        if chunk:
            args += ["--corpus-chunk-size", str(chunk)]
        got = [json.loads(l) for l in run(args, text=text).splitlines()]
        want = mine_pairs(E, top_k, chunk)
        if len(got) != len(want):
            bad.append("top_k %d: %d pairs, want %d" % (top_k, len(got), len(want)))
            continue
        # the same pairs with the same scores; the order is checked by score (near-equal scores may swap)
        wd = {(i, j): s for s, i, j in want}
        for g in got:
            s = wd.get((g["i"], g["j"]))
            if s is None or abs(g["score"] - s) > 1e-5:
                bad.append("top_k %d: pair %r, want score %r" % (top_k, g, s))
                break
        if any(got[p]["score"] < got[p + 1]["score"] for p in range(len(got) - 1)):
            bad.append("top_k %d: pairs are not sorted by score" % top_k)
    # max_pairs: the queue keeps max_pairs - 1 candidates, the best ones
    got = [json.loads(l) for l in run(["st-mine", "--embeddings", "--top-k", "5", "--max-pairs", "101"], text=text).splitlines()]
    S = normalize(E) @ normalize(E).T
    allc = []
    top = np.argsort(-S, axis=1, kind="stable")[:, :6]
    for i in range(n):
        for j in top[i]:
            if i != j:
                allc.append((S[i, j], i, j))
    allc.sort(key=lambda t: -t[0])
    kept = allc[:100]
    want = []
    seen = set()
    for s, i, j in sorted(kept, key=lambda t: t[0]):
        key = (min(i, j), max(i, j))
        if key not in seen:
            seen.add(key)
            want.append((s, key[0], key[1]))
    want.sort(key=lambda t: -t[0])
    if sorted((g["i"], g["j"]) for g in got) != sorted((i, j) for s, i, j in want):
        bad.append("max_pairs 101: %d pairs %s..., want %d %s..." % (len(got), [(g["i"], g["j"]) for g in got][:4],
                                                                      len(want), [(i, j) for s, i, j in want][:4]))
    if any(got[p]["score"] < got[p + 1]["score"] for p in range(len(got) - 1)):
        bad.append("pairs are not sorted by score")
    return bad


def write_safetensors(path, tensors):
    """A safetensors file of float32 tensors: 8-byte header length, JSON header, raw little-endian data."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def check_label_accuracy(rng):
    """SoftmaxLoss's classifier as torch's nn.Linear on cat(u, v, |u-v| [, u*v]), argmax, share correct."""
    import torch
    n, d, nl = 120, 6, 3
    u = rng.standard_normal((n, d)).astype(np.float32)
    v = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, nl, n)
    recs = [{"embeddings": [u[i].tolist(), v[i].tolist()], "label": int(y[i])} for i in range(n)]
    bad = []
    path = os.path.join(os.environ.get("TMP", "/tmp"), "cls.%d.safetensors" % os.getpid())
    try:
        for parts in (3, 4):
            lin = torch.nn.Linear(parts * d, nl)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(rng.standard_normal((nl, parts * d)).astype(np.float32)))
                lin.bias.copy_(torch.from_numpy(rng.standard_normal(nl).astype(np.float32)))
            write_safetensors(path, {"classifier.weight": lin.weight.detach().numpy(),
                                     "classifier.bias": lin.bias.detach().numpy()})
            U, V = torch.from_numpy(u).double(), torch.from_numpy(v).double()
            feats = [U, V, (U - V).abs()] + ([U * V] if parts == 4 else [])
            logits = torch.nn.functional.linear(torch.cat(feats, 1), lin.weight.double(), lin.bias.double())
            want = float((logits.argmax(1).numpy() == y).mean())
            got = json.loads(run(["st-eval", "label-accuracy", "--embeddings", "--classifier", path, "--name", "nli"], recs))
            bad += compare(got, {"nli_accuracy": want})
    finally:
        os.unlink(path)
    return bad


def check_mse(rng):
    n, d = 50, 10
    t = rng.standard_normal((n, d)).astype(np.float32)
    s = (t + 0.3 * rng.standard_normal((n, d))).astype(np.float32)
    recs = [{"embeddings": [t[i].tolist(), s[i].tolist()]} for i in range(n)]
    got = json.loads(run(["st-eval", "mse", "--embeddings"], recs))
    return compare(got, {"negative_mse": -float(((t.astype(np.float64) - s) ** 2).mean()) * 100})


def ndcg_ties(y_true, y_score, k):
    """sklearn.metrics.ndcg_score for one row: DCG with tied scores averaged, over the ideal DCG."""
    discount = 1 / np.log2(np.arange(len(y_true)) + 2)
    discount[k:] = 0
    cum = np.cumsum(discount)
    _, inv, counts = np.unique(-y_score, return_inverse=True, return_counts=True)
    ranked = np.zeros(len(counts))
    np.add.at(ranked, inv, y_true)
    ranked /= counts
    groups = np.cumsum(counts) - 1
    sums = np.empty(len(counts))
    sums[0] = cum[groups[0]]
    sums[1:] = np.diff(cum[groups])
    dcg = (ranked * sums).sum()
    ideal = (np.sort(y_true)[::-1] * discount).sum()
    return dcg / ideal if ideal > 0 else 0.0


def check_reranking(rng):
    """RerankingEvaluator: MAP (sklearn's AP per sample), MRR@k, NDCG@k (sklearn's ndcg_score) of cosine scores."""
    nq, d, at_k = 40, 8, 5
    recs, want_ap, want_mrr, want_ndcg = [], [], [], []
    for q in range(nq):
        query = rng.standard_normal(d).astype(np.float32)
        npos, nneg = int(rng.integers(1, 4)), int(rng.integers(1, 12))
        pos = (rng.standard_normal((npos, d)) + 0.5 * query).astype(np.float32)
        neg = rng.standard_normal((nneg, d)).astype(np.float32)
        if q % 5 == 0:   # a tie: a negative equal to a positive
            neg[0] = pos[0]
        recs.append({"query": query.tolist(), "positive": pos.tolist(), "negative": neg.tolist()})
        docs = np.concatenate([pos, neg])
        rel = np.array([1] * npos + [0] * nneg)
        s = sims("cosine", np.repeat(query[None], len(docs), 0), docs)
        want_ap.append(average_precision(s, rel))
        order = np.argsort(-s, kind="stable")[:at_k]
        hits = np.nonzero(rel[order])[0]
        want_mrr.append(1 / (hits[0] + 1) if len(hits) else 0.0)
        want_ndcg.append(ndcg_ties(rel, s, at_k))
    # samples without negatives (or positives) are dropped, as the library does
    recs.append({"query": [1.0] * d, "positive": [[1.0] * d], "negative": []})
    got = json.loads(run(["st-eval", "reranking", "--embeddings", "--at-k", str(at_k)], recs))
    want = {"map": np.mean(want_ap), "mrr@5": np.mean(want_mrr), "ndcg@5": np.mean(want_ndcg)}
    bad = compare(got, want)
    if list(got)[-1] != "ndcg@5":
        bad.append("primary metric ndcg@5 is not last")
    return bad


def check_translation(rng):
    n, d = 80, 6
    src = rng.standard_normal((n, d)).astype(np.float32)
    trg = (src + 0.8 * rng.standard_normal((n, d))).astype(np.float32)
    recs = [{"embeddings": [src[i].tolist(), trg[i].tolist()]} for i in range(n)]
    got = json.loads(run(["st-eval", "translation", "--embeddings", "--name", "en-de"], recs))
    S = normalize(src) @ normalize(trg).T
    a = float((S.argmax(1) == np.arange(n)).mean())
    b = float((S.T.argmax(1) == np.arange(n)).mean())
    return compare(got, {"en-de_src2trg_accuracy": a, "en-de_trg2src_accuracy": b, "en-de_mean_accuracy": (a + b) / 2})


def check_sequential(rng):
    """Every evaluator's metrics merged in order, then sequential_score: the last primary score or the mean."""
    tmp = os.environ.get("TMP", "/tmp")
    n, d = 40, 5
    x = rng.standard_normal((3, n, d)).astype(np.float32)
    tri = os.path.join(tmp, "seq_tri.%d.jsonl" % os.getpid())
    sim = os.path.join(tmp, "seq_sim.%d.jsonl" % os.getpid())
    gold = rng.uniform(0, 1, n)
    with open(tri, "w") as f:
        for i in range(n):
            f.write(json.dumps({"embeddings": x[:, i].tolist()}) + "\n")
    with open(sim, "w") as f:
        for i in range(n):
            f.write(json.dumps({"embeddings": x[:2, i].tolist(), "label": gold[i]}) + "\n")
    try:
        bad = []
        acc = float(np.mean(sims("cosine", x[0], x[1]) > sims("cosine", x[0], x[2])))
        sp = stats.spearmanr(gold, sims("cosine", x[0], x[1]))[0]
        pe = stats.pearsonr(gold, sims("cosine", x[0], x[1]))[0]
        for mode, main in (("last", acc), ("mean", (sp + acc) / 2)):
            got = json.loads(run(["st-eval", "sequential", "--main-score", mode,
                                  "--eval", "similarity --embeddings --name sts < " + sim,
                                  "--eval", "triplet --embeddings <" + tri], text=""))
            want = {"sts_pearson_cosine": pe, "sts_spearman_cosine": sp, "cosine_accuracy": acc,
                    "sequential_score": main}
            bad += compare(got, want)
            if list(got) != list(want):
                bad.append("keys out of order: %s" % list(got))
    finally:
        os.unlink(tri)
        os.unlink(sim)
    return bad


def main():
    check = sys.argv[1]
    rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 7)
    fn = {"similarity": lambda: check_similarity(rng, False), "similarity-ties": lambda: check_similarity(rng, True),
          "triplet": lambda: check_triplet(rng), "binary": lambda: check_binary(rng, False),
          "binary-ties": lambda: check_binary(rng, True), "ir": lambda: check_ir(rng),
          "mining": lambda: check_mining(rng), "search": lambda: check_search(rng), "mine": lambda: check_mine(rng),
          "label-accuracy": lambda: check_label_accuracy(rng), "mse": lambda: check_mse(rng),
          "reranking": lambda: check_reranking(rng), "translation": lambda: check_translation(rng),
          "sequential": lambda: check_sequential(rng)}[check]
    bad = fn()
    if bad:
        print("\n".join(bad[:10]))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
