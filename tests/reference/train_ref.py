#!/usr/bin/python3
"""train_ref.py: independent PyTorch computations that the training tests compare against.

  train_ref.py adamw IN OUT N STEPS SCHED WARMUP TOTAL LR WD MAXNORM TENSORS
      IN: float32 params0[N] then grads[STEPS][N]; TENSORS: "offset:count:no_decay:skip,..." (skip = grad None).
      Runs torch.optim.AdamW over two groups (decay / no decay) with LambdaLR, clip_grad_norm_ and
      optimizer.step() before scheduler.step(), as sentence-transformers' fit() does.
      OUT: float64 lr[STEPS], float64 grad_norm[STEPS], float32 params[STEPS][N] (after each step).
  train_ref.py adamw-hf ... (same arguments): transformers.AdamW (correct_bias=True, eps 1e-6) written out
      from its published update rule, since the transformers package is not installed here.
  train_ref.py train MODEL --objective LOSS BATCHES.jsonl [--loss-options JSON] [--objective ...] [--lr X]
               [--scheduler NAME] [--warmup-steps N] [--steps T] [--weight-decay X] [--max-grad-norm X]
               [--eps X] [--log ST-STEP-LOG.jsonl] [--weights MODEL.safetensors] [--tol X] [--out F] [--threads N]
      A whole fit() in PyTorch, float64: the model directory MODEL (model_ref.py's BERT + Pooling), each
      objective's batches (st-batch --json records, in order) and loss (loss_ref.py, default options),
      backward, clip_grad_norm_, torch.optim.AdamW (decay on all names without "bias"/"LayerNorm.weight") +
      LambdaLR, optimizer.step() before scheduler.step(), one optimizer and schedule per objective, round
      robin, stopping with the shortest input. Compares every update's loss, lr and grad_norm with st-step's
      JSON log, and the final weights with a model.safetensors (max-norm relative per tensor); prints
      "RC<TAB>description" lines, RC 0 for a pass. --out writes torch's final weights.
      Batches with "prompt_lengths" (st-tokenize --prompt) mask those positions out of pooling when the model's
      Pooling config says include_prompt false, as Pooling.forward does; --pool-prompt 1 ignores them (a
      negative control: the prompt pooled).
      --world N: DistributedDataParallel with N ranks; each BATCHES path holds "%d", replaced by the rank (st-batch
      --rank R --world N --json of each rank); a step's loss is the mean of the ranks' losses over their own
      batches, so its gradient is the mean of theirs, as DDP's allreduce makes it.
      --gather 1 (with --world N): in-batch negatives across ranks (st-gather, the library's
      gather_across_devices=True): a step's loss is ONE loss over the global batch, the ranks' rows concatenated
      in rank order (each column, then the labels), embedded by the same model.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch


# The LambdaLR multipliers of transformers' get_*_schedule_with_warmup, as sentence-transformers'
# _get_scheduler builds them (num_cycles 0.5 for warmupcosine, 1 for the hard restarts one).
def sched_lambda(name, W, T):
    name = name.lower()
    if name == "constantlr":
        return lambda s: 1.0
    if name == "warmupconstant":
        return lambda s: float(s) / float(max(1.0, W)) if s < W else 1.0
    if name == "warmuplinear":
        return lambda s: (float(s) / float(max(1, W)) if s < W
                          else max(0.0, float(T - s) / float(max(1, T - W))))
    if name == "warmupcosine":
        def f(s, cycles=0.5):
            if s < W:
                return float(s) / float(max(1, W))
            p = float(s - W) / float(max(1, T - W))
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * p)))
        return f
    if name == "warmupcosinewithhardrestarts":
        def g(s, cycles=1):
            if s < W:
                return float(s) / float(max(1, W))
            p = float(s - W) / float(max(1, T - W))
            if p >= 1.0:
                return 0.0
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(cycles) * p) % 1.0))))
        return g
    raise SystemExit("unknown scheduler " + name)


class HFAdamW(torch.optim.Optimizer):
    """transformers.AdamW's update (transformers <= 4.x optimization.py), correct_bias=True."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, correct_bias=True):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      correct_bias=correct_bias))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                b1, b2 = group["betas"]
                st["step"] += 1
                st["exp_avg"].mul_(b1).add_(p.grad, alpha=1.0 - b1)
                st["exp_avg_sq"].mul_(b2).addcmul_(p.grad, p.grad, value=1.0 - b2)
                denom = st["exp_avg_sq"].sqrt().add_(group["eps"])
                step_size = group["lr"]
                if group["correct_bias"]:
                    step_size = step_size * math.sqrt(1.0 - b2 ** st["step"]) / (1.0 - b1 ** st["step"])
                p.addcdiv_(st["exp_avg"], denom, value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])


def adamw(argv, hf):
    fin, fout, n, steps, sched, W, T, lr, wd, maxnorm, spec = argv
    n, steps, W, T = int(n), int(steps), int(W), int(T)
    lr, wd, maxnorm = float(lr), float(wd), float(maxnorm)
    raw = np.fromfile(fin, dtype=np.float32)
    assert raw.size == n * (steps + 1), (raw.size, n, steps)
    p0, grads = raw[:n], raw[n:].reshape(steps, n)
    tensors = []
    for item in spec.split(","):
        off, cnt, nd, skip = (int(x) for x in item.split(":"))
        tensors.append((off, cnt, nd, skip, torch.nn.Parameter(torch.from_numpy(p0[off:off + cnt].copy()))))
    decay = [t[4] for t in tensors if not t[2]]
    nodecay = [t[4] for t in tensors if t[2]]
    groups = [{"params": decay, "weight_decay": wd}, {"params": nodecay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    opt = HFAdamW(groups, lr=lr) if hf else torch.optim.AdamW(groups, lr=lr)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, sched_lambda(sched, W, T))
    lrs, norms, out = [], [], []
    for s in range(steps):
        for off, cnt, nd, skip, p in tensors:
            p.grad = None if skip else torch.from_numpy(grads[s, off:off + cnt].copy())
        with_grad = [t[4] for t in tensors if not t[3]]
        norms.append(float(torch.nn.utils.clip_grad_norm_(with_grad, maxnorm)))
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        opt.zero_grad()
        sch.step()
        flat = np.zeros(n, dtype=np.float32)
        for off, cnt, nd, skip, p in tensors:
            flat[off:off + cnt] = p.detach().numpy()
        out.append(flat)
    with open(fout, "wb") as f:
        f.write(np.array(lrs, dtype=np.float64).tobytes())
        f.write(np.array(norms, dtype=np.float64).tobytes())
        f.write(np.stack(out).astype(np.float32).tobytes())

def read_safetensors(path):
    """The tensors of a safetensors file as numpy arrays (8-byte header length, JSON header, raw data)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    kinds = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + e], dtype=kinds[info["dtype"]]).reshape(info["shape"])
    return out


def read_batches(path):
    with open(path) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    return [r for r in recs if r.get("kind") == "batch"]


def prompt_lengths(b, o):
    """The batch's prompt_lengths [C][B], or None (absent, or --pool-prompt 1)."""
    if "prompt_lengths" not in b or int(o.get("pool-prompt", 0)):
        return None
    return torch.tensor(b["prompt_lengths"], dtype=torch.long)


def embed(argv):
    """embed MODEL BATCHES.jsonl FORWARDED.jsonl [--tol X] [--pool-prompt 1]: torch's embeddings of every batch
    of BATCHES (model_ref.py's model, float64) against the "embeddings" st-forward added to the same batches in
    FORWARDED; prints "RC<TAB>description" lines."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    from model_ref import Model
    o = {"tol": 1e-5, "pool-prompt": 0}
    for i in range(3, len(argv), 2):
        o[argv[i][2:]] = argv[i + 1]
    torch.set_default_dtype(torch.float64)
    model = Model(argv[0])
    want_b, got_b = read_batches(argv[1]), read_batches(argv[2])
    worst, n = 0.0, 0
    with torch.no_grad():
        for b, g in zip(want_b, got_b):
            ids = torch.tensor(b["input_ids"], dtype=torch.long)
            lengths = torch.tensor(b["lengths"], dtype=torch.long)
            P = prompt_lengths(b, o)
            E = torch.stack([model.embed(ids[c], lengths[c], None if P is None else P[c])
                             for c in range(ids.shape[0])]).numpy()
            G = np.array(g["embeddings"], dtype=np.float64)
            worst = max(worst, float(np.abs(G - E).max() / np.abs(E).max()))
            n += 1
    tol = float(o["tol"])
    print("%d\t%d batches: st-forward's embeddings equal torch's within %g max-norm relative (worst %.2e)%s"
          % (worst > tol or n != len(want_b) or n == 0, n, tol, worst,
             " (torch pools the prompt)" if int(o["pool-prompt"]) else ""))


def train(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import loss_ref
    from model_ref import Model, write_safetensors
    if not argv:
        raise SystemExit(__doc__)
    model_dir, objectives = argv[0], []
    o = {"lr": 2e-5, "scheduler": "warmuplinear", "warmup-steps": 0, "steps": 0, "weight-decay": 0.01,
         "max-grad-norm": 1.0, "eps": 1e-8, "log": None, "weights": None, "tol": 1e-4, "out": None,
         "threads": 1, "world": 1, "pool-prompt": 0, "gather": 0}
    i = 1
    while i < len(argv):
        key = argv[i][2:]
        if key == "objective":
            objectives.append((argv[i + 1], argv[i + 2], {}))
            i += 3
            continue
        if key == "loss-options":   # JSON options of the last objective's loss, as loss_ref.py names them
            objectives[-1][2].update(json.loads(argv[i + 1]))
            i += 2
            continue
        if key not in o or i + 1 >= len(argv):
            raise SystemExit("train_ref.py train: bad option " + argv[i])
        o[key] = argv[i + 1]
        i += 2
    torch.set_num_threads(int(o["threads"]))
    world = int(o["world"])
    # per objective: batches[step] is the list of the ranks' batches of that step
    objectives = [(name, list(zip(*[read_batches(path % r if world > 1 else path) for r in range(world)])), opts)
                  for name, path, opts in objectives]
    lr, wd, maxnorm, eps = (float(o[k]) for k in ("lr", "weight-decay", "max-grad-norm", "eps"))
    W = int(o["warmup-steps"])
    steps = min(len(b) for _, b, _ in objectives)   # fit stops with the shortest loader
    T = int(o["steps"]) or min(int(b[0][0]["steps"]) for _, b, _ in objectives)

    torch.set_default_dtype(torch.float64)
    model = Model(model_dir)   # float64 leaves; the unused pooler is not among them (grad None in fit)
    named = [(name, t) for (file, name), t in model.params.items()]
    decay = [t for name, t in named if not ("bias" in name or "LayerNorm.weight" in name)]
    nodecay = [t for name, t in named if "bias" in name or "LayerNorm.weight" in name]
    opts, scheds = [], []
    for _ in objectives:   # fit(): one optimizer and one scheduler per objective over the shared weights
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                                 {"params": nodecay, "weight_decay": 0.0}], lr=lr, eps=eps)
        opts.append(opt)
        scheds.append(torch.optim.lr_scheduler.LambdaLR(opt, sched_lambda(o["scheduler"], W, T)))

    log = []   # (step, objective, loss, lr, grad_norm)
    gmax = {}  # name -> largest |gradient| over the run
    lr_used = []
    for s in range(steps):
        for k, (loss_name, batches, loss_opts) in enumerate(objectives):
            losses, Es, Ls = [], [], []
            for b in batches[s]:   # one batch per rank
                ids = torch.tensor(b["input_ids"], dtype=torch.long)      # [C][B][T]
                lengths = torch.tensor(b["lengths"], dtype=torch.long)    # [C][B]
                P = prompt_lengths(b, o)
                E = torch.stack([model.embed(ids[c], lengths[c], None if P is None else P[c])
                                 for c in range(ids.shape[0])])
                labels = torch.tensor(b["labels"]) if "labels" in b else None
                Es.append(E)
                Ls.append(labels)
                losses.append(loss_ref.LOSSES[loss_name](E, labels, loss_opts))
            if int(o["gather"]):   # one loss over the global batch: rows of rank 0, then rank 1, ...
                labels = torch.cat(Ls) if Ls[0] is not None else None
                loss = loss_ref.LOSSES[loss_name](torch.cat(Es, dim=1), labels, loss_opts)
            else:
                loss = sum(losses) / len(losses)
            for t in model.params.values():
                t.grad = None
            loss.backward()
            for name, t in named:
                gmax[name] = max(gmax.get(name, 0.0), float(t.grad.abs().max()))
            norm = float(torch.nn.utils.clip_grad_norm_(list(model.params.values()), maxnorm))
            log.append((s, k, float(loss), opts[k].param_groups[0]["lr"], norm))
            lr_used.append(opts[k].param_groups[0]["lr"])
            opts[k].step()
            scheds[k].step()

    final = {name: t.detach().numpy() for name, t in named}
    if o["out"]:
        write_safetensors(o["out"], final)
    tol = float(o["tol"])
    if o["log"]:
        with open(o["log"]) as f:
            got = [r for r in (json.loads(line) for line in f if line.strip()) if r.get("kind") == "log"]
        print("%d\tst-step logged %d updates (torch: %d)" % (len(got) != len(log), len(got), len(log)))
        worst, where, order_ok = {"loss": 0.0, "lr": 0.0, "grad_norm": 0.0}, {}, True
        for r, (s, k, L, rate, norm) in zip(got, log):
            order_ok &= r["step"] == s and r.get("objective", 0) == k
            for key, want in (("loss", L), ("lr", rate), ("grad_norm", norm)):
                d = abs(r[key] - want) / abs(want) if want else abs(r[key])
                if d > worst[key]:
                    worst[key], where[key] = d, "%d/%d" % (s, k)
        print("%d\tlog records in step, objective order" % (not order_ok))
        for key in ("loss", "lr", "grad_norm"):
            print("%d\tevery update's %s equals torch's within %g relative (worst %.2e at step/objective %s)"
                  % (worst[key] > tol, key, tol, worst[key], where.get(key, "-")))
        for k, (loss_name, _, _) in enumerate(objectives):
            first = [L for s, kk, L, _, _ in log if kk == k][:3]
            last = [L for s, kk, L, _, _ in log if kk == k][-3:]
            a, z = sum(first) / len(first), sum(last) / len(last)
            print("%d\t%s: the loss went down (torch, mean of first/last 3 steps: %.6f -> %.6f)"
                  % (not z < a, loss_name, a, z))
    if o["weights"]:
        got = read_safetensors(o["weights"])
        init = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        # Tensors whose gradient is zero in exact arithmetic (the attention key bias: it adds a constant to a
        # row of scores, which the softmax ignores; with Euclidean triplet, the last LayerNorm bias: it shifts
        # every embedding alike) get only rounding noise, which Adam, dividing by sqrt(v) + eps, turns into
        # steps: float32 noise moves them, float64 noise hardly (torch in float32 drifts as st does). Their
        # values change no output, so they are only checked to move less than Adam's largest step allows.
        # torch's float64 gradient names them: below 1e-9 of the largest.
        top = max(gmax.values())
        zero = {name for name, g in gmax.items() if g < 1e-9 * top}
        bound = 3.2 * sum(lr_used)   # |m_hat| / (sqrt(v_hat) + eps) <= (1 - b1) / sqrt(1 - b2) ~ 3.16 per step
        bad, worst, worst_name, moved, drift = [], 0.0, "", [], []
        for name, want in final.items():
            if name not in got:
                bad.append(name + " missing")
                continue
            g = got[name].astype(np.float64)
            if name in zero:
                drift.append((np.abs(g - init[name]).max(), name))
                continue
            rel = np.abs(g - want).max() / np.abs(want).max()
            if rel > worst:
                worst, worst_name = rel, name
            if rel > tol:
                bad.append("%s (%.2e)" % (name, rel))
            moved.append(np.abs(want - init[name]).max() / np.abs(want).max())
        print("%d\tall %d trained tensors with a gradient equal torch's within %g max-norm relative "
              "(worst %.2e in %s)%s" % (bool(bad), len(final) - len(zero), tol, worst, worst_name,
                                          "; bad: " + ", ".join(bad) if bad else ""))
        if drift:
            d, dn = max(drift)
            print("%d\tthe %d tensors with zero gradient (%s) move by rounding noise only: at most %.2e "
                  "(%s), Adam's bound %.2e" % (d > bound, len(drift), ", ".join(sorted(n for _, n in drift)),
                                               d, dn, bound))
        med = float(np.median(moved))
        print("%d\tthe weights moved (median per-tensor max-norm relative change %.2e)" % (med < 1e-2, med))
        if "pooler.dense.weight" in got:
            same = np.array_equal(got["pooler.dense.weight"], init["pooler.dense.weight"])
            print("%d\tthe unused pooler is left alone (fit: grad None, no decay)" % (not same))


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    mode = sys.argv[1]
    torch.set_num_threads(1)
    if mode == "adamw":
        adamw(sys.argv[2:], False)
    elif mode == "adamw-hf":
        adamw(sys.argv[2:], True)
    elif mode == "train":
        train(sys.argv[2:])
    elif mode == "embed":
        embed(sys.argv[2:])
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
