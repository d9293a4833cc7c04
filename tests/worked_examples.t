#!/bin/bash
# Two worked examples of the documentation, run as printed (extracted with tests/docs-blocks.py) and checked
# against independent computations (the third, quantized search on STS-B, is tests/search_quantized.t):
#   docs/st-encode.md, the e5-style model: st-init, query/passage prompts in config_sentence_transformers.json;
#     token ids of the prompts by hand, the search hits by numpy's cosine top-k over the two embedding files,
#     prompts kept by the fine-tuned model, fine-tuning with a prompt per column.
#   docs/st-mine.md, hard negatives from TrecQA trained on with mnrl (needs ../shared/data/trecqa-anssel): the
#     mined tuples equal tests/reference/mining_ref.py's (numpy, the library's rules) on st-encode's embeddings,
#     no negative is a correct answer of its question (TrecQA's labels), and the training log is whole.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
command -v jq > /dev/null || skip_all "jq is absent"
/usr/bin/python3 -c 'import numpy' 2> /dev/null || skip_all "python3-numpy is absent"

# the fixture of tests/docs.t (m/, corpus.txt, q.txt, pairs.jsonl), with "query", "passage" and ":" in the
# vocabulary so that the prompts are real tokens
W=$TMP/w
mkdir -p "$W/page" "$TMP/blocks"
[ -d "$ROOT/../shared" ] && ln -s "$ROOT/../shared" "$W/shared"
ln -s "$ROOT/pipelines" "$W/page/pipelines"
tiny_vocab "$TMP/vocab.txt" "$TINY_WORDS query passage :"
tiny_model "$W/page/m" --pooling mean
P=$W/page
printf '%s\n' "the cat sat on the mat ." "a dog ran far away ." "the big red house ." "a small blue tree ." \
	"the dog sat on a mat ." "a cat ran away ." > "$P/corpus.txt"
cp "$P/corpus.txt" "$P/q.txt"
awk 'NR > 1 { printf "{\"texts\": [\"%s\", \"%s\"], \"label\": %.2f}\n", prev, $0, (NR % 5) / 5 } { prev = $0 }' \
	"$P/corpus.txt" > "$P/pairs.jsonl"

# run_block PAGE PATTERN: runs the block of PAGE whose text matches PATTERN in $P; its number in $n
run_block() {
	/usr/bin/python3 tests/docs-blocks.py "$TMP/blocks" "$1" > "$TMP/plan"
	n=
	for k in $(cut -f1 "$TMP/plan"); do grep -q -- "$2" "$TMP/blocks/$k.sh" && n=$k && break; done
	[ -n "$n" ]; ok $? "$1 has the worked example ($2)" || return 1
	(cd "$P" && timeout 300 bash -e -o pipefail "$TMP/blocks/$n.sh") > "$TMP/out" 2> "$TMP/err" < /dev/null
	ok $? "$1: the worked example runs" || { tail -5 "$TMP/err"; return 1; }
}

# --- the e5-style model
if run_block docs/st-encode.md "column-prompt-name 0=query"; then
	# [CLS] = 2, query = 23, passage = 24, ":" = 25 (tiny_vocab: the specials, then the words in order)
	st-json < "$P/e5-tok.msgpack" | jq -c '[.input_ids[0][0:3], .input_ids[1][0:3], .prompt_length]' | sort -u > "$TMP/g"
	is "$(cat "$TMP/g")" "[[2,23,25],[2,24,25],[3,3]]" \
		"e5: anchors start with [CLS] query :, positives with [CLS] passage :, prompt_length 3 each"
	jq -c '[.prompts, .default_prompt_name]' "$P/e5/config_sentence_transformers.json" > "$TMP/g"
	is "$(cat "$TMP/g")" '[{"query":"query: ","passage":"passage: "},"query"]' "e5: st-init wrote the prompts and the default"
	jq -c '[.prompts, .default_prompt_name]' "$P/e5-run/model/config_sentence_transformers.json" > "$TMP/g"
	is "$(cat "$TMP/g")" '[{"query":"query: ","passage":"passage: "},"query"]' "e5: the fine-tuned model keeps the prompts"
	/usr/bin/python3 - "$P" <<'PY'
import json, sys
import numpy as np
d = sys.argv[1]
def emb(name):
    x = np.array([json.loads(l)["embedding"] for l in open("%s/%s" % (d, name))], dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
Q, C = emb("queries.jsonl"), emb("passages.jsonl")
S = Q @ C.T
got = [json.loads(l) for l in open(d + "/e5-hits.jsonl")]
ok = len(got) == len(Q)
for s, g in zip(S, got):
    want = np.lexsort((np.arange(len(s)), -s))[:3]
    ok &= [h["corpus_id"] for h in g] == list(want) and all(abs(h["score"] - min(s[j], 1.0)) < 1e-5 for h, j in zip(g, want))
# the prompts matter: a sentence as a query is not the same sentence as a passage
ok &= float(np.abs(Q - C).max()) > 1e-3
sys.exit(0 if ok else 1)
PY
	ok $? "e5: the hits are numpy's cosine top 3 of the query and passage embeddings, which differ"
	is "$(jq -s 'map(select(.kind == "log")) | length' "$P/e5-log.jsonl")" 4 "e5: 2 epochs of 2 batches, 4 steps"
	! cmp -s "$P/queries.jsonl" "$P/tuned-queries.jsonl"
	ok $? "e5: the fine-tuned model encodes the queries differently"
fi

# --- TrecQA hard negatives, trained on with mnrl
if [ ! -d "$SHARED/trecqa-anssel" ]; then
	echo "# ../shared/data/trecqa-anssel is absent: the TrecQA worked example is skipped"
	done_testing
fi
if run_block docs/st-mine.md "trecqa"; then
	is "$(wc -l < "$P/qa-hn.jsonl" | tr -d ' ') $(jq -c '.texts | length' "$P/qa-hn.jsonl" | sort -u)" "200 4" \
		"TrecQA: 200 tuples of a question, its answer and 2 negatives"
	REF=tests/reference/mining_ref.py
	/usr/bin/python3 $REF texts "$P/qa-pairs.jsonl" "$TMP/q.txt" "$TMP/c.txt"
	st-encode --model "$P/qa-m" < "$TMP/q.txt" > "$TMP/q.emb" && st-encode --model "$P/qa-m" < "$TMP/c.txt" > "$TMP/c.emb"
	/usr/bin/python3 $REF hn "$P/qa-pairs.jsonl" "$TMP/q.txt" "$TMP/q.emb" "$TMP/c.txt" "$TMP/c.emb" num_negatives=2 \
		range_min=1 range_max=20 format=n-tuple | jq -c . > "$TMP/want"
	jq -c . "$P/qa-hn.jsonl" > "$TMP/got"
	cmp -s "$TMP/want" "$TMP/got" && [ -s "$TMP/want" ]
	ok $? "TrecQA: the tuples are mining_ref.py's (numpy, the library's rules) on st-encode's embeddings" ||
		diff "$TMP/want" "$TMP/got" | head -6 | sed 's/^/#   /'
	# every correct answer of every question, from TrecQA's labels (all of them, not only the 200 pairs)
	pipelines/converters/trecqa --case pairs --split train --detok "$SHARED/trecqa-anssel" |
		jq -c 'select(.label == 1) | .texts' > "$TMP/correct"
	jq -c '.texts[0] as $q | .texts[2:][] | [$q, .]' "$P/qa-hn.jsonl" > "$TMP/negs"
	is "$(grep -cxFf "$TMP/correct" "$TMP/negs")" 0 "TrecQA: no negative is a correct answer of its question"
	is "$(jq -c '.texts[0:2]' "$P/qa-hn.jsonl" | grep -cxFf "$TMP/correct")" 200 \
		"TrecQA: ... while every (question, answer) is one (the check can tell)"
	is "$(jq -s 'map(select(.kind == "log")) | length' "$P/log.jsonl")" 13 "TrecQA: 13 steps of 16 (200 tuples)"
	jq -s -e 'map(select(.kind == "log") | .loss | isinfinite or isnan) | any | not' "$P/log.jsonl" > /dev/null
	ok $? "TrecQA: every step's loss is finite"
fi
done_testing
