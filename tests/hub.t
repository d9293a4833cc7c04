#!/bin/sh
# Models by name from the Hub (lib/hub.c, docs/hub.md), against tests/hub_server.py on 127.0.0.1: a cold cache
# downloads and encodes like the local folder; the cache is laid out as huggingface_hub lays it out (checked by
# an independent walk in Python: relative symlinks, blobs named by git blob id or sha256, refs; and by the
# Hub's JavaScript client @huggingface/hub, which also fills a cache that st then reads); offline runs
# read it; 404, 401, 403 (gated), a corrupted blob, no network; an interrupted download continues with a Range
# request; two processes at once; the token goes only where it should and is never written anywhere.
. tests/lib.sh
. tests/lib-model.sh
command -v python3 >/dev/null || skip_all "python3 is absent"

tiny_model "$TMP/m"
# what the Hub repo holds: the model, plus files st must not download
cp -R "$TMP/m" "$TMP/repo"
mkdir -p "$TMP/repo/onnx" "$TMP/repo/openvino"
echo onnx > "$TMP/repo/onnx/model.onnx"
echo xml > "$TMP/repo/openvino/openvino_model.xml"
echo flax > "$TMP/repo/flax_model.msgpack"
echo tf > "$TMP/repo/tf_model.h5"
echo rust > "$TMP/repo/rust_model.ot"
echo pickle > "$TMP/repo/pytorch_model.bin"   # safetensors are there: this one is not needed
tiny_model "$TMP/other" --seed 7

TOKEN=hf_testtoken_7f3a9c
LOG="$TMP/server.log"
server_pid=
start_hub() {   # start_hub: serves the test repos; sets HF_ENDPOINT
	rm -f "$TMP/port"
	python3 tests/hub_server.py --port-file "$TMP/port" --log "$LOG" --token "$TOKEN" --delay 0.5 \
		org/tiny="$TMP/repo" org/private="$TMP/repo",private org/gated="$TMP/repo",gated \
		org/corrupt="$TMP/repo",corrupt org/slow="$TMP/repo",slow sentence-transformers/tiny="$TMP/other" \
		neworg/moved="$TMP/repo",renamed-from=oldorg/moved 2> "$TMP/server.err" &
	server_pid=$!
	i=0
	while [ ! -s "$TMP/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -s "$TMP/port" ] || { cat "$TMP/server.err"; skip_all "the test server did not start"; }
	HF_ENDPOINT="http://127.0.0.1:$(cat "$TMP/port")"
	export HF_ENDPOINT
}
stop_hub() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; server_pid=; }
trap 'stop_hub; rm -rf "$TMP"' EXIT
unset HF_HUB_OFFLINE
fresh_cache() { HF_HOME="$TMP/hf-$1"; export HF_HOME; }
cache() { echo "$HF_HOME/hub"; }
requests() { grep -c "$1" "$LOG" 2>/dev/null || true; }

printf 'the cat sat on the mat\na big red house\n' > "$TMP/in.txt"
st-encode --model "$TMP/m" < "$TMP/in.txt" > "$TMP/ref.jsonl"
st-encode --model "$TMP/other" < "$TMP/in.txt" > "$TMP/ref-other.jsonl"
commit=   # the server's commit of org/tiny, read from its API with Python (not with st)
start_hub
commit=$(python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]))["sha"])' \
	"$HF_ENDPOINT/api/models/org/tiny/revision/main")
: > "$LOG"

# ---- a cold cache ----
fresh_cache cold
st-encode --model org/tiny < "$TMP/in.txt" > "$TMP/cold.jsonl" 2> "$TMP/cold.err"
is $? 0 "st-encode --model org/tiny on a cold cache"
cmp -s "$TMP/cold.jsonl" "$TMP/ref.jsonl"; ok $? "the embeddings equal those of the local folder"
is "$(requests 'GET /api/models/org/tiny/revision/main')" 1 "one API call for the file list"
is "$(requests 'GET /cdn/')" 1 "the weights came from the redirect's target (the CDN path)"
for f in onnx/ openvino/ flax_model tf_model rust_model pytorch_model.bin; do
	is "$(requests "resolve/.*$f")" 0 "not downloaded: $f"
done
heads=$(requests 'HEAD ')
st-encode --model org/tiny < "$TMP/in.txt" > "$TMP/warm.jsonl" 2>/dev/null
cmp -s "$TMP/warm.jsonl" "$TMP/ref.jsonl"; ok $? "a second run reads the cache"
is "$(requests 'HEAD ')" "$heads" "and asks for no file again (only the revision)"

# huggingface_hub's layout, walked independently
walk_cache() {   # walk_cache CACHE REPO_FOLDER COMMIT SOURCE_DIR: prints "ok" or what is wrong
	python3 - "$@" <<'EOF'
import hashlib, os, sys
cache, folder, commit, source = sys.argv[1:]
root = os.path.join(cache, folder)
bad = []
ref = open(os.path.join(root, "refs", "main")).read()
if ref != commit: bad.append("refs/main holds %r, not %s" % (ref, commit))
snap = os.path.join(root, "snapshots", commit)
want = set()
for d, _, names in os.walk(source):
    for n in names:
        rel = os.path.relpath(os.path.join(d, n), source)
        want.add(rel)
got = set()
for d, _, names in os.walk(snap):
    for n in names:
        p = os.path.join(d, n)
        rel = os.path.relpath(p, snap)
        got.add(rel)
        if not os.path.islink(p): bad.append(rel + " is not a symlink"); continue
        target = os.readlink(p)
        if os.path.isabs(target): bad.append(rel + " -> an absolute path"); continue
        blob = os.path.normpath(os.path.join(os.path.dirname(p), target))
        if os.path.dirname(blob) != os.path.join(root, "blobs"): bad.append(rel + " does not point into blobs/"); continue
        data = open(blob, "rb").read()
        if data != open(os.path.join(source, rel), "rb").read(): bad.append(rel + ": content differs"); continue
        sha256 = hashlib.sha256(data).hexdigest()
        gitid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        if os.path.basename(blob) not in (sha256 if rel.endswith(".safetensors") else gitid,):
            bad.append(rel + ": blob named %s" % os.path.basename(blob))
if got != want: bad.append("snapshot files %s, want %s" % (sorted(got ^ want), "the model's"))
left = [n for n in os.listdir(os.path.join(root, "blobs")) if "." in n]
if left: bad.append("left in blobs/: %s" % left)
print("ok" if not bad else "; ".join(bad))
EOF
}
is "$(walk_cache "$(cache)" models--org--tiny "$commit" "$TMP/m")" ok \
	"cache layout: refs/main, relative symlinks into blobs named by git blob id or sha256, no leftovers"

# ---- the Hub's JavaScript client (@huggingface/hub) as a second implementation of the same cache ----
if command -v node > /dev/null && [ -d tests/js/node_modules/@huggingface/hub ]; then
	node tests/js/hub_cache.mjs download "$HF_ENDPOINT" org/tiny "$TMP/hf-js/hub" > /dev/null 2> "$TMP/js.err"
	ok $? "@huggingface/hub's snapshotDownload fills a cache from the test server" || sed 's/^/#   /' "$TMP/js.err"
	HF_HUB_OFFLINE=1 HF_HOME="$TMP/hf-js" st-encode --model org/tiny < "$TMP/in.txt" > "$TMP/js.jsonl" 2>/dev/null
	cmp -s "$TMP/js.jsonl" "$TMP/ref.jsonl"; ok $? "st reads that cache offline"
	node tests/js/hub_cache.mjs scan "$(cache)" > "$TMP/scan-st.jsonl" 2> "$TMP/js.err"
	node tests/js/hub_cache.mjs scan "$TMP/hf-js/hub" > "$TMP/scan-js.jsonl" 2>> "$TMP/js.err"
	is "$(jq -c 'select(.repo == "org/tiny") | [.commit, .refs]' "$TMP/scan-st.jsonl")" "[\"$commit\",[\"main\"]]" \
		"@huggingface/hub's scanCacheDir reads st's cache: the commit and refs/main"
	is "$(jq -c '.warnings // empty' "$TMP/scan-st.jsonl")" "[]" "... with no warning"
	# the files st took, each linked to the blob the JavaScript client named the same way
	is "$(jq -cS 'select(.repo == "org/tiny") | .files' "$TMP/scan-st.jsonl")" \
		"$(jq -cS 'select(.repo == "org/tiny") | .files | with_entries(select(.key | test("^(onnx|openvino)/|msgpack$|h5$|[.]ot$|pytorch_model") | not))' "$TMP/scan-js.jsonl")" \
		"... and every file links to the blob @huggingface/hub names for it"
else
	echo "# skipped: node or tests/js/node_modules/@huggingface/hub is absent (make deps installs it)"
fi

# ---- offline ----
stop_hub
HF_HUB_OFFLINE=1 st-encode --model org/tiny < "$TMP/in.txt" > "$TMP/offline.jsonl" 2> "$TMP/offline.err"
is $? 0 "server stopped, HF_HUB_OFFLINE=1: from the cache"
cmp -s "$TMP/offline.jsonl" "$TMP/cold.jsonl"; ok $? "identical output"
HF_HUB_OFFLINE=1 st-encode --model "org/tiny@$commit" < "$TMP/in.txt" > "$TMP/offline2.jsonl" 2>/dev/null
cmp -s "$TMP/offline2.jsonl" "$TMP/cold.jsonl"; ok $? "org/tiny@COMMIT from the cache"
st-encode --model org/tiny < "$TMP/in.txt" > "$TMP/down.jsonl" 2> "$TMP/down.err"
is $? 0 "server stopped, online: the cached snapshot serves"
grep -q "cannot reach the Hub" "$TMP/down.err"; ok $? "with a warning"
cmp -s "$TMP/down.jsonl" "$TMP/cold.jsonl"; ok $? "identical output"
fresh_cache none
st-encode --model org/tiny < "$TMP/in.txt" > /dev/null 2> "$TMP/nonet.err"
is $? 74 "no network, nothing cached: 74"
grep -q "HF_HUB_OFFLINE" "$TMP/nonet.err" && grep -qF "$(cache)" "$TMP/nonet.err"
ok $? "the message names HF_HUB_OFFLINE and the cache path"
HF_HUB_OFFLINE=1 st-encode --model org/tiny < "$TMP/in.txt" > /dev/null 2> "$TMP/off.err"
is $? 66 "HF_HUB_OFFLINE=1, nothing cached: 66"
grep -q "HF_HUB_OFFLINE=1" "$TMP/off.err"; ok $? "the message says why"

# ---- errors ----
start_hub
fresh_cache errors
: > "$LOG"
st-encode --model org/nothing < "$TMP/in.txt" > /dev/null 2> "$TMP/404.err"
is $? 66 "unknown model (404): 66"
grep -q "no model org/nothing on the Hub" "$TMP/404.err"; ok $? "the message names the model"
st-encode --model org/tiny@v9 < "$TMP/in.txt" > /dev/null 2> "$TMP/rev.err"
is $? 66 "unknown revision: 66"
grep -q "no revision v9" "$TMP/rev.err"; ok $? "the message names the revision"
st-encode --model org/private < "$TMP/in.txt" > /dev/null 2> "$TMP/401.err"
is $? 66 "private model without a token (401): 66"
grep -q "HF_TOKEN" "$TMP/401.err"; ok $? "the message says a token is needed and how to give it"
st-encode --model org/gated < "$TMP/in.txt" > /dev/null 2> "$TMP/403.err"
is $? 66 "gated model without a token (403): 66"
grep -q "gated" "$TMP/403.err"; ok $? "the message says it is gated"
HF_TOKEN=hf_wrong_0123 st-encode --model org/private < "$TMP/in.txt" > /dev/null 2> "$TMP/wrong.err"
is $? 66 "a wrong token: 66"
grep -q "refused the token" "$TMP/wrong.err"; ok $? "the message says the token was refused"
! grep -q hf_wrong_0123 "$TMP/wrong.err"; ok $? "without printing it"
st-encode --model a/b/c < "$TMP/in.txt" > /dev/null 2> "$TMP/path.err"
is $? 66 "a missing path that is no Hub name: 66"
is "$(requests 'a/b/c')" 0 "and no request for it"
st-encode --model org/corrupt < "$TMP/in.txt" > /dev/null 2> "$TMP/corrupt.err"
is $? 74 "a blob whose sha256 is not its ETag: 74"
grep -q "sha256" "$TMP/corrupt.err"; ok $? "the message says so"
sha=$(sha256sum "$TMP/m/model.safetensors" | cut -d' ' -f1)
! ls "$(cache)/models--org--corrupt/blobs/" 2>/dev/null | grep -q "$sha"; ok $? "the bad blob is not kept"
[ ! -e "$(cache)/models--org--corrupt/snapshots/$commit/model.safetensors" ]; ok $? "nor linked"

# ---- the token ----
fresh_cache token
: > "$LOG"
HF_TOKEN=$TOKEN st-encode --model org/private < "$TMP/in.txt" > "$TMP/private.jsonl" 2> "$TMP/private.err"
is $? 0 "private model with HF_TOKEN"
cmp -s "$TMP/private.jsonl" "$TMP/ref.jsonl"; ok $? "same embeddings"
is "$(grep -v ' /cdn/' "$LOG" | grep -vc 'auth=ok')" 0 "every request to the Hub carried the token as Bearer"
is "$(grep ' /cdn/' "$LOG" | grep -vc 'auth=none')" 0 "the request to the CDN went without it"
fresh_cache tokenfile
mkdir -p "$HF_HOME" && printf '%s\n' "$TOKEN" > "$HF_HOME/token"
st-encode --model org/gated < "$TMP/in.txt" > "$TMP/gated.jsonl" 2>> "$TMP/private.err"
is $? 0 "gated model with the token file \$HF_HOME/token"
rm "$HF_HOME/token"
HF_TOKEN=$TOKEN st-init --transformer org/private -o "$TMP/from-private" 2>> "$TMP/private.err"
is $? 0 "st-init --transformer org/private"
! grep -rqF "$TOKEN" "$TMP/private.err" "$TMP/from-private" "$HF_HOME" "$TMP/hf-token"
ok $? "the token is in no message, model card, model file or cache file"

# ---- an interrupted download continues ----
fresh_cache resume
size=$(wc -c < "$TMP/m/model.safetensors")
half=$((size / 2))
mkdir -p "$(cache)/models--org--tiny/blobs"
head -c $half "$TMP/m/model.safetensors" > "$(cache)/models--org--tiny/blobs/$sha.incomplete"
: > "$LOG"
st-encode --model org/tiny < "$TMP/in.txt" > "$TMP/resume.jsonl" 2>/dev/null
is $? 0 "a partial .incomplete blob: the run succeeds"
grep -q "GET /cdn/$sha auth=none range=bytes=$half-" "$LOG"; ok $? "it asked for the rest only (Range: bytes=$half-)"
cmp -s "$TMP/resume.jsonl" "$TMP/ref.jsonl"; ok $? "same embeddings"
is "$(walk_cache "$(cache)" models--org--tiny "$commit" "$TMP/m")" ok "cache layout after the resume"
fresh_cache badpart
mkdir -p "$(cache)/models--org--tiny/blobs"
head -c $half /dev/zero > "$(cache)/models--org--tiny/blobs/$sha.incomplete"
: > "$LOG"
st-encode --model org/tiny < "$TMP/in.txt" > "$TMP/badpart.jsonl" 2>/dev/null
is $? 0 "a corrupt partial blob: the run succeeds"
is "$(requests 'GET /cdn/')" 2 "after continuing it, then fetching it whole"
cmp -s "$TMP/badpart.jsonl" "$TMP/ref.jsonl"; ok $? "same embeddings"

# ---- two processes at once (the CDN answers org/slow after half a second) ----
fresh_cache concurrent
: > "$LOG"
st-encode --model org/slow < "$TMP/in.txt" > "$TMP/c1.jsonl" 2> "$TMP/c1.err" &
p1=$!
st-encode --model org/slow < "$TMP/in.txt" > "$TMP/c2.jsonl" 2> "$TMP/c2.err" &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
is "$r1 $r2" "0 0" "two st-encode on one cold cache both succeed"
cmp -s "$TMP/c1.jsonl" "$TMP/ref.jsonl" && cmp -s "$TMP/c2.jsonl" "$TMP/ref.jsonl"; ok $? "both encode right"
is "$(requests 'GET /cdn/')" 1 "the weights were downloaded once (the other process waited on the lock)"
is "$(walk_cache "$(cache)" models--org--slow "$commit" "$TMP/m")" ok "cache intact"

# ---- names, revisions, a renamed repo, a local path ----
fresh_cache names
st-encode --model tiny < "$TMP/in.txt" > "$TMP/bare.jsonl" 2>/dev/null
cmp -s "$TMP/bare.jsonl" "$TMP/ref-other.jsonl"; ok $? "a bare name is sentence-transformers/NAME"
[ -d "$(cache)/models--sentence-transformers--tiny" ]; ok $? "cached as models--sentence-transformers--tiny"
st-encode --model bert-base-uncased < "$TMP/in.txt" > /dev/null 2>&1
is "$(requests 'GET /api/models/bert-base-uncased/revision/main')" 1 "an old organisation-less name stays as it is"
st-encode --model org/tiny@v1 < "$TMP/in.txt" > "$TMP/v1.jsonl" 2>/dev/null
cmp -s "$TMP/v1.jsonl" "$TMP/ref.jsonl"; ok $? "org/tiny@v1"
is "$(cat "$(cache)/models--org--tiny/refs/v1")" "$commit" "refs/v1 holds the commit"
st-encode --model oldorg/moved < "$TMP/in.txt" > "$TMP/moved.jsonl" 2>/dev/null
cmp -s "$TMP/moved.jsonl" "$TMP/ref.jsonl"; ok $? "a renamed repo: relative redirects followed"
mkdir -p "$TMP/cwd/org"
cp -R "$TMP/other" "$TMP/cwd/org/tiny"
(cd "$TMP/cwd" && st-encode --model org/tiny < "$TMP/in.txt" > "$TMP/local.jsonl" 2>/dev/null)
cmp -s "$TMP/local.jsonl" "$TMP/ref-other.jsonl"; ok $? "an existing local path wins over the Hub name"

# ---- every tool that takes a model ----
echo '{"texts": ["the cat sat", "a dog ran"]}' > "$TMP/ex.jsonl"
st-tokenize --model "$TMP/m" --json < "$TMP/ex.jsonl" > "$TMP/tok-ref.jsonl"
st-tokenize --model org/tiny --json < "$TMP/ex.jsonl" > "$TMP/tok.jsonl" 2>/dev/null
cmp -s "$TMP/tok.jsonl" "$TMP/tok-ref.jsonl"; ok $? "st-tokenize --model org/tiny"
st-batch --size 2 --json < "$TMP/tok-ref.jsonl" > "$TMP/batch.jsonl"
st-forward --model "$TMP/m" --json < "$TMP/batch.jsonl" > "$TMP/fwd-ref.jsonl"
st-forward --model org/tiny --json < "$TMP/batch.jsonl" > "$TMP/fwd.jsonl" 2>/dev/null
cmp -s "$TMP/fwd.jsonl" "$TMP/fwd-ref.jsonl"; ok $? "st-forward --model org/tiny"
printf '{"texts": ["the cat sat", "a cat sat"], "label": 0.9}\n{"texts": ["the dog ran", "a red house"], "label": 0.1}\n{"texts": ["a big tree", "the small tree"], "label": 0.5}\n' > "$TMP/pairs.jsonl"
st-eval similarity --model "$TMP/m" < "$TMP/pairs.jsonl" > "$TMP/eval-ref.json"
st-eval similarity --model org/tiny < "$TMP/pairs.jsonl" > "$TMP/eval.json" 2>/dev/null
cmp -s "$TMP/eval.json" "$TMP/eval-ref.json"; ok $? "st-eval --model org/tiny"
printf 'the cat\na dog\nthe red house\n' > "$TMP/corpus.txt"
st-search --model "$TMP/m" --corpus "$TMP/corpus.txt" < "$TMP/in.txt" > "$TMP/search-ref.jsonl"
st-search --model org/tiny --corpus "$TMP/corpus.txt" < "$TMP/in.txt" > "$TMP/search.jsonl" 2>/dev/null
cmp -s "$TMP/search.jsonl" "$TMP/search-ref.jsonl"; ok $? "st-search --model org/tiny"
st-mine --model "$TMP/m" < "$TMP/corpus.txt" > "$TMP/mine-ref.jsonl"
st-mine --model org/tiny < "$TMP/corpus.txt" > "$TMP/mine.jsonl" 2>/dev/null
cmp -s "$TMP/mine.jsonl" "$TMP/mine-ref.jsonl"; ok $? "st-mine --model org/tiny"
st-init --transformer org/tiny -o "$TMP/init" 2>/dev/null
st-encode --model "$TMP/init" < "$TMP/in.txt" > "$TMP/init.jsonl"
cmp -s "$TMP/init.jsonl" "$TMP/ref.jsonl"; ok $? "st-init --transformer org/tiny: a copy that encodes the same"
[ -z "$(find "$TMP/init" -type l)" ] && ! grep -rqF "$(cache)" "$TMP/init"
ok $? "with files, not links into the cache, and no mention of the cache"
st-download org/tiny "$TMP/m" > "$TMP/paths" 2>/dev/null
is "$(cat "$TMP/paths")" "$(cache)/models--org--tiny/snapshots/$commit
$TMP/m" "st-download: the snapshot of a name, a path as it is"
st-download org/nothing > /dev/null 2>&1; is $? 66 "st-download of an unknown model: 66"
st-card --model org/tiny > /dev/null 2> "$TMP/card.err"
is $? 64 "st-card --model org/tiny without -o: 64 (the cache is not written)"
[ -L "$(cache)/models--org--tiny/snapshots/$commit/README.md" ]; ok $? "the snapshot's README.md is still the cache's link"
st-card --model org/tiny -o "$TMP/card.md" 2> "$TMP/card.err"
is $? 0 "st-card --model org/tiny -o FILE"
grep -q 'SentenceTransformer("org/tiny")' "$TMP/card.md"; ok $? "the card's usage names the Hub model"
! grep -qF "$(cache)" "$TMP/card.md"; ok $? "and not the cache path"
if command -v git > /dev/null && git lfs version > /dev/null 2>&1; then
	git init -q --bare "$TMP/remote.git"
	HOME="$TMP/home" GIT_CONFIG_NOSYSTEM=1 st-push --model org/tiny --repo "file://$TMP/remote.git" > /dev/null 2> "$TMP/push.err"
	ok $? "st-push --model org/tiny (a mirror)"
	mkdir -p "$TMP/home"
	HOME="$TMP/home" GIT_CONFIG_NOSYSTEM=1 git lfs install --skip-repo > /dev/null 2>&1
	HOME="$TMP/home" GIT_CONFIG_NOSYSTEM=1 git clone -q "$TMP/remote.git" "$TMP/mirror" 2>/dev/null
	diff -r -x .git -x .gitattributes "$TMP/m" "$TMP/mirror" > /dev/null && [ -z "$(find "$TMP/mirror" -type l)" ]
	ok $? "the pushed tree holds the model's files, not the cache's links"
fi

# ---- which files: sharded safetensors, .bin only where a folder has no safetensors, folders modules.json names ----
mkdir -p "$TMP/sel/1_Pooling" "$TMP/sel/custom_dense" "$TMP/sel/onnx" "$TMP/sel/coreml/x" "$TMP/sel/2_Dense"
echo '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
 {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
 {"idx": 2, "name": "2", "path": "custom_dense", "type": "sentence_transformers.models.Dense"}]' > "$TMP/sel/modules.json"
for f in config.json config_sentence_transformers.json sentence_bert_config.json tokenizer.json vocab.txt \
	sentencepiece.bpe.model model.safetensors.index.json model-00001-of-00002.safetensors \
	model-00002-of-00002.safetensors pytorch_model.bin pytorch_model.bin.index.json pytorch_model-00001-of-00002.bin \
	1_Pooling/config.json custom_dense/config.json custom_dense/pytorch_model.bin 2_Dense/model.safetensors \
	onnx/model.onnx coreml/x/model.mlmodel tf_model.h5 flax_model.msgpack rust_model.ot train_script.py \
	.gitattributes model.onnx; do
	echo "$f" > "$TMP/sel/$f"
done
stop_hub
python3 tests/hub_server.py --port-file "$TMP/port2" --log "$LOG" org/select="$TMP/sel" 2> "$TMP/server.err" &
server_pid=$!
n=0; while [ ! -s "$TMP/port2" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
snap=$(HF_ENDPOINT="http://127.0.0.1:$(cat "$TMP/port2")" st-download org/select 2>/dev/null)
ok $? "st-download of a repo with many kinds of files"
is "$(cd "$snap" && find . -type l | sed 's#^\./##' | sort | tr '\n' ' ')" \
	"1_Pooling/config.json 2_Dense/model.safetensors config.json config_sentence_transformers.json custom_dense/config.json custom_dense/pytorch_model.bin model-00001-of-00002.safetensors model-00002-of-00002.safetensors model.safetensors.index.json modules.json sentence_bert_config.json sentencepiece.bpe.model tokenizer.json vocab.txt " \
	"the files a sentence-transformers model needs, safetensors before .bin per folder, nothing else"

done_testing
