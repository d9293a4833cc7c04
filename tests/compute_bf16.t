#!/bin/bash
# --compute bf16 (lib/gemm_bf16.c: the encoder's projections in bfloat16 with float32 sums) against the float32
# default, with numpy and scipy computing the comparisons:
#  - the options: a bad value is a usage error (64); the default is --compute float32, bit for bit, and bf16
#    gives other numbers; bf16 gives the same bits on 1 and 2 threads;
#  - STS-B test (../shared/data; the first 500 pairs, all 1379 with ST_LONG=1), two models: a model of
#    all-MiniLM-L6-v2's shape (6 layers, hidden 384, its tokenizer) with random weights, and a small BERT
#    (2 layers, hidden 64) trained here on a sixth of STS-B train with CoSENT for 2 epochs (a few seconds).
#    For each: cosine of the bf16 and float32 embeddings of every distinct sentence at least 0.999, and the
#    STS-B Spearman (st-eval similarity, and scipy on the embeddings) the same to 3 decimals
#    (|difference| < 0.0005).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
PY=/usr/bin/python3
$PY -c 'import numpy, scipy' 2> /dev/null || skip_all "python3-numpy or python3-scipy is absent"
command -v jq > /dev/null || skip_all "jq is absent"
grep -qw avx512_bf16 /proc/cpuinfo ||
	skip_all "this CPU has no AVX512-BF16 (st-encode --compute bf16 exits 64 here; docs/encoder.md)"

# ---- options, on a tiny model
tiny_model "$TMP/tiny"
printf 'the cat sat on the mat\na big red dog ran far away\nthe small blue house\n' > "$TMP/t.txt"
st-encode --model "$TMP/tiny" --compute float16 < "$TMP/t.txt" > /dev/null 2> "$TMP/err"
is $? 64 "--compute float16: usage error (64)"
grep -q -- '--compute is float32 or bf16' "$TMP/err"; ok $? "... saying what --compute takes" || cat "$TMP/err"
st-encode --model "$TMP/tiny" --format f32 < "$TMP/t.txt" > "$TMP/default.f32"
st-encode --model "$TMP/tiny" --format f32 --compute float32 < "$TMP/t.txt" > "$TMP/f32.f32"
cmp -s "$TMP/default.f32" "$TMP/f32.f32"; ok $? "the default is --compute float32, bit for bit"
st-encode --model "$TMP/tiny" --format f32 --compute bf16 < "$TMP/t.txt" > "$TMP/bf16.f32"
ok $? "--compute bf16 runs"
cmp -s "$TMP/default.f32" "$TMP/bf16.f32"; ok $((! $?)) "--compute bf16 gives other numbers than float32"

# ---- STS-B
need_shared stsbenchmark
tokjson="$SHARED/tokenizers/all-MiniLM-L6-v2/tokenizer.json"
[ -f "$tokjson" ] || skip_all "../shared/data/tokenizers/all-MiniLM-L6-v2 is absent"
cd "$TMP" || exit 1
# the first 500 pairs (ST_LONG=1: all 1379)
"$ROOT/pipelines/converters/stsb" --split test "$SHARED/stsbenchmark" | head -n "${ST_LONG:+100000}${ST_LONG:-500}" > sts-test.jsonl
"$ROOT/pipelines/converters/stsb" --split train "$SHARED/stsbenchmark" | awk 'NR % 6 == 0' > sts-train.jsonl
jq -r '.texts[]' sts-test.jsonl | awk '!seen[$0]++' > sentences.txt
echo "# STS-B test: $(wc -l < sts-test.jsonl) pairs, $(wc -l < sentences.txt) distinct sentences"

# compare NAME MODEL: embeddings of every sentence in both precisions; numpy's cosines, scipy's Spearman
compare() {
	local name=$1 model=$2
	for c in float32 bf16; do
		st-encode --model "$model" --format f32 --threads 1 --compute $c < sentences.txt > "$name.$c.f32" ||
			return 1
		st-eval similarity --model "$model" --threads 1 --compute $c < sts-test.jsonl > "$name.$c.json" || return 1
	done
	$PY - "$name" > "$name.cmp" <<'EOF'
import json, sys
import numpy as np
from scipy.stats import spearmanr
name = sys.argv[1]
sents = [l.rstrip("\n") for l in open("sentences.txt", encoding="utf-8")]
index = {s: i for i, s in enumerate(sents)}
a = np.fromfile(name + ".float32.f32", np.float32).reshape(len(sents), -1).astype(np.float64)
b = np.fromfile(name + ".bf16.f32", np.float32).reshape(len(sents), -1).astype(np.float64)
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
worst = int(np.argmin(cos))
print("min_cos=%.9f" % cos.min())
print("worst=%s" % sents[worst])
pairs = [json.loads(l) for l in open("sts-test.jsonl", encoding="utf-8")]
gold = [p["label"] for p in pairs]
for tag, e in (("float32", a), ("bf16", b)):
    u = e[[index[p["texts"][0]] for p in pairs]]
    v = e[[index[p["texts"][1]] for p in pairs]]
    s = (u * v).sum(1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-12)
    print("scipy_%s=%.6f" % (tag, spearmanr(s, gold).correlation))
EOF
}
get() { sed -n "s/^$1=//p" "$2"; }
within() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(a != "" && b != "" && d < 0.0005 && d > -0.0005) }'; }

check() {   # check NAME MODEL WHAT
	local name=$1 model=$2 what=$3
	compare "$name" "$model"
	ok $? "$what: st-encode and st-eval run in both precisions" || return
	local m=$(get min_cos "$name.cmp")
	echo "# $what: smallest cosine bf16 vs float32 $m, on: $(get worst "$name.cmp")"
	awk -v m="$m" 'BEGIN { exit !(m != "" && m >= 0.999) }'
	ok $? "$what: cosine of bf16 and float32 embeddings >= 0.999 for all $(wc -l < sentences.txt) sentences (min $m)"
	local f=$(jq .spearman_cosine "$name.float32.json") g=$(jq .spearman_cosine "$name.bf16.json")
	echo "# $what: STS-B test Spearman float32 $f, bf16 $g"
	within "$f" "$g"; ok $? "$what: st-eval's Spearman unchanged to 3 decimals ($f, $g)"
	local sf=$(get scipy_float32 "$name.cmp") sb=$(get scipy_bf16 "$name.cmp")
	within "$f" "$sf"; ok $? "$what: st-eval's float32 Spearman is scipy's on st-encode's embeddings ($f, $sf)"
	within "$sf" "$sb"; ok $? "$what: scipy's Spearman unchanged to 3 decimals ($sf, $sb)"
}

# a model of all-MiniLM-L6-v2's shape, random weights
cat > minilm.json <<'JSON'
{"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
 "intermediate_size": 1536, "max_position_embeddings": 512, "hidden_act": "gelu", "layer_norm_eps": 1e-12}
JSON
st-init --config minilm.json --vocab "$tokjson" --max-seq-length 128 --seed 7 -o minilm 2> err ||
	{ ok 1 "st-init builds the MiniLM-shaped model"; cat err; done_testing; }
check minilm minilm "MiniLM-L6 shape, random"
# bf16 is the same on 1 and 2 threads (a row's sums do not depend on how the rows are split)
st-encode --model minilm --format f32 --threads 2 --compute bf16 < sentences.txt > two.f32
cmp -s two.f32 minilm.bf16.f32
ok $? "MiniLM shape: --compute bf16 gives the same bits on 2 threads as on 1"

# a small BERT trained on STS-B train (CoSENT), as docs/training.md's scored-pairs case
jq -r '.texts[]' sts-train.jsonl | LC_ALL=C sort -u | st-vocab -o small.vocab --vocab-size 2000 --max-seq-length 32 2> /dev/null
cat > small.json <<'JSON'
{"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256,
 "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 64,
 "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0}
JSON
st-init --config small.json --vocab small.vocab --pooling mean --max-seq-length 32 --seed 42 -o small.init > /dev/null &&
	st-tokenize --model small.init < sts-train.jsonl | st-batch --size 16 --epochs 2 --shuffle --seed 42 |
	st-forward --model small.init --run small --threads 1 | st-loss --threads 1 cosent 2> train.err |
	st-step --model small.init --run small --lr 1e-3 --warmup-steps 10% --seed 42 --threads 1 > train.log &&
	[ -f small/model/model.safetensors ]
ok $? "the small model trains on STS-B train" || { tail -3 train.err; done_testing; }
before=$(st-eval similarity --model small.init --threads 1 < sts-test.jsonl | jq .spearman_cosine)
check small small/model "small BERT, trained"
after=$(jq .spearman_cosine small.float32.json)
awk -v a="$before" -v b="$after" 'BEGIN { exit !(b > a + 0.02) }'
ok $? "... and training raised its STS-B Spearman ($before -> $after): the model is a trained one"
done_testing
