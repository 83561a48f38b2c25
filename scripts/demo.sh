#!/usr/bin/env bash
# baton's main job on the embedded default store, on a fresh machine with only
# Go: build baton, push a generated dataset into a file:// store, pull it back
# into another directory, check the copy is byte-identical, and show that a
# second pull transfers nothing.
#
# Usage: scripts/demo.sh [WORKDIR]   (default: a new temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."

work=${1:-$(mktemp -d -t baton-demo.XXXXXX)}
mkdir -p "$work"
echo "== building baton into $work/baton"
CGO_CFLAGS="${CGO_CFLAGS:--Wno-deprecated-declarations}" go build -buildvcs=auto -o "$work/baton" ./cmd/baton
baton="$work/baton"
"$baton" version

echo "== generating a dataset: 200 files of 4 KiB to 1 MiB, and one 64 MiB file"
data="$work/dataset"
mkdir -p "$data/shards"
for i in $(seq 1 200); do
  head -c $(( (i * 5237) % 1048576 + 4096 )) /dev/urandom > "$data/shards/shard-$i.bin"
done
head -c $((64 << 20)) /dev/urandom > "$data/weights.safetensors"

store="file://$work/store"
echo "== baton push $data $store"
"$baton" push --progress=none "$data" "$store"

echo "== baton pull $store $work/copy"
"$baton" pull --progress=none "$store" "$work/copy"
diff -r "$data" "$work/copy" && echo "copy is byte-identical"

echo "== a second pull of the unchanged store"
"$baton" pull --progress=none "$store" "$work/copy"
echo "demo done; everything is under $work"
