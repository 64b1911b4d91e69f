"""What every task family shares: the :class:`Task` interface, features, batching, inference.

A task family (one module each) turns files into examples, examples into features (token ids
plus training targets), model outputs back into per-example predictions, and predictions into
metrics. :mod:`bertkit.finetune` drives any of them through the one training loop
(:mod:`bertkit.training`).

Features are kept as Python lists and padded per batch to the longest item (dynamic padding),
which is much faster on CPU than padding everything to ``max_seq_length``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

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


def collate(items: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of feature items into a batch of tensors.

    ``input_ids`` / ``token_type_ids`` / ``attention_mask`` are ``(B, T)``, or ``(B, C, T)`` for
    multiple choice; list-valued ``labels`` (tagging) are padded with -100 to ``(B, T)``.
    """
    first = items[0]["input_ids"]
    choice = bool(first) and isinstance(first[0], list)
    if choice:
        T = max(len(seq) for it in items for seq in it["input_ids"])
        C = len(first)
        ids = torch.full((len(items), C, T), pad_id, dtype=torch.long)  # (B, C, T)
        types = torch.zeros((len(items), C, T), dtype=torch.long)
        mask = torch.zeros((len(items), C, T), dtype=torch.long)
        for i, it in enumerate(items):
            for c, (seq, ty) in enumerate(zip(it["input_ids"], it["token_type_ids"])):
                ids[i, c, : len(seq)] = torch.tensor(seq)
                types[i, c, : len(ty)] = torch.tensor(ty)
                mask[i, c, : len(seq)] = 1
    else:
        T = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), T), pad_id, dtype=torch.long)  # (B, T)
        types = torch.zeros((len(items), T), dtype=torch.long)
        mask = torch.zeros((len(items), T), dtype=torch.long)
        for i, it in enumerate(items):
            n = len(it["input_ids"])
            ids[i, :n] = torch.tensor(it["input_ids"])
            types[i, :n] = torch.tensor(it["token_type_ids"])
            mask[i, :n] = 1
    batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
    for key in ("labels", "start_positions", "end_positions"):
        if items[0].get(key) is None:
            continue
        vals = [it[key] for it in items]
        if isinstance(vals[0], list):  # token labels (B, T), -100 = ignore
            lab = torch.full((len(items), ids.shape[-1]), -100, dtype=torch.long)
            for i, v in enumerate(vals):
                lab[i, : len(v)] = torch.tensor(v)
            batch[key] = lab
        elif isinstance(vals[0], float):
            batch[key] = torch.tensor(vals, dtype=torch.float32)  # (B,)
        else:
            batch[key] = torch.tensor(vals, dtype=torch.long)  # (B,)
    return batch


class EpochLoader:
    """Endless training batches: shuffled anew each epoch (seeded), the last partial batch kept.

    ``steps_per_epoch`` batches make one epoch. ``state_dict`` / ``load_state_dict`` restore the
    exact position (epoch and batch), so a resumed run sees the same batches.

    ``group_by_length``: batches of similar length, for far less padding (BoolQ at length 256:
    mean padded length 252 -> 138, about 3x faster on a CPU). As transformers' ``group_by_length``:
    the shuffled items are cut into mega-batches of ``GROUP_BATCHES`` batches, each sorted by
    length and cut into batches, and the batch order is shuffled; still random, still every item
    once per epoch.
    """

    GROUP_BATCHES = 50

    def __init__(
        self, features: Features, batch_size: int, pad_id: int, seed: int = 0, group_by_length: bool = False
    ) -> None:
        if len(features) == 0:
            raise ValueError("no training features")
        self.features = features
        self.batch_size = batch_size
        self.pad_id = pad_id
        self.seed = seed
        self.group_by_length = group_by_length
        self.lengths = [_item_len(it) for it in features.items] if group_by_length else None
        self.epoch = 0
        self.position = 0  # batches already yielded in this epoch
        self.steps_per_epoch = math.ceil(len(features) / batch_size)

    def _batches(self, epoch: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.features), generator=g).tolist()
        bs = self.batch_size
        if not self.group_by_length:
            return [order[i : i + bs] for i in range(0, len(order), bs)]
        mega = bs * self.GROUP_BATCHES  # a multiple of bs: only the very last batch can be short
        batches = []
        for start in range(0, len(order), mega):
            chunk = sorted(order[start : start + mega], key=lambda i: -self.lengths[i])
            batches += [chunk[i : i + bs] for i in range(0, len(chunk), bs)]
        return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            batches = self._batches(self.epoch)
            while self.position < self.steps_per_epoch:
                idx = batches[self.position]
                self.position += 1
                yield collate([self.features.items[i] for i in idx], self.pad_id)
            self.epoch += 1
            self.position = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, d: dict[str, int]) -> None:
        self.epoch, self.position, self.seed = int(d["epoch"]), int(d["position"]), int(d["seed"])


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def token_budget_batches(
    lengths: Sequence[int],
    max_tokens: int | None,
    max_batch: int,
    max_padding: float = 0.1,
    min_tokens: int = 256,
) -> list[np.ndarray]:
    """Item indices grouped into batches, longest items first.

    A batch is padded to its longest item, so it holds at most ``max_tokens`` tokens counted with
    padding (an item longer than that gets a batch of its own) and at most ``max_batch`` items;
    ``max_tokens=None`` caps only the count. A batch also stops growing once padding would exceed
    ``max_padding`` of its tokens (unless it is still under ``min_tokens``, where per-batch
    overhead matters more than padding): a few long texts never drag many shorter ones up to
    their length, and most batches have no padding at all (no attention mask: the fastest
    attention kernel). Longest first means a batch that does not fit in memory fails at once.
    """
    lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
    order = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[order].tolist()
    batches, start, n = [], 0, len(order)
    while start < n:
        longest = sorted_lengths[start]
        cap = max_batch if max_tokens is None else max(1, min(max_batch, max_tokens // longest))
        end, real = start + 1, longest
        while end < n and end - start < cap:
            padded = (end - start + 1) * longest
            real_next = real + sorted_lengths[end]
            if padded > min_tokens and padded - real_next > max_padding * padded:
                break
            real, end = real_next, end + 1
        batches.append(order[start:end])
        start = end
    return batches


def run_model(
    model: torch.nn.Module,
    features: Features,
    batch_size: int,
    pad_id: int,
    token_level: bool = False,
    progress: bool = False,
    desc: str = "predict",
    max_tokens: int | None = None,
) -> list[Any]:
    """Forward every feature item in eval mode; return the raw output per item, in item order.

    Items are batched by :func:`token_budget_batches` (sorted by length: little padding; at most
    ``batch_size`` items and ``max_tokens`` padded tokens a batch) under
    ``torch.inference_mode``; an autocast context around the call applies. With ``token_level``
    every output has a token axis and is trimmed to its item's length. An output is a numpy
    array, or a tuple of them when the model returns several tensors (QA start and end logits).
    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    lengths = [_item_len(it) for it in features.items]
    outputs: list[Any] = [None] * len(features)
    batches = token_budget_batches(lengths, max_tokens, batch_size)
    with torch.inference_mode():
        for idx in tqdm(batches, desc=desc, disable=not progress, leave=False, unit="batch"):
            batch = collate([features.items[i] for i in idx], pad_id)
            out = model(
                batch["input_ids"].to(device),
                batch["attention_mask"].to(device),
                batch["token_type_ids"].to(device),
            )
            parts = _as_arrays(out)
            for p in parts:
                if not np.isfinite(p).all():
                    j = int(np.nonzero(~np.isfinite(p).reshape(len(idx), -1).all(axis=1))[0][0])
                    example = features.example_index[int(idx[j])] + 1
                    raise BertkitError(
                        f"the model's output is not finite (NaN or infinity) for example {example}: its "
                        f"activations overflow on that input; refusing to score or write non-finite outputs"
                    )
            for j, i in enumerate(idx):
                per_item = tuple(p[j, : lengths[i]] if token_level else p[j] for p in parts)
                outputs[i] = per_item[0] if len(per_item) == 1 else per_item
    model.train(was_training)
    return outputs


def _item_len(item: dict[str, Any]) -> int:
    ids = item["input_ids"]
    return max(len(s) for s in ids) if ids and isinstance(ids[0], list) else len(ids)


def _as_arrays(out: Any) -> list[np.ndarray]:
    """Model output (tensor, or tuple/namedtuple of tensors) -> list of float32 numpy arrays."""
    if isinstance(out, torch.Tensor):
        tensors = [out]
    else:
        tensors = [t for t in out if isinstance(t, torch.Tensor)]
    return [t.detach().float().cpu().numpy() for t in tensors]


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


def batch_forward(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Any:
    """``model(input_ids, attention_mask, token_type_ids)`` with the batch moved to the model."""
    device = model_device(model)
    return model(
        batch["input_ids"].to(device),
        batch["attention_mask"].to(device),
        batch["token_type_ids"].to(device),
    )
