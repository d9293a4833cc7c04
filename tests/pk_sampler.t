#!/bin/bash
# st-batch --sampler group-by-label (P labels x K examples, labels taking turns) against counts made with jq
# from the batches' own labels, and st-loss's warning about batch-*-triplet batches without a valid triplet.
. "$(dirname "$0")/lib.sh"

# labels 0, 1, 2 with 5, 4 and 3 examples; token ids carry the example number
for i in $(seq 0 11); do
	if [ "$i" -lt 5 ]; then l=0; elif [ "$i" -lt 9 ]; then l=1; else l=2; fi
	printf '{"texts":["q%d"],"input_ids":[[101,%d,102]],"label":%d}\n' "$i" "$i" "$l"
done > "$TMP/ex.jsonl"

# per batch: the number of distinct labels and the smallest count of one label (jq, from the batch records)
shape() { jq -c '[.labels | (unique | length), (group_by(.) | map(length) | min)]' "$1" | sort -u | tr '\n' ' '; }

# 3 labels and batches of 4 is where a plain round-robin of pairs can put two runs of one label side by side
bad=0
for seed in $(seq 1 30); do
	st-batch --size 4 --sampler group-by-label --seed "$seed" --epochs 2 --json < "$TMP/ex.jsonl" > "$TMP/g" || bad=1
	[ "$(shape "$TMP/g")" = "[2,2] " ] || { bad=1; echo "# seed $seed: $(shape "$TMP/g")"; }
done
is "$bad" "0" "size 4, K 2, 30 seeds: every batch holds 2 labels with 2 examples each"

st-batch --size 4 --sampler group-by-label --json < "$TMP/ex.jsonl" > "$TMP/g"
is "$(jq -c '.example_ids[]' "$TMP/g" | sort -n | uniq -d | wc -l | tr -d ' ')" "0" "no example twice in an epoch"
# label 0 keeps 4 (an even count), 1 keeps 4, 2 keeps 2: 10 in turns, the last 2 too few for a batch
is "$(jq -c '.example_ids | length' "$TMP/g" | tr '\n' ' ')" "4 4 " "two batches of 4; the tail of one label is dropped"

st-batch --size 6 --k 3 --sampler group-by-label --json < "$TMP/ex.jsonl" > "$TMP/g3"
is "$(jq -c '.labels | group_by(.) | map(length)' "$TMP/g3" | sort -u | tr '\n' ' ')" "[3,3] " "--k 3: batches of 2 labels x 3"
a=$(st-batch --size 4 --sampler group-by-label --seed 7 --json < "$TMP/ex.jsonl" | md5sum)
b=$(st-batch --size 4 --sampler group-by-label --seed 7 --json < "$TMP/ex.jsonl" | md5sum)
is "$a" "$b" "the same seed gives the same batches"

st-batch --size 5 --sampler group-by-label < "$TMP/ex.jsonl" > /dev/null 2>&1; is "$?" "64" "a size that is not a multiple of K is a usage error"
st-batch --size 2 --sampler group-by-label < "$TMP/ex.jsonl" > /dev/null 2>&1; is "$?" "64" "a size under 2K is a usage error"
st-batch --size 4 --k 1 --sampler group-by-label < "$TMP/ex.jsonl" > /dev/null 2>&1; is "$?" "64" "--k 1 is a usage error"
jq -c '.label = 0' "$TMP/ex.jsonl" | st-batch --size 4 --sampler group-by-label > /dev/null 2> "$TMP/err"
is "$?" "65" "a single label is bad data: $(cat "$TMP/err")"
st-batch --size 4 --sampler label-runs --json < "$TMP/ex.jsonl" > "$TMP/runs"
is "$(jq -c '.labels | unique | length' "$TMP/runs" | sort -u | tr '\n' ' ')" "1 " "label-runs (the old sampler): labels of 4, 4 and 2 make batches of a single label"

# st-loss: hand-made batches with embeddings, labels [0,0,1,1] (valid) and [3,3,3,3] (one label)
batch() { printf '{"kind":"batch","step":%d,"labels":[%s],"embeddings":[[[0.5,0.1],[0.4,0.3],[0.1,0.9],[0.2,0.7]]]}\n' "$1" "$2"; }
{ batch 0 0,0,1,1; batch 1 3,3,3,3; batch 2 0,1,2,3; } > "$TMP/mixed.jsonl"
st-loss --json batch-hard-triplet < "$TMP/mixed.jsonl" > "$TMP/out" 2> "$TMP/err"; ok $? "st-loss runs"
is "$(grep -c 'no valid triplet' "$TMP/err")" "1" "one warning per run: $(cat "$TMP/err")"
grep -q '2 of 3 batches' "$TMP/err"; ok $? "the warning counts the batches without a triplet (one label; no label twice)"
is "$(jq -c '.grad | flatten | map(fabs) | add' "$TMP/out" | sed -n 2p)" "0" "the single-label batch's gradient is zero indeed"
for loss in batch-all-triplet batch-semi-hard-triplet batch-hard-soft-margin-triplet; do
	batch 0 3,3,3,3 | st-loss --json "$loss" > /dev/null 2> "$TMP/err"
	grep -q '1 of 1 batches' "$TMP/err"; ok $? "$loss warns too"
done
batch 0 0,0,1,1 | st-loss --json batch-hard-triplet > /dev/null 2> "$TMP/err"
is "$(cat "$TMP/err")" "" "no warning when every batch has a triplet"
batch 0 3,3,3,3 | st-loss --json mse > /dev/null 2>&1 || true   # other losses: nothing to warn about
batch 0 3,3,3,3 | st-loss --json matryoshka --dims 2,1 -- batch-all-triplet > /dev/null 2> "$TMP/err"
grep -q '1 of 1 batches' "$TMP/err"; ok $? "a batch-*-triplet loss inside matryoshka warns too"

# TREC (5452 questions, 6 coarse labels): the PK sampler never makes a single-label batch, the old one mostly
# does, and st-loss says so. Token ids are stand-ins: st-batch only groups.
need_shared trec
pipelines/converters/trec "$SHARED/trec" | jq -c '.input_ids = [[101, (.texts[0] | length), 102]]' > "$TMP/trec.jsonl"
is "$(wc -l < "$TMP/trec.jsonl" | tr -d ' ')" "5452" "TREC train read"
st-batch --size 32 --sampler group-by-label --epochs 2 --json < "$TMP/trec.jsonl" > "$TMP/pk"; ok $? "PK batches of TREC"
n=$(wc -l < "$TMP/pk" | tr -d ' ')
is "$(jq -c 'select((.labels | unique | length) < 2)' "$TMP/pk" | wc -l | tr -d ' ')" "0" "group-by-label: none of $n batches has a single label"
is "$(jq -c '.labels | group_by(.) | map(length % 2) | add' "$TMP/pk" | sort -u)" "0" "every label comes K=2 at a time"
st-batch --size 32 --sampler label-runs --json < "$TMP/trec.jsonl" > "$TMP/lr"
single=$(jq -c 'select((.labels | unique | length) < 2)' "$TMP/lr" | wc -l | tr -d ' ')
[ "$single" -gt 100 ]; ok $? "label-runs: $single of $(wc -l < "$TMP/lr" | tr -d ' ') batches have a single label"
# through st-loss with stand-in embeddings (2 numbers per row)
emb() { jq -c '{kind, step, labels, embeddings: [[.example_ids[] | [(. % 7) / 7 + 0.1, (. % 11) / 11 + 0.1]]]}' "$1"; }
emb "$TMP/lr" | st-loss batch-hard-triplet > /dev/null 2> "$TMP/err"
grep -q "$single of $(wc -l < "$TMP/lr" | tr -d ' ') batches had no valid triplet" "$TMP/err"; ok $? "st-loss counts them: $(cat "$TMP/err")"
emb "$TMP/pk" | st-loss batch-hard-triplet > /dev/null 2> "$TMP/err"
is "$(cat "$TMP/err")" "" "st-loss is quiet on the PK batches"
done_testing
