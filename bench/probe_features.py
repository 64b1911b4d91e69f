"""Linear probe: how much of a classification task a checkpoint's *frozen* features already
solve, against the same architecture with random weights (docs/RESULTS.md, "Two-hour budgets").

``bertkit.probe``: each text is encoded and mean-pooled, a softmax regression (L-BFGS, features
standardised on train, the L2 penalty chosen on dev from 4 values) is fit on the training split
and scored on dev. If the pre-trained checkpoint probes no better than random weights, its encoder has not yet
learned features that this task's fine-tuning could start from.

    OMP_NUM_THREADS=1 .venv/bin/python bench/probe_features.py QS_OUT/pretrain-120m/run/checkpoint-N \\
        ../shared/data/checkpoints/minilm-l6-uncased --task ../shared/data/tasks/polarity
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from bertkit.config import BertConfig
from bertkit.model import BertModel
from bertkit.probe import probe_encoder
from bertkit.tasks import get_task
from bertkit.tokenization import Tokenizer

SHARED = Path(os.environ.get("BERTKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="checkpoint directories (config.json + weights + vocab.txt)")
    p.add_argument("--task", default=str(SHARED / "tasks" / "polarity"), help="directory with train.* and dev.*")
    p.add_argument("--max-seq-length", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="seed of the random-weights baseline")
    args = p.parse_args(argv)
    task_dir = Path(args.task)
    files = {s: next(iter(sorted(task_dir.glob(f"{s}.*"))), None) for s in ("train", "dev")}
    if not all(files.values()):
        p.error(f"{task_dir}: needs train.* and dev.* files")
    task = get_task("classification")
    train, dev = task.read(str(files["train"])), task.read(str(files["dev"]))
    labels = task.label_list(train)
    data = [([e.text for e in split], [labels.index(e.label) for e in split]) for split in (train, dev)]
    majority = max(data[1][1].count(i) for i in range(len(labels))) / len(dev)
    print(f"{task_dir.name}: {len(train)} train, {len(dev)} dev, {len(labels)} labels; majority class {majority:.4f}")
    print("| checkpoint | probe dev accuracy | same architecture, random weights |")
    print("| --- | --- | --- |")
    for ck in args.checkpoints:
        tok = Tokenizer.from_pretrained(ck)
        torch.manual_seed(args.seed)
        scores = [
            probe_encoder(m.eval(), tok, data[0], data[1], args.max_seq_length)
            for m in (BertModel.from_pretrained(ck), BertModel(BertConfig.from_pretrained(ck)))
        ]
        print(f"| {ck} | {scores[0]:.4f} | {scores[1]:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
