#!/usr/bin/env python3
"""A PyTorch Lightning run that resumes under baton.

    baton run --store s3://bucket/baton --run lit-1 -- python3 examples/lightning_trainer.py --max-steps 2000

Lightning's ModelCheckpoint(save_last=True) keeps last.ckpt, a whole training state (weights, optimizer,
schedulers, loop progress). What this example adds (the lines marked "baton:"):
  1. ModelCheckpoint's dirpath is $BATON_CHECKPOINT_DIR, so baton commits last.ckpt and restores it;
  2. fit(ckpt_path=...) with last.ckpt when it is there;
  3. a callback that, on SIGTERM (Lightning's own trainer.received_sigterm, or ours), saves last.ckpt at the
     end of the current batch and stops, and that asks baton to commit after each save.

The model is a small MLP on synthetic data, so nothing is downloaded; put your LightningModule and
DataModule in their place. Needs torch and lightning (`pip install lightning`).
"""
import argparse
import os
import signal
import subprocess
import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

CKPT_DIR = os.environ.get("BATON_CHECKPOINT_DIR", "checkpoints")  # baton: where last.ckpt lives
LAST = os.path.join(CKPT_DIR, "last.ckpt")


def commit():
    """baton: ask the agent to commit now; only a warning when it cannot."""
    if not os.environ.get("BATON_AGENT_SOCKET"):
        return
    try:
        subprocess.run(["baton", "checkpoint", "commit"], check=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"lightning_trainer: baton checkpoint commit: {e}", file=sys.stderr, flush=True)


class Baton(Callback):
    """baton: save last.ckpt and stop on SIGTERM; commit after each save."""

    def __init__(self):
        self.stop = False
        self.pending = False  # a checkpoint was saved and is not committed yet
        signal.signal(signal.SIGTERM, self.on_signal)

    def on_signal(self, signum, _frame):
        self.stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.stop or getattr(trainer, "received_sigterm", False):
            self.stop = True
            trainer.save_checkpoint(LAST)
            trainer.should_stop = True

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        # Called before the file is written: commit at the next batch, once it is.
        self.pending = True

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.pending and trainer.is_global_zero:
            self.pending = False
            commit()


class Regression(L.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--save-steps", type=int, default=200)
    args = p.parse_args()

    g = torch.Generator().manual_seed(0)
    x = torch.randn(65536, 64, generator=g)
    y = x @ torch.randn(64, 1, generator=g)
    data = DataLoader(TensorDataset(x, y), batch_size=256, shuffle=True, num_workers=2)

    checkpoints = ModelCheckpoint(dirpath=CKPT_DIR, save_last=True, save_top_k=0,  # baton: last.ckpt only
                                  every_n_train_steps=args.save_steps)
    callback = Baton()
    trainer = L.Trainer(max_steps=args.max_steps, callbacks=[checkpoints, callback], logger=False,
                        enable_progress_bar=False)
    resume = LAST if os.path.exists(LAST) else None  # baton: resume when last.ckpt is there
    print(f"resumed from {resume}" if resume else "starting fresh", flush=True)
    trainer.fit(Regression(lr=1e-3), data, ckpt_path=resume)
    step = trainer.global_step
    print(f"saved on SIGTERM at step={step}" if callback.stop else f"done step={step}", flush=True)


if __name__ == "__main__":
    main()
