#!/bin/bash
# The tutorial's four dataset cases (docs/training.md, "The four dataset cases"), each with the loss that fits
# it, at a small size: a tiny BERT from scratch (pipelines/model-config-small.json) trained on a few hundred
# examples must raise the evaluator matched with its loss, measured on held-out examples:
#   scored pairs (STS-B train)          cosent                            -> STS-B dev Spearman
#   (anchor, positive) pairs (WordNet)  mnrl, no-duplicates sampler       -> WordNet dev retrieval MRR@10
#   single texts + class (TREC)         batch-hard-triplet, PK 2 x 2      -> TREC test triplet accuracy
#   triplets (WordNet)                  triplet, cosine margin 0.1        -> WordNet triplet accuracy
#                                       (from the MNRL model of the second case; on all WordNet dev triplets)
# The pipelines are those of the page with fewer examples (a mirror: docs.t does not run those blocks). The
# independent check is the evaluator on the untrained model against the trained one, with the same data: a loss
# stage whose gradient had the wrong sign or reached no weight leaves the score where it was or lowers it.
. "$(dirname "$0")/lib.sh"
command -v jq > /dev/null || skip_all "needs jq"
[ -r /usr/share/wordnet/data.noun ] || skip_all "WordNet is absent (Debian's wordnet-base)"
for t in st-vocab st-init st-tokenize st-batch st-forward st-loss st-step st-eval; do
	[ -x "$ROOT/bin/$t" ] || skip_all "$t is not built yet"
done
C=$ROOT/pipelines/converters
cd "$TMP" || exit 1

# pick N: N lines of stdin spread evenly over it (as pipelines/demo.mk's pick)
pick() { cat > pick.in && awk -v n="$1" 'NR == FNR { total++; next } int(FNR * n / total) > int((FNR - 1) * n / total)' pick.in pick.in; }
# model NAME TRAIN.jsonl: a tiny random model whose WordPiece vocabulary is learned from the training texts
model() {
	jq -r '.texts[]' "$2" | LC_ALL=C sort -u | st-vocab -o "$1.vocab" --vocab-size 1000 --max-seq-length 32 2> /dev/null &&
	st-init --config "$ROOT/pipelines/model-config-small.json" --vocab "$1.vocab" --pooling mean \
		--max-seq-length 32 --seed 42 --force -o "$1.init" > /dev/null
}
# train NAME TRAIN.jsonl BATCH-OPTIONS LR LOSS...: the training stage of docs/training.md, the model in NAME/model
train() {
	local name=$1 data=$2 batch=$3 lr=$4; shift 4
	st-tokenize --model "$name.init" < "$data" |
		st-batch $batch --shuffle --seed 42 |
		st-forward --model "$name.init" --run "$name" --threads 1 |
		st-loss --threads 1 "$@" 2> "$name.err" |
		st-step --model "$name.init" --run "$name" --lr "$lr" --warmup-steps 10% --seed 42 --threads 1 > "$name.log" &&
		[ -f "$name/model/model.safetensors" ]
}
# rises NAME WHAT METRIC DATA EVAL...: st-eval EVAL < DATA on NAME.init and NAME/model; the metric must rise
rises() {
	local name=$1 what=$2 metric=$3 data=$4; shift 4
	local before after
	before=$(st-eval "$@" --model "$name.init" --threads 1 < "$data" | jq ".[\"$metric\"]")
	after=$(st-eval "$@" --model "$name/model" --threads 1 < "$data" | jq ".[\"$metric\"]")
	echo "# $name: $metric $before -> $after"
	awk -v a="$before" -v b="$after" 'BEGIN { exit !(b > a + 0.01) }'
	ok $? "$what raises $metric ($before -> $after)"
}

# 1. scored pairs: STS-B train with CoSENT, STS-B dev Spearman
if [ -d "$SHARED/stsbenchmark" ]; then
	"$C/stsb" --split train "$SHARED/stsbenchmark" | pick 480 > sts-train.jsonl
	"$C/stsb" --split dev "$SHARED/stsbenchmark" | pick 300 > sts-dev.jsonl
	model sts sts-train.jsonl && train sts sts-train.jsonl "--size 16 --epochs 3" 1e-3 cosent
	ok $? "STS-B train: st-loss cosent trains"
	rises sts "cosent on STS-B train" sts-dev_spearman_cosine sts-dev.jsonl similarity --name sts-dev
else
	echo "# ../shared/data/stsbenchmark is absent: the STS-B case is not run"
fi

# 2. (anchor, positive) pairs: WordNet (example, definition) with MNRL, retrieval of the definitions of
# held-out synsets
"$C/wordnet" --case pairs --split train | pick 640 > wn-pairs.jsonl
"$C/wordnet" --case pairs --split dev | pick 200 > wn-pairs-dev.jsonl
model pairs wn-pairs.jsonl && train pairs wn-pairs.jsonl "--size 32 --epochs 3 --sampler no-duplicates" 1e-3 mnrl
ok $? "WordNet pairs: st-loss mnrl trains"
rises pairs "mnrl on WordNet pairs" wn-dev_cosine_mrr@10 wn-pairs-dev.jsonl ir --name wn-dev

# 3. single texts with a class: TREC questions with batch-hard-triplet (the library's Euclidean distance and
# margin 5) and the PK sampler at P = 2 labels x K = 2 questions per batch; evaluated on triplets of TREC test
# (a question, the next one of its class, the next one of another class). Larger PK batches make batch-hard
# collapse every embedding to one point from random weights (docs/training.md): the page's earlier recipe,
# 8 x 4 with cosine distance and margin 0.1, took this score from 0.670 to 0.587 here, so it fails the check.
if [ -d "$SHARED/trec" ]; then
	"$C/trec" --split train "$SHARED/trec" | pick 960 > trec-train.jsonl
	"$C/trec" --split test "$SHARED/trec" | jq -sc 'to_entries as $all | $all[] |
		.value as $q | .key as $i |
		([$all[] | select(.key > $i and .value.label == $q.label)][0].value.texts[0]) as $pos |
		([$all[] | select(.key > $i and .value.label != $q.label)][0].value.texts[0]) as $neg |
		select($pos != null and $neg != null) | {texts: [$q.texts[0], $pos, $neg]}' > trec-triplets.jsonl
	model trec trec-train.jsonl &&
		train trec trec-train.jsonl "--size 4 --epochs 3 --sampler group-by-label --k 2" 1e-3 batch-hard-triplet
	ok $? "TREC: st-loss batch-hard-triplet trains"
	grep -q "no valid triplet" trec.err; ok $((! $?)) "... and every PK batch had a valid triplet"
	grep -q "embeddings have collapsed" trec.err; ok $((! $?)) "... and st-loss saw no collapse (2 x 2 batches)"
	rises trec "batch-hard-triplet on TREC" trec-test_cosine_accuracy trec-triplets.jsonl triplet --name trec-test
	# what the page says of larger batches: 8 labels x 4 (cosine distance, margin 0.1, the earlier recipe) does
	# not raise the score from the same random weights
	rm -rf trec8x4.init && cp -R trec.init trec8x4.init &&
		train trec8x4 trec-train.jsonl "--size 32 --epochs 3 --sampler group-by-label --k 4" 1e-3 \
			batch-hard-triplet --distance cosine --margin 0.1
	before=$(st-eval triplet --name t --model trec.init --threads 1 < trec-triplets.jsonl | jq .t_cosine_accuracy)
	after=$(st-eval triplet --name t --model trec8x4/model --threads 1 < trec-triplets.jsonl | jq .t_cosine_accuracy)
	awk -v a="$before" -v b="$after" 'BEGIN { exit !(b <= a + 0.01) }'
	ok $? "... but in batches of 8 labels x 4 it does not ($before -> $after), as docs/training.md says"
	# (the embeddings close in on one point there: a batch's mean cosine reached 0.9967 over 20 of its 90
	# batches, so close to st-loss's threshold of 0.996 that whether it warns depends on the matrix kernel's
	# rounding; tests/loss_collapse.t checks the warning itself, docs/st-loss.md has the full-size runs)
else
	echo "# ../shared/data/trec is absent: the TREC case is not run"
fi

# 4. triplets: WordNet (example, its definition, another sense's definition) with TripletLoss, the negatives
# only from train synsets (--negatives-in-split: a negative that is a held-out synset's definition teaches the
# model to push that word's examples away from a dev positive); evaluated on every WordNet dev triplet (3817:
# the small model's gain is a few points, and 300 triplets were too few to see it above their noise)
"$C/wordnet" --case triplets --split train --negatives-in-split | pick 6400 > wn-triplets.jsonl
"$C/wordnet" --case triplets --split dev > wn-triplets-dev.jsonl
# from the MNRL model of case 2, as the page does: TripletLoss sharpens the senses of a model that already
# places texts by meaning (docs/training.md)
rm -rf triplets.init && cp -R pairs/model triplets.init &&
	train triplets wn-triplets.jsonl "--size 32" 1e-3 triplet --distance cosine --margin 0.1
ok $? "WordNet triplets: st-loss triplet trains"
cat sts.err pairs.err triplets.err 2> /dev/null | grep -q "embeddings have collapsed"
ok $((! $?)) "no collapse warning from the cosent, mnrl and triplet runs"
rises triplets "triplet on WordNet triplets" wn-dev_cosine_accuracy wn-triplets-dev.jsonl triplet --name wn-dev
# the triplets it trained on rise far more (the senses of the training words)
rises triplets "... and on its training triplets" wn-train_cosine_accuracy wn-triplets.jsonl triplet --name wn-train

grep -q 'training_cases.t' "$ROOT/docs/training.md"; ok $? "docs/training.md names this test as the mirror of its blocks"
done_testing
