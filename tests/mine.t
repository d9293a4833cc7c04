#!/bin/sh
# st-mine: paraphrase mining equals a brute-force numpy version of the library's algorithm (top_k + 1 per
# row and corpus chunk, the max_pairs queue), and the text path equals st-encode + --embeddings.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"

/usr/bin/python3 -c 'import numpy' 2>/dev/null &&
	metrics_ref mine "mined pairs equal numpy's brute force (top-k, corpus chunks, max-pairs)"

tiny_model "$TMP/m"
cat > "$TMP/s.txt" <<'TXT'
the cat sat on the mat
a dog ran far away
the cat sat on a mat
the big red house
a small blue tree
the dog ran away
TXT
st-mine --model "$TMP/m" --top-k 2 "$TMP/s.txt" > "$TMP/p"; ok $? "mining with a model"
is "$(jq -c '.i < .j' "$TMP/p" | sort -u)" true "pairs as i < j"
is "$(jq -s -c '[.[].score] | . == (sort | reverse)' "$TMP/p")" true "best first"
is "$(jq -s -c 'map([.i, .j]) | length == (unique | length)' "$TMP/p")" true "no pair twice"
st-encode --model "$TMP/m" < "$TMP/s.txt" | st-mine --embeddings --top-k 2 > "$TMP/p2"; ok $? "mining --embeddings"
is "$(jq -c '[.i, .j]' "$TMP/p" | sort)" "$(jq -c '[.i, .j]' "$TMP/p2" | sort)" "text path = st-encode + --embeddings"
st-mine --model "$TMP/m" --max-pairs 3 < "$TMP/s.txt" > "$TMP/p3"
is "$(wc -l < "$TMP/p3")" 1 "--max-pairs 3 keeps 2 candidates: one unordered pair (as the library)"
st-mine 2>/dev/null < "$TMP/s.txt"; is $? 64 "no model: 64"
st-mine --model "$TMP/m" --top-k 0 < "$TMP/s.txt" 2>/dev/null; is $? 64 "--top-k 0: 64"
cp -R "$TMP/m" "$TMP/mismatch"
tiny_vocab "$TMP/big.txt" "$TINY_WORDS zebra"
st-vocab --from "$TMP/big.txt" -o "$TMP/mismatch" 2>/dev/null
printf 'a zebra\nthe cat\n' | st-mine --model "$TMP/mismatch" > /dev/null 2>&1; is $? 65 "a token id beyond the model's vocabulary: 65"
done_testing
