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
	if [ -z "$path" ] || [ "$path" = - ]; then CONV_WHERE=stdin; conv_open -; CONV_FILE=$CONV_PATH; return; fi
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
	conv_open "$CONV_FILE"
	CONV_FILE=$CONV_PATH
}
# Compressed input, as the stream tools read it: gzip and zstd are told from plain text by their first bytes.
# conv_open FILE|-: sets CONV_PATH to what jq or awk should read for FILE: FILE itself when it is plain, else a
# FIFO in a private folder that a decompressor (started in the background) fills. stdin ("-") always goes
# through a FIFO, as its first bytes cannot be looked at without reading them. conv_check waits for the
# decompressors and reports one that failed (a truncated or corrupt file) as bad data.
CONV_PIDS= CONV_TMP= CONV_N=0
conv_magic() {   # conv_magic: the first 4 bytes of stdin as hex
	od -An -tx1 -N4 | tr -d ' \n'
}
conv_decoder() {   # conv_decoder HEX: the command that decodes a stream starting with those bytes
	case $1 in
	1f8b*) echo "gzip -dc" ;;
	28b52ffd*) echo "zstd -dcq" ;;
	*) echo cat ;;
	esac
}
conv_open() {
	if [ -z "$CONV_TMP" ]; then
		CONV_TMP=$(mktemp -d "${TMPDIR:-/tmp}/st-conv.XXXXXX") || conv_die 74 "cannot create a temporary folder"
		trap 'rm -rf "$CONV_TMP"' EXIT
		trap 'exit 130' INT TERM
	fi
	if [ "$1" != - ]; then
		dec=$(conv_decoder "$(conv_magic < "$1")")
		if [ "$dec" = cat ]; then CONV_PATH=$1; return; fi
		command -v "${dec%% *}" > /dev/null || conv_die 69 "${dec%% *} is needed to read $1"
	fi
	CONV_N=$((CONV_N + 1))
	# named after the input, so that jq's messages name it: .../N/sts-dev.csv.gz
	mkdir "$CONV_TMP/$CONV_N" || conv_die 74 "cannot create a folder in $CONV_TMP"
	if [ "$1" = - ]; then CONV_PATH=$CONV_TMP/$CONV_N/stdin; else CONV_PATH=$CONV_TMP/$CONV_N/$(basename "$1"); fi
	mkfifo "$CONV_PATH" || conv_die 74 "cannot create a FIFO in $CONV_TMP"
	if [ "$1" = - ]; then
		# the first bytes, kept in a file to decide with and then given back before the rest of stdin (an
		# explicit redirection: a background job's stdin would otherwise be /dev/null)
		exec 9<&0
		{
			dd bs=1 count=4 2>/dev/null > "$CONV_PATH.head"
			dec=$(conv_decoder "$(od -An -tx1 < "$CONV_PATH.head" | tr -d ' \n')")
			cat "$CONV_PATH.head" - | $dec
		} <&9 > "$CONV_PATH" 2> "$CONV_PATH.err" &
		exec 9<&-
	else
		$dec < "$1" > "$CONV_PATH" 2> "$CONV_PATH.err" &
	fi
	CONV_PIDS="$CONV_PIDS $!:$1"
}
# conv_open_args FILE...: conv_open for each; sets CONV_ARGS to the paths, separated by newlines (use with
# IFS set to a newline: names with spaces pass, names with newlines are not supported)
conv_open_args() {
	CONV_ARGS=
	[ $# -gt 0 ] || set -- -
	for f in "$@"; do conv_open "$f"; CONV_ARGS="$CONV_ARGS$CONV_PATH
"; done
}
conv_wait() {   # conv_wait: waits for the decompressors; a failed one is bad data
	for p in $CONV_PIDS; do
		wait "${p%%:*}" || { cat "$CONV_TMP"/*/*.err >&2 2>/dev/null; conv_die 65 "cannot decompress ${p#*:}"; }
	done
	CONV_PIDS=
}
# conv_check RC WHERE: after a pipeline stage: 0 is fine, SIGPIPE (a closed downstream pipe) ends quietly,
# a jq/awk failure is bad data (65) with jq's or awk's own message above it naming the line.
conv_check() {
	case $1 in
	0) conv_wait; return 0 ;;
	141) exit 0 ;;
	*) conv_die 65 "bad input ($2)" ;;
	esac
}
# jq helpers: run jq -n (with -R for text formats) and --arg conv_name "$NAME", on a program that starts with
# "$CONV_JQ". It reads the rows with `inputs`, so the first error() ends the run naming the line and jq exits
# non-zero (without -n, jq 1.6 goes on after an error, reports every later bad line, and exits 0 unless the
# last line was bad). bad(msg) is that error, prefixed with the converter's name.
CONV_JQ='def bad(msg): error("\($conv_name): \(msg) (line \(input_line_number))"); inputs | '
