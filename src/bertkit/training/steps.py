"""One optimizer step and the model it runs: activation checkpointing (each repeated layer
recomputed in backward instead of stored), DDP and ``torch.compile`` around the raw module, then
``grad_accum`` micro-batches (DDP all-reduces on the last only) under autocast and loss scaling,
gradient clipping and the update."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from bertkit import runtime
from bertkit.errors import BertkitError
from bertkit.training.batches import Batches, move_to
from bertkit.training.config import TrainConfig
from bertkit.training.guards import is_finite
from bertkit.training.throughput import count_tokens

LossFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, dict[str, float]]"]


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Recompute every repeated layer's activations during backward instead of storing them.

    Wraps the ``forward`` of each child of every ``nn.ModuleList`` (for BERT: the encoder
    layers) in non-reentrant ``torch.utils.checkpoint``, which replays the RNG so dropout masks
    match. Returns how many modules were wrapped; raises if the model has no such list.
    """
    wrapped = 0
    for module in model.modules():
        if not isinstance(module, nn.ModuleList):
            continue
        for layer in module:
            if getattr(layer, "_bertkit_checkpointed", False):
                continue
            original = layer.forward

            def forward(*args, __orig=original, **kwargs):
                if torch.is_grad_enabled():
                    return _checkpoint(__orig, *args, use_reentrant=False, **kwargs)
                return __orig(*args, **kwargs)

            layer.forward = forward
            layer._bertkit_checkpointed = True
            wrapped += 1
    if not wrapped:
        raise BertkitError("activation_checkpointing: the model has no nn.ModuleList of layers to checkpoint")
    return wrapped


def wrap_model(model: nn.Module, cfg: TrainConfig, dist: runtime.DistInfo, device: torch.device) -> nn.Module:
    """What ``loss_fn`` gets: ``model`` (on ``device``; checkpointed in place with
    ``activation_checkpointing``), in DDP when distributed, compiled with ``compile``."""
    if cfg.activation_checkpointing:
        enable_activation_checkpointing(model)
    forward_model: nn.Module = model
    if dist.enabled:
        forward_model = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters,
        )
    if cfg.compile:
        forward_model = torch.compile(forward_model)
    return forward_model


@dataclass
class StepResult:
    """What one :func:`train_step` did."""

    loss: float  # mean over micro-batches and ranks
    metrics: dict[str, float]  # mean over micro-batches, this rank
    tokens: int  # this rank
    flops: float  # this rank
    grad_norm: float | None  # None without clipping, or when the loss is not finite
    overflow: bool  # fp16: the loss scaler skipped the update (and lowered its scale)
    lr: float | None  # the learning rate of the update (None when the step was not finite)


def train_step(
    cfg: TrainConfig,
    model: nn.Module,
    forward_model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    flops_fn: Callable[[Any], float],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    dist: runtime.DistInfo,
) -> StepResult:
    """Run ``grad_accum`` micro-batches through ``loss_fn(forward_model, batch)`` and (unless
    non-finite) one optimizer step on ``model``. A non-finite step leaves the weights and
    optimizer untouched; so does an fp16 overflow (the loss scaler skips the update and lowers
    its scale; the scheduler does not advance)."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    metric_sums: dict[str, float] = {}
    tokens = 0
    flops = 0.0
    for micro in range(cfg.grad_accum):
        batch = move_to(next(batches), device)
        tokens += count_tokens(batch)
        flops += flops_fn(batch)
        sync = micro == cfg.grad_accum - 1
        no_sync = (
            forward_model.no_sync()
            if dist.enabled and not sync and hasattr(forward_model, "no_sync")
            else contextlib.nullcontext()
        )
        with no_sync:
            with runtime.autocast(cfg.precision, device):
                loss, metrics = loss_fn(forward_model, batch)
            scaler.scale(loss.float() / cfg.grad_accum).backward()
        loss_sum += loss.detach().float()
        for k, v in metrics.items():
            metric_sums[k] = metric_sums.get(k, 0.0) + float(v)
    loss_mean = loss_sum / cfg.grad_accum
    if dist.enabled:  # every rank sees the same (mean) loss -> the same skip decision
        torch.distributed.all_reduce(loss_mean, op=torch.distributed.ReduceOp.SUM)
        loss_mean /= dist.world_size
    loss_value = loss_mean.item()
    metrics = {k: v / cfg.grad_accum for k, v in metric_sums.items()}

    grad_norm, overflow, lr = None, False, None
    if math.isfinite(loss_value):
        scaler.unscale_(optimizer)
        if cfg.max_grad_norm > 0:
            grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))
        if is_finite(loss_value, grad_norm, scaler.is_enabled()):
            lr = optimizer.param_groups[0]["lr"]  # what this update uses (logged)
            scale = scaler.get_scale()  # 1.0 when disabled (fp32 / bf16)
            scaler.step(optimizer)  # fp16: skips the update on inf/nan gradients
            scaler.update()  # ... and then lowers the scale
            overflow = scaler.get_scale() < scale
            if not overflow:
                scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss_value, metrics, tokens, flops, grad_norm, overflow, lr)
