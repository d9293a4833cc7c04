# wordnet.awk: WordNet 3.0 database files -> examples, in the four dataset cases; run by ./wordnet, which
# passes index.{noun,verb,adj,adv} (for triplets) then data.{noun,verb,adj,adv} and sets the variables
#   mode   pairs | triplets | labels | scored
#   want_split  train | dev | test | all      sample  keep 1 synset in N (1 = all)
# Needs json.awk first. File formats: wndb(5); lexicographer file numbers: lexnames(5).
#
# A synset is named by its part of speech and byte offset, "n00001740" (satellite adjectives "s" live in
# data.adj with the head adjectives, so they are named "a..." like the pointers to them).

function hexval(s,   i, v) {
	v = 0
	for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", tolower(substr(s, i, 1))) - 1
	return v
}
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }

# Deterministic hash of a synset: two rounds of x -> (x * 40503 + 1) mod 4294967291 on offset * 5 + pos code.
# Every intermediate value stays below 2^53, so any awk (doubles) computes it exactly.
function synset_hash(id,   x) {
	x = substr(id, 2) * 5 + index("nvar", substr(id, 1, 1))
	x = (x * 40503 + 1) % 4294967291
	x = (x * 40503 + 1) % 4294967291
	return x
}
# Split by hash: last decimal digit 0 = test, 1 = dev, 2-9 = train (10% / 10% / 80%).
function split_of(id,   d) {
	d = synset_hash(id) % 10
	return d == 0 ? "test" : d == 1 ? "dev" : "train"
}
function wanted(id) {
	if (want_split != "all" && split_of(id) != want_split) return 0
	return sample <= 1 || int(synset_hash(id) / 10) % sample == 0
}

# ---- index.pos: sense order of each lemma (synset offsets listed most frequent sense first) ----
FILENAME ~ /index\.[a-z]+$/ {
	if (substr($0, 1, 2) == "  ") next   # licence header
	# lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...
	p = ($2 == "s") ? "a" : $2
	ids = ""
	for (i = NF - $3 + 1; i <= NF; i++) ids = ids (ids == "" ? "" : " ") p $i
	senses[p, $1] = ids
	next
}

# ---- data.pos: one synset per line ----
{
	if (substr($0, 1, 2) == "  ") next
	# synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt [ptr...] [frames...] | gloss
	p = ($3 == "s") ? "a" : $3
	id = p $1
	order[++nsyn] = id
	lexfile[id] = $2 + 0
	nw = hexval($4)
	w = ""
	for (i = 0; i < nw && mode == "triplets"; i++) {
		word = tolower($(5 + 2 * i))
		sub(/\([a-z]+\)$/, "", word)   # adjective syntactic marker, e.g. "(p)"
		w = w (w == "" ? "" : " ") word
	}
	words[id] = w
	j = 5 + 2 * nw
	np = (mode == "scored") ? $j + 0 : 0   # the pointers matter only for the taxonomy
	for (i = 0; i < np; i++) {
		sym = $(j + 1 + 4 * i)
		if (sym == "@" || sym == "@i") {   # hypernym, instance hypernym
			h = $(j + 3 + 4 * i) $(j + 2 + 4 * i)
			hyper[id] = hyper[id] (id in hyper ? " " : "") h
			hypo[h, ++nhypo[h]] = id
		}
	}
	# gloss: definition(s), then quoted examples: def; "example"; "example"--Author
	g = index($0, " | ")
	gloss = g ? trim(substr($0, g + 3)) : ""
	if (substr(gloss, 1, 1) == "\"") { d = ""; rest = gloss }
	else if ((q = index(gloss, "; \"")) > 0) { d = substr(gloss, 1, q - 1); rest = substr(gloss, q + 2) }
	else { d = gloss; rest = "" }
	d = trim(d); sub(/;$/, "", d)
	definition[id] = d
	ne = 0
	while (match(rest, /"[^"]*"/)) {
		e = trim(substr(rest, RSTART + 1, RLENGTH - 2))
		rest = substr(rest, RSTART + RLENGTH)
		if (index(e, " ")) example[id, ++ne] = e   # a phrase of two words or more
	}
	nexample[id] = ne
	if (p == "n" || p == "v") bypos[p, ++npos[p]] = id
}

# Hard negative for example k of synset id: another sense, in the same part of speech, of the first word of
# the synset that has one; the other senses in sense-number order, example k taking the (k mod n)-th. With
# neg_in_split only senses of the synset's own split count (a training triplet whose negative is a held-out
# synset's definition would teach the model to push that word's examples away from a dev or test positive).
function other_sense(id, k,   ws, nws, i, ss, nss, c, cand, n) {
	nws = split(words[id], ws, " ")
	for (i = 1; i <= nws; i++) {
		nss = split(senses[substr(id, 1, 1), ws[i]], ss, " ")
		n = 0
		for (c = 1; c <= nss; c++)
			if (ss[c] != id && definition[ss[c]] != "" && definition[ss[c]] != definition[id] &&
			    (!neg_in_split || split_of(ss[c]) == split_of(id))) cand[++n] = ss[c]
		if (n) return cand[(k - 1) % n + 1]
	}
	return ""
}

# "anc1 d1 anc2 d2 ...": every hypernym ancestor of id (itself first, at 0) with its shortest upward
# distance, by breadth-first search; memoised.
function ancestors(id,   queue, dist, head, tail, x, hs, nh, i, out) {
	if (id in anc_memo) return anc_memo[id]
	split("", dist)
	queue[1] = id; dist[id] = 0; head = 1; tail = 1
	while (head <= tail) {
		x = queue[head++]
		nh = split(hyper[x], hs, " ")
		for (i = 1; i <= nh; i++)
			if (!(hs[i] in dist)) { dist[hs[i]] = dist[x] + 1; queue[++tail] = hs[i] }
	}
	out = queue[1] " 0"
	for (i = 2; i <= tail; i++) out = out " " queue[i] " " dist[queue[i]]
	return anc_memo[id] = out
}
# Shortest path length between a and b through a common hypernym ancestor, -1 if they have none.
# stamp[] marks a's ancestors for this call only, so no per-call array has to be cleared.
function path_length(a, b,   la, lb, na, nb, i, best) {
	na = split(ancestors(a), la, " ")
	nb = split(ancestors(b), lb, " ")
	ncall++
	for (i = 1; i < na; i += 2) { stamp[la[i]] = ncall; up[la[i]] = la[i + 1] }
	best = -1
	for (i = 1; i < nb; i += 2)
		if (stamp[lb[i]] == ncall && (best < 0 || up[lb[i]] + lb[i + 1] < best)) best = up[lb[i]] + lb[i + 1]
	return best
}
# A hyponym of h chosen by hash (the next one round when that is skip), "" when there is no other.
function pick_hyponym(h, x, skip,   n, i) {
	n = nhypo[h]
	if (n == 0 || (n == 1 && hypo[h, 1] == skip)) return ""
	i = x % n + 1
	if (hypo[h, i] == skip) i = i % n + 1
	return hypo[h, i]
}
function emit_scored(a, b,   d) {
	if (b == "" || b == a || b in done || definition[b] == "" || definition[b] == definition[a]) return
	done[b] = 1   # partners already paired with the current synset
	d = path_length(a, b)
	printf "{\"texts\":[%s,%s],\"label\":%.10g}\n", json_str(definition[a]), json_str(definition[b]), d < 0 ? 0 : 1 / (1 + d)
}

END {
	for (s = 1; s <= nsyn; s++) {
		id = order[s]
		if (definition[id] == "" || !wanted(id)) continue
		if (mode == "pairs") {
			for (k = 1; k <= nexample[id]; k++)
				printf "{\"texts\":[%s,%s]}\n", json_str(example[id, k]), json_str(definition[id])
		} else if (mode == "triplets") {
			for (k = 1; k <= nexample[id]; k++) {
				neg = other_sense(id, k)
				if (neg == "") break
				printf "{\"texts\":[%s,%s,%s]}\n", json_str(example[id, k]), json_str(definition[id]),
					json_str(definition[neg])
			}
		} else if (mode == "labels") {
			for (k = 1; k <= nexample[id]; k++)
				printf "{\"texts\":[%s],\"label\":%d}\n", json_str(example[id, k]), lexfile[id]
		} else if (mode == "scored") {
			p = substr(id, 1, 1)
			if ((p != "n" && p != "v") || !(id in hyper)) continue
			x = synset_hash(id)
			split("", done)
			split(hyper[id], hs, " ")
			parent = hs[1]
			emit_scored(id, parent)                                # path length 1
			emit_scored(id, pick_hyponym(parent, x, id))             # a sibling: 2
			grand = ""
			if (parent in hyper) { split(hyper[parent], hs, " "); grand = hs[1] }
			if (grand != "") {                                     # a cousin: up 2, down 2 (at most 4)
				uncle = pick_hyponym(grand, int(x / 7), parent)
				if (uncle != "") emit_scored(id, pick_hyponym(uncle, int(x / 49), ""))
			}
			emit_scored(id, bypos[p, int(x / 343) % npos[p] + 1])  # any synset of the same part of speech
		}
	}
}
