#!/bin/sh
# st-similarity: pair scores and score matrices against PyTorch (the library's formulas: F.normalize + mm,
# mm, -torch.cdist p=2 and p=1, and their pairwise forms) on the embeddings st-encode gives; a hand-worked
# matrix for all four functions; the model's similarity_fn_name as the default; bad input exits 64/65/66.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"

tiny_model "$TMP/m"
cat > "$TMP/pairs.jsonl" <<'JSON'
{"texts": ["the cat sat on the mat", "a cat sat on a mat"]}
{"texts": ["the big red house", "a small blue tree"]}
{"texts": ["a dog ran far away", "a dog ran far away"]}
{"texts": ["the dog", "the big red house , the small blue house and the tree"]}
{"texts": ["tree", "mat"]}
JSON
jq -r '.texts[0]' "$TMP/pairs.jsonl" > "$TMP/a.txt"
jq -r '.texts[1]' "$TMP/pairs.jsonl" > "$TMP/b.txt"
st-encode --model "$TMP/m" < "$TMP/a.txt" > "$TMP/a.emb"
st-encode --model "$TMP/m" < "$TMP/b.txt" > "$TMP/b.emb"

for sim in cosine dot euclidean manhattan; do
	st-similarity --model "$TMP/m" --similarity $sim < "$TMP/pairs.jsonl" > "$TMP/pairs.$sim"
	ok $? "pairs, $sim"
	st-similarity --model "$TMP/m" --similarity $sim --queries "$TMP/a.txt" --corpus "$TMP/b.txt" > "$TMP/matrix.$sim"
	ok $? "matrix, $sim"
	st-similarity --embeddings --similarity $sim --queries "$TMP/a.emb" --corpus "$TMP/b.emb" > "$TMP/ematrix.$sim"
	ok $? "matrix from embeddings, $sim"
	printf '%s\n' "pairs $sim $TMP/pairs.$sim" "matrix $sim $TMP/matrix.$sim" "matrix $sim $TMP/ematrix.$sim" >> "$TMP/checks"
done
# PyTorch on a.emb x b.emb, one line per check of $TMP/checks (MODE SIM FILE): "ok", or what differs
/usr/bin/python3 - "$TMP/a.emb" "$TMP/b.emb" "$TMP/checks" > "$TMP/torch" 2>&1 <<'PY'
import json, sys
import torch
import torch.nn.functional as F
load = lambda p: torch.tensor([json.loads(l)["embedding"] for l in open(p)], dtype=torch.float32)
a, b = load(sys.argv[1]), load(sys.argv[2])
pairwise = {"cosine": lambda: (F.normalize(a, p=2, dim=-1) * F.normalize(b, p=2, dim=-1)).sum(-1),
            "dot": lambda: (a * b).sum(-1),
            "euclidean": lambda: -torch.sqrt(((a - b) ** 2).sum(-1)),
            "manhattan": lambda: -torch.abs(a - b).sum(-1)}
matrix = {"cosine": lambda: F.normalize(a, p=2, dim=1) @ F.normalize(b, p=2, dim=1).T,
          "dot": lambda: a @ b.T,
          "euclidean": lambda: -torch.cdist(a.double(), b.double(), p=2.0).float(),
          "manhattan": lambda: -torch.cdist(a.double(), b.double(), p=1.0).float()}
for line in open(sys.argv[3]):
    mode, sim, path = line.split()
    key = "score" if mode == "pairs" else "scores"
    want = (pairwise if mode == "pairs" else matrix)[sim]()
    got = torch.tensor([json.loads(l)[key] for l in open(path)])
    if got.shape != want.shape:
        print("shape", tuple(got.shape), "want", tuple(want.shape))
    elif not torch.allclose(got, want, rtol=1e-5, atol=1e-5):
        print("max difference", (got - want).abs().max().item())
    else:
        print("ok")
PY
n=0
while read -r mode sim file; do
	n=$((n + 1))
	is "$(sed -n ${n}p "$TMP/torch")" ok "$mode, $sim ($(basename "$file")): equal PyTorch on st-encode's embeddings"
done < "$TMP/checks"
is "$(sed -n 3p "$TMP/pairs.cosine")" '{"score": 1}' "the same text twice: cosine 1"
# the two rows of one text may differ in the last bit (kernels block rows differently, e.g. under the sanitizer
# build's flags): what matters is a distance of about 0 that never prints as -0
score=$(sed -n 3p "$TMP/pairs.euclidean" | jq -r '.score')
awk -v s="$score" 'BEGIN { exit !(s != "-0" && s + 0 <= 0 && s + 0 > -1e-6) }'
ok $? "... euclidean about 0, never -0 (got $score)"
is "$(jq -c '[.scores[] | select(. > 1)] | length' "$TMP/matrix.cosine" | sort -u)" 0 "cosine scores never above 1"

st-similarity --model "$TMP/m" --window 2 --batch-size 1 < "$TMP/pairs.jsonl" > "$TMP/pairs.w2"
cmp -s "$TMP/pairs.w2" "$TMP/pairs.cosine"; ok $? "the window and batch size do not change the scores"
jq -c '{sentence1: .texts[0], sentence2: .texts[1], score: 0.5}' "$TMP/pairs.jsonl" | st-json --to-msgpack |
	st-similarity --model "$TMP/m" > "$TMP/pairs.rows"
cmp -s "$TMP/pairs.rows" "$TMP/pairs.cosine"; ok $? "datasets rows in msgpack give the same scores"

# hand-worked: queries (3,4), (1,0); corpus (3,4), (0,1), (-3,-4)
printf '{"embedding": [3, 4]}\n{"embedding": [1, 0]}\n' > "$TMP/hq"
printf '{"embedding": [3, 4]}\n{"embedding": [0, 1]}\n{"embedding": [-3, -4]}\n' > "$TMP/hc"
hand() { st-similarity --embeddings --similarity "$1" --queries "$TMP/hq" --corpus "$TMP/hc" |
	jq -c '.scores | map(. * 1000000 | round / 1000000)' | paste -sd ' ' -; }
is "$(hand cosine)" "[1,0.8,-1] [0.6,0,-0.6]" "hand-worked: cosine (3*0+4*1)/5 = 0.8, 3/5 = 0.6"
is "$(hand dot)" "[25,4,-25] [3,0,-3]" "hand-worked: dot"
is "$(hand euclidean)" "[0,-4.242641,-10] [-4.472136,-1.414214,-5.656854]" "hand-worked: euclidean -sqrt(18), -sqrt(20), ..."
is "$(hand manhattan)" "[0,-6,-14] [-6,-2,-8]" "hand-worked: manhattan"

# the model's similarity_fn_name
cp -R "$TMP/m" "$TMP/mdot"
jq '.similarity_fn_name = "dot"' "$TMP/m/config_sentence_transformers.json" > "$TMP/mdot/config_sentence_transformers.json"
st-similarity --model "$TMP/mdot" < "$TMP/pairs.jsonl" > "$TMP/pairs.mdot"
cmp -s "$TMP/pairs.mdot" "$TMP/pairs.dot"; ok $? "similarity_fn_name dot is the default of that model"
jq '.similarity_fn_name = null' "$TMP/m/config_sentence_transformers.json" > "$TMP/mdot/config_sentence_transformers.json"
st-similarity --model "$TMP/mdot" < "$TMP/pairs.jsonl" > "$TMP/pairs.mnull"
cmp -s "$TMP/pairs.mnull" "$TMP/pairs.cosine"; ok $? "similarity_fn_name null: cosine"
st-similarity --model "$TMP/mdot" --similarity manhattan < "$TMP/pairs.jsonl" > "$TMP/pairs.mman"
cmp -s "$TMP/pairs.mman" "$TMP/pairs.manhattan"; ok $? "--similarity overrides the model's"

# bad input
echo '{"texts": ["only one"]}' | st-similarity --model "$TMP/m" > /dev/null 2> "$TMP/err"
is $? 65 "an example with one text: exit 65"
grep -q "line 1: only one text" "$TMP/err"; ok $? "... the message names the line: $(cat "$TMP/err")"
printf '%s\n%s\n' "$(head -1 "$TMP/pairs.jsonl")" '{"label": 1}' | st-similarity --model "$TMP/m" > /dev/null 2> "$TMP/err"
is $? 65 "an example without texts: exit 65"
grep -q "line 2: no texts" "$TMP/err"; ok $? "... naming line 2: $(cat "$TMP/err")"
st-similarity --model "$TMP/m" --similarity cosinus < "$TMP/pairs.jsonl" 2> "$TMP/err"
is $? 64 "an unknown --similarity: exit 64"
grep -q "'cosinus' is not one of cosine, dot, euclidean, manhattan" "$TMP/err"; ok $? "... saying which names exist"
jq '.similarity_fn_name = "cosinus"' "$TMP/m/config_sentence_transformers.json" > "$TMP/mdot/config_sentence_transformers.json"
st-similarity --model "$TMP/mdot" < "$TMP/pairs.jsonl" 2> "$TMP/err"
is $? 65 "a model with an unknown similarity_fn_name: exit 65"
grep -q 'config_sentence_transformers.json: similarity_fn_name "cosinus"' "$TMP/err"; ok $? "... naming the file"
st-similarity --model "$TMP/m" --queries "$TMP/a.txt" < /dev/null 2> /dev/null
is $? 64 "--queries without --corpus: exit 64"
st-similarity --model "$TMP/m" --queries "$TMP/a.txt" --corpus "$TMP/none.txt" 2> /dev/null
is $? 66 "a missing corpus file: exit 66"
st-similarity --model "$TMP/none" < "$TMP/pairs.jsonl" 2> /dev/null
is $? 66 "a missing model: exit 66"
st-similarity --model "$TMP/m" < "$TMP/pairs.jsonl" | head -c 1 > /dev/null
is $? 0 "a closed downstream pipe: exit 0"
done_testing
