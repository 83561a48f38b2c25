#!/usr/bin/env bash
# Overhead of baton itself: baton run supervising `sleep DURATION` on the
# embedded file store, with telemetry sampled every second (GPUs through
# NVML where a driver is present, the host through gopsutil), uploaded to the
# store every 10 s, and the metrics endpoint scraped every second. Prints
# baton's CPU seconds (user + system, its own and its reaped children's, of
# which sleep's are nil), that as a share of one core over the run, and its
# peak RSS. Goals: under 1% of one core and under 40 MiB.
#
# Usage: scripts/bench-overhead.sh          (DURATION=60 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}

work=$(mktemp -d -t baton-overhead.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
scripts/build.sh "$work/baton"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# Scrape /metrics every second while baton runs; count good scrapes.
python3 - "$port" "$work/scrapes" <<'PY' &
import sys, time, urllib.request
port, out = sys.argv[1], sys.argv[2]
ok = gpu = 0
while True:
    time.sleep(1)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        continue
    ok += 1
    gpu = gpu or ("DCGM_FI_DEV_GPU_UTIL" in body)
    with open(out, "w") as f:
        f.write(f"{ok} {int(gpu)} {len(body)}\n")
PY

/usr/bin/time -f "%e %U %S %M" -o "$work/time" "$work/baton" run \
  --store "file://$work/store" --run overhead --checkpoint-dir "$work/ckpt" \
  --telemetry-interval 1s --telemetry-upload 10s --metrics-addr "127.0.0.1:$port" \
  --log-format json -- sleep "$DURATION" 2>"$work/baton.log"

read -r wall user sys rss_kib <"$work/time"
read -r scrapes gpu bytes <"$work/scrapes" || { scrapes=0 gpu=0 bytes=0; }
parts=$(find "$work/store" -path '*/telemetry/*' -name '*.jsonl' | wc -l)
lines=$(find "$work/store" -path '*/telemetry/*' -name '*.jsonl' -exec cat {} + | wc -l)
python3 - "$wall" "$user" "$sys" "$rss_kib" "$scrapes" "$gpu" "$bytes" "$parts" "$lines" <<'PY'
import sys
wall, user, sys_, rss, scrapes, gpu, size, parts, lines = sys.argv[1:]
cpu = float(user) + float(sys_)
share = 100 * cpu / float(wall)
rss_mib = int(rss) / 1024
print(f"baton run -- sleep: {float(wall):.1f} s wall, telemetry every 1 s, {scrapes} scrapes of /metrics "
      f"({int(size)} bytes each, GPU series: {'yes' if gpu == '1' else 'no (no NVIDIA driver)'}), "
      f"{lines} telemetry lines in {parts} parts in the store")
print(f"baton CPU: {cpu:.2f} s (user {user}, sys {sys_}) = {share:.2f}% of one core (goal < 1%)")
print(f"baton peak RSS: {rss_mib:.1f} MiB (goal < 40 MiB)")
PY
