#!/bin/sh
# st-eval's label-accuracy, mse, reranking, translation and sequential evaluators: metrics against independent
# numpy/scipy/PyTorch computations (tests/reference/metrics_ref.py), hand-worked small cases, the text path
# against st-encode + --embeddings, st-loss softmax's classifier read from its run directory, the CSV files,
# and bad input (exit 65 naming the record, 64 for usage).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"
command -v jq > /dev/null || skip_all "jq is absent"

if /usr/bin/python3 -c 'import numpy, scipy' 2>/dev/null; then
	for c in mse reranking translation sequential; do
		metrics_ref $c "$c metrics equal numpy/scipy's"
	done
	if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
		metrics_ref label-accuracy "label-accuracy equals torch's nn.Linear on (u, v, |u-v| [, u*v]) + argmax"
	else
		echo "# /usr/bin/python3 without torch: label-accuracy reference skipped"
	fi
else
	echo "# /usr/bin/python3 without numpy/scipy: reference checks skipped"
fi

near() {   # near JSON KEY WANT DESCRIPTION: |JSON[KEY] - WANT| < 1e-6
	is "$(printf '%s' "$1" | jq --arg k "$2" --argjson w "$3" '(.[$k] - $w) | fabs < 1e-6')" true "$4"
}

# ---- hand-worked cases ----
# query (1,0): positives (1,0.1) cos .995, (0,1) cos 0; negatives (.9,.2) cos .976, (-1,0) cos -1:
#   ranking p n p n: AP (1 + 2/3)/2, RR 1, DCG 1 + 1/log2(4) over ideal 1 + 1/log2(3)
# query (0,1): positive (1,0) cos 0 below negative (0,1) cos 1: AP 1/2, RR 1/2, NDCG 1/log2(3)
printf '%s\n' '{"query":[1,0],"positive":[[1,0.1],[0,1]],"negative":[[0.9,0.2],[-1,0]]}' \
	'{"query":[0,1],"positive":[[1,0]],"negative":[[0,1]]}' > "$TMP/rr.jsonl"
r=$(st-eval reranking --embeddings < "$TMP/rr.jsonl"); ok $? "reranking --embeddings"
near "$r" map "$(echo '((1 + 2/3) / 2 + 1/2) / 2' | bc -l)" "reranking map by hand"
near "$r" 'mrr@10' 0.75 "reranking mrr@10 by hand"
near "$r" 'ndcg@10' "$(echo '((1 + 1/2) / (1 + l(2)/l(3)) + l(2)/l(3)) / 2' | bc -l)" "reranking ndcg@10 by hand"
is "$(printf '%s' "$r" | jq -r 'keys_unsorted | join(" ")')" "map mrr@10 ndcg@10" "reranking: the library's names, ndcg@10 last"
r=$(st-eval reranking --embeddings --at-k 1 < "$TMP/rr.jsonl")
near "$r" 'mrr@1' 0.5 "--at-k 1: the second query's positive is not in the top 1"

# translation: sources (1,0), (0,1); targets (1,0.1), (1,0.2): both targets are nearest to the first source
printf '%s\n' '{"embeddings":[[1,0],[1,0.1]]}' '{"embeddings":[[0,1],[1,0.2]]}' > "$TMP/tr.jsonl"
r=$(st-eval translation --embeddings < "$TMP/tr.jsonl"); ok $? "translation --embeddings"
is "$r" '{"src2trg_accuracy": 1.0, "trg2src_accuracy": 0.5, "mean_accuracy": 0.75}' "translation by hand"
# mse: ((1-1)^2 + (0-0.1)^2 + (0-1)^2 + (1-0.2)^2) / 4 * 100 = 41.25
r=$(st-eval mse --embeddings < "$TMP/tr.jsonl"); ok $? "mse --embeddings"
near "$r" negative_mse -41.25 "mse: -MSE*100 by hand"

# ---- texts through models ----
tiny_model "$TMP/m"
tiny_model "$TMP/m2" --seed 7
cat > "$TMP/par.jsonl" <<'EOF'
{"texts": ["the cat sat on the mat", "a cat sat on a mat"]}
{"texts": ["the dog ran far away", "a dog ran away"]}
{"texts": ["a small blue tree", "the small tree"]}
{"texts": ["the red house", "a big red house"]}
EOF
jq -r '.texts[0]' "$TMP/par.jsonl" > "$TMP/src.txt"
jq -r '.texts[1]' "$TMP/par.jsonl" > "$TMP/trg.txt"
st-encode --model "$TMP/m" < "$TMP/src.txt" > "$TMP/src_m.jsonl"
st-encode --model "$TMP/m" < "$TMP/trg.txt" > "$TMP/trg_m.jsonl"
st-encode --model "$TMP/m2" < "$TMP/trg.txt" > "$TMP/trg_m2.jsonl"
pair_emb() { jq -c -n --slurpfile a "$1" --slurpfile b "$2" 'range(0; $a | length) as $i | {embeddings: [$a[$i].embedding, $b[$i].embedding]}'; }
close() {   # close A.json B.json DESCRIPTION: the same keys, values within 1e-5
	is "$(jq -n --slurpfile a "$1" --slurpfile b "$2" '($a[0] | keys_unsorted) == ($b[0] | keys_unsorted) and
		([$a[0] | to_entries[] | (.value - $b[0][.key]) | fabs] | max < 1e-5)')" true "$3"
}
st-eval translation --model "$TMP/m" < "$TMP/par.jsonl" > "$TMP/tr_text.json"; ok $? "translation with a model"
pair_emb "$TMP/src_m.jsonl" "$TMP/trg_m.jsonl" | st-eval translation --embeddings > "$TMP/tr_emb.json"
close "$TMP/tr_text.json" "$TMP/tr_emb.json" "translation: texts through the model = st-encode + --embeddings"
st-eval mse --teacher "$TMP/m" --model "$TMP/m2" < "$TMP/par.jsonl" > "$TMP/mse_text.json"; ok $? "mse with a teacher and a model"
pair_emb "$TMP/src_m.jsonl" "$TMP/trg_m2.jsonl" | st-eval mse --embeddings > "$TMP/mse_emb.json"
close "$TMP/mse_text.json" "$TMP/mse_emb.json" "mse: the teacher encodes the sources, the model the targets"
jq -c '{texts: [.texts[0], .texts[0]]}' "$TMP/par.jsonl" | st-eval mse --teacher "$TMP/m" --model "$TMP/m" > "$TMP/mse0.json"
is "$(jq '.negative_mse == 0' "$TMP/mse0.json")" true "mse of a model against itself on the same sentences: 0"
jq -c -s '[.[] | .texts] as $t | range(0; $t | length) as $i |
	{query: $t[$i][0], positive: [$t[$i][1]], negative: [$t[($i + 1) % ($t | length)][1], $t[($i + 2) % ($t | length)][0]]}' \
	"$TMP/par.jsonl" > "$TMP/rr_text.jsonl"
st-eval reranking --model "$TMP/m" --output-dir "$TMP/eval" < "$TMP/rr_text.jsonl" > "$TMP/rr_text.json"; ok $? "reranking with a model"
enc() { printf '%s\n' "$1" | st-encode --model "$TMP/m" | jq -c .embedding; }
while read -r line; do
	q=$(enc "$(printf '%s' "$line" | jq -r .query)")
	p=$(enc "$(printf '%s' "$line" | jq -r '.positive[0]')")
	n1=$(enc "$(printf '%s' "$line" | jq -r '.negative[0]')")
	n2=$(enc "$(printf '%s' "$line" | jq -r '.negative[1]')")
	echo "{\"query\": $q, \"positive\": [$p], \"negative\": [$n1, $n2]}"
done < "$TMP/rr_text.jsonl" | st-eval reranking --embeddings > "$TMP/rr_emb.json"
close "$TMP/rr_text.json" "$TMP/rr_emb.json" "reranking: texts through the model = st-encode + --embeddings"
is "$(head -1 "$TMP/eval/RerankingEvaluator_results_@10.csv")" "epoch,steps,MAP,MRR@10,NDCG@10" "reranking CSV: the library's file and header"

# ---- label-accuracy with the classifier st-loss softmax keeps in its run directory ----
mkdir "$TMP/run"
printf '{"kind":"batch","step":1,"embeddings":[[[1,0,0,0],[0,1,0,0],[0,0,1,0]],[[1,0.1,0,0],[0.5,1,0,0],[0,0,0,1]]],"labels":[0,1,2]}\n' |
	st-json --to-msgpack | st-loss softmax --num-labels 3 --run "$TMP/run" --lr 0.1 > /dev/null; ok $? "st-loss softmax trains a classifier"
printf '%s\n' '{"embeddings":[[1,0,0,0],[1,0.1,0,0]],"label":0}' '{"embeddings":[[0,1,0,0],[0.5,1,0,0]],"label":1}' \
	'{"embeddings":[[0,0,1,0],[0,0,0,1]],"label":2}' '{"embeddings":[[0,0,1,0],[0,0,0,1]],"label":0}' > "$TMP/la.jsonl"
r=$(st-eval label-accuracy --embeddings --run "$TMP/run" --output-dir "$TMP/eval" < "$TMP/la.jsonl"); ok $? "label-accuracy --run DIR"
is "$(st-eval label-accuracy --embeddings --classifier "$TMP/run/loss-softmax.safetensors" < "$TMP/la.jsonl")" "$r" \
	"--classifier FILE reads what --run DIR reads"
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	want=$(/usr/bin/python3 - "$TMP/run/loss-softmax.safetensors" "$TMP/la.jsonl" <<'PY'
import json, struct, sys
import torch
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
def tensor(name):
    e = head[name]
    a, b = e["data_offsets"]
    return torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32).reshape(e["shape"])
W, b = tensor("classifier.weight"), tensor("classifier.bias")
recs = [json.loads(l) for l in open(sys.argv[2])]
u = torch.tensor([r["embeddings"][0] for r in recs]); v = torch.tensor([r["embeddings"][1] for r in recs])
pred = torch.nn.functional.linear(torch.cat([u, v, (u - v).abs()], 1), W, b).argmax(1)
print(float((pred == torch.tensor([r["label"] for r in recs])).float().mean()))
PY
)
	near "$r" accuracy "$want" "label-accuracy equals torch on st-loss softmax's classifier ($want)"
fi
is "$(printf '%s' "$r" | jq -r 'keys | join(" ")')" accuracy "label-accuracy: the metric 'accuracy'"
is "$(cat "$TMP/eval/accuracy_evaluation_results.csv" | head -1)" "epoch,steps,accuracy" "label-accuracy CSV header"

# ---- sequential ----
r=$(st-eval sequential --eval "translation --embeddings --name tr < $TMP/tr.jsonl" --eval "reranking --embeddings <$TMP/rr.jsonl")
ok $? "sequential of two evaluators"
is "$(printf '%s' "$r" | jq -r 'keys_unsorted | join(" ")')" \
	"tr_src2trg_accuracy tr_trg2src_accuracy tr_mean_accuracy map mrr@10 ndcg@10 sequential_score" \
	"sequential: every evaluator's metrics in order, sequential_score last"
is "$(printf '%s' "$r" | jq '.sequential_score == .["ndcg@10"]')" true "sequential_score: the last evaluator's primary score"
r=$(st-eval sequential --main-score mean --eval "translation --embeddings --name tr < $TMP/tr.jsonl" --eval "reranking --embeddings <$TMP/rr.jsonl")
is "$(printf '%s' "$r" | jq '(.sequential_score - (.tr_mean_accuracy + .["ndcg@10"]) / 2) | fabs < 1e-12')" true \
	"--main-score mean: the mean of the primary scores"
st-eval sequential --output-dir "$TMP/seq" --eval "translation --embeddings --name tr < $TMP/tr.jsonl" \
	--eval "reranking --embeddings <$TMP/rr.jsonl" > /dev/null
ls "$TMP/seq/translation_evaluation_tr_results.csv" "$TMP/seq/RerankingEvaluator_results_@10.csv" > /dev/null
ok $? "sequential --output-dir: every evaluator writes its CSV there"
r=$(ST_MODEL="$TMP/m" st-eval sequential --eval "translation < $TMP/par.jsonl")
is "$(printf '%s' "$r" | jq -c 'del(.sequential_score)')" "$(jq -c . "$TMP/tr_text.json")" "sequential passes the model on (ST_MODEL)"

# ---- bad input ----
printf '{"embeddings":[[1,0]]}\n{"embeddings":[[1,0]]}\n' | st-eval translation --embeddings 2> "$TMP/err"; is $? 65 "translation with one text: 65"
grep -q 'example 1' "$TMP/err"; ok $? "... naming the example"
printf '{"embeddings":[[1,0],[1,0,0]]}\n' | st-eval mse --embeddings 2> "$TMP/err"; is $? 65 "mse with embeddings of different lengths: 65"
grep -q 'line 1' "$TMP/err"; ok $? "... naming the record"
/usr/bin/python3 -c 'import msgpack, sys; r = {"query": [1.0, 0.0], "positive": [[1.0, 0.0]], "negative": [[0.0, 1.0]]}
sys.stdout.buffer.write(msgpack.packb(r) + msgpack.packb(dict(r, negative=[[float("nan"), 1.0]])))' > "$TMP/nan.msgpack" 2>/dev/null &&
	{ st-eval reranking --embeddings < "$TMP/nan.msgpack" 2> "$TMP/err"; is $? 65 "reranking with a NaN embedding: 65"
	  grep -q 'non-finite.*record 2' "$TMP/err"; ok $? "... naming the record" || cat "$TMP/err"; }
printf '{"positive":[[1,0]],"negative":[[0,1]]}\n' | st-eval reranking --embeddings 2> "$TMP/err"; is $? 65 "reranking without a query: 65"
grep -q 'without "query" (line 1)' "$TMP/err"; ok $? "... naming the record"
printf '{"query":"a","positive":"b","negative":["c"]}\n' | st-eval reranking --model "$TMP/m" 2> "$TMP/err"; is $? 65 "reranking positive not a list: 65"
printf '{"query":"a","positive":[],"negative":["c"]}\n' | st-eval reranking --model "$TMP/m" 2> /dev/null; is $? 65 "reranking with no usable sample: 65"
printf '{"embeddings":[[1,0,0,0],[1,0,0,0]],"label":3}\n' | st-eval label-accuracy --embeddings --run "$TMP/run" 2> "$TMP/err"
is $? 65 "label-accuracy with a label beyond the classifier's: 65"
grep -q 'labels 0..2; example 1 has 3' "$TMP/err"; ok $? "... naming the example"
printf '{"embeddings":[[1,0,0,0,0],[1,0,0,0,0]],"label":0}\n' | st-eval label-accuracy --embeddings --run "$TMP/run" 2> /dev/null
is $? 65 "label-accuracy: embeddings that do not fit the classifier: 65"
printf '{"embeddings":[[1,0,0,0],[1,0,0,0]]}\n' | st-eval label-accuracy --embeddings --run "$TMP/run" 2> /dev/null; is $? 65 "label-accuracy without labels: 65"
printf '{"embeddings":[[1,0,0,0],[1,0,0,0]],"label":0}\n' | st-eval label-accuracy --embeddings 2> /dev/null; is $? 64 "label-accuracy without a classifier: 64"
printf '{"embeddings":[[1,0,0,0],[1,0,0,0]],"label":0}\n' | st-eval label-accuracy --embeddings --run "$TMP/nope" 2> /dev/null; is $? 66 "a missing classifier: 66"
st-eval mse --model "$TMP/m" < "$TMP/par.jsonl" 2> /dev/null; is $? 64 "mse without --teacher: 64"
st-eval sequential < /dev/null 2> /dev/null; is $? 64 "sequential without --eval: 64"
st-eval sequential --main-score max --eval x < /dev/null 2> /dev/null; is $? 64 "--main-score max: 64"
st-eval sequential --eval "translation --embeddings < $TMP/nope.jsonl" 2> /dev/null; is $? 66 "sequential with a missing file: 66"
printf '{"embeddings":[[1,0]]}\n' > "$TMP/one.jsonl"
st-eval sequential --eval "translation --embeddings < $TMP/tr.jsonl" --eval "translation --embeddings < $TMP/one.jsonl" 2> "$TMP/err"
is $? 65 "sequential: a failing evaluator's exit status"
grep -q "evaluator 2" "$TMP/err"; ok $? "... naming the evaluator"
done_testing
