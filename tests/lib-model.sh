# tests/lib-model.sh: what the model tests share. Source it after tests/lib.sh.
#   tiny_model DIR [st-init options...]
#     writes $TMP/vocab.txt (the special tokens and 18 words) and $TMP/bert.json (2 layers, hidden size 16) when
#     they are absent, then builds DIR with st-init; it skips the whole test when st-init cannot.
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

metrics_ref() {   # metrics_ref CASE DESCRIPTION
	ref_out=$(TMP=$TMP /usr/bin/python3 tests/reference/metrics_ref.py "$1" 2>&1)
	ok $? "$2"
	[ "$ref_out" = ok ] || echo "$ref_out" | sed 's/^/#   /'
}
