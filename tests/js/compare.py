#!/usr/bin/env python3
"""compare.py TEXTS OURS THEIRS NAME: counts texts whose ids differ between two input_ids JSON Lines files;
prints the first few differences (as TAP comments) and exits 1 on any mismatch."""
import json, sys

texts = [json.loads(l)["texts"] for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
ours = [json.loads(l)["input_ids"] for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
theirs = [json.loads(l)["input_ids"] for l in open(sys.argv[3], encoding="utf-8") if l.strip()]
if not (len(texts) == len(ours) == len(theirs)):
    print(f"# {sys.argv[4]}: line counts differ: texts {len(texts)}, ours {len(ours)}, transformers.js {len(theirs)}")
    sys.exit(1)
bad = total = 0
for t, a, b in zip(texts, ours, theirs):
    for tt, x, y in zip(t, a, b):
        total += 1
        if x != y:
            bad += 1
            if bad <= 5:
                i = next((k for k in range(min(len(x), len(y))) if x[k] != y[k]), min(len(x), len(y)))
                print(f"# {sys.argv[4]} mismatch on {tt[:120]!r}\n#   at id {i}: ours {x[max(0,i-3):i+5]} transformers.js {y[max(0,i-3):i+5]}")
print(f"# {sys.argv[4]}: {total - bad} of {total} texts identical")
sys.exit(1 if bad or total == 0 else 0)
