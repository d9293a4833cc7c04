#!/bin/bash
# Whole training runs against PyTorch: a tiny random BERT (dropout 0) trained for 30 steps by the pipeline
# st-batch | st-forward --run | st-loss | st-step, and by tests/reference/train_ref.py (plain torch BERT + mean
# pooling in float64, loss_ref.py's losses, clip_grad_norm_, torch.optim.AdamW + LambdaLR as fit() builds them)
# on the same batches in the same order. Every step's loss, lr and grad_norm (st-step's log) and the final
# weights (RUN/model/model.safetensors) must agree within 1e-4 relative; mnrl on pairs and triplet on triplets,
# each with constantlr and with warmuplinear. A torch run with another learning rate must not agree.
# Then a tiny random MPNet (relative attention bias, rows up to 42 tokens) on mnrl and triplet.
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
triplets() {   # triplets MAXWORDS CLS SEP REPLACE: positives with a fraction REPLACE of the words replaced
	awk -v W="$1" -v C="$2" -v S="$3" -v R="$4" 'BEGIN { srand(21); for (i = 0; i < 240; i++) {
	n = 1 + int(rand() * W); for (k = 0; k < n; k++) a[k] = 5 + int(rand() * 115)
	printf "{\"texts\": [\"a%d\", \"p%d\", \"n%d\"], \"input_ids\": [[%d", i, i, i, C
	for (k = 0; k < n; k++) printf ", %d", a[k]
	printf ", %d], [%d", S, C; j = int(rand() * n); for (k = 0; k < n; k++) printf ", %d", k == j || rand() < R ? 5 + (a[k] - 4 + int(rand() * 114)) % 115 : a[k]
	printf ", %d], [%d", S, C; m = 1 + int(rand() * W); for (k = 0; k < m; k++) printf ", %d", 5 + int(rand() * 115)
	printf ", %d]]}\n", S } }'
}
triplets 10 2 3 0.3 > "$TMP/triplet.jsonl"
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

# MPNet: <s> = 0, <pad> = 1, </s> = 2; up to 24 words, so that relative distances reach bucket 11 (23 and more);
# positives keep about half of their anchor's words
cat > "$TMP/mpnet.json" <<'EOF'
{"model_type": "mpnet", "vocab_size": 120, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
 "intermediate_size": 64, "max_position_embeddings": 64, "hidden_dropout_prob": 0,
 "attention_probs_dropout_prob": 0, "hidden_act": "gelu", "layer_norm_eps": 1e-5, "initializer_range": 0.02,
 "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
EOF
{ printf '<s>\n<pad>\n</s>\n<unk>\n[UNK]\n'; seq 5 119 | sed 's/^/w/'; } > "$TMP/mpnet-vocab.txt"
st-init --config "$TMP/mpnet.json" --vocab "$TMP/mpnet-vocab.txt" --seed 7 -o "$TMP/mpnet" 2>"$TMP/err"
ok $? "mpnet: a tiny random MPNet without dropout" || cat "$TMP/err"
triplets 24 0 2 0.5 > "$TMP/mpnet-triplet.jsonl"
jq -c '{texts: .texts[0:2], input_ids: .input_ids[0:2]}' "$TMP/mpnet-triplet.jsonl" > "$TMP/mpnet-mnrl.jsonl"
for loss in mnrl triplet; do
	sched=warmuplinear
	[ $loss = triplet ] && sched=constantlr
	name="mpnet-$loss-$sched"
	st-batch --size 8 --json < "$TMP/mpnet-$loss.jsonl" > "$TMP/mpnet-$loss.batches"
	st-batch --size 8 < "$TMP/mpnet-$loss.jsonl" |
		st-forward --model "$TMP/mpnet" --run "$TMP/$name" --threads 1 |
		st-loss "$loss" |
		timeout --foreground 60 st-step --model "$TMP/mpnet" --run "$TMP/$name" --threads 1 --lr $LR \
			--scheduler $sched --warmup-steps 6 --json > "$TMP/$name.log" 2>"$TMP/err"
	ok $? "$name: 30 steps through the pipeline" || cat "$TMP/err"
	/usr/bin/python3 "$REF" train "$TMP/mpnet" --objective "$loss" "$TMP/mpnet-$loss.batches" --lr $LR \
		--scheduler $sched --warmup-steps 6 --log "$TMP/$name.log" \
		--weights "$TMP/$name/model/model.safetensors" > "$TMP/cmp" 2>"$TMP/err"
	ok $? "$name: torch ran" || cat "$TMP/err"
	while IFS=$'\t' read -r rc what; do ok "$rc" "$name: $what"; done < "$TMP/cmp"
done
/usr/bin/python3 "$REF" train "$TMP/mpnet" --objective mnrl "$TMP/mpnet-mnrl.batches" --lr 1.05e-3 \
	--scheduler warmuplinear --warmup-steps 6 --log "$TMP/mpnet-mnrl-warmuplinear.log" \
	--weights "$TMP/mpnet-mnrl-warmuplinear/model/model.safetensors" > "$TMP/cmp" 2>"$TMP/err"
grep -q $'^1\tall .* trained tensors' "$TMP/cmp"; ok $? "mpnet negative control: torch with lr 1.05e-3 gives other weights"

# the comparison can fail: torch with a 5% larger learning rate must disagree on the losses and the weights
/usr/bin/python3 "$REF" train "$TMP/model" --objective mnrl "$TMP/mnrl.batches" --lr 1.05e-3 --scheduler constantlr \
	--log "$TMP/mnrl-constantlr.log" --weights "$TMP/mnrl-constantlr/model/model.safetensors" > "$TMP/cmp" 2>"$TMP/err"
grep -q $'^1\tevery update.s loss' "$TMP/cmp"; ok $? "negative control: torch with lr 1.05e-3 gives other losses"
grep -q $'^1\tall .* trained tensors' "$TMP/cmp"; ok $? "negative control: ... and other weights"
done_testing
