#!/usr/bin/env bash
# How baton's costs grow with the store (issue 18), on one local versitygw,
# directly and through a proxy that delays every request by DELAY_MS (20 ms by
# default, to show what a real store's latency does):
#
#   commit  a commit of one changed 4 MiB file into a store whose chunks/
#           already holds N objects of other runs (N in SIZES), time and peak
#           RSS; the goal is at most 1.5x the empty store's time
#   ls      baton checkpoint ls of a run with LS_CHECKPOINTS checkpoints
#   gc      baton checkpoint gc of the largest store, time and peak RSS
#
# The N chunk objects are planted as files in the gateway's posix directory
# (what a PUT would leave), so that a store of a million objects takes a
# minute to make, not an hour.
#
# Usage: scripts/bench-scale.sh   (SIZES="0 20000 100000" LS_CHECKPOINTS=300 DELAY_MS=20)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-0 20000 100000}
LS_CHECKPOINTS=${LS_CHECKPOINTS:-300}
DELAY_MS=${DELAY_MS:-20}

. scripts/bench-env.sh

# A TCP proxy that holds the first bytes of every request (client bytes after
# a quiet moment) DELAY_MS before passing them on: each request pays the
# delay once, as a round trip to a distant store would, and the bandwidth is
# the loopback's.
proxy_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$proxy_port" "${endpoint##*:}" "$DELAY_MS" <<'PY' &
import asyncio, sys, time
listen, target, delay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000
async def pipe(r, w, d):
    last = 0.0
    try:
        while data := await r.read(1 << 16):
            if d and time.monotonic() - last > 0.005:
                await asyncio.sleep(d)
            last = time.monotonic()
            w.write(data)
            await w.drain()
    except ConnectionError:
        pass
    finally:
        w.close()
async def handle(cr, cw):
    sr, sw = await asyncio.open_connection("127.0.0.1", target)
    await asyncio.gather(pipe(cr, sw, delay), pipe(sr, cw, 0))
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$proxy_port") 2>/dev/null && break; sleep 0.1; done
proxied="http://127.0.0.1:$proxy_port"

# plant DIR N: N chunk-shaped objects (64-hex names, 1 KiB each) under DIR/chunks.
plant() {
  python3 - "$1" "$2" <<'PY'
import hashlib, os, sys
root, n = sys.argv[1], int(sys.argv[2])
blob = os.urandom(1024)
for i in range(n):
    h = hashlib.sha256(b"planted %d" % i).hexdigest()
    d = os.path.join(root, "chunks", h[:2])
    if i < 256 or not os.path.isdir(d):
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, h), "wb") as f:
        f.write(blob)
PY
}

# timed LABEL CMD...: runs CMD, prints "LABEL seconds peak-MiB".
timed() {
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  read -r secs kib <"$work/time"
  printf '%-40s %8.2f s %8d MiB\n' "$label" "$secs" $((kib / 1024))
}

ckpt="$work/ckpt"
mkdir -p "$ckpt"
head -c $((4 << 20)) /dev/urandom >"$ckpt/model.bin"
head -c $((64 << 20)) /dev/urandom >"$ckpt/frozen.bin"

echo "commit of one changed 4 MiB file (beside 64 MiB unchanged), by chunks already in the store:"
for n in $SIZES; do
  prefix="scale$n"
  mkdir -p "$work/gw/bench/$prefix"
  plant "$work/gw/bench/$prefix" "$n"
  for via in direct proxy; do
    ep=$endpoint
    [ "$via" = proxy ] && ep=$proxied
    store="s3://bench/$prefix?endpoint=$ep"
    run="r-$via"
    "$work/baton" checkpoint commit --store "$store" --run "$run" "$ckpt" >/dev/null
    head -c $((4 << 20)) /dev/urandom >"$ckpt/model.bin"
    timed "  N=$n, $via" "$work/baton" checkpoint commit --store "$store" --run "$run" "$ckpt"
  done
done

echo "checkpoint ls of a run with $LS_CHECKPOINTS checkpoints (--keep 0):"
store="s3://bench/ls?endpoint=$endpoint"
for i in $(seq "$LS_CHECKPOINTS"); do
  echo "$i" >"$ckpt/step"
  "$work/baton" checkpoint commit --store "$store" --run many "$ckpt" >/dev/null
done
timed "  ls, direct" "$work/baton" checkpoint ls --store "$store" --run many
timed "  ls, proxy" "$work/baton" checkpoint ls --store "s3://bench/ls?endpoint=$proxied" --run many

largest=${SIZES##* }
echo "gc of the store with $largest planted chunks:"
timed "  gc, direct" "$work/baton" checkpoint gc --store "s3://bench/scale$largest?endpoint=$endpoint" --grace 1h
