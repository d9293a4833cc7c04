# tests/lib-model.sh: what the model tests share. Source it after tests/lib.sh.
#   tiny_model DIR [st-init options...]
#     writes $TMP/vocab.txt (the special tokens and 18 words) and $TMP/bert.json (2 layers, hidden size 16) when
#     they are absent, then builds DIR with st-init; it skips the whole test when st-init cannot.
#   train_model DIR [--dropout P] [--vocab-size N] [--positions N] [st-init options...]
#     the model of the training tests: a BERT of hidden size 32, 2 layers, 4 heads, intermediate 64, N word
#     pieces (default 120: the special tokens, then w5 .. wN-1, written to $TMP/vocab.txt), N positions (64),
#     dropout P (0.1), built by st-init with the options that follow (e.g. --seed 3); st-init's stderr goes to
#     $TMP/err, and its status is returned.
#   metrics_ref CASE DESCRIPTION
#     one check: tests/reference/metrics_ref.py CASE (numpy/scipy) prints "ok" when our tools agree with it.
TINY_WORDS="the a cat dog sat on mat ran far away big small red blue house tree . ,"

tiny_vocab() {   # tiny_vocab FILE [WORDS]: the special tokens of BERT, then one word a line
	{ printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n'; for w in ${2-$TINY_WORDS}; do echo "$w"; done; } > "$1"
}

tiny_config() {   # tiny_config FILE: a Hugging Face config.json of a small BERT
	cat > "$1" <<'JSON'
{"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
 "intermediate_size": 32, "max_position_embeddings": 40}
JSON
}

tiny_model() {   # tiny_model DIR [st-init options...]
	dir=$1
	shift
	[ -f "$TMP/vocab.txt" ] || tiny_vocab "$TMP/vocab.txt"
	[ -f "$TMP/bert.json" ] || tiny_config "$TMP/bert.json"
	st-init --config "$TMP/bert.json" --vocab "$TMP/vocab.txt" "$@" -o "$dir" 2> "$TMP/tiny_model.err" ||
		skip_all "st-init cannot build a model: $(head -1 "$TMP/tiny_model.err")"
}

train_model() {   # train_model DIR [--dropout P] [--vocab-size N] [--positions N] [st-init options...]
	tm_dir=$1 tm_drop=0.1 tm_vocab=120 tm_pos=64
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--dropout) tm_drop=$2; shift 2 ;;
		--vocab-size) tm_vocab=$2; shift 2 ;;
		--positions) tm_pos=$2; shift 2 ;;
		*) break ;;
		esac
	done
	{ printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n'; seq 5 $((tm_vocab - 1)) | sed 's/^/w/'; } > "$TMP/vocab.txt"
	cat > "$TMP/train-config.json" <<EOF
{"model_type": "bert", "vocab_size": $tm_vocab, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
 "intermediate_size": 64, "max_position_embeddings": $tm_pos, "type_vocab_size": 2, "hidden_dropout_prob": $tm_drop,
 "attention_probs_dropout_prob": $tm_drop, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.02,
 "pad_token_id": 0}
EOF
	st-init --config "$TMP/train-config.json" --vocab "$TMP/vocab.txt" "$@" -o "$tm_dir" 2> "$TMP/err"
}

metrics_ref() {   # metrics_ref CASE DESCRIPTION
	ref_out=$(TMP=$TMP /usr/bin/python3 tests/reference/metrics_ref.py "$1" 2>&1)
	ok $? "$2"
	[ "$ref_out" = ok ] || echo "$ref_out" | sed 's/^/#   /'
}
