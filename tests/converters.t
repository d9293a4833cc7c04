#!/bin/sh
# Converters of the real data sets in ../shared/data (pipelines/converters/): row counts, exact field values
# against an independent reading of the raw files (Python's csv module, awk), label counts from the data's
# PROVENANCE.md, valid JSON, and the st stream round trip.
. "$(dirname "$0")/lib.sh"
[ -d "$SHARED" ] || skip_all "../shared/data is absent"
C=pipelines/converters
PY=/usr/bin/python3

# same_examples GOT WANT: equal as JSON values line by line (1 and 1.0 equal; labels within 1e-12)
same_examples() {
	$PY - "$1" "$2" <<'PYEOF'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
want = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
if len(got) != len(want):
    sys.exit("rows: got %d, want %d" % (len(got), len(want)))
for i, (g, w) in enumerate(zip(got, want)):
    lg, lw = g.pop("label", None), w.pop("label", None)
    if g != w or (lg is None) != (lw is None) or (lg is not None and abs(lg - lw) > 1e-12):
        sys.exit("row %d: got %r label %r, want %r label %r" % (i + 1, g, lg, w, lw))
PYEOF
}
# valid_json FILE: every line a JSON object with a "texts" list of strings and a numeric label if any
valid_json() {
	jq -e 'if (.texts | type == "array" and length > 0 and all(type == "string"))
		and ((has("label") | not) or (.label | type == "number")) then true else error("bad example") end' \
		"$1" > /dev/null
}
# roundtrip FILE: st-json --to-msgpack | st-json gives the same examples back (st-json adds "v": 1)
roundtrip() {
	if [ -x bin/st-json ]; then
		st-json --to-msgpack < "$1" | st-json | jq -c 'del(.v)' > "$TMP/rt.jsonl" &&
			same_examples "$TMP/rt.jsonl" "$1"
		ok $? "$2: st-json --to-msgpack | st-json round trip"
	else
		echo "ok $((tap_n += 1)) # SKIP bin/st-json not built"
	fi
}

# ---- STS Benchmark ----
d=$SHARED/stsbenchmark
for split in train dev test; do
	$C/stsb --split $split "$d" > "$TMP/stsb-$split.jsonl"
	ok $? "stsb --split $split runs"
	is "$(wc -l < "$TMP/stsb-$split.jsonl")" "$(case $split in train) echo 5749 ;; dev) echo 1500 ;; test) echo 1379 ;; esac)" \
		"stsb $split: row count from PROVENANCE.md"
	$PY - "$d/sts-$split.csv" > "$TMP/want.jsonl" <<'PYEOF'
import json, sys
for line in open(sys.argv[1], encoding="utf-8", newline=""):
    f = line.rstrip("\n").split("\t")
    print(json.dumps({"texts": [f[5], f[6]], "label": float(f[4]) / 5}))
PYEOF
	same_examples "$TMP/stsb-$split.jsonl" "$TMP/want.jsonl"
	ok $? "stsb $split: texts and score/5 equal Python's reading of the TSV"
	valid_json "$TMP/stsb-$split.jsonl"
	ok $? "stsb $split: valid examples"
done
# first dev row: score/5 by awk from the raw file
want=$(awk -F '\t' 'NR == 1 { printf "%.6f", $5 / 5 }' "$d/sts-dev.csv")
got=$(head -1 "$TMP/stsb-dev.jsonl" | jq -r '.label * 1000000 | round / 1000000 | tostring')
is "$(awk -v x="$got" 'BEGIN { printf "%.6f", x }')" "$want" "stsb dev row 1: label = awk's score/5"
# a 9-field row (extra source fields): sentence2 is field 7, not the last field
n9=$(awk -F '\t' 'NF == 9 { print NR; exit }' "$d/sts-test.csv")
is "$(sed -n "${n9}p" "$TMP/stsb-test.jsonl" | jq -r '.texts[1]')" "$(sed -n "${n9}p" "$d/sts-test.csv" | cut -f7)" \
	"stsb test row $n9 (9 fields): sentence2 is field 7"
is "$($C/stsb --raw "$d/sts-dev.csv" | head -1 | jq .label)" "$(head -1 "$d/sts-dev.csv" | cut -f5 | jq .)" \
	"stsb --raw keeps the 0-5 score"
roundtrip "$TMP/stsb-dev.jsonl" stsb

# ---- SICK ----
d=$SHARED/sick
for split in train dev test; do
	file=$(case $split in train) echo SICK_train.txt ;; dev) echo SICK_trial.txt ;; test) echo SICK_test_annotated.txt ;; esac)
	$C/sick --split $split "$d" > "$TMP/sick-r.jsonl" &&
	$C/sick --minmax --split $split "$d" > "$TMP/sick-m.jsonl" &&
	$C/sick --case entailment --split $split "$d" > "$TMP/sick-e.jsonl"
	ok $? "sick --split $split runs (relatedness, --minmax, entailment)"
	$PY - "$d/$file" "$TMP" <<'PYEOF'
import json, sys
lab = {"ENTAILMENT": 0, "NEUTRAL": 1, "CONTRADICTION": 2}
rows = [l.rstrip("\r\n").split("\t") for l in open(sys.argv[1], encoding="utf-8")][1:]
with open(sys.argv[2] + "/want-r.jsonl", "w") as r, open(sys.argv[2] + "/want-m.jsonl", "w") as m, \
        open(sys.argv[2] + "/want-e.jsonl", "w") as e:
    for f in rows:
        print(json.dumps({"texts": f[1:3], "label": float(f[3]) / 5}), file=r)
        print(json.dumps({"texts": f[1:3], "label": (float(f[3]) - 1) / 4}), file=m)
        print(json.dumps({"texts": f[1:3], "label": lab[f[4]]}), file=e)
PYEOF
	same_examples "$TMP/sick-r.jsonl" "$TMP/want-r.jsonl" && same_examples "$TMP/sick-m.jsonl" "$TMP/want-m.jsonl" &&
		same_examples "$TMP/sick-e.jsonl" "$TMP/want-e.jsonl"
	ok $? "sick $split: score/5, (score-1)/4 and entailment ids equal Python's reading"
done
is "$(jq .label "$TMP/sick-e.jsonl" | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')" "0:1414 1:2793 2:720 " \
	"sick test: ENTAILMENT 1414, NEUTRAL 2793, CONTRADICTION 720 (PROVENANCE.md)"
$C/sick --case triplets "$d" > "$TMP/sick-t.jsonl"
ok $? "sick --case triplets runs"
# independent triplet builder (training_nli_v2 rule, first-seen partners instead of random.choice)
$PY - "$d/SICK_train.txt" > "$TMP/want-t.jsonl" <<'PYEOF'
import json, sys
data = {}
def add(a, b, lab):
    d = data.setdefault(a, {"ENTAILMENT": [], "CONTRADICTION": [], "NEUTRAL": []})
    if b not in d[lab]:
        d[lab].append(b)
for line in list(open(sys.argv[1], encoding="utf-8"))[1:]:
    f = line.rstrip("\r\n").split("\t")
    add(f[1], f[2], f[4]); add(f[2], f[1], f[4])
for a, d in data.items():
    e, c = d["ENTAILMENT"], d["CONTRADICTION"]
    if e and c:
        print(json.dumps({"texts": [a, e[0], c[0]]}))
        print(json.dumps({"texts": [e[1 % len(e)], a, c[1 % len(c)]]}))
PYEOF
same_examples "$TMP/sick-t.jsonl" "$TMP/want-t.jsonl"
ok $? "sick triplets: equal an independent training_nli_v2-style builder ($(wc -l < "$TMP/sick-t.jsonl") triplets)"
valid_json "$TMP/sick-t.jsonl"
ok $? "sick triplets: valid examples"
roundtrip "$TMP/sick-t.jsonl" "sick triplets"

# ---- MRPC ----
d=$SHARED/mrpc
for split in train dev test; do
	file=$(case $split in train) echo train ;; dev) echo val ;; test) echo test ;; esac)
	$C/mrpc --split $split "$d" > "$TMP/mrpc.jsonl"
	ok $? "mrpc --split $split runs"
	$PY - "$d/msr-para-$file.tsv" > "$TMP/want.jsonl" <<'PYEOF'
import json, sys
lines = open(sys.argv[1], encoding="utf-8-sig").read().splitlines()[1:]
for l in lines:
    f = l.split("\t")
    print(json.dumps({"texts": [f[3], f[4]], "label": int(f[0])}))
PYEOF
	same_examples "$TMP/mrpc.jsonl" "$TMP/want.jsonl"
	ok $? "mrpc $split: equal Python's reading (BOM, CRLF, literal quotes)"
	is "$(jq .label "$TMP/mrpc.jsonl" | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')" \
		"$(case $split in train) echo '0:1169 1:2407 ' ;; dev) echo '0:154 1:346 ' ;; test) echo '0:578 1:1147 ' ;; esac)" \
		"mrpc $split: label counts from PROVENANCE.md"
done
roundtrip "$TMP/mrpc.jsonl" mrpc

# ---- TREC ----
d=$SHARED/trec
for split in train test; do
	file=$(case $split in train) echo train_5500.label ;; test) echo TREC_10.label ;; esac)
	$C/trec --split $split "$d" > "$TMP/trec-c.jsonl" && $C/trec --fine --split $split "$d" > "$TMP/trec-f.jsonl"
	ok $? "trec --split $split runs (coarse, fine)"
	$PY - "$d/$file" "$TMP" <<'PYEOF'
import json, sys
# Li & Roth's taxonomy order, as the Hugging Face trec dataset numbers its classes
coarse = ["ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"]
fine = ("ABBR:abb ABBR:exp ENTY:animal ENTY:body ENTY:color ENTY:cremat ENTY:currency ENTY:dismed ENTY:event "
        "ENTY:food ENTY:instru ENTY:lang ENTY:letter ENTY:other ENTY:plant ENTY:product ENTY:religion ENTY:sport "
        "ENTY:substance ENTY:symbol ENTY:techmeth ENTY:termeq ENTY:veh ENTY:word DESC:def DESC:desc DESC:manner "
        "DESC:reason HUM:gr HUM:ind HUM:title HUM:desc LOC:city LOC:country LOC:mount LOC:other LOC:state "
        "NUM:code NUM:count NUM:date NUM:dist NUM:money NUM:ord NUM:other NUM:period NUM:perc NUM:speed "
        "NUM:temp NUM:volsize NUM:weight").split()
assert len(fine) == 50
with open(sys.argv[2] + "/want-c.jsonl", "w") as c, open(sys.argv[2] + "/want-f.jsonl", "w") as f:
    for raw in open(sys.argv[1], "rb"):
        label, _, text = raw.replace(b"\xf0", b" ").decode("latin-1").rstrip("\r\n").partition(" ")
        text = text.rstrip(" ")
        print(json.dumps({"texts": [text], "label": coarse.index(label.split(":")[0])}), file=c)
        print(json.dumps({"texts": [text], "label": fine.index(label)}), file=f)
PYEOF
	same_examples "$TMP/trec-c.jsonl" "$TMP/want-c.jsonl" && same_examples "$TMP/trec-f.jsonl" "$TMP/want-f.jsonl"
	ok $? "trec $split: coarse and fine ids equal Python's reading"
done
is "$($C/trec "$d" | jq .label | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')" "0:86 1:1250 2:1162 3:1223 4:835 5:896 " \
	"trec train: ABBR 86 ENTY 1250 DESC 1162 HUM 1223 LOC 835 NUM 896 (PROVENANCE.md)"
$C/trec "$d" | grep -c 'sister city' > /dev/null
ok $? "trec: the corrupt byte of 'sister?city' becomes a space"
valid_json "$TMP/trec-f.jsonl"
ok $? "trec: valid examples"
roundtrip "$TMP/trec-c.jsonl" trec

# ---- TrecQA ----
d=$SHARED/trecqa-anssel
for split in train dev test; do
	$C/trecqa --split $split "$d" > "$TMP/qa-t.jsonl" && $C/trecqa --case pairs --split $split "$d" > "$TMP/qa-p.jsonl" &&
		$C/trecqa --all --split $split "$d" > "$TMP/qa-a.jsonl"
	ok $? "trecqa --split $split runs (triplets, pairs, --all)"
	$PY - "$d/$split.csv" "$TMP" <<'PYEOF'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8", newline="")))
qs = {}
with open(sys.argv[2] + "/want-p.jsonl", "w") as p:
    for r in rows:
        print(json.dumps({"texts": [r["qtext"], r["atext"]], "label": int(r["label"])}), file=p)
        qs.setdefault(r["qtext"], ([], []))[r["label"] == "0"].append(r["atext"])
with open(sys.argv[2] + "/want-t.jsonl", "w") as t, open(sys.argv[2] + "/want-a.jsonl", "w") as a:
    for q, (pos, neg) in qs.items():
        if pos and neg:
            for i, x in enumerate(pos):
                print(json.dumps({"texts": [q, x, neg[i % len(neg)]]}), file=t)
                for y in neg:
                    print(json.dumps({"texts": [q, x, y]}), file=a)
PYEOF
	same_examples "$TMP/qa-p.jsonl" "$TMP/want-p.jsonl" && same_examples "$TMP/qa-t.jsonl" "$TMP/want-t.jsonl" &&
		same_examples "$TMP/qa-a.jsonl" "$TMP/want-a.jsonl"
	ok $? "trecqa $split: pairs, triplets, --all equal Python's csv reading"
	is "$(wc -l < "$TMP/qa-p.jsonl") $(jq .label "$TMP/qa-p.jsonl" | grep -c 1)" \
		"$(case $split in train) echo '4718 348' ;; dev) echo '1148 222' ;; test) echo '1517 284' ;; esac)" \
		"trecqa $split: rows and positives from PROVENANCE.md"
done
is "$($C/trecqa --detok "$d" | head -1 | jq -r '.texts[1]')" \
	"the IRON LADY ; A Biography of Margaret Thatcher by Hugo Young ( Farrar , Straus & Giroux )" "trecqa --detok: brackets"
roundtrip "$TMP/qa-t.jsonl" trecqa

# ---- errors ----
$C/stsb --split nope "$SHARED/stsbenchmark" 2> /dev/null
is $? 64 "unknown split: exit 64"
$C/stsb "$TMP/absent.csv" 2> /dev/null
is $? 66 "missing input: exit 66"
printf 'only\ttwo\n' | $C/stsb 2> "$TMP/err"
is $? 65 "bad row: exit 65"
grep -q 'line 1' "$TMP/err"
ok $? "bad row: the message names the line"
$C/stsb "$SHARED/stsbenchmark" | head -1 > /dev/null 2> "$TMP/err"
is "$(cat "$TMP/err")" "" "closed downstream pipe: quiet"
done_testing
