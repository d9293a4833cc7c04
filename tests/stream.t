#!/bin/bash
# The record stream and st-json: round trips, compression, every kind of bad input, closed pipes.
. "$(dirname "$0")/lib.sh"

# Records of every kind, written by hand in the JSON view, with text that exercises escaping and Unicode.
cat > "$TMP/records.jsonl" <<'JSON'
{"texts": ["A man is playing a guitar.", "Ein Mann spielt Gitarre \u00e9\u0301 \u4e2d\u6587 \ud83d\ude00", "tab\there \"quoted\" back\\slash \u0001 ctl"], "label": 0.75}
{"sentence1": "first column", "sentence2": "second column", "score": 4}
{"texts": ["a", "b"], "input_ids": [[101, 1037, 102], [101, 102]], "label": 1}
{"kind": "batch", "step": 0, "epoch": 0, "steps": 2, "input_ids": [[[101, 7, 102], [101, 102, 0]]], "lengths": [[3, 2]], "labels": [1, 0]}
{"kind": "batch", "step": 1, "epoch": 0, "steps": 2, "embeddings": [[[0.1, -2.5e-7, 3.40282347e38], [1, 2, 3]], [[0.333333343, 0, 7], [4, 5, 6]]], "loss": 0.6931471805599453, "grad": [[[1.4013e-45, 0, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 1]]]}
{"kind": "log", "step": 3, "epoch": 0, "loss": 1.5, "lr": 2e-05, "grad_norm": 0.25, "examples_per_s": 100.0}
JSON

st-json --to-msgpack < "$TMP/records.jsonl" > "$TMP/r.mp"; ok $? "JSON Lines to msgpack"
st-json < "$TMP/r.mp" > "$TMP/back.jsonl"; ok $? "msgpack to JSON Lines"
# jq compares the meaning (numbers as numbers, escapes decoded); "v" is added by the writer
is "$(jq -cS 'del(.v)' "$TMP/back.jsonl" | md5sum)" "$(jq -cS . "$TMP/records.jsonl" | md5sum)" "round trip keeps every record (jq's view)"
is "$(jq -r '.texts[1]' "$TMP/back.jsonl" | head -1)" "$(printf 'Ein Mann spielt Gitarre \303\251\314\201 \344\270\255\346\226\207 \360\237\230\200')" "Unicode text survives byte for byte"
is "$(jq -c '.v' "$TMP/back.jsonl" | sort -u)" "1" "every record carries format version 1"
st-json --to-msgpack < "$TMP/back.jsonl" | cmp -s - "$TMP/r.mp"; ok $? "msgpack -> JSON -> msgpack is byte-identical (floats lossless)"

# tensors are typed blobs in msgpack: decode with Python's msgpack, independently of our reader
if /usr/bin/python3 -c 'import msgpack' 2>/dev/null; then
	out=$(/usr/bin/python3 - "$TMP/r.mp" <<'PY'
import msgpack, struct, sys
recs = list(msgpack.Unpacker(open(sys.argv[1], 'rb'), raw=False))
b = recs[3]['input_ids']; e = recs[4]['embeddings']
ids = struct.unpack('<%di' % (len(b['data']) // 4), b['data'])
emb = struct.unpack('<%df' % (len(e['data']) // 4), e['data'])
print(b['dtype'], b['shape'], list(ids), e['dtype'], e['shape'], emb[0] == struct.unpack('<f', struct.pack('<f', 0.1))[0], emb[6:9])
PY
)
	is "$out" "i32 [1, 2, 3] [101, 7, 102, 101, 102, 0] f32 [2, 2, 3] True (0.3333333432674408, 0.0, 7.0)" "msgpack tensors are {dtype, shape, data} little-endian blobs"
	# a record packed by another implementation, with a float32 tensor, reads back as JSON
	/usr/bin/python3 -c 'import msgpack,struct,sys; sys.stdout.buffer.write(msgpack.packb({"kind":"batch","embeddings":{"dtype":"f32","shape":[1,1,2],"data":struct.pack("<2f",0.5,-1.25)},"labels":[1]}))' > "$TMP/py.mp"
	is "$(st-json < "$TMP/py.mp")" '{"v":1,"kind":"batch","embeddings":[[[0.5,-1.25]]],"labels":[1]}' "a stream written by Python's msgpack is read"
else
	ok 0 "# SKIP python3-msgpack absent"
fi

# zstd-compressed input of either format is detected from its magic number
zstd -q -c "$TMP/r.mp" | st-json > "$TMP/z1.jsonl"; ok $? "zstd msgpack input"
cmp -s "$TMP/z1.jsonl" "$TMP/back.jsonl"; ok $? "zstd msgpack gives the same records"
zstd -q -c "$TMP/records.jsonl" | st-json | cmp -s - "$TMP/back.jsonl"; ok $? "zstd JSON Lines input gives the same records"
cat "$TMP/r.mp" "$TMP/r.mp" | zstd -q -c > "$TMP/rr.zst"; zstd -q -c "$TMP/r.mp" >> "$TMP/rr.zst"
is "$(st-json < "$TMP/rr.zst" | wc -l)" "18" "concatenated zstd frames are read whole"

# empty input is no records and no error
st-json < /dev/null > "$TMP/empty"; ok $? "empty input exits 0"
is "$(wc -c < "$TMP/empty")" "0" "empty input writes nothing"

# ---- bad input: exit 65, a message naming the record, never a partial record on stdout ----
printf '{"texts": ["ok"]}\n{"texts": ["broken"\n{"texts": ["after"]}\n' > "$TMP/bad.jsonl"
st-json < "$TMP/bad.jsonl" > "$TMP/out" 2> "$TMP/err"; rc=$?
is "$rc" "65" "malformed JSON line exits 65"
grep -q 'line 2' "$TMP/err"; ok $? "the message names line 2: $(cat "$TMP/err")"
is "$(jq -c '.texts' "$TMP/out")" '["ok"]' "records before the bad line are written whole"
st-json --skip-bad < "$TMP/bad.jsonl" > "$TMP/out" 2> "$TMP/err"; rc=$?
is "$rc" "0" "--skip-bad skips the malformed line"
is "$(jq -c '.texts[0]' "$TMP/out" | tr '\n' ' ')" '"ok" "after" ' "--skip-bad keeps the good records"
grep -q 'warning.*line 2' "$TMP/err"; ok $? "--skip-bad warns about line 2"

size=$(wc -c < "$TMP/r.mp")
head -c $((size - 5)) "$TMP/r.mp" | st-json > "$TMP/out" 2> "$TMP/err"; rc=$?
is "$rc" "65" "truncated msgpack exits 65"
grep -q 'record 6: truncated' "$TMP/err"; ok $? "truncated msgpack names record 6: $(cat "$TMP/err")"
is "$(wc -l < "$TMP/out")" "5" "the five whole records before it are written"
jq -c . "$TMP/out" > /dev/null; ok $? "the output holds no partial record"

zstd -q -c "$TMP/r.mp" > "$TMP/r.zst"
head -c $(( $(wc -c < "$TMP/r.zst") - 8 )) "$TMP/r.zst" | st-json > /dev/null 2> "$TMP/err"; rc=$?
is "$rc" "65" "truncated zstd exits 65"
grep -q 'truncated' "$TMP/err"; ok $? "truncated zstd is named: $(cat "$TMP/err")"

printf '\x05' | st-json > /dev/null 2> "$TMP/err"; rc=$?
is "$rc" "65" "a record that is not a map exits 65"
grep -q 'record 1.*map' "$TMP/err"; ok $? "wrong kind of record is named: $(cat "$TMP/err")"
printf '[1, 2]\n' | st-json > /dev/null 2> "$TMP/err"; rc=$?
is "$rc" "65" "a JSON line that is not an object exits 65"

printf '\x81\xa1a\xa2\xff\xfe' | st-json > /dev/null 2> "$TMP/err"; rc=$?
is "$rc" "65" "invalid UTF-8 in a msgpack string exits 65"
grep -q 'record 1: invalid UTF-8' "$TMP/err"; ok $? "invalid UTF-8 is named: $(cat "$TMP/err")"
printf '{"texts": ["\xff"]}\n' | st-json > /dev/null 2> "$TMP/err"; rc=$?
is "$rc" "65" "invalid UTF-8 in JSON exits 65"

printf '{"v": 2, "texts": ["x"]}\n' | st-json > /dev/null 2> "$TMP/err"; rc=$?
is "$rc" "65" "an unknown format version exits 65"
# a tensor whose data does not match its shape
printf '\x81\xa1t\x83\xa5dtype\xa3f32\xa5shape\x91\x02\xa4data\xc4\x04\x00\x00\x00\x00' | st-json > /dev/null 2> "$TMP/err"; rc=$?
is "$rc" "65" "a tensor with too few data bytes exits 65"
grep -q 'need 8' "$TMP/err"; ok $? "the size mismatch is explained: $(cat "$TMP/err")"

# ---- a closed downstream pipe ends the stage quietly, status 0 ----
for i in $(seq 1 3000); do cat "$TMP/records.jsonl"; done > "$TMP/big.jsonl"
st-json --to-msgpack < "$TMP/big.jsonl" 2> "$TMP/err" | head -c 100 > /dev/null
is "${PIPESTATUS[0]}" "0" "st-json exits 0 when the reader closes the pipe"
is "$(wc -c < "$TMP/err")" "0" "and says nothing"

# ---- --help on every tool ----
for t in bin/st-*; do
	"$t" --help > "$TMP/help" 2>&1; rc=$?
	{ [ "$rc" -eq 0 ] && grep -qi 'usage' "$TMP/help"; }; ok $? "$(basename "$t") --help"
	name=$(basename "$t")
	[ -f "docs/$name.md" ]; ok $? "docs/$name.md exists"
done
done_testing
