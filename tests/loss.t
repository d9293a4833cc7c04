#!/bin/sh
# st-loss as a tool: options, pass-through, and the errors a bad batch gives (exit 65, naming the loss,
# what it needs, and the record).
. tests/lib.sh

b2='{"kind":"batch","step":7,"steps":9,"embeddings":[[[1,0,0,0],[0,1,0,0]],[[1,0.1,0,0],[0.1,1,0,0]]]'

st-loss --help | grep -q '^usage: st-loss'; ok $? "--help prints the usage"
st-loss nosuchloss </dev/null 2>/dev/null; is $? 64 "an unknown loss is a usage error"
st-loss triplet --scale 3 </dev/null 2>"$TMP/err"; is $? 64 "an option of another loss is a usage error"
grep -q 'triplet has no option --scale' "$TMP/err"; ok $? "... saying which loss lacks it"
st-loss softmax --num-labels 3 </dev/null 2>"$TMP/err"; is $? 64 "softmax without --run is a usage error"
st-loss matryoshka --dims 4 </dev/null 2>/dev/null; is $? 64 "matryoshka without an inner loss is a usage error"

# JSON Lines in, JSON Lines out; other records pass through untouched
printf '%s\n%s}\n' '{"kind":"log","step":1,"loss":2.5}' "$b2" | st-loss --json mnrl >"$TMP/out"; is $? 0 "mnrl on a JSON batch"
is "$(sed -n 1p "$TMP/out")" '{"v":1,"kind":"log","step":1,"loss":2.5}' "a log record passes through"
is "$(sed -n 2p "$TMP/out" | jq -c '[.step, (.loss|type), (.grad|length), (.grad[0]|length), (.grad[0][0]|length)]')" \
	'[7,"number",2,2,4]' "the batch gets a loss and a grad of the embeddings' shape"
# msgpack in and out
printf '%s}\n' "$b2" | st-json --to-msgpack | st-loss mnrl | st-json | jq -e '.loss > 0' >/dev/null
ok $? "msgpack in, msgpack out"

# wrong number of columns, missing or mistyped labels: exit 65, the loss says what it needs
printf '%s\n%s\n' '{"kind":"log"}' '{"kind":"batch","embeddings":[[[1,0],[0,1]]]}' | st-loss mnrl >/dev/null 2>"$TMP/err"
is $? 65 "mnrl on one column: exit 65"
is "$(cat "$TMP/err")" "st-loss: mnrl needs 2 or more text columns; got 1 (stdin, line 2)" "... naming the loss, the need and the record"
printf '%s}\n' "$b2" | st-loss triplet >/dev/null 2>"$TMP/err"; is $? 65 "triplet on two columns: exit 65"
grep -q 'triplet needs 3 text columns; got 2' "$TMP/err"; ok $? "... triplet needs 3 text columns"
printf '%s}\n' "$b2" | st-loss cosent >/dev/null 2>"$TMP/err"; is $? 65 "cosent without labels: exit 65"
grep -q 'cosent needs a score per row (labels \[rows\])' "$TMP/err"; ok $? "... cosent needs a score per row"
printf '%s,"labels":[[1,2],[3,4]]}\n' "$b2" | st-loss contrastive >/dev/null 2>"$TMP/err"; is $? 65 "contrastive with [rows][2] labels: exit 65"
grep -q 'contrastive needs a label per row' "$TMP/err"; ok $? "... contrastive needs a label per row"
printf '%s,"labels":[1,0.5]}\n' "$b2" | st-loss contrastive >/dev/null 2>"$TMP/err"; is $? 65 "contrastive with a 0.5 label: exit 65"
grep -q 'contrastive needs labels 0 or 1; row 1 has 0.5' "$TMP/err"; ok $? "... naming the row"
printf '%s,"labels":[1,2,3]}\n' "$b2" | st-loss cosent >/dev/null 2>"$TMP/err"; is $? 65 "labels with the wrong row count: exit 65"
printf '%s,"labels":"x"}\n' "$b2" | st-loss cosent >/dev/null 2>"$TMP/err"; is $? 65 "labels that are not numbers: exit 65"
grep -q 'cosent: "labels" must be a number tensor' "$TMP/err"; ok $? "... saying what labels must be"
printf '%s,"labels":[0,1]}\n' "$b2" | st-loss mse >/dev/null 2>"$TMP/err"; is $? 65 "mse without teacher embeddings: exit 65"
grep -q 'mse needs the teacher embedding as label (labels \[rows\]\[4\])' "$TMP/err"; ok $? "... mse needs [rows][dim]"
printf '{"kind":"batch","texts":["a"]}\n' | st-loss mnrl >/dev/null 2>"$TMP/err"; is $? 65 "a batch without embeddings: exit 65"
printf '%s,"labels":[0,5]}\n' "$b2" | st-loss softmax --num-labels 3 --run "$TMP/run" >/dev/null 2>"$TMP/err"
is $? 65 "softmax with a label out of range: exit 65"
grep -q 'softmax needs class labels 0..2; row 1 has 5' "$TMP/err"; ok $? "... naming the range"
printf '{"kind":"batch","embeddings":[[[1,0,0],[0,1,0]],[[1,0,0],[0,1,0]]]}\n' | st-loss angle >/dev/null 2>"$TMP/err"
is $? 65 "angle on an odd dimension: exit 65"
printf '{"kind":"batch","embeddings":[[[1,0,0],[0,1,0]],[[1,0,0],[0,1,0]]]}\n' | st-loss matryoshka --dims 8 -- mnrl >/dev/null 2>"$TMP/err"
is $? 65 "matryoshka with a dim above the embeddings': exit 65"

# a NaN or infinite loss is reported with its step and not passed on
printf '{"kind":"batch","step":41,"embeddings":[[[1e20,1e20],[0,1]],[[1e20,0],[0,1]]]}\n' |
	st-loss mnrl --similarity dot >"$TMP/out" 2>"$TMP/err"
is $? 65 "a NaN loss (overflowing dot products): exit 65"
grep -q 'mnrl: the loss at step 41 is NaN; batch not passed on' "$TMP/err"; ok $? "... naming the step ($(cat "$TMP/err"))"
is "$(wc -c <"$TMP/out" | tr -d ' ')" 0 "... and the batch is not passed on"
printf '{"kind":"batch","step":5,"embeddings":[[[3e38]]],"labels":[[-3e38]]}\n' | st-loss mse >/dev/null 2>"$TMP/err"
is $? 65 "an infinite gradient: exit 65"
grep -q 'gradient at step 5 is not finite' "$TMP/err"; ok $? "... saying so"
printf '{"kind":"batch","step":3,"embeddings":[[[0,0],[0,1]],[[1,0],[0,1]]],"labels":[0.5,1]}\n' | st-loss angle >/dev/null 2>"$TMP/err"
is $? 65 "a NaN loss (angle of a zero vector): exit 65"
grep -q 'loss at step 3 is NaN' "$TMP/err"; ok $? "... saying NaN"

# a closed downstream pipe is not an error
yes "$b2}" | head -200 | st-loss mnrl | head -c 10 >/dev/null; ok $? "a closed pipe ends st-loss quietly"

done_testing
