#!/bin/sh
# st-push: a model directory pushed to a local bare repository: the tree equals the directory, weights are
# LFS pointers in git with their objects in the remote's LFS storage; a second push of the same model is a
# no-op; credentials in the URL are refused.
. "$(dirname "$0")/lib.sh"
command -v git > /dev/null || skip_all "git is not installed"
git lfs version > /dev/null 2>&1 || skip_all "git-lfs is not installed"
export HOME="$TMP/home" GIT_CONFIG_NOSYSTEM=1   # no user configuration leaks in or out
mkdir -p "$HOME"
git lfs install --skip-repo > /dev/null 2>&1   # smudge filters for the test's own clones, in the test's HOME

printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\n' > "$TMP/vocab.txt"
cat > "$TMP/bert.json" <<'JSON'
{"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4,
 "intermediate_size": 32, "max_position_embeddings": 40}
JSON
st-init --config "$TMP/bert.json" --vocab "$TMP/vocab.txt" --dense 8 -o "$TMP/m" 2>/dev/null || skip_all "st-init cannot build a model"
git init -q --bare "$TMP/remote.git"

st-push --model "$TMP/m" --repo "file://$TMP/remote.git" --message "first model" 2> "$TMP/err"; ok $? "push to a bare repository"
GIT_LFS_SKIP_SMUDGE=1 git clone -q "$TMP/remote.git" "$TMP/pointers" 2>/dev/null
is "$(git -C "$TMP/pointers" log -1 --format=%s)" "first model" "the commit message"
(cd "$TMP/m" && find . -type f | sed 's#^\./##' | sort) > "$TMP/want"
(cd "$TMP/pointers" && git ls-files | grep -v '^\.gitattributes$' | sort) > "$TMP/got"
is "$(cat "$TMP/got")" "$(cat "$TMP/want")" "the pushed tree has the directory's files"
grep -q '^\*\.safetensors filter=lfs diff=lfs merge=lfs -text$' "$TMP/pointers/.gitattributes"; ok $? ".gitattributes: *.safetensors in LFS"
grep -q '^\*\.bin filter=lfs diff=lfs merge=lfs -text$' "$TMP/pointers/.gitattributes"; ok $? ".gitattributes: *.bin in LFS"
for w in model.safetensors 2_Dense/model.safetensors; do
	head -1 "$TMP/pointers/$w" | grep -q '^version https://git-lfs.github.com/spec/v1$'; ok $? "$w is an LFS pointer in git"
	oid=$(sed -n 's/^oid sha256://p' "$TMP/pointers/$w")
	is "$oid" "$(sha256sum "$TMP/m/$w" | cut -d' ' -f1)" "... naming the file's sha256"
	obj="$TMP/remote.git/lfs/objects/$(echo "$oid" | cut -c1-2)/$(echo "$oid" | cut -c3-4)/$oid"
	cmp -s "$obj" "$TMP/m/$w"; ok $? "... whose object is in the remote's LFS storage"
done
head -c 1 "$TMP/pointers/config.json" | grep -q '{'; ok $? "config.json is a plain git file"
git clone -q "$TMP/remote.git" "$TMP/full" 2>/dev/null
diff -r -x .git -x .gitattributes "$TMP/m" "$TMP/full" > /dev/null; ok $? "a full clone equals the directory"

st-push --model "$TMP/m" --repo "$TMP/remote.git" 2> "$TMP/err"; ok $? "pushing the same model again"
grep -q 'up to date' "$TMP/err"; ok $? "... is a no-op"
echo "changed" > "$TMP/m/README.md"
rm "$TMP/m/vocab.txt"
st-push --model "$TMP/m" --repo "$TMP/remote.git" 2>/dev/null; ok $? "pushing a changed model"
git -C "$TMP/pointers" pull -q 2>/dev/null
is "$(git -C "$TMP/pointers" rev-list --count HEAD)" 2 "a second commit"
[ -e "$TMP/pointers/vocab.txt" ]; is $? 1 "a file removed from the directory is removed from the repository"

st-push --model "$TMP/m" --repo "https://user:secret@example.invalid/m" 2> "$TMP/err"; is $? 64 "a token in the URL: 64"
grep -q secret "$TMP/err"; is $? 1 "... and the token is not printed"
st-push --model "$TMP/m" --repo "$TMP/nothing.git" 2>/dev/null; is $? 74 "an unreachable remote: 74"
st-push --model "$TMP/none" --repo "$TMP/remote.git" 2>/dev/null; is $? 66 "a missing model: 66"
st-push --model "$TMP/m" 2>/dev/null; is $? 64 "no --repo: 64"
# Symbolic links (issue 11): a model in the Hub cache layout (snapshots/REV/FILE -> ../../blobs/HASH) is pushed
# as its files; a link inside the model is pushed as the file; a link elsewhere, to a directory or to nothing is
# refused and nothing is pushed.
hub="$TMP/hub/models--me--m"
mkdir -p "$hub/blobs" "$hub/snapshots/abc"
(cd "$TMP/m" && find . -type f) | while IFS= read -r f; do
	h=$(sha256sum "$TMP/m/$f" | cut -d' ' -f1)
	cp "$TMP/m/$f" "$hub/blobs/$h"
	mkdir -p "$hub/snapshots/abc/$(dirname "$f")"
	up=$(echo "$f" | sed 's#^\./##; s#[^/]*/#../#g; s#[^/]*$##')
	ln -s "$up../../blobs/$h" "$hub/snapshots/abc/$f"
done
[ -L "$hub/snapshots/abc/model.safetensors" ] && cmp -s "$hub/snapshots/abc/2_Dense/model.safetensors" "$TMP/m/2_Dense/model.safetensors"
ok $? "a Hub cache layout of the model (links into blobs/)"
git init -q --bare "$TMP/hub.git"
st-push --model "$hub/snapshots/abc" --repo "$TMP/hub.git" 2> "$TMP/err"; ok $? "pushing the Hub cache layout"
git clone -q "$TMP/hub.git" "$TMP/hubclone" 2>/dev/null
is "$(git -C "$TMP/hubclone" ls-files -s | awk '$1 == "120000"' | wc -l)" 0 "no symbolic link is committed"
diff -r -x .git -x .gitattributes "$TMP/m" "$TMP/hubclone" > /dev/null; ok $? "the clone holds the files themselves"
ln -s README.md "$TMP/m/README.copy.md"
git init -q --bare "$TMP/in.git"
st-push --model "$TMP/m" --repo "$TMP/in.git" 2>/dev/null; ok $? "a link inside the model"
git clone -q "$TMP/in.git" "$TMP/inclone" 2>/dev/null
[ -f "$TMP/inclone/README.copy.md" ] && [ ! -L "$TMP/inclone/README.copy.md" ] && cmp -s "$TMP/inclone/README.copy.md" "$TMP/m/README.md"
ok $? "... is pushed as a copy of the file"
rm "$TMP/m/README.copy.md"
echo "my secret" > "$TMP/secret.txt"
git init -q --bare "$TMP/out.git"
for kind in outside broken dir; do
	case $kind in
	outside) ln -s "$TMP/secret.txt" "$TMP/m/link" ;;
	broken) ln -s nothing "$TMP/m/link" ;;
	dir) ln -s "$TMP" "$TMP/m/link" ;;
	esac
	st-push --model "$TMP/m" --repo "$TMP/out.git" 2> "$TMP/err"; is $? 65 "a link $kind: refused (65)"
	grep -q "link" "$TMP/err"; ok $? "... naming it ($(cat "$TMP/err"))"
	rm "$TMP/m/link"
done
is "$(git -C "$TMP/out.git" rev-list --all | wc -l)" 0 "... and nothing was pushed"
done_testing
