#!/bin/sh
# st-batch memory on a 1M-example tokenized stream (pairs of 16-40 tokens), shuffled over 1 epoch: peak
# resident memory must stay under 1 GiB. Anchor: the size of the token ids themselves.
set -e
cd "$(dirname "$0")/.."
PATH="$(pwd)/bin:$PATH"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=${ST_BENCH_EXAMPLES:-1000000}
awk -v n="$n" 'BEGIN { srand(3); for (i = 0; i < n; i++) { printf "{\"texts\":[\"q%d\",\"p%d\"],\"input_ids\":[[101", i, i;
  l = 16 + int(rand() * 25); for (j = 0; j < l; j++) printf ",%d", 1000 + int(rand() * 29000); printf ",102],[101";
  l = 16 + int(rand() * 25); for (j = 0; j < l; j++) printf ",%d", 1000 + int(rand() * 29000); printf ",102]],\"label\":1}\n" } }' \
  | st-json --to-msgpack > "$tmp/tok.mp"
tokens=$(st-json < "$tmp/tok.mp" | jq -r '.input_ids | map(length) | add' | awk '{s += $1} END {print s}')
/usr/bin/time -f '%M %e' -o "$tmp/time" st-batch --size 32 --shuffle < "$tmp/tok.mp" > /dev/null
set -- $(cat "$tmp/time")
echo "st-batch: $n examples, $tokens tokens ($((tokens * 4 / 1048576)) MiB of int32 ids): peak RSS $(($1 / 1024)) MiB, $2 s"
