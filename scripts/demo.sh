#!/usr/bin/env bash
# baton's main job on the embedded default store, on a fresh machine with only
# Go and Python 3: a training run that loses its host and resumes on another.
#
#   1. build baton;
#   2. "host A" (pretending to be a RunPod pod) runs the example trainer under
#      `baton run`, which commits a checkpoint to a file:// store every time the
#      trainer saves;
#   3. host A disappears: baton and the trainer are killed with SIGKILL;
#   4. "host B" (pretending to be a Vast.ai instance, with an empty disk) runs
#      the very same command: baton restores the last committed checkpoint and
#      the trainer resumes from it;
#   5. `baton checkpoint ls` shows checkpoints from both platforms.
#
# Usage: scripts/demo.sh [WORKDIR]   (default: a new temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

work=${1:-$(mktemp -d -t baton-demo.XXXXXX)}
mkdir -p "$work"
echo "== building baton into $work/baton"
scripts/build.sh "$work/baton"
export PATH="$work:$PATH"
baton version

export BATON_STORE="file://$work/store" BATON_RUN_ID=demo
export BATON_LEASE_DURATION=10s BATON_CHECKPOINT_INTERVAL=0 BATON_LOG_FORMAT=text BATON_KEEP=0
trainer=(python3 "$repo/examples/trainer.py" --steps 200 --step-seconds 0.05 --save-every 10 --notify)

echo
echo "== host A (RunPod): baton run -- trainer.py; killed with SIGKILL after ~4 s"
# shellcheck disable=SC2030 # host A's settings stay in its subshell on purpose
( export RUNPOD_POD_ID=host-a BATON_CHECKPOINT_DIR="$work/host-a/checkpoints"
  exec setsid baton run -- "${trainer[@]}" >"$work/host-a.out" 2>"$work/host-a.log" ) &
sleep 4
pkill -KILL -s "$(ps -o sid= -p $! | tr -d ' ')" || true
wait 2>/dev/null || true
echo "host A's trainer got to: $(grep '^step=' "$work/host-a.out" | tail -n1)"
baton checkpoint ls

echo
echo "== host B (Vast.ai), empty disk, same command; it waits for host A's lease to expire (10 s)"
# shellcheck disable=SC2031 # host B sets its own
export VAST_CONTAINERLABEL=C.4242 CONTAINER_ID=4242 CONTAINER_API_KEY=demo-key BATON_CHECKPOINT_DIR="$work/host-b/checkpoints"
until baton run -- "${trainer[@]}" >"$work/host-b.out" 2>"$work/host-b.log"; do
  status=$?
  [ "$status" = 75 ] || { cat "$work/host-b.log"; exit "$status"; }
  sleep 2   # 75: the run is still held by host A
done
head -n1 "$work/host-b.out"
tail -n1 "$work/host-b.out"
echo "the run's checkpoints, from both hosts (first and last ones):"
baton checkpoint ls | { head -n 3; echo "..."; tail -n 2; }
echo
echo "demo done; logs and checkpoints are under $work"
