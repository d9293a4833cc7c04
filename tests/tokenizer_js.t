#!/bin/sh
# Differential test: st-tokenize against transformers.js (an independent implementation) on generated inputs,
# for the all-MiniLM-L6-v2 WordPiece tokenizer.json, roberta-base (vocab.json + merges.txt here, a tokenizer.json
# written by tokenizer_save for transformers.js), the same with add_prefix_space, and a vocabulary trained by
# st-vocab.
. tests/lib.sh
need_shared tokenizers
command -v node >/dev/null || skip_all "node is absent"
[ -d tests/js/node_modules/@huggingface/transformers ] || skip_all "transformers.js is absent (make deps)"
N=${ST_JS_N:-1500}
[ -n "$ST_LONG" ] && N=20000

# transformers.js needs tokenizer_config.json next to tokenizer.json to pick the class
mkdir -p "$TMP/minilm"
cp "$SHARED/tokenizers/all-MiniLM-L6-v2/tokenizer.json" "$TMP/minilm/"
echo '{"tokenizer_class": "BertTokenizer", "do_lower_case": true}' > "$TMP/minilm/tokenizer_config.json"
st-vocab --from "$SHARED/tokenizers/roberta-base" -o "$TMP/roberta" 2>"$TMP/err"
ok $? "tokenizer_save writes a RoBERTa tokenizer.json from vocab.json + merges.txt"

check() {   # check NAME DIR-OURS DIR-JS GEN-FLAGS SEED
	node tests/js/gen.mjs "$N" "$5" $4 > "$TMP/$1.texts"
	st-tokenize --tokenizer "$2" --json --no-strip --max-seq-length -1 < "$TMP/$1.texts" > "$TMP/$1.ours"
	ok $? "$1: st-tokenize ran"
	node tests/js/encode.mjs "$3" < "$TMP/$1.texts" > "$TMP/$1.js"
	ok $? "$1: transformers.js ran"
	python3 tests/js/compare.py "$TMP/$1.texts" "$TMP/$1.ours" "$TMP/$1.js" "$1"
	ok $? "$1: zero mismatches with transformers.js on $N generated records"
}
check wordpiece "$SHARED/tokenizers/all-MiniLM-L6-v2/tokenizer.json" "$TMP/minilm" "" 11
check roberta "$SHARED/tokenizers/roberta-base" "$TMP/roberta" --bpe 12
check roberta-saved "$TMP/roberta" "$TMP/roberta" --bpe 13
# ByteLevel with add_prefix_space (a space before each piece between special tokens)
mkdir -p "$TMP/prefix"
jq '.pre_tokenizer.add_prefix_space = true | .post_processor.add_prefix_space = true' "$TMP/roberta/tokenizer.json" \
	> "$TMP/prefix/tokenizer.json"
jq '.add_prefix_space = true' "$TMP/roberta/tokenizer_config.json" > "$TMP/prefix/tokenizer_config.json"
check prefix-space "$TMP/prefix" "$TMP/prefix" --bpe 14

# a vocabulary trained here loads in transformers.js and encodes identically
node tests/js/gen.mjs 3000 21 | jq -r '.texts[]' > "$TMP/corpus.txt"
cat "$SHARED/tokenizer-oracles/question_tokens.json" | jq -r '.[].original' >> "$TMP/corpus.txt"
st-vocab --vocab-size 3000 -o "$TMP/trained" < "$TMP/corpus.txt" 2>"$TMP/err"
ok $? "st-vocab trains a vocabulary"
check trained "$TMP/trained" "$TMP/trained" "" 22
st-vocab --cased --vocab-size 3000 -o "$TMP/cased" < "$TMP/corpus.txt" 2>"$TMP/err"
ok $? "st-vocab --cased trains a vocabulary"
check trained-cased "$TMP/cased" "$TMP/cased" "" 23
done_testing
