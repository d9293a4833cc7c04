#!/bin/sh
# A short libFuzzer smoke run of the parser targets (fuzz/parsers.sh): arbitrary bytes through the stream reader
# (msgpack, JSON Lines, zstd) and arbitrary config.json / modules.json / pooling / sentence_bert_config.json
# files through the model loader, under AddressSanitizer and UBSan. `make fuzz` runs them longer.
. tests/lib.sh
command -v clang >/dev/null || skip_all "clang is absent"
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' > "$TMP/probe.c"
clang -fsanitize=fuzzer,address -o "$TMP/probe" "$TMP/probe.c" 2>/dev/null || skip_all "clang's libFuzzer runtime is absent"
secs=${FUZZ_SECONDS:-8}
[ -n "$ST_LONG" ] && secs=120
FUZZ_SECONDS=$secs sh fuzz/parsers.sh > "$TMP/out" 2>&1
rc=$?
sed 's/^/# /' "$TMP/out"
ok $rc "fuzz/parsers.sh: no crash, overflow or undefined behaviour in ${secs}s per target"
done_testing
