#!/usr/bin/env bash
# How much a checkpoint commit slows a trainer that keeps every core busy (a
# data loader does), and what baton's --nice changes (issue 15, second
# measure; docs/checkpoint-format.md, Commits and the trainer's CPU).
#
# The trainer is Python: one worker process per core (nproc), each doing
# steps of pure CPU work and counting them in a shared memory-mapped file
# that this script reads directly. Each round starts, for each niceness of
# NICES in turn (the order turning from round to round), a fresh
# `baton run --nice N` of that trainer on a fresh file store, and once the
# trainer runs:
#
#   idle     the trainer's steps per second over WINDOW seconds, baton idle
#            (telemetry, metrics and timed commits off);
#   commit   `baton checkpoint commit`, through the trainer's agent socket,
#            commits SIZE_MIB MiB of new random data (hard-linked into the
#            checkpoint directory first, so that writing it costs nothing
#            here). While it runs, baton is stopped (SIGSTOP) and continued
#            (SIGCONT) every SLICE seconds: the trainer's steps per second
#            in the slices where baton ran are "with the commit", those in
#            the slices where it was stopped "without", measured a second
#            apart. On a machine shared with other work that comes and goes,
#            this pairing is what keeps the comparison fair; the idle
#            window before the commit is there as a check.
#
# A round's slowdown is 1 - with/without. The table shows, per niceness,
# the median over the rounds and their spread, the steps per second, the
# time the commit ran (the slices where baton ran), baton's CPU time during
# it (user + system, /proc/PID/stat), the steps the trainer lost to it
# ((without - with) x that time) and baton's peak RSS (VmHWM). Every round
# checks that the trainer runs at this script's niceness and baton's main
# thread at N. The store lives on tmpfs (/dev/shm, else TMPDIR): the
# point is CPU, and there all of a commit's work is baton's own (a disk's
# writeback would run in kernel threads at nice 0; an S3 store adds TLS and
# HTTP, also baton's).
#
# Usage: scripts/bench-cpu-steal.sh
#   ROUNDS=5 NICES="0 19" WINDOW=5 SLICE=0.5 SIZE_MIB=1024 by default; BATON=PATH measures that
#   binary instead of building one; KEEP=1 keeps the work directory
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
NICES=${NICES:-0 19}
WINDOW=${WINDOW:-5}
SLICE=${SLICE:-0.5}
SIZE_MIB=${SIZE_MIB:-1024}
read -r -a nices <<<"$NICES"

work=$(mktemp -d -t baton-cpusteal.XXXXXX)
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
stores=$(mktemp -d -p "$shm" baton-cpusteal-store.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work" "$stores"' EXIT
if [ -n "${BATON:-}" ]; then cp "$BATON" "$work/baton"; else scripts/build.sh "$work/baton"; fi
cores=$(nproc)

cat >"$work/trainer.py" <<'PY'
# A CPU-bound trainer: WORKERS forked processes doing steps of pure Python
# work, each counting its steps in its slot of COUNTERS (a shared mapping);
# the main process writes its agent socket to SOCK and waits for SIGTERM.
import mmap, os, signal, sys
workers, counters, sock = int(sys.argv[1]), sys.argv[2], sys.argv[3]
fd = os.open(counters, os.O_RDWR | os.O_CREAT)
os.ftruncate(fd, 8 * workers)
counts = memoryview(mmap.mmap(fd, 8 * workers)).cast("Q")
pids = []
for i in range(workers):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        n = 0
        while True:
            acc = 0
            for k in range(20000):
                acc += k
            n += 1
            counts[i] = n
    pids.append(pid)
def stop(*_):
    for p in pids:
        os.kill(p, signal.SIGKILL)
        os.waitpid(p, 0)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
with open(sock + ".tmp", "w") as f:
    f.write(os.environ["BATON_AGENT_SOCKET"])
os.rename(sock + ".tmp", sock)
while True:
    signal.pause()
PY

cat >"$work/round.py" <<'PY'
# One measurement: baton run of the trainer at one niceness, the idle
# window, the sliced commit; prints one JSON line.
import json, mmap, os, signal, subprocess, sys, time
baton, nice, d, pool, cores, window, slice_s, trainer = sys.argv[1:9]
cores, window, slice_s = int(cores), float(window), float(slice_s)
ckpt, counters, sock = os.path.join(d, "ckpt"), os.path.join(d, "counters"), os.path.join(d, "sock")
os.makedirs(ckpt)
log = open(os.path.join(d, "baton.log"), "w")
p = subprocess.Popen([baton, "run", "--store", "file://" + os.path.join(d, "store"), "--run", "steal",
                      "--checkpoint-dir", ckpt, "--nice", nice, "--checkpoint-interval", "0", "--telemetry-interval", "0",
                      "--metrics-addr=", "--log-format", "json", "--", "python3", trainer, str(cores), counters, sock],
                     stdout=log, stderr=log)
def fail(msg):
    sys.exit(f"{msg}\n" + open(os.path.join(d, "baton.log")).read())
c = None  # the commit's client
try:
    for _ in range(600):
        if os.path.exists(sock):
            break
        if p.poll() is not None:
            fail("baton run ended before the trainer was ready")
        time.sleep(0.05)
    else:
        fail("the trainer did not start")
    fd = os.open(counters, os.O_RDONLY)
    counts = memoryview(mmap.mmap(fd, 8 * cores, prot=mmap.PROT_READ)).cast("Q")
    total = lambda: sum(counts)
    def stat(pid):
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    def parent(pid):
        try:
            return int(stat(pid)[1])
        except (OSError, IndexError):
            return 0
    kids = [int(t) for t in os.listdir("/proc") if t.isdigit() and parent(int(t)) == p.pid]
    tnice, bnice = int(stat(kids[0])[16]), int(stat(p.pid)[16])
    if tnice != os.getpriority(os.PRIO_PROCESS, 0):
        fail(f"the trainer runs at nice {tnice}, not this script's {os.getpriority(os.PRIO_PROCESS, 0)}")
    tick = os.sysconf("SC_CLK_TCK")
    cpu = lambda: (int(stat(p.pid)[11]) + int(stat(p.pid)[12])) / tick
    workers = [int(t) for t in os.listdir("/proc") if t.isdigit() and parent(int(t)) == kids[0]]
    if len(workers) != cores:
        fail(f"{len(workers)} workers, want {cores}")
    wcpu = lambda: sum(int(stat(w)[11]) + int(stat(w)[12]) for w in workers) / tick

    time.sleep(2)  # the workers get going
    t0, n0 = time.monotonic(), total()
    time.sleep(window)
    idle = (total() - n0) / (time.monotonic() - t0)

    os.link(pool, os.path.join(ckpt, "model.bin"))
    cpu0 = cpu()
    c = subprocess.Popen([baton, "checkpoint", "commit"], env=dict(os.environ, BATON_AGENT_SOCKET=open(sock).read()),
                         stdout=subprocess.DEVNULL)
    ran, stopped = [0.0, 0, 0.0, 0.0], [0.0, 0, 0.0, 0.0]  # seconds, steps, trainer's and baton's CPU seconds
    running, done = True, False
    tp, np_, wp, bp = time.monotonic(), total(), wcpu(), cpu()
    while not done:
        end = tp + slice_s
        while time.monotonic() < end:
            if c.poll() is not None:
                done = True
                break
            time.sleep(0.002)
        t, n, w, b = time.monotonic(), total(), wcpu(), cpu()
        acc = ran if running else stopped
        for i, x in enumerate((t - tp, n - np_, w - wp, b - bp)):
            acc[i] += x
        if not done:
            os.kill(p.pid, signal.SIGSTOP if running else signal.SIGCONT)
            running = not running
        tp, np_, wp, bp = t, n, w, b
    if not running:
        os.kill(p.pid, signal.SIGCONT)
    baton_cpu = cpu() - cpu0
    if stopped[0] == 0:  # a commit shorter than a slice: one slice without it, after it
        os.kill(p.pid, signal.SIGSTOP)
        tp, np_, wp = time.monotonic(), total(), wcpu()
        time.sleep(slice_s)
        stopped = [time.monotonic() - tp, total() - np_, wcpu() - wp, 0.0]
        os.kill(p.pid, signal.SIGCONT)
    with open(f"/proc/{p.pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
    if c.returncode != 0:
        fail(f"baton checkpoint commit: exit {c.returncode}")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=120)
    if '"msg":"checkpoint committed"' not in open(os.path.join(d, "baton.log")).read():
        fail("no commit in baton's log")
    print(json.dumps(dict(nice=int(nice), tnice=tnice, bnice=bnice, idle=idle, without=stopped[1] / stopped[0],
                          with_=ran[1] / ran[0], ran=ran[0], stopped=stopped[0], cpu=baton_cpu, rss=rss,
                          share=ran[3] / max(ran[2] + ran[3], 1e-9), tcpu_with=ran[2] / ran[0], tcpu_without=stopped[2] / stopped[0])))
finally:
    # Whatever happened, baton and its trainer go: continued if stopped,
    # then SIGTERM, which baton forwards to the trainer's group.
    if c is not None and c.poll() is None:
        c.kill()
    if p.poll() is None:
        os.kill(p.pid, signal.SIGCONT)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
PY

echo "writing ${SIZE_MIB} MiB of random data..." >&2
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$stores/pool.bin"

: >"$work/results"
load0=$(cut -d' ' -f1 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
  order=("${nices[@]}")
  if [ $((round % 2)) = 0 ]; then
    order=()
    for ((i = ${#nices[@]} - 1; i >= 0; i--)); do order+=("${nices[i]}"); done
  fi
  for nice in "${order[@]}"; do
    echo "round $round/$ROUNDS: baton at nice $nice" >&2
    d=$stores/r$round-n$nice
    python3 "$work/round.py" "$work/baton" "$nice" "$d" "$stores/pool.bin" "$cores" "$WINDOW" "$SLICE" "$work/trainer.py" |
      sed "s/^{/{\"round\": $round, /" >>"$work/results"
    rm -rf "$d"
  done
done

python3 - "$work/results" "$cores" "$SIZE_MIB" "$SLICE" "$load0" "$shm" <<'PY'
import collections, json, statistics, sys
results, cores, size, slice_s, load0, shm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
rows = collections.defaultdict(list)
for line in open(results):
    r = json.loads(line)
    r["slow"] = 100 * (1 - r["with_"] / r["without"])
    r["lost"] = (r["without"] - r["with_"]) * r["ran"]
    rows[r["nice"]].append(r)
load1 = open("/proc/loadavg").read().split()[0]
n = len(next(iter(rows.values())))
print(f"a trainer busy on all {cores} cores (one Python worker each); baton commits {size} MiB of new data to a file store "
      f"on {shm}; steps/s with the commit running and without (baton stopped), in alternate {slice_s} s slices; "
      f"median of {n} rounds; load average {load0} at the start, {load1} at the end")
print(f"{'nice':>4} {'idle st/s':>9} {'without':>8} {'with':>8} {'slowdown':>8} {'spread':>16} {'commit s':>8} "
      f"{'baton CPU s':>11} {'CPU share':>9} {'steps lost':>10} {'peak RSS MiB':>12}")
for nice in sorted(rows):
    r = rows[nice]
    med = lambda k: statistics.median(x[k] for x in r)
    print(f"{nice:4d} {med('idle'):9.0f} {med('without'):8.0f} {med('with_'):8.0f} {med('slow'):7.1f}% "
          f"{min(x['slow'] for x in r):6.1f}% .. {max(x['slow'] for x in r):5.1f}% {med('ran'):8.1f} {med('cpu'):11.2f} "
          f"{100 * med('share'):8.1f}% {med('lost'):10.0f} {max(x['rss'] for x in r) / 1024:12.0f}")
print("CPU share: baton's part of the CPU time that baton and the trainer got while the commit ran")
print("every round (slowdown, seconds the commit ran, baton's CPU seconds, its CPU share, the trainer's cores with/without):")
for nice in sorted(rows):
    r = rows[nice]
    print(f"  nice {nice:2d}: " + ", ".join(f"r{x['round']} {x['slow']:.1f}% {x['ran']:.1f}s {x['cpu']:.2f}s {100 * x['share']:.1f}% "
                                        f"{x['tcpu_with']:.2f}/{x['tcpu_without']:.2f}" for x in r)
          + f"  (trainer at nice {r[0]['tnice']}, baton's main thread at {r[0]['bnice']})")
PY
