"""The one training loop, used by pre-training and fine-tuning alike.

* :mod:`~bertkit.training.config` — ``TrainConfig``, every knob of the loop (torch-free);
* :mod:`~bertkit.training.loop` — ``Trainer``: steps, accumulation, evaluation, divergence guard;
* :mod:`~bertkit.training.checkpoints` — ``TrainerState`` and the resumable ``checkpoint-STEP/``
  directories (write, list, prune, read back);
* :mod:`~bertkit.training.runlog` — ``metrics.jsonl`` + TensorBoard scalars.
"""
