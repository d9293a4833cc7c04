#!/bin/bash
# Kept activations: st-forward --run hands each batch's activations to st-step, which then back-propagates
# without re-running the forward pass. The reference is the same run with recomputation (GradCache, itself
# compared with PyTorch in train_parity.t and with one full-batch backward in step_gradcache.t): gradients and
# the final weights must be the very same bits (dropout on: the masks are the ones st-forward drew). Whenever
# the activations do not fit (other chunks in st-step, over the budget, --keep-activations 0) st-step
# recomputes, and says so in its log ("reforwarded" chunks).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
[ -n "$ST_TRAIN_BIN" ] && PATH="$ST_TRAIN_BIN:$PATH"
st-forward --help 2>&1 | grep -q -- '--keep-activations' || skip_all "st-forward has no --keep-activations"

train_model "$TMP/model" --dropout 0.2 --seed 4 --dense 16
ok $? "a tiny random model with dropout and a Dense head"
awk 'BEGIN { srand(5); for (i = 0; i < 24; i++) { printf "{\"texts\": [\"a%d\", \"b%d\"], \"input_ids\": [", i, i;
	for (c = 0; c < 2; c++) { n = 1 + int(rand() * 14); printf "%s[2", c ? ", " : "";
		for (k = 0; k < n; k++) printf ", %d", 5 + int(rand() * 115); printf ", 3]" }
	print "]}" } }' > "$TMP/ex.jsonl"

# train NAME FORWARD-OPTIONS -- STEP-OPTIONS: three steps of batch 8, leaves grads, log, model
train() {
	name=$1
	shift
	fwd=()
	while [ "$1" != -- ]; do fwd+=("$1"); shift; done
	shift
	st-batch --size 8 < "$TMP/ex.jsonl" |
		st-forward --model "$TMP/model" --run "$TMP/run-$name" --threads 2 "${fwd[@]}" |
		st-loss mnrl |
		timeout --foreground 60 st-step --model "$TMP/model" --run "$TMP/run-$name" --threads 2 --lr 1e-3 \
			--grad-out "$TMP/g-$name" --json "$@" > "$TMP/log-$name" 2> "$TMP/err-$name"
}
reforwarded() { jq -s '[.[] | select(.kind == "log") | .reforwarded] | add' "$TMP/log-$1"; }

train kept --mini-batch-size 3 -- --mini-batch-size 3
ok $? "three steps, activations kept (chunks of 3 rows on both sides)" || cat "$TMP/err-kept"
is "$(reforwarded kept)" 0 "st-step ran no forward pass again"
[ ! -e "$TMP/run-kept/activations-0" ]
ok $? "st-forward removed RUN/activations-0 when it finished"

train recomputed --mini-batch-size 3 --keep-activations 0 -- --mini-batch-size 3
ok $? "the same run with --keep-activations 0" || cat "$TMP/err-recomputed"
is "$(reforwarded recomputed)" 18 "st-step recomputed every chunk (3 steps x 2 columns x 3 chunks)" ||
	jq -c 'select(.kind == "log")' "$TMP/log-recomputed"
cmp -s "$TMP/g-kept" "$TMP/g-recomputed"
ok $? "the gradients of every step are the same bits with and without recomputation"
cmp -s "$TMP/run-kept/model/model.safetensors" "$TMP/run-recomputed/model/model.safetensors"
ok $? "so are the final weights"
is "$(jq -c 'select(.kind == "log") | [.loss, .grad_norm]' "$TMP/log-kept")" \
   "$(jq -c 'select(.kind == "log") | [.loss, .grad_norm]' "$TMP/log-recomputed")" "and the logged losses and norms"

train other --mini-batch-size 3 -- --mini-batch-size 4
ok $? "st-step with other chunks (4 rows) than st-forward (3)" || cat "$TMP/err-other"
is "$(reforwarded other)" 12 "st-step recomputed every chunk (3 steps x 2 columns x 2 chunks)"

train budget --mini-batch-size 3 --keep-activations 0.01 -- --mini-batch-size 3
ok $? "a budget (10 KiB) below one batch's activations" || cat "$TMP/err-budget"
is "$(reforwarded budget)" "$(reforwarded recomputed)" "st-step recomputed every chunk"
cmp -s "$TMP/g-budget" "$TMP/g-recomputed"
ok $? "with the same gradients"
done_testing
