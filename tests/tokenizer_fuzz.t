#!/bin/sh
# A short libFuzzer smoke run of the tokenizer targets (fuzz/tokenizer.sh): arbitrary bytes through WordPiece
# and BPE, and arbitrary tokenizer.json / vocab.txt / vocab.json + merges.txt files through the loaders,
# under AddressSanitizer. `make fuzz` runs them longer.
. tests/lib.sh
command -v clang >/dev/null || skip_all "clang is absent"
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' > "$TMP/probe.c"
clang -fsanitize=fuzzer,address -o "$TMP/probe" "$TMP/probe.c" 2>/dev/null || skip_all "clang's libFuzzer runtime is absent"
secs=${FUZZ_SECONDS:-8}
[ -n "$ST_LONG" ] && secs=120
FUZZ_SECONDS=$secs sh fuzz/tokenizer.sh > "$TMP/out" 2>&1
rc=$?
sed 's/^/# /' "$TMP/out"
ok $rc "fuzz/tokenizer.sh: no crash, leak or failed check in ${secs}s per target"
done_testing
