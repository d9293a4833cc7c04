#!/bin/sh
# Fuzzes the pytorch_model.bin reader (tch_open_mem + reads, lib/torch_load.c) with libFuzzer for FUZZ_SECONDS
# (default 60). Seeds: fuzz/corpus/torchbin (torch.save files: zip, legacy, protocol 4) and pickles written here.
# Crashes are written to build/fuzz/torchbin-crash-*; the corpus grows in build/fuzz/torchbin-corpus.
set -e
cd "$(dirname "$0")/.."
command -v clang >/dev/null || { echo "fuzz/torchbin.sh: clang not found, skipping"; exit 0; }
out=build/fuzz
corpus=$out/torchbin-corpus
mkdir -p "$corpus"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Ilib $(pkg-config --cflags libzip) \
	-o $out/torchbin_fuzz fuzz/torchbin_fuzz.c lib/torch_load.c lib/safetensors.c lib/mapfile.c $(pkg-config --libs libzip) -ljansson -lm
cp fuzz/corpus/torchbin/* "$corpus/"
# dict pickles alone (the target prepends the legacy header to inputs that are not torch files)
printf '\200\002ccollections\nOrderedDict\n)R(X\001\000\000\000actorch._utils\n_rebuild_tensor_v2\n((X\007\000\000\000storagectorch\nFloatStorage\nX\001\000\000\0000X\003\000\000\000cpuK\002Nt' > "$corpus/seed-pickle"
printf '\200\002}(X\001\000\000\000aK\001X\001\000\000\000b]q\000(K\001h\000ee.' > "$corpus/seed-dict"

cat > $out/torchbin.dict <<'DICT'
"PK\x03\x04"
"PK\x01\x02"
"PK\x05\x06"
"archive/data.pkl"
"archive/data/0"
"ccollections\x0aOrderedDict\x0a"
"ctorch._utils\x0a_rebuild_tensor_v2\x0a"
"ctorch\x0aFloatStorage\x0a"
"ctorch\x0aHalfStorage\x0a"
"ctorch\x0aBFloat16Storage\x0a"
"X\x07\x00\x00\x00storage"
"\x80\x02"
"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
"J\xff\xff\xff\x7f"
DICT

cd $out
./torchbin_fuzz -max_total_time="${FUZZ_SECONDS:-60}" -max_len=8192 -rss_limit_mb=1024 -dict=torchbin.dict \
	-artifact_prefix=torchbin-crash- -print_final_stats=1 torchbin-corpus
