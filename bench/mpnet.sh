#!/bin/sh
# bench/mpnet.sh: st-encode on MPNet against BERT of the same shape (hidden 384, 6 layers, 12 heads, FFN 1536,
# random weights from st-init), on the same texts (LINES lines of 20-120 words, one token each, so rows of 22-122
# tokens: MPNet's relative attention bias covers all its buckets). The two take turns ROUNDS times and the best
# time of each counts, so that load from other processes hits both alike. Both CPU time (user + system, the
# steadier figure on a shared machine) and wall time are reported. Run from the repository root after `make`:
#     sh bench/mpnet.sh          (THREADS=1 LINES=500 ROUNDS=3 by default)
# Prints lines/s of each and MPNet's time relative to BERT's. Not a test: it prints numbers, it does not judge them.
set -e
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}
LINES=${LINES:-500}
ROUNDS=${ROUNDS:-3}
PATH="$PWD/bin:$PATH"
W=$(mktemp -d "${TMPDIR:-/tmp}/st-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
[ -x bin/st-encode ] || { echo "bench/mpnet.sh: run make first" >&2; exit 1; }

shape='"vocab_size": 30527, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
 "intermediate_size": 1536, "max_position_embeddings": 514, "layer_norm_eps": 1e-5'
echo "{\"model_type\": \"bert\", $shape, \"pad_token_id\": 0}" > "$W/bert.json"
echo "{\"model_type\": \"mpnet\", $shape}" > "$W/mpnet.json"
{ printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n'; seq 0 999 | sed 's/^/w/'; } > "$W/bert-vocab.txt"
{ printf '<s>\n<pad>\n</s>\n<unk>\n[UNK]\n'; seq 0 999 | sed 's/^/w/'; } > "$W/mpnet-vocab.txt"
st-init --config "$W/bert.json" --vocab "$W/bert-vocab.txt" --max-seq-length 128 -o "$W/bert"
st-init --config "$W/mpnet.json" --vocab "$W/mpnet-vocab.txt" --max-seq-length 128 -o "$W/mpnet"
awk -v N="$LINES" 'BEGIN { srand(7); for (i = 0; i < N; i++) { n = 20 + int(rand() * 101); s = "w" int(rand() * 1000)
	for (k = 1; k < n; k++) s = s " w" int(rand() * 1000); print s } }' > "$W/texts"

# the best (smallest) of the times so far in column $2 (1: wall, 2: cpu) of file $1
min_of() { awk -v c="$2" 'NR == 1 || $c < m { m = $c } END { print m }' "$1"; }
r=0
while [ $r -lt "$ROUNDS" ]; do
	for m in bert mpnet; do
		/usr/bin/time -f '%e %U %S' -o "$W/t" st-encode --model "$W/$m" --threads "$THREADS" --format f32 \
			< "$W/texts" > "$W/$m.out"
		awk '{ print $1, $2 + $3 }' "$W/t" >> "$W/$m.times"
	done
	r=$((r + 1))
done
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "CPU: ${cpu:-unknown}; threads $THREADS; best of $ROUNDS rounds; $LINES lines of 22-122 tokens"
for m in bert mpnet; do
	printf '%-6s cpu %7.2f s (%6.1f lines/s)   wall %7.2f s (%6.1f lines/s)\n' $m "$(min_of "$W/$m.times" 2)" \
		"$(echo "$LINES / $(min_of "$W/$m.times" 2)" | bc -l)" "$(min_of "$W/$m.times" 1)" \
		"$(echo "$LINES / $(min_of "$W/$m.times" 1)" | bc -l)"
done
printf 'mpnet / bert: cpu time %.3f, wall time %.3f\n' \
	"$(echo "$(min_of "$W/mpnet.times" 2) / $(min_of "$W/bert.times" 2)" | bc -l)" \
	"$(echo "$(min_of "$W/mpnet.times" 1) / $(min_of "$W/bert.times" 1)" | bc -l)"
