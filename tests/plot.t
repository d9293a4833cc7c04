#!/bin/sh
# st-plot: a log stream (JSON Lines or msgpack) and st-eval CSV rows become a valid PNG of the asked size;
# bad input fails with the documented codes and leaves no file behind.
. "$(dirname "$0")/lib.sh"
command -v gnuplot > /dev/null || skip_all "gnuplot is not installed"
command -v jq > /dev/null || skip_all "jq is not installed"

awk 'BEGIN { for (s = 0; s < 120; s++) {
	printf "{\"kind\": \"log\", \"step\": %d, \"epoch\": 0, \"loss\": %.6f, \"lr\": %.3e, \"grad_norm\": 1}\n", s, 2 * exp(-s / 40), 2e-5 * (1 - s / 120)
	if (s % 40 == 39) printf "{\"kind\": \"eval\", \"step\": %d, \"epoch\": 0, \"score\": %.4f, \"best\": true}\n", s + 1, 0.5 + s / 400 } }' > "$TMP/log.jsonl"
printf 'epoch,steps,cosine_pearson,cosine_spearman\n0,40,0.61,0.6\n0,80,0.7,0.69\n0,120,0.73,0.74\n' > "$TMP/similarity_evaluation_dev_results.csv"

# width and height of a PNG from its IHDR chunk; the 8-byte signature first
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{ print $1*16777216 + $2*65536 + $3*256 + $4 "x" $5*16777216 + $6*65536 + $7*256 + $8 }'; }
png_sig() { od -An -tx1 -N8 "$1" | tr -d ' \n'; }

st-plot -o "$TMP/a.png" < "$TMP/log.jsonl"; ok $? "JSON Lines log on stdin"
is "$(png_sig "$TMP/a.png")" 89504e470d0a1a0a "a PNG signature"
is "$(png_size "$TMP/a.png")" 1000x800 "the default size"
/usr/bin/python3 -c "
import sys, zlib, struct
b = open(sys.argv[1], 'rb').read()
p, ok = 8, False
while p < len(b):
    n, = struct.unpack('>I', b[p:p + 4]); t = b[p + 4:p + 8]
    if zlib.crc32(b[p + 4:p + 8 + n]) != struct.unpack('>I', b[p + 8 + n:p + 12 + n])[0]: sys.exit(1)
    ok = t == b'IEND'; p += 12 + n
sys.exit(0 if ok else 1)" "$TMP/a.png"
ok $? "every chunk's CRC is right and the file ends with IEND"

st-json --to-msgpack < "$TMP/log.jsonl" > "$TMP/log.mp"
st-plot -o "$TMP/b.png" --size 640x480 --eval "$TMP/similarity_evaluation_dev_results.csv" --title "a run" "$TMP/log.mp"
ok $? "msgpack log file, st-eval CSV, title"
is "$(png_size "$TMP/b.png")" 640x480 "--size 640x480"
st-plot -o "$TMP/c.png" --eval "$TMP/similarity_evaluation_dev_results.csv" < /dev/null; ok $? "evaluation rows alone"
[ "$(wc -c < "$TMP/a.png")" -gt 10000 ]; ok $? "a picture with something drawn in it"

printf '{"kind": "batch", "step": 0}\n' | st-plot -o "$TMP/d.png" 2>/dev/null; is $? 65 "nothing to plot: 65"
[ -e "$TMP/d.png" ]; is $? 1 "... and no file"
st-plot -o "$TMP/e.png" "$TMP/none.jsonl" 2>/dev/null; is $? 66 "a missing log: 66"
st-plot --size big < "$TMP/log.jsonl" 2>/dev/null; is $? 64 "--size big: 64"
ls "$TMP" | grep -q '\.tmp\.'; is $? 1 "no temporary file left"
done_testing
