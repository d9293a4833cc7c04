#!/usr/bin/python3
"""Independent PyTorch reference for a sentence-transformers model directory (tests/unit/model_torch.c).

    model_ref.py run CASES.json   -- for each {"model", "input", "output"}: embeddings and parameter gradients
    model_ref.py check DIR...     -- structural check of model directories written by st (exit 1 on a problem)

Reads the directory with its own safetensors reader and builds BERT / RoBERTa / DistilBERT, Pooling (the six
modes, written as sentence_transformers/models/Pooling.py computes them), Dense (activation class imported from
the torch class name in config.json, as the library does) and Normalize in float64. "input" holds ids [B][T],
lengths [B] and d_emb [B][dim]; "output" gets "embeddings" and "grad:<file>:<tensor>" = d(sum(emb * d_emb))/dp.
"""
import importlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(body[b:e], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = arr
    return header, out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype=np.float32)
        raw = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def mpnet_buckets(T, num_buckets=32, max_distance=128):
    """[T, T] bucket of key j for query i (MPNet's relative_position_bucket of j - i: T5's bidirectional
    bucketing, the log in float32 and truncated, as modeling_mpnet.py computes it)."""
    n = torch.arange(T)[:, None] - torch.arange(T)[None, :]   # query - key
    half = num_buckets // 2
    ret = (n < 0).long() * half
    n = n.abs()
    exact = half // 2
    large = exact + (torch.log(n.float() / exact) / math.log(max_distance / exact) * (half - exact)).long()
    return ret + torch.where(n < exact, n, torch.clamp(large, max=half - 1))


class Model:
    def __init__(self, root):
        self.root = root
        mpath = os.path.join(root, "modules.json")
        if os.path.exists(mpath):
            with open(mpath) as f:
                modules = json.load(f)
        else:
            modules = [{"path": "", "type": "sentence_transformers.models.Transformer"}]
        self.params = {}   # (file, name) -> leaf tensor
        self.heads = []
        for mod in modules:
            kind = mod["type"].split(".")[-1]
            sub = os.path.join(root, mod["path"])
            if kind == "Transformer":
                self.load_transformer(sub, mod["path"])
            elif kind == "Pooling":
                with open(os.path.join(sub, "config.json")) as f:
                    self.pool = json.load(f)
            elif kind == "Dense":
                with open(os.path.join(sub, "config.json")) as f:
                    cfg = json.load(f)
                _, w = read_safetensors(os.path.join(sub, "model.safetensors"))
                file = os.path.join(mod["path"], "model.safetensors")
                weight = self.leaf(file, "linear.weight", w["linear.weight"])
                bias = self.leaf(file, "linear.bias", w["linear.bias"]) if cfg.get("bias", True) else None
                module, cls = cfg["activation_function"].rsplit(".", 1)
                act = getattr(importlib.import_module(module), cls)()
                self.heads.append(("dense", weight, bias, act))
            elif kind == "Normalize":
                self.heads.append(("normalize",))
            else:
                raise SystemExit("unknown module " + mod["type"])
        if not os.path.exists(mpath):
            self.pool = {"pooling_mode_mean_tokens": True}

    def leaf(self, file, name, arr):
        t = torch.tensor(np.array(arr, dtype=np.float64), requires_grad=True)
        self.params[(file, name)] = t
        return t

    def load_transformer(self, sub, rel):
        with open(os.path.join(sub, "config.json")) as f:
            self.cfg = json.load(f)
        _, w = read_safetensors(os.path.join(sub, "model.safetensors"))
        file = os.path.join(rel, "model.safetensors") if rel else "model.safetensors"
        self.w = {}
        for name, arr in w.items():
            if name.startswith("pooler.") or arr.dtype.kind != "f":
                continue   # the pooler is not part of a sentence-transformers forward
            self.w[name] = self.leaf(file, name, arr)

    # ---- the transformer body, following Hugging Face's modeling_bert / roberta / distilbert / mpnet ----
    def encode(self, ids, mask):
        c, w = self.cfg, self.w
        mt = c["model_type"]
        B, T = ids.shape
        if mt == "distilbert":
            H, nh, L = c["dim"], c["n_heads"], c["n_layers"]
            eps, act = 1e-12, c.get("activation", "gelu")
            pad = c.get("pad_token_id", 0)
        else:
            H, nh, L = c["hidden_size"], c["num_attention_heads"], c["num_hidden_layers"]
            eps, act = c.get("layer_norm_eps", 1e-12), c.get("hidden_act", "gelu")
            pad = c.get("pad_token_id", 1 if mt in ("roberta", "xlm-roberta", "camembert", "mpnet") else 0)
        ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad))
        if mt in ("roberta", "xlm-roberta", "camembert", "mpnet"):
            pos = (torch.cumsum(mask, 1) * mask).long() + pad
            pos_pad = pad
        else:
            pos = torch.arange(T).unsqueeze(0).expand(B, T)
            pos_pad = None
        x = F.embedding(ids, w["embeddings.word_embeddings.weight"], padding_idx=pad)
        x = x + F.embedding(pos, w["embeddings.position_embeddings.weight"], padding_idx=pos_pad)
        if mt not in ("distilbert", "mpnet"):
            x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = F.layer_norm(x, (H,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        dh = H // nh
        neg = (1.0 - mask[:, None, None, :].double()) * torch.finfo(torch.float64).min
        gelu = {"gelu": F.gelu, "relu": F.relu,
                "gelu_new": lambda v: F.gelu(v, approximate="tanh")}[act]

        def lin(v, name):
            return F.linear(v, w[name + ".weight"], w[name + ".bias"])

        def ln(v, name):
            return F.layer_norm(v, (H,), w[name + ".weight"], w[name + ".bias"], eps)

        bias = 0
        if mt == "mpnet":   # MPNetEncoder.compute_position_bias: one [nh, T, T] bias for every layer
            bias = F.embedding(mpnet_buckets(T), w["encoder.relative_attention_bias.weight"]).permute(2, 0, 1)

        def attention(v, q, k, vv, o):
            def split(t):
                return t.view(B, T, nh, dh).transpose(1, 2)
            Q, K, V = split(lin(v, q)), split(lin(v, k)), split(lin(v, vv))
            s = Q @ K.transpose(-1, -2) / math.sqrt(dh) + bias + neg
            ctx = (torch.softmax(s, -1) @ V).transpose(1, 2).reshape(B, T, H)
            return lin(ctx, o)

        for i in range(L):
            if mt == "distilbert":
                p = "transformer.layer.%d." % i
                a = attention(x, p + "attention.q_lin", p + "attention.k_lin", p + "attention.v_lin",
                              p + "attention.out_lin")
                x = ln(x + a, p + "sa_layer_norm")
                f = lin(gelu(lin(x, p + "ffn.lin1")), p + "ffn.lin2")
                x = ln(x + f, p + "output_layer_norm")
            elif mt == "mpnet":
                p = "encoder.layer.%d." % i
                a = attention(x, p + "attention.attn.q", p + "attention.attn.k", p + "attention.attn.v",
                              p + "attention.attn.o")
                x = ln(x + a, p + "attention.LayerNorm")
                f = lin(gelu(lin(x, p + "intermediate.dense")), p + "output.dense")
                x = ln(x + f, p + "output.LayerNorm")
            else:
                p = "encoder.layer.%d." % i
                a = attention(x, p + "attention.self.query", p + "attention.self.key", p + "attention.self.value",
                              p + "attention.output.dense")
                x = ln(x + a, p + "attention.output.LayerNorm")
                f = lin(gelu(lin(x, p + "intermediate.dense")), p + "output.dense")
                x = ln(x + f, p + "output.LayerNorm")
        return x

    # ---- Pooling.forward of sentence-transformers ----
    def pooling(self, tok, mask):
        p = self.pool
        outs = []
        m = mask.unsqueeze(-1).expand(tok.size()).to(tok.dtype)
        if p.get("pooling_mode_cls_token"):
            outs.append(tok[:, 0])
        if p.get("pooling_mode_max_tokens"):
            t = tok.clone()
            t[m == 0] = -1e9
            outs.append(torch.max(t, 1)[0])
        if p.get("pooling_mode_mean_tokens") or p.get("pooling_mode_mean_sqrt_len_tokens"):
            s = torch.sum(tok * m, 1)
            n = torch.clamp(m.sum(1), min=1e-9)
            if p.get("pooling_mode_mean_tokens"):
                outs.append(s / n)
            if p.get("pooling_mode_mean_sqrt_len_tokens"):
                outs.append(s / torch.sqrt(n))
        if p.get("pooling_mode_weightedmean_tokens"):
            wts = torch.arange(1, tok.shape[1] + 1, dtype=tok.dtype).unsqueeze(0).unsqueeze(-1).expand(tok.size())
            s = torch.sum(tok * m * wts, 1)
            n = torch.clamp(torch.sum(m * wts, 1), min=1e-9)
            outs.append(s / n)
        if p.get("pooling_mode_lasttoken"):
            bs, T, d = tok.shape
            values, idx = mask.flip(1).max(1)
            idx = torch.where(values == 0, T - 1, idx)
            gather = (T - idx - 1).unsqueeze(-1).repeat(1, d).unsqueeze(1)
            outs.append(torch.gather(tok * m, 1, gather).squeeze(1))
        return torch.cat(outs, 1)

    def embed(self, ids, lengths, prompt_lengths=None):
        """prompt_lengths [B] (training's prompt_length per row): with include_prompt false in the Pooling
        config, Pooling.forward zeroes attention_mask[:, :prompt_length] before pooling (the encoder still
        attends to the prompt)."""
        B, T = ids.shape
        mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).long()
        pool_mask = mask
        if prompt_lengths is not None and not self.pool.get("include_prompt", True):
            pool_mask = mask * (torch.arange(T).unsqueeze(0) >= prompt_lengths.unsqueeze(1)).long()
        x = self.pooling(self.encode(ids, mask), pool_mask)
        for h in self.heads:
            if h[0] == "dense":
                x = h[3](F.linear(x, h[1], h[2]))
            else:
                x = F.normalize(x, p=2, dim=1)
        return x


def run(cases_path):
    with open(cases_path) as f:
        cases = json.load(f)
    for case in cases:
        model = Model(case["model"])
        _, inp = read_safetensors(case["input"])
        ids = torch.tensor(inp["ids"].astype(np.int64))
        lengths = torch.tensor(inp["lengths"].astype(np.int64))
        d_emb = torch.tensor(inp["d_emb"].astype(np.float64))
        emb = model.embed(ids, lengths)
        (emb * d_emb).sum().backward()
        out = {"embeddings": emb.detach().numpy()}
        for (file, name), t in model.params.items():
            out["grad:%s:%s" % (file, name)] = (t.grad if t.grad is not None else torch.zeros_like(t)).numpy()
        write_safetensors(case["output"], out)


# ---- structure of written directories: the keys and files Python's sentence-transformers expects ----
POOL_KEYS = ["word_embedding_dimension", "pooling_mode_cls_token", "pooling_mode_mean_tokens",
             "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
             "pooling_mode_lasttoken", "include_prompt"]
ACTIVATIONS = {"torch.nn.modules.activation.Tanh", "torch.nn.modules.linear.Identity",
               "torch.nn.modules.activation.ReLU", "torch.nn.modules.activation.GELU",
               "torch.nn.modules.activation.Sigmoid"}


def check_safetensors(path, problems):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    if n % 8 or (8 + n) % 8:
        problems.append("%s: header length %d not 8-byte aligned" % (path, n))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    if header.get("__metadata__") != {"format": "pt"}:
        problems.append("%s: __metadata__ is not {'format': 'pt'}" % path)
    names = [k for k in header if k != "__metadata__"]
    spans = sorted((header[k]["data_offsets"][0], header[k]["data_offsets"][1], k) for k in names)
    pos = 0
    for b, e, k in spans:
        info = header[k]
        if b != pos:
            problems.append("%s: tensor %s starts at %d, expected %d (holes or overlap)" % (path, k, b, pos))
        if info["dtype"] != "F32" or e - b != 4 * int(np.prod(info["shape"], dtype=np.int64)):
            problems.append("%s: tensor %s has a bad dtype or size" % (path, k))
        pos = e
    if pos != len(data) - 8 - n:
        problems.append("%s: data section is %d bytes, tensors cover %d" % (path, len(data) - 8 - n, pos))
    return header


def check(root, problems):
    def load(rel):
        p = os.path.join(root, rel)
        if not os.path.exists(p):
            problems.append("%s: missing" % p)
            return None
        with open(p) as f:
            return json.load(f)
    modules = load("modules.json")
    if modules is None:
        return
    for i, mod in enumerate(modules):
        if sorted(mod) != ["idx", "name", "path", "type"] or mod["idx"] != i or mod["name"] != str(i):
            problems.append("modules.json: entry %d is %r" % (i, mod))
        if not mod["type"].startswith("sentence_transformers.models."):
            problems.append("modules.json: type %s" % mod["type"])
        want = "" if i == 0 else "%d_%s" % (i, mod["type"].split(".")[-1])
        if mod["path"] != want:
            problems.append("modules.json: path %r, expected %r" % (mod["path"], want))
    if modules[0]["type"] != "sentence_transformers.models.Transformer" or \
            modules[1]["type"] != "sentence_transformers.models.Pooling":
        problems.append("modules.json: Transformer then Pooling expected")
    stc = load("config_sentence_transformers.json")
    if stc is not None:
        if "sentence_transformers" not in stc.get("__version__", {}):
            problems.append("config_sentence_transformers.json: no __version__.sentence_transformers")
        if stc.get("similarity_fn_name") not in ("cosine", "dot", "euclidean", "manhattan"):
            problems.append("config_sentence_transformers.json: similarity_fn_name")
    sbc = load("sentence_bert_config.json")
    if sbc is not None and (not isinstance(sbc.get("max_seq_length"), int) or
                            not isinstance(sbc.get("do_lower_case"), bool)):
        problems.append("sentence_bert_config.json: %r" % sbc)
    cfg = load("config.json")
    if cfg is not None:
        arch = {"bert": "BertModel", "roberta": "RobertaModel", "distilbert": "DistilBertModel",
                "xlm-roberta": "XLMRobertaModel", "mpnet": "MPNetModel"}.get(cfg.get("model_type"))
        if cfg.get("architectures") != [arch]:
            problems.append("config.json: architectures %r for model_type %r" % (cfg.get("architectures"),
                                                                                 cfg.get("model_type")))
        header = check_safetensors(os.path.join(root, "model.safetensors"), problems)
        names = set(header) - {"__metadata__"}
        if cfg.get("model_type") == "distilbert":
            L, must = cfg.get("n_layers"), ["transformer.layer.%d.ffn.lin1.weight", "transformer.layer.%d.sa_layer_norm.bias"]
        elif cfg.get("model_type") == "mpnet":
            L, must = cfg.get("num_hidden_layers"), ["encoder.layer.%d.attention.attn.q.weight",
                                                     "encoder.layer.%d.attention.LayerNorm.weight"]
            for extra in ("pooler.dense.weight", "encoder.relative_attention_bias.weight"):
                if extra not in names:
                    problems.append("model.safetensors: %s missing" % extra)
        else:
            L, must = cfg.get("num_hidden_layers"), ["encoder.layer.%d.attention.self.query.weight",
                                                     "encoder.layer.%d.output.LayerNorm.weight"]
            for extra in ("pooler.dense.weight", "embeddings.token_type_embeddings.weight"):
                if extra not in names:
                    problems.append("model.safetensors: %s missing" % extra)
        for i in range(L):
            for pat in must:
                if pat % i not in names:
                    problems.append("model.safetensors: %s missing" % (pat % i))
        if any(k.startswith(("bert.", "roberta.", "distilbert.", "mpnet.")) for k in names):
            problems.append("model.safetensors: names carry a task-model prefix")
    if not any(os.path.exists(os.path.join(root, t)) for t in ("tokenizer.json", "vocab.txt", "vocab.json")):
        problems.append("%s: no tokenizer files" % root)
    for mod in modules[1:]:
        kind = mod["type"].split(".")[-1]
        sub = mod["path"]
        if kind == "Pooling":
            pc = load(os.path.join(sub, "config.json"))
            if pc is not None and list(pc) != POOL_KEYS:
                problems.append("%s/config.json: keys %r" % (sub, list(pc)))
        elif kind == "Dense":
            dc = load(os.path.join(sub, "config.json"))
            if dc is not None:
                if sorted(dc) != ["activation_function", "bias", "in_features", "out_features"] or \
                        dc["activation_function"] not in ACTIVATIONS:
                    problems.append("%s/config.json: %r" % (sub, dc))
                h = check_safetensors(os.path.join(root, sub, "model.safetensors"), problems)
                if h.get("linear.weight", {}).get("shape") != [dc["out_features"], dc["in_features"]]:
                    problems.append("%s/model.safetensors: linear.weight shape" % sub)
                if dc["bias"] != ("linear.bias" in h):
                    problems.append("%s/model.safetensors: linear.bias presence" % sub)
        elif kind == "Normalize":
            if not os.path.isdir(os.path.join(root, sub)):
                problems.append("%s: missing folder" % sub)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        run(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "check":
        problems = []
        for d in sys.argv[2:]:
            check(d, problems)
        for p in problems:
            print("problem:", p)
        sys.exit(1 if problems else 0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    main()
