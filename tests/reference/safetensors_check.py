#!/usr/bin/python3
"""Independent safetensors oracle for tests/unit/safetensors.c (plain struct + json, no safetensors package).

  safetensors_check.py verify FILE   check that FILE is laid out as Python's safetensors writer lays out an
                                     all-F32 file, then print {"metadata": {...}, "tensors": {name:
                                     {"shape": [...], "bits": [uint32 of each float]}}} as JSON on stdout
  safetensors_check.py make DIR      write files by hand per the format (F16, BF16, F64, F32, I64, I32; one
                                     with an unpadded header so the data is unaligned) and, beside each, the
                                     values torch converts them to, for the C reader to match bit for bit
Exit status 1 with a message on stderr when a check fails; 2 when torch/numpy are missing.
"""
import json
import struct
import sys


def fail(msg):
    sys.stderr.write("safetensors_check: %s\n" % msg)
    sys.exit(1)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        fail("duplicate keys in %r" % keys)
    return dict(pairs)   # dicts keep insertion order


def verify(path):
    raw = open(path, "rb").read()
    if len(raw) < 8:
        fail("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", raw[:8])
    if n % 8:
        fail("header length %d is not a multiple of 8 (writer pads to 8)" % n)
    if 8 + n > len(raw):
        fail("header length past end of file")
    text = raw[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        fail("header does not start with '{'")
    body = text.rstrip(" ")
    if len(text) - len(body) >= 8:
        fail("more than 7 padding spaces")
    header = json.loads(body, object_pairs_hook=no_duplicates)
    # serde_json compact form: no spaces, non-ASCII kept as UTF-8.
    if json.dumps(header, separators=(",", ":"), ensure_ascii=False) != body:
        fail("header is not compact JSON as serde_json writes it:\n%s" % body)
    keys = list(header)
    meta = {}
    if "__metadata__" in header:
        if keys[0] != "__metadata__":
            fail("__metadata__ is not the first key")
        meta = header.pop("__metadata__")
        if not all(isinstance(v, str) for v in meta.values()):
            fail("metadata values must be strings")
    names = list(header)
    if names != sorted(names, key=lambda s: s.encode("utf-8")):
        fail("tensors not sorted by name: %r" % names)
    data = raw[8 + n:]
    pos = 0
    out = {}
    for name in names:
        info = header[name]
        if sorted(info) != ["data_offsets", "dtype", "shape"]:
            fail("%s: unexpected fields %r" % (name, sorted(info)))
        if list(info) != ["dtype", "shape", "data_offsets"]:
            fail("%s: field order %r differs from the Python writer's" % (name, list(info)))
        if info["dtype"] != "F32":
            fail("%s: dtype %s" % (name, info["dtype"]))
        begin, end = info["data_offsets"]
        if begin != pos:
            fail("%s: begins at %d, expected %d (data in name order, no gaps)" % (name, begin, pos))
        count = 1
        for d in info["shape"]:
            count *= d
        if end - begin != 4 * count:
            fail("%s: %d bytes for shape %r" % (name, end - begin, info["shape"]))
        pos = end
        out[name] = {"shape": info["shape"], "bits": list(struct.unpack("<%dI" % count, data[begin:end]))}
    if pos != len(data):
        fail("data is %d bytes, tensors cover %d" % (len(data), pos))
    json.dump({"metadata": meta, "tensors": out}, sys.stdout)


def write_file(path, tensors, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes) in data order. pad=False: pad the header so that the
    data starts at file offset 1 mod 8, so no tensor of 2, 4 or 8-byte elements is aligned."""
    header, pos = {}, 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [pos, pos + len(data)]}
        pos += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-len(text) % 8) if pad else ((1 - 8 - len(text)) % 8))
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors))


def make(d):
    try:
        import numpy as np
        import torch
    except ImportError as e:
        sys.stderr.write("safetensors_check: %s\n" % e)
        sys.exit(2)

    def f32bits(t):   # torch tensor -> list of uint32 bit patterns of its float32 conversion
        return t.to(torch.float32).flatten().contiguous().view(torch.int32).numpy().astype(np.uint32).tolist()

    # Every 16-bit pattern, as F16 and as BF16; torch's conversion to float32 is the expected value.
    every = np.arange(65536, dtype=np.uint16)
    halves = torch.from_numpy(every.view(np.float16).copy())
    bfloats = torch.from_numpy(every.view(np.int16).copy()).view(torch.bfloat16)
    write_file(d + "/f16.safetensors", [("h", "F16", [256, 256], every.tobytes())])
    write_file(d + "/bf16.safetensors", [("b", "BF16", [65536], every.tobytes())])
    expect = {"f16.safetensors": {"h": {"f32bits": f32bits(halves)}},
              "bf16.safetensors": {"b": {"f32bits": f32bits(bfloats)}}}

    # Mixed dtypes behind an unpadded header; the odd-length F16 tensor first puts every later tensor at an
    # address that is not a multiple of its size.
    g = torch.Generator().manual_seed(7)
    a = torch.randn(3, generator=g).to(torch.float16)
    b = torch.randn(2, 3, generator=g).to(torch.bfloat16)
    c = torch.randn(5, generator=g, dtype=torch.float64) * 1e3
    e = torch.randn(7, generator=g)
    i64 = torch.tensor([-5, 0, 2**31 - 1], dtype=torch.int64)
    i32 = torch.tensor([[-2**31, 17]], dtype=torch.int32)
    big = torch.tensor([2**40], dtype=torch.int64)
    tensors = [("z.half", "F16", [3], a.view(torch.int16).numpy().tobytes()),
               ("y.bf16", "BF16", [2, 3], b.view(torch.int16).numpy().tobytes()),
               ("x.f64", "F64", [5], c.numpy().tobytes()),
               ("w.f32", "F32", [7], e.numpy().tobytes()),
               ("v.i64", "I64", [3], i64.numpy().tobytes()),
               ("u.i32", "I32", [1, 2], i32.numpy().tobytes()),
               ("t.big", "I64", [1], big.numpy().tobytes()),
               ("s.u8", "U8", [3], bytes([1, 2, 3]))]
    write_file(d + "/mixed.safetensors", tensors, pad=False)
    expect["mixed.safetensors"] = {
        "z.half": {"f32bits": f32bits(a)}, "y.bf16": {"f32bits": f32bits(b)}, "x.f64": {"f32bits": f32bits(c)},
        "w.f32": {"f32bits": f32bits(e)}, "v.i64": {"i32": i64.tolist()}, "u.i32": {"i32": i32.flatten().tolist()},
        "t.big": {"i32_error": True}, "s.u8": {"f32_error": True}}
    with open(d + "/expect.json", "w") as f:
        json.dump(expect, f)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("verify", "make"):
        sys.stderr.write(__doc__)
        sys.exit(64)
    verify(sys.argv[2]) if sys.argv[1] == "verify" else make(sys.argv[2])
