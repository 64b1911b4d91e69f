"""Pre-training data: raw corpora -> masked, sharded instances -> batches (``bertkit prepare``).

One step per module, each importing only the ones before it:

* :mod:`~bertkit.pretraining.format` — ``PrepareOptions``, the vocabulary facts, shards, the
  manifest and the data key;
* :mod:`~bertkit.pretraining.masking` — counter-based randomness and ``mask_tokens``;
* :mod:`~bertkit.pretraining.instances` — NSP pairs and packed MLM-only instances;
* :mod:`~bertkit.pretraining.prepare` — the worker pool and ``prepare`` (writes the data);
* :mod:`~bertkit.pretraining.loader` — ``PretrainingLoader`` (reads it; the only torch user);
* :mod:`~bertkit.pretraining.inspect` — ``bertkit prepare --inspect``.
"""
