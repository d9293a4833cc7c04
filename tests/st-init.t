#!/bin/sh
# st-init: new random models and wrapped checkpoints form complete model directories; bad requests fail clearly.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"

tiny_vocab "$TMP/vocab.txt"
tiny_config "$TMP/bert.json"

st-init --help > "$TMP/help" 2>&1; ok $? "--help exits 0"
st-init --config "$TMP/bert.json" --vocab "$TMP/vocab.txt" 2>/dev/null; is $? 64 "no -o: usage error"

st-init --config "$TMP/bert.json" --vocab "$TMP/vocab.txt" --seed 3 --pooling cls,mean --dense 8 \
	--activation relu --normalize --max-seq-length 20 -o "$TMP/m1"
ok $? "a random model with cls+mean pooling, Dense and Normalize"
for f in modules.json config_sentence_transformers.json sentence_bert_config.json config.json model.safetensors \
	README.md 1_Pooling/config.json 2_Dense/config.json 2_Dense/model.safetensors vocab.txt tokenizer.json; do
	[ -f "$TMP/m1/$f" ]; ok $? "m1/$f written"
done
[ -d "$TMP/m1/3_Normalize" ]; ok $? "m1/3_Normalize folder"
ls "$TMP" | grep -q 'm1\.tmp'; is $? 1 "no temporary folder left"
is "$(jq -c '[.[].type | split(".") | last]' "$TMP/m1/modules.json")" '["Transformer","Pooling","Dense","Normalize"]' \
	"modules.json lists the modules in order"
is "$(jq -c '[.pooling_mode_cls_token, .pooling_mode_mean_tokens, .pooling_mode_max_tokens]' "$TMP/m1/1_Pooling/config.json")" \
	'[true,true,false]' "pooling flags"
is "$(jq -c . "$TMP/m1/2_Dense/config.json")" \
	'{"in_features":32,"out_features":8,"bias":true,"activation_function":"torch.nn.modules.activation.ReLU"}' \
	"Dense config as Python writes it"
is "$(jq -c . "$TMP/m1/sentence_bert_config.json")" '{"max_seq_length":20,"do_lower_case":false}' "max_seq_length"
is "$(jq -r '.vocab_size' "$TMP/m1/config.json")" "$(wc -l < "$TMP/vocab.txt")" "vocab_size from the vocabulary"

if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
	/usr/bin/python3 tests/reference/model_ref.py check "$TMP/m1"; ok $? "independent structural check of the folder"
fi

# wrapping: a plain HF folder made from m1's Transformer files
mkdir "$TMP/hf" && cp "$TMP/m1/config.json" "$TMP/m1/model.safetensors" "$TMP/m1/vocab.txt" "$TMP/hf/"
st-init --transformer "$TMP/hf" --pooling max -o "$TMP/m2"; ok $? "wrap a Hugging Face checkpoint"
is "$(jq -r '.pooling_mode_max_tokens' "$TMP/m2/1_Pooling/config.json")" true "--pooling max"
cmp -s "$TMP/m1/model.safetensors" "$TMP/m2/model.safetensors"; ok $? "weights carried over byte for byte"

# wrapping a sentence-transformers folder without head options keeps its heads: same embeddings
st-init --transformer "$TMP/m1" -o "$TMP/m3"; ok $? "re-wrap a sentence-transformers folder"
batch='{"kind":"batch","step":0,"input_ids":[[[2,5,6,7,3],[2,8,3,0,0]]],"lengths":[[5,3]]}'
e1=$(echo "$batch" | st-forward --model "$TMP/m1" --json | jq -c .embeddings)
e3=$(echo "$batch" | st-forward --model "$TMP/m3" --json | jq -c .embeddings)
is "$e3" "$e1" "identical embeddings after the round trip"

st-init --transformer "$TMP/hf" -o "$TMP/m2" 2>/dev/null; is $? 64 "an existing output folder needs --force"
st-init --transformer "$TMP/hf" --pooling cls -o "$TMP/m2" --force; ok $? "--force replaces it"
is "$(jq -r '.pooling_mode_cls_token' "$TMP/m2/1_Pooling/config.json")" true "... with the new heads"

st-init --config "$TMP/bert.json" --vocab "$TMP/vocab.txt" --pooling median -o "$TMP/x" 2>"$TMP/err"
is $? 64 "unknown pooling mode"
grep -q median "$TMP/err"; ok $? "... named in the message"
st-init --config "$TMP/bert.json" --vocab "$TMP/vocab.txt" --max-seq-length 100 -o "$TMP/x" 2>/dev/null
is $? 64 "--max-seq-length beyond the position table"
echo '{"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 10}' \
	> "$TMP/small.json"
st-init --config "$TMP/small.json" --vocab "$TMP/vocab.txt" -o "$TMP/x" 2>"$TMP/err"; is $? 65 "vocab_size smaller than the vocabulary"
grep -q vocab_size "$TMP/err"; ok $? "... named in the message"
echo '{"model_type": "gpt2"}' > "$TMP/gpt2.json"
st-init --config "$TMP/gpt2.json" --vocab "$TMP/vocab.txt" -o "$TMP/x" 2>/dev/null; is $? 65 "unsupported model_type"
st-init --transformer "$TMP/nowhere" -o "$TMP/x" 2>/dev/null; is $? 66 "missing checkpoint folder"
[ -e "$TMP/x" ]; is $? 1 "nothing written on failure"
done_testing
