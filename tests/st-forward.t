#!/bin/sh
# st-forward: embeddings added to batches; chunking, dropout replay keys and bad input.
. "$(dirname "$0")/lib.sh"

printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n' > "$TMP/vocab.txt"
for w in the a cat dog sat on mat ran far away big small red blue house tree; do echo "$w"; done >> "$TMP/vocab.txt"
cat > "$TMP/bert.json" <<'JSON'
{"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
 "intermediate_size": 32, "max_position_embeddings": 40, "hidden_dropout_prob": 0.2}
JSON
st-init --config "$TMP/bert.json" --vocab "$TMP/vocab.txt" --pooling mean,cls --dense 6 -o "$TMP/m" || exit 1

# two columns of three rows, padded to 6
cat > "$TMP/batch.json" <<'JSON'
{"kind":"batch","step":4,"epoch":0,"steps":10,"input_ids":[[[2,5,6,7,8,3],[2,9,3,0,0,0],[2,10,11,12,3,0]],[[2,13,3,0,0,0],[2,14,15,16,17,3],[2,3,0,0,0,0]]],"lengths":[[6,3,5],[3,6,2]],"labels":[1,0,1]}
{"kind":"log","step":4,"loss":0.5}
JSON

st-forward --help >/dev/null; ok $? "--help"
st-forward --model "$TMP/m" --json < "$TMP/batch.json" > "$TMP/out.json"; ok $? "forward"
is "$(head -1 "$TMP/out.json" | jq -c '[.embeddings | length, (.[0] | length), (.[0][0] | length)]')" '[2,3,6]' \
	"embeddings are [columns][rows][dim]"
is "$(head -1 "$TMP/out.json" | jq -c '[.step, .labels, .lengths]')" '[4,[1,0,1],[[6,3,5],[3,6,2]]]' \
	"the batch's other fields are kept"
is "$(sed -n 2p "$TMP/out.json" | jq -c '[.kind, .loss]')" '["log",0.5]' "other records pass through"

# the same row alone gives the same embedding as inside the padded batch
echo '{"kind":"batch","step":0,"input_ids":[[[2,9,3]]],"lengths":[[3]]}' | st-forward --model "$TMP/m" --json \
	| jq -c '.embeddings[0][0] | map(. * 10000 | round)' > "$TMP/alone"
head -1 "$TMP/out.json" | jq -c '.embeddings[0][1] | map(. * 10000 | round)' > "$TMP/inbatch"
cmp -s "$TMP/alone" "$TMP/inbatch"; ok $? "padding does not change a row's embedding"

st-forward --model "$TMP/m" < "$TMP/batch.json" | st-json | head -1 | jq -c .embeddings > "$TMP/mp"
head -1 "$TMP/out.json" | jq -c .embeddings > "$TMP/js"
cmp -s "$TMP/mp" "$TMP/js"; ok $? "msgpack output carries the same tensor"

round() { jq -c '.embeddings | flatten | map(. * 100000 | round)'; }
st-forward --model "$TMP/m" --json --mini-batch-size 1 < "$TMP/batch.json" | head -1 | round > "$TMP/mb1"
head -1 "$TMP/out.json" | round > "$TMP/mball"
cmp -s "$TMP/mb1" "$TMP/mball"; ok $? "chunks of one row give the same embeddings"

st-forward --model "$TMP/m" --json --train --seed 7 < "$TMP/batch.json" | head -1 | round > "$TMP/t7"
st-forward --model "$TMP/m" --json --train --seed 7 --mini-batch-size 2 < "$TMP/batch.json" | head -1 | round > "$TMP/t7b"
st-forward --model "$TMP/m" --json --train --seed 8 < "$TMP/batch.json" | head -1 | round > "$TMP/t8"
cmp -s "$TMP/t7" "$TMP/mball"; is $? 1 "--train: dropout changes the embeddings"
cmp -s "$TMP/t7" "$TMP/t7b"; ok $? "--train: dropout masks do not depend on the chunking"
cmp -s "$TMP/t7" "$TMP/t8"; is $? 1 "--train: another seed, other masks"
sed 's/"step":4/"step":5/' "$TMP/batch.json" | st-forward --model "$TMP/m" --json --train --seed 7 | head -1 | round > "$TMP/s5"
cmp -s "$TMP/t7" "$TMP/s5"; is $? 1 "--train: another step, other masks"

echo '{"kind":"batch","step":0,"input_ids":[[[2,21,3]]],"lengths":[[3]]}' | st-forward --model "$TMP/m" --json \
	>/dev/null 2>"$TMP/err"
is $? 65 "a token id outside the vocabulary"
grep -q 'token id 21 outside the vocabulary.*line 1' "$TMP/err"; ok $? "... named with its record"
echo '{"kind":"batch","step":0,"input_ids":[[[2,5,3]]],"lengths":[[4]]}' | st-forward --model "$TMP/m" >/dev/null 2>&1
is $? 65 "a length beyond the padded width"
echo '{"texts":["a"],"input_ids":[[2,5,3]]}' | st-forward --model "$TMP/m" >/dev/null 2>"$TMP/err"
is $? 65 "tokenized examples (not batches)"
grep -q st-batch "$TMP/err"; ok $? "... point to st-batch"
st-forward --model "$TMP/nowhere" < "$TMP/batch.json" >/dev/null 2>&1; is $? 66 "missing model folder"
rm "$TMP/m/1_Pooling/config.json"
st-forward --model "$TMP/m" < "$TMP/batch.json" >/dev/null 2>"$TMP/err"; is $? 65 "broken model folder"
grep -q '1_Pooling/config.json' "$TMP/err"; ok $? "... the missing file is named"
st-forward < "$TMP/batch.json" >/dev/null 2>&1; is $? 64 "--model is required"
done_testing
