#!/usr/bin/env python3
"""A plain PyTorch training loop that resumes under baton.

    baton run --store s3://bucket/baton --run mlp-1 -- python3 examples/pytorch_loop.py --steps 2000

What makes it resumable (the lines marked "baton:"):
  1. save into $BATON_CHECKPOINT_DIR: one file, written to a temporary name, fsynced and renamed into place,
     so no reader (baton's commit, a resume after a SIGKILL) ever sees half of it;
  2. at start, load that file when it is there: model, optimizer, scheduler, step and RNG states;
  3. on SIGTERM (a stop, a spot reclaim), finish the step, save, exit 0;
  4. optionally, after each save, `baton checkpoint commit`, which returns once the save is in the store.

The model is a small MLP on synthetic data so the example needs nothing but torch; put yours in its place.
With torchrun, only rank 0 saves; every rank loads. Prints "resumed from step=N" or "starting fresh", then
"step=N loss=X" lines, like examples/trainer.py.
"""
import argparse
import os
import random
import signal
import subprocess
import sys

import torch
from torch import nn

CKPT_DIR = os.environ.get("BATON_CHECKPOINT_DIR", "checkpoints")  # baton: where to save and resume
CKPT = os.path.join(CKPT_DIR, "checkpoint.pt")
stop = False


def on_sigterm(signum, _frame):  # baton: a stop is a save, then exit 0
    global stop
    stop = True


def save(step, model, opt, sched):
    """baton: temporary name, fsync, rename: the checkpoint is whole or absent."""
    os.makedirs(CKPT_DIR, exist_ok=True)
    tmp = CKPT + ".tmp"
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": {"python": random.getstate(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    }
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, CKPT)
    dirfd = os.open(CKPT_DIR, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def load(model, opt, sched, device):
    """baton: resume when the directory holds a checkpoint (baton restored it, or this disk kept it)."""
    if not os.path.exists(CKPT):
        return 0
    state = torch.load(CKPT, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    random.setstate(state["rng"]["python"])
    torch.set_rng_state(state["rng"]["torch"].cpu())
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
    return state["step"]


def commit():
    """baton: ask the agent to commit now; only a warning when it cannot."""
    if not os.environ.get("BATON_AGENT_SOCKET"):
        return
    try:
        subprocess.run(["baton", "checkpoint", "commit"], check=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"pytorch_loop: baton checkpoint commit: {e}", file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    random.seed(0)

    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 1)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
    target = torch.randn(64, 1, generator=torch.Generator().manual_seed(1)).to(device)

    step = load(model, opt, sched, device)
    print(f"resumed from step={step}" if step else "starting fresh", flush=True)
    while step < args.steps and not stop:
        x = torch.randn(args.batch_size, 64, device=device)
        loss = nn.functional.mse_loss(model(x), x @ target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        print(f"step={step} loss={loss.item():.6f}", flush=True)
        if rank == 0 and (step % args.save_every == 0 or step == args.steps):
            save(step, model, opt, sched)
            commit()
    if stop:
        if rank == 0:
            save(step, model, opt, sched)  # baton: commits it once we exit
        print(f"saved on SIGTERM at step={step}", flush=True)
    else:
        print(f"done step={step}", flush=True)


if __name__ == "__main__":
    main()
