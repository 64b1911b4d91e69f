"""The one training loop, used by pre-training and fine-tuning alike.

* :mod:`~bertkit.training.config` — ``TrainConfig``, every knob of the loop (torch-free);
* :mod:`~bertkit.training.loop` — ``Trainer``: the loop around the steps (logging, evaluation,
  checkpoints, divergence, stop signals, time budget);
* :mod:`~bertkit.training.steps` — one optimizer step (accumulation, autocast, loss scaling,
  clipping) and the model it runs (activation checkpointing, DDP, ``torch.compile``);
* :mod:`~bertkit.training.batches` — the endless, resumable batch stream; batches onto the device;
* :mod:`~bertkit.training.throughput` — tokens and FLOPs per batch, log windows, tokens/s and MFU;
* :mod:`~bertkit.training.guards` — the divergence guard (skip, roll back, stop) and SIGTERM / SIGINT;
* :mod:`~bertkit.training.progress` — the progress bar, the text progress line, the summary line;
* :mod:`~bertkit.training.checkpoints` — ``TrainerState`` and the resumable ``checkpoint-STEP/``
  directories (write, list, prune, read back);
* :mod:`~bertkit.training.resume` — a running trainer's side of them: when to save, what to save,
  where a resume starts, restoring every part;
* :mod:`~bertkit.training.runlog` — ``metrics.jsonl`` + TensorBoard scalars.
"""
