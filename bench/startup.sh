#!/bin/sh
# bench/startup.sh: how long each tool takes to start on a MiniLM-L6-H384-shaped model (random weights, a 30,522
# WordPiece vocabulary), with no input and with one tiny record, next to two anchors run in the same loop:
# ONNX Runtime (onnxruntime-node from tests/js) creating a session on the same model exported by st-export --onnx,
# and PyTorch (/usr/bin/python3, no transformers) mapping the same model.safetensors into tensors.
# Run from the repository root after `make`:
#     sh bench/startup.sh            (RUNS=15 by default: the minimum of RUNS runs counts)
#     BASELINE=OLD/bin sh bench/startup.sh     adds the rows of another build's tools (e.g. a copy of bin/ from
#                                                the commit before a change) to the same rounds
# Times are whole processes (fork, exec, dynamic linking, model and tokenizer load, exit): wall and user+sys CPU,
# and the minor page faults (on a virtual machine each first touch of a page can cost ~10 us: start-up there is
# mostly page faults), taken by a small timing loop (hyperfine is not needed). Every command takes its turn in
# each round, so load from other processes hits them alike. The phases show in the rows: an empty C program
# (fork + exec), st-encode --help (+ dynamic linking), st-forward (+ config and weights), st-encode with no input
# (+ tokenizer), one record (+ the first forward pass; once with the cached choice of matrix kernel, the cache
# being private to this run, and once timing it as a process without the cache does). Not a test: it prints
# numbers, it does not judge them.
set -e
cd "$(dirname "$0")/.."
RUNS=${RUNS:-15}
PY=/usr/bin/python3
W=$(mktemp -d "${TMPDIR:-/tmp}/st-startup.XXXXXX")
trap 'rm -rf "$W"' EXIT
# the cache of st's matrix-kernel choice (docs/gemm.md), private to this run: the first run of a row fills it
XDG_CACHE_HOME=$W/cache
export XDG_CACHE_HOME
[ -x bin/st-encode ] && [ -f build/libst.a ] || { echo "bench/startup.sh: run make first" >&2; exit 1; }
PATH=$PWD/bin:$PATH

# the machine, as bench/encode.sh prints it
cat > "$W/core.c" <<'EOF'
#include <stdio.h>
char *openblas_get_corename(void);
int main(void) { printf("%s\n", openblas_get_corename()); return 0; }
EOF
cc -o "$W/core" "$W/core.c" $(pkg-config --cflags --libs openblas)
echo 'int main(void) { return 0; }' > "$W/empty.c"
cc -O2 -o "$W/empty-program" "$W/empty.c"
echo "load average before the run: $(cut -d" " -f1-3 /proc/loadavg)"
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1) ($(nproc) cores online)"
echo "OpenBLAS core: $("$W/core"); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}"

# the model: MiniLM-L6-H384's shape; bert-base-uncased's vocabulary when ../shared/data has it, else made up
cat > "$W/config.json" <<'EOF'
{"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
 "intermediate_size": 1536, "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu",
 "layer_norm_eps": 1e-12, "initializer_range": 0.02, "pad_token_id": 0}
EOF
vocab=../shared/data/tokenizers/bert-base-uncased/vocab.txt
if ! [ -f "$vocab" ]; then
	vocab=$W/vocab.txt
	{ printf '[PAD]\n'; seq 1 99 | sed 's/^/[unused/; s/$/]/'; printf '[UNK]\n[CLS]\n[SEP]\n[MASK]\n'
	  seq 104 30521 | awk '{ printf "%s%d\n", (NR % 3 ? "w" : "##w"), $1 }'; } > "$vocab"
fi
st-init --config "$W/config.json" --vocab "$vocab" --normalize -o "$W/minilm" > /dev/null
echo "model: MiniLM-L6-H384 shape, $(wc -c < "$W/minilm/model.safetensors") bytes of weights, vocabulary $(wc -l < "$vocab") tokens"
echo 'A tiny record.' > "$W/one.txt"
echo '{"text": "A tiny record."}' > "$W/one.json"
st-tokenize --model "$W/minilm" < "$W/one.json" | st-batch --size 1 > "$W/one.batch"
: > "$W/empty"

# the anchors
have_ort=0
if [ -d tests/js/node_modules/onnxruntime-node ] && st-export --onnx --model "$W/minilm" -o "$W/minilm.onnx" 2> /dev/null; then
	cat > "$W/ort.cjs" <<'EOF'
// node ort.cjs ONNXRUNTIME_NODE_DIR MODEL.onnx: a session on the model, as a user's program would start
const ort = require(process.argv[2]);
ort.InferenceSession.create(process.argv[3], { intraOpNumThreads: 1, interOpNumThreads: 1 })
	.then((s) => { if (!s.inputNames.includes('input_ids')) process.exit(1); }, (e) => { console.error(e); process.exit(1); });
EOF
	ort_dir=$PWD/tests/js/node_modules/onnxruntime-node
	node "$W/ort.cjs" "$ort_dir" "$W/minilm.onnx" && have_ort=1
fi
have_torch=0
cat > "$W/torch_load.py" <<'EOF'
# the weights of a safetensors file as torch tensors over a read-only map (what safetensors' safe_open does)
import json, mmap, struct, sys, torch
with open(sys.argv[1], 'rb') as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
n = struct.unpack('<Q', m[:8])[0]
header = json.loads(m[8:8 + n])
buf = memoryview(m)
tensors = {}
for name, e in header.items():
    if name == '__metadata__':
        continue
    b, end = e['data_offsets']
    assert e['dtype'] == 'F32'
    t = torch.frombuffer(buf, dtype=torch.float32, count=(end - b) // 4, offset=8 + n + b)
    tensors[name] = t.view(e['shape']) if e['shape'] else t
assert len(tensors) > 100
EOF
$PY -W ignore "$W/torch_load.py" "$W/minilm/model.safetensors" 2> /dev/null && have_torch=1

# name|stdin|command ... : the commands, each timed RUNS times in turn
set -- \
	"empty C program (fork + exec)|$W/empty|$W/empty-program" \
	"st-encode --help (+ dynamic linking)|$W/empty|st-encode --help" \
	"st-encode, no input|$W/empty|st-encode --model $W/minilm" \
	"st-encode, one record|$W/one.txt|st-encode --model $W/minilm" \
	"st-encode, one record, kernel choice timed (ST_GEMM_CACHE=0)|$W/one.txt|env ST_GEMM_CACHE=0 st-encode --model $W/minilm" \
	"st-tokenize, no input|$W/empty|st-tokenize --model $W/minilm" \
	"st-tokenize, one record|$W/one.json|st-tokenize --model $W/minilm" \
	"st-search, one query, corpus of one|$W/one.txt|st-search --model $W/minilm --corpus $W/one.txt" \
	"st-forward, no input|$W/empty|st-forward --model $W/minilm" \
	"st-forward, one batch of one|$W/one.batch|st-forward --model $W/minilm" \
	"st-encode, weights copied (ST_WEIGHTS=copy)|$W/one.txt|env ST_WEIGHTS=copy st-encode --model $W/minilm"
if [ -n "$BASELINE" ]; then
	B=$(cd "$BASELINE" && pwd)
	set -- "$@" \
		"baseline st-encode, no input|$W/empty|$B/st-encode --model $W/minilm" \
		"baseline st-encode, one record|$W/one.txt|$B/st-encode --model $W/minilm" \
		"baseline st-tokenize, no input|$W/empty|$B/st-tokenize --model $W/minilm" \
		"baseline st-tokenize, one record|$W/one.json|$B/st-tokenize --model $W/minilm" \
		"baseline st-forward, no input|$W/empty|$B/st-forward --model $W/minilm" \
		"baseline st-search, one query, corpus of one|$W/one.txt|$B/st-search --model $W/minilm --corpus $W/one.txt"
fi
[ "$have_ort" = 1 ] && set -- "$@" "ONNX Runtime $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' tests/js/node_modules/onnxruntime-node/package.json | head -1): node + session creation|$W/empty|node $W/ort.cjs $ort_dir $W/minilm.onnx"
[ "$have_torch" = 1 ] && set -- "$@" "PyTorch $($PY -c 'import torch; print(torch.__version__)' 2>/dev/null): python3 + import torch + map the safetensors|$W/empty|$PY -W ignore $W/torch_load.py $W/minilm/model.safetensors"
[ "$have_ort" = 1 ] || echo "(ONNX Runtime anchor skipped: tests/js/node_modules/onnxruntime-node or st-export --onnx missing)"
[ "$have_torch" = 1 ] || echo "(PyTorch anchor skipped: $PY cannot import torch)"

printf '%s\n' "$@" > "$W/commands"
python3 - "$RUNS" "$W/commands" <<'EOF'
# Runs every command RUNS times, in turn; prints the minimum and median wall time, the minimum user+sys CPU time
# and the median count of minor page faults.
import os, resource, subprocess, sys, time
runs, cmds = int(sys.argv[1]), [l.rstrip('\n').split('|', 2) for l in open(sys.argv[2]) if l.strip()]
wall = {c[0]: [] for c in cmds}
cpu = {c[0]: [] for c in cmds}
faults = {c[0]: [] for c in cmds}
for r in range(runs):
    for name, stdin, cmd in cmds:
        with open(stdin, 'rb') as fin, open(os.devnull, 'wb') as fout:
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd.split(), stdin=fin, stdout=fout, stderr=subprocess.PIPE)
            _, status, ru = os.wait4(p.pid, 0)
            t1 = time.perf_counter()
            err = p.stderr.read().decode(errors='replace')
            p.stderr.close()
            if status != 0:
                sys.exit(f'bench/startup.sh: "{cmd}" failed ({status}): {err.strip()[:300]}')
        wall[name].append(t1 - t0)
        cpu[name].append(ru.ru_utime + ru.ru_stime)
        faults[name].append(ru.ru_minflt)
w = max(len(c[0]) for c in cmds)
print(f'\n{"command":<{w}}  {"wall ms (min)":>13}  {"CPU ms (min)":>12}  {"wall ms (median)":>16}  {"page faults":>11}   ({runs} runs each)')
for name, _, _ in cmds:
    ws = sorted(wall[name])
    fs = sorted(faults[name])
    print(f'{name:<{w}}  {ws[0] * 1e3:13.1f}  {min(cpu[name]) * 1e3:12.1f}  {ws[len(ws) // 2] * 1e3:16.1f}  {fs[len(fs) // 2]:11d}')
EOF
echo
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
