#!/bin/sh
# bench/loss.sh: the mnrl loss stage at batch 4096 x 2 columns x 384 dims against the sgemm work of one
# MiniLM-L6 forward of that batch (2 * 22.7M params * 4096 * 2 * 24 tokens FLOPs at the measured sgemm
# GFLOP/s). Target: the loss under 5% of the forward. Also times the whole st-loss stage on a msgpack batch
# (reading, the loss, writing). Run from the project root after `make`: sh bench/loss.sh [rows] [dim]
set -e
cd "$(dirname "$0")/.."
B=${1:-4096}
D=${2:-384}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/st-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
make -s build/libst.a bin/st-loss
CFLAGS="-O2 -march=native -std=gnu11 -fopenmp -Ilib $(pkg-config --cflags openblas)"
cc $CFLAGS -o "$TMP/loss_bench" bench/loss_bench.c build/libst.a $(pkg-config --libs openblas msgpack libzstd jansson) -fopenmp -lm
"$TMP/loss_bench" "$B" "$D" 24 | tee "$TMP/out"

# the whole stage: one msgpack batch in, the batch with loss and grad out
if /usr/bin/python3 -c 'import numpy, msgpack' 2>/dev/null; then
	/usr/bin/python3 - "$B" "$D" >"$TMP/batch.mp" <<'PY'
import sys, numpy as np, msgpack
B, D = int(sys.argv[1]), int(sys.argv[2])
E = np.random.default_rng(1).standard_normal((2, B, D)).astype("<f4")
sys.stdout.buffer.write(msgpack.packb({"v": 1, "kind": "batch", "step": 0, "steps": 1,
    "embeddings": {"dtype": "f32", "shape": [2, B, D], "data": E.tobytes()}}, use_bin_type=True))
PY
	t0=$(date +%s.%N)
	bin/st-loss mnrl <"$TMP/batch.mp" >/dev/null
	t1=$(date +%s.%N)
	fwd=$(sed -n 's/.*forward_s=\([0-9.]*\).*/\1/p' "$TMP/out")
	echo "$t0 $t1 $fwd" | awk '{ printf "st-loss mnrl stage (msgpack in and out): %.3f s (%.2f%% of the forward)\n", $2 - $1, 100 * ($2 - $1) / $3 }'
else
	echo "(python3-numpy and python3-msgpack are needed for the whole-stage timing)"
fi
awk '/^RESULT/ { split($4, r, "="); if (r[2] < 0.05) print "target met: loss < 5% of the forward"; else { print "target missed: loss >= 5% of the forward"; exit 1 } }' "$TMP/out"
