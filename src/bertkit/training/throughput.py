"""How fast a run trains: the tokens and FLOPs of a batch, the window that sums them between two
log records, and the rates a train record reports (tokens per second, MFU against the peak
FLOP/s of every rank's hardware)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from bertkit import runtime

PEAK_CHECKS = 3  # log windows over which a measured (CPU) peak FLOP/s is re-measured, best kept


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters that cost FLOPs per token (for the default 6 * N * tokens): all but embedding
    tables, which are looked up, not multiplied (half of MiniLM's 22.7M; counting them put a
    fine-tuning run's MFU above 100%)."""
    lookups = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in lookups)


def count_tokens(batch: Any) -> int:
    """Token positions in a batch: ``input_ids.numel()`` (padding included), else 0."""
    if isinstance(batch, dict) and isinstance(batch.get("input_ids"), torch.Tensor):
        return batch["input_ids"].numel()
    if isinstance(batch, torch.Tensor) and batch.ndim >= 2:
        return batch.shape[0] * batch.shape[1]
    return 0


def default_flops_fn(model: torch.nn.Module) -> Callable[[Any], float]:
    """Training FLOPs of one micro-batch as ``6 * matmul parameters * tokens``."""
    n_params = matmul_params(model)
    return lambda batch: 6.0 * n_params * count_tokens(batch)


class PeakFlops:
    """Peak FLOP/s of all ranks, the denominator of MFU. Measured lazily (measuring the CPU peak
    takes a moment); a measured (CPU) peak is re-measured over the first ``PEAK_CHECKS`` log
    windows and the best kept, so a busy moment at start-up does not stick."""

    def __init__(self, device: torch.device, precision: str, world_size: int):
        self.device = device
        self.precision = precision
        self.world_size = world_size
        self.value = 0.0
        self.checks = 0

    def __call__(self) -> float:
        if self.checks < PEAK_CHECKS:
            self.checks += 1
            self.value = runtime.peak_flops(self.device, self.precision, remeasure=self.checks > 1) * self.world_size
        return self.value


def mean_over_ranks(metrics: dict[str, float], dist: runtime.DistInfo, device: torch.device) -> dict[str, float]:
    """``metrics`` averaged over every rank (collective under DDP: every rank must call it)."""
    if dist.enabled and metrics:
        keys = sorted(metrics)
        t = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        metrics = {k: float(v) / dist.world_size for k, v in zip(keys, t.tolist())}
    return metrics


class Window:
    """Running sums between two log records."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.steps = 0
        self.loss = 0.0
        self.metrics: dict[str, float] = {}
        self.tokens = 0
        self.flops = 0.0
        self.grad_norm = 0.0
        self.grad_norm_n = 0

    def add(self, loss: float, metrics: dict, tokens: int, flops: float, grad_norm: float | None) -> None:
        self.steps += 1
        self.loss += loss
        for k, v in metrics.items():
            self.metrics[k] = self.metrics.get(k, 0.0) + v
        self.tokens += tokens
        self.flops += flops
        if grad_norm is not None:
            self.grad_norm += grad_norm
            self.grad_norm_n += 1

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def mean_loss(self) -> float:
        return self.loss / max(1, self.steps)

    def mean_metrics(self) -> dict:
        return {k: v / max(1, self.steps) for k, v in self.metrics.items()}

    def mean_grad_norm(self) -> float | None:
        return self.grad_norm / self.grad_norm_n if self.grad_norm_n else None

    def rates(self, peak_flops: Callable[[], float]) -> dict[str, float]:
        """``tokens_per_s`` and ``mfu`` over the window so far (the window's seconds are read
        before ``peak_flops()``, which may take a moment to measure)."""
        seconds = max(self.seconds(), 1e-9)
        return {"tokens_per_s": self.tokens / seconds, "mfu": self.flops / seconds / peak_flops()}
