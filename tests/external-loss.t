#!/bin/bash
# Training end to end with a loss stage written outside the project: pipelines/examples/mnrl-loss.py (Python,
# numpy, msgpack) in the place of `st-loss mnrl`. The loss goes down, and the weights equal those of the same
# run with st-loss mnrl within a tolerance derived below; a run with another loss scale is outside it (so the
# comparison can fail).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
# ST_TRAIN_BIN: a folder of st-* binaries to try first (development of the stages before they land in bin/)
[ -n "$ST_TRAIN_BIN" ] && PATH="$ST_TRAIN_BIN:$PATH"
PY=/usr/bin/python3
EXTERNAL=${ST_EXTERNAL_LOSS:-"$ROOT/pipelines/examples/mnrl-loss.py"}   # ST_EXTERNAL_LOSS: try another stage
$PY -c 'import numpy, msgpack' 2>/dev/null || skip_all "needs /usr/bin/python3 with numpy and msgpack (python3-msgpack)"
st-forward --help 2>&1 | grep -q -- '--run' || skip_all "st-forward has no --run yet (docs/training.md)"

# A tiny model, dropout on: the masks are keyed by (seed, step, column, row), so both runs see the same ones.
train_model "$TMP/model" --vocab-size 64 --positions 32 --seed 7
ok $? "a tiny random model" || cat "$TMP/err"

# 64 pairs that can be learnt: the second text is the first with every token t replaced by 5 + (t*7 mod 59),
# in reverse order, so nothing matches at initialisation and the model must learn which tokens go together.
awk 'BEGIN { srand(5); for (i = 0; i < 64; i++) { n = 3 + int(rand() * 6);
	for (k = 0; k < n; k++) t[k] = 5 + int(rand() * 59);
	printf "{\"texts\": [\"a%d\", \"b%d\"], \"input_ids\": [[2", i, i;
	for (k = 0; k < n; k++) printf ", %d", t[k]; printf ", 3], [2";
	for (k = n - 1; k >= 0; k--) printf ", %d", 5 + ((t[k] - 5) * 7) % 59; print ", 3]]}" } }' > "$TMP/pairs.jsonl"

EPOCHS=6 BATCH=16 LR=1e-3
STEPS=$((EPOCHS * 64 / BATCH))
train() {   # train RUN LOSS-STAGE...
	local run=$1; shift
	# timeout: a loss stage that holds a batch back (a buffered read) deadlocks the synchronous pipeline
	st-batch --size $BATCH --epochs $EPOCHS --shuffle --seed 3 < "$TMP/pairs.jsonl" |
		timeout 120 st-forward --model "$TMP/model" --run "$run" --threads 1 |
		timeout 120 "$@" |
		timeout 120 st-step --model "$TMP/model" --run "$run" --threads 1 --lr $LR --seed 11 --json
}
train "$TMP/builtin" st-loss --threads 1 mnrl --scale 20 > "$TMP/builtin.log" 2>"$TMP/err"
ok $? "training with st-loss mnrl" || cat "$TMP/err"
train "$TMP/external" "$EXTERNAL" --scale 20 > "$TMP/external.log" 2>"$TMP/err"
ok $? "training with pipelines/examples/mnrl-loss.py as the loss stage" || cat "$TMP/err"
train "$TMP/other" "$EXTERNAL" --scale 10 > "$TMP/other.log" 2>"$TMP/err"
ok $? "training with mnrl-loss.py --scale 10 (the control)" || cat "$TMP/err"
is "$(grep -c '"kind":"log"' "$TMP/external.log")" "$STEPS" "one log record per step ($STEPS)"

# The loss goes down: mean of the last epoch's losses well under the first epoch's (ln 16 = 2.77 is chance).
per_epoch=$(jq -r 'select(.kind == "log") | [.epoch, .loss] | @tsv' "$TMP/external.log" |
	awk '{ s[$1] += $2; n[$1]++ } END { printf "%.4f %.4f", s[0] / n[0], s['$((EPOCHS - 1))'] / n['$((EPOCHS - 1))'] }')
echo "# mean loss of the first and last epoch: $per_epoch"
awk -v a="${per_epoch% *}" -v b="${per_epoch#* }" 'BEGIN { exit !(b < 0.8 * a) }'
ok $? "the loss goes down: last epoch under 0.8 x the first ($per_epoch)"

# The same losses step by step: both stages see the same embeddings at step 0, and later steps differ only as
# much as the weights do (checked next).
paste <(jq -r 'select(.kind == "log") | .loss' "$TMP/builtin.log") <(jq -r 'select(.kind == "log") | .loss' "$TMP/external.log") |
	awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "# largest loss difference %.3g\n", m; exit !(m < 1e-4) }'
ok $? "every step's loss agrees within 1e-4"

# Weights. st-loss computes in float32, mnrl-loss.py in float64 rounded to float32: dL/dE differ by a few
# float32 ulps, a relative error e of about 1e-6. AdamW's step lr * m / (sqrt(v) + eps) does not depend on the
# gradient's scale, so a relative gradient error e changes one step by about e * lr, except for parameters
# whose gradient is tiny and changes sign, where the difference can reach a fair part of lr * (1 - beta1) on one
# step; and the differences feed back through the next steps' embeddings. We allow 1e-3 * STEPS * lr
# (2.4e-5 here): a thousandth of the largest distance STEPS Adam steps can move a weight, about 10x the 2e-6
# measured on this machine. The control (scale 10 instead of 20, a different loss) must land outside it, and
# training must have moved the weights far more than it.
$PY - "$TMP/model/model.safetensors" "$TMP/builtin/model/model.safetensors" "$TMP/external/model/model.safetensors" \
	"$TMP/other/model/model.safetensors" "$(awk -v s=$STEPS -v lr=$LR 'BEGIN { print 1e-3 * s * lr }')" > "$TMP/weights.out" <<'EOF'
import json, struct, sys
import numpy as np
def load(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    head = json.loads(blob[8:8 + n])
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", name
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(blob[8 + n + a:8 + n + b], dtype="<f4").astype(np.float64)
    return out
init, builtin, external, other = (load(p) for p in sys.argv[1:5])
tol = float(sys.argv[5])
def maxdiff(x, y):
    return max(np.abs(x[k] - y[k]).max() for k in x)
checks = [
    (set(builtin) == set(external) == set(init), "the same tensors in both models"),
]
d = maxdiff(builtin, external)
moved = maxdiff(builtin, init)
ctl = maxdiff(builtin, other)
print("# max |builtin - external| = %.3g, tolerance %.3g; training moved the weights by up to %.3g; control differs by %.3g"
      % (d, tol, moved, ctl))
checks += [
    (d <= tol, "weights of the external-loss run equal st-loss mnrl's within %.3g (max diff %.3g)" % (tol, d)),
    (moved > 100 * tol, "training moved the weights (%.3g, > 100 x the tolerance)" % moved),
    (ctl > tol, "the control run (--scale 10) is outside the tolerance (%.3g)" % ctl),
]
for c, what in checks:
    print("%d %s" % (0 if c else 1, what))
EOF
grep '^#' "$TMP/weights.out"
[ -n "$(grep -v '^#' "$TMP/weights.out")" ]; ok $? "the weight comparison ran"
while read -r status what; do ok "$status" "$what"; done < <(grep -v '^#' "$TMP/weights.out")
done_testing
