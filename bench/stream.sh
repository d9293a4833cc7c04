#!/bin/sh
# Stream throughput: st-json moving embedding batch records (64 rows x 2 columns x 384 dims, float32) msgpack to
# msgpack, msgpack to JSON, and zstd-compressed input; anchor: Python's msgpack (C extension) decoding and
# re-encoding the same records, in the same run. One core each.
set -e
cd "$(dirname "$0")/.."
PATH="$(pwd)/bin:$PATH"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=${ST_BENCH_RECORDS:-2000}
/usr/bin/python3 - "$tmp/emb.mp" "$n" <<'PY'
import msgpack, struct, sys, random
random.seed(1)
data = struct.pack('<%df' % (2 * 64 * 384), *[random.gauss(0, 1) for _ in range(2 * 64 * 384)])
rec = msgpack.packb({"v": 1, "kind": "batch", "step": 0, "steps": 1,
                     "embeddings": {"dtype": "f32", "shape": [2, 64, 384], "data": data}})
with open(sys.argv[1], 'wb') as f:
    for _ in range(int(sys.argv[2])):
        f.write(rec)
PY
bytes=$(wc -c < "$tmp/emb.mp")
mb=$(echo "$bytes / 1000000" | bc -l)
t() { /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -1; }
openblas=$(/usr/bin/python3 -c 'import ctypes,ctypes.util; l=ctypes.CDLL("libopenblas.so.0"); l.openblas_get_corename.restype=ctypes.c_char_p; print(l.openblas_get_corename().decode())' 2>/dev/null || echo unknown)
echo "OpenBLAS core: $openblas; records: $n ($(printf %.0f "$mb") MB of msgpack)"
st=$(t sh -c "st-json --to-msgpack < $tmp/emb.mp")
py=$(t /usr/bin/python3 -c "
import msgpack, sys
out = open('/dev/null', 'wb')
for r in msgpack.Unpacker(open('$tmp/emb.mp', 'rb'), raw=False, max_buffer_size=1<<30):
    out.write(msgpack.packb(r))")
printf 'msgpack -> msgpack   st-json %6.0f MB/s   python-msgpack %6.0f MB/s   ratio %.2fx\n' \
	"$(echo "$mb / $st" | bc -l)" "$(echo "$mb / $py" | bc -l)" "$(echo "$py / $st" | bc -l)"
zstd -q -1 -c "$tmp/emb.mp" > "$tmp/emb.mp.zst"
stz=$(t sh -c "st-json --to-msgpack < $tmp/emb.mp.zst")
printf 'zstd msgpack -> msgpack   st-json %6.0f MB/s (decompressed bytes)\n' "$(echo "$mb / $stz" | bc -l)"
head -c $((bytes / 10)) "$tmp/emb.mp" > "$tmp/small.mp" || true
small=$(echo "$(wc -c < "$tmp/small.mp") / 1000000" | bc -l)
sj=$(t sh -c "st-json < $tmp/small.mp 2>/dev/null || true")
printf 'msgpack -> JSON Lines  st-json %6.0f MB/s of msgpack input\n' "$(echo "$small / $sj" | bc -l)"
