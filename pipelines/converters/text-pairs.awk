# text-pairs.awk: plain text (documents separated by blank lines) -> positive sentence pairs; run by
# ./text-pairs, which sets mode (neighbours | document) and min_words. Needs json.awk first.
BEGIN {
	RS = ""   # paragraph mode: one record per document
	n = split("mr mrs ms dr prof st jr sr vs etc e.g i.e cf no nos inc ltd co corp mt fig al approx dept est",
		abbr_list, " ")
	for (i = 1; i <= n; i++) abbrev[abbr_list[i]] = 1
}
# Does the word w end a sentence, given the next word? It ends in . ! or ? (then closing quotes or
# brackets), the next word does not start with a lowercase letter, and a final "." is not that of a known
# abbreviation or of a single-letter initial.
function ends_sentence(w, next_w,   core) {
	if (w !~ /[.!?]["')\]]*$/) return 0
	if (next_w ~ /^[a-z]/) return 0
	core = w
	sub(/["')\]]+$/, "", core)
	if (core !~ /\.$/) return 1
	sub(/\.$/, "", core)
	sub(/^["'(\[]+/, "", core)
	if (core ~ /^[A-Za-z]$/ || tolower(core) in abbrev) return 0
	return 1
}
{
	gsub(/\r/, "")
	nw = split($0, w, /[ \t\n]+/)   # also joins the document's lines
	ns = 0; cur = ""; cw = 0
	for (i = 1; i <= nw; i++) {
		if (w[i] == "") continue
		cur = cur (cur == "" ? "" : " ") w[i]; cw++
		if (i == nw || ends_sentence(w[i], w[i + 1])) {
			if (cw >= min_words) sent[++ns] = cur
			cur = ""; cw = 0
		}
	}
	if (mode == "neighbours") {
		for (i = 1; i < ns; i++) printf "{\"texts\":[%s,%s]}\n", json_str(sent[i]), json_str(sent[i + 1])
	} else if (ns >= 2) {
		# every sentence paired with the one half the document away (round), so not with a neighbour
		# where the document has four sentences or more
		for (i = 1; i <= ns; i++) {
			j = (i - 1 + int(ns / 2)) % ns + 1
			printf "{\"texts\":[%s,%s]}\n", json_str(sent[i]), json_str(sent[j])
		}
	}
}
