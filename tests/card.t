#!/bin/sh
# st-card: the model card's YAML front matter parses and carries the library's keys; the sections exist;
# hyper-parameters and logs come from the run around the model; the write is atomic.
. "$(dirname "$0")/lib.sh"
command -v jq > /dev/null || skip_all "jq is not installed"

. "$(dirname "$0")/lib-model.sh"
mkdir -p "$TMP/run"
tiny_model "$TMP/run/model" --dense 8 --normalize
cat > "$TMP/run/trainer.json" <<'JSON'
{"v": 1, "step": 120, "epoch": 0, "lr": 2e-05, "scheduler": "warmuplinear", "optimizer": "adamw", "weight_decay": 0.01}
JSON
printf '%s\n' '{"kind": "eval", "step": 40, "epoch": 0, "score": 0.51234, "best": true}' \
	'{"kind": "eval", "step": 80, "epoch": 0, "score": 0.5, "best": false}' > "$TMP/run/eval.jsonl"
echo '{"sts-dev_pearson_cosine": 0.81, "sts-dev_spearman_cosine": 0.8}' > "$TMP/sts-dev.json"

st-card --model "$TMP/run/model" --datasets sentence-transformers/stsb other/set --language en de --license apache-2.0 \
	--base-model sentence-transformers/all-MiniLM-L6-v2 --loss CoSENTLoss --dataset-size 5749 --eval "$TMP/sts-dev.json"
ok $? "st-card writes the card"
card="$TMP/run/model/README.md"
if /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
	/usr/bin/python3 - "$card" > "$TMP/meta.json" <<'PY'
import json, sys, yaml
text = open(sys.argv[1], encoding="utf-8").read()
assert text.startswith("---\n")
meta = yaml.safe_load(text.split("---\n")[1])
print(json.dumps(meta))
PY
	ok $? "the YAML front matter parses"
	is "$(jq -r '.library_name' "$TMP/meta.json")" sentence-transformers "library_name"
	is "$(jq -r '.pipeline_tag' "$TMP/meta.json")" sentence-similarity "pipeline_tag"
	is "$(jq -c '.tags' "$TMP/meta.json")" \
		'["sentence-transformers","sentence-similarity","feature-extraction","dense","generated_from_trainer","dataset_size:5749","loss:CoSENTLoss"]' \
		"tags as the trainer leaves them"
	is "$(jq -c '.datasets' "$TMP/meta.json")" '["sentence-transformers/stsb","other/set"]' "datasets"
	is "$(jq -c '.language' "$TMP/meta.json")" '["en","de"]' "language"
	is "$(jq -r '.license' "$TMP/meta.json")" apache-2.0 "license"
	is "$(jq -r '.base_model' "$TMP/meta.json")" sentence-transformers/all-MiniLM-L6-v2 "base_model"
	is "$(jq -c '.metrics' "$TMP/meta.json")" '["sts-dev_pearson_cosine","sts-dev_spearman_cosine"]' "metrics"
	is "$(jq -c '.["model-index"][0].results[0].metrics | map(.value)' "$TMP/meta.json")" '[0.81,0.8]' "model-index values"
	is "$(jq -r 'keys_unsorted | join(" ")' "$TMP/meta.json")" \
		"language license library_name tags datasets metrics pipeline_tag model-index base_model" "keys in the library's order"
else
	echo "# python3-yaml is absent: front matter not parsed"
fi
for s in "# SentenceTransformer based on sentence-transformers/all-MiniLM-L6-v2" "## Model Details" "### Model Description" \
	"### Full Model Architecture" "## Usage" "### Direct Usage (Sentence Transformers)" "## Evaluation" "### Metrics" \
	"## Training Details" "### Training Hyperparameters" "### Training Logs" "### Framework Versions" "## Citation"; do
	grep -qxF "$s" "$card"; ok $? "section: $s"
done
grep -qF -- '- **Output Dimensionality:** 8 dimensions' "$card"; ok $? "output dimensionality from the Dense module"
grep -qF -- "(2): Dense({'in_features': 16, 'out_features': 8" "$card"; ok $? "the architecture lists the Dense module"
grep -qF -- '- `scheduler`: warmuplinear' "$card"; ok $? "hyper-parameters from RUN/trainer.json"
grep -qF -- '| 0 | 40 | **0.5123** |' "$card"; ok $? "training logs from RUN/eval.jsonl, best in bold"
grep -qF -- '| sts-dev_spearman_cosine | 0.8 |' "$card"; ok $? "metrics table"

# a bare model: no run, no options; still valid
tiny_model "$TMP/bare"
st-card --model "$TMP/bare" -o "$TMP/bare.md"; ok $? "a model without a run"
grep -q 'No training run was found' "$TMP/bare.md"; ok $? "... says so"
grep -qF -- '- **Output Dimensionality:** 16 dimensions' "$TMP/bare.md"; ok $? "... mean pooling: 16 dimensions"
ls "$TMP/bare" | grep -q '\.tmp\.'; is $? 1 "no temporary file left"
st-card 2>/dev/null; is $? 64 "no --model: 64"
st-card --model "$TMP/nowhere" 2>/dev/null; is $? 66 "not a model directory: 66"

# issue 10 item 9: the "Direct Usage (st)" snippet runs as printed, in the model's directory
awk '/^### Direct Usage \(st\)/ { on = 1 } on && /^```sh/ { getline; print; exit }' "$card" > "$TMP/snippet.sh"
grep -q 'st-encode --model \.$' "$TMP/snippet.sh"; ok $? "the card's st snippet encodes the local directory"
(cd "$TMP/run/model" && sh "$TMP/snippet.sh") > "$TMP/snippet.out"; ok $? "... and runs there"
is "$(jq -c '.embedding | length' "$TMP/snippet.out" | tr '\n' ' ')" "8 8 " "... two embeddings of the model's 8 dimensions"
awk '/^### Direct Usage \(st\)/ { on = 1 } on && /^```sh/ { n++; getline; if (n == 2) { print; exit } }' "$card" |
	grep -q 'st-encode --model model$'; ok $? "... and a Hub form naming the repository"

# every stage's hyper-parameters and the base model (a two-stage run as the demo's: from scratch, then two runs)
mkdir -p "$TMP/stage1" "$TMP/stage2"
echo '{"v": 1, "lr": 0.001, "scheduler": "warmuplinear", "total_steps": 20}' > "$TMP/stage1/trainer.json"
echo '{"v": 1, "lr": 0.0005, "scheduler": "constantlr", "total_steps": 10}' > "$TMP/stage2/trainer.json"
cp -r "$TMP/bare" "$TMP/stage2/model"
st-card --model "$TMP/stage2/model" --run "$TMP/stage1" --from-scratch --loss TripletLoss \
	--loss MultipleNegativesRankingLoss -o "$TMP/stages.md"; ok $? "st-card --run STAGE1 on STAGE2's model"
grep -qxF '#### Stage 1: stage1 (TripletLoss)' "$TMP/stages.md" && grep -qxF -- '- `lr`: 0.001' "$TMP/stages.md"
ok $? "... stage 1's hyper-parameters, with its loss"
grep -qxF '#### Stage 2: stage2 (MultipleNegativesRankingLoss)' "$TMP/stages.md" && grep -qxF -- '- `scheduler`: constantlr' "$TMP/stages.md"
ok $? "... stage 2's, from the run around the model"
grep -qF -- '- **Base model:** none; trained from randomly initialised weights' "$TMP/stages.md"; ok $? "... the base model: none, from scratch"
st-card --model "$TMP/stage2/model" --run "$TMP/nowhere" 2>/dev/null; is $? 66 "--run that is no run: 66"

# issue 11 item 14: values with backslashes, quotes and newlines stay valid YAML and come back unchanged
if /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
	st-card --model "$TMP/bare" -o "$TMP/odd.md" --model-name 'a\b "c" \n d' --datasets 'x\\y' "it's" --language 'e\n' \
		--license 'l\x41' --base-model 'b\ase' --loss 'L\t'
	ok $? "st-card with backslashes and quotes in every value"
	/usr/bin/python3 - "$TMP/odd.md" <<'PY'
import sys, yaml
meta = yaml.safe_load(open(sys.argv[1], encoding="utf-8").read().split("---\n")[1])
want = {"datasets": ["x\\\\y", "it's"], "language": ["e\\n"], "license": "l\\x41", "base_model": "b\\ase"}
bad = [k for k, v in want.items() if meta.get(k) != v]
if "loss:L\\t" not in meta["tags"]: bad.append("tags")
print("# mismatch: %s %s" % (bad, meta) if bad else "# all values unchanged")
sys.exit(1 if bad else 0)
PY
	ok $? "... the YAML parses and holds the values as given"
	grep -qxF '# a\b "c" \n d' "$TMP/odd.md"; ok $? "... the title as given"
fi
jq '.word_embedding_dimension = "sixteen"' "$TMP/bare/1_Pooling/config.json" > "$TMP/pool.json" &&
	mv "$TMP/pool.json" "$TMP/bare/1_Pooling/config.json"
st-card --model "$TMP/bare" -o "$TMP/bad.md" 2> "$TMP/bad.err"; is $? 65 "a pooling dimension that is no number: 65"
grep -q 'word_embedding_dimension' "$TMP/bad.err"; ok $? "... naming the key"
[ ! -e "$TMP/bad.md" ]; ok $? "... and no card"
done_testing
