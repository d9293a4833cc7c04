#!/bin/sh
# st-encode: text lines (or JSON Lines) to embeddings in input order; agrees with the pipeline
# st-tokenize | st-batch | st-forward; f32 output; window and batch sizes do not change results.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"

tiny_model "$TMP/m" --pooling mean --normalize

cat > "$TMP/in.txt" <<'TXT'
the cat sat on the mat.
a dog
the big red house , the small blue tree , a cat ran far away.

dog
The Cat Sat
TXT
n=$(wc -l < "$TMP/in.txt")
# numbers one per line; close A B: same count, each within 1e-5
round() { jq -c '.embedding[]'; }
close() { [ "$(wc -l < "$1")" -eq "$(wc -l < "$2")" ] && [ -s "$1" ] &&
	paste "$1" "$2" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5) bad++ } END { exit bad > 0 }'; }

st-encode --model "$TMP/m" < "$TMP/in.txt" > "$TMP/out.json"; ok $? "encode"
is "$(wc -l < "$TMP/out.json")" "$n" "one line out per line in"
is "$(jq -s -c 'map(.embedding | length) | unique' "$TMP/out.json")" '[16]' "16 numbers each"
is "$(jq -s -c 'map(.embedding | map(. * .) | add * 1000 | round) | unique' "$TMP/out.json")" '[1000]' \
	"normalized (Normalize module)"

round < "$TMP/out.json" > "$TMP/ref"
st-encode --model "$TMP/m" --batch-size 1 --window 1 < "$TMP/in.txt" | round > "$TMP/b1"
close "$TMP/ref" "$TMP/b1"; ok $? "batch size and window do not change the embeddings or their order"
st-encode --model "$TMP/m" --batch-size 2 --window 3 < "$TMP/in.txt" | round > "$TMP/b2"
close "$TMP/ref" "$TMP/b2"; ok $? "... nor do windows that cut through batches"
while IFS= read -r line; do printf '%s\n' "$line" | st-encode --model "$TMP/m"; done < "$TMP/in.txt" | round > "$TMP/single"
close "$TMP/ref" "$TMP/single"; ok $? "each line alone gives the same embedding"

jq -R -c '{text: .}' < "$TMP/in.txt" | st-encode --model "$TMP/m" | round > "$TMP/jl"
close "$TMP/ref" "$TMP/jl"; ok $? "JSON Lines with \"text\" give the same"

# the pipeline: st-tokenize | st-batch | st-forward
jq -R -c '{texts: [.]}' < "$TMP/in.txt" | st-tokenize --model "$TMP/m" | st-batch --size 100 \
	| st-forward --model "$TMP/m" --json | jq -c '.embeddings[0][] | {embedding: .}' | round > "$TMP/pipe"
close "$TMP/ref" "$TMP/pipe"; ok $? "agrees with st-tokenize | st-batch | st-forward"

st-encode --model "$TMP/m" --format f32 < "$TMP/in.txt" > "$TMP/out.f32"; ok $? "--format f32"
is "$(wc -c < "$TMP/out.f32")" $((n * 16 * 4)) "raw float32 [lines][dim]"
od -A n -v -t f4 -w64 "$TMP/out.f32" | awk '{ s = "["; for (i = 1; i <= NF; i++) s = s (i > 1 ? "," : "") $i; print "{\"embedding\": " s "]}" }' \
	| round > "$TMP/f32"
close "$TMP/ref" "$TMP/f32"; ok $? "the same numbers as the JSON output"

st-encode --model "$TMP/m" "$TMP/in.txt" | round > "$TMP/file"
close "$TMP/ref" "$TMP/file"; ok $? "reads FILE arguments"
printf '' | st-encode --model "$TMP/m" > "$TMP/empty"; ok $? "empty input"
is "$(wc -c < "$TMP/empty")" 0 "... no output"
yes 'the cat sat on the mat' | head -2000 | st-encode --model "$TMP/m" | head -1 > /dev/null; ok $? "a closed downstream pipe is not an error"

printf '{"text": "a cat"}\n{"txt": "a dog"}\n' | st-encode --model "$TMP/m" > /dev/null 2>"$TMP/err"
is $? 65 "a JSON line without text"
grep -q 'line 2' "$TMP/err"; ok $? "... names the line"
st-encode --model "$TMP/nowhere" < "$TMP/in.txt" > /dev/null 2>&1; is $? 66 "missing model"
# a tokenizer with more words than the model's embedding table: refused, never read outside the table
cp -R "$TMP/m" "$TMP/mismatch"
tiny_vocab "$TMP/big.txt" "$TINY_WORDS zebra"
st-vocab --from "$TMP/big.txt" -o "$TMP/mismatch" 2>/dev/null
echo "a zebra" | st-encode --model "$TMP/mismatch" > /dev/null 2>"$TMP/err"; is $? 65 "a token id beyond the model's vocabulary"
grep -q 'outside the model.s vocabulary' "$TMP/err"; ok $? "... says so"
st-encode --model "$TMP/m" --format csv < "$TMP/in.txt" > /dev/null 2>&1; is $? 64 "unknown format"
done_testing
