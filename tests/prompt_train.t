#!/bin/bash
# include_prompt: false in training, against PyTorch. st-tokenize --prompt records each text's prompt_length
# (hand-worked: "w9 w10 " tokenizes to [CLS] w9 w10 [SEP], so 3, the [CLS] counted and the [SEP] not, as the
# library's trainer counts it), st-batch carries it as "prompt_lengths", and st-forward and st-step leave those
# positions out of pooling when 1_Pooling/config.json says include_prompt false. Compared with
# tests/reference/train_ref.py (model_ref.py's BERT in float64, Pooling.forward zeroing attention_mask[:, :p]):
# st-forward's embeddings, and 10 steps of mnrl (loss, lr, grad_norm of every step, the final weights) for a mean
# model and a max+mean_sqrt_len+weightedmean+lasttoken model. Negative controls: torch with the prompt pooled
# must disagree on embeddings, losses and weights; a model with include_prompt true ignores prompt_lengths.
# The same with a prompt per column (--column-prompt-name, --column-prompt). Then malformed prompt lengths.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || skip_all "/usr/bin/python3 lacks torch or numpy"
REF="$ROOT/tests/reference/train_ref.py"

train_model "$TMP/incl" --dropout 0 --seed 7
ok $? "a tiny random model without dropout" || cat "$TMP/err"
train_model "$TMP/multi-incl" --dropout 0 --seed 11 --pooling max,mean_sqrt_len,weightedmean,lasttoken
ok $? "... and one pooling max, mean_sqrt_len, weightedmean and lasttoken" || cat "$TMP/err"
for m in incl multi-incl; do   # the same weights with include_prompt false
	cp -R "$TMP/$m" "$TMP/$m-x"
	jq '.include_prompt = false' "$TMP/$m/1_Pooling/config.json" > "$TMP/$m-x/1_Pooling/config.json"
done
mv "$TMP/incl-x" "$TMP/mean"
mv "$TMP/multi-incl-x" "$TMP/multi"
st-init --transformer "$TMP/incl" --no-include-prompt -o "$TMP/by-init" 2>"$TMP/err"
[ "$(jq -cS . "$TMP/by-init/1_Pooling/config.json")" = "$(jq -cS . "$TMP/mean/1_Pooling/config.json")" ]
ok $? "st-init --no-include-prompt writes include_prompt false (the file the jq edit gives)"

# 80 pairs of 0..8 words (w11..w119); the positive keeps the anchor's words with a third replaced. Row 0's
# anchor is empty: with the prompt it is [CLS] w9 w10 [SEP], and only the [SEP] is pooled.
awk 'BEGIN { srand(5); for (i = 0; i < 80; i++) {
	n = i ? 1 + int(rand() * 8) : 0; a = ""; p = ""
	for (k = 0; k < n; k++) { w = 11 + int(rand() * 109); a = a (k ? " " : "") "w" w
		p = p (k ? " " : "") "w" (rand() < 0.3 ? 11 + int(rand() * 109) : w) }
	if (!n) p = "w50 w51"
	printf "{\"texts\": [\"%s\", \"%s\"]}\n", a, p } }' > "$TMP/pairs.jsonl"

st-tokenize --model "$TMP/mean" --prompt "w9 w10 " --json < "$TMP/pairs.jsonl" > "$TMP/tok.jsonl" 2>"$TMP/err"
ok $? "st-tokenize --prompt" || cat "$TMP/err"
is "$(jq -c .prompt_length "$TMP/tok.jsonl" | sort -u)" "[3,3]" "prompt_length is 3 for both texts of every example"
is "$(head -1 "$TMP/tok.jsonl" | jq -c .input_ids)" "[[2,9,10,3],[2,9,10,50,51,3]]" \
	"the prompt's ids come first ([CLS]=2, w9, w10; [SEP]=3)"
st-tokenize --model "$TMP/mean" --json < "$TMP/pairs.jsonl" | jq -e 'has("prompt_length") | not' > /dev/null
ok $? "no prompt, no prompt_length"
jq -c '.prompts = {"query": "w9 w10 "}' "$TMP/mean/config_sentence_transformers.json" > "$TMP/c"
cp -R "$TMP/mean" "$TMP/named" && mv "$TMP/c" "$TMP/named/config_sentence_transformers.json"
st-tokenize --model "$TMP/named" --prompt-name query --json < "$TMP/pairs.jsonl" | cmp -s - "$TMP/tok.jsonl"
ok $? "--prompt-name query gives the same records as --prompt"

st-batch --size 8 --json < "$TMP/tok.jsonl" > "$TMP/batches.jsonl"
is "$(jq -c 'select(.kind == "batch") | .prompt_lengths | flatten | unique' "$TMP/batches.jsonl" | sort -u)" "[3]" \
	"st-batch carries prompt_lengths [columns][rows]"
is "$(st-batch --size 8 < "$TMP/tok.jsonl" | st-json | head -1 | jq -c '.prompt_lengths | [length, (.[0] | length)]')" \
	"[2,8]" "... in msgpack too, shaped [2][8]"

# --- forward: st-forward's embeddings against torch's
for m in mean multi; do
	st-forward --model "$TMP/$m" --json --threads 1 < "$TMP/batches.jsonl" > "$TMP/$m.fwd" 2>"$TMP/err"
	ok $? "$m: st-forward" || cat "$TMP/err"
	/usr/bin/python3 "$REF" embed "$TMP/$m" "$TMP/batches.jsonl" "$TMP/$m.fwd" > "$TMP/cmp" 2>"$TMP/err"
	ok $? "$m: torch ran" || cat "$TMP/err"
	while IFS=$'\t' read -r rc what; do ok "$rc" "$m, include_prompt false: $what"; done < "$TMP/cmp"
	# the check fails when the prompt is pooled
	/usr/bin/python3 "$REF" embed "$TMP/$m" "$TMP/batches.jsonl" "$TMP/$m.fwd" --pool-prompt 1 > "$TMP/cmp"
	grep -q $'^1\t' "$TMP/cmp"; ok $? "$m negative control: torch pooling the prompt disagrees" || cat "$TMP/cmp"
done
# the same weights with include_prompt true: prompt_lengths change nothing, the prompt is pooled
st-forward --model "$TMP/incl" --json --threads 1 < "$TMP/batches.jsonl" > "$TMP/incl.fwd"
/usr/bin/python3 "$REF" embed "$TMP/incl" "$TMP/batches.jsonl" "$TMP/incl.fwd" > "$TMP/cmp"
grep -q $'^0\t' "$TMP/cmp"; ok $? "include_prompt true: the prompt is pooled, as torch does" || cat "$TMP/cmp"
jq -c 'del(.prompt_lengths)' "$TMP/batches.jsonl" | st-forward --model "$TMP/mean" --json --threads 1 |
	jq -c .embeddings > "$TMP/noprompt.emb"
jq -c .embeddings "$TMP/incl.fwd" | cmp -s - "$TMP/noprompt.emb"
ok $? "include_prompt false without prompt_lengths pools everything, as the library without prompt_length"

# --- training: 10 steps of mnrl through the pipeline against a torch fit()
LR=1e-3
for m in mean multi; do
	st-batch --size 8 < "$TMP/tok.jsonl" |
		st-forward --model "$TMP/$m" --run "$TMP/run-$m" --threads 1 |
		st-loss mnrl |
		timeout --foreground 60 st-step --model "$TMP/$m" --run "$TMP/run-$m" --threads 1 --lr $LR \
			--scheduler warmuplinear --warmup-steps 3 --json > "$TMP/$m.log" 2>"$TMP/err"
	ok $? "$m: 10 steps through the pipeline" || cat "$TMP/err"
	/usr/bin/python3 "$REF" train "$TMP/$m" --objective mnrl "$TMP/batches.jsonl" --lr $LR \
		--scheduler warmuplinear --warmup-steps 3 --log "$TMP/$m.log" \
		--weights "$TMP/run-$m/model/model.safetensors" > "$TMP/cmp" 2>"$TMP/err"
	ok $? "$m: torch ran" || cat "$TMP/err"
	while IFS=$'\t' read -r rc what; do ok "$rc" "$m: $what"; done < "$TMP/cmp"
	/usr/bin/python3 "$REF" train "$TMP/$m" --objective mnrl "$TMP/batches.jsonl" --lr $LR \
		--scheduler warmuplinear --warmup-steps 3 --log "$TMP/$m.log" --pool-prompt 1 \
		--weights "$TMP/run-$m/model/model.safetensors" > "$TMP/cmp" 2>"$TMP/err"
	grep -q $'^1\tevery update.s loss' "$TMP/cmp"; ok $? "$m negative control: torch pooling the prompt gives other losses"
	grep -q $'^1\tall .* trained tensors' "$TMP/cmp"; ok $? "$m negative control: ... and other weights"
done

# --- a prompt per column (the trainer's prompts={column: prompt}): anchors "w9 w10 " (3), positives "w7 " (2)
st-tokenize --model "$TMP/named" --column-prompt-name 0=query --column-prompt 1="w7 " --json < "$TMP/pairs.jsonl" \
	> "$TMP/ctok.jsonl" 2>"$TMP/err"
ok $? "st-tokenize --column-prompt-name 0=query --column-prompt 1=..." || cat "$TMP/err"
is "$(jq -c .prompt_length "$TMP/ctok.jsonl" | sort -u)" "[3,2]" "prompt_length is 3 for the anchors, 2 for the positives"
is "$(sed -n 2p "$TMP/ctok.jsonl" | jq -c '[.input_ids[0][0:3], .input_ids[1][0:2]]')" "[[2,9,10],[2,7]]" \
	"each column starts with its own prompt's ids"
st-tokenize --model "$TMP/mean" --prompt "w9 w10 " --column-prompt 1= --json < "$TMP/pairs.jsonl" |
	jq -c .prompt_length | sort -u > "$TMP/pl"
is "$(cat "$TMP/pl")" "[3,0]" "--column-prompt 1= takes column 1's prompt away (prompt_length 0)"
st-batch --size 8 --json < "$TMP/ctok.jsonl" > "$TMP/cbatches.jsonl"
for m in mean multi; do
	st-forward --model "$TMP/$m" --json --threads 1 < "$TMP/cbatches.jsonl" > "$TMP/$m.cfwd" 2>"$TMP/err"
	/usr/bin/python3 "$REF" embed "$TMP/$m" "$TMP/cbatches.jsonl" "$TMP/$m.cfwd" > "$TMP/cmp" 2>"$TMP/err"
	while IFS=$'\t' read -r rc what; do ok "$rc" "$m, a prompt per column: $what"; done < "$TMP/cmp"
done
st-batch --size 8 < "$TMP/ctok.jsonl" |
	st-forward --model "$TMP/multi" --run "$TMP/run-cmulti" --threads 1 |
	st-loss mnrl |
	timeout --foreground 60 st-step --model "$TMP/multi" --run "$TMP/run-cmulti" --threads 1 --lr $LR \
		--scheduler warmuplinear --warmup-steps 3 --json > "$TMP/cmulti.log" 2>"$TMP/err"
ok $? "multi, a prompt per column: 10 steps through the pipeline" || cat "$TMP/err"
/usr/bin/python3 "$REF" train "$TMP/multi" --objective mnrl "$TMP/cbatches.jsonl" --lr $LR \
	--scheduler warmuplinear --warmup-steps 3 --log "$TMP/cmulti.log" \
	--weights "$TMP/run-cmulti/model/model.safetensors" > "$TMP/cmp" 2>"$TMP/err"
grep $'^1\t' "$TMP/cmp" | sed 's/^/#   /'
! grep -q $'^1\t' "$TMP/cmp" && grep -q $'^0\tall' "$TMP/cmp"
ok $? "multi, a prompt per column: losses, lr, grad norms and weights equal torch's"
st-tokenize --model "$TMP/mean" --column-prompt x=w7 < "$TMP/pairs.jsonl" > /dev/null 2>"$TMP/err"
is $? 64 "--column-prompt without a column number is a usage error"
st-tokenize --model "$TMP/named" --column-prompt-name 1=nope < "$TMP/pairs.jsonl" > /dev/null 2>"$TMP/err"
is $? 65 "--column-prompt-name with a name the config lacks is bad data"

# --- bad prompt lengths
head -1 "$TMP/tok.jsonl" | jq -c '.prompt_length = [3]' | st-batch --size 1 > /dev/null 2>"$TMP/err"
is $? 65 "st-batch: a prompt_length list of the wrong length is bad data"
grep -q "record 1\|line 1" "$TMP/err" && grep -q "prompt_length" "$TMP/err"; ok $? "... the message names the line and the key" || cat "$TMP/err"
head -1 "$TMP/tok.jsonl" | jq -c '.prompt_length = [3, -1]' | st-batch --size 1 > /dev/null 2>"$TMP/err"
is $? 65 "st-batch: a negative prompt_length is bad data"
head -1 "$TMP/tok.jsonl" | jq -c '.prompt_length = [3, 2.5]' | st-batch --size 1 > /dev/null 2>"$TMP/err"
is $? 65 "st-batch: a fractional prompt_length is bad data"
echo '{"prompt_lengths": [[3.5]]}' | st-json > /dev/null 2>"$TMP/err"
is $? 65 "prompt_lengths is typed i32 in JSON: 3.5 is refused"
is "$(echo '{"prompt_lengths": [[3, 0]]}' | st-json --to-msgpack | st-json)" '{"v":1,"prompt_lengths":[[3,0]]}' \
	"... and [[3, 0]] goes through msgpack and back"
head -1 "$TMP/batches.jsonl" | jq -c '.prompt_lengths = [[3]]' | st-forward --model "$TMP/mean" > /dev/null 2>"$TMP/err"
is $? 65 "st-forward: prompt_lengths not shaped like lengths is bad data"
grep -q "prompt_lengths" "$TMP/err"; ok $? "... the message names prompt_lengths" || cat "$TMP/err"
head -1 "$TMP/batches.jsonl" | jq -c '.prompt_lengths[0][0] = -2' | st-forward --model "$TMP/mean" > /dev/null 2>"$TMP/err"
is $? 65 "st-forward: a negative prompt length is bad data"
head -1 "$TMP/mean.fwd" | jq -c '.prompt_lengths = [[3]] | .loss = 0 | .grad = .embeddings' |
	st-step --model "$TMP/mean" --run "$TMP/run-bad" --trust-embeddings > /dev/null 2>"$TMP/err"
is $? 65 "st-step: prompt_lengths not shaped like lengths is bad data"
grep -q "prompt_lengths" "$TMP/err"; ok $? "... the message names prompt_lengths" || cat "$TMP/err"
done_testing
