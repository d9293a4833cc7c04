#!/bin/bash
# The demo's recipe (pipelines/demo.mk) end to end at SMALL=1: a tiny model on a few hundred WordNet
# examples (and STS-B train pairs when ../shared/data has them), every stage of the tutorial, in a temporary
# OUT. Checks the outputs, not the scores (a tiny model trained for 10-20 steps need not improve); the
# full-size scores are in docs/training.md ("The demo's recipe"); tests/training_cases.t checks that each loss
# raises its evaluator.
. "$(dirname "$0")/lib.sh"
[ -r /usr/share/wordnet/data.noun ] || [ -r "${WNSEARCHDIR:-/nonexistent}/data.noun" ] ||
	skip_all "WordNet is absent (Debian's wordnet-base)"
command -v jq > /dev/null || skip_all "needs jq"
BIN=$ROOT/bin
if [ -n "$ST_TRAIN_BIN" ]; then   # stages under development first, as in tests/train_resume.t
	mkdir "$TMP/bin" && ln -s "$ROOT"/bin/st-* "$TMP/bin/" && ln -sf "$ST_TRAIN_BIN"/st-* "$TMP/bin/"
	BIN=$TMP/bin
fi
for t in st-vocab st-init st-tokenize st-batch st-forward st-loss st-step st-eval st-plot; do
	[ -x "$BIN/$t" ] || skip_all "$t is not built yet"
done
"$BIN/st-forward" --help 2>&1 | grep -q -- '--run' || skip_all "st-forward has no --run yet (docs/training.md)"
OUT=$TMP/out
demo() { timeout 900 make -s -C pipelines -f demo.mk SMALL=1 OUT="$OUT" BIN="$BIN" "$@"; }

demo > "$TMP/log" 2>&1; ok $? "make -f demo.mk SMALL=1" || tail -30 "$TMP/log" | sed 's/^/# /'
grep -q '^== st demo' "$TMP/log"; ok $? "the summary is printed"
if [ -d "$SHARED/stsbenchmark" ]; then stages="init mnrl triplet cosent"; else stages="init mnrl triplet"; fi
set -- $stages; last=${!#}
rows=$(grep -cE '^(before \(random init\)|after MNRL|after TripletLoss|after CoSENT) +[0-9]\.[0-9]{4}' "$TMP/log")
is "$rows" $# "a row with scores for every stage ($stages)"
cpu=$(grep -cE '^after (MNRL|TripletLoss|CoSENT) .* [0-9]+\.[0-9]{2}$' "$TMP/log")
is "$cpu" $(($# - 1)) "... the trained ones with their CPU minutes"
for s in ${stages#init }; do
	awk '{ exit !($1 > 0 && $1 < 5) }' "$OUT/$s.cpu"; ok $? "$s: CPU minutes measured, above 0 (from bash's times)"
done
sed -n '/^== st demo/,$p' "$TMP/log" | sed 's/^/# /'
for s in $stages; do
	jq -e '.["wordnet-dev_cosine_accuracy"] | . >= 0 and . <= 1' "$OUT/eval/$s/wordnet-dev.json" > /dev/null
	ok $? "$s: WordNet dev accuracy in [0, 1]"
done
if [ -d "$SHARED/stsbenchmark" ]; then
	jq -e '.["sts-test_spearman_cosine"] | . >= -1 and . <= 1' "$OUT/eval/$last/sts-test.json" > /dev/null
	ok $? "STS-B test Spearman of the final model"
else
	echo "# ../shared/data/stsbenchmark is absent: STS-B not evaluated"
fi
# 320 pairs in batches of 32, 320 triplets in batches of 16, 320 STS-B pairs in batches of 16 (SMALL=1's sizes)
is "$(jq -c 'select(.kind == "log")' "$OUT/mnrl.log.jsonl" | wc -l | tr -d ' ')" 10 "10 MNRL steps logged"
is "$(jq -c 'select(.kind == "log")' "$OUT/triplet.log.jsonl" | wc -l | tr -d ' ')" 20 "20 TripletLoss steps logged"
if [ "$last" = cosent ]; then
	is "$(jq -c 'select(.kind == "log")' "$OUT/cosent.log.jsonl" | wc -l | tr -d ' ')" 20 "20 CoSENT steps logged"
fi
for f in modules.json config.json config_sentence_transformers.json sentence_bert_config.json model.safetensors \
	tokenizer.json vocab.txt 1_Pooling/config.json README.md; do
	[ -s "$OUT/model/$f" ]; ok $? "the Hub-ready model has $f"
done
jq -e '[.[].type] == ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling"]' \
	"$OUT/model/modules.json" > /dev/null; ok $? "modules: Transformer + Pooling"
jq -e '.pooling_mode_mean_tokens == true' "$OUT/model/1_Pooling/config.json" > /dev/null; ok $? "mean pooling"
is "$(jq .vocab_size "$OUT/model/config.json")" "$(wc -l < "$OUT/vocab/vocab.txt" | tr -d ' ')" \
	"the model's vocabulary is st-vocab's"
grep -q 'wordnet-dev' "$OUT/model/README.md"; ok $? "the model card carries the final scores"
# issue 10 item 9: the card has every stage's hyper-parameters, says the model started from random weights, and
# its st snippet runs in the model's directory
grep -qxF '#### Stage 1: mnrl (MultipleNegativesRankingLoss)' "$OUT/model/README.md" &&
	grep -qxF '#### Stage 2: triplet (TripletLoss)' "$OUT/model/README.md" &&
	{ [ "$last" != cosent ] || grep -qxF '#### Stage 3: cosent (CoSENTLoss)' "$OUT/model/README.md"; }
ok $? "the card lists every training stage with its loss"
grep -qF 'Base model:** none; trained from randomly initialised weights' "$OUT/model/README.md"; ok $? "... and the base model"
awk '/^### Direct Usage \(st\)/ { on = 1 } on && /^```sh/ { getline; print; exit }' "$OUT/model/README.md" > "$TMP/snippet.sh"
(cd "$OUT/model" && PATH="$BIN:$PATH" sh "$TMP/snippet.sh") > "$TMP/snippet.out"; ok $? "the card's st snippet runs in the model's directory"
is "$(jq -c '.embedding | length' "$TMP/snippet.out" | tr '\n' ' ')" "$(jq -r '"\(.hidden_size) \(.hidden_size) "' "$OUT/model/config.json")" \
	"... two embeddings of the model's size"
! cmp -s "$OUT/init/model.safetensors" "$OUT/mnrl/model/model.safetensors"; ok $? "MNRL changed the weights"
! cmp -s "$OUT/mnrl/model/model.safetensors" "$OUT/triplet/model/model.safetensors"; ok $? "TripletLoss changed them again"
if [ "$last" = cosent ]; then
	! cmp -s "$OUT/triplet/model/model.safetensors" "$OUT/cosent/model/model.safetensors"; ok $? "CoSENT changed them again"
fi
cmp -s "$OUT/$last/model/model.safetensors" "$OUT/model/model.safetensors"; ok $? "the saved model is the last stage's"
for s in ${stages#init }; do [ -s "$OUT/plots/$s.png" ] || break; done; ok $? "training curves drawn"
is "$(find "$OUT" -name '*.tmp' -o -name '*.tmp.*' | wc -l | tr -d ' ')" 0 "no temporary files left"

# incremental: nothing to redo; a newer first stage redoes only from there on
demo -q "$OUT/model/model.safetensors" "$OUT/plots/mnrl.png" "$OUT/eval/init/wordnet-dev.json"; ok $? "a second make has nothing to do"
touch "$OUT/mnrl/model/model.safetensors"
demo -n demo > "$TMP/plan" 2>&1
grep -q 'st-loss.* triplet' "$TMP/plan" && ! grep -q 'st-loss.* mnrl' "$TMP/plan" && ! grep -q 'st-vocab' "$TMP/plan"
ok $? "a newer MNRL model retrains only TripletLoss (and what follows)"

# the curve: STS-B dev against CPU minutes, from the checkpoints (two per stage at SMALL=1)
if [ "$last" = cosent ]; then
	demo curve > "$TMP/curve.log" 2>&1; ok $? "make -f demo.mk curve" || tail -5 "$TMP/curve.log" | sed 's/^/# /'
	[ -s "$OUT/plots/sts-dev-curve.png" ]; ok $? "... draws the curve"
	is "$(tail -n +2 "$OUT/curve.csv" | wc -l | tr -d ' ')" 7 "... the random model and two checkpoints of each of 3 stages"
	tail -n +2 "$OUT/curve.csv" | awk -F, 'NR > 1 && $2 <= prev { bad = 1 } { prev = $2 } END { exit bad }'
	ok $? "... at increasing CPU minutes"
	is "$(tail -1 "$OUT/curve.csv" | cut -d, -f3)" "$(jq '.["sts-dev_spearman_cosine"]' "$OUT/eval/cosent/sts-dev.json")" \
		"... the last point is the final model's STS-B dev score"
fi
done_testing
