#!/usr/bin/env bash
# Benchmark of baton checkpoint commit and restore of a checkpoint of many
# small files under a low limit on open files: FILES files of SIZE bytes of
# random data (default 100,000 of 1 KiB) in directories of 1,000, committed
# to a fresh store, restored into an empty directory, then restored again
# over that restore (--force), each by the baton binary run under
# `ulimit -n NOFILE` (default 1024), on the file store and on a local
# versitygw. The restored tree is compared with the source (diff -r). The
# table shows each step's wall time and peak RSS (/usr/bin/time).
#
# Usage: scripts/bench-manyfiles.sh   (FILES=100000 SIZE=1024 NOFILE=1024 WORKERS=16 STORES="file versitygw")
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-100000}
SIZE=${SIZE:-1024}
NOFILE=${NOFILE:-1024}
WORKERS=${WORKERS:-16}
STORES=${STORES:-file versitygw}

work=$(mktemp -d -t baton-manyfiles.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
scripts/build.sh "$work/baton"

echo "writing $FILES files of $SIZE bytes..." >&2
python3 - "$work/src" "$FILES" "$SIZE" <<'PY'
import os, sys
out, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(out, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d)
    with open(os.path.join(d, "f%07d" % i), "wb") as f:
        f.write(os.urandom(size))
PY

# measure LABEL CMD...: runs CMD under ulimit -n NOFILE after flushing dirty
# pages, and appends "LABEL seconds peak_kib" to results.
measure() {
  local label=$1; shift
  sync
  # shellcheck disable=SC2016 # the inner bash expands $0 and $@
  /usr/bin/time -f "%e %M" -o "$work/time" bash -c 'ulimit -n "$0" && exec "$@"' "$NOFILE" "$@" >"$work/out" 2>&1 ||
    { cat "$work/out" >&2; exit 1; }
  echo "$label $(cat "$work/time")" >>"$work/results"
}

for store in $STORES; do
  case "$store" in
    file) url="file://$work/store" ;;
    versitygw)
      bin=$(scripts/install-test-servers.sh versitygw | tail -n1)
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
      export AWS_ACCESS_KEY_ID=benchaccess AWS_SECRET_ACCESS_KEY=benchsecret123 AWS_REGION=us-east-1
      mkdir -p "$work/gw/bench"
      "$bin/versitygw" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --port "127.0.0.1:$port" posix "$work/gw" >"$work/gw.log" 2>&1 &
      for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
      url="s3://bench/manyfiles?endpoint=http://127.0.0.1:$port" ;;
    *) echo "unknown store $store" >&2; exit 2 ;;
  esac
  flags=(--store "$url" --run r --workers "$WORKERS")
  echo "$store: commit, restore, restore over..." >&2
  measure "$store commit" "$work/baton" checkpoint commit "${flags[@]}" "$work/src"
  rm -rf "$work/dst"
  measure "$store restore" "$work/baton" checkpoint restore "${flags[@]}" "$work/dst"
  diff -rq "$work/src" "$work/dst" >/dev/null || { echo "$store: the restored tree differs from the source" >&2; exit 1; }
  measure "$store restore-over" "$work/baton" checkpoint restore --force "${flags[@]}" "$work/dst"
  diff -rq "$work/src" "$work/dst" >/dev/null || { echo "$store: the tree restored over differs from the source" >&2; exit 1; }
  [ -z "$(find "$work" -mindepth 1 -maxdepth 1 -name '*baton-*')" ] || { echo "$store: leftovers beside the target" >&2; exit 1; }
done

printf '%-10s %-13s %9s %10s\n' store step seconds "peak RSS"
while read -r store step secs kib; do
  printf '%-10s %-13s %9s %7d MiB\n' "$store" "$step" "$secs" $((kib / 1024))
done <"$work/results"
echo "($FILES files of $SIZE bytes, ulimit -n $NOFILE, $WORKERS workers, $(nproc) cores)"
