#!/bin/sh
# fuzz/tokenizer.sh: builds the libFuzzer targets for the tokenizer (clang -fsanitize=fuzzer,address) and runs
# each for FUZZ_SECONDS (default 60) from the seeds in fuzz/corpus/. New corpus entries go to
# build/fuzz/tokenizer/corpus-*, crash inputs to build/fuzz/tokenizer/. Exit 1 when a target fails.
cd "$(dirname "$0")/.." || exit 1
SECONDS_EACH=${FUZZ_SECONDS:-60}
OUT=${FUZZ_OUT:-build/fuzz/tokenizer}
command -v clang >/dev/null || { echo "fuzz/tokenizer.sh: clang is absent; skipped"; exit 0; }
mkdir -p "$OUT"
CFLAGS="-g -O1 -fsanitize=fuzzer,address -std=gnu11 -Ilib $(pkg-config --cflags jansson libutf8proc libpcre2-8)"
LIBS="$(pkg-config --libs openblas jansson libutf8proc libpcre2-8) -lm -lpthread"
SRC="lib/tokenizer.c lib/tokenizer_io.c lib/tokenizer_train.c lib/tokenizer_unigram.c lib/st.c lib/mapfile.c"
status=0
for target in tokenizer tokenizer_load; do
	if ! clang $CFLAGS -o "$OUT/fuzz_$target" "fuzz/fuzz_$target.c" $SRC $LIBS 2>"$OUT/build_$target.log"; then
		echo "fuzz/tokenizer.sh: cannot build fuzz_$target (see $OUT/build_$target.log)"
		grep -q "fuzzer" "$OUT/build_$target.log" && exit 0   # no libFuzzer runtime: nothing to run
		exit 1
	fi
	mkdir -p "$OUT/corpus-$target"
	# a SentencePiece model for the Unigram encoder (nmt_nfkc charsmap, byte fallback), trained on the spot
	if [ $target = tokenizer ] && command -v spm_train >/dev/null; then
		for i in 1 2 3 4 5 6 7 8 9; do
			echo "the quick brown fox $i jumps over the lazy dog; café Привет 你好 ＡＢＣ ﬁ ① x$i$i"
		done > "$OUT/spm.txt"
		spm_train --input="$OUT/spm.txt" --model_prefix="$OUT/spm" --vocab_size=400 --byte_fallback=true \
			--hard_vocab_limit=false --minloglevel=2 >/dev/null 2>&1 && export ST_FUZZ_SPM="$OUT/spm.model"
	fi
	echo "== fuzz_$target for ${SECONDS_EACH}s"
	ASAN_OPTIONS=detect_leaks=1 "$OUT/fuzz_$target" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
		-max_len=8192 -artifact_prefix="$OUT/" -print_final_stats=1 \
		"$OUT/corpus-$target" "fuzz/corpus/$target" >"$OUT/run_$target.log" 2>&1
	rc=$?
	grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+ *DONE" "$OUT/run_$target.log"
	if [ $rc -ne 0 ]; then
		echo "fuzz_$target FAILED (exit $rc); see $OUT/run_$target.log"
		grep -E "ERROR|SUMMARY|Test unit written" "$OUT/run_$target.log" | head -5
		status=1
	fi
done
exit $status
