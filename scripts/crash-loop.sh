#!/usr/bin/env bash
# Crash loop of `baton checkpoint commit` against a real versitygw, as an
# operator would meet it: a commit killed with SIGKILL mid-upload must never
# leave behind a state from which a published checkpoint does not restore.
#
# It builds baton, starts versitygw (posix backend) on a free loopback port,
# commits a ~120 MiB checkpoint directory, and then runs N trials. Each trial
#
#   1. changes the directory (what changes varies: a region of the model
#      rewritten in place, scattered small regions, the whole model, the
#      model grown or shrunk, only the small state file, an extra file added
#      or removed);
#   2. starts `baton checkpoint commit` and kills it with SIGKILL at a random
#      moment 0.1-0.4 s in, or, in one trial of six, lets it finish;
#   3. runs a normal commit of the same directory;
#   4. restores the latest checkpoint (and the killed commit's, if it
#      published one before it died) into a fresh directory and compares
#      every file with the directory by SHA-256.
#
# The posix backend of versitygw writes an object under its final name as its
# body arrives, so a PUT that dies leaves a torn object there. Every chunk
# object whose length is neither the chunk size nor the length of the last
# chunk of a file the loop ever wrote is counted as torn (the chunks are
# 4 MiB and no file's tail length is left to chance, so this is exact up to a
# torn object that happens to have one of those lengths). Torn objects are
# what the trials exercise: a later commit that trusts one makes a
# checkpoint that does not restore.
#
# It prints one summary line:
#
#   crash-loop: trials=N killed=K finished=F published=P unrestorable=U failed_commits=C torn_objects_seen=T driver=D seed=S time=Ss
#
# and exits 1 if any published checkpoint did not restore byte for byte
# (U > 0) or a normal commit failed (C > 0), 0 otherwise.
#
# Usage: scripts/crash-loop.sh [N]      (N trials, default 200)
#
# Environment: DRIVER=aws|minio picks the S3 driver (default aws, through the
# store URL's ?driver=); SIZE_MIB is the model file's size (default 120);
# SEED seeds the choices (default: random, printed in the summary);
# BATON_TOOLS is where scripts/install-test-servers.sh keeps versitygw
# (default ~/.cache/baton-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-200}
DRIVER=${DRIVER:-aws}
SIZE_MIB=${SIZE_MIB:-120}
SEED=${SEED:-$(( $(date +%s) % 32768 ))}
case "$N" in '' | *[!0-9]*) echo "crash-loop: N=$N: want a number of trials" >&2; exit 2 ;; esac
case "$DRIVER" in aws | minio) ;; *) echo "crash-loop: DRIVER=$DRIVER: want aws or minio" >&2; exit 2 ;; esac
case "$SIZE_MIB" in '' | *[!0-9]* | 0) echo "crash-loop: SIZE_MIB=$SIZE_MIB: want a size in MiB" >&2; exit 2 ;; esac
RANDOM=$SEED
readonly chunk=$((4 << 20)) mib=$((1 << 20))

bin=$(scripts/install-test-servers.sh versitygw | tail -n1)
work=$(mktemp -d -t baton-crash-loop.XXXXXX)
gw_pid=
commit_pid=
cleanup() {
  [ -n "$commit_pid" ] && kill -KILL "$commit_pid" 2>/dev/null
  [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

echo "crash-loop: building baton..." >&2
scripts/build.sh "$work/baton"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AWS_ACCESS_KEY_ID=crashaccess AWS_SECRET_ACCESS_KEY=crashsecret123 AWS_REGION=us-east-1
mkdir -p "$work/gw/crash"
"$bin/versitygw" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --port "127.0.0.1:$port" posix "$work/gw" >"$work/gw.log" 2>&1 &
gw_pid=$!
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
(echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null || { echo "crash-loop: versitygw did not start:" >&2; cat "$work/gw.log" >&2; exit 1; }

export BATON_STORE="s3://crash/loop?endpoint=http://127.0.0.1:$port&driver=$DRIVER"
export BATON_RUN_ID=crash BATON_HOLDER=crash-loop
chunks="$work/gw/crash/loop/chunks"
latest_json="$work/gw/crash/loop/runs/crash/latest.json"
ckpt="$work/ckpt"
mkdir -p "$ckpt"

# tails[LEN]=1 for every length a file's last chunk had in some state (a
# file of whole chunks has none).
declare -A tails=() torn=()
note_tails() {
  local f size
  for f in "$ckpt"/*; do
    size=$(stat -c %s "$f")
    [ $((size % chunk)) -eq 0 ] || tails[$((size % chunk))]=1
  done
}

# rnd N: sets r to a random number in [0, N), N up to 2^30. (Not printed:
# a command substitution would not advance this shell's RANDOM, and SEED
# would not replay a run.)
r=0
rnd() { r=$(( ((RANDOM << 15) | RANDOM) % $1 )); }

# overwrite FILE OFFSET LEN: LEN random bytes at OFFSET, in place.
overwrite() {
  head -c "$3" /dev/urandom | dd of="$1" bs=64K seek="$2" oflag=seek_bytes conv=notrunc status=none
}

# mutate: changes the checkpoint directory; sets what to what changed.
what=
mutate() {
  local model="$ckpt/model.safetensors" size len
  size=$(stat -c %s "$model")
  case $((RANDOM % 6)) in
    0) rnd 32; len=$(( (1 + r) * mib )); [ "$len" -lt "$size" ] || len=$((size / 2))
       rnd $((size - len)); overwrite "$model" "$r" "$len"; what="a region of $len bytes at $r rewritten" ;;
    1) for _ in 1 2 3 4 5; do rnd $((size - 65536)); overwrite "$model" "$r" 65536; done
       what="5 scattered 64 KiB regions rewritten" ;;
    2) head -c "$size" /dev/urandom >"$model.new" && mv "$model.new" "$model"; what="the whole model rewritten" ;;
    3) rnd $((SIZE_MIB * mib / 4 + 1)); len=$(( SIZE_MIB * mib * 7 / 8 + r + 1 ))
       if [ "$len" -gt "$size" ]; then head -c $((len - size)) /dev/urandom >>"$model"; else truncate -s "$len" "$model"; fi
       what="the model resized from $size to $len bytes" ;;
    4) echo "{\"step\": $RANDOM$RANDOM}" >"$ckpt/trainer_state.json"; what="the state file only" ;;
    5) if [ -e "$ckpt/extra.bin" ]; then rm "$ckpt/extra.bin"; what="the extra file removed"
       else rnd $((9 * mib)); head -c $((mib + r)) /dev/urandom >"$ckpt/extra.bin"; what="an extra file added"; fi ;;
  esac
  note_tails
}

# sums DIR: the SHA-256 of every file under DIR, by relative path.
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

# latest_seq: the seq latest.json names (0 if none).
latest_seq() { sed -n 's/^ *"seq": *\([0-9]*\),*$/\1/p' "$latest_json" 2>/dev/null || echo 0; }

# count_torn: records every chunk object whose length no chunk can have.
count_torn() {
  local f size
  [ -d "$chunks" ] || return 0
  while IFS=' ' read -r size f; do
    if [ "$size" != "$chunk" ] && [ -z "${tails[$size]:-}" ]; then
      torn[${f##*/}]=1
    fi
  done < <(find "$chunks" -type f -printf '%s %p\n')
}

# check_restore TRIAL SEQ: restores checkpoint SEQ into a fresh directory and
# compares it with the checkpoint directory; counts it unrestorable if not.
check_restore() {
  local dst="$work/restore"
  rm -rf "$dst"
  if ! "$work/baton" checkpoint restore --seq "$2" "$dst" >"$work/restore.log" 2>&1; then
    unrestorable=$((unrestorable + 1))
    echo "crash-loop: trial $1: checkpoint $2 does not restore: $(tail -n1 "$work/restore.log")" >&2
  elif ! cmp -s <(sums "$dst") <(sums "$ckpt"); then
    unrestorable=$((unrestorable + 1))
    echo "crash-loop: trial $1: checkpoint $2 restored, but differs from what was committed" >&2
  fi
  rm -rf "$dst"
}

echo "crash-loop: writing a $SIZE_MIB MiB checkpoint..." >&2
head -c $((SIZE_MIB * mib)) /dev/urandom >"$ckpt/model.safetensors"
echo '{"step": 0}' >"$ckpt/trainer_state.json"
note_tails
"$work/baton" checkpoint commit "$ckpt" >/dev/null
[ -d "$chunks" ] || { echo "crash-loop: no chunk objects in $chunks: where does versitygw keep them?" >&2; exit 1; }

trials=0 killed=0 finished=0 published=0 unrestorable=0 failed_commits=0
start=$(date +%s)
for trial in $(seq "$N"); do
  trials=$trial
  mutate
  before=$(latest_seq)
  "$work/baton" checkpoint commit "$ckpt" >"$work/commit.log" 2>&1 &
  commit_pid=$!
  if [ $((RANDOM % 6)) -ne 0 ]; then
    ms=$((100 + RANDOM % 301))
    sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
    kill -KILL "$commit_pid" 2>/dev/null || true
  fi
  status=0
  { wait "$commit_pid"; } 2>/dev/null || status=$? # no "Killed" line from bash
  commit_pid=
  case $status in
    0) finished=$((finished + 1)) ;;
    137) killed=$((killed + 1)) ;;
    *) echo "crash-loop: trial $trial: the commit failed by itself (exit $status, $what): $(tail -n1 "$work/commit.log")" >&2 ;;
  esac
  count_torn
  mid=$(latest_seq)
  if [ "$mid" -gt "$before" ]; then
    published=$((published + 1))
    check_restore "$trial" "$mid"
  fi
  if ! "$work/baton" checkpoint commit "$ckpt" >"$work/commit.log" 2>&1; then
    failed_commits=$((failed_commits + 1))
    echo "crash-loop: trial $trial: the normal commit failed ($what): $(tail -n1 "$work/commit.log")" >&2
    continue
  fi
  published=$((published + 1))
  check_restore "$trial" "$(latest_seq)"
  count_torn
  if [ $((trial % 10)) -eq 0 ]; then
    echo "crash-loop: $trial/$N trials, $killed killed, $published published, $unrestorable unrestorable, ${#torn[@]} torn objects seen" >&2
  fi
done

echo "crash-loop: trials=$trials killed=$killed finished=$finished published=$published unrestorable=$unrestorable failed_commits=$failed_commits torn_objects_seen=${#torn[@]} driver=$DRIVER seed=$SEED time=$(($(date +%s) - start))s"
[ "$unrestorable" -eq 0 ] && [ "$failed_commits" -eq 0 ]
