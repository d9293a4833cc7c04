#!/usr/bin/python3
"""st-loss against PyTorch: for every loss and option, the loss value and dL/dE that bin/st-loss writes for
random msgpack batches (with and without tied rows, duplicate labels, single-member classes, all-equal
labels) agree with tests/reference/loss_ref.py (autograd in float64) within 1e-5 relative: the loss to
1e-5 of its value, every gradient element to 1e-5 of the largest gradient element (1e-9 absolute when the
whole gradient is below 1e-4, i.e. zero up to rounding)."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
try:
    import msgpack
    import numpy as np
    import torch
    import loss_ref
except ImportError as e:
    print("1..0 # SKIP needs /usr/bin/python3 with torch, numpy, msgpack (python3-msgpack): %s" % e)
    sys.exit(0)

ST_LOSS = os.path.join(ROOT, "bin", "st-loss")
tap_n = 0
failed = 0


def ok(cond, what, diag=None):
    global tap_n, failed
    tap_n += 1
    print("%sok %d - %s" % ("" if cond else "not ", tap_n, what))
    if not cond:
        failed += 1
        if diag:
            print("#   " + diag.replace("\n", "\n#   "))
    sys.stdout.flush()
    return cond


def tensor(a, dtype="f32"):
    a = np.ascontiguousarray(a, dtype=np.float32)
    return {"dtype": dtype, "shape": list(a.shape), "data": a.tobytes()}


def untensor(t):
    return np.frombuffer(t["data"], dtype=np.float32).reshape(t["shape"])


def run_st_loss(args, records, expect_rc=0):
    data = b"".join(msgpack.packb(r, use_bin_type=True) for r in records)
    p = subprocess.run([ST_LOSS, "--threads", "1"] + args, input=data, capture_output=True)
    if p.returncode != expect_rc:
        return None, p
    return list(msgpack.Unpacker(__import__("io").BytesIO(p.stdout), raw=False)), p


rng = np.random.default_rng(20240607)


def embeddings(C, B, D, ties):
    E = rng.standard_normal((C, B, D)).astype(np.float32)
    if ties:
        E[:, 1] = E[:, 0]           # a duplicated row in every column
        if C > 1:
            E[1, 3] = E[1, 2]       # a duplicated candidate
            E[C - 1, 4] = E[0, 4]   # an exact match across columns
        else:
            E[0, 5] = E[0, 2]
    return E


def labels(kind, variant, C, B, D):
    if kind == "none":
        return None
    if kind == "binary":
        return {"random": rng.integers(0, 2, B), "all-1": np.ones(B), "all-0": np.zeros(B)}[variant]
    if kind == "score":
        return {"random": rng.random(B), "ties": rng.choice([0.0, 0.5, 1.0], B), "all-equal": np.full(B, 0.5)}[variant]
    if kind == "class":
        return {"random": rng.integers(0, 3, B), "singletons": np.arange(B)[::-1].copy(),
                "all-equal": np.full(B, 2.0), "pairs": np.arange(B) // 2}[variant]
    if kind == "teacher":
        return rng.standard_normal((B, D))
    if kind == "margin":
        k = C - 2
        return {"[rows][k]": rng.standard_normal((B, k)), "[rows][k+1]": rng.standard_normal((B, k + 1)),
                "[rows]": rng.standard_normal(B)}[variant]
    raise ValueError(kind)


LABEL_VARIANTS = {
    "none": ["-"], "binary": ["random", "all-1", "all-0"], "score": ["random", "ties", "all-equal"],
    "class": ["random", "pairs", "singletons", "all-equal"], "teacher": ["-"],
    "margin": ["[rows][k]", "[rows][k+1]"],
}

# (loss, st-loss options, reference options, columns, rows, dim, labels)
CASES = [
    ("triplet", [], {}, 3, 9, 16, "none"),
    ("triplet", ["--distance", "cosine", "--margin", "0.3"], {"distance": "cosine", "margin": 0.3}, 3, 9, 16, "none"),
    ("triplet", ["--distance", "manhattan", "--margin", "3"], {"distance": "manhattan", "margin": 3.0}, 3, 9, 16, "none"),
    ("mnrl", [], {}, 2, 12, 16, "none"),
    ("mnrl", ["--scale", "7"], {"scale": 7.0}, 4, 9, 16, "none"),
    ("mnrl", ["--similarity", "dot", "--scale", "1"], {"similarity": "dot", "scale": 1.0}, 3, 9, 16, "none"),
    ("mnrl-symmetric", [], {}, 2, 12, 16, "none"),
    ("mnrl-symmetric", ["--scale", "10"], {"scale": 10.0}, 3, 300, 8, "none"),   # more rows than a chunk
    ("mnrl-symmetric", ["--similarity", "dot", "--scale", "0.5"], {"similarity": "dot", "scale": 0.5}, 3, 9, 16, "none"),
    ("megabatch-margin", [], {}, 2, 12, 16, "none"),
    ("megabatch-margin", ["--mini-batch-size", "64"], {"mini_batch_size": 64}, 2, 300, 8, "none"),
    ("megabatch-margin", ["--mini-batch-size", "5", "--positive-margin", "0.9", "--negative-margin", "0.1"],
     {"mini_batch_size": 5, "positive_margin": 0.9, "negative_margin": 0.1}, 2, 12, 16, "none"),
    ("megabatch-margin", [], {}, 2, 1, 8, "none"),   # one row: no negative
    ("mnrl", [], {}, 3, 1, 8, "none"),
    ("contrastive", [], {}, 2, 12, 16, "binary"),
    ("contrastive", ["--distance", "euclidean", "--margin", "6", "--no-size-average"],
     {"distance": "euclidean", "margin": 6.0, "size_average": False}, 2, 12, 16, "binary"),
    ("contrastive", ["--distance", "manhattan", "--margin", "20"], {"distance": "manhattan", "margin": 20.0}, 2, 12, 16, "binary"),
    ("online-contrastive", [], {}, 2, 12, 16, "binary"),
    ("online-contrastive", ["--distance", "euclidean", "--margin", "6"], {"distance": "euclidean", "margin": 6.0}, 2, 12, 16, "binary"),
    ("online-contrastive", ["--distance", "manhattan", "--margin", "20"], {"distance": "manhattan", "margin": 20.0}, 2, 12, 16, "binary"),
    ("cosine-similarity", [], {}, 2, 12, 16, "score"),
    ("cosent", [], {}, 2, 12, 16, "score"),
    ("cosent", ["--scale", "3"], {"scale": 3.0}, 2, 12, 16, "score"),
    ("angle", [], {}, 2, 12, 16, "score"),
    ("angle", ["--scale", "3"], {"scale": 3.0}, 2, 12, 16, "score"),
    ("batch-hard-triplet", [], {}, 1, 12, 16, "class"),
    ("batch-hard-triplet", ["--distance", "cosine", "--margin", "0.5"], {"distance": "cosine", "margin": 0.5}, 1, 12, 16, "class"),
    ("batch-hard-soft-margin-triplet", [], {}, 1, 12, 16, "class"),
    ("batch-hard-soft-margin-triplet", ["--distance", "cosine"], {"distance": "cosine"}, 1, 12, 16, "class"),
    ("batch-semi-hard-triplet", [], {}, 1, 12, 16, "class"),
    ("batch-semi-hard-triplet", ["--distance", "cosine", "--margin", "0.5"], {"distance": "cosine", "margin": 0.5}, 1, 12, 16, "class"),
    ("batch-all-triplet", [], {}, 1, 12, 16, "class"),
    ("batch-all-triplet", ["--distance", "cosine", "--margin", "0.5"], {"distance": "cosine", "margin": 0.5}, 1, 12, 16, "class"),
    ("mse", [], {}, 2, 9, 16, "teacher"),
    ("margin-mse", [], {}, 3, 9, 16, "margin"),
    ("margin-mse", ["--similarity", "cosine"], {"similarity": "cosine"}, 4, 9, 16, "margin"),
    ("matryoshka", ["--dims", "8,16,4", "--weights", "0.5,1,2", "--", "mnrl"],
     {"inner": "mnrl", "dims": [8, 16, 4], "weights": [0.5, 1.0, 2.0]}, 3, 9, 16, "none"),
    ("matryoshka", ["--dims", "16,8", "--", "cosent", "--scale", "5"],
     {"inner": "cosent", "dims": [16, 8], "inner_opts": {"scale": 5.0}}, 2, 9, 16, "score"),
    ("matryoshka", ["--dims", "16,6", "--", "mse"], {"inner": "mse", "dims": [16, 6]}, 1, 9, 16, "teacher"),
    ("matryoshka", ["--dims", "12,4", "--", "batch-all-triplet", "--margin", "1"],
     {"inner": "batch-all-triplet", "dims": [12, 4], "inner_opts": {"margin": 1.0}}, 1, 12, 16, "class"),
]

# margin-mse with one negative also takes labels [rows]
LABEL_VARIANTS_1NEG = ["[rows]", "[rows][k]", "[rows][k+1]"]


def compare(what, got_loss, got_grad, ref_loss, ref_grad):
    el = abs(got_loss - ref_loss)
    ok(el <= 1e-5 * max(abs(ref_loss), 1e-2), what + ": loss",
       "st-loss %.9g, torch %.9g" % (got_loss, ref_loss))
    ref_grad = np.asarray(ref_grad)
    scale = float(np.abs(ref_grad).max())
    err = float(np.abs(got_grad - ref_grad).max())
    # a gradient that is mathematically zero (e.g. 1 - cos(x, x)) is float32 rounding noise: floor 1e-9
    ok(err <= 1e-5 * max(scale, 1e-4) and got_grad.shape == ref_grad.shape, what + ": grad",
       "max |grad error| %.3g, max |grad| %.3g" % (err, scale))


def check(name, args, ref_opts, C, B, D, kind):
    variants = LABEL_VARIANTS[kind]
    if kind == "margin" and C == 3:
        variants = LABEL_VARIANTS_1NEG
    for ties in ((False, True) if B >= 6 else (False,)):
        for variant in variants:
            E = embeddings(C, B, D, ties)
            y = labels(kind, variant, C, B, D)
            rec = {"v": 1, "kind": "batch", "step": 0, "steps": 1, "embeddings": tensor(E)}
            if y is not None:
                rec["labels"] = tensor(y)
            what = "%s %s%s%s" % (name, " ".join(args), " ties" if ties else "",
                                  "" if variant == "-" else " labels " + variant)
            out, p = run_st_loss([name] + args, [rec])
            if out is None:
                ok(False, what, "exit %d: %s" % (p.returncode, p.stderr.decode()))
                continue
            yr = None if y is None else np.asarray(y, dtype=np.float32).astype(np.float64)
            L, G = loss_ref.loss_and_grad(name, E, yr, ref_opts)
            compare(what, out[0]["loss"], untensor(out[0]["grad"]), L, G.numpy())


for case in CASES:
    check(*case)


# ---- softmax: the classifier comes from the run directory ----

def write_safetensors(path, tensors, meta):
    import json
    import struct
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    import json
    import struct
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + en], dtype=np.float32).reshape(e["shape"])
    return out, header.get("__metadata__", {})


for flags, ref_cat in [([], {}), (["--concatenation-sent-multiplication", "--no-concatenation-sent-rep"],
                                  {"cat_mul": True, "cat_rep": False})]:
    for ties in (False, True):
        with tempfile.TemporaryDirectory() as run:
            C, B, D, NL = 2, 10, 8, 3
            E = embeddings(C, B, D, ties)
            y = rng.integers(0, NL, B).astype(np.float64)
            F_in = (2 * ref_cat.get("cat_rep", True) + ref_cat.get("cat_diff", True) + ref_cat.get("cat_mul", False)) * D
            W = rng.standard_normal((NL, F_in)).astype(np.float32) * 0.3
            b = rng.standard_normal(NL).astype(np.float32) * 0.3
            z = np.zeros_like
            write_safetensors(os.path.join(run, "loss-softmax.safetensors"), {
                "classifier.weight": W, "classifier.bias": b,
                "optimizer.classifier.weight.exp_avg": z(W), "optimizer.classifier.weight.exp_avg_sq": z(W),
                "optimizer.classifier.bias.exp_avg": z(b), "optimizer.classifier.bias.exp_avg_sq": z(b)},
                {"step": "0"})
            rec = {"v": 1, "kind": "batch", "embeddings": tensor(E), "labels": tensor(y)}
            args = ["softmax", "--num-labels", str(NL), "--run", run, "--no-train"] + flags
            out, p = run_st_loss(args, [rec])
            what = "softmax %s%s" % (" ".join(flags), " ties" if ties else "")
            if out is None:
                ok(False, what, p.stderr.decode())
                continue
            opts = dict(ref_cat, W=torch.tensor(W, dtype=torch.float64), b=torch.tensor(b, dtype=torch.float64))
            L, G = loss_ref.loss_and_grad("softmax", E, y, opts)
            compare(what, out[0]["loss"], untensor(out[0]["grad"]), L, G.numpy())

# Training the classifier: two steps of AdamW with the schedule, against torch.optim.AdamW, fresh init.
with tempfile.TemporaryDirectory() as run:
    C, B, D, NL, steps = 2, 10, 8, 3, 4
    batches = []
    for s in range(2):
        batches.append({"v": 1, "kind": "batch", "step": s, "epoch": 0, "steps": steps,
                        "embeddings": tensor(embeddings(C, B, D, False)),
                        "labels": tensor(rng.integers(0, NL, B).astype(np.float64))})
    # the initial classifier: the file st-loss writes after a --no-train run is absent, so start from a
    # written one with non-zero moments to see they are used
    W0 = rng.standard_normal((NL, 3 * D)).astype(np.float32) * 0.3
    b0 = rng.standard_normal(NL).astype(np.float32) * 0.3
    write_safetensors(os.path.join(run, "loss-softmax.safetensors"), {
        "classifier.weight": W0, "classifier.bias": b0,
        "optimizer.classifier.weight.exp_avg": np.zeros_like(W0),
        "optimizer.classifier.weight.exp_avg_sq": np.zeros_like(W0),
        "optimizer.classifier.bias.exp_avg": np.zeros_like(b0),
        "optimizer.classifier.bias.exp_avg_sq": np.zeros_like(b0)}, {"step": "0"})
    lr, wd = 0.05, 0.1
    args = ["softmax", "--num-labels", str(NL), "--run", run, "--lr", str(lr), "--weight-decay", str(wd),
            "--warmup-steps", "1", "--scheduler", "warmuplinear", "--max-grad-norm", "0.5"]
    out, p = run_st_loss(args, batches)
    if out is None:
        ok(False, "softmax training", p.stderr.decode())
    else:
        Wt = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
        bt = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.AdamW([{"params": [Wt], "weight_decay": wd}, {"params": [bt], "weight_decay": 0.0}], lr=lr)
        for s, rec in enumerate(batches):
            E = untensor(rec["embeddings"])
            y = torch.tensor(untensor(rec["labels"]), dtype=torch.float64)
            Et = torch.tensor(E, dtype=torch.float64, requires_grad=True)
            L = loss_ref.softmax(Et, y, {"W": Wt, "b": bt})
            opt.zero_grad()
            L.backward()
            compare("softmax training step %d" % s, out[s]["loss"], untensor(out[s]["grad"]), L.item(),
                    Et.grad.numpy())
            torch.nn.utils.clip_grad_norm_([Wt, bt], 0.5)
            lam = s / 1 if s < 1 else max(0.0, (steps - s) / max(1, steps - 1))   # warmuplinear, W=1
            for g in opt.param_groups:
                g["lr"] = lr * lam
            opt.step()
        saved, meta = read_safetensors(os.path.join(run, "loss-softmax.safetensors"))
        ew = float(np.abs(saved["classifier.weight"] - Wt.detach().numpy()).max())
        eb = float(np.abs(saved["classifier.bias"] - bt.detach().numpy()).max())
        ok(ew <= 1e-5 * float(np.abs(W0).max()) and eb <= 1e-5 * float(np.abs(b0).max()),
           "softmax classifier after 2 AdamW steps matches torch.optim.AdamW", "weight err %.3g, bias err %.3g" % (ew, eb))
        ok(meta.get("step") == "2" and meta.get("last_step") == "1", "the saved state counts 2 updates",
           str(meta))
        ok(not [f for f in os.listdir(run) if f != "loss-softmax.safetensors"], "no temporary files left in the run directory")

# A fresh run directory: the classifier is initialised as nn.Linear (uniform within 1/sqrt(in)) and saved.
with tempfile.TemporaryDirectory() as run:
    rec = {"v": 1, "kind": "batch", "step": 0, "steps": 10, "embeddings": tensor(embeddings(2, 6, 8, False)),
           "labels": tensor(np.zeros(6))}
    out, p = run_st_loss(["softmax", "--num-labels", "3", "--run", run, "--lr", "0"], [rec])
    saved, meta = read_safetensors(os.path.join(run, "loss-softmax.safetensors")) if out else ({}, {})
    W = saved.get("classifier.weight", np.zeros((0, 0)))
    bound = 1 / np.sqrt(24)
    ok(W.shape == (3, 24) and np.abs(W).max() <= bound and np.abs(W).max() > 0.8 * bound
       and abs(float(W.mean())) < 0.3 * bound, "fresh classifier: 3 x 24, uniform within 1/sqrt(24)")

print("1..%d" % tap_n)
sys.exit(1 if failed else 0)
