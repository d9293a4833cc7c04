#!/bin/sh
# SentencePiece Unigram tokenizers (XLM-RoBERTa) against libsentencepiece (python3-sentencepiece) with XLM-R's
# fairseq offset, on models trained here with spm_train (nmt_nfkc and identity normalization, with and without
# byte_fallback, a coverage that leaves unknown characters): the sentencepiece.bpe.model itself, tokenizer.json
# files written by an independent Python converter (tests/spm_oracle.py, the current and the older Hub layout),
# the tokenizer.json st writes on save, and an XLM-R model made by st-init. Inputs: the multilingual oracle
# texts, STS-B sentences and generated Unicode text (mixed scripts, combining marks, emoji, whitespace runs,
# compatibility forms that nmt_nfkc rewrites). transformers.js checks the saved tokenizer.json when present.
. tests/lib.sh
need_shared stsbenchmark
need_shared tokenizer-oracles
PY=/usr/bin/python3
$PY -c 'import sentencepiece' 2>/dev/null || skip_all "python3-sentencepiece is not installed"
command -v spm_train >/dev/null || skip_all "spm_train (Debian's sentencepiece) is not installed"
N=${ST_SPM_N:-3000}
[ -n "$ST_LONG" ] && N=20000
ORACLE="$PY tests/spm_oracle.py"

# training text: STS-B sentences and the multilingual inputs
cut -f6,7 "$SHARED/stsbenchmark/sts-train.csv" | tr '\t' '\n' > "$TMP/corpus.txt"
$PY -c 'import json,sys; [print(e["text"].replace("\n"," ")) for e in json.load(open(sys.argv[1]))]' \
	"$SHARED/tokenizer-oracles/multilingual/inputs.json" > "$TMP/ml.txt"
cat "$TMP/ml.txt" >> "$TMP/corpus.txt"
$PY -c 'import json,sys; [print(json.dumps({"text": e["text"]}, ensure_ascii=False)) for e in json.load(open(sys.argv[1]))]' \
	"$SHARED/tokenizer-oracles/multilingual/inputs.json" > "$TMP/multilingual.texts"
cut -f6 "$SHARED/stsbenchmark/sts-dev.csv" | $PY -c 'import json,sys; [print(json.dumps({"text": l.rstrip("\n")})) for l in sys.stdin]' \
	> "$TMP/sts.texts"
$ORACLE gen "$N" 7 "$TMP/corpus.txt" > "$TMP/random.texts"

train() {   # train NAME spm_train-options...
	name=$1
	shift
	spm_train --input="$TMP/corpus.txt" --model_prefix="$TMP/$name" --model_type=unigram --minloglevel=2 "$@" \
		>"$TMP/$name.log" 2>&1
	ok $? "spm_train $name"
}
train nfkc --vocab_size=4000 --character_coverage=1.0 --normalization_rule_name=nmt_nfkc
train unk --vocab_size=1500 --character_coverage=0.98 --normalization_rule_name=nmt_nfkc
train identity --vocab_size=3000 --character_coverage=0.9995 --normalization_rule_name=identity --byte_fallback=true
train nfkcbytes --vocab_size=3000 --character_coverage=0.99 --normalization_rule_name=nmt_nfkc --byte_fallback=true

check() {   # check NAME TOKENIZER-FLAGS TEXTS MODEL [tie]
	st-tokenize $2 --json --max-seq-length -1 < "$TMP/$3.texts" > "$TMP/$1.$3.ours" 2>"$TMP/err"
	ok $? "$1 on $3: st-tokenize ran"
	[ -s "$TMP/$4.$3.want" ] || $ORACLE ids "$TMP/$4.model" < "$TMP/$3.texts" > "$TMP/$4.$3.want"
	if [ "$5" = tie ]; then
		$ORACLE compare "$TMP/$3.texts" "$TMP/$1.$3.ours" "$TMP/$4.$3.want" "$1" "$TMP/$4.model"
		ok $? "$1 on $3: the ids of libsentencepiece (fairseq offset), or an equal-score tie"
	else
		$ORACLE compare "$TMP/$3.texts" "$TMP/$1.$3.ours" "$TMP/$4.$3.want" "$1"
		ok $? "$1 on $3: the ids of libsentencepiece (fairseq offset)"
	fi
}

for m in nfkc unk identity nfkcbytes; do
	# the .model as a file and as the only tokenizer file of a folder
	for t in multilingual sts random; do
		check "$m.model" "--tokenizer $TMP/$m.model" $t $m
	done
	mkdir -p "$TMP/$m-dir"
	cp "$TMP/$m.model" "$TMP/$m-dir/sentencepiece.bpe.model"
	check "$m-dir" "--tokenizer $TMP/$m-dir" random $m
	# tokenizer.json as transformers' converter writes it today, and as older Hub files have it (their
	# WhitespaceSplit drops every Unicode space, which only nmt_nfkc's charsmap also turns into " ")
	mkdir -p "$TMP/$m-json" "$TMP/$m-old"
	$ORACLE convert "$TMP/$m.model" "$TMP/$m-json" && $ORACLE convert "$TMP/$m.model" "$TMP/$m-old" old
	ok $? "$m: tokenizer.json written by the Python converter"
	for t in multilingual sts random; do
		check "$m-json" "--tokenizer $TMP/$m-json" $t $m tie
		[ $m = identity ] || check "$m-old" "--tokenizer $TMP/$m-old" $t $m tie
	done
done

# st-init makes a random XLM-R model from the .model; its tokenizer.json alone gives the same ids
cat > "$TMP/config.json" <<'EOF'
{"model_type": "xlm-roberta", "architectures": ["XLMRobertaModel"], "hidden_size": 32, "num_hidden_layers": 2,
 "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 514, "type_vocab_size": 1,
 "vocab_size": 4002, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "gelu",
 "layer_norm_eps": 1e-05, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
 "position_embedding_type": "absolute", "initializer_range": 0.02}
EOF
st-init --config "$TMP/config.json" --vocab "$TMP/nfkc.model" -o "$TMP/xlmr" 2>"$TMP/err"
ok $? "st-init makes an XLM-R model with the SentencePiece tokenizer" || cat "$TMP/err"
[ -s "$TMP/xlmr/tokenizer.json" ] && [ -s "$TMP/xlmr/sentencepiece.bpe.model" ]
ok $? "the model has tokenizer.json and sentencepiece.bpe.model"
is "$(jq -r '.model.type, .model.unk_id, (.model.vocab | length), .added_tokens[-1].content, .added_tokens[-1].id' \
	"$TMP/xlmr/tokenizer.json" | tr '\n' ' ')" "Unigram 3 4002 <mask> 4001 " "saved tokenizer.json: Unigram, unk 3, <mask> last"
is "$(jq -r .tokenizer_class "$TMP/xlmr/tokenizer_config.json")" "XLMRobertaTokenizer" "tokenizer_config names XLMRobertaTokenizer"
check xlmr-model "--model $TMP/xlmr" random nfkc tie
check xlmr-model "--model $TMP/xlmr" multilingual nfkc tie
mkdir -p "$TMP/saved"
cp "$TMP/xlmr/tokenizer.json" "$TMP/xlmr/tokenizer_config.json" "$TMP/saved/"
check saved-json "--tokenizer $TMP/saved" random nfkc tie
check saved-json "--tokenizer $TMP/saved" sts nfkc tie
st-init --config "$TMP/config.json" --vocab "$TMP/saved" -o "$TMP/xlmr2" 2>"$TMP/err"
ok $? "st-init from the saved tokenizer.json"
cmp -s "$TMP/xlmr/tokenizer.json" "$TMP/xlmr2/tokenizer.json"
ok $? "tokenizer.json round-trips byte for byte through load and save"

# truncation and special tokens in the text
printf '%s\n' '{"text": "hello <mask> world</s>"}' | st-tokenize --tokenizer "$TMP/nfkc.model" --json > "$TMP/sp.out"
want=$($PY -c '
import sentencepiece as spm, sys
sp = spm.SentencePieceProcessor(model_file=sys.argv[1]); o = lambda t: [i + 1 if i else 3 for i in sp.encode(t)]
print([0] + o("hello") + [sp.get_piece_size() + 1] + o("world") + [2, 2])' "$TMP/nfkc.model")
is "$(jq -c '.input_ids[0]' "$TMP/sp.out" | tr -d ' ')" "$(echo "$want" | tr -d ' ')" \
	"special tokens in the text: <mask> takes the space before it, </s> is one id"
printf '%s\n' '{"text": "a b c d e f g h i j k l m n o p"}' |
	st-tokenize --tokenizer "$TMP/nfkc.model" --json --max-seq-length 6 > "$TMP/tr.out"
is "$(jq -c '.input_ids[0] | length, .[0], .[-1]' "$TMP/tr.out" | tr '\n' ' ')" "6 0 2 " "truncation keeps <s> and </s>"

# refused inputs
head -c 200 "$TMP/nfkc.model" > "$TMP/trunc.model"
st-tokenize --tokenizer "$TMP/trunc.model" --json < /dev/null 2>"$TMP/err"
rc=$?
[ $rc -ne 0 ] && grep -q "trunc.model: not a SentencePiece model" "$TMP/err"
ok $? "a truncated .model is refused, naming the file (exit $rc)"
spm_train --input="$TMP/corpus.txt" --model_prefix="$TMP/bpe" --model_type=bpe --vocab_size=1000 --minloglevel=2 \
	>/dev/null 2>&1
st-tokenize --tokenizer "$TMP/bpe.model" --json < /dev/null 2>"$TMP/err"
[ $? -ne 0 ] && grep -q "bpe.model: SentencePiece model type 2 is not supported" "$TMP/err"
ok $? "a SentencePiece BPE model is refused"
jq '.normalizer = {"type": "NFKD"}' "$TMP/nfkc-json/tokenizer.json" > "$TMP/bad.json"
st-tokenize --tokenizer "$TMP/bad.json" --json < /dev/null 2>"$TMP/err"
[ $? -ne 0 ] && grep -q 'normalizer "NFKD" is not supported with Unigram' "$TMP/err"
ok $? "an unsupported normalizer is refused by name"

# transformers.js (its own Unigram in double precision per word, as the tokenizers library; its Precompiled
# normalizer approximates the charsmap with NFKC and turns U+200B-U+200F and U+FEFF into spaces, so texts with
# those are left out)
if command -v node >/dev/null && [ -d tests/js/node_modules/@huggingface/transformers ]; then
	for t in multilingual sts; do
		$PY -c 'import json,re,sys; [print(l, end="") for l in sys.stdin if not re.search("[\u200b-\u200f\ufeff]", json.loads(l)["text"])]' \
			< "$TMP/$t.texts" > "$TMP/$t.jstexts"
		$PY -c 'import json,sys; [print(json.dumps({"texts": [json.loads(l)["text"]]}, ensure_ascii=False)) for l in sys.stdin]' \
			< "$TMP/$t.jstexts" > "$TMP/$t.js.in"
		node tests/js/encode.mjs "$TMP/saved" < "$TMP/$t.js.in" > "$TMP/$t.js" 2>"$TMP/err"
		ok $? "transformers.js loads st's tokenizer.json ($t)"
		st-tokenize --tokenizer "$TMP/saved" --json --no-strip --max-seq-length -1 < "$TMP/$t.jstexts" > "$TMP/$t.nostrip"
		$ORACLE compare "$TMP/$t.jstexts" "$TMP/$t.nostrip" "$TMP/$t.js" "transformers.js-$t"
		ok $? "saved tokenizer.json on $t: the ids of transformers.js"
	done
else
	echo "# transformers.js is absent: its check is skipped"
fi
done_testing
