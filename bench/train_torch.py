#!/usr/bin/python3
"""PyTorch baseline for bench/train.sh: one fit() step per batch of the same model, eager float32 --
BERT body (bench/encode_torch.py's, weights trainable), mean pooling, MultipleNegativesRankingLoss (cosine
similarity x 20, cross-entropy), backward, clip_grad_norm_(1), torch.optim.AdamW (weight decay 0.01 on all but
bias/LayerNorm.weight) -- on the batches st-batch wrote (--json), padded as st-batch padded them.

    train_torch.py MODEL_DIR BATCHES.jsonl THREADS [WARMUP_STEPS]

Prints key=value lines: pairs_per_s over the steps after WARMUP_STEPS (default 2), step_s (their mean),
first_loss, torch_version.
"""
import json
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encode_torch import Bert  # noqa: E402


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        b, e = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[8 + n + b:8 + n + e], dtype="<f4")
                                     .reshape(info["shape"]).copy())
    return out


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    model_dir, batches_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    warm = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    torch.set_num_threads(threads)
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    tensors = {k: v for k, v in read_safetensors(os.path.join(model_dir, "model.safetensors")).items()
               if not k.startswith("pooler.")}
    model = Bert(cfg, tensors)
    named = [(k.replace("__", "."), p) for k, p in model.p.items()]
    for _, p in named:
        p.requires_grad_(True)
    decay = [p for n, p in named if not ("bias" in n or "LayerNorm.weight" in n)]
    nodecay = [p for n, p in named if "bias" in n or "LayerNorm.weight" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=2e-5)
    params = [p for _, p in named]
    with open(batches_path) as f:
        batches = [json.loads(line) for line in f]
    batches = [b for b in batches if b.get("kind") == "batch"]
    times, pairs, first_loss = [], 0, None
    for i, b in enumerate(batches):
        ids = torch.tensor(b["input_ids"], dtype=torch.long)   # [2][B][T]
        lengths = torch.tensor(b["lengths"], dtype=torch.long)  # [2][B]
        C, B, T = ids.shape
        t0 = time.perf_counter()
        emb = []
        for c in range(C):
            mask = (torch.arange(T).unsqueeze(0) < lengths[c].unsqueeze(1)).long()
            tok = model(ids[c], mask)
            m = mask.unsqueeze(-1).to(tok.dtype)
            emb.append((tok * m).sum(1) / m.sum(1).clamp(min=1e-9))
        a = torch.nn.functional.normalize(emb[0], p=2, dim=1)
        cand = torch.nn.functional.normalize(torch.cat(emb[1:], 0), p=2, dim=1)
        loss = torch.nn.functional.cross_entropy(a @ cand.T * 20.0, torch.arange(B))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if first_loss is None:
            first_loss = float(loss)
        if i >= warm:
            times.append(dt)
            pairs += B
    total = sum(times)
    print("torch_version=%s" % torch.__version__)
    print("first_loss=%.6f" % first_loss)
    print("steps_timed=%d" % len(times))
    print("step_s=%.4f" % (total / max(1, len(times))))
    print("pairs_per_s=%.2f" % (pairs / total if total > 0 else 0))


if __name__ == "__main__":
    main()
