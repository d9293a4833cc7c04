#!/bin/sh
# Paraphrase mining of 10,000 sentences with a randomly initialised model of all-MiniLM-L6-v2's shape
# (6 layers, hidden 384, 12 heads, intermediate 1536), encode + mining, on 2 threads: target under 20 s.
# Sentences: STS-B train (../shared/data), else WordNet glosses. Anchor: the encode time alone (st-encode).
# On a CPU with AVX512-BF16 the same runs follow with --compute bf16 (the projections in bfloat16, float32
# sums; docs/encoder.md), each next to its float32 twin, and the agreement of the two rankings is printed.
# ROUNDS=N (default 1) repeats every run and keeps the fastest; runs of the two precisions take turns, so that
# load from other processes hits them alike. Not a test: it prints numbers, it does not judge them.
set -e
cd "$(dirname "$0")/.."
PATH="$(pwd)/bin:$PATH"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=${ST_BENCH_SENTENCES:-10000}
threads=${ST_BENCH_THREADS:-2}
rounds=${ROUNDS:-1}
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

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
flags=$(grep -o -w 'avx512f\|avx512_bf16\|avx512_vnni\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')
printf '#include <stdio.h>\nchar *openblas_get_corename(void);\nint main(void) { puts(openblas_get_corename()); return 0; }\n' > "$tmp/core.c"
core=$(cc -o "$tmp/core" "$tmp/core.c" $(pkg-config --cflags --libs openblas) 2>/dev/null && "$tmp/core" || echo unknown)
echo "CPU: $cpu ($flags), $(nproc) cores online, $threads threads used"
echo "OpenBLAS core: $core; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-(unset)}"

computes=float32
grep -qw avx512_bf16 /proc/cpuinfo && computes="float32 bf16"
now() { date +%s.%N; }
# CPU seconds (user + system) too: on a shared machine wall time follows the load, CPU time much less so
cputime() { if [ -x /usr/bin/time ]; then /usr/bin/time -f '%U %S' -o "$tmp/cpu" "$@"; else : > "$tmp/cpu"; "$@"; fi; }
cpusecs() { awk '{ printf "%.1f", $1 + $2 }' "$tmp/cpu"; }
secs() { awk "BEGIN { printf \"%.1f\", $2 - $1 }"; }
best() { printf '%s\n' "$@" | sort -g | head -1; }
r=0
while [ $r -lt "$rounds" ]; do
	for c in $computes; do
		start=$(now)
		ST_TIMING=1 cputime st-mine --model "$tmp/m" --threads "$threads" --compute $c --top-k 100 --max-pairs 500000 \
			"$tmp/s.txt" > "$tmp/pairs.$c" 2> "$tmp/timing.$c.$r"
		end=$(now)
		eval "mine_$c=\"\${mine_$c} $(secs "$start" "$end")\"; mcpu_$c=\"\${mcpu_$c} $(cpusecs)\""
		start=$(now)
		cputime st-encode --model "$tmp/m" --threads "$threads" --compute $c --format f32 < "$tmp/s.txt" > "$tmp/emb.$c"
		end=$(now)
		eval "enc_$c=\"\${enc_$c} $(secs "$start" "$end")\"; ecpu_$c=\"\${ecpu_$c} $(cpusecs)\""
	done
	r=$((r + 1))
done
for c in $computes; do
	eval "m=\$(best \$mine_$c); e=\$(best \$enc_$c); runs=\$mine_$c; mc=\$(best \$mcpu_$c); ec=\$(best \$ecpu_$c)"
	pairs=$(wc -l < "$tmp/pairs.$c")
	echo "st-mine --compute $c: $count sentences ($src), MiniLM-L6-H384 shape, $threads threads: $m s wall" \
		"(runs:$runs; last: $(sed 's/^st-mine: //' "$tmp/timing.$c.$((rounds - 1))")); $pairs pairs;" \
		"$(awk "BEGIN { printf \"%.0f\", $count / $m }") sentences/s; st-encode alone $e s" \
		"($(awk "BEGIN { printf \"%.0f\", $count / $e }") sentences/s); target < 20 s"
	[ -z "$mc" ] || echo "  CPU seconds (user + system, all threads): st-mine $mc, st-encode alone $ec" \
		"($(awk "BEGIN { printf \"%.0f\", $count / $ec }") sentences per CPU-second)"
done
if [ "$computes" = "float32 bf16" ]; then
	mf=$(best $mine_float32) mb=$(best $mine_bf16) ef=$(best $enc_float32) eb=$(best $enc_bf16)
	echo "bf16 / float32 speed: st-mine $(awk "BEGIN { printf \"%.2f\", $mf / $mb }")x, st-encode alone" \
		"$(awk "BEGIN { printf \"%.2f\", $ef / $eb }")x (wall)"
	[ -z "$(best $ecpu_bf16)" ] || echo "  in CPU seconds: st-mine $(awk "BEGIN { printf \"%.2f\", $(best $mcpu_float32) / $(best $mcpu_bf16) }")x," \
		"st-encode alone $(awk "BEGIN { printf \"%.2f\", $(best $ecpu_float32) / $(best $ecpu_bf16) }")x"
	# agreement: the most similar pair, the overlap of the 1000 best pairs, the embeddings' cosines
	pair() { sed 's/.*"score": \([^,]*\), "i": \([0-9]*\), "j": \([0-9]*\).*/\2-\3 \1/'; }
	for c in float32 bf16; do head -1000 "$tmp/pairs.$c" | pair > "$tmp/top.$c"; done
	top_f=$(head -1 "$tmp/top.float32") top_b=$(head -1 "$tmp/top.bf16")
	# near-duplicates tie at a cosine of 1 up to rounding: where does bf16's best pair rank in float32's list?
	rank=$(awk -v p="${top_b% *}" '$1 == p { print NR; exit }' "$tmp/top.float32")
	ties=$(awk -v s="${top_f#* }" '$2 >= s - 1e-6' "$tmp/top.float32" | wc -l)
	overlap=$(cut -d' ' -f1 "$tmp/top.float32" | sort > "$tmp/k.f"; cut -d' ' -f1 "$tmp/top.bf16" | sort > "$tmp/k.b"
		comm -12 "$tmp/k.f" "$tmp/k.b" | wc -l)
	echo "agreement: most similar pair float32 ${top_f% *} (cosine ${top_f#* }; $ties pairs within 1e-6 of it)," \
		"bf16 ${top_b% *} (${top_b#* }; rank ${rank:-over 1000} for float32); $overlap of the 1000 best pairs in common"
	if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
		/usr/bin/python3 - "$tmp/emb.float32" "$tmp/emb.bf16" <<'EOF'
import sys
import numpy as np
a = np.fromfile(sys.argv[1], np.float32).reshape(-1, 384).astype(np.float64)
b = np.fromfile(sys.argv[2], np.float32).reshape(-1, 384).astype(np.float64)
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
print("cosine of bf16 and float32 embeddings: min %.7f, mean %.7f over %d sentences" % (cos.min(), cos.mean(), len(cos)))
EOF
	fi
fi
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) cores)"
