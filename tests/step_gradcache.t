#!/bin/bash
# GradCache in st-step: re-forwarding and back-propagating a batch in chunks of 1, 3 or all rows (dropout on,
# masks replayed) gives the gradient of one full-batch backward, within float rounding.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
[ -n "$ST_TRAIN_BIN" ] && PATH="$ST_TRAIN_BIN:$PATH"
st-forward --help 2>&1 | grep -q -- '--run' || skip_all "st-forward has no --run yet (docs/training.md)"
/usr/bin/python3 -c 'import numpy' 2>/dev/null || skip_all "/usr/bin/python3 lacks numpy"

train_model "$TMP/model" --seed 4 --dense 16
ok $? "a tiny random model with a Dense head"
awk 'BEGIN { srand(3); for (i = 0; i < 16; i++) { printf "{\"texts\": [\"a%d\", \"b%d\", \"c%d\"], \"input_ids\": [", i, i, i;
	for (c = 0; c < 3; c++) { n = 1 + int(rand() * 12); printf "%s[2", c ? ", " : "";
		for (k = 0; k < n; k++) printf ", %d", 5 + int(rand() * 115); printf ", 3]" }
	print "]}" } }' > "$TMP/ex.jsonl"

for mb in 1 3 8; do
	st-batch --size 8 < "$TMP/ex.jsonl" |
		st-forward --model "$TMP/model" --run "$TMP/run$mb" --mini-batch-size 5 --threads 1 |
		st-loss mnrl |
		timeout --foreground 30 st-step --model "$TMP/model" --run "$TMP/run$mb" --mini-batch-size $mb --grad-out "$TMP/g$mb" --threads 1 \
			--no-save --json > "$TMP/log$mb" 2>"$TMP/err"
	ok $? "two steps with --mini-batch-size $mb" || cat "$TMP/err"
done
/usr/bin/python3 - "$TMP" > "$TMP/cmp" <<'EOF2'
import sys, numpy as np
d = sys.argv[1]
g = {mb: np.fromfile(f"{d}/g{mb}", dtype=np.float32).reshape(2, -1) for mb in (1, 3, 8)}
for mb in (1, 3):
    for s in range(2):
        a, b = g[mb][s].astype(np.float64), g[8][s].astype(np.float64)
        err = np.abs(a - b).max() / np.abs(b).max()
        print(0 if err < 1e-5 and np.abs(b).max() > 0 else 1,
              f"step {s}: the gradient with chunks of {mb} rows equals the full-batch one (max rel diff {err:.2e})")
EOF2
ok $? "compared the gradients"
while read -r rc what; do ok "$rc" "$what"; done < "$TMP/cmp"
done_testing
