#!/usr/bin/python3
"""train_ref.py: independent PyTorch computations that the training tests compare against.

  train_ref.py adamw IN OUT N STEPS SCHED WARMUP TOTAL LR WD MAXNORM TENSORS
      IN: float32 params0[N] then grads[STEPS][N]; TENSORS: "offset:count:no_decay:skip,..." (skip = grad None).
      Runs torch.optim.AdamW over two groups (decay / no decay) with LambdaLR, clip_grad_norm_ and
      optimizer.step() before scheduler.step(), as sentence-transformers' fit() does.
      OUT: float64 lr[STEPS], float64 grad_norm[STEPS], float32 params[STEPS][N] (after each step).
  train_ref.py adamw-hf ... (same arguments): transformers.AdamW (correct_bias=True, eps 1e-6) written out
      from its published update rule, since the transformers package is not installed here.
"""
import math
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


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    mode = sys.argv[1]
    torch.set_num_threads(1)
    if mode == "adamw":
        adamw(sys.argv[2:], False)
    elif mode == "adamw-hf":
        adamw(sys.argv[2:], True)
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
