#!/usr/bin/env python3
"""A Hugging Face Trainer run that resumes under baton.

    baton run --store s3://bucket/baton --run gpt2-tiny-1 -- python3 examples/hf_trainer.py --max-steps 2000

The Trainer already saves the way baton needs: checkpoint-N/ directories (model, optimizer, scheduler, RNG
states, trainer_state.json) under output_dir, the older ones pruned by save_total_limit. What this example adds
(the lines marked "baton:"):
  1. output_dir is $BATON_CHECKPOINT_DIR, so baton commits the checkpoint-N/ directories and restores them;
  2. train(resume_from_checkpoint=...) with the newest complete checkpoint when there is one
     (resume_from_checkpoint=True does the same, but fails when there is none and does not skip a
     checkpoint-N/ that a kill cut short, which has no trainer_state.json yet);
  3. a callback that turns SIGTERM into "save at the end of this step, then stop", since the Trainer saves
     nothing on a signal by itself, and that asks baton to commit after each save.

The model is a 2-layer GPT-2 built from its config and the data random tokens, so nothing is downloaded;
put your model, tokenizer and dataset in their place. Needs torch and transformers.
"""
import argparse
import os
import re
import signal
import subprocess
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

OUTPUT_DIR = os.environ.get("BATON_CHECKPOINT_DIR", "checkpoints")  # baton: output_dir is the checkpoint dir
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_complete_checkpoint(output_dir):
    """baton: the newest checkpoint-N/ that holds trainer_state.json (written last), or None."""
    if not os.path.isdir(output_dir):
        return None
    steps = sorted((int(m.group(1)) for d in os.listdir(output_dir) if (m := CHECKPOINT.match(d))), reverse=True)
    for step in steps:
        path = os.path.join(output_dir, f"checkpoint-{step}")
        if os.path.isfile(os.path.join(path, "trainer_state.json")):
            return path
    return None


class Baton(TrainerCallback):
    """baton: save and stop on SIGTERM; ask the agent to commit after each save."""

    def __init__(self):
        self.stop = False
        signal.signal(signal.SIGTERM, self.on_signal)

    def on_signal(self, signum, _frame):
        self.stop = True

    def on_step_end(self, args, state, control, **kwargs):
        if self.stop:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero and os.environ.get("BATON_AGENT_SOCKET"):
            try:
                subprocess.run(["baton", "checkpoint", "commit"], check=True, timeout=300)
            except (OSError, subprocess.SubprocessError) as e:
                print(f"hf_trainer: baton checkpoint commit: {e}", file=sys.stderr, flush=True)
        return control


class RandomTokens(torch.utils.data.Dataset):
    """Stands in for a tokenized dataset: fixed random sequences, labels = inputs."""

    def __init__(self, n, length, vocab):
        self.data = torch.randint(0, vocab, (n, length), generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return {"input_ids": self.data[i], "labels": self.data[i]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--save-steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args()

    config = GPT2Config(n_layer=2, n_head=4, n_embd=128, vocab_size=4096, n_positions=128)
    model = GPT2LMHeadModel(config)
    training = TrainingArguments(
        output_dir=OUTPUT_DIR,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=3e-4,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=2,  # baton keeps the older ones in the store (--keep)
        logging_steps=50,
        report_to=[],
        seed=0,
    )
    callback = Baton()
    trainer = Trainer(model=model, args=training, train_dataset=RandomTokens(4096, 128, config.vocab_size),
                      callbacks=[callback])

    resume = last_complete_checkpoint(OUTPUT_DIR)  # baton: resume when a checkpoint is there
    print(f"resumed from {resume}" if resume else "starting fresh", flush=True)
    trainer.train(resume_from_checkpoint=resume)
    step = trainer.state.global_step
    print(f"saved on SIGTERM at step={step}" if callback.stop else f"done step={step}", flush=True)


if __name__ == "__main__":
    main()
