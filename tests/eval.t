#!/bin/sh
# st-eval: every evaluator's metrics against independent numpy/scipy computations on random embeddings
# (tests/reference/metrics_ref.py), the text path against st-encode + --embeddings, the CSV file, the names,
# the exit codes, and the contract with st-step's --evaluator (the primary metric is the last number).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"

if /usr/bin/python3 -c 'import numpy, scipy' 2>/dev/null; then
	for c in similarity similarity-ties triplet binary binary-ties ir mining; do
		metrics_ref $c "$c metrics equal numpy/scipy's"
	done
else
	echo "# /usr/bin/python3 without numpy/scipy: reference checks skipped"
fi

# st-forward's batches [columns][rows][dim] with "labels" give what per-example records give
printf '{"kind":"batch","embeddings":[[[1,0],[0,1],[1,1]],[[1,0.1],[0.2,1],[0,1]]],"labels":[1,0,0.5]}\n' |
	st-json --to-msgpack | st-eval similarity --embeddings > "$TMP/batch.json"; ok $? "--embeddings reads msgpack batches"
printf '%s\n' '{"embeddings":[[1,0],[1,0.1]],"label":1}' '{"embeddings":[[0,1],[0.2,1]],"label":0}' \
	'{"embeddings":[[1,1],[0,1]],"label":0.5}' | st-eval similarity --embeddings > "$TMP/rows.json"
is "$(cat "$TMP/batch.json")" "$(cat "$TMP/rows.json")" "... the same metrics as per-example records"

# a tiny random model
tiny_model "$TMP/m"

cat > "$TMP/pairs.jsonl" <<'EOF2'
{"texts": ["the cat sat on the mat", "a cat sat on a mat"], "label": 4.5}
{"texts": ["the dog ran far away", "a big red house"], "label": 0.5}
{"texts": ["a small blue tree", "the small tree"], "label": 3.0}
{"texts": ["the red dog", "the red cat"], "label": 2.5}
{"texts": ["a house", "the big house"], "label": 3.5}
{"texts": ["the cat ran away", "a blue tree"], "label": 0.0}
EOF2
st-eval similarity --model "$TMP/m" < "$TMP/pairs.jsonl" > "$TMP/text.json"; ok $? "similarity with a model"
# the same texts through st-encode, then --embeddings
jq -r '.texts[0], .texts[1]' "$TMP/pairs.jsonl" | st-encode --model "$TMP/m" > "$TMP/enc.jsonl"
jq -c '.label' "$TMP/pairs.jsonl" > "$TMP/labels"
jq -c -s '[range(0; length; 2) as $i | {embeddings: [.[$i].embedding, .[$i + 1].embedding]}] | .[]' "$TMP/enc.jsonl" |
	paste -d '\t' - "$TMP/labels" | awk -F '\t' '{ sub(/}$/, "", $1); print $1 ", \"label\": " $2 "}" }' > "$TMP/emb.jsonl"
st-eval similarity --embeddings < "$TMP/emb.jsonl" > "$TMP/emb.json"; ok $? "similarity with --embeddings"
is "$(jq -c 'keys' "$TMP/text.json")" '["pearson_cosine","spearman_cosine"]' "the model's similarity (cosine): two metrics"
d=$(jq -n --slurpfile a "$TMP/text.json" --slurpfile b "$TMP/emb.json" \
	'[$a[0] | to_entries[] | (.value - $b[0][.key]) | fabs] | max < 1e-5')
is "$d" true "encoding texts gives what st-encode + --embeddings gives"

# names, CSV, steps from $ST_STEP (as st-step runs its evaluator)
ST_STEP=12 ST_MODEL="$TMP/m" st-eval similarity --name sts-dev --output-dir "$TMP/eval" --similarity-fn-names cosine,dot \
	< "$TMP/pairs.jsonl" > "$TMP/named.json"; ok $? "ST_MODEL and ST_STEP from the environment"
is "$(jq -r 'keys_unsorted | join(" ")' "$TMP/named.json")" \
	"sts-dev_pearson_cosine sts-dev_spearman_cosine sts-dev_pearson_dot sts-dev_spearman_dot sts-dev_pearson_max sts-dev_spearman_max" \
	"metric names carry the evaluator's name; the primary (spearman_max) is last"
csv="$TMP/eval/similarity_evaluation_sts-dev_results.csv"
is "$(head -1 "$csv")" "epoch,steps,cosine_pearson,cosine_spearman,dot_pearson,dot_spearman" "CSV header as the library writes it"
is "$(sed -n 2p "$csv" | cut -d, -f1,2)" "-1,12" "CSV row: epoch -1, steps from ST_STEP"
st-eval similarity --model "$TMP/m" --name sts-dev --output-dir "$TMP/eval" --similarity-fn-names cosine,dot --epoch 1 --steps 20 \
	< "$TMP/pairs.jsonl" > /dev/null
is "$(wc -l < "$csv")" 3 "a second run appends a row"
is "$(sed -n 3p "$csv" | cut -d, -f1,2)" "1,20" "--epoch and --steps"
ST_EPOCH=3 ST_STEP=40 st-eval similarity --model "$TMP/m" --name sts-dev --output-dir "$TMP/eval" \
	--similarity-fn-names cosine,dot < "$TMP/pairs.jsonl" > /dev/null
is "$(sed -n 4p "$csv" | cut -d, -f1,2)" "3,40" "epoch and steps from ST_EPOCH and ST_STEP (issue 10 item 8: not -1 in training)"
ST_EPOCH=x st-eval similarity --model "$TMP/m" < "$TMP/pairs.jsonl" > /dev/null 2>&1; is $? 64 "ST_EPOCH that is no number: 64"
st-eval similarity --mod "$TMP/m" < "$TMP/pairs.jsonl" > /dev/null 2>&1; is $? 64 "an abbreviated option: 64 (st_getopt)"
st-eval similarity extra --model "$TMP/m" < "$TMP/pairs.jsonl" > /dev/null 2>&1; is $? 64 "a second KIND: 64"
ls "$TMP/eval" | grep -q '\.tmp\.'; is $? 1 "the CSV is rewritten through a temporary name: none left"
# st-step takes the last number printed as the score
last=$(sed 's/}$//; s/.*[ :,]//' "$TMP/named.json")
is "$last" "$(jq '.["sts-dev_spearman_max"]' "$TMP/named.json")" "the last number is the primary metric"

# other kinds from text
printf '%s\n' '{"texts": ["the cat", "a cat", "the house"]}' '{"texts": ["a red tree", "the red tree", "a dog"]}' |
	st-eval triplet --model "$TMP/m" > "$TMP/tri.json"; ok $? "triplet with a model"
is "$(jq -c 'keys' "$TMP/tri.json")" '["cosine_accuracy"]' "triplet: cosine_accuracy"
jq -c '{texts, label: (if .label > 2 then 1 else 0 end)}' "$TMP/pairs.jsonl" | st-eval binary --model "$TMP/m" > "$TMP/bin.json"
ok $? "binary with a model"
is "$(jq -r 'keys_unsorted | join(" ")' "$TMP/bin.json")" \
	"cosine_accuracy cosine_accuracy_threshold cosine_f1 cosine_f1_threshold cosine_precision cosine_recall cosine_mcc cosine_ap" \
	"binary: the library's keys, cosine_ap last"
jq -c '{texts}' "$TMP/pairs.jsonl" | st-eval ir --model "$TMP/m" --output-dir "$TMP/eval" > "$TMP/ir.json"; ok $? "ir with a model"
is "$(jq -r 'keys_unsorted | .[-1]' "$TMP/ir.json")" "cosine_ndcg@10" "ir: cosine_ndcg@10 last"
is "$(jq '.["cosine_accuracy@10"] == 1' "$TMP/ir.json")" true "ir: every query finds its document within 10 of 6"
is "$(head -1 "$TMP/eval/Information-Retrieval_evaluation_results.csv" | cut -d, -f1-5)" \
	"epoch,steps,cosine-Accuracy@1,cosine-Accuracy@3,cosine-Accuracy@5" "ir CSV header"
jq -c '{texts}' "$TMP/pairs.jsonl" | st-eval paraphrase-mining --model "$TMP/m" > "$TMP/pm.json"; ok $? "paraphrase-mining with a model"
is "$(jq -r 'keys_unsorted | join(" ")' "$TMP/pm.json")" "f1 precision recall threshold average_precision" \
	"paraphrase-mining keys, average_precision last"

# errors
st-eval nonsense --model "$TMP/m" < /dev/null 2>/dev/null; is $? 64 "unknown KIND: 64"
(unset ST_MODEL; st-eval similarity < "$TMP/pairs.jsonl" 2>/dev/null); is $? 64 "no model: 64"
st-eval similarity --model "$TMP/nope" < "$TMP/pairs.jsonl" 2>/dev/null; is $? 66 "missing model: 66"
jq -c '{texts}' "$TMP/pairs.jsonl" | st-eval similarity --model "$TMP/m" 2>"$TMP/err"; is $? 65 "similarity without labels: 65"
grep -q 'example 1' "$TMP/err"; ok $? "... the message names the example"
printf '{"texts": ["a", "b"], "label": 2}\n' | st-eval binary --model "$TMP/m" 2>/dev/null; is $? 65 "binary label 2: 65"
printf '{"texts": ["a", "b"]}\n' | st-eval triplet --model "$TMP/m" 2>/dev/null; is $? 65 "triplet with two texts: 65"
st-eval --help > /dev/null; ok $? "--help"
done_testing
