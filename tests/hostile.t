#!/bin/sh
# Hostile inputs (issue 11): each class of bad input a campaign found gets a clear error naming the file or
# record and exit 65 (or a documented, checked behaviour), never a crash, a silent conversion, a hang or a
# file overwritten that st did not create. Every case here failed before its fix. `make check-hostile` runs
# this and the slow part (fault injection) too.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"

# expect CODE PATTERN DESCRIPTION -- command...: the command exits CODE and its stderr matches PATTERN.
expect() {
	code=$1 pat=$2 what=$3
	shift 4
	"$@" > "$TMP/expect.out" 2> "$TMP/expect.err" < "${EXPECT_STDIN:-/dev/null}"
	rc=$?
	if [ $rc -eq "$code" ] && grep -q -- "$pat" "$TMP/expect.err"; then
		ok 0 "$what"
	else
		ok 1 "$what"
		echo "#   exit $rc (want $code), stderr:"
		head -3 "$TMP/expect.err" | sed 's/^/#     /'
	fi
}

tiny_model "$TMP/m" --pooling mean
echo 'the cat sat' > "$TMP/line.txt"

# ---- 1. tokenizer files: every id is checked (negative, beyond the vocabulary, given twice)
# A tokenizer.json with a WordPiece vocabulary of 8 tokens and added tokens edited by jq.
tiny_tj() {   # tiny_tj JQ-EDIT > tokenizer.json
	jq -n -c "{model: {type: \"WordPiece\", unk_token: \"[UNK]\", continuing_subword_prefix: \"##\",
		vocab: {\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 3, the: 4, cat: 5, sat: 6, \"##s\": 7}},
	  normalizer: {type: \"BertNormalizer\", lowercase: true}, pre_tokenizer: {type: \"BertPreTokenizer\"},
	  post_processor: {type: \"BertProcessing\", cls: [\"[CLS]\", 2], sep: [\"[SEP]\", 3]},
	  added_tokens: [{id: 0, content: \"[PAD]\", special: true}, {id: 1, content: \"[UNK]\", special: true}]}
	  | $1"
}
tj_case() {   # tj_case JQ-EDIT PATTERN DESCRIPTION
	tiny_tj "$1" > "$TMP/tj.json"
	echo '{"texts": ["the cat sat"]}' > "$TMP/ex.json"
	EXPECT_STDIN=$TMP/ex.json expect 65 "$2" "st-tokenize: $3" -- st-tokenize --tokenizer "$TMP/tj.json"
}
tiny_tj . > "$TMP/tj.json"
is "$(echo '{"texts": ["the cat sat"]}' | st-tokenize --tokenizer "$TMP/tj.json" --json | jq -c '.input_ids[0]')" \
	'[2,4,5,6,3]' "the hand-made tokenizer.json works (ids worked out by hand)"
tj_case '.added_tokens += [{id: -1000000, content: "<x>"}]' 'tj.json.*id -1000000' \
	"a negative added token id (-1000000) is refused naming the file"
tj_case '.added_tokens += [{id: -3, content: "<x>"}]' 'id -3' "added token id -3 is refused"
tj_case '.added_tokens += [{id: 4294967304, content: "<x>"}]' 'id 4294967304' "an id past 2^32 is refused"
tj_case '.added_tokens += [{id: 100000, content: "<x>"}]' 'beyond the vocabulary' \
	"an added token id far beyond the vocabulary is refused"
tj_case '.added_tokens += [{id: 5, content: "<x>"}]' 'given to both' \
	"an added token reusing the id of another token is refused"
tj_case '.added_tokens += [{id: 8, content: "<x>"}, {id: 8, content: "<y>"}]' 'given to both' \
	"two added tokens with one id are refused"
tj_case '.added_tokens += [{id: 3, content: "[CLS]"}]' 'has id 3 but is token 2' \
	"an added token of the vocabulary with another id is refused"
tj_case '.post_processor.cls[1] = -5' 'post_processor id -5' "a negative post-processor id is refused"
tj_case '.post_processor.sep[1] = 4294967299' 'post_processor id 4294967299' "a post-processor id past 2^32 is refused"
tj_case '.post_processor = {type: "TemplateProcessing", single: [{SpecialToken: {id: "[CLS]"}}, {Sequence: {id: "A"}}],
	special_tokens: {"[CLS]": {ids: [99]}}}' 'post_processor id 99' "a template id beyond the vocabulary is refused"
tj_case '.padding = {pad_id: -2}' "pad_id id -2" "a negative padding id is refused"
tiny_tj '.added_tokens += [{id: 8, content: "<x>"}]' > "$TMP/tj.json"
is "$(echo '{"texts": ["the <x> cat"]}' | st-tokenize --tokenizer "$TMP/tj.json" --json | jq -c '.input_ids[0]')" \
	'[2,4,8,5,3]' "an added token continuing the vocabulary (id 8) is used"
# the same file inside a model reaches every tool that loads tokenizers
cp -r "$TMP/m" "$TMP/mneg"
tiny_tj '.added_tokens += [{id: -1000000, content: "<x>"}]' > "$TMP/mneg/tokenizer.json"
expect 65 'tokenizer.json' "st-encode: a negative added token id is refused" -- st-encode --model "$TMP/mneg" "$TMP/line.txt"
tiny_tj '.added_tokens += [{id: -1000000, content: "<x>"}]' > "$TMP/tj.json"
expect 65 'tokenizer.json' "st-vocab --from: a negative added token id is refused" -- \
	st-vocab --from "$TMP/mneg" -o "$TMP/vneg"
echo '{"texts": ["the cat", "a dog"], "label": 0.5}' > "$TMP/pair.json"
EXPECT_STDIN=$TMP/pair.json expect 65 'tokenizer.json' "st-eval: a negative added token id is refused" -- \
	st-eval similarity --model "$TMP/mneg"
expect 65 'tj.json' "st-init --vocab: a negative added token id is refused" -- \
	st-init --config "$TMP/bert.json" --vocab "$TMP/tj.json" -o "$TMP/mneg2"
[ ! -e "$TMP/mneg2" ]; ok $? "... and writes no model"

done_testing
