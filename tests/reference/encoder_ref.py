#!/usr/bin/python3
"""PyTorch reference for lib/encoder.c: BERT / RoBERTa / DistilBERT / MPNet written in plain torch from Hugging Face's
formulas (padded batch + additive attention mask, as transformers computes it), in float64.

Usage: encoder_ref.py DIR CONFIG.json [DIR CONFIG.json ...]
DIR holds what `build/t/encoder.t --dump DIR CONFIG.json` wrote: params.f32 (flat, in the order of table.tsv),
ids.i32 [B][T] (pad slots hold junk), lengths.i32 [B], dout.f32 [B][T][H], and the C results out.f32 and
grads.f32. Prints one line per check: "ok|not ok<TAB>description".
"""
import json
import math
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def load(dirname, config_path):
    cfg = json.load(open(config_path))
    B, T, H = map(int, open(f"{dirname}/shape.txt").read().split())
    params = np.fromfile(f"{dirname}/params.f32", dtype="<f4")
    table = []
    for line in open(f"{dirname}/table.tsv"):
        name, off, count, d0, d1 = line.rstrip("\n").split("\t")
        shape = (int(d0), int(d1)) if int(d1) else (int(d0),)
        table.append((name, int(off), int(count), shape))
    tensors = {}
    for name, off, count, shape in table:
        t = torch.tensor(params[off:off + count].astype(np.float64).reshape(shape), requires_grad=True)
        tensors[name] = t
    ids = np.fromfile(f"{dirname}/ids.i32", dtype="<i4").reshape(B, T)
    lengths = np.fromfile(f"{dirname}/lengths.i32", dtype="<i4")
    dout = np.fromfile(f"{dirname}/dout.f32", dtype="<f4").reshape(B, T, H)
    out = np.fromfile(f"{dirname}/out.f32", dtype="<f4").reshape(B, T, H)
    grads = np.fromfile(f"{dirname}/grads.f32", dtype="<f4")
    return cfg, table, tensors, ids, lengths, dout, out, grads


def act_fn(name):
    if name in ("gelu", "gelu_python"):
        return lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "relu":
        return torch.relu
    raise SystemExit(f"unknown activation {name}")


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def linear(x, p, name):
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def mpnet_buckets(T, num_buckets=32, max_distance=128):
    """[T, T] bucket of key j for query i: T5's bidirectional bucketing of j - i as MPNetEncoder computes it
    (relative_position_bucket; the log in float32, truncated toward zero)."""
    rel = torch.arange(T)[None, :] - torch.arange(T)[:, None]
    n = -rel
    half = num_buckets // 2
    ret = (n < 0).long() * half
    n = n.abs()
    exact = half // 2
    large = exact + (torch.log(n.float() / exact) / math.log(max_distance / exact) * (half - exact)).long()
    large = torch.clamp(large, max=half - 1)
    return ret + torch.where(n < exact, n, large)


def attention(x, p, q, k, v, o, heads, mask_add, bias=None):
    B, T, H = x.shape
    hs = H // heads

    def split(t):
        return t.view(B, T, heads, hs).transpose(1, 2)   # B, heads, T, hs

    Q, K, V = split(linear(x, p, q)), split(linear(x, p, k)), split(linear(x, p, v))
    scores = Q @ K.transpose(-1, -2) / math.sqrt(hs)
    if bias is not None:   # MPNet: [heads, T, T], the same in every layer
        scores = scores + bias
    scores = scores + mask_add
    probs = torch.softmax(scores, dim=-1)
    ctx = (probs @ V).transpose(1, 2).reshape(B, T, H)
    return linear(ctx, p, o)


def forward(cfg, p, ids, lengths):
    B, T = ids.shape
    mtype = cfg["model_type"]
    distil = mtype == "distilbert"
    mpnet = mtype == "mpnet"
    roberta = mtype in ("roberta", "xlm-roberta", "camembert") or mpnet
    pad = cfg.get("pad_token_id", 1 if roberta else 0)
    mask = torch.zeros(B, T)
    for b in range(B):
        mask[b, :lengths[b]] = 1
    ids = torch.tensor(ids, dtype=torch.long)
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad))   # what a tokenizer pads with
    if roberta:   # create_position_ids_from_input_ids
        nonpad = (ids != pad).long()
        pos = torch.cumsum(nonpad, dim=1) * nonpad + pad
    else:
        pos = torch.arange(T).expand(B, T)
    e = p["embeddings.word_embeddings.weight"][ids] + p["embeddings.position_embeddings.weight"][pos]
    if not distil and not mpnet:
        e = e + p["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
    eps = 1e-12 if distil else cfg.get("layer_norm_eps", 1e-12)
    x = layer_norm(e, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], eps)
    mask_add = ((1.0 - mask) * torch.finfo(torch.float64).min)[:, None, None, :]
    if distil:
        act = act_fn(cfg.get("activation", "gelu"))
        for n in range(cfg.get("n_layers", 6)):
            pre = f"transformer.layer.{n}."
            a = attention(x, p, pre + "attention.q_lin", pre + "attention.k_lin", pre + "attention.v_lin",
                          pre + "attention.out_lin", cfg.get("n_heads", 12), mask_add)
            x = layer_norm(x + a, p[pre + "sa_layer_norm.weight"], p[pre + "sa_layer_norm.bias"], eps)
            f = linear(act(linear(x, p, pre + "ffn.lin1")), p, pre + "ffn.lin2")
            x = layer_norm(x + f, p[pre + "output_layer_norm.weight"], p[pre + "output_layer_norm.bias"], eps)
    elif mpnet:
        act = act_fn(cfg.get("hidden_act", "gelu"))
        # compute_position_bias: relative_attention_bias(bucket) -> [T, T, heads] -> [heads, T, T]
        bias = p["encoder.relative_attention_bias.weight"][mpnet_buckets(T)].permute(2, 0, 1)
        for n in range(cfg.get("num_hidden_layers", 12)):
            pre = f"encoder.layer.{n}."
            a = attention(x, p, pre + "attention.attn.q", pre + "attention.attn.k", pre + "attention.attn.v",
                          pre + "attention.attn.o", cfg.get("num_attention_heads", 12), mask_add, bias)
            x = layer_norm(x + a, p[pre + "attention.LayerNorm.weight"], p[pre + "attention.LayerNorm.bias"], eps)
            f = linear(act(linear(x, p, pre + "intermediate.dense")), p, pre + "output.dense")
            x = layer_norm(x + f, p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"], eps)
    else:
        act = act_fn(cfg.get("hidden_act", "gelu"))
        for n in range(cfg.get("num_hidden_layers", 12)):
            pre = f"encoder.layer.{n}."
            a = attention(x, p, pre + "attention.self.query", pre + "attention.self.key",
                          pre + "attention.self.value", pre + "attention.output.dense",
                          cfg.get("num_attention_heads", 12), mask_add)
            x = layer_norm(x + a, p[pre + "attention.output.LayerNorm.weight"],
                           p[pre + "attention.output.LayerNorm.bias"], eps)
            f = linear(act(linear(x, p, pre + "intermediate.dense")), p, pre + "output.dense")
            x = layer_norm(x + f, p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"], eps)
    return x, mask


def check(dirname, config_path):
    cfg, table, p, ids, lengths, dout, out_c, grads_c = load(dirname, config_path)
    what = config_path.rsplit("/", 1)[-1][:-5] + " (" + cfg.get("hidden_act", cfg.get("activation", "gelu")) + ")"
    x, mask = forward(cfg, p, ids, lengths)
    # nn.Embedding(padding_idx) rows get no gradient: the pad row of the word embeddings (and of RoBERTa's
    # positions); autograd through plain indexing would give them one, so zero it as PyTorch's Embedding does.
    m = mask[:, :, None]
    diff = np.abs((x.detach().numpy() - out_c) * m.numpy()).max()
    # float32 against float64: with the exaggerated initializer_range 0.3 of most test models, PyTorch's own float32
    # forward is 1e-5 off (measured 1.1e-5 on mpnet.json); with a real model's 0.02 the bound is 1e-5
    tol = 1e-5 if cfg.get("initializer_range", 0.02) <= 0.05 else 1e-4
    print(f"{'ok' if diff <= tol else 'not ok'}\t{what}, rows of {ids.shape[1]}: hidden states agree with PyTorch "
          f"(max abs diff {diff:.2e}, tolerance {tol:g})")
    loss = (x * torch.tensor(dout.astype(np.float64)) * m).sum()
    loss.backward()
    roberta = cfg["model_type"] in ("roberta", "xlm-roberta", "camembert", "mpnet")
    pad = cfg.get("pad_token_id", 1 if roberta else 0)
    if cfg["model_type"] == "mpnet":
        # the buckets themselves, against the bucket edges of exact arithmetic: d < 8 own bucket, then
        # 8 + floor(2 log2(d / 8)) up to 15 (edges at 12, 16, 23, 32, 46, 64, 91), keys after the query + 16
        T = ids.shape[1]
        got = mpnet_buckets(T)
        edges = [12, 16, 23, 32, 46, 64, 91]
        def exact(r):
            d = abs(r)
            b = d if d < 8 else 8 + sum(d >= e for e in edges)
            return b + (16 if r > 0 else 0)
        want = torch.tensor([[exact(j - i) for j in range(T)] for i in range(T)])
        print(f"{'ok' if torch.equal(got, want) else 'not ok'}\tmpnet: relative position buckets of rows of {T} "
              f"(buckets used: {len(set(got.reshape(-1).tolist()))})")
    worst, worst_name, bad = 0.0, "", []
    global_scale = max(float(p[name].grad.abs().max()) for name, *_ in table if p[name].grad is not None)
    for name, off, count, shape in table:
        g = p[name].grad
        g = torch.zeros(shape) if g is None else g.clone()
        if name == "embeddings.word_embeddings.weight" or (roberta and name == "embeddings.position_embeddings.weight"):
            g[pad] = 0
        ref = g.numpy().reshape(-1)
        got = grads_c[off:off + count]
        # max-norm relative; the floor (1e-4 of the model's largest gradient) covers tensors whose gradient is
        # zero in exact arithmetic (the key bias: a constant added to a row of scores does not change the
        # softmax), where float32 leaves rounding noise
        rel = np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-4 * global_scale)
        if rel > worst:
            worst, worst_name = rel, name
        if rel > 1e-3:
            bad.append(f"{name} ({rel:.2e})")
    status = "ok" if not bad else "not ok"
    print(f"{status}\t{what}: all {len(table)} parameter gradients agree with autograd "
          f"(worst max-norm relative diff {worst:.2e} in {worst_name}){'; bad: ' + ', '.join(bad) if bad else ''}")


if __name__ == "__main__":
    if len(sys.argv) < 3 or len(sys.argv) % 2 != 1:
        sys.exit(__doc__)
    for i in range(1, len(sys.argv), 2):
        check(sys.argv[i], sys.argv[i + 1])
