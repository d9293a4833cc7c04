#!/bin/sh
# bench/encode.sh: encoding speed of a MiniLM-L6-H384-shaped model (random weights), on THREADS threads, for
# sequence lengths in [16, 32] and [64, 128], against ONNX Runtime (onnxruntime-node) and PyTorch (eager,
# /usr/bin/python3), all in the same run. Run from the repository root after `make`:
#     sh bench/encode.sh            (THREADS=2 REPS=5 ROUNDS=2 TEXTS=640 by default)
# Two parts per length range:
#  - whole process: `st-encode --format f32` on TEXTS texts (wall time of the whole process: start-up, reading,
#    tokenising, batching, forward, pooling, writing), next to ONNX Runtime's session.run and PyTorch's forward +
#    mean pooling on the same token ids, sorted by length and batched 32 at a time as st-encode does (the anchors
#    are timed inside their process: no start-up, no tokenising). The ONNX file comes from st-export. Model FLOP
#    utilisation = useful matmul FLOPs / wall time / st_sgemm's GFLOP/s measured alone on the model's shapes.
#    On a CPU with AVX512-BF16 a row for `st-encode --compute bf16` follows (docs/encoder.md).
#  - enc_forward alone (bench/encode_bench.c), batch 64, against the same engines on the same batches.
# Every figure is the fastest of ROUNDS runs (REPS batches each for enc_forward), the engines taking turns, so that
# load from other processes hits them alike. Not a test: it prints numbers, it does not judge them.
# The run uses the environment as it is; when OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, a second, labelled
# run follows without them (OpenBLAS then picks its kernels from the CPU), and where OpenBLAS falls back to its
# Prescott kernels, one with OPENBLAS_CORETYPE=SkylakeX (or Haswell).
set -e
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-2}
TEXTS=${TEXTS:-640}
PY=/usr/bin/python3
W=$(mktemp -d "${TMPDIR:-/tmp}/st-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT

[ -f build/libst.a ] && [ -x bin/st-encode ] || { echo "bench/encode.sh: run make first" >&2; exit 1; }
CFLAGS="-O2 -march=native -std=gnu11 -fopenmp -Ilib $(pkg-config --cflags openblas)"
LIBS="build/libst.a $(pkg-config --libs openblas msgpack libzstd jansson libutf8proc libpcre2-8) -fopenmp -lm"
cc $CFLAGS -o "$W/encode_bench" bench/encode_bench.c $LIBS

core=$("$W/encode_bench" --T 8 --batch 2 --reps 1 | sed -n 's/^corename=//p')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
fam=$(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -1)
mod=$(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo | head -1)
avx=$(grep -o -w 'avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')
echo "CPU: $cpu (family $fam, model $mod; $avx), $(nproc) cores online, $THREADS threads used"
echo "OpenBLAS core: $core; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-(unset)} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-(unset)}"
echo "st_sgemm: $("$W/encode_bench" --T 8 --batch 2 --reps 1 | sed -n 's/^gemm_choice=//p')"

have_torch=1; $PY -c 'import torch' 2>/dev/null || have_torch=0
# onnxruntime-node: bench/node_modules (npm install here), else the one tests/js uses
if ! [ -d bench/node_modules/onnxruntime-node ] && ! [ -d tests/js/node_modules/onnxruntime-node ]; then
	(cd bench && npm install --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null 2>&1) || true
fi
NODE_PATH="$(pwd)/bench/node_modules:$(pwd)/tests/js/node_modules${NODE_PATH:+:$NODE_PATH}"
export NODE_PATH
have_ort=1; node -e "require('onnxruntime-node')" 2>/dev/null || have_ort=0

have_bf16=0; grep -qw avx512_bf16 /proc/cpuinfo && have_bf16=1
get() { sed -n "s/^$1=//p" "$2" | tail -1; }
best() { printf '%s\n' "$@" | sort -g | tail -1; }
ratio() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.2f", $1 / $2; else printf "-" }'; }
now() { date +%s.%N; }
TIME=; [ -x /usr/bin/time ] && TIME="/usr/bin/time -f %U:%S"   # CPU seconds, user:system

# ---- whole process ----
# The model: st-init's MiniLM-L6-H384 shape with a vocabulary in which word wN is token N, so that the anchors
# get the same token ids as st-encode without a tokenizer of their own.
{ printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n'; seq 5 30521 | sed 's/^/w/'; } > "$W/vocab.txt"
cat > "$W/minilm.json" <<'JSON'
{"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
 "intermediate_size": 1536, "max_position_embeddings": 512, "hidden_act": "gelu", "layer_norm_eps": 1e-12}
JSON
bin/st-init --config "$W/minilm.json" --vocab "$W/vocab.txt" -o "$W/m" 2> "$W/init.err" ||
	{ echo "bench/encode.sh: st-init failed: $(head -1 "$W/init.err")" >&2; exit 1; }
ort_model=0
[ "$have_ort" = 1 ] && bin/st-export --onnx --model "$W/m" -o "$W/m.onnx" 2> "$W/export.err" && ort_model=1

whole() {   # whole LO HI: texts of LO..HI tokens, [CLS] and [SEP] included
	t="$W/texts-$1-$2.txt"
	awk -v n="$TEXTS" -v lo=$(($1 - 2)) -v hi=$(($2 - 2)) -v seed="$1" 'BEGIN { srand(seed)
		for (i = 0; i < n; i++) { k = lo + int(rand() * (hi - lo + 1)); s = ""
			for (j = 0; j < k; j++) s = s (j ? " " : "") "w" (1000 + int(rand() * 29000)); print s } }' > "$t"
	# useful FLOPs: projections 2 (4 H^2 + 2 H I) per token and layer, attention 4 L^2 H per text and layer
	flops=$(awk '{ L = NF + 2; f += 6 * (2 * (4 * 384 * 384 + 2 * 384 * 1536) * L + 4 * L * L * 384) } END { printf "%.0f", f }' "$t")
	mean=$(awk '{ s += NF + 2 } END { printf "%.1f", s / NR }' "$t")
	s_runs= b_runs= h_runs= g_runs= o_runs= p_runs= s_cpu= g_cpu= o_cpu= p_cpu=
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		t0=$(now); $TIME bin/st-encode --model "$W/m" --threads "$THREADS" --format f32 < "$t" > "$W/st.f32" 2> "$W/time"; t1=$(now)
		s_runs="$s_runs $(echo "$TEXTS $t0 $t1" | awk '{ printf "%.1f", $1 / ($3 - $2) }')"
		[ -z "$TIME" ] || s_cpu="$s_cpu $(tail -1 "$W/time" | awk -F: -v n="$TEXTS" '{ printf "%.1f", n / ($1 + $2) }')"
		if [ "$have_bf16" = 1 ]; then   # the projections in bfloat16 (docs/encoder.md, "Compute precision")
			t0=$(now); bin/st-encode --model "$W/m" --threads "$THREADS" --format f32 --compute bf16 < "$t" > /dev/null; t1=$(now)
			h_runs="$h_runs $(echo "$TEXTS $t0 $t1" | awk '{ printf "%.1f", $1 / ($3 - $2) }')"
		fi
		t0=$(now); ST_GEMM=blas bin/st-encode --model "$W/m" --threads "$THREADS" --format f32 < "$t" > /dev/null; t1=$(now)
		b_runs="$b_runs $(echo "$TEXTS $t0 $t1" | awk '{ printf "%.1f", $1 / ($3 - $2) }')"
		if [ -z "$GOMP_SPINCOUNT" ] && [ -z "$OMP_WAIT_POLICY" ]; then
			t0=$(now); GOMP_SPINCOUNT=10000 $TIME bin/st-encode --model "$W/m" --threads "$THREADS" --format f32 < "$t" > /dev/null 2> "$W/time"; t1=$(now)
			g_runs="$g_runs $(echo "$TEXTS $t0 $t1" | awk '{ printf "%.1f", $1 / ($3 - $2) }')"
			[ -z "$TIME" ] || g_cpu="$g_cpu $(tail -1 "$W/time" | awk -F: -v n="$TEXTS" '{ printf "%.1f", n / ($1 + $2) }')"
		fi
		if [ "$ort_model" = 1 ]; then
			node bench/encode_texts_onnx.js "$W/m.onnx" "$t" "$THREADS" 32 1 > "$W/o" &&
				o_runs="$o_runs $(get sentences_per_s "$W/o")" && o_cpu="$o_cpu $(get sentences_per_cpu_s "$W/o")"
		fi
		if [ "$have_torch" = 1 ] && [ $r = 0 ]; then   # PyTorch is far behind: one round is enough to place it
			$PY bench/encode_torch.py --texts "$W/m" "$t" "$THREADS" 32 1 > "$W/p" 2>/dev/null &&
				p_runs="$p_runs $(get sentences_per_s "$W/p")" && p_cpu="$p_cpu $(get sentences_per_cpu_s "$W/p")"
		fi
		r=$((r + 1))
	done
	sb=$(best $s_runs); bb=$(best $b_runs)
	peak=$("$W/encode_bench" --threads "$THREADS" --T "$2" --batch 32 --reps 1 | sed -n 's/^st_sgemm_gflops=//p')
	echo
	echo "== whole process, $TEXTS texts of $1-$2 tokens (mean $mean), batch 32, $THREADS threads"
	echo "st-encode:                $sb sentences/s (runs:$s_runs)"
	echo "  model FLOP utilisation: $(echo "$flops $sb $TEXTS $peak" | awk '{ printf "%.0f%%", 100 * $1 * $2 / $3 / 1e9 / $4 }')" \
	     "($(echo "$flops $sb $TEXTS" | awk '{ printf "%.0f", $1 * $2 / $3 / 1e9 }') GFLOP/s useful of the $peak GFLOP/s st_sgemm reaches alone on these shapes)"
	echo "st-encode, ST_GEMM=blas:  $bb sentences/s (runs:$b_runs; OpenBLAS $core kernels)"
	[ -z "$h_runs" ] || echo "st-encode --compute bf16: $(best $h_runs) sentences/s (runs:$h_runs; ratio to float32 $(ratio "$(best $h_runs)" "$sb"))"
	# libgomp's idle threads spin for a while at every barrier; on a busy machine that time is taken from the
	# thread being waited for (measured: twice the CPU time, a third more wall time, load 20 on 2 cores)
	[ -z "$g_runs" ] || echo "st-encode, GOMP_SPINCOUNT=10000: $(best $g_runs) sentences/s (runs:$g_runs${g_cpu:+; $(best $g_cpu) per CPU-second}; bounded spinning)"
	if [ -n "$o_runs" ]; then
		ob=$(best $o_runs)
		echo "ONNX Runtime $(get ort_version "$W/o") session.run: $ob sentences/s (runs:$o_runs)"
		echo "  ratio st-encode / ONNX Runtime: $(ratio "$sb" "$ob")   (goal: 1.2 for 16-32, 1.5 for 64-128)"
	else
		echo "ONNX Runtime: not available (onnxruntime-node or st-export missing)"
	fi
	if [ -n "$p_runs" ]; then
		pb=$(best $p_runs)
		echo "PyTorch $(get torch_version "$W/p") forward + pooling: $pb sentences/s; ratio st-encode / PyTorch: $(ratio "$sb" "$pb")"
	fi
	if [ -n "$s_cpu" ]; then   # on a shared machine wall time follows the load; CPU time much less so
		line="per CPU-second (user + system, all threads; st-encode's whole process, the anchors' runs only):"
		line="$line st-encode $(best $s_cpu)"
		[ -z "$o_cpu" ] || line="$line, ONNX Runtime $(best $o_cpu) (ratio $(ratio "$(best $s_cpu)" "$(best $o_cpu)"))"
		[ -z "$p_cpu" ] || line="$line, PyTorch $(best $p_cpu)"
		echo "$line sentences"
	fi
}
whole 16 32
whole 64 128

# ---- enc_forward alone ----
if [ "$have_torch" = 0 ]; then have_ort=0; fi   # the ONNX model of this part is exported by PyTorch
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
	echo "== enc_forward alone, T=$T, batch 64, mean length $(get mean_tokens "$d.c0"), $THREADS threads, OpenBLAS core $(get corename "$d.c")"
	echo "st enc_forward:   $cb sentences/s (runs: $c)"
	echo "  matmul work $(get projection_gflop "$d.c") GFLOP projections + $(get attention_gflop "$d.c") attention per batch;" \
	     "achieved $(get effective_gflops "$d.c") GFLOP/s over the whole forward;" \
	     "sgemm alone on the same shapes: OpenBLAS $(get sgemm_gflops "$d.c") GFLOP/s," \
	     "st_sgemm ($(get gemm_impl "$d.c")) $(get st_sgemm_gflops "$d.c") GFLOP/s"
	if [ -n "$t" ]; then
		tb=$(best $t)
		echo "PyTorch $(get torch_version "$d.t0"):  $tb sentences/s (runs: $t), max |diff| vs st $(get max_abs_diff "$d.t0")"
		echo "  ratio st / PyTorch: $(ratio "$cb" "$tb")"
	fi
	if [ -n "$o" ]; then
		ob=$(best $o)
		echo "ONNX Runtime $(get ort_version "$d.o"): $ob sentences/s (runs: $o), max |diff| vs st $(get max_abs_diff "$d.o")"
		echo "  ratio st / ONNX Runtime: $(ratio "$cb" "$ob")"
	fi
done
echo
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) cores)"
if [ -z "$ST_BENCH_SECOND" ]; then
	if [ -n "${OPENBLAS_CORETYPE+x}${OPENBLAS_L2_SIZE+x}" ]; then
		echo
		echo "######## second run, labelled: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (OpenBLAS picks its kernels) ########"
		ST_BENCH_SECOND=1 env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE sh "$0"
	elif [ "$core" = Prescott ]; then
		second=SkylakeX; grep -q avx512f /proc/cpuinfo || second=Haswell
		echo
		echo "######## second run, labelled: OPENBLAS_CORETYPE=$second for every engine ########"
		ST_BENCH_SECOND=1 OPENBLAS_CORETYPE=$second sh "$0"
	fi
fi
