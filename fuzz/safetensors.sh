#!/bin/sh
# Fuzzes the safetensors reader (sft_open_mem + reads) with libFuzzer for FUZZ_SECONDS (default 60).
# Seeds: the fixtures in ../shared/data/safetensors-fixtures when present, plus small hand-made files.
# Crashes are written to build/fuzz/safetensors-crash-*; the corpus is kept in build/fuzz/safetensors-corpus.
set -e
cd "$(dirname "$0")/.."
command -v clang >/dev/null || { echo "fuzz/safetensors.sh: clang not found, skipping"; exit 0; }
out=build/fuzz
corpus=$out/safetensors-corpus
mkdir -p "$corpus"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Ilib \
	-o $out/safetensors_fuzz fuzz/safetensors_fuzz.c lib/safetensors.c lib/mapfile.c -ljansson

# seed FILE HEADER DATA_BYTES: a file with an 8-byte length, HEADER, and DATA_BYTES zero bytes.
seed() {
	python3 -c 'import struct,sys; h=sys.argv[2].encode(); open(sys.argv[1],"wb").write(struct.pack("<Q",len(h))+h+bytes(int(sys.argv[3])))' "$@"
}
seed "$corpus/seed-empty" '{}' 0
seed "$corpus/seed-meta" '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' 8
seed "$corpus/seed-mixed" '{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[6,10]},"d":{"dtype":"F64","shape":[1],"data_offsets":[10,18]},"i":{"dtype":"I64","shape":[1],"data_offsets":[18,26]},"f":{"dtype":"F4","shape":[2],"data_offsets":[26,27]}}' 27
seed "$corpus/seed-empty-tensor" '{"e":{"dtype":"I32","shape":[0,4],"data_offsets":[0,0]},"s":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}' 1
[ -d ../shared/data/safetensors-fixtures ] && cp ../shared/data/safetensors-fixtures/*.safetensors "$corpus/" || true

cat > $out/safetensors.dict <<'DICT'
"{"
"}"
"["
"]"
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"F32\""
"\"F16\""
"\"BF16\""
"\"F64\""
"\"I32\""
"\"I64\""
"\"F4\""
"\"F8_E4M3FNUZ\""
"18446744073709551615"
"9223372036854775807"
"4294967296"
"-1"
"1.5"
"null"
DICT

cd $out
./safetensors_fuzz -max_total_time="${FUZZ_SECONDS:-60}" -max_len=4096 -dict=safetensors.dict \
	-artifact_prefix=safetensors-crash- -print_final_stats=1 safetensors-corpus
