#!/bin/sh
# bench/gemm.sh: GFLOP/s of st_sgemm's own kernels (AVX-512, AVX2) against cblas_sgemm on the project's
# shapes (transformer projections x W^T and their gradients at 1024 rows, 4000 tokens, the 4096 x 4096 x 384
# similarity matrix, attention per head with head size 32), on 1 and 2 threads (or the counts given).
# Run 1: OpenBLAS as the environment leaves it. Run 2, labelled, only when OPENBLAS_CORETYPE or
# OPENBLAS_L2_SIZE is set: without them (OpenBLAS picks its kernels from the CPU). Run 3, labelled, sets
# OPENBLAS_CORETYPE=SkylakeX for that command only (when the CPU has AVX-512F), OpenBLAS's AVX-512 kernels.
# Each run interleaves the candidates in one process, so the own/openblas column is a same-run ratio.
# Target: own AVX-512 >= OpenBLAS's best (own/ob >= 1, within the noise) on the model's shapes (the first
# five rows: 768 or 96 tokens, N and K in 384/1152/1536), 1 thread.
# Usage, from the project root after `make`: sh bench/gemm.sh [threads...]
cd "$(dirname "$0")/.." || exit 1
make -s build/libst.a || exit 1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/st-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
CFLAGS="-O2 -march=native -std=gnu11 -fopenmp -Ilib $(pkg-config --cflags openblas)"
cc $CFLAGS -o "$TMP/gemm_bench" bench/gemm_bench.c build/libst.a $(pkg-config --libs openblas) -fopenmp -lm \
	-lpthread || exit 1
THREADS=${*:-1 2}

# own/openblas is the last column, the thread count the fifth from the end; the model's shapes are the
# first five of each thread count
worst() {
	awk -v what="$1" '$(NF-4) == 1 && $NF ~ /^[0-9.]+$/ && ++row <= 5 { if (min == "" || $NF < min) min = $NF }
	     END { if (min != "") printf "worst own/OpenBLAS (%s) on the model'"'"'s shapes, 1 thread: %.2f\n", what, min }' "$2"
}
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "== run 1: OpenBLAS as the environment leaves it (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-(unset)})"
"$TMP/gemm_bench" $THREADS | tee "$TMP/r1" || exit 1
worst "${OPENBLAS_CORETYPE:-as detected}" "$TMP/r1"
if [ -n "${OPENBLAS_CORETYPE+x}${OPENBLAS_L2_SIZE+x}" ]; then
	echo
	echo "== run 2: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for this run only (OpenBLAS picks its kernels)"
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$TMP/gemm_bench" $THREADS | tee "$TMP/r2" || exit 1
	worst "unpinned" "$TMP/r2"
fi
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
	echo
	echo "== run 3: OPENBLAS_CORETYPE=SkylakeX set for this run only (OpenBLAS's AVX-512 kernels)"
	OPENBLAS_CORETYPE=SkylakeX "$TMP/gemm_bench" $THREADS | tee "$TMP/r3" || exit 1
	worst "SkylakeX" "$TMP/r3"
fi
