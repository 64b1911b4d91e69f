"""Linear probe: how much of a classification task a checkpoint's *frozen* features already
solve, against the same architecture with random weights (docs/RESULTS.md, "Two-hour budgets").

Each text is encoded and mean-pooled (``bertkit.tasks.similarity.mean_pooled_embeddings``); an
L2-regularised logistic regression (L-BFGS, features standardised on train, regularisation
chosen on dev from 4 values) is fit on the training split and scored on dev. Binary tasks only.
If the pre-trained checkpoint probes no better than random weights, its encoder has not yet
learned features that this task's fine-tuning could start from.

    OMP_NUM_THREADS=1 .venv/bin/python bench/probe_features.py QS_OUT/pretrain-120m/run/checkpoint-N \\
        ../shared/data/checkpoints/minilm-l6-uncased --task ../shared/data/tasks/polarity
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from bertkit.config import BertConfig
from bertkit.model import BertModel
from bertkit.tasks import get_task
from bertkit.tasks.similarity import mean_pooled_embeddings
from bertkit.tokenization import Tokenizer

SHARED = Path(os.environ.get("BERTKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
REGULARISATION = (1e-4, 1e-3, 1e-2, 1e-1)


def probe(x_train: np.ndarray, y_train: np.ndarray, x_dev: np.ndarray, y_dev: np.ndarray) -> float:
    """Best dev accuracy of a logistic regression over :data:`REGULARISATION`."""
    xt, xd = torch.tensor(x_train), torch.tensor(x_dev)
    mu, sd = xt.mean(0), xt.std(0) + 1e-6
    xt, xd = (xt - mu) / sd, (xd - mu) / sd
    yt, yd = torch.tensor(y_train, dtype=torch.float32), torch.tensor(y_dev, dtype=torch.float32)
    best = 0.0
    for lam in REGULARISATION:
        w = torch.zeros(xt.shape[1], requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + lam * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            best = max(best, (((xd @ w + b) > 0).float() == yd).float().mean().item())
    return best


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
    if len(labels) != 2:
        p.error(f"binary tasks only; {files['train']} has {len(labels)} labels")
    y_train = np.array([labels.index(e.label) for e in train])
    y_dev = np.array([labels.index(e.label) for e in dev])
    print(f"{task_dir.name}: {len(train)} train, {len(dev)} dev; majority class {max(y_dev.mean(), 1 - y_dev.mean()):.4f}")
    print("| checkpoint | probe dev accuracy | same architecture, random weights |")
    print("| --- | --- | --- |")
    for ck in args.checkpoints:
        tok = Tokenizer.from_pretrained(ck)
        scores = []
        for model in (BertModel.from_pretrained(ck), None):
            if model is None:
                torch.manual_seed(args.seed)
                model = BertModel(BertConfig.from_pretrained(ck))
            x = [mean_pooled_embeddings(model.eval(), tok, [e.text for e in split], args.max_seq_length, 64)[0]
                 for split in (train, dev)]
            scores.append(probe(x[0], y_train, x[1], y_dev))
        print(f"| {ck} | {scores[0]:.4f} | {scores[1]:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
