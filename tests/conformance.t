#!/bin/bash
# Conformance of every bin/st-* program with the project's conventions (README.md, docs/stream-format.md):
# --help, unknown options and missing values (64), its page docs/st-NAME.md with the sections and the options
# of --help, --threads N; and, for the programs below that read or write streams: good input exits 0, a
# malformed JSON line (or a truncated msgpack record) exits 65 naming the line (record) with only whole records
# written before it, a closed downstream pipe ends the stage with status 0 and nothing on stderr, a missing model
# directory or input file exits 66 naming it.
# New programs in bin/ get the first checks at once; the stream checks want a line in `invocation` below.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/lib-model.sh"

tiny_model "$TMP/m"
M=$TMP/m
NOPE=$TMP/no-such-model
NOFILE=$TMP/no-such-file
cat > "$TMP/ex.jsonl" <<'JSONL'
{"texts": ["the cat sat on the mat", "a cat sat on a mat"], "label": 4.5}
{"texts": ["the dog ran far away", "a big red house"], "label": 0.5}
{"texts": ["a small blue tree", "the small tree"], "label": 3.0}
{"texts": ["the red dog", "the red cat"], "label": 2.5}
JSONL
printf '%s\n' "the cat sat on the mat" "a dog ran far away" "the big red house" "a small blue tree" > "$TMP/text.txt"
sed 's/.*/{"text": "&"}/' "$TMP/text.txt" > "$TMP/text.jsonl"
st-tokenize --model "$M" --json < "$TMP/ex.jsonl" > "$TMP/tok.jsonl" &&
	st-batch --size 2 --json < "$TMP/tok.jsonl" > "$TMP/batch.jsonl" &&
	st-forward --model "$M" --json < "$TMP/batch.jsonl" > "$TMP/fwd.jsonl" &&
	st-loss --json mnrl < "$TMP/fwd.jsonl" > "$TMP/loss.jsonl"
ok $? "the inputs of the stages: examples, tokenized examples, batches, embeddings, gradients"
printf '%s\n' '{"kind": "log", "step": 0, "epoch": 0, "loss": 1.5, "lr": 2e-5}' \
	'{"kind": "log", "step": 1, "epoch": 0, "loss": 1.2, "lr": 1e-5}' > "$TMP/log.jsonl"
run_n=0

# invocation NAME: sets args (a good run, --threads 1 included), input (its stdin; empty: none), records (1 when
# stdin is JSON Lines, 2 when it is a record stream, msgpack too), writes (1 when it writes data on stdout),
# missing (arguments naming the model directory $NOPE) and nofile (arguments naming the input file $NOFILE);
# empty: the program takes none. Returns 1 for a program not described here.
invocation() {
	args= input= records=0 writes=0 missing= nofile=
	run_n=$((run_n + 1))
	case "$1" in
	st-json) args="--threads 1" input=ex.jsonl records=2 writes=1 ;;
	st-tokenize) args="--model $M --json --threads 1" input=ex.jsonl records=2 writes=1 missing="--model $NOPE"
		nofile="--tokenizer $NOFILE" ;;
	st-vocab) args="-o $TMP/vocab$run_n --vocab-size 40 --threads 1" input=text.txt missing="--from $NOPE -o $TMP/v$run_n" ;;
	st-batch) args="--size 2 --json --threads 1" input=tok.jsonl records=2 writes=1 ;;
	st-init) args="--config $TMP/bert.json --vocab $TMP/vocab.txt -o $TMP/init$run_n --threads 1"
		missing="--transformer $NOPE -o $TMP/init-nope$run_n"
		nofile="--config $NOFILE --vocab $TMP/vocab.txt -o $TMP/init-nope$run_n" ;;
	st-forward) args="--model $M --json --threads 1" input=batch.jsonl records=2 writes=1 missing="--model $NOPE" ;;
	st-loss) args="--json --threads 1 mnrl" input=fwd.jsonl records=2 writes=1 ;;
	st-gather) args="--threads 1" input=fwd.jsonl writes=1 ;;   # one process: a byte-for-byte pass-through
	st-step) args="--run $TMP/run$run_n --model $M --no-save --trust-embeddings --json --threads 1" input=loss.jsonl records=2 writes=1
		missing="--run $TMP/run-nope$run_n --model $NOPE"
		nofile="--run $TMP/run-nofile$run_n --model $M --input $NOFILE" ;;
	st-encode) args="--model $M --threads 1" input=text.jsonl records=1 writes=1 missing="--model $NOPE"
		nofile="--model $M $NOFILE" ;;
	st-eval) args="similarity --model $M --threads 1" input=ex.jsonl records=2 writes=1 missing="similarity --model $NOPE"
		nofile="similarity --model $M --corpus $NOFILE" ;;
	st-search) args="--model $M --corpus $TMP/text.txt --top-k 2 --threads 1" input=text.jsonl records=1 writes=1
		missing="--model $NOPE --corpus $TMP/text.txt" nofile="--model $M --corpus $NOFILE" ;;
	st-mine) args="--model $M --top-k 2 --threads 1" input=text.jsonl records=1 writes=1 missing="--model $NOPE"
		nofile="--model $M $NOFILE" ;;
	st-similarity) args="--model $M --threads 1" input=ex.jsonl records=2 writes=1 missing="--model $NOPE"
		nofile="--model $M --queries $TMP/text.txt --corpus $NOFILE" ;;
	st-export) args="--onnx --model $M -o $TMP/export$run_n.onnx --threads 1" missing="--onnx --model $NOPE -o $TMP/x.onnx" ;;
	st-plot) args="-o $TMP/plot$run_n.png --threads 1" input=log.jsonl records=2 nofile="-o $TMP/plot.png $NOFILE" ;;
	st-card) args="--model $TMP/card-model -o $TMP/card$run_n.md --threads 1" missing="--model $NOPE"
		nofile="--model $TMP/card-model -o $TMP/card.md --eval $NOFILE" ;;
	st-download) args="$M --threads 1" input=ex.jsonl writes=1 missing="$NOPE" ;;
	st-push) args="--model $M --repo $TMP/push.git --threads 1" missing="--model $NOPE --repo $TMP/push.git"
		git lfs version > /dev/null 2>&1 || args= ;;   # (push.t says why when git-lfs is missing)
	*) return 1 ;;
	esac
}
cp -R "$M" "$TMP/card-model"
git init --quiet --bare "$TMP/push.git"

# closed_stdout CMD...: runs CMD with stdout a pipe whose reading end is already closed, SIGPIPE as a shell has it
closed_stdout() {
	perl -e 'pipe(my $r, my $w) or die; close $r; open(STDOUT, ">&", $w) or die; close $w;
		$SIG{PIPE} = "DEFAULT"; exec @ARGV or die "exec $ARGV[0]: $!"' "$@"
}
shown() {   # shown is|ok ARGS...: the check, and $TMP/err as comments when it failed
	failed_before=$tap_failed
	"$@"
	[ "$tap_failed" = "$failed_before" ] || sed 's/^/#   /' "$TMP/err"
}
whole_lines() {   # whole_lines FILE: empty, or lines each ending with a newline
	[ ! -s "$1" ] || [ "$(tail -c 1 "$1" | od -An -tx1 | tr -d ' ')" = 0a ]
}

for path in bin/st-*; do
	[ -x "$path" ] || continue
	t=${path#bin/}
	"$t" --help > "$TMP/out" 2> "$TMP/err" < /dev/null
	is $? 0 "$t --help exits 0"
	head -c 6 "$TMP/out" | grep -q '^usage:'; ok $? "$t --help prints usage on stdout"
	grep -q -- '--threads' "$TMP/out"; ok $? "$t --help lists --threads"

	"$t" --no-such-option < /dev/null > "$TMP/out" 2> "$TMP/err"
	is $? 64 "$t --no-such-option exits 64"
	grep -q -- "^$t: .*--no-such-option" "$TMP/err"; ok $? "$t: the message names the option"
	[ ! -s "$TMP/out" ]; ok $? "$t: nothing on stdout"
	"$t" --threads < /dev/null > /dev/null 2> "$TMP/err"
	is $? 64 "$t --threads without its value exits 64"
	grep -q "^$t: " "$TMP/err"; ok $? "$t: ... with a message"

	page=docs/$t.md
	[ -f "$page" ]; ok $? "$page exists"
	for s in NAME SYNOPSIS DESCRIPTION OPTIONS INPUT/OUTPUT "EXIT STATUS" EXAMPLES; do
		grep -q "^## $s\$" "$page" 2> /dev/null; ok $? "$page has a $s section"
	done
	"$t" --help 2> /dev/null | grep -o -- '--[a-z][a-z0-9-]*' | grep -v -x -- --help | sort -u > "$TMP/opts"
	undocumented=$(while read -r o; do grep -q -- "$o" "$page" 2> /dev/null || printf ' %s' "$o"; done < "$TMP/opts")
	is "$undocumented" "" "$page describes every option of --help"

	if ! invocation "$t"; then
		echo "not ok $((tap_n += 1)) - $t: no stream invocation in tests/conformance.t # TODO describe it"
		continue
	fi
	if [ -z "$args" ]; then
		:
	elif [ -n "$input" ]; then
		"$t" $args < "$TMP/$input" > "$TMP/out" 2> "$TMP/err"
		shown is $? 0 "$t $args < $input exits 0"
		[ "$records" = 0 ] || {
			invocation "$t"
			{ head -1 "$TMP/$input"; echo '{"texts": ["a broken line", '; } > "$TMP/bad"
			"$t" $args < "$TMP/bad" > "$TMP/out" 2> "$TMP/err"
			is $? 65 "$t: a malformed JSON line exits 65"
			grep -q "^$t: stdin, line 2: " "$TMP/err"; shown ok $? "$t: ... naming the line"
			whole_lines "$TMP/out" && jq . "$TMP/out" > /dev/null
			ok $? "$t: ... and nothing but whole records on stdout"
		}
		[ "$records" = 2 ] && {
			invocation "$t"
			st-json --to-msgpack < "$TMP/$input" | head -c -1 > "$TMP/bad"   # the last record cut short
			"$t" $args < "$TMP/bad" > "$TMP/out" 2> "$TMP/err"
			is $? 65 "$t: a truncated msgpack record exits 65"
			grep -q "^$t: stdin, record [0-9]" "$TMP/err"; shown ok $? "$t: ... naming the record"
		}
	else
		"$t" $args > "$TMP/out" 2> "$TMP/err" < /dev/null
		shown is $? 0 "$t $args exits 0"
	fi
	if [ "$writes" = 1 ] && [ -n "$args" ]; then
		invocation "$t"
		closed_stdout "$t" $args < "$TMP/$input" 2> "$TMP/err"
		is $? 0 "$t: a closed downstream pipe exits 0"
		[ ! -s "$TMP/err" ]; shown ok $? "$t: ... with nothing on stderr"
	fi
	if [ -n "$missing" ]; then
		"$t" $missing < "$TMP/${input:-ex.jsonl}" > /dev/null 2> "$TMP/err"
		is $? 66 "$t $missing exits 66"
		grep -q "^$t: .*no-such-model" "$TMP/err"; shown ok $? "$t: ... naming the directory"
	fi
	if [ -n "$nofile" ]; then
		"$t" $nofile < "$TMP/${input:-ex.jsonl}" > /dev/null 2> "$TMP/err"
		is $? 66 "$t $nofile exits 66"
		grep -q "^$t: .*no-such-file" "$TMP/err"; shown ok $? "$t: ... naming the file"
	fi
done
done_testing
