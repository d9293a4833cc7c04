#!/usr/bin/python3
"""mnrl-loss.py: a loss stage written outside the project, in Python with numpy and msgpack.

It speaks the stream like st-loss does: it reads msgpack batches that carry "embeddings" float32
[columns][rows][dim], and writes each one on with "loss" (a float) and "grad" = dL/d(embeddings) (float32, the
same shape). Other records pass through. The loss is MultipleNegativesRankingLoss (in-batch negatives): row i
of column 0 must pick row i of column 1 among all rows of columns 1.. (columns after the second add
negatives), scores = scale * cosine similarity, cross-entropy averaged over rows. Swap it in for
`st-loss mnrl` in any pipeline:

    ... | st-forward ... | pipelines/examples/mnrl-loss.py --scale 20 | st-step ...

Needs python3-numpy and python3-msgpack (Debian). Exit status 65 on a batch it cannot use."""
import argparse
import os
import sys

import msgpack
import numpy as np


def mnrl(E, scale):
    """E [C][B][D] -> (loss, dL/dE). Written out by hand: the chain rule through the normalisation."""
    C, B, D = E.shape
    X = E.reshape(C * B, D).astype(np.float64)
    norms = np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    Xn = X / norms
    A, K = Xn[:B], Xn[B:]                      # anchors, candidates (positives first, then negatives)
    S = scale * (A @ K.T)                      # [B][B*(C-1)]
    S -= S.max(axis=1, keepdims=True)
    P = np.exp(S)
    P /= P.sum(axis=1, keepdims=True)
    rows = np.arange(B)
    loss = float(-np.log(P[rows, rows]).mean())
    dS = P
    dS[rows, rows] -= 1
    dS *= scale / B                            # d loss / d cosine
    dXn = np.vstack([dS @ K, dS.T @ A])
    # back through x / |x|: (dxn - xn (xn . dxn)) / |x|
    dX = (dXn - Xn * (Xn * dXn).sum(axis=1, keepdims=True)) / norms
    return loss, dX.reshape(C, B, D).astype(np.float32)


def tensor_f32(t, what):
    if not isinstance(t, dict) or t.get("dtype") != "f32":
        raise ValueError("%s must be a float32 tensor" % what)
    return np.frombuffer(t["data"], dtype="<f4").reshape(t["shape"])


def records():
    """The records on stdin, each as soon as its bytes are there. (msgpack.Unpacker(sys.stdin.buffer) would wait
    for a full read buffer, and in training the next batch only comes after this stage has answered.)"""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 31)
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return
        unpacker.feed(chunk)
        yield from unpacker


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=20.0)
    args = ap.parse_args()
    out = sys.stdout.buffer
    packer = msgpack.Packer(use_bin_type=True)
    n = 0
    for rec in records():
        n += 1
        if not isinstance(rec, dict) or rec.get("kind") != "batch":
            out.write(packer.pack(rec))
            continue
        try:
            E = tensor_f32(rec.get("embeddings"), '"embeddings"')
            if E.ndim != 3 or E.shape[0] < 2:
                raise ValueError("mnrl needs 2 or more text columns; got %d" % (E.shape[0] if E.ndim == 3 else 0))
        except ValueError as e:
            sys.stderr.write("mnrl-loss.py: %s (stdin, record %d)\n" % (e, n))
            sys.exit(65)
        loss, grad = mnrl(E, args.scale)
        if not np.isfinite(loss) or not np.isfinite(grad).all():
            sys.stderr.write("mnrl-loss.py: the loss at step %s is not finite (stdin, record %d)\n" % (rec.get("step"), n))
            sys.exit(65)
        rec["loss"] = loss
        rec["grad"] = {"dtype": "f32", "shape": list(grad.shape), "data": grad.astype("<f4").tobytes()}
        try:
            out.write(packer.pack(rec))
            out.flush()
        except BrokenPipeError:   # a closed downstream pipe ends the stage quietly
            sys.exit(0)


if __name__ == "__main__":
    main()
