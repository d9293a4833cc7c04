#!/bin/bash
# st-loss's collapse warning (docs/st-loss.md, "WARNINGS"): when the mean pairwise cosine between a batch's
# embedding rows, averaged over 20 consecutive batches (all of a shorter run), reaches 0.996, st-loss says so
# once on stderr. The batches are made here with NumPy; the expected per-batch values, the window that first
# reaches the threshold and its mean are computed by NumPy from the full cosine matrix (not by the |sum|^2
# identity st-loss uses). The real case, a TREC run that collapses and one that does not, is in
# tests/training_cases.t.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
$PY -c 'import numpy' 2> /dev/null || skip_all "needs NumPy in /usr/bin/python3"
cd "$TMP" || exit 1

# gen OUT SPREADS COLUMNS LABELS SEED: one batch per spread (B = 8 rows a column, D = 16): every row is a base
# vector of the batch plus Gaussian noise of that spread ("rand": independent Gaussian rows, no base); labels
# none | class (0,0,1,1,...: a valid PK batch) | score (uniform 0..1). Writes OUT.jsonl (the batches) and
# OUT.expect: each batch's mean cosine, then the first window of 20 (or all, when fewer) whose mean is >= 0.996
# as "warn FIRST LAST MEAN", or "none" with the highest window mean.
gen() {
	$PY - "$@" << 'PY'
import json, sys
import numpy as np
out, spreads, C, labels, seed = sys.argv[1], sys.argv[2].split(','), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
rng = np.random.default_rng(seed)
B, D, W, T = 8, 16, 20, 0.996
values = []
with open(out + '.jsonl', 'w') as f:
    for k, s in enumerate(spreads):
        if s == 'rand':
            E = rng.standard_normal((C, B, D))
        else:
            E = rng.standard_normal(D) + float(s) * rng.standard_normal((C, B, D))
        E = E.astype(np.float32)
        X = E.reshape(C * B, D).astype(np.float64)
        U = X / np.linalg.norm(X, axis=1, keepdims=True)
        S = U @ U.T
        values.append(S[np.triu_indices(C * B, 1)].mean())
        rec = {"kind": "batch", "step": 100 + k, "embeddings": E.tolist()}
        if labels == 'class':
            rec["labels"] = [i // 2 for i in range(B)]
        elif labels == 'score':
            rec["labels"] = rng.uniform(0, 1, B).round(3).tolist()
        f.write(json.dumps(rec) + '\n')
n = len(values)
w = min(W, n)
means = [np.mean(values[i - w:i]) for i in range(w, n + 1)]
with open(out + '.expect', 'w') as f:
    f.write(' '.join('%.6f' % v for v in values) + '\n')
    hit = [i for i, m in enumerate(means) if m >= T]
    if hit:
        i = hit[0]
        f.write('warn %d %d %.6f\n' % (i + 1, i + w, means[i]))
    else:
        f.write('none %.6f\n' % max(means))
PY
}
# warned ERR: "FIRST LAST MEAN STEP1 STEP2" from st-loss's warning, or "none"
warned() {
	sed -n 's/^st-loss: [a-z-]*: warning: the embeddings have collapsed: mean cosine between a batch.s texts \([0-9.]*\) over batches \([0-9]*\)-\([0-9]*\) (steps \([0-9]*\)-\([0-9]*\)).*/\2 \3 \1 \4 \5/p' "$1" |
		grep . || echo none
}
# near A B: |A - B| <= 0.0001 (st-loss prints 4 decimals)
near() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(d <= 0.0001 && d >= -0.0001) }'; }

rep() { local s=$1 n=$2 out=; for _ in $(seq "$n"); do out="$out,$s"; done; echo "${out#,}"; }

# 1. Collapsed (every row the batch's base vector, noise 0.001) and independent rows, for losses of 1, 2 and 3
# columns: one warning for the first, none for the second, exit 0, the batches all passed on.
for spec in "batch-hard-triplet:1:class" "mnrl:2:none" "cosent:2:score" "triplet:3:none"; do
	IFS=: read -r loss cols lab <<< "$spec"
	gen col "$(rep 0.001 40)" "$cols" "$lab" 1
	gen ind "$(rep rand 40)" "$cols" "$lab" 2
	read -r _ first last want < <(sed -n 2p col.expect)
	st-loss "$loss" < col.jsonl > col.out 2> col.err; rc=$?
	is "$rc $(st-json < col.out | jq -s length)" "0 40" "$loss, collapsed batches: exit 0, all 40 passed on"
	is "$(grep -c 'warning: the embeddings have collapsed' col.err)" 1 "... exactly one collapse warning"
	read -r f l got s1 s2 <<< "$(warned col.err)"
	is "$f-$l, steps $s1-$s2" "$first-$last, steps $((99 + first))-$((99 + last))" \
		"... naming the first window of 20 batches (NumPy: $first-$last) and their steps"
	near "$got" "$want"; ok $? "... with the window's mean cosine $got (NumPy: $want)"
	st-loss "$loss" < ind.jsonl > /dev/null 2> ind.err
	is "$(cat ind.err)" "" "$loss, independent rows (NumPy: highest window mean $(sed -n '2s/none //p' ind.expect)): no warning"
done

# 2. Near the threshold: noise s about a base vector of norm 4 (D = 16) gives a cosine near 1 / (1 + s^2):
# s = 0.055 just above 0.996, s = 0.07 just below; NumPy and st-loss must agree on which side each falls
gen above "$(rep 0.055 25)" 1 class 3
gen below "$(rep 0.07 25)" 1 class 4
read -r w1 _ _ m1 < <(sed -n 2p above.expect)
read -r w2 m2 < <(sed -n 2p below.expect)
is "$w1 $w2" "warn none" "NumPy: noise 0.055 reaches 0.996 ($m1), 0.07 does not ($m2)"
st-loss batch-hard-triplet < above.jsonl > /dev/null 2> above.err
read -r f l got _ <<< "$(warned above.err)"
near "$got" "$m1" && [ "$f-$l" = "1-20" ]; ok $? "... st-loss warns at 1-20 with $got"
st-loss batch-hard-triplet < below.jsonl > /dev/null 2> below.err
is "$(cat below.err)" "" "... and not for $m2"

# 3. A healthy start, then collapse: the warning names the first window whose mean reaches 0.999 (NumPy), which
# holds some healthy batches; each batch's value enters once
gen mixed "$(rep rand 30),$(rep 0.0005 30)" 2 none 5
read -r _ first last want < <(sed -n 2p mixed.expect)
st-loss mnrl < mixed.jsonl > /dev/null 2> mixed.err
read -r f l got _ <<< "$(warned mixed.err)"
is "$f-$l" "$first-$last" "healthy then collapsed: the window NumPy finds first ($first-$last, 30 healthy batches before)"
near "$got" "$want"; ok $? "... mean $got (NumPy: $want)"
is "$first-$last" "31-50" "... (by hand: one healthy batch in 20 takes the mean to about 0.95)"

# 4. A run shorter than the window is judged over all its batches
gen short "$(rep 0.001 5)" 1 class 6
read -r _ first last want < <(sed -n 2p short.expect)
st-loss batch-hard-triplet < short.jsonl > /dev/null 2> short.err
read -r f l got _ <<< "$(warned short.err)"
is "$f-$l" "1-5" "a run of 5 collapsed batches: warned over batches 1-5 at the end"
near "$got" "$want"; ok $? "... mean $got (NumPy: $want)"
gen shortok "$(rep 0.001 4),rand" 1 class 7
st-loss batch-hard-triplet < shortok.jsonl > /dev/null 2> shortok.err
is "$(cat shortok.err)" "" "4 collapsed batches and 1 of independent rows (NumPy mean $(sed -n '2s/none //p' shortok.expect)): no warning"

# 5. The warning is on stderr only: the records written are the batches read plus "loss" and "grad", nothing
# more (compared with NumPy against the input, embeddings as float32)
st-loss --json mnrl < mixed.jsonl 2> /dev/null > passed
$PY - mixed.jsonl passed << 'PY'
import json, sys
import numpy as np
read = [json.loads(l) for l in open(sys.argv[1])]
passed = [json.loads(l) for l in open(sys.argv[2])]
same = len(read) == len(passed) == 60
for r, p in zip(read, passed):
    same &= set(p) == set(r) | {"v", "loss", "grad"} and p["step"] == r["step"] and p["kind"] == r["kind"]
    same &= np.array_equal(np.float32(p["embeddings"]), np.float32(r["embeddings"]))
    same &= np.shape(p["grad"]) == np.shape(r["embeddings"])
sys.exit(0 if same else 1)
PY
ok $? "the records are the 60 batches read, with loss and grad added and nothing else"

# 6. Rows of norm 0 have no direction and are left out; a batch with fewer than 2 other rows has no value
printf '{"kind":"batch","embeddings":[[[0,0],[1,0]],[[0,0],[0,0]]],"labels":[0,1]}\n' > zero.jsonl
st-loss cosent < zero.jsonl > /dev/null 2> zero.err
is "$(grep -c collapsed zero.err)" 0 "a batch with one nonzero row: no value, no warning"
printf '{"kind":"batch","embeddings":[[[0,0],[1,0.001]],[[0,0],[2,0]]],"labels":[0,1]}\n' > zero2.jsonl
st-loss cosent < zero2.jsonl > /dev/null 2> zero2.err
is "$(grep -c collapsed zero2.err)" 1 "two nonzero rows of one direction among zero rows: warned"

grep -q 'the embeddings have collapsed' "$ROOT/docs/st-loss.md"; ok $? "docs/st-loss.md describes the warning"
done_testing
