#!/bin/sh
# bench/train.sh: training speed and memory of the whole pipeline
#     st-batch | st-forward --run | st-loss mnrl | st-step
# on a MiniLM-L6-H384-shaped model (6 layers, hidden 384, 12 heads, FFN 1536, vocab 30522, random weights from
# st-init), pairs of random token ids with lengths uniform in [16, 32] (special tokens included), against a
# PyTorch train step of the same model on the same batches (bench/train_torch.py: plain torch BERT, mean
# pooling, mnrl, backward, clipping, AdamW), on the same threads, in the same run.
# Prints: the CPU model; pairs/s of both and their ratio (target: st >= 3x); useful GFLOP/s (6 x non-embedding
# parameters x tokens / time) next to sgemm GFLOP/s on 1024x1536x384 (OpenBLAS and st_sgemm) and OpenBLAS's core
# name, and model FLOP utilisation (useful GFLOP/s / the faster sgemm's); CPU seconds per pair of the pipeline's
# stages (user + system, start-up and warm-up included: less sensitive to a busy machine than time); how many
# chunks st-step had to re-run forward (0 when st-forward's kept activations were used); then
# one step of a BIG-pair batch (--mini-batch-size MB in st-forward and st-step) with the peak RSS of every stage
# (/usr/bin/time -f %M) summed (target < 2 GiB) and its time per pair against batch 32 (target within 1.3x).
# The main run leaves OPENBLAS_CORETYPE as it is; when OpenBLAS falls back to Prescott on this CPU, a second,
# labelled run of the batch-32 comparison follows with OPENBLAS_CORETYPE=SkylakeX (or Haswell).
# Not a test: it prints numbers, it does not judge them. From the repository root after `make`:
#     sh bench/train.sh          THREADS=2 STEPS=4 (timed, after 2 warm-up steps) BIG=4096 MB=32 by default
#     BIG=0 sh bench/train.sh    skips the large batch (it takes most of the time: ~BIG/32 batch-32 steps)
#     SECOND=0                   skips the labelled OPENBLAS_CORETYPE run
#     REPEAT=N                   runs each engine's batch-32 comparison N times, interleaved, and keeps the best
#                                (a shared machine: the minimum time is the least disturbed)
#     BEFORE=DIR                 also runs the st pipeline of another build (DIR/bin, e.g. a copy of bin/ made
#                                before a change) in the same run, interleaved: before/after on the same load
set -e
cd "$(dirname "$0")/.."
ROOT=$(pwd)
THREADS=${THREADS:-2}
STEPS=${STEPS:-4}
REPEAT=${REPEAT:-1}
BEFORE=${BEFORE:-}
WARM=2
BIG=${BIG:-4096}
MB=${MB:-32}
PY=/usr/bin/python3
PATH="$ROOT/bin:$PATH"
W=$(mktemp -d "${TMPDIR:-/tmp}/st-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
[ -x bin/st-step ] && [ -f build/libst.a ] || { echo "bench/train.sh: run make first" >&2; exit 1; }

cc -O2 -march=native -std=gnu11 -fopenmp -Ilib $(pkg-config --cflags openblas) -o "$W/train_sgemm" \
	bench/train_sgemm.c build/libst.a $(pkg-config --libs openblas) -fopenmp -lm -lpthread

# the model: MiniLM-L6-H384's shape; its vocabulary when ../shared/data has it, else 30522 made-up entries
cat > "$W/config.json" <<'EOF'
{"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
 "intermediate_size": 1536, "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_dropout_prob": 0.1,
 "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.02,
 "pad_token_id": 0}
EOF
vocab="$ROOT/../shared/data/tokenizers/all-MiniLM-L6-v2/vocab.txt"
if [ ! -f "$vocab" ]; then
	vocab="$W/vocab.txt"
	{ echo '[PAD]'; i=1; while [ $i -lt 100 ]; do echo "[unused$i]"; i=$((i + 1)); done
	  printf '[UNK]\n[CLS]\n[SEP]\n[MASK]\n'; seq 104 30521 | sed 's/^/t/'; } > "$vocab"
fi
st-init --config "$W/config.json" --vocab "$vocab" --seed 1 -o "$W/model" 2>/dev/null

# pairs of token ids: [CLS] random ids [SEP], 16..32 tokens each
gen() {   # gen SEED COUNT
	awk -v seed="$1" -v count="$2" 'BEGIN { srand(seed); for (i = 0; i < count; i++) {
		printf "{\"input_ids\": ["
		for (c = 0; c < 2; c++) { n = 16 + int(rand() * 17); printf "%s[101", c ? ", " : ""
			for (k = 2; k < n; k++) printf ", %d", 1000 + int(rand() * 29000); printf ", 102]" }
		print "]}" } }'
}
gen 1 $(((STEPS + WARM) * 32)) > "$W/pairs32.jsonl"
st-batch --size 32 --json < "$W/pairs32.jsonl" > "$W/batches32.jsonl"

nonemb=$($PY - "$W/model/model.safetensors" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
total = 0
for k, v in h.items():
    if k == "__metadata__" or k.startswith(("embeddings.", "pooler.")):
        continue
    c = 1
    for d in v["shape"]:
        c *= d
    total += c
print(total)
EOF
)

# run_st BATCHES.jsonl NAME SIZE [BIN]: the training pipeline (of BIN, default bin/), each stage under
# /usr/bin/time; leaves NAME.log, NAME.rss.* (peak RSS KiB, user s, system s)
run_st() {
	b=${4:-$ROOT/bin}
	rm -rf "$W/$2.run"
	t0=$(date +%s.%N)
	/usr/bin/time -f '%M %U %S' -o "$W/$2.rss.batch" "$b/st-batch" --size "$3" < "$1" |
		/usr/bin/time -f '%M %U %S' -o "$W/$2.rss.forward" "$b/st-forward" --model "$W/model" --run "$W/$2.run" \
			--threads "$THREADS" --mini-batch-size "$MB" |
		/usr/bin/time -f '%M %U %S' -o "$W/$2.rss.loss" "$b/st-loss" mnrl --threads "$THREADS" |
		/usr/bin/time -f '%M %U %S' -o "$W/$2.rss.step" "$b/st-step" --model "$W/model" --run "$W/$2.run" \
			--threads "$THREADS" --mini-batch-size "$MB" --lr 2e-5 --no-save --json > "$W/$2.log"
	t1=$(date +%s.%N)
	echo "$t0 $t1" | awk '{ printf "%.3f\n", $2 - $1 }' > "$W/$2.wall"
}
rss_sum() { cat "$W/$1".rss.* | awk '{ s += $1 } END { printf "%.0f", s / 1024 }'; }
rss_each() { for s in batch forward loss step; do printf '%s %.0f MiB  ' "$s" "$(awk '{ print $1 / 1024 }' "$W/$1.rss.$s")"; done; }
cpu_per_pair() { cat "$W/$1".rss.* | awk -v n="$2" '{ s += $2 + $3 } END { printf "%.3f", s / n }'; }
reforwarded() { jq -s '[.[] | select(.kind == "log") | .reforwarded // "?"] | if any(. == "?") then "? (an st-step that does not say)" else add end' "$W/$1.log"; }
get() { sed -n "s/^$1=//p" "$2" | tail -1; }
# steady-state pairs/s from st-step's log: every step after the warm-up ones, the time since the previous log
st_rate() { jq -r "select(.kind == \"log\" and .step >= $WARM) | .examples_per_s" "$1" |
	awk '{ t += 32 / $1; n += 32 } END { printf "%.2f", n / t }'; }
# one more run of the st pipeline (BIN); its files become NAME.* when it is the fastest of NAME so far
try_st() {   # try_st NAME [BIN]
	run_st "$W/pairs32.jsonl" "$1.try" 32 "$2"
	if [ ! -f "$W/$1.log" ] || awk -v a="$(st_rate "$W/$1.try.log")" -v b="$(st_rate "$W/$1.log")" 'BEGIN { exit !(a > b) }'; then
		for f in "$W/$1.try".*; do rm -rf "$W/$1${f#"$W/$1.try"}"; mv "$f" "$W/$1${f#"$W/$1.try"}"; done
	fi
}

compare32() {   # the batch-32 comparison; $1 = label
	rm -rf "$W"/s32.* "$W"/b32.* "$W/sgemm"
	tt=0
	for i in $(seq "$REPEAT"); do
		# the yardstick too is the best of the runs: a number measured in a quiet moment beside others' best
		"$W/train_sgemm" "$THREADS" > "$W/sgemm.try"
		if [ ! -f "$W/sgemm" ] || awk -v a="$(get openblas_gflops "$W/sgemm.try")" -v b="$(get openblas_gflops "$W/sgemm")" \
			'BEGIN { exit !(a > b) }'; then
			mv "$W/sgemm.try" "$W/sgemm"
		fi
		try_st s32
		[ -n "$BEFORE" ] && try_st b32 "$BEFORE/bin"
		$PY bench/train_torch.py "$W/model" "$W/batches32.jsonl" "$THREADS" "$WARM" > "$W/torch.try"
		if awk -v a="$(get pairs_per_s "$W/torch.try")" -v b="$tt" 'BEGIN { exit !(a > b) }'; then
			mv "$W/torch.try" "$W/torch"
			tt=$(get pairs_per_s "$W/torch")
		fi
	done
	st=$(st_rate "$W/s32.log")
	peak=$(echo "$(get openblas_gflops "$W/sgemm") $(get st_sgemm_gflops "$W/sgemm")" | awk '{ print ($1 > $2 ? $1 : $2) }')
	tokens=$(jq '[.lengths[][]] | add' "$W/batches32.jsonl" | awk '{ s += $1 } END { printf "%.1f", s / NR }')
	echo
	echo "== $1: batch 32 pairs, $THREADS threads, $STEPS timed steps after $WARM, mean $tokens tokens per batch," \
	     "best of $REPEAT"
	echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs online"
	echo "OpenBLAS core $(get corename "$W/sgemm"); sgemm $(get sgemm_shape "$W/sgemm"): OpenBLAS" \
	     "$(get openblas_gflops "$W/sgemm") GFLOP/s, st_sgemm ($(get st_sgemm_impl "$W/sgemm")) $(get st_sgemm_gflops "$W/sgemm") GFLOP/s"
	echo "st pipeline:     $st pairs/s (steady state from st-step's log; whole run incl. start-up $(cat "$W/s32.wall") s)"
	[ -n "$BEFORE" ] && echo "st before ($BEFORE): $(st_rate "$W/b32.log") pairs/s; after / before:" \
	     "$(echo "$st $(st_rate "$W/b32.log")" | awk '{ printf "%.2f", $1 / $2 }');" \
	     "CPU s per pair $(cpu_per_pair b32 $(((STEPS + WARM) * 32))) before, $(cpu_per_pair s32 $(((STEPS + WARM) * 32))) after"
	echo "PyTorch $(get torch_version "$W/torch"): $tt pairs/s"
	echo "ratio st / PyTorch: $(echo "$st $tt" | awk '{ printf "%.2f", $1 / $2 }')  (target >= 3)"
	echo "useful GFLOP/s (6 x $nonemb non-embedding params x tokens / time): st" \
	     "$(echo "$st $nonemb $tokens" | awk '{ printf "%.1f", 6 * $2 * $3 / 32 * $1 / 1e9 }')," \
	     "PyTorch $(echo "$tt $nonemb $tokens" | awk '{ printf "%.1f", 6 * $2 * $3 / 32 * $1 / 1e9 }')"
	echo "model FLOP utilisation (useful GFLOP/s / the faster sgemm's $peak GFLOP/s): st" \
	     "$(echo "$st $nonemb $tokens $peak" | awk '{ printf "%.0f%%", 100 * 6 * $2 * $3 / 32 * $1 / 1e9 / $4 }'), PyTorch" \
	     "$(echo "$tt $nonemb $tokens $peak" | awk '{ printf "%.0f%%", 100 * 6 * $2 * $3 / 32 * $1 / 1e9 / $4 }')"
	echo "st CPU seconds per pair (all stages, user + system, start-up included): $(cpu_per_pair s32 $(((STEPS + WARM) * 32)));" \
	     "chunks st-step re-ran forward: $(reforwarded s32)"
	echo "first loss: st $(jq -r 'select(.kind == "log") | .loss' "$W/s32.log" | head -1), PyTorch $(get first_loss "$W/torch")" \
	     "(same model and batch; st has dropout on, the PyTorch step none)"
	echo "peak RSS per stage: $(rss_each s32) sum $(rss_sum s32) MiB"
}

compare32 "main run, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}"
per32=$(st_rate "$W/s32.log")

if [ "$BIG" -gt 0 ]; then
	gen 2 "$BIG" > "$W/pairsbig.jsonl"
	run_st "$W/pairsbig.jsonl" big "$BIG"
	wall=$(cat "$W/big.wall")
	echo
	echo "== one step of batch $BIG pairs (mnrl over $BIG x $BIG similarities), --mini-batch-size $MB"
	echo "peak RSS per stage: $(rss_each big)"
	echo "sum of the stages' peak RSS: $(rss_sum big) MiB  (target < 2048)"
	echo "time: $wall s for the whole pipeline (start-up included): $(echo "$wall $BIG" | awk '{ printf "%.2f", $1 / $2 * 1000 }') ms/pair," \
	     "batch 32: $(echo "$per32" | awk '{ printf "%.2f", 1000 / $1 }') ms/pair, ratio" \
	     "$(echo "$wall $BIG $per32" | awk '{ printf "%.2f", ($1 / $2) * $3 }') (target <= 1.3)"
	echo "loss of the step: $(jq -r 'select(.kind == "log") | .loss' "$W/big.log") (ln $BIG = $(awk -v n="$BIG" 'BEGIN { printf "%.3f", log(n) }'))"
fi
echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "${SECOND:-1}" != 0 ] && [ -z "$OPENBLAS_CORETYPE" ] && [ "$(get corename "$W/sgemm")" = Prescott ]; then
	second=SkylakeX; grep -qw avx512f /proc/cpuinfo || second=Haswell
	OPENBLAS_CORETYPE=$second
	export OPENBLAS_CORETYPE
	compare32 "second run, labelled: OPENBLAS_CORETYPE=$second for every engine"
fi
