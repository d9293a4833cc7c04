#!/bin/sh
# bench/encode.sh: sentences/s of enc_forward (MiniLM-L6-H384 shape, random weights, batch 64, lengths uniform in
# [T/2, T]) against PyTorch (eager, /usr/bin/python3) and ONNX Runtime (onnxruntime-node, model exported from the
# same weights), all on the same threads, for T = 32 and 128. Run from the repository root after `make`:
#     sh bench/encode.sh            (THREADS=2 REPS=5 by default)
# Every engine runs the same batches; the best batch time counts, and the engines take turns ROUNDS times so
# that load from other processes hits them alike. Not a test: it prints numbers, it does not judge them.
set -e
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-2}
PY=/usr/bin/python3
W=$(mktemp -d "${TMPDIR:-/tmp}/st-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT

[ -f build/libst.a ] || { echo "bench/encode.sh: run make first" >&2; exit 1; }
CFLAGS="-O2 -march=native -std=gnu11 -fopenmp -Ilib $(pkg-config --cflags openblas)"
LIBS="build/libst.a $(pkg-config --libs openblas msgpack libzstd jansson libutf8proc libpcre2-8) -fopenmp -lm"
cc $CFLAGS -o "$W/encode_bench" bench/encode_bench.c $LIBS

# OpenBLAS 0.3.21 does not know some newer Intel CPUs and falls back to its Prescott (SSE3) kernels; st then uses
# its own AVX-512/AVX2 kernels (lib/gemm.c), PyTorch stays on OpenBLAS's. The main run leaves OPENBLAS_CORETYPE
# as it is; on such a CPU a second, labelled run follows with OPENBLAS_CORETYPE=SkylakeX (or Haswell) for every
# engine, which is what a user who knows the variable gets.
core=$("$W/encode_bench" --T 8 --batch 2 --reps 1 | sed -n 's/^corename=//p')
echo "OpenBLAS core detected: $core; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}"

have_torch=1; $PY -c 'import torch' 2>/dev/null || have_torch=0
have_ort=1
if ! [ -d bench/node_modules/onnxruntime-node ]; then
	(cd bench && npm install --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null 2>&1) || have_ort=0
fi
[ "$have_torch" = 1 ] || have_ort=0   # the ONNX model is exported by PyTorch

get() { sed -n "s/^$1=//p" "$2" | tail -1; }
best() { printf '%s\n' "$@" | sort -g | tail -1; }

for T in 32 128; do
	d="$W/T$T"
	"$W/encode_bench" --threads "$THREADS" --T "$T" --reps "$REPS" --write "$d" > "$d.c0"
	if [ "$have_torch" = 1 ]; then
		$PY bench/encode_torch.py "$d" "$THREADS" --export "$d/model.onnx" > "$d.t0" 2> "$d.export.log" ||
			{ echo "PyTorch/ONNX export failed, see below" >&2; tail -5 "$d.export.log" >&2; have_ort=0; }
	fi
	c=$(get sentences_per_s "$d.c0"); t=$(get sentences_per_s "$d.t0" 2>/dev/null); o=
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		"$W/encode_bench" --threads "$THREADS" --T "$T" --reps "$REPS" > "$d.c"
		c="$c $(get sentences_per_s "$d.c")"
		if [ "$have_torch" = 1 ]; then
			$PY bench/encode_torch.py "$d" "$THREADS" > "$d.t" 2>/dev/null && t="$t $(get sentences_per_s "$d.t")"
		fi
		if [ "$have_ort" = 1 ]; then
			node bench/encode_onnx.js "$d" "$d/model.onnx" "$THREADS" > "$d.o" && o="$o $(get sentences_per_s "$d.o")"
		fi
		r=$((r + 1))
	done
	cb=$(best $c)
	echo
	echo "== T=$T, batch 64, mean length $(get mean_tokens "$d.c0"), $THREADS threads, OpenBLAS core $(get corename "$d.c")"
	echo "st enc_forward:   $cb sentences/s (runs: $c)"
	echo "  matmul work $(get projection_gflop "$d.c") GFLOP projections + $(get attention_gflop "$d.c") attention per batch;" \
	     "achieved $(get effective_gflops "$d.c") GFLOP/s over the whole forward;" \
	     "sgemm alone on the same shapes: OpenBLAS $(get sgemm_gflops "$d.c") GFLOP/s," \
	     "st_sgemm ($(get gemm_impl "$d.c")) $(get st_sgemm_gflops "$d.c") GFLOP/s"
	if [ -n "$t" ]; then
		tb=$(best $t)
		echo "PyTorch $(get torch_version "$d.t0"):  $tb sentences/s (runs: $t), max |diff| vs st $(get max_abs_diff "$d.t0")"
		echo "  ratio st / PyTorch: $(echo "$cb $tb" | awk '{printf "%.2f", $1 / $2}')"
	fi
	if [ -n "$o" ]; then
		ob=$(best $o)
		echo "ONNX Runtime $(get ort_version "$d.o"): $ob sentences/s (runs: $o), max |diff| vs st $(get max_abs_diff "$d.o")"
		echo "  ratio st / ONNX Runtime: $(echo "$cb $ob" | awk '{printf "%.2f", $1 / $2}')"
	fi
done
echo
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -z "$ST_BENCH_SECOND" ] && [ -z "$OPENBLAS_CORETYPE" ] && [ "$core" = Prescott ]; then
	second=SkylakeX; grep -q avx512f /proc/cpuinfo || second=Haswell
	echo
	echo "######## second run, labelled: OPENBLAS_CORETYPE=$second for every engine ########"
	ST_BENCH_SECOND=1 OPENBLAS_CORETYPE=$second sh "$0"
fi
