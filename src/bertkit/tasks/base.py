"""What every task family shares: the :class:`Task` interface and features (batching and model
runs are in :mod:`bertkit.tasks.batching`).

A task family (one module each) turns files into examples, examples into features (token ids
plus training targets), model outputs back into per-example predictions, and predictions into
metrics. :mod:`bertkit.finetune` drives any of them through the one training loop
(:mod:`bertkit.training`).

Features are kept as Python lists and padded per batch to the longest item (dynamic padding),
which is much faster on CPU than padding everything to ``max_seq_length``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from bertkit.errors import BertkitError
from bertkit.settings import DEFAULT_MAX_SEQ_LENGTH

# Settings every task accepts (saved in the task checkpoint's ``task.json``).
COMMON_SETTINGS: dict[str, Any] = {"max_seq_length": DEFAULT_MAX_SEQ_LENGTH}


@dataclass
class Features:
    """Model inputs (and targets) for a list of examples.

    ``items[i]`` holds ``input_ids`` and ``token_type_ids`` (lists; for multiple choice a list
    per choice) plus the targets (``labels`` or ``start_positions`` / ``end_positions``).
    ``example_index[i]`` says which example item ``i`` came from (QA windows: many per example).
    ``meta`` holds per-item extras that never reach the model (QA offsets, word maps).
    """

    items: list[dict[str, Any]]
    example_index: list[int]
    meta: list[Any] = field(default_factory=list)
    n_examples: int = 0
    n_truncated: int = 0

    def __len__(self) -> int:
        return len(self.items)


def build_pair(
    a: list[int], b: list[int] | None, max_len: int, cls_id: int, sep_id: int
) -> tuple[list[int], list[int], bool]:
    """``[CLS] a [SEP] (b [SEP])`` truncated "longest first" to ``max_len`` tokens.

    Returns ``(input_ids, token_type_ids, truncated)``.
    """
    budget = max_len - (3 if b is not None else 2)
    a = list(a)
    b = list(b) if b is not None else None
    truncated = False
    if b is None:
        if len(a) > budget:
            a, truncated = a[: max(budget, 0)], True
    else:
        while len(a) + len(b) > budget:
            truncated = True
            if len(a) > len(b):  # ties trim the second text, as BERT's _truncate_seq_pair
                a.pop()
            else:
                b.pop()
    ids = [cls_id] + a + [sep_id]
    types = [0] * len(ids)
    if b is not None:
        ids += b + [sep_id]
        types += [1] * (len(b) + 1)
    return ids, types, truncated


class Task(ABC):
    """One task family. Subclasses set the class attributes and implement the methods.

    ``settings`` (column names, lengths, QA thresholds, label kind) are saved with the task
    checkpoint so ``evaluate`` / ``predict`` featurise new data exactly as training did.
    """

    name: ClassVar[str]
    head: ClassVar[str]  # model class in bertkit.heads
    main_metric: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **settings: Any) -> None:
        unknown = set(settings) - set(self.defaults) - set(COMMON_SETTINGS)
        if unknown:
            raise TypeError(f"{self.name}: unknown settings {sorted(unknown)}")
        self.settings: dict[str, Any] = {**COMMON_SETTINGS, **self.defaults}
        self.settings.update({k: v for k, v in settings.items() if v is not None})
        self.labels: list[str] | None = None  # output names, set from the training file / checkpoint

    # -- files ----------------------------------------------------------------------------------
    @abstractmethod
    def read(self, path: str, labelled: bool = True) -> list[Any]:
        """Examples of ``path``; ``labelled=False`` accepts files without the label column."""
        raise NotImplementedError

    def label_list(self, examples: Sequence[Any]) -> list[str] | None:
        """Output names from the training examples (``None``: the head has no named labels)."""
        return None

    def check_labels(self, path: str, examples: Sequence[Any], label2id: dict[str, int]) -> None:  # noqa: B027
        """Refuse a label that the training file did not have, naming file and line (default: any label is fine)."""

    # -- model ----------------------------------------------------------------------------------
    def num_outputs(self, labels: list[str] | None) -> int:
        return len(labels) if labels else 1

    @abstractmethod
    def featurize(
        self, examples: Sequence[Any], tokenizer: Any, label2id: dict[str, int] | None, training: bool
    ) -> Features:
        raise NotImplementedError

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    @abstractmethod
    def predict(
        self,
        model: torch.nn.Module,
        features: Features,
        examples: Sequence[Any],
        id2label: dict[int, str] | None,
        batch_size: int,
        pad_id: int,
        progress: bool = False,
        max_tokens: int | None = None,
    ) -> list[Any]:
        """One prediction per example (``max_tokens``: padded tokens per batch, see :func:`run_model`)."""
        raise NotImplementedError

    # -- scoring and output ---------------------------------------------------------------------
    @abstractmethod
    def score(self, examples: Sequence[Any], predictions: Sequence[Any], tune: bool = False) -> dict[str, float]:
        """Metrics of ``predictions`` against the examples' gold labels. ``tune=True`` (dev only)
        lets a task fit a decision setting (the SQuAD v2 null threshold) before scoring."""
        raise NotImplementedError

    @abstractmethod
    def record(self, example: Any, prediction: Any) -> dict[str, Any]:
        """One line of the predictions file (JSON)."""
        raise NotImplementedError

    # The name of the task's community predictions format (a ``.json`` file), if it has one.
    official_format: str | None = None

    def official_predictions(self, examples: Sequence[Any], predictions: Sequence[Any]) -> Any:
        """The predictions in :attr:`official_format` (only tasks that set it override this)."""
        raise BertkitError(f"task {self.name} has no .json predictions format; write .jsonl")
