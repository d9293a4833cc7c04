#!/bin/bash
# Fine-tuning a model downloaded from the Hub by name, end to end with mnrl:
#   st-tokenize --model org/NAME | st-batch | st-forward --model org/NAME --run RUN | st-loss mnrl
#     | st-step --model org/NAME --run RUN
# against tests/hub_server.py on 127.0.0.1 with a cold cache. Checked for each model: the run succeeds; its
# final weights equal, bit for bit, those of the same run started from the local folder the server serves (so
# the download changed nothing); the saved RUN/model reloads (st-encode, st-init --transformer) and encodes
# differently from the start; the run and its model card hold no trace of the cache path or a token.
#
# The models: a tiny BERT, MPNet and XLM-R (SentencePiece Unigram) made here; more architectures are added with finetune_case NAME DIR below, or with
# HUB_FINETUNE_MODELS="DIR ..." (each a sentence-transformers folder whose tokenizer knows the words w5..w119 or
# maps them to [UNK]).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
command -v python3 >/dev/null || skip_all "python3 is absent"
st-forward --help 2>&1 | grep -q -- '--run' || skip_all "st-forward has no --run yet (docs/training.md)"

cat > "$TMP/bert.json" <<'EOF'
{"model_type": "bert", "vocab_size": 120, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
 "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 2, "hidden_dropout_prob": 0.1,
 "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.02,
 "pad_token_id": 0}
EOF
{ printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n'; seq 5 119 | sed 's/^/w/'; } > "$TMP/vocab.txt"
st-init --config "$TMP/bert.json" --vocab "$TMP/vocab.txt" --seed 3 -o "$TMP/bert" 2> "$TMP/err" ||
	skip_all "st-init cannot build a model: $(head -1 "$TMP/err")"

# (anchor, positive) pairs of words w5..w119; the positive replaces about a third of the anchor's words
awk 'BEGIN { srand(11); for (i = 0; i < 64; i++) {
	n = 3 + int(rand() * 6); a = ""; p = ""
	for (k = 0; k < n; k++) { w = 5 + int(rand() * 115); a = a (k ? " " : "") "w" w
		p = p (k ? " " : "") "w" (rand() < 0.3 ? 5 + int(rand() * 115) : w) }
	printf "{\"texts\": [\"%s\", \"%s\"]}\n", a, p } }' > "$TMP/pairs.jsonl"
printf 'w5 w6 w7\nw50 w51\n' > "$TMP/probe.txt"

TOKEN=hf_finetune_token_41c2
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$TMP"' EXIT
unset HF_HUB_OFFLINE

train() {   # train MODEL RUN: 2 epochs of batches of 8, mnrl; the log on stdout
	st-tokenize --model "$1" < "$TMP/pairs.jsonl" |
		st-batch --size 8 --epochs 2 --shuffle --seed 1 |
		st-forward --model "$1" --run "$2" --threads 1 |
		st-loss mnrl |
		timeout --foreground 120 st-step --model "$1" --run "$2" --threads 1 --lr 1e-3 --seed 5 --json
}

finetune_case() {   # finetune_case NAME DIR
	local name=$1 dir=$2 n=0
	rm -f "$TMP/port"
	python3 tests/hub_server.py --port-file "$TMP/port" --log "$TMP/$name.log" --token "$TOKEN" \
		"org/$name=$dir,private" 2> "$TMP/server.err" &
	server_pid=$!
	while [ ! -s "$TMP/port" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	[ -s "$TMP/port" ] || { cat "$TMP/server.err"; skip_all "the test server did not start"; }
	export HF_ENDPOINT="http://127.0.0.1:$(cat "$TMP/port")" HF_HOME="$TMP/hf-$name" HF_TOKEN=$TOKEN

	(cd "$TMP" && train "org/$name" "run-$name") > "$TMP/$name.train.log" 2> "$TMP/$name.err"
	ok $? "$name: fine-tuning org/$name from a cold cache with mnrl" || sed 's/^/#   /' "$TMP/$name.err"
	is "$(jq -r 'select(.loss != null) | .loss' "$TMP/$name.train.log" | wc -l)" 16 "$name: 16 steps logged"
	kill "$server_pid" 2>/dev/null
	wait "$server_pid" 2>/dev/null
	server_pid=
	unset HF_ENDPOINT HF_TOKEN

	(cd "$TMP" && train "$dir" "local-$name") > "$TMP/$name.local.log" 2>> "$TMP/$name.err"
	ok $? "$name: the same run from the local folder"
	cmp -s "$TMP/run-$name/model/model.safetensors" "$TMP/local-$name/model/model.safetensors"
	ok $? "$name: the same final weights, bit for bit"

	st-encode --model "$dir" < "$TMP/probe.txt" > "$TMP/$name.before" 2>> "$TMP/$name.err"
	st-encode --model "$TMP/run-$name/model" < "$TMP/probe.txt" > "$TMP/$name.after" 2>> "$TMP/$name.err"
	ok $? "$name: the saved model reloads (st-encode)"
	! cmp -s "$TMP/$name.before" "$TMP/$name.after"; ok $? "$name: and encodes differently from the start"
	st-init --transformer "$TMP/run-$name/model" -o "$TMP/again-$name" 2>> "$TMP/$name.err" &&
		st-encode --model "$TMP/again-$name" < "$TMP/probe.txt" > "$TMP/$name.again" 2>> "$TMP/$name.err"
	cmp -s "$TMP/$name.after" "$TMP/$name.again"; ok $? "$name: st-init --transformer RUN/model keeps it"
	[ -z "$(find "$TMP/run-$name" -type l)" ]; ok $? "$name: the run holds files, not links into the cache"
	! grep -rqF -e "$TOKEN" -e "$TMP/hf-$name" "$TMP/run-$name" "$TMP/$name.err" "$TMP/$name.train.log"
	ok $? "$name: no token and no cache path in the run, its card or the messages"
}

finetune_case bert "$TMP/bert"

# MPNet (all-mpnet-base-v2's architecture): MPNetTokenizer's specials first, relative attention bias, random
cat > "$TMP/mpnet.json" <<'EOF'
{"model_type": "mpnet", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
 "intermediate_size": 64, "max_position_embeddings": 66, "hidden_dropout_prob": 0.1,
 "attention_probs_dropout_prob": 0.1, "pad_token_id": 1, "initializer_range": 0.02}
EOF
{ printf '<s>\n<pad>\n</s>\n<unk>\n[UNK]\n'; seq 5 119 | sed 's/^/w/'; } > "$TMP/mpnet-vocab.txt"
if st-init --config "$TMP/mpnet.json" --vocab "$TMP/mpnet-vocab.txt" --seed 3 -o "$TMP/mpnet" 2> "$TMP/err"; then
	finetune_case mpnet "$TMP/mpnet"
else
	ok 1 "st-init makes an MPNet model" || sed 's/^/#   /' "$TMP/err"
fi

# XLM-RoBERTa (paraphrase-multilingual-*'s architecture) with a SentencePiece Unigram tokenizer trained here
if command -v spm_train > /dev/null; then
	jq -r '.texts[]' "$TMP/pairs.jsonl" > "$TMP/spm-corpus.txt"
	spm_train --input="$TMP/spm-corpus.txt" --model_prefix="$TMP/sp" --model_type=unigram --vocab_size=60 --hard_vocab_limit=false \
		--minloglevel=2 > "$TMP/err" 2>&1
	ok $? "spm_train: a Unigram model of the pairs' words" || sed 's/^/#   /' "$TMP/err"
	cat > "$TMP/xlmr.json" <<'EOF'
{"model_type": "xlm-roberta", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
 "intermediate_size": 64, "max_position_embeddings": 66, "type_vocab_size": 1, "hidden_dropout_prob": 0.1,
 "attention_probs_dropout_prob": 0.1, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
 "initializer_range": 0.02}
EOF
	if st-init --config "$TMP/xlmr.json" --vocab "$TMP/sp.model" --seed 3 -o "$TMP/xlmr" 2> "$TMP/err"; then
		finetune_case xlmr "$TMP/xlmr"
	else
		ok 1 "st-init makes an XLM-R model" || sed 's/^/#   /' "$TMP/err"
	fi
fi
i=0
for dir in $HUB_FINETUNE_MODELS; do
	finetune_case "extra$i" "$dir"
	i=$((i + 1))
done

done_testing
