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

# issue 10 item 8, the docs' example: st-step's log and RUN/eval.jsonl both carry the evaluations; CSV rows
# appended twice and out of order. Every evaluation is drawn once, in step order, and the log's 0-based steps
# are put on the evaluations' scale (updates done): the last log point and the last evaluation share x = 120.
mkdir "$TMP/run" "$TMP/data"
jq -c 'select(.kind == "eval")' "$TMP/log.jsonl" > "$TMP/run/eval.jsonl"
printf 'epoch,steps,cosine_pearson,cosine_spearman\n0,80,0.7,0.69\n0,40,0.61,0.6\n0,120,0.73,0.74\n0,40,0.61,0.6\n' \
	> "$TMP/run/similarity_evaluation_sts-dev_results.csv"
st-plot -o "$TMP/run/curves.png" --data "$TMP/data" --eval "$TMP/run/similarity_evaluation_sts-dev_results.csv" \
	"$TMP/log.jsonl" "$TMP/run/eval.jsonl"; ok $? "st-plot --eval CSV LOG RUN/eval.jsonl (docs/st-plot.md)"
# expected values, computed from the inputs by jq and sort, independently of st-plot
is "$(cut -f1 "$TMP/data/eval.tsv" | tr '\n' ' ')" "40 80 120 " "each evaluation drawn once, in step order"
is "$(cut -f2 "$TMP/data/eval.tsv" | tr '\n' ' ')" \
	"$(jq -r 'select(.kind == "eval") | .score' "$TMP/log.jsonl" | tr '\n' ' ')" "... with its score"
is "$(wc -l < "$TMP/data/log.tsv" | tr -d ' ')" 120 "120 log points"
is "$(head -1 "$TMP/data/log.tsv" | cut -f1),$(tail -1 "$TMP/data/log.tsv" | cut -f1)" "1,120" \
	"log steps 0..119 drawn at 1..120 updates, the scale of the evaluations"
is "$(cat "$TMP"/data/csv.*.tsv | cut -f1 | tr '\n' ' ')" "steps 40 80 120 steps 40 80 120 " \
	"CSV rows: once each, in step order"
is "$(head -1 "$TMP"/data/csv.1.3.tsv | cut -f2)" "similarity_sts-dev: cosine_pearson" "a CSV curve named by file and column"

# issue 11 item 2: data never reaches gnuplot as code. A title with a newline, a CSV column name with quotes, a
# CSV file name and an output file name with quotes, each carrying a gnuplot `system` command (the file names
# name the file to touch relative to the current folder, as they cannot hold a slash).
mkdir "$TMP/inj"
cd "$TMP/inj" || exit 1
bad_csv="x'; system 'touch pwned-csvname'; '.csv"
printf "epoch,steps,a' . system(\"touch $TMP/inj/pwned-column\") . ',b\"; system \"touch $TMP/inj/pwned-column2\"; \"\n0,40,0.5,0.6\n" > "$bad_csv"
st-plot -o "o'; system 'touch pwned-output'; '.png" --title "t
system 'touch $TMP/inj/pwned-title'
set output '$TMP/inj/pwned-output2'" --eval "$bad_csv" "$TMP/log.jsonl" 2> "$TMP/inj.err"
ok $? "hostile title, column names, file names: plotted" || sed 's/^/#   /' "$TMP/inj.err"
# --xlabel: a CSV whose "steps" column holds minutes (fractions), drawn in order under the given label; the label
# reaches gnuplot as data, like the title
mkdir -p "$TMP/xl" && printf 'epoch,steps,sts-dev\n-1,0,0.6\n-1,1.25,0.66\n-1,0.5,0.64\n' > "$TMP/xl/curve.csv"
st-plot -o "$TMP/xl/curve.png" --data "$TMP/xl" --size 640x320 --xlabel "CPU minutes'; system 'touch $TMP/xl/pwned'; '" \
	--eval "$TMP/xl/curve.csv"; ok $? "st-plot --xlabel with fractional x"
is "$(tail -n +2 "$TMP"/xl/csv.*.tsv | cut -f1 | tr '\n' ' ')" "0 0.5 1.25 " "... the fractions kept, in order"
[ ! -e "$TMP/xl/pwned" ]; ok $? "... and the label ran no command"
cd "$ROOT" || exit 1
is "$(ls "$TMP/inj" "$TMP" | grep -c '^pwned')" 0 "... and no command of theirs ran"
[ -s "$TMP/inj/o'; system 'touch pwned-output'; '.png" ]; ok $? "... the PNG has the asked name"
done_testing
