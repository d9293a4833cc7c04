#!/bin/bash
# st-batch: sizes, padding, epochs, reproducible shuffles, the samplers (group-by-label in detail: tests/pk_sampler.t), and its errors.
. "$(dirname "$0")/lib.sh"

# 10 tokenized pairs; example i has token ids [101, i, ..., 102] of length 2 + i % 3, label i % 3;
# texts 0 and 5 share their second text (a duplicate for the no-duplicates sampler).
for i in $(seq 0 9); do
	ids=$(seq -s, 1000 $((999 + i % 3)) | sed 's/^$//')
	second="b$((i % 5))"
	printf '{"texts": ["a%d", "%s"], "input_ids": [[101%s,102], [101,%d,102]], "label": %d}\n' \
		"$i" "$second" "${ids:+,$ids}" "$i" $((i % 3))
done > "$TMP/ex.jsonl"

st-batch --size 4 --json < "$TMP/ex.jsonl" > "$TMP/b.jsonl"; ok $? "batches of 4"
is "$(jq -c '[.step, .epoch, .steps, (.example_ids | length)]' "$TMP/b.jsonl" | tr '\n' ' ')" \
	"[0,0,3,4] [1,0,3,4] [2,0,3,2] " "3 batches: 4, 4 and the partial 2; step, epoch and steps known"
is "$(jq -c '.example_ids' "$TMP/b.jsonl" | tr -d '\n')" "[0,1,2,3][4,5,6,7][8,9]" "order kept without --shuffle"
# padding: input_ids [columns][rows][T] with T the longest text in the batch, lengths [columns][rows]
is "$(jq -c '.lengths' "$TMP/b.jsonl" | head -1)" "[[2,3,4,2],[3,3,3,3]]" "lengths per column and row"
is "$(jq -c '.input_ids[0][1]' "$TMP/b.jsonl" | head -1)" "[101,1000,102,0]" "rows are zero-padded to the batch's longest text"
is "$(jq -c '.labels' "$TMP/b.jsonl" | head -1)" "[0,1,2,0]" "labels travel as a tensor"
st-batch --size 4 --drop-last --json < "$TMP/ex.jsonl" | jq -c '.steps' | sort -u > "$TMP/s"
is "$(cat "$TMP/s")" "2" "--drop-last drops the partial batch"

# shuffle: a permutation per epoch, reproducible from the seed, different across epochs and seeds
st-batch --size 3 --epochs 3 --shuffle --seed 7 --json < "$TMP/ex.jsonl" > "$TMP/s1"
st-batch --size 3 --epochs 3 --shuffle --seed 7 --json < "$TMP/ex.jsonl" > "$TMP/s2"
st-batch --size 3 --epochs 3 --shuffle --seed 8 --json < "$TMP/ex.jsonl" > "$TMP/s3"
cmp -s "$TMP/s1" "$TMP/s2"; ok $? "the same seed gives the same batches"
! cmp -s "$TMP/s1" "$TMP/s3"; ok $? "another seed gives other batches"
for e in 0 1 2; do
	is "$(jq -c "select(.epoch == $e) | .example_ids[]" "$TMP/s1" | sort -n | tr '\n' ' ')" "0 1 2 3 4 5 6 7 8 9 " "epoch $e visits every example once"
done
e0=$(jq -c 'select(.epoch == 0) | .example_ids[]' "$TMP/s1" | tr -d '\n')
e1=$(jq -c 'select(.epoch == 1) | .example_ids[]' "$TMP/s1" | tr -d '\n')
[ "$e0" != "$e1" ]; ok $? "each epoch is a new permutation ($e0 vs $e1)"
is "$(jq -c '.step' "$TMP/s1" | tr '\n' ' ')" "0 1 2 3 4 5 6 7 8 9 10 11 " "global steps count across epochs"
# --start-step resumes with the same batches
st-batch --size 3 --epochs 3 --shuffle --seed 7 --start-step 5 --json < "$TMP/ex.jsonl" > "$TMP/s4"
is "$(md5sum < "$TMP/s4")" "$(jq -c 'select(.step >= 5)' "$TMP/s1" | md5sum)" "--start-step 5 gives steps 5.. unchanged"

# no-duplicates: no text twice in a batch (examples 0 and 5 share "b0")
st-batch --size 4 --epochs 2 --shuffle --sampler no-duplicates --json < "$TMP/ex.jsonl" > "$TMP/nd"
dups=$(jq -r '.example_ids | map("b\(. % 5)") | (length - (unique | length))' "$TMP/nd" | sort -u)
is "$dups" "0" "no-duplicates: no shared text within a batch"
for e in 0 1; do
	is "$(jq -c "select(.epoch == $e) | .example_ids[]" "$TMP/nd" | sort -n | tr '\n' ' ')" "0 1 2 3 4 5 6 7 8 9 " "no-duplicates epoch $e still visits every example"
done

# label-runs (the older group-by-label): per label its examples cut to an even count, batches cut from the runs
st-batch --size 2 --sampler label-runs --json < "$TMP/ex.jsonl" > "$TMP/g"
is "$(jq -c '.labels | unique | length' "$TMP/g" | sort -u)" "1" "label-runs: each pair of a batch shares its label"
# labels 0 (4 examples), 1 (3 -> 2), 2 (3 -> 2): 8 examples in 4 batches
is "$(jq -c '.example_ids[]' "$TMP/g" | wc -l | tr -d ' ')" "8" "odd-sized groups lose one example"
st-batch --size 3 --sampler label-runs < "$TMP/ex.jsonl" > /dev/null 2>&1; is "$?" "64" "label-runs with an odd size is a usage error"

# errors
printf '{"texts":["a","b"],"input_ids":[[1,2],[3]]}\n{"texts":["c"],"input_ids":[[4,5]]}\n' | st-batch --size 2 > /dev/null 2> "$TMP/err"; rc=$?
is "$rc" "65" "examples with different numbers of texts in one batch exit 65"
grep -q 'record 2 has 1 texts' "$TMP/err"; ok $? "the message names the example: $(cat "$TMP/err")"
printf '{"texts":["a"]}\n' | st-batch --size 2 > /dev/null 2> "$TMP/err"; rc=$?
is "$rc" "65" "an untokenized example exits 65"
grep -q 'line 1: no input_ids' "$TMP/err"; ok $? "and says what is missing: $(cat "$TMP/err")"
printf '{"texts":["a"],"input_ids":[[1]],"label":"x"}\n' | st-batch --size 2 > /dev/null 2>&1; is "$?" "65" "a string label exits 65"
st-batch < "$TMP/ex.jsonl" > /dev/null 2>&1; is "$?" "64" "--size is required"
# a Hugging Face datasets row (string columns, score) batches like an example
printf '{"sentence1":"x","sentence2":"y","score":0.5,"input_ids":[[1,2],[3,4]]}\n' | st-batch --size 1 --json > "$TMP/hf"
is "$(jq -c '[.labels, .lengths]' "$TMP/hf")" "[[0.5],[[2],[2]]]" "a datasets row's score becomes the label"
done_testing
