# trecqa.awk: TrecQA answer-selection CSV (qtext,label,atext) -> triplets or labelled pairs; run by ./trecqa.
# Variables: all=1 for every (positive, negative) combination; pairs=1 for labelled pairs; detok=1 to undo the
# PTB bracket tokens. Needs json.awk first.

# csv_split(line, f): the fields of one CSV record (RFC 4180 quoting: "..." with "" for a quote) into f[1..n].
function csv_split(line, f,   n, i, c, field, inq) {
	n = 0; field = ""; inq = 0
	for (i = 1; i <= length(line); i++) {
		c = substr(line, i, 1)
		if (inq) {
			if (c == "\"") {
				if (substr(line, i + 1, 1) == "\"") { field = field "\""; i++ }
				else inq = 0
			} else field = field c
		} else if (c == "\"") inq = 1
		else if (c == ",") { f[++n] = field; field = "" }
		else field = field c
	}
	f[++n] = field
	return inq ? -1 : n
}
function quotes_open(s,   t) { t = s; return gsub(/"/, "", t) % 2 }
function untok(s) {
	if (!detok) return s
	gsub(/-LRB-/, "(", s); gsub(/-RRB-/, ")", s); gsub(/-LSB-/, "[", s); gsub(/-RSB-/, "]", s)
	gsub(/-LCB-/, "{", s); gsub(/-RCB-/, "}", s); gsub(/``/, "\"", s); gsub(/''/, "\"", s)
	return s
}
{ sub(/\r$/, "") }
# A quoted field may hold a newline: join physical lines until the quotes balance.
pending != "" { $0 = pending "\n" $0; pending = "" }
quotes_open($0) { pending = $0; next }
!header_seen { header_seen = 1; if ($0 == "qtext,label,atext") next }
{
	if (csv_split($0, f) != 3 || (f[2] != "0" && f[2] != "1")) {
		printf "trecqa: expected qtext,label(0/1),atext (record ending on line %d)\n", NR > "/dev/stderr"
		bad = 1; exit 65
	}
	q = untok(f[1]); a = untok(f[3])
	if (pairs) { printf "{\"texts\":[%s,%s],\"label\":%d}\n", json_str(q), json_str(a), f[2]; next }
	if (!(q in qid)) { qid[q] = ++nq; question[nq] = q }
	k = qid[q]
	if (f[2] == "1") answer[k, "pos", ++npos[k]] = a
	else answer[k, "neg", ++nneg[k]] = a
}
END {
	if (bad) exit 65
	if (pending != "") { print "trecqa: unterminated quoted field at end of input" > "/dev/stderr"; exit 65 }
	for (k = 1; k <= nq; k++) {
		if (!npos[k] || !nneg[k]) continue
		qs = json_str(question[k])
		for (i = 1; i <= npos[k]; i++) {
			if (all) { lo = 1; hi = nneg[k] } else { lo = hi = (i - 1) % nneg[k] + 1 }
			for (j = lo; j <= hi; j++)
				printf "{\"texts\":[%s,%s,%s]}\n", qs, json_str(answer[k, "pos", i]), json_str(answer[k, "neg", j])
		}
	}
}
