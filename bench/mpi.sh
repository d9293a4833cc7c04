#!/bin/sh
# bench/mpi.sh: data-parallel scaling on this machine. The training pipeline
#     st-batch | st-forward --run | st-loss mnrl | st-step
# on a MiniLM-L6-H384-shaped model (random weights from st-init, vocab 1000) with pairs of 24 random token ids
# (one length, so that the ranks do the same work and a rank's wait for the reduction is communication, not one
# rank being behind), per-rank batch B, run in the same run: 1 rank x 1 thread, 2 ranks x 1 thread (mpirun, the gradient
# averaged by MPI_Iallreduce in buckets overlapped with the last backward, --bucket-mb 25, the default), the same
# without overlap (--bucket-mb 0: one reduction after the backward), the same with st-gather (in-batch negatives
# across the ranks), and 1 rank x 2 threads. Prints seconds per step and pairs/s (global batch / time per step)
# of each, and for the 2-rank runs the time rank 0 spent waiting for the reduction after its backward (the
# communication that computation did not hide; ST_DIST_STATS); docs/training.md "Scaling out" turns them into a
# model for more machines.
# Not a test. From the repository root after `make`:  sh bench/mpi.sh    (B=16 STEPS=6 by default)
set -e
cd "$(dirname "$0")/.."
ROOT=$(pwd)
B=${B:-16}
STEPS=${STEPS:-6}
PATH="$ROOT/bin:$PATH"
export PATH
command -v mpirun > /dev/null || { echo "bench/mpi.sh: mpirun is absent (make deps)" >&2; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/st-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
{ printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n'; seq 5 999 | sed 's/^/w/'; } > "$W/vocab.txt"
echo '{"model_type": "bert", "vocab_size": 1000, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
  "intermediate_size": 1536, "max_position_embeddings": 512, "hidden_dropout_prob": 0,
  "attention_probs_dropout_prob": 0}' > "$W/config.json"
st-init --config "$W/config.json" --vocab "$W/vocab.txt" --seed 1 -o "$W/m" 2> /dev/null
# enough pairs for STEPS global batches of 2 ranks
awk -v N=$((B * 2 * STEPS)) 'BEGIN { srand(3); for (i = 0; i < N; i++) { printf "{\"input_ids\": ["
	for (c = 0; c < 2; c++) { n = 22; printf "%s[2", c ? ", " : ""
	for (k = 0; k < n; k++) printf ", %d", 5 + int(rand() * 995); printf ", 3]" } print "]}" } }' > "$W/pairs.jsonl"
MPI="mpirun --oversubscribe"
[ "$(id -u)" = 0 ] && MPI="$MPI --allow-run-as-root"
run() {   # run NAME NP THREADS [BUCKET-MB [MID]]: prints seconds per step (the last STEPS-1 steps: the first warms up)
	name=$1 np=$2 th=$3 bucket=${4:-25} mid=${5:-cat}
	rm -rf "$W/$name"*
	$MPI -x ST_DIST_STATS=1 -np "$np" sh -c 'st-batch --size '$B' < "$1/pairs.jsonl" | st-forward --model "$1/m" --run "$1/'$name'" --threads '$th' |
		'$mid' | st-loss mnrl | st-step --model "$1/m" --run "$1/'$name'" --threads '$th' --max-steps '$STEPS' --json --no-save \
		--bucket-mb '$bucket' > "$1/'$name'.log.$OMPI_COMM_WORLD_RANK" 2> "$1/'$name'.err.$OMPI_COMM_WORLD_RANK"' sh "$W" < /dev/null
	# examples_per_s of each step is the global batch over the time since the previous step
	jq -r 'select(.kind == "log") | .examples_per_s' "$W/$name.log.0" | tail -n +2 |
		awk -v np=$np -v b=$B '{ s += np * b / $1; n++ } END { printf "%.3f s/step  %.1f pairs/s  (global batch %d)", s / n, np * b * n / s, np * b }'
	waited=$(sed -n 's/.*reductions, \([0-9.]*\) s waiting.*(\([0-9.]*\) s per step)/  waited for the allreduce: \2 s per step/p' "$W/$name.err.0")
	echo "$waited"
}
if [ "$(nproc)" -lt 2 ]; then echo "bench/mpi.sh: fewer than 2 cores" >&2; fi
printf '1 rank  x 1 thread : '; run a 1 1
printf '2 ranks x 1 thread : '; run b 2 1
printf '  ... --bucket-mb 0  : '; run d 2 1 0
printf '  ... with st-gather: '; run e 2 1 25 st-gather
printf '1 rank  x 2 threads: '; run c 1 2
