#!/bin/sh
# fuzz/parsers.sh: builds the libFuzzer targets of the stream reader (fuzz_stream: msgpack, JSON Lines, zstd)
# and of the model directory's JSON files (fuzz_config: config.json, modules.json, pooling and
# sentence_bert_config.json) with clang -fsanitize=fuzzer,address,undefined, and runs each for FUZZ_SECONDS
# (default 60) from the seeds in fuzz/corpus/. New corpus entries go to build/fuzz/parsers/corpus-*, crash
# inputs to build/fuzz/parsers/. Exit 1 when a target fails.
cd "$(dirname "$0")/.." || exit 1
SECONDS_EACH=${FUZZ_SECONDS:-60}
OUT=${FUZZ_OUT:-build/fuzz/parsers}
command -v clang >/dev/null || { echo "fuzz/parsers.sh: clang is absent; skipped"; exit 0; }
mkdir -p "$OUT"
PKGS="openblas msgpack libzstd jansson libutf8proc libpcre2-8 libcurl libcrypto libzip"
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fopenmp -std=gnu11 -Ilib
	$(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lm -lpthread"
status=0
for target in stream config; do
	case $target in
	stream) SRC="lib/stream.c lib/st.c" ;;
	config) SRC=$(ls lib/*.c) ;;
	esac
	# built again only when a source is newer than the target (the config target compiles all of lib/)
	# shellcheck disable=SC2086
	if [ -x "$OUT/fuzz_$target" ] && [ -z "$(find "fuzz/fuzz_$target.c" $SRC lib/*.h -newer "$OUT/fuzz_$target" | head -1)" ]; then
		:
	elif ! clang $CFLAGS -w -o "$OUT/fuzz_$target" "fuzz/fuzz_$target.c" $SRC $LIBS 2>"$OUT/build_$target.log"; then
		echo "fuzz/parsers.sh: cannot build fuzz_$target (see $OUT/build_$target.log)"
		grep -q "fuzzer" "$OUT/build_$target.log" && exit 0   # no libFuzzer runtime: nothing to run
		exit 1
	fi
	mkdir -p "$OUT/corpus-$target"
	echo "== fuzz_$target for ${SECONDS_EACH}s"
	# die() ends in a longjmp back to the target, leaving the reader's memory: leaks are not checked here
	ASAN_OPTIONS=detect_leaks=0 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$OUT/fuzz_$target" \
		-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=16384 \
		-artifact_prefix="$OUT/$target-" -print_final_stats=1 \
		"$OUT/corpus-$target" "fuzz/corpus/$target" >"$OUT/run_$target.log" 2>&1
	rc=$?
	grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+ *DONE" "$OUT/run_$target.log"
	if [ $rc -ne 0 ]; then
		echo "fuzz_$target FAILED (exit $rc); see $OUT/run_$target.log"
		grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$OUT/run_$target.log" | head -5
		status=1
	fi
done
exit $status
