#!/usr/bin/python3
"""mining_ref.py: an independent numpy version of sentence-transformers' util.mine_hard_negatives and
util.community_detection rules, for tests/hard_negatives.t. Written from the formulas (docs/st-mine.md), not
from st's code. Embeddings come from st-encode's JSON Lines ({"embedding": [...]}).

  mining_ref.py texts PAIRS [CORPUS] QOUT COUT   the unique queries and the de-duplicated corpus, a line each
  mining_ref.py hn PAIRS QTXT QEMB CTXT CEMB [options]            the expected examples (JSON Lines)
  mining_ref.py check-random OUT PAIRS QTXT QEMB CTXT CEMB [options]   random sampling obeys the rules
  mining_ref.py communities EMB THRESHOLD MIN_SIZE                communities as JSON arrays of ids
"""
import json
import sys

import numpy as np


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip("\n")]


def read_pairs(path):
    return [tuple(json.loads(l)["texts"][:2]) for l in read_lines(path)]


def read_emb(path):
    e = np.array([json.loads(l)["embedding"] for l in read_lines(path)], dtype=np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def unique(seq):
    return list(dict.fromkeys(seq))


def parse_opts(args):
    o = {"range_min": 0, "range_max": None, "margin": None, "relative_margin": None, "max_score": None,
         "min_score": None, "num_negatives": 3, "format": "triplet"}
    for a in args:
        k, v = a.split("=")
        o[k] = v if k == "format" else (int(v) if k in ("range_min", "range_max", "num_negatives") else float(v))
    return o


def candidates(pairs, qtxt, qemb, ctxt, cemb, o):
    """For every unique query: its allowed negatives (corpus ids, best first) after every rule, range_min and
    range_max applied; and the positives grouped by query in input order."""
    qidx = {t: i for i, t in enumerate(qtxt)}
    cidx = {t: i for i, t in enumerate(ctxt)}
    pos = [[] for _ in qtxt]
    for q, p in pairs:
        pos[qidx[q]].append(cidx[p])
    max_pos = max(len(p) for p in pos)
    filt = any(o[k] is not None for k in ("margin", "relative_margin", "max_score", "min_score"))
    range_max = o["range_max"]
    if range_max is None:
        range_max = o["range_min"] + o["num_negatives"] * (10 if filt else 1) + max_pos
    k = min(range_max + max_pos, len(ctxt))
    range_max = min(range_max, k)
    S = qemb @ cemb.T
    allowed = []
    for qi in range(len(qtxt)):
        order = sorted(range(len(ctxt)), key=lambda j: (-S[qi, j], j))[:k]
        pmin = min(S[qi, p] for p in pos[qi])
        keep = []
        for j in order:
            s = S[qi, j]
            if j in pos[qi]:
                continue
            if o["margin"] is not None and s + o["margin"] > pmin:
                continue
            if o["relative_margin"] is not None and s > pmin * (1 - o["relative_margin"]):
                continue
            if o["max_score"] is not None and s > o["max_score"]:
                continue
            if o["min_score"] is not None and s < o["min_score"]:
                continue
            keep.append(j)
        allowed.append(keep[o["range_min"]:range_max])
    return pos, allowed


def load(args):
    pairs = read_pairs(args[0])
    qtxt, qemb, ctxt, cemb = read_lines(args[1]), read_emb(args[2]), read_lines(args[3]), read_emb(args[4])
    return pairs, qtxt, qemb, ctxt, cemb, parse_opts(args[5:])


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "texts":
        pairs = read_pairs(args[0])
        extra = read_lines(args[1]) if len(args) == 4 else []
        with open(args[-2], "w", encoding="utf-8") as f:
            f.writelines(q + "\n" for q in unique(q for q, _ in pairs))
        with open(args[-1], "w", encoding="utf-8") as f:
            f.writelines(t + "\n" for t in unique(extra + [p for _, p in pairs]))
    elif cmd == "hn":
        pairs, qtxt, qemb, ctxt, cemb, o = load(args)
        pos, allowed = candidates(pairs, qtxt, qemb, ctxt, cemb, o)
        n = o["num_negatives"]
        for qi, q in enumerate(qtxt):
            negs = [ctxt[j] for j in allowed[qi][:n]]
            for p in pos[qi]:
                if o["format"] == "n-tuple":
                    if len(negs) == n:
                        print(json.dumps({"texts": [q, ctxt[p]] + negs}, ensure_ascii=False))
                else:
                    for neg in negs:
                        print(json.dumps({"texts": [q, ctxt[p], neg]}, ensure_ascii=False))
    elif cmd == "check-random":
        out = [json.loads(l)["texts"] for l in read_lines(args[0])]
        pairs, qtxt, qemb, ctxt, cemb, o = load(args[1:])
        pos, allowed = candidates(pairs, qtxt, qemb, ctxt, cemb, o)
        n = o["num_negatives"]
        qidx = {t: i for i, t in enumerate(qtxt)}
        cidx = {t: i for i, t in enumerate(ctxt)}
        got = {}
        for row in out:
            key = (row[0], row[1])
            got.setdefault(key, []).extend(row[2:])
        bad = []
        for q, p in pairs:
            negs = got.get((q, p), [])
            want = min(n, len(allowed[qidx[q]]))
            ids = [cidx.get(t, -1) for t in negs]
            rank = {j: r for r, j in enumerate(allowed[qidx[q]])}
            if len(negs) != want:
                bad.append(f"{q!r}: {len(negs)} negatives, want {want}")
            elif any(j not in rank for j in ids):
                bad.append(f"{q!r}: a negative outside the allowed candidates")
            elif len(set(ids)) != len(ids) or [rank[j] for j in ids] != sorted(rank[j] for j in ids):
                bad.append(f"{q!r}: negatives repeated or not best first")
        print("\n".join(bad) if bad else "ok")
    elif cmd == "communities":
        E = read_emb(args[0]).astype(np.float32)
        threshold, min_size = float(args[1]), int(args[2])
        n = len(E)
        min_size = min(min_size, n)
        S = E @ E.T
        found = []
        for i in range(n):
            row = S[i]
            if np.sort(row)[::-1][min_size - 1] >= threshold:
                members = [j for j in sorted(range(n), key=lambda j: (-row[j], j)) if row[j] >= threshold]
                found.append(members)
        found.sort(key=len, reverse=True)
        taken, kept = set(), []
        for c in found:
            rest = [j for j in c if j not in taken]
            if len(rest) >= min_size:
                kept.append(rest)
                taken.update(rest)
        kept.sort(key=len, reverse=True)
        for c in kept:
            print(json.dumps(c))
    else:
        sys.exit(f"mining_ref.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
