#!/bin/sh
# Every command block of README.md and docs/*.md runs, as printed, on small data (issue 10: what a newcomer
# copies from the documentation must work). tests/docs-blocks.py lists the blocks; this runs them.
#
# Which blocks are commands:
#   - fenced blocks marked sh, bash or shell;
#   - indented or unmarked fenced blocks under a heading that says "example" (## EXAMPLES, ## Example command
#     lines), unless the block starts with { or [ (an example record);
#   - any block after <!-- doc-test: run -->.
# Not run: blocks under SYNOPSIS or OPTIONS headings (grammar), fenced blocks in other languages, and other
# blocks that do not start with a program. A block that starts with a program (st-*, make, jq, ...) and that no
# rule above covers fails the test, so that a new page cannot add an untested command by accident.
# Markers, HTML comments on the lines just before a block (a renderer shows nothing of them):
#   <!-- doc-test: skip REASON -->         not run; REASON is printed. Use sparingly (e.g. a network upload).
#   <!-- doc-test: mirror tests/NAME.t --> run in spirit by that test, which must name the page (e.g. README.md).
#   <!-- doc-test: needs PATH -->          run only when PATH exists (e.g. ../shared/data/stsbenchmark, /usr/bin/mpirun).
#   <!-- doc-test: run -->                 run a block the rules above would not.
#   <!-- doc-test: setup                   hidden commands run before the block, in the same folder, to make
#   COMMANDS                               the files the example reads (several lines, up to a line "-->";
#   -->                                    or on one line: <!-- doc-test: setup COMMANDS -->).
# Where blocks run: each page in its own scratch folder W/PAGE (bash -e -o pipefail, bin/ first on PATH, 120 s
# per block), blocks of a page in order, so a later block sees the files of an earlier one. W/shared is
# ../shared when that exists (so ../shared/data works as from the repository root), and every folder holds:
#   m/, init/        a tiny BERT sentence-transformers model (tests/lib-model.sh; words: $TINY_WORDS), twice
#   pipelines        the repository's pipelines/ (converters), read only; tests: the repository's tests/
#   sentences.txt    six lines of those words;  corpus.txt, questions.txt, q.txt: the same
#   pairs.jsonl      {"texts": [a, b], "label": x in [0, 1]}, eight lines; dev.jsonl: the same
#   data.jsonl       {"q", "pos", "neg"}, eight lines
#   tok.msgpack      pairs.jsonl tokenized with m
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-model.sh"
command -v jq > /dev/null || skip_all "jq is absent"
command -v bash > /dev/null || skip_all "bash is absent"
[ -x bin/st-init ] || skip_all "not built"

W=$TMP/w
FIX=$W/.fixture
mkdir -p "$W" "$FIX" "$TMP/blocks"
[ -d "$ROOT/../shared" ] && ln -s "$ROOT/../shared" "$W/shared"
tiny_model "$FIX/m" --pooling mean
cp -R "$FIX/m" "$FIX/init"
ln -s "$ROOT/pipelines" "$FIX/pipelines"
ln -s "$ROOT/tests" "$FIX/tests"   # docs/hub.md starts tests/hub_server.py, as from the repository root
# A newcomer's shell: no HF_HUB_OFFLINE (lib.sh sets it for the other tests), and a Hub endpoint that answers at
# once with "connection refused" so that a block can never reach the network (docs/hub.md sets its own).
unset HF_HUB_OFFLINE
export HF_ENDPOINT=http://127.0.0.1:9
# The README's mpirun example as the tests run it (as root in CI), without the root-only flag in the page
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
printf '%s\n' "the cat sat on the mat ." "a dog ran far away ." "the big red house ." "a small blue tree ." \
	"the dog sat on a mat ." "a cat ran away ." > "$FIX/sentences.txt"
for f in corpus.txt questions.txt q.txt; do cp "$FIX/sentences.txt" "$FIX/$f"; done
awk 'NR > 1 { printf "{\"texts\": [\"%s\", \"%s\"], \"label\": %.2f}\n", prev, $0, (NR % 5) / 5 } { prev = $0 }
	END { print "{\"texts\": [\"the cat\", \"a cat\"], \"label\": 0.9}"; print "{\"texts\": [\"the dog\", \"a tree\"], \"label\": 0.1}";
	      print "{\"texts\": [\"red house\", \"blue house\"], \"label\": 0.6}" }' "$FIX/sentences.txt" > "$FIX/pairs.jsonl"
cp "$FIX/pairs.jsonl" "$FIX/dev.jsonl"
jq -c '{q: .texts[0], pos: .texts[1], neg: "the big red house ."}' "$FIX/pairs.jsonl" > "$FIX/data.jsonl"
st-tokenize --model "$FIX/m" < "$FIX/pairs.jsonl" > "$FIX/tok.msgpack" || skip_all "st-tokenize cannot tokenize the fixture"

skip() { tap_n=$((tap_n + 1)); echo "ok $tap_n # SKIP $1"; }

/usr/bin/python3 tests/docs-blocks.py "$TMP/blocks" README.md docs/*.md > "$TMP/plan" || { ok 1 "docs-blocks.py"; done_testing; }
while IFS="$(printf '\t')" read -r n class page line detail; do
	dir=$W/$(echo "$page" | tr '/' '_')
	[ -d "$dir" ] || cp -R "$FIX" "$dir"
	where="$page:$line"
	if [ -f "$TMP/blocks/$n.setup.sh" ]; then
		(cd "$dir" && timeout 120 bash -e -o pipefail "$TMP/blocks/$n.setup.sh") > "$TMP/out" 2> "$TMP/err"
		ok $? "$where: setup" || sed 's/^/#   /' "$TMP/err" | tail -5
	fi
	case $class in
	needs)
		case $detail in /*) need=$detail ;; *) need=$dir/$detail ;; esac   # absolute: a program of the machine
		if [ ! -e "$need" ]; then skip "$where: $detail is absent"; continue; fi ;;
	skip) skip "$where: $detail"; continue ;;
	mirror)
		grep -qF "$page" "$detail" 2> /dev/null; ok $? "$where: mirrored by $detail (which names $page)"; continue ;;
	unmarked)
		ok 1 "$where: a command (\`$detail\`) that no doc-test rule covers: put it under an EXAMPLES heading or mark it (tests/docs.t)"
		continue ;;
	text) continue ;;
	esac
	(cd "$dir" && timeout 120 bash -e -o pipefail "$TMP/blocks/$n.sh") > "$TMP/out" 2> "$TMP/err" < /dev/null
	rc=$?
	ok $rc "$where: $(head -1 "$TMP/blocks/$n.sh" | cut -c1-70)" || {
		echo "#   exit status $rc; the block:"; sed 's/^/#   | /' "$TMP/blocks/$n.sh"
		echo "#   its stderr (end):"; tail -5 "$TMP/err" | sed 's/^/#   /'
	}
done < "$TMP/plan"
done_testing
