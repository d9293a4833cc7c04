#!/bin/sh
# Converters of formats that are not in ../shared/data, on a few lines of each real format written here from
# the format's documentation, with hand-worked expected output; and json.awk's escaping.
. "$(dirname "$0")/lib.sh"
C=pipelines/converters

# ---- json.awk: quotes, backslashes, control characters, DEL and UTF-8 survive a JSON round trip ----
printf 'q"b\\s\\\\d\tt\001a\037z\177 \303\251\342\202\254 \360\237\231\202 \r\b\f end' > "$TMP/raw.txt"
awk -f $C/json.awk -f /dev/stdin "$TMP/raw.txt" > "$TMP/esc.json" <<'AWK'
{ printf "{\"s\":%s}\n", json_str($0) }
AWK
jq -j .s "$TMP/esc.json" > "$TMP/back.txt"
cmp -s "$TMP/raw.txt" "$TMP/back.txt"
ok $? "json.awk: jq decodes json_str(s) back to s byte for byte"
! LC_ALL=C grep -q "$(printf '[\001-\037]')" "$TMP/esc.json"
ok $? "json.awk: no raw control character left in the JSON"

# ---- embedding-data/QQP_triplets ----
cat > "$TMP/qqp.jsonl" <<'JSON'
{"set": {"query": "Why in India do we not have one on one political debate as in USA?", "pos": ["Why cant we have a public debate between politicians in India like the one in US?"], "neg": ["Can people on Quora stop India Pakistan debate? We are sick and tired seeing this everyday in bulk?", "Why do politicians, instead of having a decent debate on issues going in and around the world, end up fighting always?"]}}
{"set": {"query": "What is OnePlus One?", "pos": ["How is oneplus one?", "Is OnePlus One really worth it?"], "neg": ["Why is OnePlus One so cheap?"]}}
{"set": {"query": "No negatives here", "pos": ["p"], "neg": []}}
JSON
$C/qqp-triplets "$TMP/qqp.jsonl" > "$TMP/out.jsonl"
ok $? "qqp-triplets runs"
is "$(cat "$TMP/out.jsonl")" '{"texts":["Why in India do we not have one on one political debate as in USA?","Why cant we have a public debate between politicians in India like the one in US?","Can people on Quora stop India Pakistan debate? We are sick and tired seeing this everyday in bulk?"]}
{"texts":["What is OnePlus One?","How is oneplus one?","Why is OnePlus One so cheap?"]}
{"texts":["What is OnePlus One?","Is OnePlus One really worth it?","Why is OnePlus One so cheap?"]}' \
	"qqp-triplets: one triplet per positive, negatives wrapping round, no row without negatives"
is "$($C/qqp-triplets --all < "$TMP/qqp.jsonl" | wc -l)" 4 "qqp-triplets --all: 1x2 + 2x1 combinations"

# ---- embedding-data/sentence-compression ----
cat > "$TMP/sc.jsonl" <<'JSON'
{"set": ["Serge Ibaka -- the Oklahoma City Thunder forward who was born in the Congo but played in Spain -- has been granted Spanish citizenship and will play for the country in EuroBasket this summer, the event where spots in the 2012 Olympics will be decided.", "Serge Ibaka has been granted Spanish citizenship and will play in EuroBasket."]}
{"set": ["A \"quoted\" back\\slash\tand tab", "short"]}
JSON
is "$($C/sentence-compression "$TMP/sc.jsonl" | jq -r '.texts[1]')" "Serge Ibaka has been granted Spanish citizenship and will play in EuroBasket.
short" "sentence-compression: the compression is the second text"
is "$($C/sentence-compression "$TMP/sc.jsonl" | sed -n 2p | jq -r '.texts[0]')" "$(printf 'A "quoted" back\\slash\tand tab')" \
	"sentence-compression: escapes survive"

# ---- SNLI 1.0 / MultiNLI 1.0 jsonl and Hugging Face rows ----
cat > "$TMP/snli.jsonl" <<'JSON'
{"annotator_labels": ["neutral"], "captionID": "3416050480.jpg#4", "gold_label": "neutral", "pairID": "3416050480.jpg#4r1n", "sentence1": "A person on a horse jumps over a broken down airplane.", "sentence1_binary_parse": "( ( ( A person ) ( on ( a horse ) ) ) ( ( jumps ( over ( a ( broken ( down airplane ) ) ) ) ) . ) )", "sentence2": "A person is training his horse for a competition."}
{"annotator_labels": ["contradiction"], "captionID": "3416050480.jpg#4", "gold_label": "contradiction", "pairID": "3416050480.jpg#4r1c", "sentence1": "A person on a horse jumps over a broken down airplane.", "sentence2": "A person is at a diner, ordering an omelette."}
{"annotator_labels": ["entailment"], "captionID": "3416050480.jpg#4", "gold_label": "entailment", "pairID": "3416050480.jpg#4r1e", "sentence1": "A person on a horse jumps over a broken down airplane.", "sentence2": "A person is outdoors, on a horse."}
{"annotator_labels": ["neutral", "contradiction", "entailment", "neutral", "neutral"], "gold_label": "-", "sentence1": "Two women are embracing while holding to go packages.", "sentence2": "The sisters are hugging goodbye while holding to go packages after just eating lunch."}
{"annotator_labels": ["entailment"], "genre": "government", "gold_label": "entailment", "pairID": "31193n", "promptID": "31193", "sentence1": "Conceptually cream skimming has two basic dimensions - product and geography.", "sentence2": "Product and geography are what make cream skimming work. "}
{"premise": "A person on a horse jumps over a broken down airplane.", "hypothesis": "A person is in the air.", "label": 0}
{"premise": "Nobody knows.", "hypothesis": "Everybody knows.", "label": -1}
JSON
is "$($C/nli "$TMP/snli.jsonl" | jq -c .label | tr '\n' ' ')" "1 2 0 0 0 " \
	"nli pairs: neutral 1, contradiction 2, entailment 0; gold label '-' and -1 dropped"
is "$($C/nli "$TMP/snli.jsonl" | sed -n 4p)" '{"texts":["Conceptually cream skimming has two basic dimensions - product and geography.","Product and geography are what make cream skimming work. "],"label":0}' \
	"nli pairs: MultiNLI row, text kept as is"
# Hand-worked training_nli_v2 rule: the airplane sentence has entailments [outdoors, in the air] and the
# contradiction [diner]; first triplet takes the first of each, the second the next ones (wrapping round).
# "outdoors" has the airplane sentence as its only entailment and no contradiction: no triplet from it.
is "$($C/nli --case triplets "$TMP/snli.jsonl")" '{"texts":["A person on a horse jumps over a broken down airplane.","A person is outdoors, on a horse.","A person is at a diner, ordering an omelette."]}
{"texts":["A person is in the air.","A person on a horse jumps over a broken down airplane.","A person is at a diner, ordering an omelette."]}' \
	"nli triplets: [anchor, entailment, contradiction] then [entailment, anchor, contradiction]"
printf '{"sentence1": "a", "gold_label": "neutral"}\n' | $C/nli 2> /dev/null
is $? 65 "nli: a row without sentence2 is bad data (65)"
printf '{"sentence1": ' | $C/nli --case triplets 2> /dev/null
is $? 65 "nli triplets: malformed JSON is bad data (65)"

# ---- plain text: neighbouring sentences and sentences of one document ----
printf 'Mr. Smith went to Washington. He met J. R. Doe there!\r\nThey talked about e.g. apples and pears. "Really?" she said. Yes.\n\n\nA second document with "quotes" here. And a back\\slash here. And a bad byte \377 here.\n\nOnly one sentence here.\n' > "$TMP/corpus.txt"
is "$($C/text-pairs "$TMP/corpus.txt" | jq -r '.texts | join(" | ")')" 'Mr. Smith went to Washington. | He met J. R. Doe there!
He met J. R. Doe there! | They talked about e.g. apples and pears.
They talked about e.g. apples and pears. | "Really?" she said.
A second document with "quotes" here. | And a back\slash here.
And a back\slash here. | And a bad byte � here.' \
	"text-pairs: sentence split (abbreviations, initials, lowercase continuation, short sentences dropped), neighbours within documents"
# four sentences ("Yes." is too short): 1-3, 2-4, 3-1, 4-2
is "$($C/text-pairs --case document "$TMP/corpus.txt" | jq -r '.texts | join(" | ")' | head -4)" 'Mr. Smith went to Washington. | They talked about e.g. apples and pears.
He met J. R. Doe there! | "Really?" she said.
They talked about e.g. apples and pears. | Mr. Smith went to Washington.
"Really?" she said. | He met J. R. Doe there!' \
	"text-pairs --case document: each sentence with the one half the document away"
is "$($C/text-pairs --min-words 1 "$TMP/corpus.txt" | wc -l)" 6 "text-pairs --min-words 1 keeps 'Yes.'"
$C/text-pairs "$TMP/corpus.txt" | jq -e . > /dev/null
ok $? "text-pairs: valid JSON, the bad byte replaced"

if [ -x bin/st-json ]; then
	cat "$TMP/out.jsonl" > "$TMP/all.jsonl"; $C/nli "$TMP/snli.jsonl" >> "$TMP/all.jsonl"
	$C/text-pairs "$TMP/corpus.txt" >> "$TMP/all.jsonl"
	is "$(st-json --to-msgpack < "$TMP/all.jsonl" | st-json | jq -c 'del(.v)')" "$(cat "$TMP/all.jsonl")" \
		"st-json --to-msgpack | st-json round trip"
fi
$C/qqp-triplets --bogus 2> /dev/null
is $? 64 "unknown option: exit 64"
$C/nli "$TMP/absent" 2> /dev/null
is $? 66 "missing file: exit 66"
$C/text-pairs --help | grep -q '^usage: text-pairs'
ok $? "--help prints the usage"

# ---- issue 10 item 11: every converter reads gzip and zstd (as a file and on stdin) as it reads plain text ----
printf 'main-captions\tMSRvid\t2012test\t0001\t5.000\tA plane is taking off.\tAn air plane is taking off.\n' > "$TMP/sts.csv"
printf 'main-forums\tf\t2012\t2\t1.6\tHe said "so" \\ back\tNo.\n' >> "$TMP/sts.csv"
printf 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tOne.\tOne too.\n' > "$TMP/mrpc.tsv"
printf '{"sentence1": "A man.", "sentence2": "A person.", "gold_label": "entailment"}\n' > "$TMP/nli.jsonl"
printf 'First sentence here now. Second sentence here now.\n\nAnother document starts here. And it ends here.\n' > "$TMP/text.txt"
printf 'DESC:def What is a cat ?\nHUM:ind Who was he ?\n' > "$TMP/trec.label"
[ -x "$(command -v zstd)" ] || skip_all "zstd is absent"
for case in "stsb --split dev:sts.csv" "mrpc:mrpc.tsv" "nli:nli.jsonl" "qqp-triplets:qqp.jsonl" \
	"sentence-compression:sc.jsonl" "text-pairs:text.txt" "trec:trec.label"; do
	conv=${case%%:*} file=$TMP/${case#*:}
	$C/$conv "$file" > "$TMP/plain.out" 2> "$TMP/plain.err"
	[ -s "$TMP/plain.out" ]; ok $? "$conv: plain input gives examples" || sed 's/^/#   /' "$TMP/plain.err"
	gzip -c "$file" > "$file.gz" && zstd -qc "$file" > "$file.zst"
	for z in gz zst; do
		$C/$conv "$file.$z" > "$TMP/z.out" 2> "$TMP/z.err"
		ok $? "$conv: a .$z file" || sed 's/^/#   /' "$TMP/z.err"
		cmp -s "$TMP/plain.out" "$TMP/z.out"; ok $? "... the same examples as the plain file"
		$C/$conv < "$file.$z" > "$TMP/z.out" 2> "$TMP/z.err"; ok $? "$conv: .$z on stdin" || sed 's/^/#   /' "$TMP/z.err"
		cmp -s "$TMP/plain.out" "$TMP/z.out"; ok $? "... the same examples"
	done
	$C/$conv < "$file" > "$TMP/z.out"; cmp -s "$TMP/plain.out" "$TMP/z.out"; ok $? "$conv: plain stdin as before"
done
# hand-worked: score / 5, quotes and backslashes kept
is "$($C/stsb "$TMP/sts.csv.gz" | jq -c .)" '{"texts":["A plane is taking off.","An air plane is taking off."],"label":1}
{"texts":["He said \"so\" \\ back","No."],"label":0.32}' "stsb from .gz: the hand-worked examples"
head -c 60 "$TMP/sts.csv.gz" > "$TMP/cut.gz"
$C/stsb "$TMP/cut.gz" > /dev/null 2> "$TMP/cut.err"; is $? 65 "a truncated .gz: bad data (65)"
grep -q 'cut.gz' "$TMP/cut.err"; ok $? "... the message names the file"
$C/stsb --split dev "$TMP/sts.csv.gz" | head -1 > /dev/null; ok $? "a closed downstream pipe on a .gz: quiet, 0"
mkdir "$TMP/ct"
TMPDIR=$TMP/ct $C/stsb "$TMP/sts.csv.zst" > /dev/null && TMPDIR=$TMP/ct $C/stsb "$TMP/cut.gz" 2> /dev/null
TMPDIR=$TMP/ct $C/nli < "$TMP/nli.jsonl.gz" | head -c 1 > /dev/null
is "$(ls "$TMP/ct" | wc -l | tr -d ' ')" 0 "no FIFO folder left behind (success, bad data, closed pipe)"
done_testing
