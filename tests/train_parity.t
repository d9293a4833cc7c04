#!/bin/bash
# Whole training runs against PyTorch: a tiny random BERT (dropout 0) trained for 30 steps by the pipeline
# st-batch | st-forward --run | st-loss | st-step, and by tests/reference/train_ref.py (plain torch BERT + mean
# pooling in float64, loss_ref.py's losses, clip_grad_norm_, torch.optim.AdamW + LambdaLR as fit() builds them)
# on the same batches in the same order. Every step's loss, lr and grad_norm (st-step's log) and the final
# weights (RUN/model/model.safetensors) must agree within 1e-4 relative; mnrl on pairs and triplet on triplets,
# each with constantlr and with warmuplinear. A torch run with another learning rate must not agree.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
[ -n "$ST_TRAIN_BIN" ] && PATH="$ST_TRAIN_BIN:$PATH"
st-forward --help 2>&1 | grep -q -- '--run' || skip_all "st-forward has no --run yet (docs/training.md)"
/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || skip_all "/usr/bin/python3 lacks torch or numpy"
REF="$ROOT/tests/reference/train_ref.py"

train_model "$TMP/model" --dropout 0 --seed 7
ok $? "a tiny random model without dropout" || cat "$TMP/err"
# 240 triplets of token ids ([CLS] ... [SEP], 1..10 words): the positive is the anchor with a third of its
# words replaced, at least one (at a = p the distance's gradient vanishes and only rounding is left, which Adam
# would amplify), the negative is random, so there is something to learn; the pairs are the first two columns
awk 'BEGIN { srand(21); for (i = 0; i < 240; i++) {
	n = 1 + int(rand() * 10); for (k = 0; k < n; k++) a[k] = 5 + int(rand() * 115)
	printf "{\"texts\": [\"a%d\", \"p%d\", \"n%d\"], \"input_ids\": [[2", i, i, i
	for (k = 0; k < n; k++) printf ", %d", a[k]
	printf ", 3], [2"; j = int(rand() * n); for (k = 0; k < n; k++) printf ", %d", k == j || rand() < 0.3 ? 5 + (a[k] - 4 + int(rand() * 114)) % 115 : a[k]
	printf ", 3], [2"; m = 1 + int(rand() * 10); for (k = 0; k < m; k++) printf ", %d", 5 + int(rand() * 115)
	print ", 3]]}" } }' > "$TMP/triplet.jsonl"
jq -c '{texts: .texts[0:2], input_ids: .input_ids[0:2]}' "$TMP/triplet.jsonl" > "$TMP/mnrl.jsonl"

LR=1e-3
for loss in mnrl triplet; do
	# 30 batches of 8 in input order (no --shuffle): torch reads the very same batches
	st-batch --size 8 --json < "$TMP/$loss.jsonl" > "$TMP/$loss.batches"
	is "$(grep -c '"kind":"batch"' "$TMP/$loss.batches")" 30 "$loss: 30 batches"
	for sched in constantlr warmuplinear; do
		name="$loss-$sched"
		st-batch --size 8 < "$TMP/$loss.jsonl" |
			st-forward --model "$TMP/model" --run "$TMP/$name" --threads 1 |
			st-loss "$loss" |
			timeout --foreground 60 st-step --model "$TMP/model" --run "$TMP/$name" --threads 1 --lr $LR \
				--scheduler $sched --warmup-steps 6 --json > "$TMP/$name.log" 2>"$TMP/err"
		ok $? "$name: 30 steps through the pipeline" || cat "$TMP/err"
		/usr/bin/python3 "$REF" train "$TMP/model" --objective "$loss" "$TMP/$loss.batches" --lr $LR \
			--scheduler $sched --warmup-steps 6 --log "$TMP/$name.log" \
			--weights "$TMP/$name/model/model.safetensors" > "$TMP/cmp" 2>"$TMP/err"
		ok $? "$name: torch ran" || cat "$TMP/err"
		while IFS=$'\t' read -r rc what; do ok "$rc" "$name: $what"; done < "$TMP/cmp"
	done
done

# the comparison can fail: torch with a 5% larger learning rate must disagree on the losses and the weights
/usr/bin/python3 "$REF" train "$TMP/model" --objective mnrl "$TMP/mnrl.batches" --lr 1.05e-3 --scheduler constantlr \
	--log "$TMP/mnrl-constantlr.log" --weights "$TMP/mnrl-constantlr/model/model.safetensors" > "$TMP/cmp" 2>"$TMP/err"
grep -q $'^1\tevery update.s loss' "$TMP/cmp"; ok $? "negative control: torch with lr 1.05e-3 gives other losses"
grep -q $'^1\tall .* trained tensors' "$TMP/cmp"; ok $? "negative control: ... and other weights"
done_testing
