"""Files for tests/torchbin.t, written by Debian's torch (torch.save), and the oracle that checks st's reading.

  variants SRC OUT ARCH   SRC: a model folder st-init wrote (model.safetensors, F32); OUT/NAME/: copies of SRC
                          whose weights are the same tensors in another file form (see VARIANTS below).
  states OUT              OUT/NAME.bin: random BERT/RoBERTa/MPNet-named state dicts in several dtypes/forms.
  check DUMP PATH ...     DUMP: `build/t/torchbin.t --dump PATH` output; PATH: a .bin file or a model folder.
                          Every tensor torch reads (torch.load, or the safetensors bytes parsed here) must be in
                          DUMP with the same dtype, shape and float32 values, bit for bit: one ok/not ok line
                          per pair.
  hostile SRC OUT MARKER  OUT/NAME/: copies of SRC with a hostile pytorch_model.bin (or index); the pickles
                          written here would create MARKER if anything executed them. Nothing here loads them.
"""
import collections
import io
import json
import os
import shutil
import struct
import sys
import zipfile

import torch

ST_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
             "I64": torch.int64, "I32": torch.int32}
ST_NAMES = {v: k for k, v in ST_DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = collections.OrderedDict()
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = bytearray(body[b:end])
        t = torch.frombuffer(raw, dtype=ST_DTYPES[e["dtype"]]) if raw else torch.zeros(0, dtype=ST_DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out


def write_safetensors(path, tensors):
    header, blobs, pos = {}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [pos, pos + len(raw)]}
        blobs.append(raw)
        pos += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def copy_without_weights(src, dst):
    shutil.copytree(src, dst)
    os.remove(os.path.join(dst, "model.safetensors"))


def shard(sd, n):
    names = list(sd)
    k = (len(names) + n - 1) // n
    return [collections.OrderedDict((m, sd[m]) for m in names[i:i + k]) for i in range(0, len(names), k)]


def variants(src, out, arch):
    sd = read_safetensors(os.path.join(src, "model.safetensors"))
    os.makedirs(out, exist_ok=True)

    def make(name, save):
        d = os.path.join(out, name)
        copy_without_weights(src, d)
        save(d)

    make("bin", lambda d: torch.save(sd, os.path.join(d, "pytorch_model.bin")))
    make("legacy", lambda d: torch.save(sd, os.path.join(d, "pytorch_model.bin"),
                                        _use_new_zipfile_serialization=False))

    # the task model's prefix, an int64 buffer and a head tensor the loader must ignore
    pre = collections.OrderedDict((arch + "." + k, v) for k, v in sd.items())
    pre[arch + ".embeddings.position_ids"] = torch.arange(10).unsqueeze(0)
    pre["cls.predictions.bias" if arch == "bert" else "lm_head.bias"] = torch.randn(7)
    make("prefixed", lambda d: torch.save(pre, os.path.join(d, "pytorch_model.bin")))

    # views: 2-D tensors stored transposed (strides (1, rows)), 1-D tensors at an offset in a larger storage
    def strided(t):
        if t.dim() == 2:
            return t.t().contiguous().t()
        if t.dim() == 1:
            big = torch.randn(t.numel() + 5)
            big[3:3 + t.numel()] = t
            return big[3:3 + t.numel()]
        return t
    sv = collections.OrderedDict((k, strided(v)) for k, v in sd.items())
    assert any(not v.is_contiguous() for v in sv.values())
    make("strided", lambda d: torch.save(sv, os.path.join(d, "pytorch_model.bin")))

    # nn.Parameter values (torch._utils._rebuild_parameter)
    params = collections.OrderedDict((k, torch.nn.Parameter(v.clone())) for k, v in sd.items())
    make("param", lambda d: torch.save(params, os.path.join(d, "pytorch_model.bin")))

    # shards: safetensors and bin, each with its index
    def sharded(d, ext):
        parts = shard(sd, 3)
        wmap = {}
        for i, part in enumerate(parts):
            fname = ("model-%05d-of-%05d.safetensors" if ext == "st" else "pytorch_model-%05d-of-%05d.bin") % (
                i + 1, len(parts))
            if ext == "st":
                write_safetensors(os.path.join(d, fname), part)
            else:
                torch.save(part, os.path.join(d, fname))
            wmap.update({k: fname for k in part})
        index = "model.safetensors.index.json" if ext == "st" else "pytorch_model.bin.index.json"
        with open(os.path.join(d, index), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": wmap}, f)
    make("shard-st", lambda d: sharded(d, "st"))
    make("shard-bin", lambda d: sharded(d, "bin"))

    # reduced precision, the same values in both file forms
    for dt, tag in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
        low = collections.OrderedDict((k, v.to(dt)) for k, v in sd.items())
        make(tag + "-bin", lambda d: torch.save(low, os.path.join(d, "pytorch_model.bin")))
        make(tag + "-st", lambda d: write_safetensors(os.path.join(d, "model.safetensors"), low))


def mpnet_state(h=16, layers=2, inter=32, vocab=30, pos=20):
    sd = collections.OrderedDict()
    sd["embeddings.word_embeddings.weight"] = torch.randn(vocab, h)
    sd["embeddings.position_embeddings.weight"] = torch.randn(pos, h)
    sd["embeddings.LayerNorm.weight"] = torch.randn(h)
    sd["embeddings.LayerNorm.bias"] = torch.randn(h)
    sd["embeddings.position_ids"] = torch.arange(pos).unsqueeze(0)
    for i in range(layers):
        p = "encoder.layer.%d." % i
        for m in ("q", "k", "v", "o"):
            sd[p + "attention.attn.%s.weight" % m] = torch.randn(h, h)
            sd[p + "attention.attn.%s.bias" % m] = torch.randn(h)
        sd[p + "attention.LayerNorm.weight"] = torch.randn(h)
        sd[p + "attention.LayerNorm.bias"] = torch.randn(h)
        sd[p + "intermediate.dense.weight"] = torch.randn(inter, h)
        sd[p + "intermediate.dense.bias"] = torch.randn(inter)
        sd[p + "output.dense.weight"] = torch.randn(h, inter)
        sd[p + "output.dense.bias"] = torch.randn(h)
        sd[p + "output.LayerNorm.weight"] = torch.randn(h)
        sd[p + "output.LayerNorm.bias"] = torch.randn(h)
    sd["encoder.relative_attention_bias.weight"] = torch.randn(32, 4)
    sd["pooler.dense.weight"] = torch.randn(h, h)
    sd["pooler.dense.bias"] = torch.randn(h)
    return sd


def bert_state(prefix, h=8, vocab=12):
    sd = collections.OrderedDict()
    sd[prefix + "embeddings.word_embeddings.weight"] = torch.randn(vocab, h)
    sd[prefix + "embeddings.token_type_embeddings.weight"] = torch.randn(2, h)
    sd[prefix + "encoder.layer.0.attention.self.query.weight"] = torch.randn(h, h)
    sd[prefix + "encoder.layer.0.attention.self.query.bias"] = torch.randn(h)
    sd[prefix + "embeddings.LayerNorm.gamma"] = torch.randn(h)
    return sd


def states(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(7)
    for name, sd in (("bert", bert_state("")), ("bert-prefixed", bert_state("bert.")),
                     ("roberta", bert_state("roberta.")), ("mpnet", mpnet_state())):
        torch.save(sd, os.path.join(out, name + ".bin"))
        for dt in (torch.float16, torch.bfloat16, torch.float64):
            low = collections.OrderedDict((k, v.to(dt) if v.is_floating_point() else v) for k, v in sd.items())
            torch.save(low, os.path.join(out, "%s-%s.bin" % (name, str(dt)[6:])))
        torch.save(sd, os.path.join(out, name + "-legacy.bin"), _use_new_zipfile_serialization=False)
    # one storage shared by two names (tied weights) and a scalar
    w = torch.randn(5, 3)
    torch.save(collections.OrderedDict([("a", w), ("b", w), ("row", w[2]), ("scalar", torch.tensor(2.5)),
                                        ("empty", torch.zeros(0, 3))]), os.path.join(out, "shared.bin"))
    # a plain dict, protocol 4 (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL)
    torch.save({"x": torch.randn(4, 2), "y": torch.randn(3).half()}, os.path.join(out, "proto4.bin"),
               pickle_protocol=4)


def oracle(path):
    """name -> tensor as torch (or the safetensors bytes) gives it, for a file or every weight file of a folder."""
    if not os.path.isdir(path):
        return torch.load(path) if not path.endswith(".safetensors") else read_safetensors(path)
    out = collections.OrderedDict()
    for fname in sorted(os.listdir(path)):
        full = os.path.join(path, fname)
        if fname.endswith(".safetensors"):
            out.update(read_safetensors(full))
        elif fname.endswith(".bin"):
            out.update(torch.load(full))
    return out


def check(dump, path):
    """'ok<TAB>PATH: ...' or 'not ok<TAB>PATH: ...' plus '#' lines on what differs."""
    got = {}
    with open(dump) as f:
        for line in f:
            name, dtype, shape, values = line.rstrip("\n").split("\t")
            got[name] = (dtype, shape, values)
    want = oracle(path)
    bad = 0
    if set(got) != set(want):
        print("# names differ: only st %s, only torch %s" % (sorted(set(got) - set(want)), sorted(set(want) - set(got))))
        bad += 1
    for name, t in want.items():
        if name not in got:
            continue
        dtype, shape, values = got[name]
        if dtype != ST_NAMES.get(t.dtype) or shape != ",".join(str(d) for d in t.shape):
            print("# %s: st %s [%s], torch %s %s" % (name, dtype, shape, t.dtype, list(t.shape)))
            bad += 1
            continue
        if not t.is_floating_point():
            continue
        mine = torch.tensor([float(v) for v in values.split()] if values else [], dtype=torch.float32)
        ref = t.float().reshape(-1)
        if mine.numel() != ref.numel() or not torch.equal(mine, ref):
            print("# %s: values differ (max |diff| %s)" % (name, (mine - ref).abs().max().item()
                                                         if mine.numel() == ref.numel() else "sizes"))
            bad += 1
    print("%s\t%s: %d tensors equal to torch's%s" % ("not ok" if bad else "ok", os.path.basename(path), len(want),
                                                     ", %d mismatches" % bad if bad else ""))


# ---- hostile files: byte strings put together by hand; nothing in this script ever unpickles them ----

def zip_bin(path, pickle_bytes, storages=(), compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        for key, raw in storages:
            z.writestr("archive/data/" + key, raw)
        z.writestr("archive/version", b"3\n")


def unicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def hostile(src, out, marker):
    sd = read_safetensors(os.path.join(src, "model.safetensors"))
    cmd = "touch " + marker
    os.makedirs(out, exist_ok=True)

    def make(name, write):
        d = os.path.join(out, name)
        copy_without_weights(src, d)
        write(os.path.join(d, "pytorch_model.bin"), d)

    call = lambda mod, fn, arg: (b"\x80\x02c" + mod + b"\n" + fn + b"\n" + unicode(arg) + b"\x85R")
    make("os-system", lambda p, d: zip_bin(p, call(b"os", b"system", cmd) + b"."))
    make("posix-system", lambda p, d: zip_bin(p, call(b"posix", b"system", cmd) + b"."))
    make("builtins-eval", lambda p, d: zip_bin(p, call(b"builtins", b"eval", "__import__('os').system(%r)" % cmd) + b"."))
    # the call hidden as the value of a state dict entry, after a dict was started
    make("nested", lambda p, d: zip_bin(p, b"\x80\x02ccollections\nOrderedDict\n)R(" + unicode("embeddings.x") +
                                        call(b"os", b"system", cmd)[2:] + b"u."))
    # the legacy stream with the call in the dict pickle
    magic = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."
    make("legacy-system", lambda p, d: open(p, "wb").write(
        magic + b"\x80\x02M\xe9\x03." + b"\x80\x02}." + call(b"os", b"system", cmd) + b"."))

    good = io.BytesIO()
    torch.save(sd, good)
    good = good.getvalue()
    make("truncated", lambda p, d: open(p, "wb").write(good[:len(good) // 2]))
    make("truncated-end", lambda p, d: open(p, "wb").write(good[:-30]))

    name0 = "embeddings.word_embeddings.weight"
    t0 = sd[name0]   # [vocab, hidden]

    def one(t, name=name0):
        b = io.BytesIO()
        torch.save(collections.OrderedDict([(name, t)]), b)
        z = zipfile.ZipFile(io.BytesIO(b.getvalue()))
        return {n.split("/", 1)[1]: z.read(n) for n in z.namelist()}

    wrong = collections.OrderedDict(sd)
    wrong[name0] = torch.randn(t0.shape[0] + 1, t0.shape[1])
    make("wrong-shape", lambda p, d: torch.save(wrong, p))
    wrongdt = collections.OrderedDict(sd)
    wrongdt[name0] = torch.zeros(t0.shape, dtype=torch.int64)
    make("wrong-dtype", lambda p, d: torch.save(wrongdt, p))

    # storage bytes fewer than the pickle's element count says
    parts = one(t0)
    make("short-storage", lambda p, d: zip_bin(p, parts["data.pkl"], [("0", parts["data/0"][:-8])]))
    # one storage byte flipped: the zip's CRC no longer matches
    def flipped(p, d):
        zip_bin(p, parts["data.pkl"], [("0", parts["data/0"])])
        raw = bytearray(open(p, "rb").read())
        at = raw.find(parts["data/0"])
        raw[at + 5] ^= 0x40
        open(p, "wb").write(raw)
    make("bad-crc", flipped)
    # a view larger than its storage: the size tuple says one more row than the storage holds
    numel = t0.numel()
    rows, cols = t0.shape
    size_tuple = lambda r, c: b"K" + bytes([r]) + b"K" + bytes([c]) + b"\x86"
    assert rows < 256 and cols < 256 and size_tuple(rows, cols) in parts["data.pkl"]
    make("view-larger", lambda p, d: zip_bin(
        p, parts["data.pkl"].replace(size_tuple(rows, cols), size_tuple(rows + 1, cols)), [("0", parts["data/0"])]))
    # the same number of elements starting at storage offset 16: the last ones lie past the storage's end
    assert parts["data.pkl"].count(b"QK\x00") == 1
    make("view-past-storage", lambda p, d: zip_bin(
        p, parts["data.pkl"].replace(b"QK\x00", b"QK\x10"), [("0", parts["data/0"])]))
    # an element count of 2^31-1 in the persistent id
    pkl = parts["data.pkl"]
    pid_count = (b"M" + struct.pack("<H", numel)) if numel >= 256 else (b"K" + bytes([numel]))
    assert pkl.count(pid_count + b"t") == 1
    make("huge-numel", lambda p, d: zip_bin(p, pkl.replace(pid_count + b"t", b"J\xff\xff\xff\x7ft"),
                                            [("0", parts["data/0"])]))
    # storages compressed (torch never does): refused rather than inflated
    make("deflated", lambda p, d: zip_bin(p, good_pickle_and_storages(good)[0], good_pickle_and_storages(good)[1],
                                          zipfile.ZIP_DEFLATED))
    # a sharded index pointing outside the folder
    def escape(p, d):
        torch.save(sd, os.path.join(out, "outside.bin"))
        with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
            json.dump({"weight_map": {k: "../outside.bin" for k in sd}}, f)
    make("index-escape", escape)

    # shards that disagree with their index: a name the map puts in the wrong shard, a name in two shards
    def bad_shards(d, dup):
        a, b = shard(sd, 2)
        if dup:
            b[next(iter(a))] = a[next(iter(a))]
        torch.save(a, os.path.join(d, "pytorch_model-00001-of-00002.bin"))
        torch.save(b, os.path.join(d, "pytorch_model-00002-of-00002.bin"))
        wmap = {k: "pytorch_model-00001-of-00002.bin" for k in a}
        wmap.update({k: "pytorch_model-00002-of-00002.bin" for k in b if k not in a})
        if not dup:
            wmap[next(iter(a))] = "pytorch_model-00002-of-00002.bin"
        with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
            json.dump({"weight_map": wmap}, f)
    make("index-wrong-shard", lambda p, d: bad_shards(d, False))
    make("index-duplicate", lambda p, d: bad_shards(d, True))


def good_pickle_and_storages(good):
    z = zipfile.ZipFile(io.BytesIO(good))
    names = z.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl")][0]
    stor = [(n.rsplit("/", 1)[1], z.read(n)) for n in names if "/data/" in n]
    return z.read(pkl), stor


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "variants":
        torch.manual_seed(0)
        variants(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "states":
        states(sys.argv[2])
    elif cmd == "check":
        for i in range(2, len(sys.argv), 2):
            check(sys.argv[i], sys.argv[i + 1])
    elif cmd == "hostile":
        hostile(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("unknown command " + cmd)
