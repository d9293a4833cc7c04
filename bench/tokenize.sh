#!/bin/sh
# bench/tokenize.sh: tokens per second on one core, st versus transformers.js, on the 10,570 SQuAD questions:
# WordPiece (bert-base-uncased / all-MiniLM-L6-v2 tokenizer.json) and byte-level BPE (roberta-base).
# Targets: WordPiece >= 2,000,000 tokens/s, BPE >= 1,000,000 tokens/s. At the end: SentencePiece Unigram
# against python3-sentencepiece (>= 1,000,000 tokens/s).
cd "$(dirname "$0")/.." || exit 1
SHARED=../shared/data
[ -d "$SHARED/tokenizer-oracles" ] || { echo "bench/tokenize.sh: ../shared/data is absent; skipped"; exit 0; }
make -s build/libst.a || exit 1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/st-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
CFLAGS="-O2 -march=native -std=gnu11 -Ilib $(pkg-config --cflags jansson libutf8proc libpcre2-8)"
LIBS="build/libst.a $(pkg-config --libs openblas msgpack libzstd jansson libutf8proc libpcre2-8) -fopenmp -lm -lpthread"
cc $CFLAGS -o "$TMP/tokenize_bench" bench/tokenize_bench.c $LIBS || exit 1
jq -r '.[].original' "$SHARED/tokenizer-oracles/question_tokens.json" > "$TMP/questions.txt"
jq -R -c '{texts: [.]}' "$TMP/questions.txt" > "$TMP/questions.jsonl"
mkdir -p "$TMP/minilm"
cp "$SHARED/tokenizers/all-MiniLM-L6-v2/tokenizer.json" "$TMP/minilm/"
echo '{"tokenizer_class": "BertTokenizer", "do_lower_case": true}' > "$TMP/minilm/tokenizer_config.json"
bin/st-vocab --from "$SHARED/tokenizers/roberta-base" -o "$TMP/roberta" || exit 1
have_js=0
[ -d tests/js/node_modules/@huggingface/transformers ] && command -v node >/dev/null && have_js=1

rate() { sed 's/.*"tokens_per_s": *\([0-9.]*\).*/\1/'; }
for case in "WordPiece $SHARED/tokenizers/all-MiniLM-L6-v2/tokenizer.json $TMP/minilm 2000000" \
	    "BPE $SHARED/tokenizers/roberta-base $TMP/roberta 1000000"; do
	set -- $case
	st=$(taskset -c 0 "$TMP/tokenize_bench" "$2" "$TMP/questions.txt" 3 2>/dev/null || "$TMP/tokenize_bench" "$2" "$TMP/questions.txt" 3)
	st_rate=$(echo "$st" | rate)
	echo "$1 st:              $st"
	if [ $have_js = 1 ]; then
		js=$(taskset -c 0 node tests/js/encode.mjs --bench "$3" < "$TMP/questions.jsonl" 2>/dev/null ||
			node tests/js/encode.mjs --bench "$3" < "$TMP/questions.jsonl")
		js_rate=$(echo "$js" | rate)
		echo "$1 transformers.js: $js"
	else
		js_rate=0
		echo "$1 transformers.js: absent (make deps)"
	fi
	awk -v n="$1" -v s="$st_rate" -v j="$js_rate" -v target="$4" 'BEGIN {
		ratio = (j > 0) ? sprintf("%.1fx", s / j) : "n/a"
		verdict = (s >= target) ? "met" : "MISSED"
		printf "%s: st %.0f tokens/s, transformers.js %.0f tokens/s, ratio %s, target %d: %s\n", n, s, j,
		       ratio, target, verdict }'
done

# SentencePiece Unigram (XLM-R's tokenizer): a model trained here with spm_train (16,000 pieces, nmt_nfkc) on the
# questions and STS-B, read as sentencepiece.bpe.model (libsentencepiece's whole-text lattice) and as the
# tokenizer.json transformers' converter writes (per-word lattice with a cache); anchor: python3-sentencepiece
# encoding the same texts in this run (its Python call per text included). Target: >= 1,000,000 tokens/s.
if command -v spm_train >/dev/null && /usr/bin/python3 -c 'import sentencepiece' 2>/dev/null; then
	cut -f6,7 "$SHARED/stsbenchmark/sts-train.csv" 2>/dev/null | tr '\t' '\n' | cat "$TMP/questions.txt" - > "$TMP/spm-train.txt"
	spm_train --input="$TMP/spm-train.txt" --model_prefix="$TMP/spm" --vocab_size=16000 --model_type=unigram \
		--normalization_rule_name=nmt_nfkc --minloglevel=2 >/dev/null 2>&1 || exit 1
	mkdir -p "$TMP/spm-json"
	/usr/bin/python3 tests/spm_oracle.py convert "$TMP/spm.model" "$TMP/spm-json" || exit 1
	jq -R -c '{text: .}' "$TMP/questions.txt" > "$TMP/questions-text.jsonl"
	py=$(taskset -c 0 /usr/bin/python3 tests/spm_oracle.py bench "$TMP/spm.model" < "$TMP/questions-text.jsonl" 2>/dev/null ||
		/usr/bin/python3 tests/spm_oracle.py bench "$TMP/spm.model" < "$TMP/questions-text.jsonl")
	py_rate=$(echo "$py" | rate)
	echo "Unigram python3-sentencepiece: $py"
	for case in "Unigram-.model $TMP/spm.model" "Unigram-tokenizer.json $TMP/spm-json"; do
		set -- $case
		st=$(taskset -c 0 "$TMP/tokenize_bench" "$2" "$TMP/questions.txt" 3 2>/dev/null || "$TMP/tokenize_bench" "$2" "$TMP/questions.txt" 3)
		st_rate=$(echo "$st" | rate)
		echo "$1 st: $st"
		awk -v n="$1" -v s="$st_rate" -v a="$py_rate" 'BEGIN {
			verdict = (s >= 1000000) ? "met" : "MISSED"
			printf "%s: st %.0f tokens/s, python3-sentencepiece %.0f tokens/s, ratio %.1fx, target 1000000: %s\n",
			       n, s, a, s / a, verdict }'
	done
else
	echo "Unigram: spm_train or python3-sentencepiece is absent; skipped"
fi
