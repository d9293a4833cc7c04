# json.awk: json_str(s) returns s as a JSON string literal (quotes, backslashes and control characters
# escaped; other bytes, UTF-8 included, pass through). Load it before a program: awk -f json.awk -f prog.awk.
# Replacement strings of gsub treat backslashes differently in mawk, gawk and busybox awk, so backslashes and
# quotes are escaped by split-and-join, which has no escape rules.
BEGIN {
	for (json_i = 1; json_i < 32; json_i++)
		json_ctl[sprintf("%c", json_i)] = sprintf("\\u%04x", json_i)
	json_ctl["\t"] = "\\t"; json_ctl["\n"] = "\\n"; json_ctl["\r"] = "\\r"
	json_ctl["\b"] = "\\b"; json_ctl["\f"] = "\\f"
	json_ctl_re = "[" sprintf("%c", 1) "-" sprintf("%c", 31) "]"
}
function json_join(s, sep, rep,   parts, n, i, out) {
	n = split(s, parts, sep)
	out = parts[1]
	for (i = 2; i <= n; i++) out = out rep parts[i]
	return out
}
function json_str(s,   out, i, c) {
	if (index(s, "\\")) s = json_join(s, "\\", "\\\\")
	if (index(s, "\"")) s = json_join(s, "\"", "\\\"")
	if (s ~ json_ctl_re) {
		out = ""
		for (i = 1; i <= length(s); i++) {
			c = substr(s, i, 1)
			out = out ((c in json_ctl) ? json_ctl[c] : c)
		}
		s = out
	}
	return "\"" s "\""
}
