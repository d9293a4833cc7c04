#!/bin/bash
# Fault injection: kill -9 of a random stage (st-batch, st-forward, st-loss or st-step) at a random moment of a
# small training run. Each time: the run does not end looking finished (st-step's status is not 0 and RUN/model is
# absent) unless the kill came after the stage's work was complete, in which case the model equals the reference;
# and --resume from the newest checkpoint (a fresh --overwrite start when there is none) ends with weights equal,
# bit for bit, to those of a run that was never interrupted.
# FAULT_RUNS (default 5) kills; FAULT_SEED the random sequence. `make check-hostile` runs FAULT_RUNS=100.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"
cd "$TMP" || exit 1
RUNS=${FAULT_RUNS:-5}
RANDOM=${FAULT_SEED:-$$}

tiny_model m --seed 3
awk -v w="$TINY_WORDS" 'BEGIN { n = split(w, a, " "); srand(7); for (i = 0; i < 40; i++) {
	s = a[1 + int(rand() * 15)] " " a[1 + int(rand() * 15)] " " a[1 + int(rand() * 15)];
	t = a[1 + int(rand() * 15)] " " a[1 + int(rand() * 15)];
	printf "{\"texts\": [\"%s\", \"%s\"]}\n", s, t } }' > ex.jsonl
st-tokenize --model m < ex.jsonl > tok.msgpack || skip_all "cannot tokenize"

STEP_OPTS="--threads 1 --lr 1e-3 --warmup-steps 10% --seed 4 --checkpoint-every 3 --checkpoint-limit 2 --json"
# stages RUN START [st-step options]: the four stages as separate processes joined by FIFOs (their pids in
# $pid_batch $pid_forward $pid_loss $pid_step), so that any one can be killed
stages() {
	local run=$1 start=$2; shift 2
	rm -f f1 f2 f3 && mkfifo f1 f2 f3
	st-batch --size 8 --epochs 4 --shuffle --seed 2 --start-step "$start" < tok.msgpack > f1 2>>stage.err & pid_batch=$!
	st-forward --model m --run "$run" --threads 1 --wait-timeout 60 < f1 > f2 2>>stage.err & pid_forward=$!
	st-loss mnrl < f2 > f3 2>>stage.err & pid_loss=$!
	st-step --run "$run" $STEP_OPTS --wait-timeout 60 "$@" < f3 > "$run.log" 2>>stage.err & pid_step=$!
}
finish() {   # waits for the four stages; $rc_step is st-step's status
	wait $pid_batch; wait $pid_forward; wait $pid_loss
	wait $pid_step; rc_step=$?
}

start=$(date +%s%N)
stages ref 0 --model m; finish
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
is "$rc_step" 0 "the uninterrupted reference run (${took_ms} ms)" || cat stage.err
[ -f ref/model/model.safetensors ] || { done_testing; exit; }

names=(batch forward loss step)
missed=0 short=0 resumed=0 bad=0
for i in $(seq 1 "$RUNS"); do
	run=r$i
	victim=${names[RANDOM % 4]}
	delay_ms=$(( RANDOM % (took_ms * 4 / 5 + 1) ))   # the reference includes start-up and the final saves
	: > stage.err
	stages $run 0 --model m
	sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
	pid_var=pid_$victim
	kill -9 "${!pid_var}" 2>/dev/null; killed=$?
	finish
	what="run $i: kill -9 st-$victim after $delay_ms ms"
	if [ "$rc_step" = 0 ]; then
		# the victim had done its part (or was gone): a finished run must be the reference's
		cmp -s ref/model/model.safetensors $run/model/model.safetensors
		ok $? "$what: st-step finished (the kill came after the stage's work), weights equal the reference" ||
			{ bad=$((bad + 1)); sed 's/^/# /' stage.err >&2; }
		missed=$((missed + 1))
		continue
	fi
	short=$((short + 1))
	[ ! -e $run/model ]; ok $? "$what: st-step exits $rc_step, no final model" ||
		{ bad=$((bad + 1)); sed 's/^/# /' stage.err >&2; }
	last=$(ls -d $run/checkpoint-* 2>/dev/null | sed -n 's/.*checkpoint-\([0-9]*\)$/\1/p' | sort -n | tail -1)
	: > stage.err
	if [ -n "$last" ]; then
		stages $run "$last" --resume
	else
		stages $run 0 --model m --overwrite
	fi
	finish
	from=${last:+checkpoint-$last}
	[ "$rc_step" = 0 ] && cmp -s ref/model/model.safetensors $run/model/model.safetensors
	ok $? "$what: resumed from ${from:-the start}, bit-identical final weights" ||
		{ bad=$((bad + 1)); echo "# the resumed st-step exited $rc_step; the stages said:" >&2; sed 's/^/# /' stage.err >&2; }
	resumed=$((resumed + 1))
	rm -rf $run
done
echo "# $RUNS kills: $short ended short and were resumed ($resumed bit-identical checks), $missed came after the" \
	"stage's work was done; $bad failures"
done_testing
