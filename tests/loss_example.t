#!/usr/bin/python3
"""The external loss stage pipelines/examples/mnrl-loss.py (Python, msgpack) speaks the stream: on the same
batches it writes the same loss and grad as `st-loss mnrl` (within 1e-5 relative), passes other records
through, and the two stages can be swapped in a pipeline (st-json reads what it writes)."""
import io
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    import msgpack
    import numpy as np
except ImportError as e:
    print("1..0 # SKIP needs /usr/bin/python3 with numpy and msgpack (python3-msgpack): %s" % e)
    sys.exit(0)

EXAMPLE = os.path.join(ROOT, "pipelines", "examples", "mnrl-loss.py")
n = failed = 0


def ok(cond, what, diag=""):
    global n, failed
    n += 1
    print("%sok %d - %s" % ("" if cond else "not ", n, what))
    if not cond:
        failed += 1
        print("#   " + diag)


def tensor(a):
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"dtype": "f32", "shape": list(a.shape), "data": a.tobytes()}


def grad_of(rec):
    t = rec["grad"]
    return np.frombuffer(t["data"], dtype="<f4").reshape(t["shape"])


rng = np.random.default_rng(7)
records = [{"v": 1, "kind": "log", "step": 0, "loss": 1.0}]
for s, (C, B, D) in enumerate([(2, 16, 32), (3, 24, 16), (2, 300, 8)]):
    E = rng.standard_normal((C, B, D)).astype(np.float32)
    if s == 1:
        E[:, 1] = E[:, 0]
    records.append({"v": 1, "kind": "batch", "step": s, "epoch": 0, "steps": 3, "embeddings": tensor(E)})
data = b"".join(msgpack.packb(r, use_bin_type=True) for r in records)


def run(cmd):
    p = subprocess.run(cmd, input=data, capture_output=True)
    return p.returncode, list(msgpack.Unpacker(io.BytesIO(p.stdout), raw=False)), p.stderr.decode()


rc1, ours, err1 = run([os.path.join(ROOT, "bin", "st-loss"), "mnrl", "--scale", "20"])
rc2, theirs, err2 = run([EXAMPLE, "--scale", "20"])
ok(rc1 == 0 and rc2 == 0, "both stages run", err1 + err2)
ok(len(ours) == len(theirs) == len(records), "both write every record")
ok(theirs and theirs[0] == records[0], "the example passes a log record through")
for a, b in zip(ours[1:], theirs[1:]):
    what = "batch %d (%s)" % (a["step"], "x".join(map(str, a["grad"]["shape"])))
    ok(abs(a["loss"] - b["loss"]) <= 1e-5 * abs(b["loss"]), what + ": same loss", "%r vs %r" % (a["loss"], b["loss"]))
    ga, gb = grad_of(a), grad_of(b)
    err = float(np.abs(ga - gb).max()) if ga.shape == gb.shape else float("inf")
    ok(err <= 1e-5 * float(np.abs(gb).max()), what + ": same grad", "max error %.3g" % err)
    ok(all(a[k] == b[k] for k in ("step", "epoch", "steps", "embeddings")), what + ": the rest of the batch is kept")

# the example's output is a stream the project's tools read
p = subprocess.run([EXAMPLE], input=data, capture_output=True)
q = subprocess.run([os.path.join(ROOT, "bin", "st-json")], input=p.stdout, capture_output=True)
ok(q.returncode == 0 and q.stdout.count(b"\n") == len(records), "st-json reads the example's output", q.stderr.decode())

# a batch it cannot use: exit 65 with the record named
bad = msgpack.packb({"v": 1, "kind": "batch", "embeddings": tensor(np.zeros((1, 2, 3)))}, use_bin_type=True)
p = subprocess.run([EXAMPLE], input=bad, capture_output=True)
ok(p.returncode == 65 and b"mnrl needs 2 or more text columns; got 1 (stdin, record 1)" in p.stderr,
   "one column: exit 65 naming the record", p.stderr.decode())

print("1..%d" % n)
sys.exit(1 if failed else 0)
