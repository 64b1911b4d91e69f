"""Linear probe: how much of a classification task an encoder's *frozen* features already solve.

Each text is encoded and mean-pooled over its real tokens
(:func:`bertkit.tasks.similarity.mean_pooled_embeddings`); a multinomial logistic regression is
fit on the training split (features standardised with the training statistics, L-BFGS, an L2
penalty) and scored on dev, keeping the best of a few penalties. Compared with the same
architecture's random weights, it says whether pre-training has yet learned anything the task
can start from, without the noise of fine-tuning runs (the quickstart reports it;
``bench/probe_features.py`` runs it on any checkpoints).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bertkit.tasks.similarity import mean_pooled_embeddings

PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1)


def fit_probe(
    x_train: np.ndarray,
    y_train: Sequence[int],
    x_dev: np.ndarray,
    y_dev: Sequence[int],
    penalties: Sequence[float] = PENALTIES,
) -> float:
    """Best dev accuracy of an L2-penalised softmax regression over ``penalties``."""
    return float(probe_dev_correct(x_train, y_train, x_dev, y_dev, penalties).mean())


def probe_dev_correct(
    x_train: np.ndarray,
    y_train: Sequence[int],
    x_dev: np.ndarray,
    y_dev: Sequence[int],
    penalties: Sequence[float] = PENALTIES,
) -> np.ndarray:
    """Per dev example, whether the best of ``penalties`` (by dev accuracy) classifies it right
    (bool array): what a paired comparison of two encoders' probes needs."""
    xt = torch.as_tensor(np.asarray(x_train), dtype=torch.float64)
    xd = torch.as_tensor(np.asarray(x_dev), dtype=torch.float64)
    mu, sd = xt.mean(0), xt.std(0) + 1e-6
    xt, xd = (xt - mu) / sd, (xd - mu) / sd
    yt, yd = torch.as_tensor(list(y_train)), torch.as_tensor(list(y_dev))
    classes = int(max(yt.max(), yd.max())) + 1
    best = None
    for lam in penalties:
        w = torch.zeros(xt.shape[1], classes, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

        def closure(opt=opt, w=w, b=b, lam=lam) -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + lam * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            correct = ((xd @ w + b).argmax(1) == yd).numpy()
        if best is None or correct.mean() > best.mean():
            best = correct
    return best


def probe_encoder(
    model: Any,
    tokenizer: Any,
    train: tuple[list[str], list[int]],
    dev: tuple[list[str], list[int]],
    max_seq_length: int = 128,
) -> float:
    """Dev accuracy of a linear probe on ``model``'s mean-pooled features; ``train`` / ``dev``
    are ``(texts, label ids)``."""
    return float(probe_encoder_correct(model, tokenizer, train, dev, max_seq_length).mean())


def probe_encoder_correct(
    model: Any,
    tokenizer: Any,
    train: tuple[list[str], list[int]],
    dev: tuple[list[str], list[int]],
    max_seq_length: int = 128,
) -> np.ndarray:
    """:func:`probe_encoder` per dev example: whether the probe classifies it right."""
    feats = [mean_pooled_embeddings(model, tokenizer, texts, max_seq_length, 64)[0] for texts, _ in (train, dev)]
    return probe_dev_correct(feats[0], train[1], feats[1], dev[1])
