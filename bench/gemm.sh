#!/bin/sh
# bench/gemm.sh: GFLOP/s of st_sgemm's own kernels (AVX-512, AVX2) against cblas_sgemm on the project's
# shapes (transformer projections x W^T and their gradients at 1024 rows, 4000 tokens, the 4096 x 4096 x 384
# similarity matrix, attention per head with head size 32), on 1 and 2 threads (or the counts given).
# Run 1: OpenBLAS as it detects this CPU (OPENBLAS_CORETYPE is not touched). Run 2, labelled, sets
# OPENBLAS_CORETYPE=SkylakeX for that command only (when the CPU has AVX-512F), to compare with OpenBLAS's
# own AVX-512 kernels. Target: own >= 0.7 x OpenBLAS-SkylakeX on every shape on 1 thread.
# Usage, from the project root after `make`: sh bench/gemm.sh [threads...]
cd "$(dirname "$0")/.." || exit 1
make -s build/libst.a || exit 1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/st-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
CFLAGS="-O2 -march=native -std=gnu11 -fopenmp -Ilib $(pkg-config --cflags openblas)"
cc $CFLAGS -o "$TMP/gemm_bench" bench/gemm_bench.c build/libst.a $(pkg-config --libs openblas) -fopenmp -lm \
	-lpthread || exit 1
THREADS=${*:-1 2}

echo "== run 1: OpenBLAS as detected"
"$TMP/gemm_bench" $THREADS || exit 1
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
	echo
	echo "== run 2: OPENBLAS_CORETYPE=SkylakeX set for this run only (OpenBLAS's AVX-512 kernels)"
	OPENBLAS_CORETYPE=SkylakeX "$TMP/gemm_bench" $THREADS | tee "$TMP/skx" || exit 1
	# own/openblas is the last column, the thread count the fifth from the end
	awk '$(NF-4) == 1 && $NF ~ /^[0-9.]+$/ { n++; if (min == "" || $NF < min) min = $NF }
	     END { if (!n) exit 0
		   printf "worst own/OpenBLAS-SkylakeX ratio on 1 thread: %.2f ", min
		   if (min >= 0.7) print "(target >= 0.7 met)"; else { print "(target >= 0.7 missed)"; exit 1 } }' "$TMP/skx"
fi
