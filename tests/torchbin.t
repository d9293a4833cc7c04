#!/bin/sh
# pytorch_model.bin and sharded checkpoints (lib/torch_load.c, lib/weights.c) against Debian's torch:
# state dicts torch.save wrote (BERT, RoBERTa, MPNet names; float32/16, bfloat16, float64; zip and legacy;
# views, parameters, protocol 4) read back tensor by tensor equal to torch.load's values; model folders whose
# only weights are a pytorch_model.bin or a sharded index encode exactly as the safetensors folder; hostile
# files (pickles that would run os.system, truncated zips, wrong shapes and sizes) refused with exit 65, and
# the marker file the pickles would create never appears.
. tests/lib.sh
. tests/lib-model.sh
PY=/usr/bin/python3
REF=tests/reference/torchbin_ref.py
[ -x build/t/torchbin.t ] || skip_all "build/t/torchbin.t is not built (make check-build)"
$PY -c 'import torch' 2>/dev/null || skip_all "python3-torch is not installed"

# tensor-by-tensor checks are collected as "DUMP PATH" pairs and run by one Python process at the end
pairs=
dump() {   # dump PATH DESCRIPTION
	d="$TMP/dump.$tap_n"
	build/t/torchbin.t --dump "$1" > "$d" 2> "$d.err"
	ok $? "$2: read"
	[ -s "$d.err" ] && sed 's/^/#   /' "$d.err"
	pairs="$pairs $d $1"
}

# 1. state dicts read tensor by tensor
$PY $REF states "$TMP/states"; ok $? "torch.save wrote the state dicts"
for f in "$TMP"/states/*.bin; do
	dump "$f" "$(basename "$f" .bin)"
done

# 2. model folders: the same weights in other files encode exactly as model.safetensors does
printf 'the cat sat on the mat.\na dog\nthe big red house , the small blue tree , a cat ran far away.\n' > "$TMP/in.txt"
tiny_model "$TMP/bert"
cat > "$TMP/roberta.json" <<'JSON'
{"model_type": "roberta", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
 "intermediate_size": 32, "max_position_embeddings": 42, "pad_token_id": 1, "type_vocab_size": 1}
JSON
st-init --config "$TMP/roberta.json" --vocab "$TMP/vocab.txt" --dense 8 -o "$TMP/roberta" 2> "$TMP/err"
ok $? "st-init made a RoBERTa model with a Dense module"
for arch in bert roberta; do
	st-encode --model "$TMP/$arch" < "$TMP/in.txt" > "$TMP/$arch.ref"; ok $? "$arch: encode with model.safetensors"
	$PY $REF variants "$TMP/$arch" "$TMP/v-$arch" $arch; ok $? "$arch: torch wrote the variants"
	for v in bin legacy prefixed strided param shard-st shard-bin; do
		st-encode --model "$TMP/v-$arch/$v" < "$TMP/in.txt" > "$TMP/$arch-$v.out" 2> "$TMP/err"
		ok $? "$arch/$v: encodes"
		cmp -s "$TMP/$arch-$v.out" "$TMP/$arch.ref"; ok $? "$arch/$v: the same embeddings as model.safetensors"
		dump "$TMP/v-$arch/$v" "$arch/$v: tensors"
	done
	for p in f16 bf16; do
		st-encode --model "$TMP/v-$arch/$p-bin" < "$TMP/in.txt" > "$TMP/$arch-$p-bin.out" &&
			st-encode --model "$TMP/v-$arch/$p-st" < "$TMP/in.txt" > "$TMP/$arch-$p-st.out"
		ok $? "$arch/$p: encodes from pytorch_model.bin and model.safetensors"
		cmp -s "$TMP/$arch-$p-bin.out" "$TMP/$arch-$p-st.out"; ok $? "$arch/$p: the same embeddings from both"
	done
done
# the Dense module's weights as an older sentence-transformers saved them: 2_Dense/pytorch_model.bin
cp -r "$TMP/roberta" "$TMP/dense-bin"
$PY -c '
import sys, torch; sys.path.insert(0, "tests/reference"); import torchbin_ref as r
d = sys.argv[1] + "/2_Dense/"
torch.save(r.read_safetensors(d + "model.safetensors"), d + "pytorch_model.bin")' "$TMP/dense-bin" && rm "$TMP/dense-bin/2_Dense/model.safetensors"
st-encode --model "$TMP/dense-bin" < "$TMP/in.txt" > "$TMP/dense-bin.out"
ok $? "2_Dense/pytorch_model.bin: encodes"
cmp -s "$TMP/dense-bin.out" "$TMP/roberta.ref"; ok $? "2_Dense/pytorch_model.bin: the same embeddings"
# saving over a sharded folder writes model.safetensors and drops the files it replaces
for v in shard-st shard-bin; do
	cp -r "$TMP/v-bert/$v" "$TMP/resave-$v"
	build/t/torchbin.t --resave "$TMP/resave-$v"; ok $? "$v: loaded and saved in place"
	is "$(ls "$TMP/resave-$v" | grep -c -e '-of-' -e 'index.json' -e '\.bin$')" 0 "$v: shards and index dropped"
	st-encode --model "$TMP/resave-$v" < "$TMP/in.txt" | cmp -s - "$TMP/bert.ref"
	ok $? "$v: the saved model.safetensors encodes the same"
done

# 3. hostile files: exit 65, a message naming the problem, nothing run
marker="$TMP/marker"
$PY $REF hostile "$TMP/bert" "$TMP/h" "$marker"; ok $? "hostile files written (never loaded by the script)"
while read -r name want; do
	st-encode --model "$TMP/h/$name" < "$TMP/in.txt" > /dev/null 2> "$TMP/$name.err"
	is "$?" 65 "$name: refused with exit 65"
	grep -q -- "$want" "$TMP/$name.err"; ok $? "$name: the message says '$want'"
	[ $? -eq 0 ] || sed 's/^/#   /' "$TMP/$name.err"
done <<'LIST'
os-system refusing global os.system
posix-system refusing global posix.system
builtins-eval refusing global builtins.eval
nested refusing global os.system
legacy-system refusing global os.system
truncated not a readable zip archive
truncated-end not a readable zip archive
bad-crc CRC error
wrong-shape has shape
wrong-dtype I64 is not a floating type
short-storage holds
view-larger elements over storage
view-past-storage size, stride or offset wrong
huge-numel more than the file holds
deflated compressed
index-escape not a file name in the same folder
index-wrong-shard the shard the weight_map names
index-duplicate is in both
LIST
[ ! -e "$marker" ]; ok $? "no hostile pickle ran (the marker file does not exist)"

# every dump against torch's own reading, in one Python process
$PY $REF check $pairs > "$TMP/check.out" 2>&1
ok $? "the oracle ran"
while IFS='	' read -r status what; do
	case $status in
	ok) ok 0 "$what" ;;
	"not ok") ok 1 "$what" ;;
	*) echo "# $status $what" ;;
	esac
done < "$TMP/check.out"
done_testing
