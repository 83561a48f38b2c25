#!/usr/bin/env bash
# Benchmark of baton pull against s5cmd cp (when there is one: $S5CMD or
# ../shared/tools/s5cmd) and rclone copy on one local versitygw, in the
# same run: (a) ~1,000 files of 64 KiB-4 MiB (log-uniform sizes, ~1 GiB in
# all) and (b) one 1 GiB file. Each tool runs ROUNDS times per shape,
# interleaved, each round starting with another tool; the table shows the median wall time, the ratios to s5cmd
# and to rclone (below 1 means baton is faster) and the largest peak RSS.
#
# Also times push of both shapes, for information.
#
# Usage: scripts/bench-sync.sh            (ROUNDS=3 WORKERS=16 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-16}

. scripts/bench-env.sh

echo "generating the datasets..." >&2
python3 - "$work/small" "$work/big" <<'PY'
import math, os, random, sys
small, big = sys.argv[1], sys.argv[2]
rng = random.Random(42)
os.makedirs(big)
for i in range(1000):
    d = os.path.join(small, f"shard-{i // 100:02d}")
    os.makedirs(d, exist_ok=True)
    size = int(math.exp(rng.uniform(math.log(64 << 10), math.log(4 << 20))))
    with open(os.path.join(d, f"sample-{i:04d}.bin"), "wb") as f:
        f.write(os.urandom(size))
with open(os.path.join(big, "model.bin"), "wb") as f:
    for _ in range(1024):
        f.write(os.urandom(1 << 20))
PY
echo "dataset (a): $(du -sh "$work/small" | cut -f1) in $(find "$work/small" -type f | wc -l) files; dataset (b): $(du -sh "$work/big" | cut -f1)" >&2

# rclone reads its remote from the environment. Debian's rclone 1.60 fails on
# AWS_CA_BUNDLE ("HTTPClient's transport unsupported type"), so it runs without it.
export RCLONE_CONFIG_GW_TYPE=s3 RCLONE_CONFIG_GW_PROVIDER=Other RCLONE_CONFIG_GW_ENDPOINT="$endpoint" \
  RCLONE_CONFIG_GW_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" RCLONE_CONFIG_GW_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
  RCLONE_CONFIG_GW_REGION=us-east-1 RCLONE_CONFIG=/dev/null
rclone_flags=(--transfers "$WORKERS" --checkers "$WORKERS" --multi-thread-streams "$WORKERS" --multi-thread-cutoff 16M
  --s3-upload-concurrency "$WORKERS" --s3-chunk-size 16M --s3-upload-cutoff 16M)
baton_flags=(--progress=none --workers "$WORKERS")

# measure LABEL CMD...: runs CMD, appends "LABEL seconds peak_kib" to results.
# Dirty pages of the previous run are flushed first, so no run pays for
# another's writeback.
measure() {
  local label=$1; shift
  sync
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  echo "$label $(cat "$work/time")" >>"$work/results"
}

for shape in small big; do
  "$work/baton" push "${baton_flags[@]}" "$work/$shape" "s3://bench/$shape?endpoint=$endpoint" >/dev/null
done
tools=(baton-aws baton-minio rclone)
[ -n "$s5cmd" ] && tools+=(s5cmd)
s5cmd_flags=(--endpoint-url "$endpoint" --numworkers "$WORKERS")
# transfer OP TOOL PREFIX DIR: measures TOOL copying the bucket's PREFIX into
# DIR (OP pull) or DIR to PREFIX (OP push), each tool naming the prefix its
# own way.
transfer() {
  local op=$1 tool=$2 prefix=$3 dir=$4 remote
  case $tool in
    baton-aws|baton-minio) remote="s3://bench/$prefix?endpoint=$endpoint" ;;
    rclone) remote="gw:bench/$prefix" ;;
    s5cmd) remote="s3://bench/$prefix" ;;
  esac
  local src=$remote dst=$dir
  [ "$op" = pull ] || { src=$dir; dst=$remote; }
  case $tool in
    baton-aws|baton-minio)
      measure "$op ${prefix##*-} $tool" "$work/baton" "$op" "${baton_flags[@]}" --s3-driver "${tool#baton-}" "$src" "$dst" ;;
    rclone)
      measure "$op ${prefix##*-} rclone" env -u AWS_CA_BUNDLE rclone copy "${rclone_flags[@]}" "$src" "$dst" ;;
    s5cmd) # a prefix is copied down by a wildcard, a directory up by a trailing slash
      if [ "$op" = pull ]; then src="$remote/*" dst="$dir/"; else src="$dir/" dst="$remote/"; fi
      measure "$op ${prefix##*-} s5cmd" "$s5cmd" "${s5cmd_flags[@]}" cp "$src" "$dst" ;;
  esac
}

for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  # Each round starts with another tool, so none always runs first.
  n=${#tools[@]}
  order=("${tools[@]:$(( (round - 1) % n ))}" "${tools[@]:0:$(( (round - 1) % n ))}")
  for shape in small big; do
    for tool in "${order[@]}"; do
      dst="$work/dst"; rm -rf "$dst"
      transfer pull "$tool" "$shape" "$dst"
      cmp -s "$dst/$( [ $shape = big ] && echo model.bin || echo shard-00/sample-0000.bin)" \
             "$work/$shape/$( [ $shape = big ] && echo model.bin || echo shard-00/sample-0000.bin)" || { echo "$tool pulled a wrong copy" >&2; exit 1; }
      rm -rf "$dst"
      transfer push "$tool" "push-$tool-$round-$shape" "$work/$shape"
    done
  done
done

python3 - "$work/results" "$WORKERS" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    op, shape, tool, secs, kib = line.split()
    runs[(op, shape, tool)].append((float(secs), int(kib)))
tools = [t for t in ("baton-aws", "baton-minio", "s5cmd", "rclone") if any(k[2] == t for k in runs)]
peers = [t for t in ("s5cmd", "rclone") if t in tools]
print(f"baton vs {' and '.join(peers)} on one local versitygw, {sys.argv[2]} workers each, median of {len(next(iter(runs.values())))} runs")
print(f"{'op':5} {'shape':24} {'tool':12} {'wall s':>7}" + "".join(f" {'vs ' + p:>9}" for p in peers) + f" {'peak RSS MiB':>12}")
names = {"small": "(a) 1000 files 64K-4M", "big": "(b) one 1 GiB file"}
for op in ("pull", "push"):
    for shape in ("small", "big"):
        ref = {p: statistics.median(s for s, _ in runs[(op, shape, p)]) for p in peers}
        for tool in tools:
            r = runs[(op, shape, tool)]
            med = statistics.median(s for s, _ in r)
            ratios = "".join(f" {med / ref[p]:9.2f}" for p in peers)
            print(f"{op:5} {names[shape]:24} {tool:12} {med:7.2f}{ratios} {max(k for _, k in r) / 1024:12.0f}")
PY
