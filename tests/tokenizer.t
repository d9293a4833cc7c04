#!/bin/sh
# st-tokenize and st-vocab as programs: ids against the Python oracle ids, records in and out (JSON Lines and
# msgpack), truncation, exit codes, and a vocabulary trained from text that st-tokenize then uses.
. tests/lib.sh
need_shared tokenizer-oracles
BERT="$SHARED/tokenizers/bert-base-uncased"
O="$SHARED/tokenizer-oracles"

st-tokenize --help > /dev/null; ok $? "st-tokenize --help"
st-vocab --help > /dev/null; ok $? "st-vocab --help"

# the first 200 SQuAD questions as examples; expected ids: the oracle's with [CLS] = 101 and [SEP] = 102
jq -c '.[:200][] | {texts: [.original], label: 1}' "$O/question_tokens.json" > "$TMP/q.jsonl"
jq -c '.[:200][] | [101] + . + [102]' "$O/tokenized_questions.json" > "$TMP/want"
st-tokenize --model "$BERT" --json < "$TMP/q.jsonl" > "$TMP/out.jsonl"
ok $? "st-tokenize --model DIR --json"
jq -c '.input_ids[0]' "$TMP/out.jsonl" > "$TMP/got"
cmp -s "$TMP/got" "$TMP/want"; ok $? "200 SQuAD questions: ids equal the oracle's"
is "$(jq -c '[.texts, .label]' "$TMP/out.jsonl" | head -1)" "$(jq -c '[.texts, .label]' "$TMP/q.jsonl" | head -1)" \
	"the record keeps its texts and label"

# msgpack out: input_ids are int32 tensors
st-tokenize --model "$BERT" < "$TMP/q.jsonl" | st-json > "$TMP/mp.jsonl"
jq -c '.input_ids[0]' "$TMP/mp.jsonl" | cmp -s - "$TMP/want"; ok $? "msgpack output, read back by st-json, has the same ids"
st-tokenize --model "$BERT" < "$TMP/q.jsonl" | /usr/bin/python3 -c '
import msgpack, sys
for r in msgpack.Unpacker(sys.stdin.buffer, raw=False):
    t = r["input_ids"][0]
    assert t["dtype"] == "i32" and len(t["shape"]) == 1 and len(t["data"]) == 4 * t["shape"][0], t
print("ok")' > "$TMP/py" 2>&1
is "$(cat "$TMP/py")" "ok" "msgpack tensors are {dtype: i32, shape: [n], data: bin}"

# a datasets row with two text columns; truncation counts [CLS] and [SEP]
echo '{"sentence1": "Which NFL team represented the AFC at Super Bowl 50?", "sentence2": "Hi", "label": 0.5}' |
	st-tokenize --tokenizer "$BERT/vocab.txt" --max-seq-length 6 --json > "$TMP/row.jsonl"
is "$(jq -c '.input_ids' "$TMP/row.jsonl")" "[[101,2029,5088,2136,3421,102],[101,7632,102]]" \
	"two columns, --max-seq-length 6 (oracle ids 2029 5088 2136 3421 for 'which nfl team represented')"
echo '{"texts": ["  Hello  "]}' | st-tokenize --model "$BERT" --json | jq -c '.input_ids[0]' > "$TMP/strip"
is "$(cat "$TMP/strip")" "[101,7592,102]" "texts are stripped as sentence-transformers does"

# RoBERTa: multilingual oracle entries (first 20) through the tool
jq -c '.[:20][] | {texts: [.text]}' "$O/multilingual/inputs.json" > "$TMP/ml.jsonl"
st-tokenize --model "$SHARED/tokenizers/roberta-base" --json --no-strip --max-seq-length -1 < "$TMP/ml.jsonl" |
	jq -c '.input_ids[0]' > "$TMP/ml.got"
jq -c '.entries[:20][] | .input_ids' "$O/multilingual/roberta_base.json" > "$TMP/ml.want"
cmp -s "$TMP/ml.got" "$TMP/ml.want"; ok $? "roberta-base through st-tokenize: 20 multilingual oracle entries"

# errors
st-tokenize --model "$TMP/none" < /dev/null 2> "$TMP/err"; is $? 66 "missing model: exit 66"
grep -q "$TMP/none" "$TMP/err"; ok $? "the message names the path"
printf '%s\n' '{"texts": ["a"]}' '{"label": 1}' '{"texts": ["b"]}' > "$TMP/bad.jsonl"
st-tokenize --model "$BERT" --json < "$TMP/bad.jsonl" > /dev/null 2> "$TMP/err"; is $? 65 "a record without texts: exit 65"
grep -q "line 2" "$TMP/err"; ok $? "the message names the record ($(cat "$TMP/err"))"
n=$(st-tokenize --model "$BERT" --json --skip-bad < "$TMP/bad.jsonl" 2> "$TMP/err" | wc -l)
is "$n" 2 "--skip-bad skips it"
grep -q "warning" "$TMP/err"; ok $? "with a warning"
st-tokenize < /dev/null 2>/dev/null; is $? 64 "no tokenizer given: exit 64"
mkdir -p "$TMP/v"
printf '[PAD]\nhello\n\377\n' > "$TMP/v/vocab.txt"
st-tokenize --model "$TMP/v" < /dev/null 2> "$TMP/err"; is $? 65 "malformed vocab.txt: exit 65"
grep -q "vocab.txt: line 3" "$TMP/err"; ok $? "names file and line ($(cat "$TMP/err"))"

# st-vocab: train, then tokenize with the result
jq -r '.[].original' "$O/question_tokens.json" > "$TMP/corpus.txt"
st-vocab --vocab-size 2000 --min-frequency 2 -o "$TMP/trained" < "$TMP/corpus.txt" 2> "$TMP/err"
ok $? "st-vocab trains on 10,570 questions"
for f in vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json; do
	[ -s "$TMP/trained/$f" ]; ok $? "st-vocab wrote $f"
done
is "$(head -5 "$TMP/trained/vocab.txt" | tr '\n' ' ')" "[PAD] [UNK] [CLS] [SEP] [MASK] " "special tokens first"
n=$(wc -l < "$TMP/trained/vocab.txt")
[ "$n" -le 2000 ] && [ "$n" -gt 1000 ]; ok $? "vocabulary size $n <= 2000"
[ "$(sort "$TMP/trained/vocab.txt" | uniq -d | wc -l)" -eq 0 ]; ok $? "no duplicate tokens"
grep -qx "which" "$TMP/trained/vocab.txt" && grep -qx "the" "$TMP/trained/vocab.txt"; ok $? "frequent words became tokens"
echo '{"texts": ["Which NFL team won Super Bowl 50?"]}' | st-tokenize --model "$TMP/trained" --json > "$TMP/t.jsonl"
ok $? "st-tokenize uses the trained model directory"
# decoding the ids with the trained vocab.txt gives back the normalized words (## pieces glued)
got=$(jq -r '.input_ids[0][]' "$TMP/t.jsonl" | awk -v v="$TMP/trained/vocab.txt" 'BEGIN { while ((getline l < v) > 0) tok[n++] = l }
	{ t = tok[$1]; if (t ~ /^##/) s = s substr(t, 3); else s = s (s == "" ? "" : " ") t } END { print s }')
is "$got" "[CLS] which nfl team won super bowl 50 ? [SEP]" "trained ids decode to the lower-cased words"
printf '' | st-vocab -o "$TMP/empty" 2>/dev/null; is $? 65 "no text: exit 65"
done_testing
