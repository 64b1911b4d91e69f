"""The training data as the loop consumes it: an endless stream of batches that saves and
restores its position (for exact resume), and moving a batch onto the device."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from bertkit.errors import BertkitError


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor (in dicts, lists, tuples) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


class Batches:
    """An endless iterator over ``loader`` that knows how to save and restore its position.

    With a loader that has ``state_dict``/``load_state_dict`` (``PretrainingLoader``) resume is
    O(1). Any other iterable is re-iterated epoch after epoch and resumed by replaying the
    consumed batches -- exact when its iteration order is deterministic.
    """

    def __init__(self, loader: Iterable):
        self.loader = loader
        self.stateful = hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict")
        self.consumed = 0
        self._it = None

    def __next__(self):
        if self._it is None:
            self._it = iter(self.loader)
        try:
            batch = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            try:
                batch = next(self._it)
            except StopIteration:
                raise BertkitError("training data: the loader yielded no batches") from None
        self.consumed += 1
        return batch

    def state_dict(self) -> dict:
        state = {"consumed": self.consumed}
        if self.stateful:
            state["loader"] = self.loader.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self._it = None
        if self.stateful:
            self.loader.load_state_dict(state["loader"])
            self.consumed = state["consumed"]
        else:
            self.consumed = 0
            for _ in range(state["consumed"]):
                next(self)
