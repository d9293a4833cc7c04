#!/bin/sh
# A short libFuzzer smoke run of fuzz/torchbin.sh: arbitrary bytes through the pytorch_model.bin reader (zip,
# legacy stream, and the restricted unpickler alone) under AddressSanitizer. `make fuzz` runs it longer.
. tests/lib.sh
command -v clang >/dev/null || skip_all "clang is absent"
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' > "$TMP/probe.c"
clang -fsanitize=fuzzer,address -o "$TMP/probe" "$TMP/probe.c" 2>/dev/null || skip_all "clang's libFuzzer runtime is absent"
pkg-config --exists libzip || skip_all "libzip-dev is absent"
secs=${FUZZ_SECONDS:-8}
[ -n "$ST_LONG" ] && secs=120
FUZZ_SECONDS=$secs sh fuzz/torchbin.sh > "$TMP/out" 2>&1
rc=$?
sed 's/^/# /' "$TMP/out" | tail -20
ok $rc "fuzz/torchbin.sh: no crash, leak or failed check in ${secs}s"
done_testing
