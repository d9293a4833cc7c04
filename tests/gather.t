#!/bin/bash
# st-gather outside mpirun and on bad input: without Open MPI's environment it is a pass-through (the output
# is the input, byte for byte, msgpack or JSON); under a rank's environment it refuses batches it cannot gather
# (no run stamp, no st-step to gather through, no embeddings) with the documented status. The gathering itself
# is checked against PyTorch in tests/mpi.t (it needs mpirun and st-step).
. "$(dirname "$0")/lib.sh"
unset OMPI_COMM_WORLD_RANK OMPI_COMM_WORLD_SIZE

st-gather --help > "$TMP/help" 2>&1
ok $? "--help exits 0"
grep -q '^usage: st-gather' "$TMP/help"; ok $? "--help prints the usage"
st-gather --bogus < /dev/null > /dev/null 2>"$TMP/err"
is $? 64 "an unknown option is a usage error (64)"
st-gather extra < /dev/null > /dev/null 2>"$TMP/err"
is $? 64 "an argument is a usage error (64)"

# batches as st-forward writes them (msgpack), made from JSON by st-json
printf '%s\n' '{"kind": "batch", "step": 0, "steps": 2, "embeddings": [[[1, 0]], [[0.6, 0.8]]], "labels": [1], "run_id": "00000000000000aa", "update": 0}' \
	'{"kind": "log", "step": 0, "loss": 0.5}' \
	'{"kind": "batch", "step": 1, "steps": 2, "embeddings": [[[0, 1]], [[0.8, 0.6]]], "labels": [0], "run_id": "00000000000000aa", "update": 1}' \
	> "$TMP/b.jsonl"
st-json --to-msgpack < "$TMP/b.jsonl" > "$TMP/b.mp"
st-gather < "$TMP/b.mp" > "$TMP/out.mp"
ok $? "one process: st-gather runs"
cmp -s "$TMP/b.mp" "$TMP/out.mp"; ok $? "one process: msgpack passes through byte for byte"
st-gather < "$TMP/b.jsonl" | cmp -s - "$TMP/b.jsonl"; ok $? "one process: JSON Lines pass through byte for byte"
OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=1 st-gather < "$TMP/b.mp" | cmp -s - "$TMP/b.mp"
ok $? "a world of one rank is one process"
# a closed downstream pipe is not an error
head -c 100000 /dev/zero | st-gather | head -c 10 > /dev/null
is "${PIPESTATUS[1]}" 0 "a closed downstream pipe ends st-gather quietly (0)"

# As rank 0 of 2 (the environment mpirun gives), without mpirun: nothing to gather through
export OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2
st-gather --wait-timeout 0.5 < "$TMP/b.mp" > "$TMP/out" 2>"$TMP/err"
is $? 69 "as a rank of 2 with no st-step of the run: gives up (69)"
grep -q "no st-step of run 00000000000000aa to gather through" "$TMP/err"; ok $? "... saying why" || cat "$TMP/err"
[ ! -s "$TMP/out" ]; ok $? "... and writes no batch it could not gather"
printf '%s\n' '{"kind": "batch", "step": 0, "steps": 1, "embeddings": [[[1, 0]], [[0.6, 0.8]]]}' | st-gather > /dev/null 2>"$TMP/err"
is $? 65 "a batch without a run stamp (st-forward without --run): bad data (65)"
grep -q 'batch without "run_id" (line 1)' "$TMP/err"; ok $? "... naming the record" || cat "$TMP/err"
printf '%s\n' '{"kind": "batch", "step": 0, "steps": 1, "run_id": "00000000000000aa", "update": 0}' |
	st-gather > /dev/null 2>"$TMP/err"
is $? 65 "a batch without embeddings: bad data (65)"
grep -q 'batch without "embeddings" (line 1)' "$TMP/err"; ok $? "... naming the record" || cat "$TMP/err"
printf '%s\n' '{"embeddings": [[[1, 0]]]}' | st-gather > /dev/null 2>"$TMP/err"
is $? 65 "embeddings without \"kind\": \"batch\": bad data (65)"
printf '%s\n' '{"kind": "log", "step": 3, "loss": 1.5}' | st-gather --json | jq -c '{kind, step, loss}' > "$TMP/log"
is "$(cat "$TMP/log")" '{"kind":"log","step":3,"loss":1.5}' "as a rank: records other than batches pass through"
done_testing
