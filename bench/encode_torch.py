#!/usr/bin/python3
"""PyTorch baseline for bench/encode.sh: the same BERT body (Hugging Face formulas, eager float32) on the
batches that encode_bench --write saved, padded to each batch's longest row as sentence-transformers does.

    encode_torch.py DIR THREADS [--export MODEL.onnx]
    encode_torch.py --texts MODEL_DIR TEXTS THREADS BATCH ROUNDS


Prints key=value lines: sentences_per_s (best batch), max_abs_diff against the C output of batch 0.
--export also writes the model as ONNX (opset 14, dynamic batch and sequence axes) for encode_onnx.js.
--texts: the whole-process anchor: MODEL_DIR/model.safetensors (st-init's names) run with mean pooling on the
texts of TEXTS (word wN is id N, [CLS] 2, [SEP] 3), sorted by length, BATCH at a time; sentences_per_s is all
texts over the fastest round's summed forward time.
"""
import json
import math
import sys
import time

import numpy as np
import torch


class Bert(torch.nn.Module):
    def __init__(self, cfg, tensors):
        super().__init__()
        self.cfg = cfg
        self.heads = cfg["num_attention_heads"]
        self.eps = cfg["layer_norm_eps"]
        self.p = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v, requires_grad=False)
                                         for k, v in tensors.items()})

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def linear(self, x, name):
        return torch.nn.functional.linear(x, self.w(name + ".weight"), self.w(name + ".bias"))

    def ln(self, x, name):
        return torch.nn.functional.layer_norm(x, (self.cfg["hidden_size"],), self.w(name + ".weight"), self.w(name + ".bias"),
                                              self.eps)

    def forward(self, input_ids, attention_mask):
        B, T = input_ids.shape
        H = self.cfg["hidden_size"]
        hs = H // self.heads
        pos = torch.arange(T, device=input_ids.device).unsqueeze(0)
        x = (self.w("embeddings.word_embeddings.weight")[input_ids]
             + self.w("embeddings.position_embeddings.weight")[pos]
             + self.w("embeddings.token_type_embeddings.weight")[0])
        x = self.ln(x, "embeddings.LayerNorm")
        mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for n in range(self.cfg["num_hidden_layers"]):
            pre = f"encoder.layer.{n}."
            q = self.linear(x, pre + "attention.self.query").view(B, T, self.heads, hs).transpose(1, 2)
            k = self.linear(x, pre + "attention.self.key").view(B, T, self.heads, hs).transpose(1, 2)
            v = self.linear(x, pre + "attention.self.value").view(B, T, self.heads, hs).transpose(1, 2)
            s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hs) + mask
            ctx = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, T, H)
            x = self.ln(x + self.linear(ctx, pre + "attention.output.dense"), pre + "attention.output.LayerNorm")
            h = torch.nn.functional.gelu(self.linear(x, pre + "intermediate.dense"))
            x = self.ln(x + self.linear(h, pre + "output.dense"), pre + "output.LayerNorm")
        return x


def load(d):
    cfg = json.load(open(f"{d}/config.json"))
    nb, B, T, H = map(int, open(f"{d}/shape.txt").read().split())
    params = np.fromfile(f"{d}/params.f32", dtype="<f4")
    tensors = {}
    for line in open(f"{d}/table.tsv"):
        name, off, count, d0, d1 = line.rstrip("\n").split("\t")
        shape = (int(d0), int(d1)) if int(d1) else (int(d0),)
        tensors[name] = torch.from_numpy(params[int(off):int(off) + int(count)].reshape(shape).copy())
    ids = np.fromfile(f"{d}/ids.i32", dtype="<i4").reshape(nb, B, T)
    lengths = np.fromfile(f"{d}/lengths.i32", dtype="<i4").reshape(nb, B)
    out = np.fromfile(f"{d}/out.f32", dtype="<f4").reshape(B, T, H)
    return cfg, tensors, ids, lengths, out


def padded(ids, lengths):
    """ids [B][T] and lengths -> (input_ids, attention_mask) padded to the longest row, int64."""
    L = int(lengths.max())
    x = torch.from_numpy(ids[:, :L].astype(np.int64))
    m = (torch.arange(L)[None, :] < torch.from_numpy(lengths.astype(np.int64))[:, None]).to(torch.int64)
    return x * m, m


def load_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        tensors[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"]).copy())
    return tensors


def texts_main(model_dir, texts, threads, batch, rounds):
    torch.set_num_threads(threads)
    cfg = json.load(open(f"{model_dir}/config.json"))
    cfg.setdefault("layer_norm_eps", 1e-12)
    model = Bert(cfg, load_safetensors(f"{model_dir}/model.safetensors")).eval()
    rows = sorted(([2] + [int(w[1:]) for w in line.split()] + [3] for line in open(texts) if line.strip()), key=len)
    batches = []
    for s in range(0, len(rows), batch):
        part = rows[s:s + batch]
        L = max(len(r) for r in part)
        x = torch.zeros(len(part), L, dtype=torch.int64)
        m = torch.zeros(len(part), L, dtype=torch.int64)
        for b, r in enumerate(part):
            x[b, :len(r)] = torch.tensor(r)
            m[b, :len(r)] = 1
        batches.append((x, m))
    best = best_cpu = 1e30
    with torch.inference_mode():
        model(*batches[0])
        for _ in range(rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            for x, m in batches:
                y = model(x, m)
                mf = m[:, :, None].to(y.dtype)
                (y * mf).sum(1) / mf.sum(1)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
    print(f"torch_version={torch.__version__}\nbest_s={best:.4f}\nsentences_per_s={len(rows) / best:.1f}")
    print(f"cpu_s={best_cpu:.4f}\nsentences_per_cpu_s={len(rows) / best_cpu:.1f}")


def main():
    if sys.argv[1] == "--texts":
        texts_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
        return
    d, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    cfg, tensors, ids, lengths, out_c = load(d)
    model = Bert(cfg, tensors).eval()
    with torch.inference_mode():
        x, m = padded(ids[0], lengths[0])
        y = model(x, m).numpy()
        L = y.shape[1]
        mask = m.numpy()[:, :, None]
        diff = np.abs((y - out_c[:, :L]) * mask).max()
        best = 1e30
        for k in range(1, ids.shape[0]):
            x, m = padded(ids[k], lengths[k])
            t0 = time.perf_counter()
            model(x, m)
            best = min(best, time.perf_counter() - t0)
    print(f"torch_version={torch.__version__}\nthreads={torch.get_num_threads()}")
    print(f"best_s={best:.4f}\nsentences_per_s={ids.shape[1] / best:.1f}\nmax_abs_diff={diff:.2e}")
    if len(sys.argv) > 4 and sys.argv[3] == "--export":
        x, m = padded(ids[0], lengths[0])
        torch.onnx.export(model, (x, m), sys.argv[4], input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], opset_version=14,
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                        "last_hidden_state": {0: "batch", 1: "seq"}})


if __name__ == "__main__":
    main()
