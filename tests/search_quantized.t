#!/bin/bash
# st-search --precision int8|uint8|binary|ubinary (a quantized corpus, rescored) against
# tests/reference/quant_search_ref.py, numpy's version of the library's quantize_embeddings + semantic search
# with rescoring, on random embeddings with a shared offset (as untrained models give); --calibration,
# --rescore-multiplier, --score-function dot, the text path; bad input. Then the worked example of
# docs/st-search.md (int8 and binary against float32 on STS-B, recall@10), run as printed there: numpy
# recomputes every hit and the recall figures, and the figures quoted in the page must be what it measures.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
command -v jq > /dev/null || skip_all "jq is absent"
/usr/bin/python3 -c 'import numpy' 2> /dev/null || skip_all "python3-numpy is absent"
REF="$ROOT/tests/reference/quant_search_ref.py"

# 600 corpus rows, 40 queries and 80 calibration rows of 37 dimensions (not a multiple of 8: a padded last byte)
/usr/bin/python3 - "$TMP" <<'PY'
import json, sys
import numpy as np
rng = np.random.default_rng(3)
offset = rng.normal(size=37) * 0.8
for name, n in (("corpus", 600), ("queries", 40), ("cal", 80)):
    x = (rng.normal(size=(n, 37)) + offset).astype(np.float32)
    with open("%s/%s.jsonl" % (sys.argv[1], name), "w") as f:
        for row in x:
            f.write(json.dumps({"embedding": [float(v) for v in row]}) + "\n")
PY
check() {   # check NAME PRECISION [st-search options] -- [reference options]
	name=$1 p=$2
	shift 2
	opts=() refopts=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
	[ "$1" = -- ] && shift
	refopts=("$@")
	st-search --embeddings --corpus "$TMP/corpus.jsonl" --precision "$p" "${opts[@]}" < "$TMP/queries.jsonl" \
		> "$TMP/hits" 2> "$TMP/err"
	ok $? "$name: st-search --precision $p ${opts[*]}" || cat "$TMP/err"
	/usr/bin/python3 "$REF" "$TMP/corpus.jsonl" "$TMP/queries.jsonl" "$p" "$TMP/hits" "${refopts[@]}" > "$TMP/cmp"
	while IFS=$'\t' read -r rc what; do
		case $rc in "#"*) ;; *) ok "$rc" "$name: ${what#"$p: "}" ;; esac
	done < "$TMP/cmp"
}
check float32 float32
for p in int8 uint8 binary ubinary; do
	check "$p" "$p"
done
check "int8 x1" int8 --rescore-multiplier 1 -- --multiplier 1
check "binary x5 top 7" binary --rescore-multiplier 5 --top-k 7 -- --multiplier 5 --top-k 7
check "int8 dot" int8 --score-function dot -- --score-function dot
check "ubinary dot" ubinary --score-function dot -- --score-function dot
check "int8 calibrated" int8 --calibration "$TMP/cal.jsonl" -- --calibration "$TMP/cal.jsonl"
check "uint8 calibrated x3" uint8 --calibration "$TMP/cal.jsonl" --rescore-multiplier 3 -- --calibration "$TMP/cal.jsonl" --multiplier 3
# the reference can tell: int8 hits are not the float32 ones, nor those of another multiplier
st-search --embeddings --corpus "$TMP/corpus.jsonl" --precision int8 < "$TMP/queries.jsonl" > "$TMP/hits"
/usr/bin/python3 "$REF" "$TMP/corpus.jsonl" "$TMP/queries.jsonl" float32 "$TMP/hits" | grep -q $'^1\t'
ok $? "negative control: int8 hits are not numpy's float32 hits"
/usr/bin/python3 "$REF" "$TMP/corpus.jsonl" "$TMP/queries.jsonl" int8 "$TMP/hits" --multiplier 1 | grep -q $'^1\t'
ok $? "negative control: ... nor numpy's int8 hits without oversampling"

# the text path quantizes the same embeddings
tiny_model "$TMP/m" --pooling mean
printf '%s\n' "the cat sat on the mat ." "a dog ran far away ." "the big red house ." "a small blue tree ." \
	"the dog sat on a mat ." "a cat ran away ." "the red tree" "a blue house ." > "$TMP/corpus.txt"
st-encode --model "$TMP/m" < "$TMP/corpus.txt" > "$TMP/tc.jsonl"
for p in int8 binary; do
	st-search --model "$TMP/m" --corpus "$TMP/corpus.txt" --precision $p --top-k 3 < "$TMP/corpus.txt" > "$TMP/a"
	st-search --embeddings --corpus "$TMP/tc.jsonl" --precision $p --top-k 3 < "$TMP/tc.jsonl" > "$TMP/b"
	cmp -s "$TMP/a" "$TMP/b" && [ -s "$TMP/a" ]; ok $? "$p: text input gives the hits of its st-encode embeddings"
done

# bad input
st-search --embeddings --corpus "$TMP/corpus.jsonl" --precision int4 < "$TMP/queries.jsonl" > /dev/null 2> "$TMP/err"
is $? 64 "--precision int4 is a usage error"
grep -q "int4" "$TMP/err"; ok $? "... naming it"
st-search --embeddings --corpus "$TMP/corpus.jsonl" --precision binary --calibration "$TMP/cal.jsonl" \
	< "$TMP/queries.jsonl" > /dev/null 2> "$TMP/err"
is $? 64 "--calibration with binary is a usage error"
st-search --embeddings --corpus "$TMP/corpus.jsonl" --precision int8 --rescore-multiplier 0 \
	< "$TMP/queries.jsonl" > /dev/null 2> "$TMP/err"
is $? 64 "--rescore-multiplier 0 is a usage error"
st-search --embeddings --corpus "$TMP/corpus.jsonl" --precision int8 --calibration "$TMP/nope.jsonl" \
	< "$TMP/queries.jsonl" > /dev/null 2> "$TMP/err"
is $? 66 "a missing calibration file: 66"
head -3 "$TMP/tc.jsonl" > "$TMP/cal16.jsonl"
st-search --embeddings --corpus "$TMP/corpus.jsonl" --precision int8 --calibration "$TMP/cal16.jsonl" \
	< "$TMP/queries.jsonl" > /dev/null 2> "$TMP/err"
is $? 65 "calibration embeddings of another dimension: 65"
grep -q "cal16.jsonl" "$TMP/err"; ok $? "... naming the file" || cat "$TMP/err"

# --- the worked example of docs/st-search.md, as printed
if [ ! -d "$SHARED/stsbenchmark" ]; then
	echo "# ../shared/data/stsbenchmark is absent: the STS-B worked example is skipped"
	done_testing
fi
mkdir -p "$TMP/blocks" "$TMP/w/page"
ln -s "$ROOT/../shared" "$TMP/w/shared"
ln -s "$ROOT/pipelines" "$TMP/w/page/pipelines"
/usr/bin/python3 tests/docs-blocks.py "$TMP/blocks" docs/st-search.md > "$TMP/plan"
n=$(awk -F'\t' '$2 == "mirror" && $5 == "tests/search_quantized.t" { print $1 }' "$TMP/plan")
[ -n "$n" ] && grep -q "precision" "$TMP/blocks/$n.sh"
ok $? "docs/st-search.md has the worked example, marked as run by this test" || { done_testing; }
(cd "$TMP/w/page" && timeout 300 bash -e -o pipefail "$TMP/blocks/$n.sh") > "$TMP/out" 2> "$TMP/err"
ok $? "the worked example runs" || tail -5 "$TMP/err"
W=$TMP/w/page
for p in float32 int8 binary; do
	printed=$(sed -n "s/^$p recall@10: //p" "$TMP/out")
	/usr/bin/python3 "$REF" "$W/sts-corpus.jsonl" "$W/sts-queries.jsonl" $p "$W/hits-$p.jsonl" \
		--float32-hits "$W/hits-float32.jsonl" ${printed:+--recall "$printed"} > "$TMP/cmp"
	while IFS=$'\t' read -r rc what; do
		case $rc in '#'*) echo "# STS-B $p $rc$what" ;; *) ok "$rc" "STS-B $p: ${what#"$p: "}" ;; esac
	done < "$TMP/cmp"
	measured=$(sed -n 's/^# recall@10: //p' "$TMP/cmp")
	[ $p = float32 ] && continue
	# the page quotes the figure; it must be what the example gives here, up to thread-count rounding
	quoted=$(sed -n "s/^It prints .*\`$p recall@10: \([0-9.]*\)\`.*/\1/p; s/.* and \`$p recall@10: \([0-9.]*\)\`.*/\1/p" \
		docs/st-search.md | head -1)
	awk -v a="$quoted" -v b="$measured" 'BEGIN { d = a - b; exit !(a != "" && d < 0.03 && d > -0.03) }'
	ok $? "STS-B $p: the page's recall@10 ($quoted) is what the example measures ($measured) within 0.03"
done
is "$(wc -l < "$W/sts-queries.txt" | tr -d ' ') $(wc -l < "$W/sts-corpus.txt" | tr -d ' ')" "200 2552" \
	"STS-B: 200 queries, 2552 corpus sentences (as the page says)"
done_testing
