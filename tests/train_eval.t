#!/bin/bash
# Evaluation during training: st-step --eval-every N --evaluator 'st-eval triplet --model "$ST_MODEL" < dev'
# --save-best. Checked: eval records at every N steps, at the epoch end and at the end (fit's places), in the
# log and in RUN/eval.jsonl; $ST_STEP handed to the evaluator; "best" set exactly when the score beats every
# earlier one; RUN/best holds the weights of the first best-scoring step (equal to that step's checkpoint),
# scores that best score again and encodes with st-encode. A scripted evaluator whose best is the first
# evaluation shows RUN/best differing from the final model; a failing evaluator stops st-step with status 70.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
[ -n "$ST_TRAIN_BIN" ] && PATH="$ST_TRAIN_BIN:$PATH"
st-forward --help 2>&1 | grep -q -- '--run' || skip_all "st-forward has no --run yet (docs/training.md)"

train_model "$TMP/model" --seed 3
ok $? "a tiny random model" || cat "$TMP/err"
# texts of words w5..w119: (anchor, positive, hard negative); the positive replaces a share 0.3 of the anchor's
# words (at least one), the negative a share 0.6
gen() {   # gen SEED COUNT
	awk -v seed="$1" -v count="$2" '
	function variant(share,   k, j, out) {
		j = int(rand() * n); out = ""
		for (k = 0; k < n; k++)
			out = out (k ? " " : "") "w" (k == j || rand() < share ? 5 + (a[k] - 4 + int(rand() * 114)) % 115 : a[k])
		return out
	}
	BEGIN { srand(seed); for (i = 0; i < count; i++) {
		n = 3 + int(rand() * 8); s = ""
		for (k = 0; k < n; k++) { a[k] = 5 + int(rand() * 115); s = s (k ? " " : "") "w" a[k] }
		printf "{\"texts\": [\"%s\", \"%s\", \"%s\"]}\n", s, variant(0.3), variant(0.6) } }'
}
gen 1 320 | st-tokenize --model "$TMP/model" > "$TMP/train.msgpack"
gen 2 200 > "$TMP/dev.jsonl"
cd "$TMP" || exit 1

# 2 epochs of 20 batches; evaluations at steps 6 12 18, the end of epoch 0 (20), 24 30 36 and the end (40)
train() {   # train RUN EVALUATOR [st-step options]
	local run=$1 evaluator=$2; shift 2
	st-batch --size 16 --epochs 2 < train.msgpack |
		st-forward --model model --run "$run" --threads 1 |
		st-loss mnrl |
		timeout --foreground 60 st-step --model model --run "$run" --threads 1 --lr 3e-3 --seed 5 --eval-every 6 \
			--evaluator "$evaluator" --json "$@"
}
train a 'echo "$ST_STEP $ST_MODEL" >> steps.txt; st-eval triplet --model "$ST_MODEL" < dev.jsonl' \
	--save-best --checkpoint-every 2 > a.log 2>err
ok $? "training with an st-eval evaluator" || cat err
is "$(jq -r 'select(.kind == "eval") | .step' a.log | tr '\n' ' ')" "6 12 18 20 24 30 36 40 " \
	"eval records every 6 steps, at the end of epoch 0 and at the end"
is "$(jq -r 'select(.kind == "eval") | .epoch' a.log | tr '\n' ' ')" "0 0 0 0 1 1 1 1 " "with their epochs"
is "$(cut -d' ' -f1 steps.txt | tr '\n' ' ')" "6 12 18 20 24 30 36 40 " "the evaluator saw \$ST_STEP"
is "$(cut -d' ' -f2 steps.txt | sort -u)" "a/current" "and \$ST_MODEL, the run's current model (a/model is the final one)"
cmp -s <(jq -c 'select(.kind == "eval") | [.step, .epoch, .score, .best]' a.log) \
	<(jq -c '[.step, .epoch, .score, .best]' a/eval.jsonl)
ok $? "RUN/eval.jsonl holds the same evaluations"
jq -r 'select(.kind == "eval") | "\(.score) \(.best)"' a.log |
	awk 'BEGIN { best = -1e300; bad = 0 } { want = ($1 > best) ? "true" : "false"; if ($2 != want) bad = 1; if ($1 > best) best = $1 }
		END { exit bad }'
ok $? "\"best\" is set exactly when the score beats all earlier ones"
best=$(jq -r 'select(.kind == "eval" and .best) | "\(.step) \(.score)"' a.log | tail -1)
read -r best_step best_score <<< "$best"
echo "# scores: $(jq -r 'select(.kind == "eval") | "\(.step):\(.score)"' a.log | tr '\n' ' ')"
[ -n "$best_step" ] && [ -d a/best ]; ok $? "RUN/best exists (best step $best_step, score $best_score)"
cmp -s a/best/model.safetensors "a/checkpoint-$best_step/model/model.safetensors"
ok $? "RUN/best holds the weights of step $best_step"
is "$(jq -r '.best_step // empty' a/trainer.json)" "$best_step" "trainer.json records the best step"
is "$(st-eval triplet --model a/best < dev.jsonl | jq -r '.cosine_accuracy')" "$best_score" "RUN/best scores the best score again"
printf 'w5 w6 w7\nw100 w12\n' | st-encode --model a/best > enc.jsonl 2>err
ok $? "st-encode loads RUN/best" || cat err
is "$(jq -r '.embedding | length' enc.jsonl | tr '\n' ' ')" "32 32 " "two 32-dim embeddings"
if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
	/usr/bin/python3 "$ROOT/tests/reference/model_ref.py" check a/best > err 2>&1
	ok $? "RUN/best is a complete model directory (model_ref.py check)" || cat err
else
	ok 0 "# SKIP /usr/bin/python3 lacks torch: RUN/best not checked by model_ref.py"
fi

# a scripted evaluator: the score falls with the step, so the best is the first evaluation
train b 'echo "{\"score\": $((1000 - ST_STEP))}"' --save-best --checkpoint-every 6 > b.log 2>err
ok $? "training with a scripted evaluator" || cat err
is "$(jq -r 'select(.kind == "eval") | "\(.step):\(.score):\(.best)"' b.log | tr '\n' ' ')" \
	"6:994:true 12:988:false 18:982:false 20:980:false 24:976:false 30:970:false 36:964:false 40:960:false " \
	"scores read from the evaluator's last number"
cmp -s b/best/model.safetensors b/checkpoint-6/model/model.safetensors; ok $? "RUN/best is the model of step 6"
! cmp -s b/best/model.safetensors b/model/model.safetensors; ok $? "which is not the final model"
cmp -s b/model/model.safetensors a/model/model.safetensors; ok $? "evaluating does not change the training"

# evaluator failures
train c 'exit 3' > /dev/null 2>err; is $? 70 "a failing evaluator stops st-step with status 70"
grep -q 'evaluator failed' err; ok $? "and says so"
train d 'echo no score here' > /dev/null 2>err; is $? 65 "an evaluator that prints no number: status 65"
done_testing
