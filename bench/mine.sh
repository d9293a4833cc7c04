#!/bin/sh
# Paraphrase mining of 10,000 sentences with a randomly initialised model of all-MiniLM-L6-v2's shape
# (6 layers, hidden 384, 12 heads, intermediate 1536), encode + mining, on 2 threads: target under 20 s.
# Sentences: STS-B train (../shared/data), else WordNet glosses. Anchor: the encode time alone (st-encode).
set -e
cd "$(dirname "$0")/.."
PATH="$(pwd)/bin:$PATH"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=${ST_BENCH_SENTENCES:-10000}
threads=${ST_BENCH_THREADS:-2}
sts=../shared/data/stsbenchmark/sts-train.csv
if [ -f "$sts" ]; then
	awk -F '\t' '{ print $6; print $7 }' "$sts" | awk 'NF && !seen[$0]++' | head -n "$n" > "$tmp/s.txt"
	src="STS-B train"
else
	cat /usr/share/wordnet/data.noun | awk -F '| ' '!/^ / { sub(/^[^|]*\| /, ""); print }' | head -n "$n" > "$tmp/s.txt"
	src="WordNet glosses"
fi
tok=../shared/data/tokenizers/all-MiniLM-L6-v2/tokenizer.json
[ -f "$tok" ] || tok=../shared/data/tokenizers/bert-base-uncased/vocab.txt
[ -f "$tok" ] || { echo "bench/mine.sh: no tokenizer in ../shared/data/tokenizers; skipped"; exit 0; }
cat > "$tmp/config.json" <<'JSON'
{"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
 "intermediate_size": 1536, "max_position_embeddings": 512, "hidden_act": "gelu", "layer_norm_eps": 1e-12}
JSON
st-init --config "$tmp/config.json" --vocab "$tok" --normalize --max-seq-length 256 -o "$tmp/m" 2>/dev/null
count=$(wc -l < "$tmp/s.txt")
start=$(date +%s.%N)
ST_TIMING=1 st-mine --model "$tmp/m" --threads "$threads" --top-k 100 --max-pairs 500000 "$tmp/s.txt" > "$tmp/pairs" 2> "$tmp/timing"
end=$(date +%s.%N)
pairs=$(wc -l < "$tmp/pairs")
start2=$(date +%s.%N)
st-encode --model "$tmp/m" --threads "$threads" --format f32 < "$tmp/s.txt" > /dev/null
end2=$(date +%s.%N)
echo "st-mine: $count sentences ($src), MiniLM-L6-H384 shape, $threads threads: $(awk "BEGIN { printf \"%.1f\", $end - $start }") s wall" \
	"($(sed 's/^st-mine: //' "$tmp/timing")); $pairs pairs; st-encode alone $(awk "BEGIN { printf \"%.1f\", $end2 - $start2 }") s; target < 20 s"
