#!/usr/bin/env python3
"""A toy trainer that keeps baton's contract with the trainer (Python 3.11, standard library only).

It is the trainer of baton's end-to-end tests and a way to try baton by hand: it "trains" by sleeping, saves
checkpoints the way the Hugging Face Trainer does, resumes from them, and can crash, leave orphan processes and
ask the agent to commit, on demand. See examples/README.md.

Environment (set by `baton run`; every one is optional, so the script also runs on its own):
  BATON_CHECKPOINT_DIR  where checkpoints are saved and resumed from (else --checkpoint-dir, ./checkpoints)
  BATON_RESUME          "1" when baton restored a checkpoint into that directory, else "0" (only logged: the
                        directory itself decides, since a host that kept its disk has a checkpoint too)
  BATON_ATTEMPT         0 on the first start, 1, 2, ... on baton's restarts (see --crash-times)
  BATON_RUN_ID, BATON_PLATFORM   logged and recorded in state.json
  BATON_AGENT_SOCKET    set when the agent takes "baton checkpoint commit" requests (see --notify)
  BATON_COMMIT_CMD      the command --notify runs after each save (default "baton checkpoint commit")

Checkpoint directory:
  checkpoint-<step>/state.json  {"step", "loss", "rng", "model_bytes", "run_id", "platform", "attempt"}
  checkpoint-<step>/model.bin   --model-mib MiB of incompressible bytes that are a function of the step alone,
                                checked on resume
  latest                        the name of the newest checkpoint directory
A save writes .tmp-checkpoint-<step>/, fsyncs it, renames it into place, then replaces `latest` the same way,
so neither a reader nor a SIGKILL ever sees half a checkpoint; only the newest --keep directories are kept.
Resuming takes the directory `latest` names, or the highest checkpoint-<step> if `latest` is missing, after
removing what a kill in the middle of a save left (.tmp-*, .trash-*, .latest.tmp).

Stdout, one flushed line each: first exactly one of "resumed from step=N" / "starting fresh"; with --orphans
"orphans pids=P,Q,..."; then "step=N loss=X" per step; last one of "done step=N", "saved on SIGTERM at step=N" (or SIGINT),
"crash at step=K". The loss depends only on --seed and the step, so an interrupted run prints the same
losses as an uninterrupted one. Other messages go to stderr.
Exit status: 0 done or stopped by SIGTERM/SIGINT, 2 bad usage, 3 simulated crash, 4 damaged checkpoint.
"""
import argparse, hashlib, json, math, os, re, shlex, shutil, signal, subprocess, sys, time

MIB = 1 << 20
M64 = (1 << 64) - 1
CHECKPOINT = re.compile(r"checkpoint-(\d+)")
stop_signal = None  # the name of the signal that asked us to stop, once one did


def say(line):
    print(line, flush=True)


def warn(msg):
    print(f"trainer: {msg}", file=sys.stderr, flush=True)


def on_signal(signum, _frame):
    global stop_signal
    stop_signal = signal.Signals(signum).name  # acted on between steps: never in the middle of a save


def nap(seconds):
    """Sleeps, but returns within 20 ms of a stop signal."""
    end = time.monotonic() + seconds
    while not stop_signal and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.02))


def next_rng(x):  # xorshift64: the whole random state is one integer, saved in state.json
    x ^= (x << 13) & M64
    x ^= x >> 7
    return x ^ ((x << 17) & M64)


def model_blocks(step, nbytes):
    """model.bin at a step, in 1 MiB blocks."""
    for i in range((nbytes + MIB - 1) // MIB):
        yield hashlib.shake_256(f"model:{step}:{i}".encode()).digest(min(MIB, nbytes - i * MIB))


def write_file(path, blocks):
    with open(path, "wb") as f:
        for b in blocks:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoints(ckdir):
    """(step, name) of every checkpoint-<step> directory, oldest first."""
    found = [(int(m[1]), n) for n in os.listdir(ckdir) if (m := CHECKPOINT.fullmatch(n))]
    return sorted(c for c in found if os.path.isdir(os.path.join(ckdir, c[1])))


def save(ckdir, state, keep):
    name = f"checkpoint-{state['step']}"
    tmp, final = os.path.join(ckdir, f".tmp-{name}"), os.path.join(ckdir, name)
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp)
    write_file(os.path.join(tmp, "model.bin"), model_blocks(state["step"], state["model_bytes"]))
    write_file(os.path.join(tmp, "state.json"), [json.dumps(state, indent=1).encode() + b"\n"])
    fsync_dir(tmp)
    shutil.rmtree(final, ignore_errors=True)  # only there if an earlier attempt saved this very step
    os.rename(tmp, final)
    write_file(os.path.join(ckdir, ".latest.tmp"), [f"{name}\n".encode()])
    os.replace(os.path.join(ckdir, ".latest.tmp"), os.path.join(ckdir, "latest"))
    fsync_dir(ckdir)
    others = [n for s, n in checkpoints(ckdir) if n != name]
    for old in others[:max(0, len(others) - (keep - 1))]:
        trash = os.path.join(ckdir, f".trash-{old}")  # renamed first, so nobody sees half a deletion
        os.rename(os.path.join(ckdir, old), trash)
        shutil.rmtree(trash)


def load(ckdir):
    """The state of the newest checkpoint in ckdir, None if there is none; exits 4 if it is damaged."""
    os.makedirs(ckdir, exist_ok=True)
    for n in os.listdir(ckdir):  # what a kill in the middle of a save or a deletion left behind
        if n.startswith((".tmp-", ".trash-")) or n == ".latest.tmp":
            p = os.path.join(ckdir, n)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
    try:
        with open(os.path.join(ckdir, "latest")) as f:
            name = f.read().strip()
    except FileNotFoundError:
        name = ""
    if not (CHECKPOINT.fullmatch(name) and os.path.isdir(os.path.join(ckdir, name))):
        found = checkpoints(ckdir)
        if not found:
            return None
        if name:
            warn(f"{ckdir}/latest names {name!r}, which is not there; taking {found[-1][1]}")
        name = found[-1][1]
    path = os.path.join(ckdir, name)
    try:
        with open(os.path.join(path, "state.json")) as f:
            state = json.load(f)
        step, nbytes = state["step"], state["model_bytes"]
        if step != int(CHECKPOINT.fullmatch(name)[1]):
            raise ValueError(f"state.json says step {step}")
        with open(os.path.join(path, "model.bin"), "rb") as f:
            if os.fstat(f.fileno()).st_size != nbytes or any(f.read(len(b)) != b for b in model_blocks(step, nbytes)):
                raise ValueError(f"model.bin is not the model of step {step}")
        state["rng"] = int(state["rng"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        warn(f"damaged checkpoint {path}: {e}")
        sys.exit(4)
    return state


def spawn_orphans(n, seconds):
    """Starts n `sleep` processes that are not our children (double fork), so they are re-parented to PID 1 or
    the nearest subreaper. They stay in our process group, so a signal to the group reaches them, and hold
    only /dev/null, so they keep no pipe of baton's open. Returns their process IDs."""
    r, w = os.pipe()
    for _ in range(n):
        if (child := os.fork()) == 0:
            code = 0
            try:
                if (grandchild := os.fork()) == 0:
                    null = os.open(os.devnull, os.O_RDWR)
                    for fd in (0, 1, 2):
                        os.dup2(null, fd)
                    os.closerange(3, 1 << 20)  # whatever we inherited, pipes included
                    os.execvp("sleep", ["sleep", f"{seconds:g}"])
                os.write(w, f"{grandchild}\n".encode())
            except BaseException:
                code = 127
            finally:
                os._exit(code)  # the grandchild, if exec failed, ends here too
        os.waitpid(child, 0)
    os.close(w)
    with os.fdopen(r) as f:
        return [int(p) for p in f.read().split()]


def notify():
    """Runs BATON_COMMIT_CMD after a save; a failure is only a warning, and a stop signal abandons it."""
    cmd = shlex.split(os.environ.get("BATON_COMMIT_CMD") or "baton checkpoint commit")
    try:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=sys.stderr)
    except OSError as e:
        return warn(f"--notify: {e}; training goes on")
    deadline = time.monotonic() + 300
    while p.poll() is None:
        if stop_signal or time.monotonic() > deadline:
            p.kill()
            p.wait()
            return warn(f"--notify: {shlex.join(cmd)} abandoned ({stop_signal or 'over 300 s'})")
        time.sleep(0.02)
    if p.returncode:
        warn(f"--notify: {shlex.join(cmd)} exited with status {p.returncode}; training goes on")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint-dir", default=os.environ.get("BATON_CHECKPOINT_DIR") or "checkpoints",
                    help="where to save and resume (default: $BATON_CHECKPOINT_DIR, else ./checkpoints)")
    ap.add_argument("--steps", type=int, default=100, help="train until this step, counting resumed ones (100)")
    ap.add_argument("--step-seconds", type=float, default=0.05, help="seconds one step sleeps (0.05)")
    ap.add_argument("--save-every", type=int, default=10, help="save every this many steps, and at the last (10)")
    ap.add_argument("--keep", type=int, default=2, help="keep the newest this many checkpoint dirs (2)")
    ap.add_argument("--model-mib", type=float, default=4, help="size of model.bin in MiB; fractions allowed (4)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the loss noise (0)")
    ap.add_argument("--crash-at-step", type=int, metavar="K",
                    help="exit with status 3, printing 'crash at step=K', instead of running step K; a process "
                         "that resumed at step K or later never reaches K, so it does not crash")
    ap.add_argument("--crash-times", type=int, metavar="M",
                    help="with --crash-at-step: crash only while $BATON_ATTEMPT < M, so baton's attempts 0..M-1 "
                         "crash and attempt M runs through (default: every attempt crashes)")
    ap.add_argument("--orphans", type=int, default=0, metavar="N",
                    help="before training, start N `sleep` processes that are not our children (double fork), "
                         "in our process group, with /dev/null as stdio and no other fd")
    ap.add_argument("--orphan-seconds", type=float, default=600, help="how long each orphan sleeps (600)")
    ap.add_argument("--notify", action="store_true",
                    help="after each save (not the one on SIGTERM), run $BATON_COMMIT_CMD "
                         "(default 'baton checkpoint commit'); a failure is a warning")
    args = ap.parse_args()
    for flag, low in ("steps", 0), ("step_seconds", 0), ("save_every", 1), ("keep", 1), ("model_mib", 0), \
                     ("orphans", 0), ("orphan_seconds", 0):
        if getattr(args, flag) < low:
            ap.error(f"--{flag.replace('_', '-')} must be at least {low}")
    return args


def main():
    args = parse_args()
    env = os.environ
    ckdir = os.path.abspath(args.checkpoint_dir)
    attempt = int(env.get("BATON_ATTEMPT") or 0)
    for sig in signal.SIGTERM, signal.SIGINT:
        signal.signal(sig, on_signal)
    warn(f"run={env.get('BATON_RUN_ID', '-')} platform={env.get('BATON_PLATFORM', '-')} attempt={attempt} "
         f"resume={env.get('BATON_RESUME', '-')} dir={ckdir}")
    state = load(ckdir)
    if state:
        say(f"resumed from step={state['step']}")
        saved = state["step"]
    else:
        if env.get("BATON_RESUME") == "1":
            warn(f"BATON_RESUME=1 but {ckdir} holds no checkpoint")
        say("starting fresh")
        state, saved = {"step": 0, "loss": None, "rng": (args.seed * 0x9E3779B97F4A7C15 + 1) & M64 or 1}, None
    state.update(model_bytes=int(args.model_mib * MIB), run_id=env.get("BATON_RUN_ID"),
                 platform=env.get("BATON_PLATFORM"), attempt=attempt)
    if args.orphans:
        say("orphans pids=" + ",".join(map(str, spawn_orphans(args.orphans, args.orphan_seconds))))

    step = state["step"]
    while step < args.steps and not stop_signal:
        if step + 1 == args.crash_at_step and (args.crash_times is None or attempt < args.crash_times):
            say(f"crash at step={step + 1}")
            sys.exit(3)
        nap(args.step_seconds)
        if stop_signal:
            break
        step += 1
        state["rng"] = next_rng(state["rng"])
        loss = 0.1 + 2.0 * math.exp(-step / 40) + 0.02 * (state["rng"] / M64 - 0.5)
        state.update(step=step, loss=round(loss, 6))
        say(f"step={step} loss={loss:.6f}")
        if step % args.save_every == 0 or step == args.steps:
            save(ckdir, state, args.keep)
            saved = step
            if args.notify and not stop_signal:
                notify()
    if stop_signal:
        if saved != step:
            save(ckdir, state, args.keep)
        say(f"saved on {stop_signal} at step={step}")
        return 0
    say(f"done step={step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
