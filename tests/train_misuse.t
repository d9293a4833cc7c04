#!/bin/bash
# Misuse of the training loop fails loudly, with a message naming the fix (issues 10 and 11): the README's
# pipeline, a run directory that is a model, embeddings not from the run's weights, a buffering stage, no batch,
# records without "kind": "batch", input that ends short, NaN gradients, an old run directory, a full file
# system, user files in the run directory, --start-step past the newest checkpoint, an evaluator reading stdin,
# a FIFO for model.safetensors, SIGTERM, and st-loss softmax's settings taken from st-step's run.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"
cd "$TMP" || exit 1

tiny_model m --seed 3
words=($TINY_WORDS)
awk -v w="$TINY_WORDS" 'BEGIN { n = split(w, a, " "); srand(5); for (i = 0; i < 40; i++) {
	s = a[1 + int(rand() * 15)] " " a[1 + int(rand() * 15)] " " a[1 + int(rand() * 15)];
	t = a[1 + int(rand() * 15)] " " a[1 + int(rand() * 15)];
	printf "{\"texts\": [\"%s\", \"%s\"], \"label\": %d}\n", s, t, i % 3 } }' > ex.jsonl
st-tokenize --model m < ex.jsonl > tok.msgpack; ok $? "tokenized examples"
STEPS=5   # 40 examples in batches of 8

# train RUN [st-step options]: the README's pipeline, corrected (st-forward --run, st-step --model --run)
train() {
	local run=$1; shift
	st-batch --size 8 < tok.msgpack | st-forward --model m --run "$run" --threads 1 | st-loss mnrl |
		timeout --foreground 60 st-step --model m --run "$run" --threads 1 --lr 1e-3 --json "$@"
}

echo "# $(date +%T) issue 10.2: the README's first pipeline"
train run > log 2>err; ok $? "st-forward --model m --run run | st-loss mnrl | st-step --model m --run run" || cat err
[ -f run/model/model.safetensors ] && [ "$(grep -c '"kind":"log"' log)" = $STEPS ]; ok $? "... trains $STEPS steps, writes run/model"
train m > /dev/null 2>err; is $? 64 "st-step --run MODEL-DIRECTORY is refused"
grep -q 'is a model directory.*--run run' err; ok $? "... naming the fix (a new run directory)" || cat err
[ ! -e m/weights.bin ] && [ ! -e m/model ]; ok $? "... and nothing written into the model directory"

echo "# $(date +%T) issue 10.3: embeddings not from the run's weights"
st-batch --size 8 < tok.msgpack | st-forward --model m --train | st-loss mnrl |
	timeout 60 st-step --model m --run stale --threads 1 > /dev/null 2>err
is $? 65 "st-forward --train without --run: st-step refuses the batches"
grep -q 'no run stamp.*give st-forward --run stale' err; ok $? "... naming the fix (st-forward --run DIR)" || cat err
[ ! -e stale/model ]; ok $? "... no model written"
# a batch embedded for another run
train other > /dev/null 2>&1
st-batch --size 8 < tok.msgpack | st-forward --model m --run other2 --threads 1 | st-loss --json mnrl |
	jq -c --unbuffered '.run_id = "0123456789abcdef"' | timeout 60 st-step --model m --run other2 > /dev/null 2>err
is $? 65 "a batch stamped for another run is refused"
grep -q 'another run.*give st-forward --run other2' err; ok $? "... naming the run directory to give" || cat err

echo "# $(date +%T) issue 10.4: a buffering stage between st-forward and st-step"
start=$(date +%s)
st-batch --size 8 < tok.msgpack | { st-forward --model m --run buf --wait-timeout 3 --threads 1 2>fwd.err; echo $? > fwd.rc; } |
	st-json | jq -c 'del(.example_ids)' | st-json --to-msgpack | st-loss mnrl |
	timeout 60 st-step --model m --run buf --threads 1 > /dev/null 2>err
rc=$?
took=$(( $(date +%s) - start ))
[ "$took" -lt 40 ]; ok $? "a buffering jq in the loop does not hang (${took} s)"
is "$(cat fwd.rc)" 69 "st-forward gives up at --wait-timeout with status 69"
grep -q 'jq needs --unbuffered' fwd.err; ok $? "... naming the likely cause (jq --unbuffered, stdbuf -oL)" || cat fwd.err
[ $rc -ne 0 ] && [ ! -e buf/model ]; ok $? "st-step then ends non-zero without a model"
st-batch --size 8 < tok.msgpack | st-forward --model m --run unbuf --wait-timeout 20 --threads 1 |
	st-json | jq -c --unbuffered 'del(.example_ids)' | st-json --to-msgpack | st-loss mnrl |
	timeout 60 st-step --model m --run unbuf --threads 1 > /dev/null 2>err
ok $? "with jq --unbuffered the same loop trains" || cat err

start=$(date +%s)
timeout 20 st-step --model m --run waits --wait-timeout 2 < <(sleep 30) > /dev/null 2>err; rc=$?
is "$rc $(( $(date +%s) - start < 15 ))" "69 1" "st-step waiting for batches gives up at --wait-timeout (69)"
grep -q 'no batch for step 0 within 2 s.*jq --unbuffered' err; ok $? "... saying what it waited for and the likely cause" || cat err

echo "# $(date +%T) issue 10.5: no batch at all"
timeout 20 st-step --model m --run empty < /dev/null > /dev/null 2>err; is $? 65 "st-step < /dev/null: exit 65"
grep -q 'no batch arrived' err && [ ! -e empty/model ]; ok $? "... 'no batch arrived', no model written"
st-batch --size 8 < tok.msgpack | st-forward --model m --run trip --threads 1 | st-loss triplet 2>/dev/null |
	timeout 60 st-step --model m --run trip > /dev/null 2>err
is $? 65 "st-loss failing (pairs given to triplet): st-step exits 65"
[ ! -e trip/model ]; ok $? "... without a model"

echo "# $(date +%T) issue 10.6 / 11.5: records without "kind": "batch""
st-batch --size 8 --json < tok.msgpack | head -1 | jq -c 'del(.kind)' | st-forward --model m --json > nokind.jsonl
st-loss mnrl < nokind.jsonl > /dev/null 2>err; is $? 65 "st-loss: embeddings without \"kind\": \"batch\" are refused"
grep -q 'batches carry "kind": "batch"' err; ok $? "... naming the key to add" || cat err
st-batch --size 8 --json < tok.msgpack | head -1 | st-forward --model m --json | st-loss --json mnrl |
	jq -c 'del(.kind)' | timeout 20 st-step --model m --run nokind --trust-embeddings > /dev/null 2>err
is $? 65 "st-step: a stream of batches without \"kind\" is refused"
grep -q 'batches carry "kind": "batch"' err && [ ! -e nokind/model ]; ok $? "... naming the key, no model" || cat err

echo "# $(date +%T) issue 11.5: the input ends short"
st-batch --size 8 < tok.msgpack | st-forward --model m --run short --threads 1 | st-loss --json mnrl | sed -u 3q |
	timeout 60 st-step --model m --run short --threads 1 --checkpoint-every 2 > /dev/null 2>err
is $? 65 "3 of $STEPS batches: st-step exits 65"
grep -q "ended short at step 3 of $STEPS" err; ok $? "... reporting 'ended short at step 3 of $STEPS'" || cat err
[ ! -e short/model ] && [ -d short/checkpoint-2 ]; ok $? "... no final model; the checkpoint written stays"

echo "# $(date +%T) issue 11.4: NaN or infinite gradients"
# as a loss stage in another language could write it: a float32 +Inf in the msgpack tensor (JSON cannot say Inf,
# and st's JSON reader refuses 1e39 for a float32)
cat > inf.py <<'EOF'
import os, struct, sys, msgpack
out = sys.stdout.buffer
records = msgpack.Unpacker(raw=False)
while True:
    chunk = os.read(0, 1 << 16)   # what has arrived, not a full buffer: the loop is synchronous
    if not chunk:
        break
    records.feed(chunk)
    for rec in records:
        if rec.get("step") == 2:
            g = rec["grad"]
            g["data"] = struct.pack("<f", float("inf")) + bytes(g["data"])[4:]
        out.write(msgpack.packb(rec, use_bin_type=True))
        out.flush()
EOF
st-batch --size 8 < tok.msgpack | st-forward --model m --run nan --threads 1 | st-loss mnrl | /usr/bin/python3 inf.py |
	timeout 60 st-step --model m --run nan --threads 1 > /dev/null 2>err
is $? 65 "an infinite gradient at step 2: exit 65"
grep -q 'step 2 has a\(n\)\? \(infinite value\|NaN\) in "grad"' err && [ ! -e nan/model ]; ok $? "... naming the step, no model" || cat err

echo "# $(date +%T) issue 11.6: a fresh run in an old run directory"
echo "my notes" > run/notes.txt
train run --checkpoint-every 2 > /dev/null 2>err; is $? 64 "a fresh run in a finished run's directory is refused"
grep -q -- '--resume.*--overwrite' err; ok $? "... naming --resume and --overwrite" || cat err
train run --checkpoint-every 2 --overwrite > /dev/null 2>err; ok $? "--overwrite starts afresh" || cat err
[ -f run/notes.txt ] && [ -f run/model/model.safetensors ]; ok $? "... keeping the user's file"
cmp -s run/model/model.safetensors run/checkpoint-$STEPS/model/model.safetensors; ok $? "... with its own checkpoints"

echo "# $(date +%T) issue 11: st-step refuses before a slow st-forward has started"
# The st-forward of this pipeline starts 3 s late (as under a slow build): st-step, forked after it by the shell,
# has refused (a fresh run in a finished run directory) and written RUN/failed before st-forward's main() runs.
# The note names st-step's process group and fork time: st-forward must take it as its own pipeline's and stop,
# not wait for --wait-timeout (before: it waited the 30 s, then exit 69 'no st-step published').
start=$(date +%s)
st-batch --size 8 < tok.msgpack |
	{ sleep 3; exec st-forward --model m --run run --threads 1 --wait-timeout 30 2>late.err; } | st-loss mnrl 2>/dev/null |
	timeout --foreground 60 st-step --model m --run run --threads 1 > /dev/null 2>err
rcs="${PIPESTATUS[1]} ${PIPESTATUS[3]}"
is "$rcs $(( $(date +%s) - start < 15 ))" "69 64 1" "st-forward started after st-step's refusal stops at once (69)"
grep -q 'run failed before it began (exit status 64' late.err; ok $? "... saying st-step failed first, with its status" || cat late.err
grep -q '^process group [0-9]* pid [0-9]* forked [0-9]*$' run/failed; ok $? "... the note names st-step's pipeline" || cat run/failed
# a note left by an earlier pipeline of this same script (same process group, forked before) is not ours: the
# next run in that directory trains
train run --checkpoint-every 2 --overwrite > /dev/null 2>err; ok $? "an old note of the same process group is ignored" || cat err
[ ! -e run/failed ]; ok $? "... and removed by the st-step that starts"

echo "# $(date +%T) issue 11.10: only st's own leftovers are removed"
mkdir -p keep && echo data > keep/data.tmp.1 && echo x > keep/notes.tmp.4194303
mkdir keep/checkpoint-3.tmp.4194303 && echo x > keep/trainer.json.tmp.4194303
train keep > /dev/null 2>err; ok $? "training in a directory with user files named *.tmp.*" || cat err
[ -f keep/data.tmp.1 ] && [ -f keep/notes.tmp.4194303 ]; ok $? "... the user's files stay"
[ ! -e keep/checkpoint-3.tmp.4194303 ] && [ ! -e keep/trainer.json.tmp.4194303 ]; ok $? "... st's leftovers go"

echo "# $(date +%T) issue 11.3: a full file system at the start"
mkdir full
unshare -rm sh -c 'mount -t tmpfs -o size=16k tmpfs full && exec st-step --model m --run full/run < /dev/null' \
	> /dev/null 2>err
rc=$?
if grep -q 'Operation not permitted\|unshare failed' err; then
	ok 0 "# SKIP no tmpfs (unshare): $(head -1 err)"; ok 0 "# SKIP"
else
	is $rc 74 "st-step on a full file system: exit 74 (no SIGBUS)"
	grep -q 'No space left' err; ok $? "... saying so" || cat err
fi

echo "# $(date +%T) issue 11.13: hangs"
train ck --checkpoint-every 2 --max-steps 2 > /dev/null 2>&1
start=$(date +%s)
st-batch --size 8 --start-step 4 < tok.msgpack | st-forward --model m --run ck --threads 1 2>err | st-loss mnrl |
	timeout 60 st-step --run ck --resume > /dev/null 2>/dev/null
took=$(( $(date +%s) - start ))
[ "$took" -lt 30 ] && grep -q 'give st-batch --start-step 2' err; ok $? "--start-step past the newest checkpoint fails at once (${took} s), naming it" || cat err
st-batch --size 8 --start-step 99 < tok.msgpack > /dev/null 2>err; is $? 64 "st-batch --start-step past the end: exit 64"
train evalstdin --eval-every 2 --evaluator 'cat > /dev/null; echo 0.5' > /dev/null 2>err
ok $? "an evaluator that reads stdin does not hang the run (its stdin is /dev/null)" || cat err
mkdir fifo && cp m/*.json m/*.txt fifo/ 2>/dev/null; cp -R m/1_Pooling fifo/ 2>/dev/null; mkfifo fifo/model.safetensors
st-batch --size 8 < tok.msgpack | timeout 20 st-forward --model fifo > /dev/null 2>err; is $? 65 "model.safetensors as a FIFO: refused (65), not waited on"

echo "# $(date +%T) issue 11.14: SIGTERM and SIGINT checkpoint at a step boundary"
st-batch --size 8 --epochs 40 < tok.msgpack | st-forward --model m --run ref --threads 1 | st-loss mnrl |
	timeout 60 st-step --model m --run ref --threads 1 --lr 1e-3 > /dev/null 2>&1
for sig in TERM INT; do
	rm -f f && mkfifo f
	(st-batch --size 8 --epochs 40 < tok.msgpack | st-forward --model m --run s$sig --threads 1 | st-loss mnrl > f) 2>/dev/null &
	st-step --model m --run s$sig --threads 1 --lr 1e-3 --json --input f --wait-timeout 60 > s$sig.log 2>err &
	pid=$!
	for i in $(seq 1 2000); do [ "$(grep -c log s$sig.log 2>/dev/null)" -ge 2 ] && break; sleep 0.01; done
	kill -$sig $pid; wait $pid; rc=$?
	wait
	want=$((128 + $(kill -l $sig)))
	is $rc $want "SIG$sig: st-step exits $want"
	last=$(ls -d s$sig/checkpoint-* 2>/dev/null | sed 's/.*-//' | sort -n | tail -1)
	[ -n "$last" ] && [ ! -e s$sig/model ]; ok $? "... after writing checkpoint-$last, without a final model" || cat err
	st-batch --size 8 --epochs 40 --start-step "${last:-0}" < tok.msgpack | st-forward --model m --run s$sig --threads 1 |
		st-loss mnrl | timeout 60 st-step --run s$sig --resume --threads 1 > /dev/null 2>err
	ok $? "... --resume finishes the run" || cat err
	cmp -s ref/model/model.safetensors s$sig/model/model.safetensors; ok $? "... bit-identical to an uninterrupted run"
done

echo "# $(date +%T) issue 10.10: st-loss softmax takes its optimizer settings from st-step's run"
soft() {   # soft RUN [st-loss options]
	local run=$1; shift
	st-batch --size 8 < tok.msgpack | st-forward --model m --run "$run" --threads 1 |
		st-loss softmax --num-labels 3 --run "$run" "$@" |
		timeout 60 st-step --model m --run "$run" --threads 1 --lr 3e-3 --warmup-steps 2 --weight-decay 0.05 \
			--max-grad-norm 0.5 --seed 9 > /dev/null
}
soft sa 2>err; ok $? "softmax trained with st-step's settings only" || cat err
jq -e '.lr == 0.003 and .warmup_steps == "2" and .weight_decay == 0.05' sa/training.json > /dev/null
ok $? "st-step writes its settings to RUN/training.json"
soft sb --lr 3e-3 --warmup-steps 2 --weight-decay 0.05 --max-grad-norm 0.5 --seed 9 2>err
cmp -s sa/loss-softmax.safetensors sb/loss-softmax.safetensors
ok $? "the classifier equals one trained with the same settings given to st-loss by hand"
soft sc --lr 1e-2 2>err
! cmp -s sa/loss-softmax.safetensors sc/loss-softmax.safetensors; ok $? "an option given to st-loss still overrides"
done_testing
