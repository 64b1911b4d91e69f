"""``bertkit quickstart``: raw text -> WordPiece vocab -> pre-trained small BERT -> fine-tuned
classifier, against the same network trained from scratch, with a report.

Stages (each in ``OUT/NAME/``, each skipped on a re-run when its ``stage.json`` records the
same key -- a hash of the stage's options and of its inputs' keys / file fingerprints)::

    1 data       default corpus + task (bertkit.downloads) or the user's; validated
    2 vocab      bertkit.tokenization.train_vocab
    3 prepare    bertkit.pretraining (NSP pairs, masking, shards)
    4 pretrain   bertkit.pretrain for the time budget: the learning-rate schedule follows the
                 fraction of the budget spent, so it ends on time, schedule complete, at any load
    5 finetune   bertkit.finetune: (a) pre-trained, (b) random init, (c) MiniLM (fetched unless
                 --no-minilm); N seeds each
    6 probe      bertkit.probe: a linear probe of each frozen encoder
    7 report     bertkit.report: report.md (the answer first, weighed by its evidence),
                 report.json, one figure of every arm's curves

After the data is in place the run prints its plan, an estimate per stage (pre-training: the
budget; fine-tuning: timed on a few steps of each architecture), and after every stage the time
left and the expected end. Defaults are sized for the device (``--device``, auto: a GPU when
present): a larger model, batch and sequence length on a GPU.

A stage's directory is complete only once ``stage.json`` is written (last). Modules, each
importing only the ones above it in this list:

    options    QuickstartOptions, per-device sizing, --budget syntax (torch-free, for --help)
    records    stage keys and StageRunner (torch-free)
    data       stage 1
    stages     stages 2-6, one small function each calling into the other modules
    plan       the estimates and the ETA
    pipeline   run(): the stages in order, under a lock on OUT; the budget curve

This package's ``__init__`` imports nothing, so that the CLI can read ``options`` without torch;
the entry point is :func:`bertkit.quickstart.pipeline.run`.
"""
