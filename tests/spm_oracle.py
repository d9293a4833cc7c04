#!/usr/bin/python3
"""spm_oracle.py: the independent side of tests/tokenizer_unigram.t and bench/tokenize.sh for SentencePiece.

  spm_oracle.py gen N SEED CORPUS > texts.jsonl      generated Unicode texts ({"text": ...} per line)
  spm_oracle.py ids MODEL < texts.jsonl > ids.jsonl   libsentencepiece's ids with XLM-R's fairseq offset
                                                       (<s>=0 <pad>=1 </s>=2 <unk>=3, piece id + 1), after
                                                       str.strip() as sentence-transformers does
  spm_oracle.py convert MODEL DIR [old]              tokenizer.json + tokenizer_config.json as transformers'
                                                       XLMRobertaConverter writes them ("old": the layout of
                                                       older Hub files: Precompiled alone, WhitespaceSplit +
                                                       Metaspace(add_prefix_space), RobertaProcessing)
  spm_oracle.py compare TEXTS OURS WANT NAME [MODEL]  0 when every record's ids agree; with MODEL, a record may
                                                       instead tie: other pieces (none unknown) whose scores sum
                                                       to the same total in double precision, as the tokenizers
                                                       library (double, per word) and libsentencepiece (float,
                                                       whole text) can break a near-tie differently
  spm_oracle.py bench MODEL < texts.jsonl            tokens/s of libsentencepiece on one core

Only python3-sentencepiece is used (no protobuf module): the normalizer's charsmap is read from the serialized
model with a few lines of protobuf wire-format decoding, independent of st's C reader."""
import base64
import json
import random
import sys
import time

import sentencepiece as spm

SPECIALS = ("<s>", "</s>", "<pad>", "<unk>", "<mask>")


def gen(n, seed, corpus):
    rng = random.Random(seed)
    words = []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            words.extend(line.split())
    r = lambda a, b: chr(rng.randint(a, b))
    pools = [
        lambda: rng.choice(words),
        lambda: rng.choice(words),
        lambda: rng.choice(words) + r(0x300, 0x36F),                       # combining marks
        lambda: r(0x21, 0x7E),
        lambda: r(0xC0, 0x17F),                                            # Latin-1, Latin Extended-A
        lambda: "".join(r(0x391, 0x3C9) for _ in range(rng.randint(1, 6))),  # Greek
        lambda: "".join(r(0x410, 0x44F) for _ in range(rng.randint(1, 6))),  # Cyrillic
        lambda: "".join(r(0x627, 0x64A) for _ in range(rng.randint(1, 5))),  # Arabic
        lambda: "".join(r(0x5D0, 0x5EA) for _ in range(rng.randint(1, 5))),  # Hebrew
        lambda: "".join(r(0x915, 0x939) + r(0x93E, 0x94D) for _ in range(2)),  # Devanagari + signs
        lambda: "".join(r(0xE01, 0xE30) for _ in range(rng.randint(1, 5))),  # Thai
        lambda: "".join(r(0xAC00, 0xD7A3) for _ in range(rng.randint(1, 3))),  # Hangul syllables
        lambda: r(0x1100, 0x1112) + r(0x1161, 0x1175),                     # conjoining jamo
        lambda: "".join(r(0x4E00, 0x9FFF) for _ in range(rng.randint(1, 4))),  # CJK
        lambda: "".join(r(0x3041, 0x30FF) for _ in range(rng.randint(1, 4))),  # kana
        lambda: "".join(r(0xFF61, 0xFF9F) for _ in range(rng.randint(1, 4))),  # halfwidth katakana
        lambda: "".join(r(0xFF01, 0xFF5E) for _ in range(rng.randint(1, 6))),  # fullwidth forms
        lambda: r(0x1F300, 0x1F64F),                                       # emoji
        lambda: r(0x1F466, 0x1F469) + "\u200d" + r(0x1F466, 0x1F469),      # ZWJ sequence
        lambda: r(0x1F44A, 0x1F44F) + r(0x1F3FB, 0x1F3FF),                 # skin tone
        lambda: r(0x2600, 0x26FF) + "\ufe0f",                              # variation selector
        lambda: r(0xFB00, 0xFB06),                                         # ligatures
        lambda: r(0x2160, 0x217F),                                         # roman numerals
        lambda: r(0x2460, 0x24FF),                                         # circled
        lambda: r(0x2070, 0x209C) + "\u00b2\u00bd",                        # super/subscripts, fractions
        lambda: r(0x3300, 0x33FF),                                         # squared words
        lambda: "\ufdfa",                                                  # one char, long NFKC expansion
        lambda: r(0x1D400, 0x1D7FF),                                       # mathematical alphanumerics
        lambda: r(0x2000, 0x200B),                                         # spaces, zero width space
        lambda: rng.choice([" ", "  ", "   ", "\t", "\n", "\r\n", "\u00a0", "\u3000", " \u3000 ", "\u2028"]),
        lambda: r(0x01, 0x1F),                                             # control characters
        lambda: r(0xE000, 0xE010),                                         # private use
        lambda: "\ufffd",
    ]
    out = []
    while len(out) < n:
        parts = []
        for _ in range(rng.randint(0, 14)):
            parts.append(rng.choice(pools)())
            if rng.random() < 0.6:
                parts.append(" ")
        text = "".join(parts)
        if "\x00" in text or any(s in text for s in SPECIALS):
            continue
        out.append(text)
    for t in out:
        print(json.dumps({"text": t}, ensure_ascii=False))


def xlmr_ids(sp, text):
    """XLMRobertaTokenizer (slow): <s> + fairseq-offset piece ids + </s>."""
    return [0] + [i + 1 if i != sp.unk_id() else 3 for i in sp.encode(text.strip())] + [2]


def ids(model):
    sp = spm.SentencePieceProcessor(model_file=model)
    for line in sys.stdin:
        text = json.loads(line)["text"]
        print(json.dumps({"input_ids": [xlmr_ids(sp, text)]}))


def pb_fields(buf):
    """(field, wire, value) of one protobuf message; value is bytes for length-delimited fields."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(buf, i)
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wire)
        yield field, wire, v


def varint(buf, i):
    x = shift = 0
    while True:
        b = buf[i]
        i += 1
        x |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return x, i


def convert(model, outdir, old=False):
    sp = spm.SentencePieceProcessor(model_file=model)
    proto = sp.serialized_model_proto()
    charsmap = b""
    byte_fallback = False
    for f, w, v in pb_fields(proto):
        if f == 3 and w == 2:
            for g, gw, gv in pb_fields(v):
                if g == 2 and gw == 2:
                    charsmap = gv
        if f == 2 and w == 2:
            for g, gw, gv in pb_fields(v):
                if g == 35 and gw == 0:
                    byte_fallback = bool(gv)
    n = sp.get_piece_size()
    vocab = [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0]]
    vocab += [[sp.id_to_piece(i), sp.get_score(i)] for i in range(3, n)]
    vocab += [["<mask>", 0.0]]

    def added(tid, content, lstrip=False, special=True):
        return {"id": tid, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": False,
                "normalized": False, "special": special}

    added_tokens = [added(0, "<s>"), added(1, "<pad>"), added(2, "</s>"), added(3, "<unk>")]
    added_tokens += [added(i + 1, sp.id_to_piece(i)) for i in range(3, n) if sp.is_control(i)]
    added_tokens += [added(n + 1, "<mask>", lstrip=True)]
    precompiled = {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()}
    if old:
        normalizer = precompiled if charsmap else None
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}]}
        post = {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": True,
                "add_prefix_space": True}
    else:
        norms = [{"type": "Strip", "strip_left": False, "strip_right": True},
                 {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"}]
        normalizer = {"type": "Sequence", "normalizers": ([precompiled] if charsmap else []) + norms}
        pre = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
        tok = lambda t: {"SpecialToken": {"id": t, "type_id": 0}}
        seq = lambda s: {"Sequence": {"id": s, "type_id": 0}}
        post = {"type": "TemplateProcessing",
                "single": [tok("<s>"), seq("A"), tok("</s>")],
                "pair": [tok("<s>"), seq("A"), tok("</s>"), tok("</s>"), seq("B"), tok("</s>")],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                                   "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
          "normalizer": normalizer, "pre_tokenizer": pre, "post_processor": post,
          "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
          "model": {"type": "Unigram", "unk_id": 3, "vocab": vocab, "byte_fallback": byte_fallback}}
    with open(outdir + "/tokenizer.json", "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    with open(outdir + "/tokenizer_config.json", "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "XLMRobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>", "cls_token": "<s>",
                   "sep_token": "</s>", "model_max_length": 512}, f)


def total_score(sp, ids):
    """Sum of the piece scores of XLM-R ids in double, and the unknown and byte ids (which have no score of
    their own) in order."""
    total, other = 0.0, []
    for i in ids[1:-1]:
        if i == 3 or i > sp.get_piece_size() or sp.is_byte(i - 1) or sp.is_unknown(i - 1):
            other.append(i)
        else:
            total += sp.get_score(i - 1)
    return total, other


def compare(texts, ours, want, name, model=None):
    t = [json.loads(x)["text"] for x in open(texts, encoding="utf-8")]
    a = [json.loads(x)["input_ids"] for x in open(ours, encoding="utf-8")]
    b = [json.loads(x)["input_ids"] for x in open(want, encoding="utf-8")]
    if len(a) != len(t) or len(b) != len(t):
        print("# %s: %d texts, %d ours, %d expected" % (name, len(t), len(a), len(b)))
        return 1
    sp = spm.SentencePieceProcessor(model_file=model) if model else None
    bad, ties = [], 0
    for k in range(len(t)):
        if a[k] == b[k]:
            continue
        if sp:
            (x, xo), (y, yo) = total_score(sp, a[k][0]), total_score(sp, b[k][0])
            if xo == yo and abs(x - y) <= 1e-9 * max(1.0, abs(y)):
                ties += 1
                continue
        bad.append(k)
    for k in bad[:5]:
        print("# %s: mismatch on %r\n#   ours: %s\n#   want: %s" % (name, t[k], a[k][0], b[k][0]))
    print("# %s: %d of %d records differ%s" % (name, len(bad), len(t),
          " (and %d are equal-score ties broken the other way)" % ties if sp else ""))
    return 1 if bad else 0


def bench(model):
    sp = spm.SentencePieceProcessor(model_file=model)
    texts = [json.loads(x)["text"] for x in sys.stdin]
    for t in texts:
        sp.encode(t)
    tokens = passes = 0
    t0 = time.perf_counter()
    while True:
        for t in texts:
            tokens += len(sp.encode(t)) + 2
        passes += 1
        s = time.perf_counter() - t0
        if s >= 3:
            break
    print(json.dumps({"texts": len(texts), "passes": passes, "tokens": tokens, "seconds": s,
                      "tokens_per_s": tokens / s}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif cmd == "ids":
        ids(sys.argv[2])
    elif cmd == "convert":
        convert(sys.argv[2], sys.argv[3], len(sys.argv) > 4 and sys.argv[4] == "old")
    elif cmd == "compare":
        sys.exit(compare(*sys.argv[2:7]))
    elif cmd == "bench":
        bench(sys.argv[2])
