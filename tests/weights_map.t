#!/bin/sh
# Weights used in place (lib/mapfile.c, weights_f32_in_place, model.c's at[] view) against the path that copies
# every tensor (ST_WEIGHTS=copy, the loader as it was before mapping): the same embeddings bit for bit, also
# for files the mapped path cannot take as they are (a header whose length leaves the tensors misaligned,
# float16 weights, a pytorch_model.bin written by Debian's torch), whose values are made independently by
# Python. A model file truncated before loading is refused (65); one truncated while a tool has it mapped
# ends that tool with a message naming the file and exit 74, not a bare SIGBUS. The fast tokenizer.json path
# (the vocab decoded without jansson) gives the ids that vocab.txt gives for the same vocabulary, escapes
# included.
. tests/lib.sh
. tests/lib-model.sh
PY=/usr/bin/python3

train_model "$TMP/m" --dropout 0 || skip_all "st-init cannot build a model: $(head -1 "$TMP/err")"
seq 1 40 | awk '{ s = ""; for (i = 0; i < $1 % 9 + 1; i++) s = s " w" (($1 * 7 + i * 13) % 110 + 5); print s }' \
	> "$TMP/texts"

st-encode --model "$TMP/m" --format f32 < "$TMP/texts" > "$TMP/mapped"; ok $? "encode with mapped weights"
ST_WEIGHTS=copy st-encode --model "$TMP/m" --format f32 < "$TMP/texts" > "$TMP/copied"; ok $? "encode with copied weights"
cmp -s "$TMP/mapped" "$TMP/copied"; ok $? "mapped and copied weights give the same embeddings, bit for bit"
[ -s "$TMP/mapped" ]; ok $? "... and there are embeddings ($(wc -c < "$TMP/mapped") bytes)"

# the file is mapped for as long as st-encode runs (seen in /proc while it waits for input)
mkfifo "$TMP/fifo"
st-encode --model "$TMP/m" < "$TMP/fifo" > "$TMP/out" 2> "$TMP/err" &
pid=$!
exec 3> "$TMP/fifo"
i=0
while [ $i -lt 200 ] && ! grep -q "$TMP/m/model.safetensors" /proc/$pid/maps 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
grep -q "$TMP/m/model.safetensors" /proc/$pid/maps 2>/dev/null; ok $? "model.safetensors is mapped while the tool runs"
# truncated under the running tool: its next read of a page past the new end is a SIGBUS, which names the file
cp "$TMP/m/model.safetensors" "$TMP/keep.safetensors"
truncate -s 100 "$TMP/m/model.safetensors"
head -3 "$TMP/texts" >&3
exec 3>&-
wait $pid
is "$?" 74 "a model file truncated while mapped: exit 74"
grep -q "model.safetensors: the file shrank while in use" "$TMP/err"; ok $? "... with a message naming the file"
sed 's/^/#   /' "$TMP/err"
# truncated before loading: refused as a bad file
st-encode --model "$TMP/m" < "$TMP/texts" > /dev/null 2> "$TMP/err"
is "$?" 65 "a truncated model file is refused at load (65)"
grep -q "truncated" "$TMP/err"; ok $? "... the message says truncated: $(head -1 "$TMP/err")"
cp "$TMP/keep.safetensors" "$TMP/m/model.safetensors"

# a copy of the model whose weight file is rewritten by Python, for the paths that convert
variant() {   # variant NAME PYTHON-CODE: $TMP/NAME = $TMP/m with model.safetensors replaced by what the code writes
	rm -rf "$TMP/$1" && cp -R "$TMP/m" "$TMP/$1" && rm "$TMP/$1/model.safetensors"
	$PY - "$TMP/m/model.safetensors" "$TMP/$1" <<EOF
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
raw = open(src, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
$2
EOF
}

# the header padded to an odd length: every tensor sits at an odd address, so none can be used in place
variant odd "
h = json.dumps(header).encode()
h += b' ' * ((4 - len(h) % 4) % 4 + 1)
open(dst + '/model.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + data)
"
st-encode --model "$TMP/odd" --format f32 < "$TMP/texts" > "$TMP/odd.out"; ok $? "encode from a file with misaligned tensors"
cmp -s "$TMP/odd.out" "$TMP/mapped"; ok $? "... the same embeddings as the mapped file"

if $PY -c 'import torch' 2> /dev/null; then
	# float16: the model's values rounded to half by torch, written once as F16 and once as F32
	variant half "
import torch
out16, out32, off16, off32 = {}, {}, 0, 0
b16, b32 = b'', b''
for name, e in sorted(header.items()):
    if name == '__metadata__':
        continue
    b, end = e['data_offsets']
    t = torch.frombuffer(bytearray(data[b:end]), dtype=torch.float32).to(torch.float16)
    x16, x32 = t.numpy().tobytes(), t.to(torch.float32).numpy().tobytes()
    out16[name] = {'dtype': 'F16', 'shape': e['shape'], 'data_offsets': [off16, off16 + len(x16)]}
    out32[name] = {'dtype': 'F32', 'shape': e['shape'], 'data_offsets': [off32, off32 + len(x32)]}
    b16 += x16; b32 += x32; off16 += len(x16); off32 += len(x32)
import os
os.makedirs(dst + '32', exist_ok=True)
for path, hd, body in ((dst + '/model.safetensors', out16, b16), (dst + '32/model.safetensors', out32, b32)):
    h = json.dumps(hd).encode()
    h += b' ' * (-len(h) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + body)
"
	for f in "$TMP/m"/*; do [ "$(basename "$f")" = model.safetensors ] || cp -R "$f" "$TMP/half32/"; done
	st-encode --model "$TMP/half" --format f32 < "$TMP/texts" > "$TMP/half.out"; ok $? "encode from float16 weights"
	st-encode --model "$TMP/half32" --format f32 < "$TMP/texts" > "$TMP/half32.out"; ok $? "encode from the same values in float32"
	cmp -s "$TMP/half.out" "$TMP/half32.out"; ok $? "... converted float16 and mapped float32 give the same embeddings"
	! cmp -s "$TMP/half.out" "$TMP/mapped"; ok $? "... which differ from the full-precision model's (the check can fail)"

	# pytorch_model.bin written by torch.save: read through libzip and copied
	variant bin "
import torch
sd = {}
for name, e in header.items():
    if name == '__metadata__':
        continue
    b, end = e['data_offsets']
    sd[name] = torch.frombuffer(bytearray(data[b:end]), dtype=torch.float32).reshape(e['shape'])
torch.save(sd, dst + '/pytorch_model.bin')
"
	st-encode --model "$TMP/bin" --format f32 < "$TMP/texts" > "$TMP/bin.out"; ok $? "encode from pytorch_model.bin"
	cmp -s "$TMP/bin.out" "$TMP/mapped"; ok $? "... the same embeddings as the mapped safetensors"
else
	echo "# python3-torch is absent: the float16 and pytorch_model.bin checks are skipped"
fi

# training reads and writes its own copy: the mapped file is never written
sum0=$(cksum < "$TMP/m/model.safetensors")
st-encode --model "$TMP/m" < "$TMP/texts" > /dev/null
is "$(cksum < "$TMP/m/model.safetensors")" "$sum0" "the weight file is unchanged after use"

# tokenizer.json's vocab through the fast path, with JSON escapes, against the same vocabulary as vocab.txt
printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\ncaf\303\251\n\360\237\230\200\nsay\nq"uote\nback\\slash\nsl/ash\n##s\nthe\ncat\n' > "$TMP/v.txt"
cat > "$TMP/tok.json" <<'EOF'
{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
 "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": false, "lowercase": true},
 "pre_tokenizer": {"type": "BertPreTokenizer"},
 "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
   "pair": [], "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
 "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
  "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "caf\u00e9": 4, "\ud83d\ude00": 5, "say": 6,
            "q\"uote": 7, "back\\slash": 8, "sl\/ash": 9, "##s": 10, "the": 11, "\u0063at": 12}}}
EOF
printf '{"text": "say caf\303\251s \360\237\230\200 the"}\n{"text": "the says cat zzz"}\n' > "$TMP/tok.in"
st-tokenize --tokenizer "$TMP/tok.json" --json < "$TMP/tok.in" > "$TMP/tok.a" 2> "$TMP/err"; ok $? "tokenize with tokenizer.json"
st-tokenize --tokenizer "$TMP/v.txt" --json < "$TMP/tok.in" > "$TMP/tok.b" 2> "$TMP/err"; ok $? "tokenize with vocab.txt"
# (vocab.txt strips accents, as bert-base-uncased does: only the second text is the same for both)
is "$(sed -n 2p "$TMP/tok.a" | jq -c .input_ids)" "$(sed -n 2p "$TMP/tok.b" | jq -c .input_ids)" \
	"tokenizer.json's escaped vocab gives vocab.txt's ids"
is "$(jq -c .input_ids "$TMP/tok.a" | tr '\n' ' ')" "[[2,6,4,10,5,11,3]] [[2,11,6,10,12,1,3]] " \
	"... the ids worked out by hand"
# the vocabulary as read, written back by st-init as vocab.txt: every escaped token decoded
tiny_config "$TMP/tiny.json"
st-init --config "$TMP/tiny.json" --vocab "$TMP/tok.json" -o "$TMP/tokm" 2> "$TMP/err"; ok $? "st-init with that tokenizer.json"
cmp -s "$TMP/tokm/vocab.txt" "$TMP/v.txt"; ok $? "... its vocab.txt is the vocabulary written by hand"

done_testing
