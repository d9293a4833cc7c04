#!/bin/sh
# bench/mpnet.sh: st-encode on MPNet against BERT of the same shape (hidden 384, 6 layers, 12 heads, FFN 1536,
# random weights from st-init), on the same texts (2000 lines of 20-120 words, one token each, so rows of 22-122
# tokens: MPNet's relative attention bias covers all its buckets). The two take turns ROUNDS times and the best
# wall time of each counts, so that load from other processes hits both alike. Run from the repository root
# after `make`:   sh bench/mpnet.sh          (THREADS=2 ROUNDS=3 by default)
# Prints lines/s of each and MPNet's time relative to BERT's. Not a test: it prints numbers, it does not judge them.
set -e
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
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
awk 'BEGIN { srand(7); for (i = 0; i < 2000; i++) { n = 20 + int(rand() * 101); s = "w" int(rand() * 1000)
	for (k = 1; k < n; k++) s = s " w" int(rand() * 1000); print s } }' > "$W/texts"

now() { date +%s.%N; }
run() {   # run MODEL: seconds of one st-encode over the texts
	t0=$(now)
	st-encode --model "$W/$1" --threads "$THREADS" --format f32 < "$W/texts" > "$W/$1.out"
	echo "$(now) - $t0" | bc -l
}
best_bert= best_mpnet=
r=0
while [ $r -lt "$ROUNDS" ]; do
	for m in bert mpnet; do
		t=$(run $m)
		eval "b=\$best_$m"
		if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then eval "best_$m=$t"; fi
	done
	r=$((r + 1))
done
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "CPU: ${cpu:-unknown}; threads $THREADS; best of $ROUNDS rounds; 2000 lines of 22-122 tokens"
printf 'bert   %6.3f s  %7.1f lines/s\n' "$best_bert" "$(echo "2000 / $best_bert" | bc -l)"
printf 'mpnet  %6.3f s  %7.1f lines/s\n' "$best_mpnet" "$(echo "2000 / $best_mpnet" | bc -l)"
printf 'mpnet / bert time: %.3f\n' "$(echo "$best_mpnet / $best_bert" | bc -l)"
