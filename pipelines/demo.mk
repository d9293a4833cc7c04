# demo.mk: the seed tutorial as one Makefile. A sentence-embedding model is built from modules (Transformer +
# mean Pooling) from scratch, with a WordPiece vocabulary that st-vocab learns from WordNet's text; trained with
# TripletLoss on WordNet triplets (example, its definition, the definition of another sense of the same word);
# fine-tuned with MultipleNegativesRankingLoss on (example, definition) pairs; evaluated before, between and
# after (st-eval triplet on held-out WordNet synsets, st-eval similarity on STS-B dev and test when
# ../shared/data/stsbenchmark is there, read in place); saved as a Hub-ready directory with a model card.
#
#   make demo                                  (at the project root: installs deps, builds, then runs this)
#   make -C pipelines -f demo.mk               the demo itself; outputs under pipelines/out/
#   make -C pipelines -f demo.mk SMALL=1       a tiny model on a few hundred examples (tests/demo.t); out/small/
#   make -C pipelines -f demo.mk clean         removes $(OUT)
#
# Every output is a file target, so an interrupted or changed demo redoes only what it must; every file is
# written to a temporary name and renamed. Sizes are variables (TRIPLETS=, PAIRS=, CONFIG=, ...), see below.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DELETE_ON_ERROR:
.SECONDEXPANSION:
.SECONDARY:

BIN ?= ../bin
export PATH := $(abspath $(BIN)):$(PATH)

OUT ?= out$(if $(SMALL),/small)
DATA := $(OUT)/data

# The data sets come from the converters' Makefile, run from here (pipelines/).
DEMO_OUT := $(DATA)
CONVERTERS := converters
SHARED_DATA ?= ../../shared/data
include demo-data.mk
.DEFAULT_GOAL := demo

# Sizes. The default takes about 3 minutes on 2 idle cores (up to 3x that when they are shared): 128 hidden,
# 2 layers, 4000 word pieces (model-config.json); one epoch of the 30193 training triplets in batches of 32
# (944 steps), then one of the 38614 pairs in batches of 64 (604 steps). Fewer, larger word pieces or a
# learning rate of 1e-4 learn visibly less (measured: pipelines/README.md).
ifeq ($(SMALL),)
CONFIG ?= model-config.json
VOCAB_SIZE ?= 4000
MAX_SEQ_LENGTH ?= 64
TRIPLETS ?= 0
TRIPLET_BATCH ?= 32
TRIPLET_LR ?= 5e-4
PAIRS ?= 0
PAIR_BATCH ?= 64
MNRL_LR ?= 5e-4
DEV_TRIPLETS ?= 0
STS_PAIRS ?= 0
PROGRESS_EVERY ?= 100
else
CONFIG ?= model-config-small.json
VOCAB_SIZE ?= 1000
MAX_SEQ_LENGTH ?= 32
TRIPLETS ?= 320
TRIPLET_BATCH ?= 16
TRIPLET_LR ?= 1e-3
PAIRS ?= 320
PAIR_BATCH ?= 32
MNRL_LR ?= 1e-3
DEV_TRIPLETS ?= 200
STS_PAIRS ?= 200
PROGRESS_EVERY ?= 5
endif
SEED ?= 42
WARMUP ?= 10%
# cosine distance, margin 0.1, not the library's Euclidean 5: a model from scratch embeds every text within a
# Euclidean distance of about 2.6 of every other, so with 5 no triplet is ever met and the loss pushes all texts
# apart alike, wiping out the STS-B signal (docs/training.md, "Choosing a loss and its hyperparameters": after
# the triplet stage WordNet dev 0.511 -> 0.522, STS-B dev 0.360 -> 0.568)
TRIPLET_DISTANCE ?= cosine
TRIPLET_MARGIN ?= 0.1
MNRL_SCALE ?= 20
THREADS ?=
threads := $(if $(THREADS),--threads $(THREADS))

# pick N IN: N lines of IN spread evenly over the file (every part of speech, not just the nouns that come
# first); N = 0 or N >= lines: all of them.
pick = awk -v n=$(1) 'NR == FNR { total++; next } n == 0 || int(FNR * n / total) > int((FNR - 1) * n / total)' $(2) $(2)

STAGES := init triplet mnrl
MODEL_init := $(OUT)/init
MODEL_triplet := $(OUT)/triplet/model
MODEL_mnrl := $(OUT)/mnrl/model
EVALS := wordnet-dev $(if $(DEMO_STSB),sts-dev sts-test)
EVAL_FILES := $(foreach s,$(STAGES),$(foreach e,$(EVALS),$(OUT)/eval/$(s)/$(e).json))

.PHONY: demo model evals clean
demo: $(OUT)/model/model.safetensors $(EVAL_FILES) $(OUT)/plots/triplet.png $(OUT)/plots/mnrl.png
	@echo
	@echo "== st demo: $(OUT)/model ($$(jq -r '"\(.num_hidden_layers) layers, hidden \(.hidden_size), vocabulary \(.vocab_size)"' $(OUT)/model/config.json))"
	@echo "   trained on $$(wc -l < $(OUT)/triplets-train.jsonl) WordNet triplets (TripletLoss), then $$(wc -l < $(OUT)/pairs-train.jsonl) pairs (MNRL)"
	@printf '%-24s %22s' "" "WordNet dev triplets"; $(if $(DEMO_STSB),printf ' %16s %16s' "STS-B dev" "STS-B test";) echo
	@printf '%-24s %22s' "" "(cosine accuracy)"; $(if $(DEMO_STSB),printf ' %16s %16s' "(Spearman)" "(Spearman)";) echo
	@for s in $(STAGES); do \
	  case $$s in init) what="before (random init)";; triplet) what="after TripletLoss";; mnrl) what="after MNRL fine-tuning";; esac; \
	  printf '%-24s %22.4f' "$$what" $$(jq '.["wordnet-dev_cosine_accuracy"]' $(OUT)/eval/$$s/wordnet-dev.json); \
	  $(if $(DEMO_STSB),printf ' %16.4f %16.4f' $$(jq '.["sts-dev_spearman_cosine"]' $(OUT)/eval/$$s/sts-dev.json) \
	    $$(jq '.["sts-test_spearman_cosine"]' $(OUT)/eval/$$s/sts-test.json);) echo; \
	done
	@$(if $(DEMO_STSB),,echo "   (STS-B skipped: $(SHARED_DATA)/stsbenchmark is absent)";)
	@echo "   model card: $(OUT)/model/README.md; training curves: $(OUT)/plots/"

model: $(OUT)/model/model.safetensors
evals: $(EVAL_FILES)

clean:
	rm -rf $(OUT)

# ---- data: subsets of the converters' files ----
$(OUT)/triplets-train.jsonl: $(DATA)/wordnet-triplets-train.jsonl
	$(call pick,$(TRIPLETS),$<) > $@.tmp && mv $@.tmp $@
$(OUT)/pairs-train.jsonl: $(DATA)/wordnet-pairs-train.jsonl
	$(call pick,$(PAIRS),$<) > $@.tmp && mv $@.tmp $@
$(OUT)/eval-data/wordnet-dev.jsonl: $(DATA)/wordnet-triplets-dev.jsonl
	@mkdir -p $(@D)
	$(call pick,$(DEV_TRIPLETS),$<) > $@.tmp && mv $@.tmp $@
$(OUT)/eval-data/sts-%.jsonl: $(DATA)/stsb-%.jsonl
	@mkdir -p $(@D)
	$(call pick,$(STS_PAIRS),$<) > $@.tmp && mv $@.tmp $@

# ---- the vocabulary and the model from scratch ----
# WordPiece learned from every distinct text of the training split (examples and definitions).
$(OUT)/vocab/vocab.txt: $(DATA)/wordnet-pairs-train.jsonl
	rm -rf $(OUT)/vocab.tmp
	jq -r '.texts[]' $< | LC_ALL=C sort -u | st-vocab -o $(OUT)/vocab.tmp --vocab-size $(VOCAB_SIZE) --max-seq-length $(MAX_SEQ_LENGTH)
	rm -rf $(OUT)/vocab && mv $(OUT)/vocab.tmp $(OUT)/vocab

# Transformer (BERT, random weights) + mean Pooling
$(MODEL_init)/model.safetensors: $(CONFIG) $(OUT)/vocab/vocab.txt
	st-init --config $(CONFIG) --vocab $(OUT)/vocab --pooling mean --max-seq-length $(MAX_SEQ_LENGTH) \
	  --seed $(SEED) --force -o $(MODEL_init)

$(OUT)/tok/%.msgpack: $(OUT)/%.jsonl $(MODEL_init)/model.safetensors
	@mkdir -p $(@D)
	st-tokenize --model $(MODEL_init) < $< > $@.tmp && mv $@.tmp $@

# ---- training: st-batch | st-forward | st-loss | st-step, synchronised through the run directory ----
# train RUN FROM TOKENIZED BATCH SAMPLER LR LOSS...: a fresh run (an interrupted one is started again), the
# log kept as RUN.log.jsonl, a progress line every PROGRESS_EVERY steps.
define train
	rm -rf $(1) $(1).log.jsonl
	@echo "training $(1): $$(( ($$(wc -l < $(3:$(OUT)/tok/%.msgpack=$(OUT)/%.jsonl)) + $(4) - 1) / $(4) )) steps of $(4), st-loss $(7)"
	st-batch --size $(4) --shuffle --seed $(SEED) --sampler $(5) < $(3) \
	  | st-forward --model $(2) --run $(1) $(threads) \
	  | st-loss $(7) \
	  | st-step --model $(2) --run $(1) --lr $(6) --warmup-steps $(WARMUP) --seed $(SEED) --json $(threads) \
	  | tee $(1).log.jsonl.tmp \
	  | jq -r --unbuffered 'select(.kind == "log" and .step % $(PROGRESS_EVERY) == 0) | "  step \(.step)  loss \(.loss * 1e4 | round / 1e4)  lr \(.lr)  \(.examples_per_s | round) examples/s"'
	mv $(1).log.jsonl.tmp $(1).log.jsonl
	test -f $(1)/model/model.safetensors
endef

$(MODEL_triplet)/model.safetensors: $(MODEL_init)/model.safetensors $(OUT)/tok/triplets-train.msgpack
	$(call train,$(OUT)/triplet,$(MODEL_init),$(OUT)/tok/triplets-train.msgpack,$(TRIPLET_BATCH),random,$(TRIPLET_LR),triplet --distance $(TRIPLET_DISTANCE) --margin $(TRIPLET_MARGIN))

# no-duplicates: several examples share a definition, and an in-batch copy of the positive would be a false
# negative for MNRL
$(MODEL_mnrl)/model.safetensors: $(MODEL_triplet)/model.safetensors $(OUT)/tok/pairs-train.msgpack
	$(call train,$(OUT)/mnrl,$(MODEL_triplet),$(OUT)/tok/pairs-train.msgpack,$(PAIR_BATCH),no-duplicates,$(MNRL_LR),mnrl --scale $(MNRL_SCALE))

$(OUT)/plots/%.png: $(OUT)/%/model/model.safetensors
	@mkdir -p $(@D)
	st-plot --title "$* ($(OUT)/$*)" -o $@ $(OUT)/$*.log.jsonl

# ---- evaluation: the same files for every stage ----
$(OUT)/eval/%/wordnet-dev.json: $$(MODEL_$$*)/model.safetensors $(OUT)/eval-data/wordnet-dev.jsonl
	@mkdir -p $(@D)
	st-eval triplet --model $(MODEL_$*) --name wordnet-dev $(threads) < $(OUT)/eval-data/wordnet-dev.jsonl > $@.tmp && mv $@.tmp $@
$(OUT)/eval/%/sts-dev.json: $$(MODEL_$$*)/model.safetensors $(OUT)/eval-data/sts-dev.jsonl
	@mkdir -p $(@D)
	st-eval similarity --model $(MODEL_$*) --name sts-dev $(threads) < $(OUT)/eval-data/sts-dev.jsonl > $@.tmp && mv $@.tmp $@
$(OUT)/eval/%/sts-test.json: $$(MODEL_$$*)/model.safetensors $(OUT)/eval-data/sts-test.jsonl
	@mkdir -p $(@D)
	st-eval similarity --model $(MODEL_$*) --name sts-test $(threads) < $(OUT)/eval-data/sts-test.jsonl > $@.tmp && mv $@.tmp $@

# ---- the Hub-ready directory: the fine-tuned model with its card ----
# st-card reads the run (trainer.json) beside the run's model; the card is written into the copy.
FINAL_EVALS := $(foreach e,$(EVALS),$(OUT)/eval/mnrl/$(e).json)
$(OUT)/model/model.safetensors: $(MODEL_mnrl)/model.safetensors $(FINAL_EVALS)
	rm -rf $(OUT)/model.tmp && cp -r $(MODEL_mnrl) $(OUT)/model.tmp
	if command -v st-card > /dev/null; then \
	  st-card --model $(MODEL_mnrl) -o $(OUT)/model.tmp/README.md --run $(OUT)/triplet --from-scratch \
	    --model-name "st demo: a small BERT trained from scratch on WordNet" \
	    --datasets wordnet --language en --loss TripletLoss --loss MultipleNegativesRankingLoss \
	    --dataset-size $$(wc -l < $(OUT)/pairs-train.jsonl) $(foreach f,$(FINAL_EVALS),--eval $(f)); \
	else \
	  echo "demo: no st-card yet; the card is st-step's, with the scores appended" >&2; \
	  { echo; echo "## Evaluation (st demo)"; echo; echo "| evaluator | metric | value |"; echo "|---|---|---|"; \
	    for f in $(FINAL_EVALS); do jq -r --arg e "$$(basename $$f .json)" 'to_entries[] | "| \($$e) | \(.key) | \(.value) |"' $$f; done; \
	  } >> $(OUT)/model.tmp/README.md; \
	fi
	rm -rf $(OUT)/model && mv $(OUT)/model.tmp $(OUT)/model
