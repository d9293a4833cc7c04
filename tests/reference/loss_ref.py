#!/usr/bin/python3
"""loss_ref.py: the losses of sentence-transformers written in PyTorch (autograd gives dL/dE), the oracle for
st-loss. Each function follows the reference library's formulas (sentence-transformers.md §1) with the
mathematically intended choices st-loss documents (docs/losses.md): true distances for TripletLoss (not the
v5 negated ones), MegaBatchMarginLoss back-propagating every mini-batch, 0 for BatchSemiHard without positive
pairs. Inputs: E float64 [C][B][D] (requires_grad), labels float64 [B] or [B][K] or None, opts dict.
Written independently of lib/loss.c: it mirrors the library's code paths, not ours."""
import math
import torch
import torch.nn.functional as F


def cos_sim(a, b):  # util.cos_sim
    return F.normalize(a, p=2, dim=1, eps=1e-12) @ F.normalize(b, p=2, dim=1, eps=1e-12).T


def pairwise_cos_sim(a, b):  # util.pairwise_cos_sim
    return (F.normalize(a, p=2, dim=1, eps=1e-12) * F.normalize(b, p=2, dim=1, eps=1e-12)).sum(-1)


def torch_cosine(a, b):  # F.cosine_similarity, eps 1e-8 on each norm
    na = a.norm(dim=-1).clamp_min(1e-8)
    nb = b.norm(dim=-1).clamp_min(1e-8)
    return (a * b).sum(-1) / (na * nb)


def pairwise_angle_sim(x, y):
    a, b = torch.chunk(x, 2, dim=1)
    c, d = torch.chunk(y, 2, dim=1)
    z = torch.sum(c ** 2 + d ** 2, dim=1, keepdim=True)
    re = (a * c + b * d) / z
    im = (b * c - a * d) / z
    dz = torch.sum(a ** 2 + b ** 2, dim=1, keepdim=True) ** 0.5
    dw = torch.sum(c ** 2 + d ** 2, dim=1, keepdim=True) ** 0.5
    re = re / (dz / dw)
    im = im / (dz / dw)
    return torch.abs(torch.sum(torch.cat((re, im), dim=1), dim=1))


def siamese_distance(name, x, y):  # TripletDistanceMetric / SiameseDistanceMetric, v<=4 semantics
    if name == "euclidean":
        return F.pairwise_distance(x, y, p=2)
    if name == "manhattan":
        return F.pairwise_distance(x, y, p=1)
    return 1 - torch_cosine(x, y)


def triplet(E, y, o):
    a, p, n = E[0], E[1], E[2]
    d = o.get("distance", "euclidean")
    return F.relu(siamese_distance(d, a, p) - siamese_distance(d, a, n) + o.get("margin", 5.0)).mean()


def _sim_matrix(o, a, c):
    return cos_sim(a, c) if o.get("similarity", "cosine") == "cosine" else a @ c.T


def mnrl(E, y, o):
    a = E[0]
    cand = torch.cat([E[c] for c in range(1, E.shape[0])], 0)
    s = _sim_matrix(o, a, cand) * o.get("scale", 20.0)
    return F.cross_entropy(s, torch.arange(a.shape[0]))


def mnrl_symmetric(E, y, o):
    a = E[0]
    B = a.shape[0]
    cand = torch.cat([E[c] for c in range(1, E.shape[0])], 0)
    s = _sim_matrix(o, a, cand) * o.get("scale", 20.0)
    t = torch.arange(B)
    return (F.cross_entropy(s, t) + F.cross_entropy(s[:, :B].T, t)) / 2


def megabatch_margin(E, y, o):
    a, p = E[0], E[1]
    B = a.shape[0]
    m = o.get("mini_batch_size", 50)
    if m <= 0 or m >= B:
        m = B
    losses = []
    for s in range(0, B, m):
        e = min(s + m, B)
        with torch.no_grad():
            sc = cos_sim(a[s:e], p)
            sc[torch.arange(e - s), torch.arange(s, e)] -= 2
            neg = sc.argmax(dim=1)
        pos_c = torch_cosine(a[s:e], p[s:e])
        neg_c = torch_cosine(a[s:e], p[neg])
        neg_c = torch.where(neg == torch.arange(s, e), neg_c - 2, neg_c)   # B = 1: the row itself, cos - 2
        losses.append((F.relu(o.get("positive_margin", 0.8) - pos_c)
                       + F.relu(neg_c - o.get("negative_margin", 0.3))).mean())
    return torch.stack(losses).mean()


def contrastive(E, y, o):
    d = siamese_distance(o.get("distance", "cosine"), E[0], E[1])
    m = o.get("margin", 0.5)
    l = 0.5 * (y * d.pow(2) + (1 - y) * F.relu(m - d).pow(2))
    return l.mean() if o.get("size_average", True) else l.sum()


def online_contrastive(E, y, o):
    d = siamese_distance(o.get("distance", "cosine"), E[0], E[1])
    neg = d[y == 0]
    pos = d[y == 1]
    neg_h = neg[neg < (pos.max() if len(pos) > 1 else neg.mean())]
    pos_h = pos[pos > (neg.min() if len(neg) > 1 else pos.mean())]
    return pos_h.pow(2).sum() + F.relu(o.get("margin", 0.5) - neg_h).pow(2).sum()


def softmax_features(E, o):
    u, v = E[0], E[1]
    feats = []
    if o.get("cat_rep", True):
        feats += [u, v]
    if o.get("cat_diff", True):
        feats.append(torch.abs(u - v))
    if o.get("cat_mul", False):
        feats.append(u * v)
    return torch.cat(feats, 1)


def softmax(E, y, o):
    logits = softmax_features(E, o) @ o["W"].T + o["b"]
    return F.cross_entropy(logits, y.long())


def cosine_similarity(E, y, o):
    return ((torch_cosine(E[0], E[1]) - y) ** 2).mean()


def _cosent(s, y):
    s = s[:, None] - s[None, :]
    mask = (y[:, None] < y[None, :]).to(s.dtype)
    s = s - (1 - mask) * 1e12
    s = torch.cat((torch.zeros(1, dtype=s.dtype), s.view(-1)), 0)
    return torch.logsumexp(s, 0)


def cosent(E, y, o):
    return _cosent(pairwise_cos_sim(E[0], E[1]) * o.get("scale", 20.0), y)


def angle(E, y, o):
    return _cosent(pairwise_angle_sim(E[0], E[1]) * o.get("scale", 20.0), y)


def batch_distances(E, o):
    if o.get("distance", "euclidean") == "cosine":
        return 1 - cos_sim(E, E)
    # squared distances from differences (exact for duplicates), then the library's clamp and zero mask
    d2 = ((E[:, None, :] - E[None, :, :]) ** 2).sum(-1)
    d2 = d2.clamp_min(0)
    mask = d2.eq(0).to(E.dtype)
    return (1.0 - mask) * torch.sqrt(d2 + mask * 1e-16)


def _hardest(E, y, o):
    D = batch_distances(E, o)
    B = len(y)
    eye = torch.eye(B, dtype=torch.bool)
    same = y[:, None] == y[None, :]
    ap = (same & ~eye).to(D.dtype)
    an = (~same).to(D.dtype)
    hp, _ = (ap * D).max(1, keepdim=True)
    mx, _ = D.max(1, keepdim=True)
    hn, _ = (D + mx * (1.0 - an)).min(1, keepdim=True)
    return hp, hn


def batch_hard_triplet(E, y, o):
    hp, hn = _hardest(E[0], y, o)
    return F.relu(hp - hn + o.get("margin", 5.0)).mean()


def batch_hard_soft_margin_triplet(E, y, o):
    hp, hn = _hardest(E[0], y, o)
    return F.softplus(hp - hn).mean()   # log(1 + exp(x)), without overflow


def batch_all_triplet(E, y, o):
    D = batch_distances(E[0], o)
    B = len(y)
    l = D[:, :, None] - D[:, None, :] + o.get("margin", 5.0)
    idx = torch.arange(B)
    distinct = (idx[:, None, None] != idx[None, :, None]) & (idx[:, None, None] != idx[None, None, :]) \
        & (idx[None, :, None] != idx[None, None, :])
    valid = (y[:, None, None] == y[None, :, None]) & (y[:, None, None] != y[None, None, :])
    l = (distinct & valid).to(D.dtype) * l
    l = torch.where(l < 0, torch.zeros_like(l), l)
    n = (l > 1e-16).sum().item()
    return l.sum() / (n + 1e-16)


def _masked_min(data, mask):
    mx, _ = data.max(1, keepdim=True)
    m, _ = ((data - mx) * mask).min(1, keepdim=True)
    return m + mx


def _masked_max(data, mask):
    mn, _ = data.min(1, keepdim=True)
    m, _ = ((data - mn) * mask).max(1, keepdim=True)
    return m + mn


def batch_semi_hard_triplet(E, y, o):
    D = batch_distances(E[0], o)
    B = len(y)
    adj = y[:, None] == y[None, :]
    adj_not = ~adj
    tile = D.repeat([B, 1])
    mask = adj_not.repeat([B, 1]) & (tile > D.t().reshape(-1, 1))
    mask_final = (mask.sum(1, keepdim=True) > 0).reshape(B, B).t()
    outside = _masked_min(tile, mask.to(D.dtype)).reshape(B, B).t()
    inside = _masked_max(D, adj_not.to(D.dtype)).repeat([1, B])
    semi = torch.where(mask_final, outside, inside)
    mpos = adj.to(D.dtype) - torch.eye(B, dtype=D.dtype)
    npos = mpos.sum()
    if npos.item() == 0:
        return (D * 0).sum()   # no positive pair: 0 (the library returns 0/0)
    lm = (D - semi + o.get("margin", 5.0)) * mpos
    return F.relu(lm).sum() / npos


def mse(E, y, o):
    return ((E - y[None]) ** 2).mean()


def margin_mse(E, y, o):
    q, p = E[0], E[1]
    if o.get("similarity", "dot") == "dot":
        sim = lambda x, z: (x * z).sum(-1)
    else:
        sim = pairwise_cos_sim
    pred = torch.stack([sim(q, p) - sim(q, E[c]) for c in range(2, E.shape[0])], 1)
    k = E.shape[0] - 2
    t = y if y.dim() == 2 else y[:, None]
    if t.shape[1] == k + 1:
        t = t[:, :1] - t[:, 1:]
    return ((pred - t) ** 2).mean()


LOSSES = {
    "triplet": triplet, "mnrl": mnrl, "mnrl-symmetric": mnrl_symmetric, "megabatch-margin": megabatch_margin,
    "contrastive": contrastive, "online-contrastive": online_contrastive, "softmax": softmax,
    "cosine-similarity": cosine_similarity, "cosent": cosent, "angle": angle,
    "batch-hard-triplet": batch_hard_triplet, "batch-hard-soft-margin-triplet": batch_hard_soft_margin_triplet,
    "batch-semi-hard-triplet": batch_semi_hard_triplet, "batch-all-triplet": batch_all_triplet,
    "mse": mse, "margin-mse": margin_mse,
}


def matryoshka(E, y, o):
    inner = LOSSES[o["inner"]]
    D = E.shape[2]
    total = 0
    for k, w in sorted(zip(o["dims"], o.get("weights", [1.0] * len(o["dims"]))), key=lambda t: -t[0]):
        Ek = F.normalize(E[:, :, :k], p=2, dim=-1, eps=1e-12)
        yk = y[:, :k] if (y is not None and y.dim() == 2 and y.shape[1] == D) else y
        total = total + w * inner(Ek, yk, o.get("inner_opts", {}))
    return total


LOSSES["matryoshka"] = matryoshka


def loss_and_grad(name, E, labels, opts):
    """E: float32 array-like [C][B][D]; returns (loss, grad) in float64."""
    E = torch.as_tensor(E, dtype=torch.float64).clone().requires_grad_(True)
    y = None if labels is None else torch.as_tensor(labels, dtype=torch.float64)
    L = LOSSES[name](E, y, opts)
    L.backward()
    return L.item(), E.grad.detach()
