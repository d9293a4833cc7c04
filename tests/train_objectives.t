#!/bin/bash
# Two training objectives (fit's train_objectives): triplet (cosine distance) on triplets and mnrl
# on pairs, one pipeline each,
# ending in a FIFO, both read by one st-step (--input F0 --input F1). st-step takes one batch from each in turn
# per global step, with one AdamW and schedule per objective over the shared weights, and stops with the
# shorter input. Checked: the round-robin order of the log, every update's loss/lr/grad_norm and the final
# weights against PyTorch doing the same (tests/reference/train_ref.py: two optimizers, two LambdaLR, round
# robin, as fit() does), each objective's loss going down, and bit-identical results across two runs with
# dropout on, also when the run is stopped at a checkpoint and resumed.
# (Cosine, not the default Euclidean distance: Euclidean triplet gives the last LayerNorm bias a gradient that is
# zero in exact arithmetic, which Adam in float32 turns into a drift of rounding noise, in torch float32 as in
# st; mnrl then sees that drift, so the float64 oracle could not be matched. tests/train_parity.t covers
# Euclidean triplet alone.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
[ -n "$ST_TRAIN_BIN" ] && PATH="$ST_TRAIN_BIN:$PATH"
st-forward --help 2>&1 | grep -q -- '--objective' || skip_all "st-forward has no --objective yet (docs/st-step.md)"
/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || skip_all "/usr/bin/python3 lacks torch or numpy"
REF="$ROOT/tests/reference/train_ref.py"

for drop in 0 0.1; do
	train_model "$TMP/model-$drop" --dropout $drop --seed 5
	ok $? "a tiny random model, dropout $drop" || cat "$TMP/err"
done
# triplets (positive = anchor with a third of its words replaced, at least one; negative random): 120 of them; pairs built
# the same way from other random draws: 160. Batches of 8: 15 and 20 steps; training stops after 15.
gen() {   # gen SEED COUNT COLUMNS
	awk -v seed="$1" -v count="$2" -v cols="$3" 'BEGIN { srand(seed); for (i = 0; i < count; i++) {
		n = 1 + int(rand() * 10); for (k = 0; k < n; k++) a[k] = 5 + int(rand() * 115)
		printf "{\"texts\": [\"a%d\", \"p%d\"%s], \"input_ids\": [[2", i, i, cols == 3 ? ", \"n" i "\"" : ""
		for (k = 0; k < n; k++) printf ", %d", a[k]
		printf ", 3], [2"; j = int(rand() * n); for (k = 0; k < n; k++) printf ", %d", k == j || rand() < 0.3 ? 5 + (a[k] - 4 + int(rand() * 114)) % 115 : a[k]
		if (cols == 3) { printf ", 3], [2"; m = 1 + int(rand() * 10); for (k = 0; k < m; k++) printf ", %d", 5 + int(rand() * 115) }
		print ", 3]]}" } }'
}
gen 31 120 3 > "$TMP/triplets.jsonl"
gen 32 160 2 > "$TMP/pairs.jsonl"
st-batch --size 8 --json < "$TMP/triplets.jsonl" > "$TMP/triplets.batches"
st-batch --size 8 --json < "$TMP/pairs.jsonl" > "$TMP/pairs.batches"

train() {   # train MODEL RUN [st-step options...]: two pipelines into FIFOs, one st-step
	local model=$1 run=$2; shift 2
	rm -f "$TMP/f0" "$TMP/f1"
	mkfifo "$TMP/f0" "$TMP/f1" || return 1
	(st-batch --size 8 --start-step "${START:-0}" < "$TMP/triplets.jsonl" |
		st-forward --model "$model" --run "$run" --objective 0 --threads 1 |
		st-loss triplet --distance cosine > "$TMP/f0") 2>"$TMP/err0" &
	local p0=$!
	(st-batch --size 8 --start-step "${START:-0}" < "$TMP/pairs.jsonl" |
		st-forward --model "$model" --run "$run" --objective 1 --threads 1 |
		st-loss mnrl > "$TMP/f1") 2>"$TMP/err1" &
	local p1=$!
	timeout --foreground 60 st-step --model "$model" --run "$run" --input "$TMP/f0" --input "$TMP/f1" --threads 1 \
		--json "$@"
	local rc=$?
	# the mnrl pipeline has batches left: its st-forward stops quietly once st-step has finished
	wait $p0 || rc=$((rc + 100))
	wait $p1
	cat "$TMP/err0" "$TMP/err1" >&2
	return $rc
}

LR=1e-3
train "$TMP/model-0" "$TMP/a" --lr $LR --warmup-steps 3 > "$TMP/a.log" 2>"$TMP/err"
ok $? "two objectives through FIFOs into one st-step" || cat "$TMP/err"
is "$(jq -r 'select(.kind == "log") | "\(.step)/\(.objective)"' "$TMP/a.log" | tr '\n' ' ')" \
	"$(for s in $(seq 0 14); do printf '%s/0 %s/1 ' $s $s; done)" \
	"round robin: step s takes objective 0 then 1; stops after 15 steps with the shorter input"
is "$(jq -r 'select(.kind == "log") | .lr' "$TMP/a.log" | head -6 | tr '\n' ' ')" \
	"$(/usr/bin/python3 -c "print(' '.join(repr(x) for x in [0, 0, $LR/3, $LR/3, 2*$LR/3, 2*$LR/3]) + ' ')")" \
	"one schedule per objective (warmup of 3 over 15 steps): both start at lr 0"
/usr/bin/python3 "$REF" train "$TMP/model-0" --objective triplet "$TMP/triplets.batches" \
	--loss-options '{"distance": "cosine"}' \
	--objective mnrl "$TMP/pairs.batches" --lr $LR --warmup-steps 3 --log "$TMP/a.log" \
	--weights "$TMP/a/model/model.safetensors" > "$TMP/cmp" 2>"$TMP/err"
ok $? "torch ran fit() with the two objectives" || cat "$TMP/err"
while IFS=$'\t' read -r rc what; do ok "$rc" "torch: $what"; done < "$TMP/cmp"

# st's own log: each objective's loss goes down (mean of its first and last 3 updates)
for o in 0 1; do
	jq -r "select(.kind == \"log\" and .objective == $o) | .loss" "$TMP/a.log" |
		awk 'NR <= 3 { a += $1 } { v[NR] = $1 } END { for (i = NR - 2; i <= NR; i++) z += v[i];
			printf "%s %.4f -> %.4f\n", (z < a ? 0 : 1), a / 3, z / 3 }' > "$TMP/dec"
	read -r rc what < "$TMP/dec"
	ok "$rc" "objective $o: st's loss went down ($what)"
done

# dropout on (masks keyed by update = step * 2 + objective): two runs give bit-identical weights and logs
for r in b c; do
	train "$TMP/model-0.1" "$TMP/$r" --lr $LR --warmup-steps 3 --seed 7 > "$TMP/$r.log" 2>"$TMP/err"
	ok $? "dropout 0.1, run $r" || cat "$TMP/err"
done
cmp -s "$TMP/b/model/model.safetensors" "$TMP/c/model/model.safetensors"; ok $? "dropout on: bit-identical weights"
cmp -s <(jq -c 'del(.examples_per_s)' "$TMP/b.log") <(jq -c 'del(.examples_per_s)' "$TMP/c.log")
ok $? "dropout on: identical logs"
! cmp -s <(jq -c 'select(.kind == "log") | .loss' "$TMP/a.log") <(jq -c 'select(.kind == "log") | .loss' "$TMP/b.log")
ok $? "dropout changes the losses (the masks are applied)"

# stopped after 7 steps at a checkpoint and resumed (both pipelines from step 7): the weights of run b
train "$TMP/model-0.1" "$TMP/r" --lr $LR --warmup-steps 3 --seed 7 --max-steps 7 --checkpoint-every 7 \
	> "$TMP/r1.log" 2>"$TMP/err"
ok $? "dropout 0.1, run r: 7 steps, checkpoint-7" || cat "$TMP/err"
[ -f "$TMP/r/checkpoint-7/optimizer.bin" ]; ok $? "checkpoint-7 written"
START=7 train "$TMP/model-0.1" "$TMP/r" --resume > "$TMP/r2.log" 2>"$TMP/err"
ok $? "run r resumed from checkpoint-7 with both objectives" || cat "$TMP/err"
cmp -s "$TMP/b/model/model.safetensors" "$TMP/r/model/model.safetensors"
ok $? "resumed weights equal the uninterrupted run's bit for bit"
cmp -s <(jq -c 'select(.kind == "log" and .step >= 7) | del(.examples_per_s)' "$TMP/b.log") \
	<(jq -c 'select(.kind == "log") | del(.examples_per_s)' "$TMP/r2.log")
ok $? "the resumed steps log the same losses, learning rates and norms"
done_testing
