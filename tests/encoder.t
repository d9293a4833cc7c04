#!/bin/sh
# lib/encoder.c against a PyTorch reference (tests/reference/encoder_ref.py, float64 autograd): hidden states
# within 1e-4 (1e-5 with initializer_range 0.02) and every parameter gradient within 1e-3 (max-norm relative), for BERT, RoBERTa, XLM-R,
# DistilBERT and MPNet, with padding in the batch; BERT and short-row MPNet also with ST_KERNELS=generic (the
# portable kernels of lib/kernels.c). build/t/encoder.t --dump writes the model, batch and C results.
# mpnet*.json with rows of 100 tokens, so that every relative-position bucket (edges up to 91) is used.
. tests/lib.sh
PY=/usr/bin/python3
[ -x build/t/encoder.t ] || skip_all "build/t/encoder.t is not built (make check-build)"
$PY -c 'import torch, numpy' 2>/dev/null || skip_all "python3-torch / python3-numpy are not installed"
pairs=
for cfg in tests/reference/encoder/*.json; do
	name=$(basename "$cfg" .json)
	mkdir -p "$TMP/$name"
	case $name in mpnet|mpnet-init002) T=100 ;; *) T=9 ;; esac
	build/t/encoder.t --dump "$TMP/$name" "$cfg" $T
	ok $? "$name: C forward and backward ran"
	pairs="$pairs $TMP/$name $cfg"
	# the portable kernels too (lib/kernels.c; the default is AVX-512 where the CPU has it)
	case $name in bert|mpnet-short)
		mkdir -p "$TMP/$name-generic"
		ST_KERNELS=generic build/t/encoder.t --dump "$TMP/$name-generic" "$cfg" $T
		ok $? "$name: C forward and backward ran with ST_KERNELS=generic"
		cp "$cfg" "$TMP/$name-generic.json"   # the reference names its checks after the file
		pairs="$pairs $TMP/$name-generic $TMP/$name-generic.json" ;;
	esac
done
# one Python process for all models (importing torch is the slow part)
$PY tests/reference/encoder_ref.py $pairs > "$TMP/ref.out" 2>&1
ok $? "reference ran"
while IFS='	' read -r status what; do
	case $status in
	ok) ok 0 "$what" ;;
	"not ok") ok 1 "$what" ;;
	*) echo "# $status $what" ;;
	esac
done < "$TMP/ref.out"
done_testing
