# demo-data.mk: the demo's data sets, made by the converters in pipelines/converters/ (include it from a
# Makefile run at the project root: `include pipelines/demo-data.mk`, then `make demo-data`).
#
#   $(DEMO_OUT)/wordnet-triplets-{train,dev}.jsonl  (example, definition, other sense's definition); the
#        train split's negatives only from train synsets (DEMO_NEGATIVES_IN_SPLIT=1, converters/wordnet
#        --negatives-in-split): otherwise 1 training triplet in 6 pushes a word's examples away from the
#        definition of a held-out sense, and TripletLoss lowers the dev accuracy (docs/training.md)
#   $(DEMO_OUT)/wordnet-pairs-{train,dev}.jsonl     (example, definition) positives
#   $(DEMO_OUT)/wordnet-scored-{train,dev}.jsonl    (definition, definition, 1/(1+path length)), 1 synset in 4
#   $(DEMO_OUT)/stsb-{dev,test}.jsonl               (sentence, sentence, score/5), when ../shared/data exists
#
# Every file is written to a temporary name and renamed, so an interrupted make leaves no half file.

DEMO_OUT ?= pipelines/out
CONVERTERS ?= pipelines/converters
WORDNET_DIR ?= $(or $(WNSEARCHDIR),/usr/share/wordnet)
SHARED_DATA ?= ../shared/data
DEMO_SCORED_SAMPLE ?= 4
DEMO_NEGATIVES_IN_SPLIT ?= 1

DEMO_WORDNET := $(foreach c,triplets pairs scored,$(foreach s,train dev,$(DEMO_OUT)/wordnet-$(c)-$(s).jsonl))
DEMO_STSB := $(if $(wildcard $(SHARED_DATA)/stsbenchmark/sts-dev.csv),$(DEMO_OUT)/stsb-dev.jsonl $(DEMO_OUT)/stsb-test.jsonl)
DEMO_WORDNET_DEPS := $(CONVERTERS)/wordnet $(CONVERTERS)/wordnet.awk $(CONVERTERS)/json.awk $(CONVERTERS)/lib.sh

.PHONY: demo-data demo-data-clean
demo-data: $(DEMO_WORDNET) $(DEMO_STSB)
	@$(if $(DEMO_STSB),,echo "demo-data: $(SHARED_DATA)/stsbenchmark is absent; STS-B files skipped" >&2)

$(DEMO_OUT)/wordnet-triplets-%.jsonl: $(DEMO_WORDNET_DEPS)
	@mkdir -p $(@D)
	$(CONVERTERS)/wordnet --case triplets --split $* $(if $(DEMO_NEGATIVES_IN_SPLIT:0=),$(if $(filter train,$*),--negatives-in-split)) \
	  $(WORDNET_DIR) > $@.tmp && mv $@.tmp $@
$(DEMO_OUT)/wordnet-pairs-%.jsonl: $(DEMO_WORDNET_DEPS)
	@mkdir -p $(@D)
	$(CONVERTERS)/wordnet --case pairs --split $* $(WORDNET_DIR) > $@.tmp && mv $@.tmp $@
$(DEMO_OUT)/wordnet-scored-%.jsonl: $(DEMO_WORDNET_DEPS)
	@mkdir -p $(@D)
	$(CONVERTERS)/wordnet --case scored --sample $(DEMO_SCORED_SAMPLE) --split $* $(WORDNET_DIR) > $@.tmp && mv $@.tmp $@
$(DEMO_OUT)/stsb-%.jsonl: $(CONVERTERS)/stsb $(CONVERTERS)/lib.sh
	@mkdir -p $(@D)
	$(CONVERTERS)/stsb --split $* $(SHARED_DATA)/stsbenchmark > $@.tmp && mv $@.tmp $@

demo-data-clean:
	rm -f $(DEMO_WORDNET) $(DEMO_OUT)/stsb-dev.jsonl $(DEMO_OUT)/stsb-test.jsonl
