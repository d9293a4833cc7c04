# demo.mk: the seed tutorial as one Makefile. A sentence-embedding model is built from modules (Transformer +
# mean Pooling) from scratch, with a WordPiece vocabulary that st-vocab learns from WordNet's text; trained with
# MultipleNegativesRankingLoss on WordNet (example, definition) pairs, then TripletLoss on WordNet triplets
# (example, its definition, the definition of another sense of the same word in the training split), then, when
# ../shared/data/stsbenchmark is there (read in place), CoSENT on STS-B train; evaluated before and after every
# stage (st-eval triplet on held-out WordNet synsets, st-eval similarity on STS-B dev and test); saved as a
# Hub-ready directory with a model card. Full size: STS-B test 0.710 in 1.4 CPU minutes, every stage raising
# the evaluator it is matched with (docs/training.md, "The demo's recipe").
#
#   make demo                                  (at the project root: installs deps, builds, then runs this)
#   make -C pipelines -f demo.mk               the demo itself; outputs under pipelines/out/
#   make -C pipelines -f demo.mk SMALL=1       a tiny model on a few hundred examples (tests/demo.t); out/small/
#   make -C pipelines -f demo.mk curve         after the demo: STS-B dev against CPU minutes (out/plots/)
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

# Sizes. The default: 128 hidden, 2 layers, 4000 word pieces (model-config.json); one epoch of the 38614
# WordNet pairs in batches of 64 (604 steps, MNRL), one of the 28819 triplets in batches of 32 (901 steps,
# TripletLoss), then, when ../shared/data has STS-B, COSENT_EPOCHS epochs of its 5749 training pairs in batches
# of 16 (CoSENT). About 1.5-3 CPU-minutes of training in all (docs/training.md, "The demo's recipe"). A smaller
# vocabulary learned from WordNet alone beat 8000 pieces learned from every data set (measured there).
ifeq ($(SMALL),)
CONFIG ?= model-config.json
VOCAB_SIZE ?= 4000
MAX_SEQ_LENGTH ?= 64
TRIPLETS ?= 0
TRIPLET_BATCH ?= 32
TRIPLET_LR ?= 2e-4
PAIRS ?= 0
PAIR_BATCH ?= 64
MNRL_LR ?= 5e-4
STS_TRAIN ?= 0
COSENT_BATCH ?= 16
COSENT_LR ?= 5e-4
COSENT_EPOCHS ?= 4
DEV_TRIPLETS ?= 0
STS_PAIRS ?= 0
PROGRESS_EVERY ?= 100
CHECKPOINTS ?= 8
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
STS_TRAIN ?= 320
COSENT_BATCH ?= 16
COSENT_LR ?= 1e-3
COSENT_EPOCHS ?= 1
DEV_TRIPLETS ?= 200
STS_PAIRS ?= 200
PROGRESS_EVERY ?= 5
CHECKPOINTS ?= 2
endif
SEED ?= 42
WARMUP ?= 10%
# cosine distance, margin 0.1, not the library's Euclidean 5: a model from scratch embeds every text within a
# Euclidean distance of about 2.6 of every other, so with 5 no triplet is ever met and the loss pushes all texts
# apart alike, wiping out the STS-B signal (docs/training.md, "Choosing a loss and its hyperparameters")
TRIPLET_DISTANCE ?= cosine
TRIPLET_MARGIN ?= 0.1
# DEMO_NEGATIVES_IN_SPLIT (demo-data.mk, default 1): a training triplet's negative only from a training synset
# (converters/wordnet --negatives-in-split). With 0, 1 training triplet in 6 has a dev or test synset's
# definition as negative, and TripletLoss lowers WordNet dev accuracy (0.565 -> 0.561) instead of raising it
# (0.565 -> 0.590); TRIPLET_LR 2e-4 keeps STS-B dev where MNRL left it (5e-4: dev accuracy 0.600, STS-B dev
# 0.659 -> 0.639; docs/training.md, "Negatives from held-out synsets")
MNRL_SCALE ?= 20
THREADS ?=
threads := $(if $(THREADS),--threads $(THREADS))

# pick N IN: N lines of IN spread evenly over the file (every part of speech, not just the nouns that come
# first); N = 0 or N >= lines: all of them.
pick = awk -v n=$(1) 'NR == FNR { total++; next } n == 0 || int(FNR * n / total) > int((FNR - 1) * n / total)' $(2) $(2)

# The stages in training order, each starting from the model of the one before. MNRL first: from random
# weights it raises WordNet dev accuracy and STS-B alike, and TripletLoss then sharpens the WordNet senses of a
# model that already places texts by meaning (from random weights it lowered both: docs/training.md); CoSENT on
# STS-B train last, for STS-B.
STAGES := init mnrl triplet $(if $(DEMO_STSB),cosent)
TRAINED := $(filter-out init,$(STAGES))
MODEL_init := $(OUT)/init
$(foreach s,$(TRAINED),$(eval MODEL_$(s) := $(OUT)/$(s)/model))
TRAIN_mnrl := pairs-train
TRAIN_triplet := triplets-train
TRAIN_cosent := sts-train
LAST := $(lastword $(STAGES))
EVALS := wordnet-dev $(if $(DEMO_STSB),sts-dev sts-test)
EVAL_FILES := $(foreach s,$(STAGES),$(foreach e,$(EVALS),$(OUT)/eval/$(s)/$(e).json))

.PHONY: demo model evals curve clean
demo: $(OUT)/model/model.safetensors $(EVAL_FILES) $(foreach s,$(TRAINED),$(OUT)/plots/$(s).png)
	@echo
	@echo "== st demo: $(OUT)/model ($$(jq -r '"\(.num_hidden_layers) layers, hidden \(.hidden_size), vocabulary \(.vocab_size)"' $(OUT)/model/config.json))"
	@echo "   trained on $$(wc -l < $(OUT)/pairs-train.jsonl) WordNet pairs (MNRL), $$(wc -l < $(OUT)/triplets-train.jsonl) WordNet triplets (TripletLoss)$(if $(DEMO_STSB),$(comma) $$(wc -l < $(OUT)/sts-train.jsonl) STS-B train pairs x $(COSENT_EPOCHS) epochs (CoSENT))"
	@printf '%-24s %22s' "" "WordNet dev triplets"; $(if $(DEMO_STSB),printf ' %12s %12s' "STS-B dev" "STS-B test";) printf ' %12s\n' "CPU minutes"
	@printf '%-24s %22s' "" "(cosine accuracy)"; $(if $(DEMO_STSB),printf ' %12s %12s' "(Spearman)" "(Spearman)";) printf ' %12s\n' "(training)"
	@for s in $(STAGES); do \
	  case $$s in init) what="before (random init)";; mnrl) what="after MNRL";; triplet) what="after TripletLoss";; cosent) what="after CoSENT";; esac; \
	  printf '%-24s %22.4f' "$$what" $$(jq '.["wordnet-dev_cosine_accuracy"]' $(OUT)/eval/$$s/wordnet-dev.json); \
	  $(if $(DEMO_STSB),printf ' %12.4f %12.4f' $$(jq '.["sts-dev_spearman_cosine"]' $(OUT)/eval/$$s/sts-dev.json) \
	    $$(jq '.["sts-test_spearman_cosine"]' $(OUT)/eval/$$s/sts-test.json);) \
	  if [ $$s = init ]; then echo; else printf ' %12.2f\n' $$(cat $(OUT)/$$s.cpu); fi; \
	done
	@$(if $(DEMO_STSB),,echo "   (STS-B and CoSENT skipped: $(SHARED_DATA)/stsbenchmark is absent)";)
	@echo "   CPU minutes: user + system time of each stage's pipeline; total $$(cat $(foreach s,$(TRAINED),$(OUT)/$(s).cpu) | awk '{ t += $$1 } END { printf "%.2f", t }')"
	@echo "   model card: $(OUT)/model/README.md; training curves: $(OUT)/plots/$(if $(DEMO_STSB),; STS-B dev against CPU minutes: make -f demo.mk curve)"

comma := ,
model: $(OUT)/model/model.safetensors
evals: $(EVAL_FILES)

clean:
	rm -rf $(OUT)

# ---- data: subsets of the converters' files ----
$(OUT)/triplets-train.jsonl: $(DATA)/wordnet-triplets-train.jsonl
	$(call pick,$(TRIPLETS),$<) > $@.tmp && mv $@.tmp $@
$(OUT)/pairs-train.jsonl: $(DATA)/wordnet-pairs-train.jsonl
	$(call pick,$(PAIRS),$<) > $@.tmp && mv $@.tmp $@
$(OUT)/sts-train.jsonl: $(DATA)/stsb-train.jsonl
	$(call pick,$(STS_TRAIN),$<) > $@.tmp && mv $@.tmp $@
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
# train RUN FROM TOKENIZED BATCH SAMPLER LR EPOCHS LOSS...: a fresh run (an interrupted one is started again),
# the log kept as RUN.log.jsonl, a progress line every PROGRESS_EVERY steps, a checkpoint every 1/CHECKPOINTS
# of the run (for `make curve`), and the pipeline's CPU minutes (user + system, bash's `times` of its children)
# in RUN.cpu.
steps = $$(( ($$(wc -l < $(1:$(OUT)/tok/%.msgpack=$(OUT)/%.jsonl)) + $(2) - 1) / $(2) * $(3) ))
define train
	rm -rf $(1) $(1).log.jsonl $(1).cpu
	@echo "training $(1): $(call steps,$(3),$(4),$(7)) steps of $(4), st-loss $(8)"
	st-batch --size $(4) --epochs $(7) --shuffle --seed $(SEED) --sampler $(5) < $(3) \
	  | st-forward --model $(2) --run $(1) $(threads) \
	  | st-loss $(threads) $(8) \
	  | st-step --model $(2) --run $(1) --lr $(6) --warmup-steps $(WARMUP) --seed $(SEED) --json $(threads) \
	    --checkpoint-every $$(( ($(call steps,$(3),$(4),$(7)) + $(CHECKPOINTS) - 1) / $(CHECKPOINTS) )) \
	  | tee $(1).log.jsonl.tmp \
	  | jq -r --unbuffered 'select(.kind == "log" and .step % $(PROGRESS_EVERY) == 0) | "  step \(.step)  loss \(.loss * 1e4 | round / 1e4)  lr \(.lr)  \(.examples_per_s | round) examples/s"'; \
	times > $(1).cpu.tmp   # a file, not a pipe: `times` in a pipeline's subshell sees none of these children
	awk 'NR == 2 { split($$0, t, /[ms]+/); printf "%.4f\n", (t[1] * 60 + t[2] + t[3] * 60 + t[4]) / 60 }' $(1).cpu.tmp > $(1).cpu.tmp2
	rm $(1).cpu.tmp
	mv $(1).log.jsonl.tmp $(1).log.jsonl
	mv $(1).cpu.tmp2 $(1).cpu
	test -f $(1)/model/model.safetensors
endef

# no-duplicates: several examples share a definition, and an in-batch copy of the positive would be a false
# negative for MNRL
$(MODEL_mnrl)/model.safetensors: $(MODEL_init)/model.safetensors $(OUT)/tok/pairs-train.msgpack
	$(call train,$(OUT)/mnrl,$(MODEL_init),$(OUT)/tok/pairs-train.msgpack,$(PAIR_BATCH),no-duplicates,$(MNRL_LR),1,mnrl --scale $(MNRL_SCALE))

$(MODEL_triplet)/model.safetensors: $(MODEL_mnrl)/model.safetensors $(OUT)/tok/triplets-train.msgpack
	$(call train,$(OUT)/triplet,$(MODEL_mnrl),$(OUT)/tok/triplets-train.msgpack,$(TRIPLET_BATCH),random,$(TRIPLET_LR),1,triplet --distance $(TRIPLET_DISTANCE) --margin $(TRIPLET_MARGIN))

# labels are score/5; CoSENT only compares the pairs of a batch with each other, so the scale does not matter
$(MODEL_cosent)/model.safetensors: $(MODEL_triplet)/model.safetensors $(OUT)/tok/sts-train.msgpack
	$(call train,$(OUT)/cosent,$(MODEL_triplet),$(OUT)/tok/sts-train.msgpack,$(COSENT_BATCH),random,$(COSENT_LR),$(COSENT_EPOCHS),cosent)

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

# ---- the curve: STS-B dev Spearman against CPU minutes of training, from the stages' checkpoints ----
# x of checkpoint N of a stage = the CPU minutes of the stages before + this stage's minutes x N / its steps
# (a stage's steps cost about the same); the evaluations themselves are not counted.
curve: $(if $(DEMO_STSB),$(OUT)/plots/sts-dev-curve.png)
	@$(if $(DEMO_STSB),echo "STS-B dev against CPU minutes of training: $(OUT)/plots/sts-dev-curve.png ($(OUT)/curve.csv)",echo "demo: the curve needs STS-B dev, and $(SHARED_DATA)/stsbenchmark is absent" >&2; exit 66)
$(OUT)/curve.csv: $(foreach s,$(TRAINED),$(MODEL_$(s))/model.safetensors) $(OUT)/eval-data/sts-dev.jsonl
	echo "epoch,steps,sts-dev_spearman_cosine" > $@.tmp
	printf -- '-1,0,%s\n' $$(st-eval similarity --model $(MODEL_init) --name s $(threads) < $(OUT)/eval-data/sts-dev.jsonl | jq '.s_spearman_cosine') >> $@.tmp
	before=0; for s in $(TRAINED); do \
	  cpu=$$(cat $(OUT)/$$s.cpu); total=$$(jq -s 'map(select(.kind == "log")) | length' $(OUT)/$$s.log.jsonl); \
	  for n in $$(ls $(OUT)/$$s | sed -n 's/^checkpoint-\([0-9]*\)$$/\1/p' | sort -n); do \
	    score=$$(st-eval similarity --model $(OUT)/$$s/checkpoint-$$n/model --name s $(threads) < $(OUT)/eval-data/sts-dev.jsonl | jq '.s_spearman_cosine'); \
	    awk -v b=$$before -v c=$$cpu -v n=$$n -v t=$$total -v y=$$score 'BEGIN { printf "-1,%.3f,%s\n", b + c * n / t, y }' >> $@.tmp; \
	  done; \
	  before=$$(awk -v b=$$before -v c=$$cpu 'BEGIN { print b + c }'); \
	done
	mv $@.tmp $@
$(OUT)/plots/sts-dev-curve.png: $(OUT)/curve.csv
	@mkdir -p $(@D)
	st-plot --title "st demo: STS-B dev Spearman during training ($(TRAINED))" --xlabel "CPU minutes of training" \
	  --size 800x400 --eval $< -o $@

# ---- the Hub-ready directory: the fine-tuned model with its card ----
# st-card reads the run (trainer.json) beside the run's model; the card is written into the copy.
FINAL_EVALS := $(foreach e,$(EVALS),$(OUT)/eval/$(LAST)/$(e).json)
$(OUT)/model/model.safetensors: $(MODEL_$(LAST))/model.safetensors $(FINAL_EVALS)
	rm -rf $(OUT)/model.tmp && cp -r $(MODEL_$(LAST)) $(OUT)/model.tmp
	if command -v st-card > /dev/null; then \
	  st-card --model $(MODEL_$(LAST)) -o $(OUT)/model.tmp/README.md $(foreach s,$(filter-out $(LAST),$(TRAINED)),--run $(OUT)/$(s)) --from-scratch \
	    --model-name "st demo: a small BERT trained from scratch on WordNet$(if $(DEMO_STSB), and STS-B)" \
	    --datasets wordnet $(if $(DEMO_STSB),sentence-transformers/stsb) --language en --loss MultipleNegativesRankingLoss --loss TripletLoss $(if $(DEMO_STSB),--loss CoSENTLoss) \
	    --dataset-size $$(cat $(foreach s,$(TRAINED),$(OUT)/$(TRAIN_$(s)).jsonl) | wc -l) $(foreach f,$(FINAL_EVALS),--eval $(f)); \
	else \
	  echo "demo: no st-card yet; the card is st-step's, with the scores appended" >&2; \
	  { echo; echo "## Evaluation (st demo)"; echo; echo "| evaluator | metric | value |"; echo "|---|---|---|"; \
	    for f in $(FINAL_EVALS); do jq -r --arg e "$$(basename $$f .json)" 'to_entries[] | "| \($$e) | \(.key) | \(.value) |"' $$f; done; \
	  } >> $(OUT)/model.tmp/README.md; \
	fi
	rm -rf $(OUT)/model && mv $(OUT)/model.tmp $(OUT)/model
