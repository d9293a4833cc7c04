#!/bin/sh
# st-search: top-k hits equal brute-force numpy on random embeddings (cosine and dot); the text path equals
# st-encode + --embeddings; the corpus embedding cache is written, reused, and refused when stale.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"

/usr/bin/python3 -c 'import numpy' 2>/dev/null &&
	metrics_ref search "top-k ids and scores equal numpy's brute force"

tiny_model "$TMP/m"
cat > "$TMP/corpus.txt" <<'TXT'
the cat sat on the mat
a dog ran far away
the big red house
a small blue tree
the cat ran
a red dog sat on a big mat
TXT
printf 'a cat on a mat\n{"text": "the blue tree"}\nbig house\n' > "$TMP/q.txt"

st-search --model "$TMP/m" --corpus "$TMP/corpus.txt" --top-k 3 < "$TMP/q.txt" > "$TMP/hits"; ok $? "search with a model"
is "$(wc -l < "$TMP/hits")" 3 "one line per query"
is "$(jq -c 'map(.corpus_id) | length' "$TMP/hits" | sort -u)" 3 "three hits each"
is "$(jq -c '[.[].score] | . == (sort | reverse)' "$TMP/hits" | sort -u)" true "best first"

st-encode --model "$TMP/m" < "$TMP/corpus.txt" > "$TMP/corpus.emb"
printf 'a cat on a mat\nthe blue tree\nbig house\n' | st-encode --model "$TMP/m" |
	st-search --embeddings --corpus "$TMP/corpus.emb" --top-k 3 > "$TMP/hits2"; ok $? "search --embeddings"
is "$(jq -c 'map(.corpus_id)' "$TMP/hits")" "$(jq -c 'map(.corpus_id)' "$TMP/hits2")" "text path = st-encode + --embeddings"
d=$(paste -d ' ' "$TMP/hits" "$TMP/hits2" | jq -s '[range(0; length; 2) as $i | [.[$i][].score] as $a | [.[$i+1][].score] as $b
	| range(0; $a | length) as $k | ($a[$k] - $b[$k]) | fabs] | max < 1e-5')
is "$d" true "... with the same scores"

st-search --model "$TMP/m" --corpus "$TMP/corpus.txt" --corpus-embeddings "$TMP/cache" --top-k 3 < "$TMP/q.txt" > "$TMP/h1"
ok $? "search writing the corpus cache"
[ -s "$TMP/cache" ]; ok $? "the cache file exists"
is "$(head -c 6 "$TMP/cache")" "STEMB1" "... with its magic"
cp "$TMP/cache" "$TMP/cache.orig"
# a cache of the right key but altered vectors would be used as is: prove reuse by altering one
/usr/bin/python3 -c "
import sys, struct
b = bytearray(open(sys.argv[1], 'rb').read())
d = struct.unpack_from('<Q', b, 16)[0]
for k in range(d): struct.pack_into('<f', b, 32 + 4 * k, 0.0)   # corpus row 0 = zeros: score 0
open(sys.argv[1], 'wb').write(b)" "$TMP/cache"
st-search --model "$TMP/m" --corpus "$TMP/corpus.txt" --corpus-embeddings "$TMP/cache" --top-k 6 < "$TMP/q.txt" > "$TMP/h2"
is "$(jq -c '[.[] | select(.corpus_id == 0) | .score]' "$TMP/h2" | sort -u)" "[0]" "a matching cache is reused"
echo "a new line in the corpus" >> "$TMP/corpus.txt"
st-search --model "$TMP/m" --corpus "$TMP/corpus.txt" --corpus-embeddings "$TMP/cache" --top-k 7 < "$TMP/q.txt" > "$TMP/h3"
is "$(jq -c '[.[] | select(.corpus_id == 0) | .score != 0] | all' "$TMP/h3" | sort -u)" true "a stale cache is recomputed"
is "$(jq -c 'length' "$TMP/h3" | sort -u)" 7 "... over the whole new corpus"
ls "$TMP" | grep -q 'cache.tmp'; is $? 1 "no temporary file left"

st-search --model "$TMP/m" < "$TMP/q.txt" 2>/dev/null; is $? 64 "no --corpus: 64"
st-search --model "$TMP/m" --corpus "$TMP/none" < "$TMP/q.txt" 2>/dev/null; is $? 66 "missing corpus: 66"
st-search --model "$TMP/m" --corpus "$TMP/corpus.txt" --score-function manhattan < "$TMP/q.txt" 2>/dev/null; is $? 64 "manhattan: 64"
echo '{"text": ' | st-search --model "$TMP/m" --corpus "$TMP/corpus.txt" 2>/dev/null; is $? 65 "a malformed JSON query: 65"
st-search --model "$TMP/m" --corpus "$TMP/corpus.txt" --top-k 1 < "$TMP/q.txt" | head -1 > /dev/null; ok $? "a closed pipe is fine"
done_testing
