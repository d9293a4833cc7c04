#!/bin/sh
# st-mine: paraphrase mining equals a brute-force numpy version of the library's algorithm (top_k + 1 per
# row and corpus chunk, the max_pairs queue), and the text path equals st-encode + --embeddings.
. "$(dirname "$0")/lib.sh"

if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
	out=$(TMP=$TMP /usr/bin/python3 tests/reference/metrics_ref.py mine 2>&1)
	ok $? "mined pairs equal numpy's brute force (top-k, corpus chunks, max-pairs)"
	[ "$out" = ok ] || echo "$out" | sed 's/^/#   /'
fi

printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n' > "$TMP/vocab.txt"
for w in the a cat dog sat on mat ran far away big small red blue house tree . ,; do echo "$w"; done >> "$TMP/vocab.txt"
cat > "$TMP/bert.json" <<'JSON'
{"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
 "intermediate_size": 32, "max_position_embeddings": 40}
JSON
st-init --config "$TMP/bert.json" --vocab "$TMP/vocab.txt" -o "$TMP/m" 2>/dev/null || skip_all "st-init cannot build a model"
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
done_testing
