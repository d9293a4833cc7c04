# lib.sh: shared option handling for the converter wrappers in this folder (sourced, not run).
# A wrapper sets NAME and USAGE, then calls conv_input FILE-OR-DIR SPLIT FILE_FOR_EACH_SPLIT... to pick its input.
HERE=$(cd "$(dirname "$0")" && pwd)

conv_die() {   # conv_die CODE MESSAGE: "NAME: MESSAGE" on stderr, exit CODE (sysexits)
	echo "$NAME: $2" >&2
	exit "$1"
}
conv_usage() {
	echo "usage: $USAGE" >&2
	exit 64
}
conv_help() {   # --help: the usage line and the comment block at the top of the script
	echo "usage: $USAGE"
	sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"
	exit 0
}
# conv_pick PATH SPLIT train=FILE dev=FILE test=FILE: sets CONV_FILE. PATH may be a file (SPLIT ignored),
# a directory (the split's file inside it), or empty (stdin, "-").
conv_pick() {
	path=$1 split=$2
	shift 2
	CONV_FILE=
	if [ -z "$path" ] || [ "$path" = - ]; then CONV_FILE=- CONV_WHERE=stdin; return; fi
	if [ -d "$path" ]; then
		for kv in "$@"; do
			case $kv in "$split="*) CONV_FILE="$path/${kv#*=}"; break ;; esac
		done
		[ -n "${CONV_FILE:-}" ] || conv_die 64 "no split '$split' (have: $(echo "$@" | sed 's/=[^ ]*//g'))"
	else
		CONV_FILE=$path
	fi
	[ -f "$CONV_FILE" ] && [ -r "$CONV_FILE" ] || conv_die 66 "cannot read $CONV_FILE"
	CONV_WHERE=$CONV_FILE
}
# conv_check RC WHERE: after a pipeline stage: 0 is fine, SIGPIPE (a closed downstream pipe) ends quietly,
# a jq/awk failure is bad data (65) with jq's or awk's own message above it naming the line.
conv_check() {
	case $1 in
	0) return 0 ;;
	141) exit 0 ;;
	*) conv_die 65 "bad input ($2)" ;;
	esac
}
# jq helpers: run jq -n (with -R for text formats) and --arg conv_name "$NAME", on a program that starts with
# "$CONV_JQ". It reads the rows with `inputs`, so the first error() ends the run naming the line and jq exits
# non-zero (without -n, jq 1.6 goes on after an error, reports every later bad line, and exits 0 unless the
# last line was bad). bad(msg) is that error, prefixed with the converter's name.
CONV_JQ='def bad(msg): error("\($conv_name): \(msg) (line \(input_line_number))"); inputs | '
