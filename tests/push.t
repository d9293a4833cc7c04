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
done_testing
