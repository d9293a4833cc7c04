#!/bin/sh
# st-export --onnx: the ONNX file, run in ONNX Runtime (onnxruntime-node, tests/js), gives st-encode's sentence
# embeddings within 1e-5 (max abs difference) on tiny random models of every architecture, pooling mode and head
# (bert mean; roberta cls + Dense(tanh) + Normalize; distilbert max; bert with all six pooling modes and two
# Dense layers), batched in several ways with padding; and deployed as transformers.js loads a model (its own
# tokenizer, then the graph's sentence_embedding); with ST_LONG=1 also a MiniLM-sized model on 200 STS-B
# sentences; bad invocations exit 64/66/74 and leave no file behind.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"

command -v node > /dev/null || skip_all "node is absent"
(cd tests/js && node -e "import('onnxruntime-node').then(() => 0, () => process.exit(1))") 2> /dev/null ||
	skip_all "onnxruntime-node is absent (make deps installs it in tests/js)"

# texts of many lengths; "zebra" is not in the vocabulary: its id is [UNK] = 1, RoBERTa's padding_idx below
cat > "$TMP/texts.txt" <<'TXT'
the cat sat on the mat
a dog
tree
the big red house , the small blue house and the tree . a cat ran far away
zebra ran far away
the cat sat on the mat
a small blue tree , a big red tree
dog
the zebra sat on a mat . the dog ran
red
TXT
jq -Rc '{texts: [.]}' "$TMP/texts.txt" > "$TMP/texts.jsonl"

# check NAME PAD DESCRIPTION: export model $TMP/NAME, run it in batches of 1 (no padding), 3 (+2 pads) and 10
# (+5 pads), compare with st-encode
check() {
	name=$1 pad=$2 what=$3
	st-export --onnx --model "$TMP/$name" -o "$TMP/$name.onnx" 2> "$TMP/err"
	ok $? "$what: exported"
	[ -s "$TMP/err" ] && sed 's/^/#   /' "$TMP/err"
	st-encode --model "$TMP/$name" < "$TMP/texts.txt" > "$TMP/$name.st"
	st-tokenize --model "$TMP/$name" --json < "$TMP/texts.jsonl" > "$TMP/$name.tok"
	for plan in "1 0" "3 2" "10 5"; do
		set -- $plan
		node tests/js/onnx-run.mjs "$TMP/$name.onnx" "$pad" "$1" "$2" < "$TMP/$name.tok" > "$TMP/$name.ort" 2> "$TMP/err"
		ok $? "$what: ONNX Runtime runs it, batches of $1, $2 extra pads"
		[ -s "$TMP/err" ] && sed 's/^/#   /' "$TMP/err"
		diff=$(/usr/bin/python3 - "$TMP/$name.st" "$TMP/$name.ort" <<'PY'
import json, sys
a = [json.loads(l)["embedding"] for l in open(sys.argv[1])]
b = [json.loads(l)["embedding"] for l in open(sys.argv[2])]
if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
    print("shapes differ: %d vs %d rows" % (len(a), len(b)))
else:
    print("%.3g" % max(abs(u - v) for x, y in zip(a, b) for u, v in zip(x, y)))
PY
)
		/usr/bin/python3 -c "import sys; sys.exit(0 if float('$diff') < 1e-5 else 1)" 2> /dev/null
		ok $? "$what: max |ONNX - st-encode| = $diff < 1e-5 (batches of $1, +$2 pads)"
	done
}

# jscheck NAME DESCRIPTION: the model as transformers.js deploys it (NAME/onnx/model.onnx; its tokenizer,
# padded batches of 4) against st-encode
jscheck() {
	rm -rf "$TMP/js-$1" && cp -R "$TMP/$1" "$TMP/js-$1" && mkdir "$TMP/js-$1/onnx" && cp "$TMP/$1.onnx" "$TMP/js-$1/onnx/model.onnx"
	node tests/js/embed.mjs "$TMP/js-$1" < "$TMP/texts.txt" > "$TMP/$1.tjs" 2> "$TMP/err"
	ok $? "$2: transformers.js loads and runs it"
	[ -s "$TMP/err" ] && sed 's/^/#   /' "$TMP/err"
	diff=$(/usr/bin/python3 -c '
import json, sys
a = [json.loads(l)["embedding"] for l in open(sys.argv[1])]
b = [json.loads(l)["embedding"] for l in open(sys.argv[2])]
print("%.3g" % max(abs(u - v) for x, y in zip(a, b) for u, v in zip(x, y)) if len(a) == len(b) else "rows differ")
' "$TMP/$1.st" "$TMP/$1.tjs")
	/usr/bin/python3 -c "import sys; sys.exit(0 if float('$diff') < 1e-5 else 1)" 2> /dev/null
	ok $? "$2: max |transformers.js - st-encode| = $diff < 1e-5"
}

tiny_model "$TMP/bert"
check bert 0 "bert, mean pooling"

cat > "$TMP/roberta.json" <<'JSON'
{"model_type": "roberta", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
 "intermediate_size": 32, "max_position_embeddings": 40, "pad_token_id": 1, "type_vocab_size": 1,
 "hidden_act": "gelu_new", "layer_norm_eps": 1e-5}
JSON
st-init --config "$TMP/roberta.json" --vocab "$TMP/vocab.txt" --seed 3 --pooling cls --dense 8 --activation tanh \
	--normalize -o "$TMP/roberta" 2> "$TMP/err"
ok $? "a tiny roberta with cls pooling, Dense(tanh) and Normalize"
check roberta 1 "roberta, cls + Dense(tanh) + Normalize"
is "$(jq -r '.embedding | map(. * .) | add | . * 1000 | round' "$TMP/roberta.ort" | sort -u)" 1000 \
	"roberta: ONNX embeddings have unit norm"

cat > "$TMP/distil.json" <<'JSON'
{"model_type": "distilbert", "dim": 16, "n_layers": 2, "n_heads": 2, "hidden_dim": 24,
 "max_position_embeddings": 40, "activation": "relu"}
JSON
st-init --config "$TMP/distil.json" --vocab "$TMP/vocab.txt" --seed 5 --pooling max -o "$TMP/distil" 2> "$TMP/err"
ok $? "a tiny distilbert with max pooling"
check distil 0 "distilbert, max pooling"

st-init --config "$TMP/bert.json" --vocab "$TMP/vocab.txt" --seed 7 \
	--pooling cls,max,mean,mean_sqrt_len,weightedmean,lasttoken --dense 12 --activation gelu --no-bias \
	--dense 6 --activation sigmoid -o "$TMP/allpool" 2> "$TMP/err"
ok $? "a tiny bert with all six pooling modes, Dense(gelu, no bias), Dense(sigmoid)"
check allpool 0 "bert, six pooling modes + two Dense"

if (cd tests/js && node -e "import('@huggingface/transformers').then(() => 0, () => process.exit(1))") 2> /dev/null; then
	jscheck bert "bert, mean pooling"
	jscheck roberta "roberta, cls + Dense(tanh) + Normalize"
else
	echo "# transformers.js is absent: its checks are skipped"
fi

# At the size of all-MiniLM-L6-v2 (random weights; its real tokenizer; STS-B sentences), with ST_LONG=1
if [ -n "$ST_LONG" ] && [ -d "$SHARED/tokenizers/all-MiniLM-L6-v2" ] && [ -d "$SHARED/stsbenchmark" ]; then
	echo '{"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
	       "intermediate_size": 1536, "max_position_embeddings": 512, "vocab_size": 30522}' > "$TMP/mini.json"
	st-init --config "$TMP/mini.json" --vocab "$SHARED/tokenizers/all-MiniLM-L6-v2" --normalize -o "$TMP/mini" 2> "$TMP/err"
	ok $? "a MiniLM-sized bert with the all-MiniLM-L6-v2 tokenizer"
	head -200 "$SHARED/stsbenchmark/sts-dev.csv" | cut -f6 > "$TMP/texts.txt"
	jq -Rc '{texts: [.]}' "$TMP/texts.txt" > "$TMP/texts.jsonl"
	check mini 0 "MiniLM size, 200 STS-B sentences"
fi

# the graph's interface
{ node tests/js/onnx-run.mjs --io "$TMP/bert.onnx"; node tests/js/onnx-run.mjs --io "$TMP/roberta.onnx"; } > "$TMP/io" 2>&1
is "$(cat "$TMP/io")" "input_ids,attention_mask,token_type_ids -> sentence_embedding,token_embeddings
input_ids,attention_mask -> sentence_embedding,token_embeddings" "inputs and outputs (token_type_ids for BERT only)"

# bad invocations
st-export --model "$TMP/bert" -o "$TMP/x.onnx" 2> "$TMP/err"
is $? 64 "no format: exit 64"
grep -q -- "--onnx" "$TMP/err"; ok $? "... the message names --onnx"
st-export --onnx --model "$TMP/bert" --opset 13 -o "$TMP/x.onnx" 2> /dev/null
is $? 64 "unknown option: exit 64"
st-export --onnx --model "$TMP/none" -o "$TMP/x.onnx" 2> "$TMP/err"
is $? 66 "a missing model: exit 66"
grep -q "$TMP/none" "$TMP/err"; ok $? "... naming it"
st-export --onnx --model "$TMP/bert" -o "$TMP/no/such/dir/x.onnx" 2> "$TMP/err"
is $? 74 "an output that cannot be created: exit 74"
[ ! -e "$TMP/x.onnx" ] && [ -z "$(ls "$TMP" | grep '\.tmp\.')" ]; ok $? "no file and no temporary file left behind"
cp "$TMP/bert.onnx" "$TMP/keep.onnx"
st-export --onnx --model "$TMP/roberta" -o "$TMP/bert.onnx" && ! cmp -s "$TMP/bert.onnx" "$TMP/keep.onnx"
ok $? "an existing file is replaced (by rename)"
done_testing
