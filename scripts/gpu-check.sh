#!/usr/bin/env bash
# The checks issues 5 and 6 ask for on a machine with an NVIDIA GPU and
# PyTorch: baton doctor; baton run around a GPU workload with /metrics
# scraped under load and idle; the PyTorch, Hugging Face and Lightning
# examples interrupted (SIGTERM to baton) and resumed on an empty checkpoint
# directory, as on a new host. Everything goes to OUTDIR (summary.txt first).
#
# The GPU machine has no Go: build baton here and carry it there, e.g.
#   scripts/build.sh .gpu/baton                     # or make build, then carry bin/baton
#   scripts/gpu-check.sh .gpu/baton "$OUT"          # on the GPU machine, from the repository root
#
# Each step records its outcome and the script goes on; it takes 3 to 5
# minutes. Exit status: the number of steps that failed.
set -uo pipefail
bin=$(realpath "$1")
out=$(realpath -m "$2")
cd "$(dirname "$0")/.." || exit 1
mkdir -p "$out"
work=$(mktemp -d -t baton-gpu.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
PATH="$(dirname "$bin"):$PATH"
export PATH PYTHONUNBUFFERED=1
failed=0
say() { echo "$*" | tee -a "$out/summary.txt"; }
fail() { say "FAIL: $*"; failed=$((failed + 1)); }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# scrape PORT FILE: waits for /metrics on PORT and saves one scrape.
scrape() {
  python3 - "$1" "$2" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read()
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("no /metrics")
open(sys.argv[2], "wb").write(body)
PY
}

# gpu_lines FILE: the GPU series that tell load from idle.
gpu_lines() {
  grep -E '^(DCGM_FI_DEV_(GPU_UTIL|FB_USED|POWER_USAGE|GPU_TEMP|SM_CLOCK|MEM_CLOCK|PCIE_TX_THROUGHPUT|XID_ERRORS)|baton_gpu_sample_seconds)' "$1" |
    sed -E 's/\{[^}]*\}//' | tr '\n' ' '
}

say "== $(date -u +%FT%TZ) $("$bin" version)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/nvidia-smi: /' | tee -a "$out/summary.txt"

say "== 1. baton doctor"
"$bin" doctor --store "file://$work/doctor-store" --require-gpu >"$out/doctor.txt" 2>&1
code=$?
"$bin" doctor --json --store "file://$work/doctor-store" --require-gpu >"$out/doctor.json" 2>/dev/null
say "doctor exit $code: $(grep -E '^(gpu|store)' "$out/doctor.txt" | tr -s ' ' | tr '\n' ';')"
[ "$code" = 0 ] || fail "baton doctor --require-gpu exited $code"

say "== 2. baton run around a GPU workload (bf16 matrix products for 20 s), telemetry every second"
p=$(port)
"$bin" run --store "file://$work/store" --run load --checkpoint-dir "$work/load" --telemetry-interval 1s \
  --telemetry-upload 10s --restarts 0 --metrics-addr "127.0.0.1:$p" --log-format json -- python3 -c '
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.time() + 20
while time.time() < end:
    for _ in range(20):
        b = a @ a
    torch.cuda.synchronize()
print("load done")' >"$work/load.out" 2>"$out/run-load.log" &
pid=$!
sleep 12
scrape "$p" "$out/metrics-load.txt" || fail "no scrape under load"
wait "$pid"
code=$?
say "run exit $code; under load: $(gpu_lines "$out/metrics-load.txt")"
[ "$code" = 0 ] || fail "baton run around the load exited $code"
p=$(port)
"$bin" run --store "file://$work/store" --run idle --checkpoint-dir "$work/idle" --telemetry-interval 1s \
  --metrics-addr "127.0.0.1:$p" --log-format json -- sleep 8 2>"$work/idle.log" &
pid=$!
sleep 5
scrape "$p" "$out/metrics-idle.txt" || fail "no scrape at idle"
wait "$pid"
say "idle: $(gpu_lines "$out/metrics-idle.txt")"
parts=$(find "$work/store/runs/load/telemetry" -name '*.jsonl' 2>/dev/null | wc -l)
gpulines=$(find "$work/store/runs/load/telemetry" -name "*.jsonl" -exec cat {} + 2>/dev/null | grep -c '"type":"gpu"')
say "telemetry of the loaded run in the store: $parts parts, $gpulines gpu lines"
[ "$gpulines" -gt 0 ] || fail "no GPU telemetry in the store"

# example NAME SCRIPT SAVED-GLOB ARGS...: run, wait for a save, SIGTERM baton,
# then resume on an empty checkpoint directory and run to the end.
example() {
  local name=$1 script=$2 saved=$3
  shift 3
  local store="file://$work/ex-store" log="$out/examples.log"
  echo "### $name: first host" >>"$log"
  "$bin" run --store "$store" --run "$name" --checkpoint-dir "$work/$name-a" --checkpoint-interval 0 --grace 30s --restarts 0 \
    -- python3 "$script" "$@" >>"$log" 2>&1 &
  local pid=$! waited=0
  until compgen -G "$work/$name-a/$saved" >/dev/null || [ $waited -ge 300 ] || ! kill -0 "$pid" 2>/dev/null; do
    sleep 1
    waited=$((waited + 1))
  done
  sleep 3
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  local first=$?
  local stopped_at
  stopped_at=$(grep -Eo 'saved on SIGTERM at step=[0-9]+' "$log" | tail -n1)
  echo "### $name: second host, empty checkpoint directory" >>"$log"
  "$bin" run --store "$store" --run "$name" --checkpoint-dir "$work/$name-b" --checkpoint-interval 0 --restarts 0 \
    -- python3 "$script" "$@" >"$work/$name-b.out" 2>&1
  local second=$?
  cat "$work/$name-b.out" >>"$log"
  local resumed finished
  resumed=$(grep -m1 -E '^(resumed from|starting fresh)' "$work/$name-b.out")
  finished=$(grep -Eo 'done step=[0-9]+' "$work/$name-b.out" | tail -n1)
  say "$name: first host exit $first ($stopped_at); second host exit $second: '$resumed' ... '$finished'"
  case $resumed in "resumed from"*) ;; *) fail "$name did not resume" ;; esac
  if [ "$second" != 0 ] || [ -z "$finished" ]; then fail "$name did not finish on the second host"; fi
}

say "== 3. the framework examples, interrupted and resumed"
example pytorch examples/pytorch_loop.py checkpoint.pt --steps 3000 --save-every 200
example hf examples/hf_trainer.py 'checkpoint-*/trainer_state.json' --max-steps 600 --save-steps 100
example lightning examples/lightning_trainer.py last.ckpt --max-steps 600 --save-steps 100

say "== $failed failed"
exit "$failed"
