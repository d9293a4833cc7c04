#!/bin/sh
# st-mine --hard-negatives and --communities against tests/reference/mining_ref.py, an independent numpy version
# of the library's rules (mine_hard_negatives, community_detection) computed on st-encode's embeddings of the
# same texts; --with-text and the cosine clamp of st-mine and st-search; bad input.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"
command -v jq > /dev/null || skip_all "jq is absent"
/usr/bin/python3 -c 'import numpy' 2> /dev/null || skip_all "python3-numpy is absent"
REF=tests/reference/mining_ref.py

tiny_model "$TMP/m" --pooling mean
# (query, positive) pairs from the tiny model's words; "the cat" has three positives, "a dog" two (one unlike
# it: margins are measured from the least similar positive)
cat > "$TMP/pairs.jsonl" <<'J'
{"texts": ["the cat", "the cat sat on the mat"]}
{"texts": ["a dog", "a dog ran far away"]}
{"texts": ["the house", "the big red house"]}
{"texts": ["a tree", "a small blue tree"]}
{"texts": ["the dog", "the dog ran away ."]}
{"texts": ["the cat", "a cat sat on a mat ,"]}
{"texts": ["red house", "a red house , a big house"]}
{"texts": ["blue tree", "the tree is blue"]}
{"texts": ["a mat", "the mat on the house"]}
{"texts": ["far away", "the dog ran far , far away"]}
{"texts": ["a small cat", "a small cat sat"]}
{"texts": ["the big dog", "a big dog ran"]}
{"texts": ["the cat", "a blue house , far away"]}
{"texts": ["a dog", "the red mat"]}
J
printf '%s\n' "a cat ran" "the red tree" "a blue mat" "a house on a small tree" "a small dog sat" \
	"the cat sat on the mat" > "$TMP/extra.txt"

# hn NAME [--corpus FILE] -- REF-OPTIONS -- ST-OPTIONS: st-mine's examples equal the reference's
hn() {
	name=$1 corpus=
	shift
	[ "$1" = --corpus ] && { corpus=$2; shift 2; }
	ref_opts=
	while [ "$1" != -- ]; do ref_opts="$ref_opts $1"; shift; done
	shift
	/usr/bin/python3 $REF texts "$TMP/pairs.jsonl" $corpus "$TMP/q.txt" "$TMP/c.txt"
	st-encode --model "$TMP/m" < "$TMP/q.txt" > "$TMP/q.emb" && st-encode --model "$TMP/m" < "$TMP/c.txt" > "$TMP/c.emb"
	/usr/bin/python3 $REF hn "$TMP/pairs.jsonl" "$TMP/q.txt" "$TMP/q.emb" "$TMP/c.txt" "$TMP/c.emb" $ref_opts \
		> "$TMP/want"
	st-mine --hard-negatives --model "$TMP/m" ${corpus:+--corpus "$corpus"} "$@" "$TMP/pairs.jsonl" \
		2> "$TMP/err" | jq -c . > "$TMP/got"
	jq -c . "$TMP/want" > "$TMP/want.c"
	if cmp -s "$TMP/got" "$TMP/want.c" && [ -s "$TMP/want.c" ]; then ok 0 "$name ($(wc -l < "$TMP/got") examples)"
	else ok 1 "$name"; diff "$TMP/want.c" "$TMP/got" | head -10 | sed 's/^/#   /'; fi
}
hn "defaults (3 negatives, top, triplets)" -- --
hn "num_negatives 2, n-tuple" num_negatives=2 format=n-tuple -- --num-negatives 2 --output-format n-tuple
hn "range_min 2, range_max 8" range_min=2 range_max=8 -- --range-min 2 --range-max 8
hn "range_max 4 leaves some pairs short (n-tuple drops them)" range_max=4 num_negatives=3 format=n-tuple -- \
	--range-max 4 --output-format n-tuple
hn "an extra corpus" --corpus "$TMP/extra.txt" num_negatives=4 -- --num-negatives 4

# margins and scores at values inside the spread of this model's cosines
/usr/bin/python3 $REF texts "$TMP/pairs.jsonl" "$TMP/q.txt" "$TMP/c.txt"
st-encode --model "$TMP/m" < "$TMP/q.txt" > "$TMP/q.emb"; st-encode --model "$TMP/m" < "$TMP/c.txt" > "$TMP/c.emb"
spread=$(/usr/bin/python3 -c '
import json, numpy as np
r = lambda p: np.array([json.loads(l)["embedding"] for l in open(p)])
q, c = r(__import__("sys").argv[1]), r(__import__("sys").argv[2])
q /= np.linalg.norm(q, axis=1, keepdims=True); c /= np.linalg.norm(c, axis=1, keepdims=True)
s = (q @ c.T).ravel()
print("%.6f %.6f %.6f" % (np.quantile(s, 0.5), np.quantile(s, 0.7), (s.max() - s.min()) / 8))' "$TMP/q.emb" "$TMP/c.emb")
set -- $spread
med=$1 q70=$2 step=$3
hn "absolute margin $step" margin=$step -- --margin "$step"
hn "relative margin 0.01" relative_margin=0.01 num_negatives=2 -- --relative-margin 0.01 --num-negatives 2
hn "max_score $med (the median cosine)" max_score=$med -- --max-score "$med"
hn "min_score $q70 and range_min 1" min_score=$q70 range_min=1 -- --min-score "$q70" --range-min 1
hn "margin, max_score, range_max 10, n-tuple" margin=$step max_score=$q70 range_max=10 num_negatives=2 \
	format=n-tuple -- --margin "$step" --max-score "$q70" --range-max 10 --num-negatives 2 --output-format n-tuple

# random sampling: checked by its rules (allowed candidates, count, distinct, best first), and seeded
for opts in "range_max=10 num_negatives=3" "range_min=1 range_max=9 num_negatives=2 margin=$step"; do
	st_opts=$(echo "$opts" | sed 's/range_min=/--range-min /; s/range_max=/--range-max /;
		s/num_negatives=/--num-negatives /; s/margin=/--margin /')
	st-mine --hard-negatives --model "$TMP/m" --sampling-strategy random $st_opts "$TMP/pairs.jsonl" \
		> "$TMP/rand" 2> /dev/null
	r=$(/usr/bin/python3 $REF check-random "$TMP/rand" "$TMP/pairs.jsonl" "$TMP/q.txt" "$TMP/q.emb" "$TMP/c.txt" \
		"$TMP/c.emb" $opts)
	is "$r" ok "random sampling obeys the rules ($opts)"
done
st-mine --hard-negatives --model "$TMP/m" --sampling-strategy random --range-max 10 "$TMP/pairs.jsonl" > "$TMP/r1"
st-mine --hard-negatives --model "$TMP/m" --sampling-strategy random --range-max 10 "$TMP/pairs.jsonl" > "$TMP/r2"
st-mine --hard-negatives --model "$TMP/m" --sampling-strategy random --range-max 10 --seed 7 "$TMP/pairs.jsonl" \
	> "$TMP/r3"
cmp -s "$TMP/r1" "$TMP/r2"; ok $? "random sampling is seeded: the same output twice"
st-mine --hard-negatives --model "$TMP/m" --range-max 10 "$TMP/pairs.jsonl" > "$TMP/top"
! cmp -s "$TMP/r1" "$TMP/top" || ! cmp -s "$TMP/r1" "$TMP/r3"; ok $? "random sampling differs from top (or by seed)"
jq -e -s 'all(.[]; (.texts | length) == 3 and .texts[2] != .texts[1])' "$TMP/top" > /dev/null
ok $? "no negative is the pair's positive"
jq -e -s 'map(select(.texts[0] == "the cat") | .texts[2]) |
	all(.[]; . != "the cat sat on the mat" and . != "a cat sat on a mat ,")' "$TMP/top" > /dev/null
ok $? "a query's other positives are not its negatives either"
st-mine --hard-negatives --model "$TMP/m" --output-format n-tuple "$TMP/pairs.jsonl" | st-tokenize --model "$TMP/m" \
	> "$TMP/tok.msgpack"
ok $? "n-tuples are ready for st-tokenize"

# communities against the reference
jq -r '.texts[]' "$TMP/pairs.jsonl" | sort -u > "$TMP/s.txt"
st-encode --model "$TMP/m" < "$TMP/s.txt" > "$TMP/s.emb"
th=$(/usr/bin/python3 -c '
import json, sys, numpy as np
e = np.array([json.loads(l)["embedding"] for l in open(sys.argv[1])]); e /= np.linalg.norm(e, axis=1, keepdims=True)
s = e @ e.T; print("%.6f" % np.quantile(s[np.triu_indices(len(e), 1)], 0.8))' "$TMP/s.emb")
for args in "$th 2" "$th 3" "0.5 1" "1.5 1"; do
	set -- $args
	/usr/bin/python3 $REF communities "$TMP/s.emb" "$1" "$2" > "$TMP/want"
	st-mine --communities --model "$TMP/m" --threshold "$1" --min-community-size "$2" "$TMP/s.txt" | jq -c . > "$TMP/got"
	jq -c . "$TMP/want" > "$TMP/want.c"
	cmp -s "$TMP/got" "$TMP/want.c"; ok $? "communities (threshold $1, min size $2: $(wc -l < "$TMP/got") communities)" ||
		diff "$TMP/want.c" "$TMP/got" | head -6 | sed 's/^/#   /'
done
st-mine --communities --embeddings --threshold "$th" --min-community-size 2 < "$TMP/s.emb" | jq -c . > "$TMP/ge"
/usr/bin/python3 $REF communities "$TMP/s.emb" "$th" 2 | jq -c . > "$TMP/we"
cmp -s "$TMP/ge" "$TMP/we"; ok $? "communities from --embeddings"
st-mine --communities --model "$TMP/m" --threshold "$th" --min-community-size 2 --with-text "$TMP/s.txt" > "$TMP/gt"
is "$(jq -c 'map(.id)' "$TMP/gt")" "$(cat "$TMP/we")" "--with-text: the same ids"
is "$(jq -r '.[] | "\(.id) \(.text)"' "$TMP/gt" | while read -r id t; do
	[ "$(sed -n "$((id + 1))p" "$TMP/s.txt")" = "$t" ] || echo "$id"; done)" "" "--with-text: each id's own line"

# --with-text and the clamp in pair mining and search
st-mine --model "$TMP/m" --with-text --top-k 3 "$TMP/s.txt" > "$TMP/pt"
is "$(jq -r '"\(.i) \(.texts[0])"' "$TMP/pt" | while read -r i t; do
	[ "$(sed -n "$((i + 1))p" "$TMP/s.txt")" = "$t" ] || echo "$i"; done)" "" "st-mine --with-text gives line i's text"
# a sentence twice: its two copies' cosine is 1 up to rounding, printed as at most 1
printf 'the cat sat on the mat\nthe cat sat on the mat\na dog ran far away\nthe big red house\n' > "$TMP/dup.txt"
is "$(st-mine --model "$TMP/m" "$TMP/dup.txt" | jq -s 'map(.score) | max <= 1 and (.[0] > 0.99999)')" true \
	"st-mine: a duplicate's cosine is close to 1 and never above"
# random float32 vectors, each twice: without the clamp some of these pairs print 1.00000012 (checked once)
/usr/bin/python3 -c '
import json, numpy as np
rng = np.random.default_rng(1)
for i in range(40):
    v = [float(x) for x in rng.normal(size=16).astype(np.float32)]
    print(json.dumps({"embedding": v})); print(json.dumps({"embedding": v}))' > "$TMP/dup.emb"
is "$(st-mine --embeddings --top-k 1 < "$TMP/dup.emb" | jq -s 'map(select(.j == .i + 1 and .i % 2 == 0) | .score) |
	length == 40 and max == 1 and min > 0.9999')" true "st-mine: duplicated vectors' cosines printed as at most 1"
is "$(st-search --embeddings --corpus "$TMP/dup.emb" --top-k 2 < "$TMP/dup.emb" | jq -s 'map(.[].score) | max')" 1 \
	"st-search: cosine scores of duplicated vectors printed as at most 1"
st-search --model "$TMP/m" --corpus "$TMP/dup.txt" --with-text --top-k 2 < "$TMP/dup.txt" > "$TMP/st"
is "$(jq -s 'map(.[].score) | max <= 1' "$TMP/st")" true "st-search: cosine scores never above 1"
is "$(jq -r '.[0].text' "$TMP/st" | head -1)" "the cat sat on the mat" "st-search --with-text gives the corpus text"
is "$(jq -r '.[] | "\(.corpus_id) \(.text)"' "$TMP/st" | while read -r id t; do
	[ "$(sed -n "$((id + 1))p" "$TMP/dup.txt")" = "$t" ] || echo "$id"; done)" "" "st-search --with-text: each corpus_id's own line"

# bad input
st-mine --hard-negatives --model "$TMP/m" --sampling-strategy best "$TMP/pairs.jsonl" 2> "$TMP/e"; is $? 64 \
	"--sampling-strategy best: 64"
grep -q "top or random" "$TMP/e"; ok $? "... saying which are allowed"
st-mine --hard-negatives --embeddings < /dev/null 2> /dev/null; is $? 64 "--hard-negatives --embeddings: 64"
st-mine --hard-negatives --model "$TMP/m" --output-format triples "$TMP/pairs.jsonl" 2> /dev/null; is $? 64 \
	"--output-format triples: 64"
st-mine --hard-negatives --model "$TMP/m" --num-negatives 0 "$TMP/pairs.jsonl" 2> /dev/null; is $? 64 \
	"--num-negatives 0: 64"
st-mine --hard-negatives --model "$TMP/m" --margin x "$TMP/pairs.jsonl" 2> /dev/null; is $? 64 "--margin x: 64"
st-mine --embeddings --with-text < "$TMP/s.emb" 2> /dev/null; is $? 64 "--with-text with --embeddings: 64"
printf '{"texts": ["only a query"]}\n' | st-mine --hard-negatives --model "$TMP/m" 2> "$TMP/e"; is $? 65 \
	"a record with one text: 65"
grep -q "stdin, line 1" "$TMP/e"; ok $? "... naming the line: $(cat "$TMP/e")"
printf '{"texts": ["a", "b"]}\n{"texts": \n' | st-mine --hard-negatives --model "$TMP/m" 2> "$TMP/e"; is $? 65 \
	"malformed JSON: 65"
grep -q "line 2" "$TMP/e"; ok $? "... naming line 2"
st-mine --hard-negatives --model "$TMP/m" < /dev/null 2> /dev/null; is $? 65 "no pairs: 65"
st-mine --hard-negatives --model "$TMP/m" --corpus "$TMP/absent" "$TMP/pairs.jsonl" 2> /dev/null; is $? 66 \
	"a missing --corpus: 66"
st-mine --communities --model "$TMP/m" --min-community-size 0 "$TMP/s.txt" 2> /dev/null; is $? 64 \
	"--min-community-size 0: 64"
st-search --embeddings --corpus "$TMP/s.emb" --with-text < "$TMP/s.emb" 2> /dev/null; is $? 64 \
	"st-search --with-text with --embeddings: 64"
done_testing
