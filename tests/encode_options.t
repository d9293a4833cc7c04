#!/bin/sh
# st-encode's encode options against independent computations: prompts (hand-worked token counts, numpy means
# over --output token_embeddings for include_prompt: false), default_prompt_name, numpy implementations of the
# library's truncate/normalize and quantize_embeddings formulas applied to st-encode's float32 output, bad input.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"
PY=/usr/bin/python3
$PY -c 'import numpy' 2> /dev/null || skip_all "python3-numpy is absent"

tiny_vocab "$TMP/vocab.txt" "$TINY_WORDS query passage :"
tiny_model "$TMP/m" --pooling mean
# an e5-style model: query/passage prompts
jq '.prompts = {"query": "query: ", "passage": "passage: "}' "$TMP/m/config_sentence_transformers.json" > "$TMP/c" &&
	mv "$TMP/c" "$TMP/m/config_sentence_transformers.json"
printf 'the cat sat on the mat .\na dog ran far away\nbig red house\n' > "$TMP/in.txt"

same() { cmp -s "$1" "$2"; }
# close A B TOL: two st-encode JSON outputs agree within TOL
close() { $PY - "$1" "$2" "$3" <<'PY'
import json, sys
a = [json.loads(l)["embedding"] for l in open(sys.argv[1])]
b = [json.loads(l)["embedding"] for l in open(sys.argv[2])]
ok = len(a) == len(b) > 0 and all(len(x) == len(y) and all(abs(p - q) <= float(sys.argv[3]) for p, q in zip(x, y)) for x, y in zip(a, b))
sys.exit(0 if ok else 1)
PY
}

# --- prompts, include_prompt: true (the default): the prompt is text prepended before tokenization
st-encode --model "$TMP/m" < "$TMP/in.txt" > "$TMP/plain.json"; ok $? "plain encode"
st-encode --model "$TMP/m" --prompt-name query < "$TMP/in.txt" > "$TMP/q.json"; ok $? "--prompt-name query"
sed 's/^/query: /' "$TMP/in.txt" | st-encode --model "$TMP/m" > "$TMP/q_by_hand.json"
same "$TMP/q.json" "$TMP/q_by_hand.json"; ok $? "--prompt-name query = 'query: ' prepended to every line by sed"
st-encode --model "$TMP/m" --prompt "query: " < "$TMP/in.txt" > "$TMP/q2.json"
same "$TMP/q.json" "$TMP/q2.json"; ok $? "--prompt 'query: ' = --prompt-name query"
st-encode --model "$TMP/m" --prompt-name passage --prompt "query: " < "$TMP/in.txt" > "$TMP/q3.json"
same "$TMP/q.json" "$TMP/q3.json"; ok $? "--prompt wins over --prompt-name (as encode())"
same "$TMP/q.json" "$TMP/plain.json"; [ $? -ne 0 ]; ok $? "the prompt changes the embeddings"

# --- default_prompt_name
cp -r "$TMP/m" "$TMP/md"
jq '.default_prompt_name = "query"' "$TMP/m/config_sentence_transformers.json" > "$TMP/md/config_sentence_transformers.json"
st-encode --model "$TMP/md" < "$TMP/in.txt" > "$TMP/d.json"
same "$TMP/d.json" "$TMP/q.json"; ok $? "default_prompt_name query applies without options"
st-encode --model "$TMP/md" --prompt "" < "$TMP/in.txt" > "$TMP/d0.json"
same "$TMP/d0.json" "$TMP/plain.json"; ok $? "--prompt '' turns the default prompt off"
st-encode --model "$TMP/md" --prompt-name passage < "$TMP/in.txt" > "$TMP/dp.json"
sed 's/^/passage: /' "$TMP/in.txt" | st-encode --model "$TMP/m" > "$TMP/dp_by_hand.json"
same "$TMP/dp.json" "$TMP/dp_by_hand.json"; ok $? "--prompt-name overrides default_prompt_name"

# --- include_prompt: false. "query: " tokenizes (stripped) to [CLS] query : [SEP]: prompt_length = 4 - 1 = 3,
# so positions 0..2 ([CLS] query :) leave the mean; numpy averages the remaining token embeddings.
cp -r "$TMP/m" "$TMP/mx"
jq '.include_prompt = false' "$TMP/m/1_Pooling/config.json" > "$TMP/mx/1_Pooling/config.json"
st-encode --model "$TMP/mx" --prompt-name query < "$TMP/in.txt" > "$TMP/x.json"; ok $? "include_prompt false: encode"
st-encode --model "$TMP/mx" --prompt-name query --output token_embeddings < "$TMP/in.txt" > "$TMP/xt.json"
ok $? "--output token_embeddings with the prompt"
is "$(jq -c '.token_embeddings | length' "$TMP/xt.json" | tr '\n' ' ')" "11 9 7 " \
	"token counts: [CLS] query : + 7, 5, 3 words + [SEP] (hand-counted)"
is "$(jq -c '[.token_embeddings[] | length] | unique' "$TMP/xt.json" | sort -u)" "[16]" "16 numbers per token"
$PY - "$TMP/xt.json" "$TMP/x.json" > "$TMP/x_ref.json" <<'PY'
import json, sys
import numpy as np
for tl, el in zip(open(sys.argv[1]), open(sys.argv[2])):
    t = np.array(json.loads(tl)["token_embeddings"], dtype=np.float64)
    print(json.dumps({"embedding": t[3:].mean(axis=0).tolist()}))
PY
close "$TMP/x.json" "$TMP/x_ref.json" 1e-5; ok $? "include_prompt false = numpy mean over the tokens after the prompt"
$PY - "$TMP/xt.json" > "$TMP/x_all.json" <<'PY'
import json, sys
import numpy as np
for tl in open(sys.argv[1]):
    t = np.array(json.loads(tl)["token_embeddings"], dtype=np.float64)
    print(json.dumps({"embedding": t.mean(axis=0).tolist()}))
PY
close "$TMP/q.json" "$TMP/x_all.json" 1e-5; ok $? "include_prompt true = numpy mean over all tokens"
# max and weightedmean pools masked the same way (weights stay the positions 1..T, as the library's)
tiny_model "$TMP/mm" --pooling max,weightedmean
jq '.prompts = {"query": "query: "}' "$TMP/mm/config_sentence_transformers.json" > "$TMP/c" &&
	mv "$TMP/c" "$TMP/mm/config_sentence_transformers.json"
jq '.include_prompt = false' "$TMP/mm/1_Pooling/config.json" > "$TMP/c" && mv "$TMP/c" "$TMP/mm/1_Pooling/config.json"
st-encode --model "$TMP/mm" --prompt-name query < "$TMP/in.txt" > "$TMP/mm.json"
st-encode --model "$TMP/mm" --prompt-name query --output token_embeddings < "$TMP/in.txt" > "$TMP/mmt.json"
$PY - "$TMP/mmt.json" > "$TMP/mm_ref.json" <<'PY'
import json, sys
import numpy as np
for tl in open(sys.argv[1]):
    t = np.array(json.loads(tl)["token_embeddings"], dtype=np.float64)
    w = np.arange(1, len(t) + 1, dtype=np.float64)[3:, None]
    print(json.dumps({"embedding": t[3:].max(axis=0).tolist() + ((t[3:] * w).sum(axis=0) / w.sum()).tolist()}))
PY
close "$TMP/mm.json" "$TMP/mm_ref.json" 1e-5; ok $? "include_prompt false, max,weightedmean = numpy over the tokens after the prompt"
st-encode --model "$TMP/mx" < "$TMP/in.txt" > "$TMP/x0.json"
same "$TMP/x0.json" "$TMP/plain.json"; ok $? "include_prompt false without a prompt changes nothing"

# --- truncate + normalize: numpy on the float32 output (truncate first, then L2-normalize)
st-encode --model "$TMP/m" --format f32 < "$TMP/in.txt" > "$TMP/plain.f32"
st-encode --model "$TMP/m" --truncate-dim 6 --normalize < "$TMP/in.txt" > "$TMP/tn.json"; ok $? "--truncate-dim 6 --normalize"
$PY - "$TMP/plain.f32" > "$TMP/tn_ref.json" <<'PY'
import json, sys
import numpy as np
e = np.fromfile(sys.argv[1], dtype="<f4").reshape(-1, 16)[:, :6].astype(np.float64)
e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
for r in e: print(json.dumps({"embedding": r.tolist()}))
PY
close "$TMP/tn.json" "$TMP/tn_ref.json" 1e-6; ok $? "truncate then normalize = numpy"
cp -r "$TMP/m" "$TMP/mt"
jq '.truncate_dim = 6' "$TMP/m/config_sentence_transformers.json" > "$TMP/mt/config_sentence_transformers.json"
st-encode --model "$TMP/mt" --normalize < "$TMP/in.txt" > "$TMP/tc.json"
same "$TMP/tc.json" "$TMP/tn.json"; ok $? "truncate_dim in the config = --truncate-dim"

# --- quantize_embeddings, numpy's version of the library's formulas on the float32 output
cat "$TMP/in.txt" "$TMP/in.txt" | sed 's/^/the /' > "$TMP/cal.txt"
st-encode --model "$TMP/m" < "$TMP/cal.txt" > "$TMP/cal.json"
st-encode --model "$TMP/m" --format f32 < "$TMP/cal.txt" > "$TMP/cal.f32"
for p in int8 uint8 binary ubinary; do
	st-encode --model "$TMP/m" --precision $p < "$TMP/in.txt" > "$TMP/$p.json"; ok $? "--precision $p"
	st-encode --model "$TMP/m" --precision $p --format f32 < "$TMP/in.txt" > "$TMP/$p.raw"
done
for p in int8 uint8; do
	st-encode --model "$TMP/m" --precision $p --calibration "$TMP/cal.json" < "$TMP/in.txt" > "$TMP/$p-cal.json"
	ok $? "--precision $p --calibration"
done
$PY - "$TMP" <<'PY' > "$TMP/quant.out"
import json, sys
import numpy as np
d = sys.argv[1]
e = np.fromfile(d + "/plain.f32", dtype="<f4").reshape(-1, 16)
cal = np.fromfile(d + "/cal.f32", dtype="<f4").reshape(-1, 16)
def q(p, ranges_from):
    if p in ("int8", "uint8"):
        starts, steps = ranges_from.min(axis=0), (ranges_from.max(axis=0) - ranges_from.min(axis=0)) / 255
        lv = (e - starts) / steps
        return np.trunc(lv).clip(0, 255).astype(np.uint8) if p == "uint8" else np.trunc(lv - 128).clip(-128, 127).astype(np.int8)
    bits = np.packbits(e > 0).reshape(e.shape[0], -1)
    return (bits.astype(np.int16) - 128).astype(np.int8) if p == "binary" else bits
def got(f): return np.array([json.loads(l)["embedding"] for l in open(f)])
for p, f, r in [("int8", "int8.json", e), ("uint8", "uint8.json", e), ("binary", "binary.json", None),
                ("ubinary", "ubinary.json", None), ("int8", "int8-cal.json", cal), ("uint8", "uint8-cal.json", cal)]:
    want = q(p, r)
    g = got(d + "/" + f)
    print(f, "ok" if g.shape == want.shape and (g == want.astype(np.int64)).all() else "differs: %s vs %s" % (g.tolist()[:1], want.tolist()[:1]))
    if "cal" not in f:
        raw = np.fromfile(d + "/" + p + ".raw", dtype=want.dtype).reshape(want.shape)
        print(p + ".raw", "ok" if (raw == want).all() else "differs")
PY
while read -r name verdict; do is "$verdict" ok "quantize $name = numpy"; done < "$TMP/quant.out"
is "$(wc -l < "$TMP/quant.out")" 10 "every quantized output compared"
is "$(jq -c '.embedding | length' "$TMP/binary.json" | sort -u)" 2 "binary: 16 dims pack into 2 bytes"

# --- st-tokenize --prompt-name: the prompt is prepended before tokenization
printf '{"texts": ["the cat", "a dog"]}\n' > "$TMP/ex.json"
st-tokenize --model "$TMP/m" --prompt-name query --json < "$TMP/ex.json" | jq -c .input_ids > "$TMP/tk1"
printf '{"texts": ["query: the cat", "query: a dog"]}\n' | st-tokenize --model "$TMP/m" --json | jq -c .input_ids > "$TMP/tk2"
same "$TMP/tk1" "$TMP/tk2" && [ -s "$TMP/tk1" ]; ok $? "st-tokenize --prompt-name query = the texts with 'query: ' typed in"

# --- the other tools take the same prompt path
printf 'the cat sat\n' > "$TMP/query.txt"
st-search --model "$TMP/m" --corpus "$TMP/in.txt" --prompt-name query < "$TMP/query.txt" > "$TMP/s1"; ok $? "st-search --prompt-name"
sed 's/^/query: /' "$TMP/in.txt" > "$TMP/in_q.txt"
sed 's/^/query: /' "$TMP/query.txt" | st-search --model "$TMP/m" --corpus "$TMP/in_q.txt" > "$TMP/s2"
same "$TMP/s1" "$TMP/s2"; ok $? "st-search --prompt-name query = texts with the prompt typed in"

printf '{"texts": ["the cat", "a dog ran"]}\n' | st-similarity --model "$TMP/m" --prompt-name query > "$TMP/sim1"
printf '{"texts": ["query: the cat", "query: a dog ran"]}\n' | st-similarity --model "$TMP/m" > "$TMP/sim2"
same "$TMP/sim1" "$TMP/sim2" && [ -s "$TMP/sim1" ]; ok $? "st-similarity --prompt-name query = texts with the prompt typed in"

# --- progress line: on a terminal only (script gives the command a pty)
if command -v script > /dev/null; then
	script -q -c "st-encode --model '$TMP/m' --batch-size 1 < '$TMP/in.txt' > '$TMP/pty.json'" /dev/null > "$TMP/pty.out" 2>&1
	grep -q "st-encode: encoding texts .* 3/3" "$TMP/pty.out"; ok $? "st-encode: a progress line on a terminal"
	st-encode --model "$TMP/m" --batch-size 1 < "$TMP/in.txt" > "$TMP/b1.json"
	same "$TMP/pty.json" "$TMP/b1.json"; ok $? "the same embeddings with the progress line"
	script -q -c "st-mine --model '$TMP/m' < '$TMP/in.txt' > '$TMP/pty.mine'" /dev/null > "$TMP/pty.out" 2>&1
	grep -q "st-mine: encoding texts" "$TMP/pty.out"; ok $? "st-mine: a progress line on a terminal"
else
	ok 0 "# SKIP script(1) is absent"; ok 0 "# SKIP script(1) is absent"; ok 0 "# SKIP script(1) is absent"
fi
st-encode --model "$TMP/m" < "$TMP/in.txt" 2> "$TMP/pipe.err" | cat > /dev/null
is "$(wc -c < "$TMP/pipe.err")" 0 "no progress line when stderr is not a terminal"

# --- bad input
st-encode --model "$TMP/m" --prompt-name nope < "$TMP/in.txt" > /dev/null 2> "$TMP/err"
is $? 65 "unknown prompt name: exit 65"
grep -q "config_sentence_transformers.json" "$TMP/err" && grep -q "query, passage" "$TMP/err"; ok $? "the message names the config and its prompts"
st-encode --model "$TMP/m" --truncate-dim 17 < "$TMP/in.txt" > /dev/null 2> "$TMP/err"
is $? 64 "--truncate-dim larger than the dimension: exit 64"
grep -q "larger than the model's embedding size 16" "$TMP/err"; ok $? "the message says the size"
st-encode --model "$TMP/m" --precision int4 < "$TMP/in.txt" > /dev/null 2> "$TMP/err"
is $? 64 "unknown precision: exit 64"
grep -q "float32, int8, uint8, binary or ubinary" "$TMP/err"; ok $? "the message lists the precisions"
st-encode --model "$TMP/m" --precision int8 --calibration "$TMP/nothere" < "$TMP/in.txt" > /dev/null 2>&1
is $? 66 "missing calibration file: exit 66"
st-tokenize --model "$TMP/m" --prompt-name nope < "$TMP/ex.json" > /dev/null 2>&1
is $? 65 "st-tokenize: unknown prompt name: exit 65"

done_testing
