# tests/lib.sh: TAP helpers for the shell pipeline tests. Source it; the test runs from the project root with
# bin/ first on PATH, and $SHARED pointing at ../shared/data (which may be absent: use need_shared).
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
PATH="$ROOT/bin:$PATH"
SHARED="$ROOT/../shared/data"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/st-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# No test reaches the Hub or reads the user's Hugging Face cache: a model name that is not a local path is
# looked up in this test's own empty cache only (lib/hub.c). tests/hub.t undoes this for its loopback server.
HF_HOME="$TMP/hf-home" HF_HUB_OFFLINE=1
XDG_CACHE_HOME="$TMP/xdg-cache"   # the gemm choice's cache (docs/gemm.md): not the user's
export HF_HOME HF_HUB_OFFLINE XDG_CACHE_HOME
unset HF_HUB_CACHE HUGGINGFACE_HUB_CACHE HF_ENDPOINT HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_TOKEN_PATH
tap_n=0
tap_failed=0

# ok and is return 0 when the check passed and 1 when it failed: `ok $? "what" || show-why` prints diagnostics
# only for a failure.
ok() {   # ok CONDITION-EXIT-STATUS DESCRIPTION ; usage: cmd; ok $? "what"
	tap_n=$((tap_n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $tap_n - $2"; return 0; fi
	echo "not ok $tap_n - $2"; tap_failed=$((tap_failed + 1)); return 1
}
is() {   # is GOT WANT DESCRIPTION
	tap_n=$((tap_n + 1))
	if [ "$1" = "$2" ]; then echo "ok $tap_n - $3"; return 0; fi
	echo "not ok $tap_n - $3"; echo "#   got:  '$1'"; echo "#   want: '$2'"; tap_failed=$((tap_failed + 1)); return 1
}
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
need_shared() { [ -d "$SHARED/$1" ] || skip_all "../shared/data/$1 is absent"; }
done_testing() { echo "1..$tap_n"; [ "$tap_failed" -eq 0 ]; exit $?; }
