#!/bin/sh
# MPNet model folders end to end: st-init makes a random MPNet (MPNetModel config, relative attention bias, MPNet
# tokenizer files with RobertaProcessing); st-forward's embeddings equal an independent plain-torch MPNet +
# mean pooling (tests/reference/model_ref.py); a Hugging Face checkpoint saved with the "mpnet." prefix (and an
# MLM head, and the position_ids buffer) loads to the same embeddings; the tokenizer gives <s> A </s> from
# tokenizer.json and from a vocab.txt-only folder. With ../shared/data/tokenizers: MPNet's real vocabulary
# (bert-base-uncased's behind <s> <pad> </s> <unk>, <mask> last) tokenizes as bert-base-uncased shifted by 4, and
# transformers.js reads the tokenizer.json st-vocab writes for it to the same ids.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3

{ printf '<s>\n<pad>\n</s>\n<unk>\n[UNK]\n'; for w in the a cat dog sat on mat ran far away; do echo $w; done
  printf '<mask>\n'; } > "$TMP/vocab.txt"
cat > "$TMP/mpnet.json" <<'EOF'
{"model_type": "mpnet", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
 "intermediate_size": 32, "max_position_embeddings": 40, "layer_norm_eps": 1e-5, "initializer_range": 0.3}
EOF
st-init --config "$TMP/mpnet.json" --vocab "$TMP/vocab.txt" --seed 5 -o "$TMP/m" 2>"$TMP/err"
ok $? "st-init makes a random MPNet" || cat "$TMP/err"
is "$(jq -c '[.model_type, .architectures[0], .vocab_size]' "$TMP/m/config.json")" '["mpnet","MPNetModel",16]' \
	"config.json: model_type mpnet, MPNetModel, vocab_size from the vocabulary"
is "$(jq -r .tokenizer_class "$TMP/m/tokenizer_config.json")" MPNetTokenizer "tokenizer_config.json: MPNetTokenizer"
is "$(jq -c '[.normalizer.type, .pre_tokenizer.type, .model.type, .post_processor.type, .post_processor.cls, .post_processor.sep]' "$TMP/m/tokenizer.json")" \
	'["BertNormalizer","BertPreTokenizer","WordPiece","RobertaProcessing",["<s>",0],["</s>",2]]' \
	"tokenizer.json: BertNormalizer, BertPreTokenizer, WordPiece, RobertaProcessing <s> </s>"
is "$(jq -c '[.cls_token, .sep_token, .pad_token, .unk_token, .mask_token, .bos_token, .eos_token]' "$TMP/m/special_tokens_map.json")" \
	'["<s>","</s>","<pad>","[UNK]","<mask>","<s>","</s>"]' "special_tokens_map.json: MPNetTokenizer's special tokens"

# hand-worked: <s>=0 the=5 cat=7 sat=9 on=10 the=5 <mask>=15 zebra=[UNK]=4 </s>=2
want='[[0,5,7,9,10,5,15,4,2]]'
echo '{"texts": ["The cat sat on the <mask> zebra"]}' | st-tokenize --tokenizer "$TMP/m" --json > "$TMP/tok"
is "$(jq -c .input_ids "$TMP/tok")" "$want" "tokenizer.json: <s> A </s>, lower case, <mask>, [UNK]"
mkdir "$TMP/slow" && cp "$TMP/vocab.txt" "$TMP/slow/" &&
	echo '{"tokenizer_class": "MPNetTokenizer", "do_lower_case": true}' > "$TMP/slow/tokenizer_config.json"
echo '{"texts": ["The cat sat on the <mask> zebra"]}' | st-tokenize --tokenizer "$TMP/slow" --json > "$TMP/tok"
is "$(jq -c .input_ids "$TMP/tok")" "$want" "vocab.txt + tokenizer_config.json (MPNetTokenizer): the same ids"

if $PY -c 'import torch, numpy' 2>/dev/null; then
	$PY tests/reference/model_ref.py check "$TMP/m"; ok $? "model_ref.py: the folder is complete for Python"
	# long rows (up to 36 tokens) and short ones in one batch
	awk 'BEGIN { srand(3); for (i = 0; i < 8; i++) { n = 1 + int(rand() * 34); printf "{\"texts\": [\"t%d\"], \"input_ids\": [[0", i
		for (k = 0; k < n; k++) printf ", %d", 5 + int(rand() * 10); print ", 2]]}" } }' > "$TMP/rows.jsonl"
	st-batch --size 8 < "$TMP/rows.jsonl" | st-forward --model "$TMP/m" --json > "$TMP/fwd"
	ok $? "st-forward ran"
	cat > "$TMP/cmp.py" <<'EOF'
import json, sys
import numpy as np, torch
sys.path.insert(0, "tests/reference")
from model_ref import Model
torch.set_default_dtype(torch.float64)
rec = json.loads(open(sys.argv[2]).readline())
rows = [json.loads(l)["input_ids"][0] for l in open(sys.argv[3])]
T = max(map(len, rows))
ids = torch.tensor([r + [1] * (T - len(r)) for r in rows])
emb = Model(sys.argv[1]).embed(ids, torch.tensor([len(r) for r in rows])).detach().numpy()
ours = np.array(rec["embeddings"]).reshape(len(rows), -1)
d = np.abs(ours - emb).max()
print(f"{'ok' if d < 1e-5 else 'not ok'}\tembeddings of {len(rows)} rows up to {T} tokens equal torch's (max abs diff {d:.2e})")
EOF
	if $PY "$TMP/cmp.py" "$TMP/m" "$TMP/fwd" "$TMP/rows.jsonl" > "$TMP/cmp" 2>&1; then
		while IFS='	' read -r st what; do [ "$st" = ok ]; ok $? "$what"; done < "$TMP/cmp"
	else
		ok 1 "torch reference ran"; sed "s/^/# /" "$TMP/cmp"
	fi

	# a Hugging Face checkpoint as MPNetForMaskedLM saves it: "mpnet." prefix, lm_head.*, an int64 position_ids
	mkdir "$TMP/hf" && cp "$TMP/m/config.json" "$TMP/m/vocab.txt" "$TMP/m/tokenizer_config.json" "$TMP/hf/"
	cat > "$TMP/prefix.py" <<'EOF'
import sys
import numpy as np
sys.path.insert(0, "tests/reference")
from model_ref import read_safetensors, write_safetensors
_, w = read_safetensors(sys.argv[1] + "/model.safetensors")
out = {"mpnet." + k: v for k, v in w.items() if not k.startswith("pooler.")}
out["mpnet.embeddings.position_ids"] = np.arange(40, dtype=np.int64)[None, :]
out["lm_head.dense.weight"] = np.zeros((16, 16), np.float32)
out["lm_head.bias"] = np.zeros(16, np.float32)
write_safetensors(sys.argv[2] + "/model.safetensors", out)
EOF
	$PY "$TMP/prefix.py" "$TMP/m" "$TMP/hf" 2>"$TMP/err"; ok $? "torch wrote an mpnet.-prefixed checkpoint" || cat "$TMP/err"
	st-init --transformer "$TMP/hf" -o "$TMP/m2" 2>"$TMP/err"; ok $? "st-init --transformer wraps it" || cat "$TMP/err"
	st-batch --size 8 < "$TMP/rows.jsonl" | st-forward --model "$TMP/m2" --json > "$TMP/fwd2"
	is "$(jq -c .embeddings "$TMP/fwd2")" "$(jq -c .embeddings "$TMP/fwd")" "... to the same embeddings"
else
	ok 0 "# SKIP /usr/bin/python3 lacks torch or numpy"
fi

if [ -d "$SHARED/tokenizers/bert-base-uncased" ]; then
	# MPNet's vocabulary: <s> <pad> </s> <unk>, then bert-base-uncased's 30522 tokens, then <mask> (30527 in all)
	mkdir "$TMP/real"
	{ printf '<s>\n<pad>\n</s>\n<unk>\n'; cat "$SHARED/tokenizers/bert-base-uncased/vocab.txt"; printf '<mask>\n'; } \
		> "$TMP/real/vocab.txt"
	is "$(wc -l < "$TMP/real/vocab.txt")" 30527 "MPNet vocabulary: 30527 tokens"
	echo '{"tokenizer_class": "MPNetTokenizer", "do_lower_case": true}' > "$TMP/real/tokenizer_config.json"
	printf '%s\n' '{"texts": ["Hello, World! The quick brown fox."]}' '{"texts": ["naïve café — 東京 unaffable"]}' \
		'{"texts": ["a <mask> b [UNK] xyzzyq"]}' > "$TMP/texts"
	st-tokenize --tokenizer "$TMP/real" --json --max-seq-length -1 < "$TMP/texts" | jq -c .input_ids > "$TMP/ours"
	# bert-base-uncased's ids, shifted by 4, with [CLS]/[SEP] -> <s>/</s> (and its [MASK] for our <mask>)
	sed 's/<mask>/[MASK]/' "$TMP/texts" | st-tokenize --tokenizer "$SHARED/tokenizers/bert-base-uncased" --json \
		--max-seq-length -1 | jq -c '.input_ids | map(map(if . == 101 then 0 elif . == 102 then 2 elif . == 103 then 30526 else . + 4 end))' \
		> "$TMP/bert"
	is "$(cat "$TMP/ours")" "$(cat "$TMP/bert")" "real MPNet vocabulary: bert-base-uncased's ids shifted by 4, <s> </s>, <mask> 30526"
	st-vocab --from "$TMP/real" -o "$TMP/realjson" 2>"$TMP/err"; ok $? "st-vocab writes its tokenizer.json" || cat "$TMP/err"
	st-tokenize --tokenizer "$TMP/realjson/tokenizer.json" --json --max-seq-length -1 < "$TMP/texts" | jq -c .input_ids \
		> "$TMP/ours2"
	is "$(cat "$TMP/ours2")" "$(cat "$TMP/ours")" "... which st-tokenize reads to the same ids"
	if command -v node >/dev/null && [ -d tests/js/node_modules/@huggingface/transformers ]; then
		node tests/js/encode.mjs "$TMP/realjson" < "$TMP/texts" | jq -c .input_ids > "$TMP/js" 2>"$TMP/err"
		is "$(cat "$TMP/js")" "$(cat "$TMP/ours")" "transformers.js (MPNetTokenizer from our tokenizer.json): the same ids"
	else
		ok 0 "# SKIP node or transformers.js is absent"
	fi
else
	ok 0 "# SKIP ../shared/data/tokenizers is absent"
fi
done_testing
