#!/bin/sh
# pipelines/converters/wordnet on the whole of Debian's wordnet-base: every case compared with an independent
# Python reading of the wndb(5) files, hand-checked synsets, the hash split, determinism and speed.
. "$(dirname "$0")/lib.sh"
WN=${WNSEARCHDIR:-/usr/share/wordnet}
[ -r "$WN/data.noun" ] || skip_all "WordNet database absent ($WN/data.noun; apt-get install wordnet-base)"
C=pipelines/converters
PY=/usr/bin/python3

for c in pairs triplets labels scored; do
	start=$(date +%s.%N)
	$C/wordnet --case $c > "$TMP/$c.jsonl"
	ok $? "wordnet --case $c runs"
	echo "# wordnet --case $c: $(wc -l < "$TMP/$c.jsonl") examples in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
done

# Independent reading: regexes over the raw lines, dicts instead of awk arrays; writes the expected
# pairs / triplets / labels, and checks every scored pair whose two definitions name one synset each.
$PY - "$WN" "$TMP" <<'PYEOF' > "$TMP/py.log" 2>&1
import json, re, sys
from collections import defaultdict
wn, tmp = sys.argv[1], sys.argv[2]
order, defn, exs, lexf, hyper, words = [], {}, {}, {}, defaultdict(list), {}
senses = {}
for pos in ["noun", "verb", "adj", "adv"]:
    for line in open(f"{wn}/index.{pos}", encoding="ascii"):
        if line.startswith("  "):
            continue
        f = line.split()
        p = "a" if f[1] == "s" else f[1]
        senses[(p, f[0])] = [p + o for o in f[len(f) - int(f[2]):]]
for pos in ["noun", "verb", "adj", "adv"]:
    for line in open(f"{wn}/data.{pos}", encoding="ascii"):
        if line.startswith("  "):
            continue
        head, _, gloss = line.partition(" | ")
        f = head.split()
        p = "a" if f[2] == "s" else f[2]
        sid = p + f[0]
        order.append(sid)
        lexf[sid] = int(f[1])
        nw = int(f[3], 16)
        words[sid] = [re.sub(r"\([a-z]+\)$", "", w.lower()) for w in f[4:4 + 2 * nw:2]]
        k = 4 + 2 * nw
        for i in range(int(f[k])):
            sym, off, tp = f[k + 1 + 4 * i: k + 4 + 4 * i]
            if sym in ("@", "@i"):
                hyper[sid].append(tp + off)
        gloss = gloss.strip()
        m = gloss.find('; "')
        if gloss.startswith('"'):
            d, rest = "", gloss
        elif m >= 0:
            d, rest = gloss[:m], gloss[m + 2:]
        else:
            d, rest = gloss, ""
        d = d.strip()
        if d.endswith(";"):
            d = d[:-1]
        defn[sid] = d
        exs[sid] = [e.strip() for e in re.findall(r'"([^"]*)"', rest) if " " in e.strip()]
def put(name, rows):
    with open(f"{tmp}/want-{name}.jsonl", "w") as out:
        for r in rows:
            print(json.dumps(r), file=out)
put("pairs", ({"texts": [e, defn[s]]} for s in order if defn[s] for e in exs[s]))
def split_of(s):   # the documented hash: offset*5 + pos code, twice x -> (x*40503 + 1) mod 4294967291
    x = int(s[1:]) * 5 + "nvar".index(s[0]) + 1
    for _ in range(2):
        x = (x * 40503 + 1) % 4294967291
    return "test" if x % 10 == 0 else "dev" if x % 10 == 1 else "train"
for sp in ["dev", "test"]:
    put("split-" + sp, ({"texts": [e, defn[s]]} for s in order if defn[s] and split_of(s) == sp for e in exs[s]))
put("labels", ({"texts": [e], "label": lexf[s]} for s in order if defn[s] for e in exs[s]))
def triplets(in_split=None):   # in_split: only synsets of that split, and only negatives from it
    for s in order:
        if not defn[s] or (in_split and split_of(s) != in_split):
            continue
        for k, e in enumerate(exs[s]):
            neg = None
            for w in words[s]:
                other = [t for t in senses.get((s[0], w), []) if t != s and defn[t] and defn[t] != defn[s]
                         and (not in_split or split_of(t) == in_split)]
                if other:
                    neg = other[k % len(other)]
                    break
            if neg is None:
                break
            yield {"texts": [e, defn[s], defn[neg]]}
put("triplets", triplets())
put("triplets-train-in-split", triplets("train"))
# scored: path length through the nearest common ancestor (hypernyms and instance hypernyms)
by_def = defaultdict(list)
for s in order:
    by_def[defn[s]].append(s)
memo = {}
def up(s):
    if s not in memo:
        dist, frontier = {s: 0}, [s]
        while frontier:
            nxt = []
            for x in frontier:
                for h in hyper[x]:
                    if h not in dist:
                        dist[h] = dist[x] + 1
                        nxt.append(h)
            frontier = nxt
        memo[s] = dist
    return memo[s]
checked = bad = 0
values = set()
for i, line in enumerate(open(f"{tmp}/scored.jsonl")):
    r = json.loads(line)
    if i % 4:   # every 4th pair keeps the test short
        continue
    a, b = by_def[r["texts"][0]], by_def[r["texts"][1]]
    values.add(round(r["label"], 9))
    if len(a) != 1 or len(b) != 1:
        continue
    da, db = up(a[0]), up(b[0])
    common = set(da) & set(db)
    want = 1 / (1 + min(da[c] + db[c] for c in common)) if common else 0.0
    checked += 1
    if abs(want - r["label"]) > 1e-9:
        bad += 1
        if bad < 5:
            print("scored mismatch", r, want)
print(f"scored checked {checked} bad {bad}")
ok = all(v == 0 or abs(1 / v - round(1 / v)) < 1e-6 for v in values)
print("scored values of the form 1/(1+d):", ok)
PYEOF
ok $? "independent Python reading runs"
while IFS= read -r line; do echo "# $line"; done < "$TMP/py.log"

same_examples() {
	$PY - "$1" "$2" <<'PYEOF'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
want = [json.loads(l) for l in open(sys.argv[2])]
if got != want:
    n = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
    sys.exit("rows %d vs %d; first difference at row %d: %r vs %r" % (len(got), len(want), n + 1,
             got[n] if n < len(got) else None, want[n] if n < len(want) else None))
PYEOF
}
for c in pairs triplets labels; do
	same_examples "$TMP/$c.jsonl" "$TMP/want-$c.jsonl"
	ok $? "wordnet --case $c equals the independent reading"
done
$C/wordnet --case triplets --split train --negatives-in-split > "$TMP/triplets-train-in-split.jsonl" &&
	same_examples "$TMP/triplets-train-in-split.jsonl" "$TMP/want-triplets-train-in-split.jsonl"
ok $? "wordnet --case triplets --split train --negatives-in-split: only train synsets' definitions as negatives"
grep -q '^scored checked [0-9]* bad 0$' "$TMP/py.log"
ok $? "wordnet --case scored: 1/(1+path length) equals a Python breadth-first search on every unambiguous pair"
grep -q 'of the form 1/(1+d): True' "$TMP/py.log"
ok $? "wordnet --case scored: every label is 0 or 1/(1+d) for an integer d"

# Hand-checked: verb synset 00001740 (breathe; lexicographer file 29, verb.body):
# | draw air into, and expel out of, the lungs; "I can breathe better when the air is clean"; "The patient is respiring"
grep -qxF '{"texts":["I can breathe better when the air is clean","draw air into, and expel out of, the lungs"]}' "$TMP/pairs.jsonl"
ok $? "pairs: breathe's first example with its definition"
grep -qxF '{"texts":["The patient is respiring"],"label":29}' "$TMP/labels.jsonl"
ok $? "labels: breathe's second example, verb.body = 29"
# its hard negative: the first other verb sense of "breathe" in index.verb, read with grep and sed
other=$(grep '^breathe v ' "$WN/index.verb" | tr ' ' '\n' | grep -E '^[0-9]{8}$' | grep -v '^00001740$' | head -1)
negdef=$(grep "^$other " "$WN/data.verb" | sed 's/^[^|]*| //; s/; ".*//; s/ *$//')
is "$(grep -F '"I can breathe better when the air is clean"' "$TMP/triplets.jsonl" | jq -r '.texts[2]')" "$negdef" \
	"triplets: breathe's negative is the definition of its next sense ($other)"
# physical_entity (n00001930) has the single hypernym entity (n00001740): path 1, score 1/2
is "$(head -1 "$TMP/scored.jsonl")" \
	'{"texts":["an entity that has physical existence","that which is perceived or known or inferred to have its own distinct existence (living or nonliving)"],"label":0.5}' \
	"scored: physical_entity / entity = 1/(1+1)"

# Splits: the documented hash reproduced in Python; together the whole; about 80/10/10.
for sp in dev test; do
	$C/wordnet --split $sp > "$TMP/split-$sp.jsonl"
	same_examples "$TMP/split-$sp.jsonl" "$TMP/want-split-$sp.jsonl"
	ok $? "--split $sp: the synsets whose hash says $sp ($(wc -l < "$TMP/split-$sp.jsonl") examples)"
done
n=$(wc -l < "$TMP/pairs.jsonl") ndev=$(wc -l < "$TMP/split-dev.jsonl") ntest=$(wc -l < "$TMP/split-test.jsonl")
[ $((ndev * 100 / n)) -ge 8 ] && [ $((ndev * 100 / n)) -le 12 ] && [ $((ntest * 100 / n)) -ge 8 ] && [ $((ntest * 100 / n)) -le 12 ]
ok $? "splits: dev and test each 8-12% of the examples"
$C/wordnet --sample 10 > "$TMP/s10.jsonl"
n10=$(wc -l < "$TMP/s10.jsonl")
sort "$TMP/s10.jsonl" > "$TMP/a"; sort "$TMP/pairs.jsonl" > "$TMP/b"
[ "$n10" -gt $((n / 13)) ] && [ "$n10" -lt $((n / 8)) ] && [ -z "$(comm -23 "$TMP/a" "$TMP/b")" ]
ok $? "--sample 10 keeps about a tenth ($n10 of $n), a subset"
jq -e '.texts | length == 3 and all(type == "string" and length > 0)' "$TMP/triplets.jsonl" > /dev/null
ok $? "triplets: valid JSON, three non-empty texts"
if [ -x bin/st-json ]; then
	head -1000 "$TMP/scored.jsonl" > "$TMP/s.jsonl"
	st-json --to-msgpack < "$TMP/s.jsonl" | st-json | jq -c 'del(.v)' > "$TMP/rt.jsonl" &&
		$PY -c 'import json,sys; a=[json.loads(l) for l in open(sys.argv[1])]; b=[json.loads(l) for l in open(sys.argv[2])]; sys.exit(a!=b)' "$TMP/rt.jsonl" "$TMP/s.jsonl"
	ok $? "st-json --to-msgpack | st-json round trip"
fi
$C/wordnet "$TMP/nowhere" 2> /dev/null
is $? 66 "missing database: exit 66"
done_testing
