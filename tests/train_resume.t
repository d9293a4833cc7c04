#!/bin/bash
# Training through the run directory: a tiny model with dropout on, trained by the whole pipeline.
# Same seed, data and threads give bit-identical weights; a run killed after a checkpoint and resumed with
# --resume ends with the weights of a run that was never stopped, bit for bit. Leftovers are cleaned up.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
# (every st-step runs under timeout: a stage that does not flush each batch deadlocks the synchronous pipeline)
# ST_TRAIN_BIN: a folder of st-* binaries to try first (development of the stages before they land in bin/)
[ -n "$ST_TRAIN_BIN" ] && PATH="$ST_TRAIN_BIN:$PATH"
st-forward --help 2>&1 | grep -q -- '--run' || skip_all "st-forward has no --run yet (docs/training.md)"

train_model "$TMP/model" --seed 3
ok $? "a tiny random model" || cat "$TMP/err"
# 48 pairs of random token ids, lengths 3..12
awk 'BEGIN { srand(11); for (i = 0; i < 48; i++) { printf "{\"texts\": [\"a%d\", \"b%d\"], \"input_ids\": [", i, i;
	for (c = 0; c < 2; c++) { n = 1 + int(rand() * 10); printf "%s[2", c ? ", " : "";
		for (k = 0; k < n; k++) printf ", %d", 5 + int(rand() * 115); printf ", 3]" }
	print "]}" } }' > "$TMP/ex.jsonl"

STEPS=18   # 3 epochs of 6 batches
train() {   # train RUN START [st-step options...]
	local run=$1 start=$2; shift 2
	st-batch --size 8 --epochs 3 --shuffle --seed 5 --start-step "$start" < "$TMP/ex.jsonl" |
		st-forward --model "$TMP/model" --run "$run" --threads 1 |
		st-loss mnrl |
		timeout --foreground 30 st-step --model "$TMP/model" --run "$run" --threads 1 --lr 1e-3 --warmup-steps 10% --mini-batch-size 3 \
			--seed 9 --checkpoint-every 4 --checkpoint-limit 2 --json "$@"
}

train "$TMP/a" 0 > "$TMP/a.log" 2>"$TMP/err"; ok $? "training run A" || cat "$TMP/err"
is "$(grep -c '"kind":"log"' "$TMP/a.log")" "$STEPS" "one log record per step"
is "$(jq -r 'select(.kind == "log") | [.step, .epoch] | @tsv' "$TMP/a.log" | tail -1 | tr '\t' ' ')" "17 2" \
	"last record: step 17 of epoch 2"
jq -e 'select(.kind == "log") | (.loss | type == "number") and .lr >= 0 and .grad_norm > 0 and .examples_per_s > 0' \
	"$TMP/a.log" | grep -qv true; [ $? -ne 0 ]; ok $? "every log record has loss, lr, grad_norm, examples_per_s"
is "$(jq -r 'select(.kind == "log") | .lr' "$TMP/a.log" | head -1)" "0" "warmup starts at lr 0 (optimizer.step before scheduler.step)"
is "$(cd "$TMP/a" && ls -d checkpoint-* | sort | tr '\n' ' ')" "checkpoint-16 checkpoint-18 " \
	"checkpoints every 4 steps and at the end, the newest 2 kept"
for f in modules.json config.json model.safetensors 1_Pooling/config.json; do
	[ -f "$TMP/a/model/$f" ]; ok $? "the run's model directory has $f"
done
cmp -s "$TMP/a/model/model.safetensors" "$TMP/a/checkpoint-18/model/model.safetensors"
ok $? "the final checkpoint holds the final weights"
! cmp -s "$TMP/a/model/model.safetensors" "$TMP/model/model.safetensors"; ok $? "the weights changed"

train "$TMP/b" 0 > "$TMP/b.log" 2>"$TMP/err"; ok $? "training run B, the same again" || cat "$TMP/err"
cmp -s "$TMP/a/model/model.safetensors" "$TMP/b/model/model.safetensors"; ok $? "bit-identical weights"
cmp -s <(jq -c 'del(.examples_per_s)' "$TMP/a.log") <(jq -c 'del(.examples_per_s)' "$TMP/b.log")
ok $? "identical losses, learning rates and gradient norms"

# run C: the whole pipeline (its own process group) is killed once a checkpoint exists, then resumed
set -m   # job control: the background pipeline gets a process group of its own, with id $!
(set +m; train "$TMP/c" 0 > "$TMP/c.log" 2>/dev/null) &
pid=$!
set +m
for i in $(seq 1 600); do [ -d "$TMP/c/checkpoint-8" ] && break; sleep 0.01; done
kill -9 -- -$pid 2>/dev/null
wait $pid 2>/dev/null
ls -d "$TMP"/c/*.tmp.* >/dev/null 2>&1 && echo "# the kill left a temporary folder behind (cleaned up by the resume)"
[ ! -d "$TMP/c/checkpoint-$STEPS" ]; ok $? "run C was killed before its end"
last=$(cd "$TMP/c" && ls -d checkpoint-* | sed -n "s/^checkpoint-\([0-9]*\)$/\1/p" | sort -n | tail -1)
[ -n "$last" ] && [ -f "$TMP/c/checkpoint-$last/optimizer.bin" ]; ok $? "a complete checkpoint survived ($last)"
train "$TMP/c" "$last" --resume > "$TMP/c2.log" 2>"$TMP/err"; rc=$?; sed "s/^/# /" "$TMP/err"; ok $rc "run C resumed from checkpoint-$last"
cmp -s "$TMP/a/model/model.safetensors" "$TMP/c/model/model.safetensors"
ok $? "resumed weights equal the uninterrupted run's bit for bit"
cmp -s <(jq -c 'select(.step >= '"$last"') | del(.examples_per_s)' "$TMP/a.log") <(jq -c 'del(.examples_per_s)' "$TMP/c2.log")
ok $? "the resumed steps log the same losses"
is "$(cd "$TMP/c" && ls | grep -c '\.tmp\.')" "0" "no temporary files left"

# a second trainer on a live run is refused; st-step without st-forward input ends cleanly
: | st-step --model "$TMP/model" --run "$TMP/d" --json > /dev/null 2>"$TMP/err"; is $? 65 "empty input: exit 65"
[ ! -e "$TMP/d/model" ]; ok $? "... and no model written"
st-step --run "$TMP/e" 2>/dev/null; is $? 64 "--model or --resume is required"
st-step --run "$TMP/e" --resume 2>/dev/null; is $? 66 "--resume without a checkpoint: missing input"
done_testing
