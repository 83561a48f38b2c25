#!/usr/bin/env bash
# Benchmark of baton checkpoint against s5cmd (when there is one: $S5CMD or
# ../shared/tools/s5cmd) and rclone copy on one local versitygw, in the same
# run, on a ~1 GiB checkpoint shaped like a real one:
#
#   model.safetensors  ~690 MiB: an 8-byte little-endian header length, a JSON
#                      header of BF16 tensors (embeddings and 11 transformer
#                      blocks, each block's tensors contiguous), then the data
#   optimizer.pt       300 MiB
#
# The second state is a copy of the first in which whole transformer blocks,
# chosen at random and covering at least 30% of the model file, and all of the
# optimizer are rewritten in place with new bytes (a fine-tune with part of its
# blocks frozen). Each round commits the first state and then the second to a
# fresh prefix, and restores the second into an empty directory, compared
# byte for byte with its source; rclone copy of the same directories to fresh
# prefixes is the peer of each commit, rclone copy back the peer of the
# restore; s5cmd cp uploads the first state, s5cmd sync the second over it,
# and s5cmd cp downloads it. The tools' order turns from round to round.
#
# The table shows the bytes the second commit uploaded against the bytes
# changed (goal: at most 1.1x), the median wall times and their ratio to
# rclone (below 1 means baton is faster; goal: at most 1) and the largest
# peak RSS. With SWEEP=1 (the default) it also commits the two states with 1,
# 4 and 16 MiB chunks and shows what the second commit uploaded.
#
# baton restore fsyncs every file before it moves the directory into place;
# rclone does not, so the restore is also compared with rclone copy followed
# by an fsync of the files it wrote (coreutils sync FILE...).
#
# With ENCRYPT=1 (the default) an encrypted baton (--encryption-key, a fresh
# random key) commits and restores beside the plain one, to its own prefix,
# and the table shows its cost: encrypted time over plain time.
#
# Usage: scripts/bench-checkpoint.sh      (ROUNDS=3 RESTORES=3 WORKERS=16 SWEEP=1 ENCRYPT=1 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-16}
SWEEP=${SWEEP:-1}
RESTORES=${RESTORES:-3}
ENCRYPT=${ENCRYPT:-1}

. scripts/bench-env.sh

echo "generating the checkpoint..." >&2
python3 - "$work/ckpt" <<'PY'
import json, math, os, struct, sys
out = sys.argv[1]
os.makedirs(out)
hidden, inter, blocks, vocab = 1536, 4096, 11, 32000
tensors = [("model.embed_tokens.weight", [vocab, hidden])]
for i in range(blocks):
    p = f"model.layers.{i}."
    tensors += [(p + "input_layernorm.weight", [hidden])]
    tensors += [(p + f"self_attn.{x}_proj.weight", [hidden, hidden]) for x in "qkvo"]
    tensors += [(p + "post_attention_layernorm.weight", [hidden]),
                (p + "mlp.gate_proj.weight", [inter, hidden]), (p + "mlp.up_proj.weight", [inter, hidden]),
                (p + "mlp.down_proj.weight", [hidden, inter])]
tensors += [("model.norm.weight", [hidden])]
header, off = {"__metadata__": {"format": "pt"}}, 0
for name, shape in tensors:
    n = 2 * math.prod(shape)  # BF16
    header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
    off += n
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
def write_random(f, n):
    while n > 0:
        k = min(n, 16 << 20)
        f.write(os.urandom(k))
        n -= k
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    write_random(f, off)
with open(os.path.join(out, "optimizer.pt"), "wb") as f:
    write_random(f, 300 << 20)
PY
echo "checkpoint: $(du -sh "$work/ckpt" | cut -f1): $(find "$work/ckpt" -type f -printf '%f %s  ' | sort)" >&2

# rclone reads its remote from the environment. Debian's rclone 1.60 fails on
# AWS_CA_BUNDLE ("HTTPClient's transport unsupported type"), so it runs without it.
export RCLONE_CONFIG_GW_TYPE=s3 RCLONE_CONFIG_GW_PROVIDER=Other RCLONE_CONFIG_GW_ENDPOINT="$endpoint" \
  RCLONE_CONFIG_GW_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" RCLONE_CONFIG_GW_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
  RCLONE_CONFIG_GW_REGION=us-east-1 RCLONE_CONFIG=/dev/null
rclone_flags=(--transfers "$WORKERS" --checkers "$WORKERS" --multi-thread-streams "$WORKERS" --multi-thread-cutoff 16M
  --s3-upload-concurrency "$WORKERS" --s3-chunk-size 16M --s3-upload-cutoff 16M)
baton_flags=(--workers "$WORKERS")
# The encrypted runs' key, in the environment rather than on a command line.
enc_key=$(head -c 32 /dev/urandom | base64)

# measure LABEL CMD...: runs CMD, appends "LABEL seconds peak_kib" to results.
# Dirty pages of the previous run are flushed first, so no run pays for
# another's writeback.
measure() {
  local label=$1; shift
  sync
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  echo "$label $(cat "$work/time")" >>"$work/results"
}

# same DIR REF: fails unless DIR holds exactly the files of REF, byte for byte.
same() {
  [ "$(ls "$1")" = "$(ls "$2")" ] || { echo "$1 holds other files than $2" >&2; exit 1; }
  for f in "$2"/*; do
    cmp -s "$f" "$1/$(basename "$f")" || { echo "$1/$(basename "$f") differs from $f" >&2; exit 1; }
  done
}

# newbytes RUN PREFIX: new_bytes of the run's latest checkpoint.
newbytes() {
  "$work/baton" checkpoint ls --json --run "$1" --store "s3://bench/$2?endpoint=$endpoint" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)[-1]["new_bytes"])'
}

echo "rewriting 30% of the model's blocks and all of the optimizer in place, in a copy..." >&2
cp -r "$work/ckpt" "$work/ckpt2"
python3 - "$work/ckpt2" >"$work/changed" <<'PY'
import collections, json, os, random, struct, sys
d = sys.argv[1]
model = os.path.join(d, "model.safetensors")
size = os.path.getsize(model)
with open(model, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
base = 8 + n
blocks = collections.defaultdict(list)
for name, t in header.items():
    if name.startswith("model.layers."):
        blocks[int(name.split(".")[2])].append(t["data_offsets"])
order = sorted(blocks)
random.Random(7).shuffle(order)
changed, picked = 0, []
with open(model, "r+b") as f:  # in place: no truncation
    for b in order:
        if changed >= 0.3 * size:
            break
        picked.append(b)
        for begin, end in blocks[b]:
            f.seek(base + begin)
            f.write(os.urandom(end - begin))
            changed += end - begin
opt = os.path.join(d, "optimizer.pt")
osize = os.path.getsize(opt)
with open(opt, "r+b") as f:
    for off in range(0, osize, 16 << 20):
        f.write(os.urandom(min(16 << 20, osize - off)))
print(changed + osize, changed, size, len(picked), len(blocks))
PY
read -r changed model_changed model_size picked nblocks <"$work/changed"
echo "rewrote $picked of $nblocks blocks ($model_changed of $model_size bytes of the model) and the optimizer: $changed bytes" >&2

# Each round commits both states to a fresh prefix and copies them with
# rclone to fresh prefixes, then restores the second; every other round
# rclone goes first. A round's objects are deleted from the gateway's
# directory at its end.
: >"$work/uploaded"
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  store="s3://bench/ckpt-$round?endpoint=$endpoint"
  tools=(baton rclone)
  [ $((round % 2)) = 0 ] && tools=(rclone baton)
  [ "$ENCRYPT" = 1 ] && { [ $((round % 2)) = 0 ] && tools=(baton-enc "${tools[@]}") || tools+=(baton-enc); }
  [ -n "$s5cmd" ] && tools+=(s5cmd)
  for state in 1 2; do
    src=$work/ckpt
    if [ "$state" = 2 ]; then
      src=$work/ckpt2
      # The second state is written after the first was uploaded, as a
      # trainer's next save is: s5cmd sync uploads only files newer than
      # their objects (it compares no content).
      find "$src" -type f -exec touch {} +
    fi
    for tool in "${tools[@]}"; do
      case $tool in
        baton) measure "commit$state baton" "$work/baton" checkpoint commit "${baton_flags[@]}" --run bench --store "$store" "$src" ;;
        baton-enc) measure "commit$state baton-enc" env BATON_ENCRYPTION_KEY="$enc_key" "$work/baton" checkpoint commit "${baton_flags[@]}" \
          --run bench --store "s3://bench/enc-$round?endpoint=$endpoint" "$src" ;;
        rclone) measure "commit$state rclone" env -u AWS_CA_BUNDLE rclone copy "${rclone_flags[@]}" "$src" "gw:bench/rclone-$round-$state" ;;
        s5cmd)
          verb="cp"
          [ "$state" = 1 ] || verb=sync # the second state over the first, as a user's sync script would
          measure "commit$state s5cmd" "$s5cmd" --endpoint-url "$endpoint" --numworkers "$WORKERS" "$verb" "$src/" "s3://bench/s5cmd-$round/" ;;
      esac
    done
  done
  newbytes bench "ckpt-$round" >>"$work/uploaded"
  # Restores are short and this machine's page-cache writes vary from run to
  # run, so each round restores RESTORES times, the tool order turning each
  # time.
  order=()
  for k in $(seq "$RESTORES"); do
    if [ $(((round + k) % 2)) = 0 ]; then order+=(baton rclone rclone-fsync); else order+=(rclone baton rclone-fsync); fi
    [ -n "$s5cmd" ] && order+=(s5cmd)
    [ "$ENCRYPT" = 1 ] && order+=(baton-enc)
  done
  for tool in "${order[@]}"; do
    dst="$work/restore-$tool"
    # Every restore starts from the same state of memory: on this VM a write
    # into the page cache right after the deletion of a big file can be up to
    # 3x slower (the freed memory seems to go back to the hypervisor), so
    # each restore follows the deletion of one scratch GiB written the same
    # way, never the other tool's copy.
    rm -rf "$work"/restore-*
    dd if=/dev/zero of="$work/settle" bs=4M count=256 conv=fsync status=none
    rm -f "$work/settle"
    case $tool in
      baton) measure "restore baton" "$work/baton" checkpoint restore "${baton_flags[@]}" --run bench --store "$store" "$dst" ;;
      baton-enc) measure "restore baton-enc" env BATON_ENCRYPTION_KEY="$enc_key" "$work/baton" checkpoint restore "${baton_flags[@]}" \
        --run bench --store "s3://bench/enc-$round?endpoint=$endpoint" "$dst" ;;
      rclone) measure "restore rclone" env -u AWS_CA_BUNDLE rclone copy "${rclone_flags[@]}" "gw:bench/rclone-$round-2" "$dst" ;;
      # The durable peer: rclone copy, then fsync of the files it wrote (baton
      # restore fsyncs every file before it moves the directory into place).
      rclone-fsync) # shellcheck disable=SC2016 # the inner script expands its own arguments
        measure "restore rclone-fsync" env -u AWS_CA_BUNDLE sh -c \
          'rclone copy "$@" && find "$0" -type f -exec sync {} +' "$dst" "${rclone_flags[@]}" "gw:bench/rclone-$round-2" "$dst" ;;
      s5cmd) measure "restore s5cmd" "$s5cmd" --endpoint-url "$endpoint" --numworkers "$WORKERS" cp "s3://bench/s5cmd-$round/*" "$dst/" ;;
    esac
    same "$dst" "$work/ckpt2"
  done
  rm -rf "$work"/restore-* "$work/gw/bench/ckpt-$round" "$work/gw/bench/rclone-$round-"* "$work/gw/bench/s5cmd-$round" "$work/gw/bench/enc-$round"
done
uploaded=$(sort -n "$work/uploaded" | tail -n1)
[ "$(sort -u "$work/uploaded" | wc -l)" = 1 ] || echo "warning: the second commit uploaded different amounts: $(tr '\n' ' ' <"$work/uploaded")" >&2

: >"$work/sweep"
if [ "$SWEEP" = 1 ]; then
  for cs in 1 4 16; do
    echo "chunk size $cs MiB: two commits..." >&2
    sweep_store="s3://bench/sweep-$cs?endpoint=$endpoint"
    "$work/baton" checkpoint commit "${baton_flags[@]}" --chunk-size "${cs}MiB" --run bench --store "$sweep_store" "$work/ckpt" >/dev/null
    sync
    /usr/bin/time -f "%e %M" -o "$work/time" "$work/baton" checkpoint commit "${baton_flags[@]}" --chunk-size "${cs}MiB" \
      --run bench --store "$sweep_store" "$work/ckpt2" >/dev/null
    echo "$cs $(newbytes bench "sweep-$cs") $(cat "$work/time")" >>"$work/sweep"
    rm -rf "$work/gw/bench/sweep-$cs"
  done
fi

python3 - "$work/results" "$work/sweep" "$WORKERS" "$changed" "$uploaded" "$model_changed" "$model_size" "$picked" "$nblocks" <<'PY'
import collections, statistics, sys
results, sweep, workers = sys.argv[1], sys.argv[2], sys.argv[3]
changed, uploaded, model_changed, model_size, picked, nblocks = map(int, sys.argv[4:])
runs = collections.defaultdict(list)
for line in open(results):
    op, tool, secs, kib = line.split()
    runs[(op, tool)].append((float(secs), int(kib)))
MiB = 1 << 20
print(f"baton checkpoint vs s5cmd and rclone copy on one local versitygw (s5cmd when present), {workers} workers each, "
      f"median of {len(runs[('commit1', 'baton')])} runs ({len(runs[('restore', 'baton')])} for restores)")
print(f"second commit: {changed / MiB:.1f} MiB changed ({picked} of {nblocks} blocks = "
      f"{100 * model_changed / model_size:.1f}% of the model, and all of the optimizer); "
      f"baton uploaded {uploaded / MiB:.1f} MiB = {uploaded / changed:.3f}x the changed bytes (goal <= 1.1)")
peers = [t for t in ("s5cmd", "rclone") if runs[("commit1", t)]]
print(f"{'op':8} {'baton s':>8}" + "".join(f" {p + ' s':>9}" for p in peers) + "".join(f" {'vs ' + p:>9}" for p in peers)
      + f" {'baton RSS MiB':>13}" + "".join(f" {p + ' RSS MiB':>14}" for p in peers))
names = {"commit1": "commit 1", "commit2": "commit 2", "restore": "restore"}
for op in ("commit1", "commit2", "restore"):
    b = runs[(op, "baton")]
    bs = statistics.median(s for s, _ in b)
    ps = {p: statistics.median(s for s, _ in runs[(op, p)]) for p in peers}
    rss = {p: max(k for _, k in runs[(op, p)]) / 1024 for p in peers}
    print(f"{names[op]:8} {bs:8.2f}" + "".join(f" {ps[p]:9.2f}" for p in peers) + "".join(f" {bs / ps[p]:9.2f}" for p in peers)
          + f" {max(k for _, k in b) / 1024:13.0f}" + "".join(f" {rss[p]:14.0f}" for p in peers))
d = runs[("restore", "rclone-fsync")]
ds = statistics.median(s for s, _ in d)
bs = statistics.median(s for s, _ in runs[("restore", "baton")])
print(f"{'restore':8} {bs:8.2f} {ds:9.2f} {bs / ds:9.2f}   against rclone copy + fsync of the files it wrote")
if runs[("commit1", "baton-enc")]:
    print("encrypted (--encryption-key) against plain baton, same store, same rounds (goal: at most 1.10):")
    for op in ("commit1", "commit2", "restore"):
        e = statistics.median(s for s, _ in runs[(op, "baton-enc")])
        b = statistics.median(s for s, _ in runs[(op, "baton")])
        rss = max(k for _, k in runs[(op, "baton-enc")]) / 1024
        print(f"  {names[op]:8} {e:6.2f} s vs {b:6.2f} s = {e / b:5.2f}x   peak RSS {rss:.0f} MiB")
print("every run, in round order (s):")
for op in ("commit1", "commit2", "restore"):
    for tool in ("baton", "baton-enc", "s5cmd", "rclone", "rclone-fsync"):
        if runs[(op, tool)]:
            print(f"  {names[op]:8} {tool:12} " + " ".join(f"{s:.2f}" for s, _ in runs[(op, tool)]))
rows = sorted(tuple(map(float, l.split())) for l in open(sweep))
if rows:
    print("second commit by chunk size (one run each):")
    print(f"{'chunk MiB':>9} {'uploaded MiB':>12} {'vs changed':>10} {'wall s':>7} {'RSS MiB':>8}")
    for cs, up, secs, kib in rows:
        print(f"{cs:9.0f} {up / MiB:12.1f} {up / changed:10.3f} {secs:7.2f} {kib / 1024:8.0f}")
PY
