"""What stops a run safely: the divergence guard (a step counts only when its loss and gradient
norm are finite; ``divergence_patience`` bad steps in a row roll back to the last checkpoint
with a lower learning rate, or stop with a message naming the fix) and the stop signals
(SIGTERM / SIGINT stop the run at the next step boundary, after a checkpoint)."""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path
from typing import NoReturn

import torch
from torch import nn

from bertkit import runtime
from bertkit.checkpoint import first_non_finite
from bertkit.errors import BertkitError, Terminated
from bertkit.training.checkpoints import TrainerState
from bertkit.training.config import TrainConfig


def is_finite(loss: float, grad_norm: float | None, loss_scaling: bool) -> bool:
    """A step counts when its loss is finite and (outside fp16 ``loss_scaling``, where the
    scaler handles overflow) so is its gradient norm."""
    if not math.isfinite(loss):
        return False
    if grad_norm is not None and not math.isfinite(grad_norm) and not loss_scaling:
        return False
    return True


def check_initial_weights(model: nn.Module) -> None:
    """Refuse to start from NaN / infinite weights: no learning rate can fix those."""
    bad = first_non_finite(model)
    if bad is not None:
        name, n_nan, n_inf = bad
        raise BertkitError(
            f"training cannot start: non-finite initial weights (tensor {name}: {n_nan} NaN, "
            f"{n_inf} infinite values); start from a finite checkpoint or a fresh initialisation"
        )


def rollback_lr_scale(
    cfg: TrainConfig, state: TrainerState, model: nn.Module, newest: Path | None, in_a_row: int, has_out_dir: bool
) -> float:
    """The divergence guard's verdict after ``in_a_row`` non-finite steps: the learning-rate
    scale to roll back to ``newest`` with, or a :class:`BertkitError` when the run must stop
    (``divergence_action=stop``, no checkpoint, or ``max_rollbacks`` used up)."""
    detected = f"non-finite loss at step {state.step + 1} ({in_a_row} in a row)"
    bad = first_non_finite(model)
    if bad is not None:
        detected += f", and the weights are no longer finite (first: {bad[0]})"
    fix = "lower the learning rate or lengthen the warmup"
    if cfg.divergence_action == "stop":
        raise BertkitError(
            f"training diverged: {detected}; stopping (divergence_action=stop). {fix.capitalize()}"
            + (", or use fp32/bf16" if cfg.precision == "fp16" else "")
        )
    if newest is None:
        raise BertkitError(
            f"training diverged: {detected}, and there is no checkpoint to roll back to; {fix}"
            + (" (or set save_every, so the guard has a checkpoint to roll back to)" if has_out_dir else "")
        )
    if state.rollbacks >= cfg.max_rollbacks:
        raise BertkitError(
            f"training diverged: {detected}, after {state.rollbacks} rollbacks "
            f"(max_rollbacks={cfg.max_rollbacks}); {fix}"
        )
    return state.lr_scale * cfg.lr_backoff


def set_lr_scale(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, state: TrainerState, scale: float
) -> None:
    """Scale the schedule's base rates and the current ones so that ``state.lr_scale`` becomes ``scale``."""
    factor = scale / state.lr_scale
    scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
    for group in optimizer.param_groups:
        group["lr"] *= factor
    state.lr_scale = scale


class StopSignals:
    """While training with an output directory: SIGTERM (what SLURM and Kubernetes send before
    killing a job) and SIGINT only set ``received``; the loop saves a checkpoint at the next
    step boundary and stops. The first signal puts the previous handlers back, so a second one
    acts at once (the checkpoint being written is then removed, the previous one kept)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.received: int | None = None
        self._previous: dict = {}
        if enabled and threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = signum
        self.restore()

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def requested(self, dist: runtime.DistInfo, device: torch.device) -> bool:
        """Whether any rank got SIGTERM / SIGINT (all ranks must agree: the save is collective)."""
        if not self.enabled:
            return False
        if not dist.enabled:
            return self.received is not None
        flag = torch.tensor([self.received or 0], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if self.received is None and int(flag.item()):
            self.received = int(flag.item())
        return bool(int(flag.item()))


def leave_for_signal(signum: int, step: int, checkpoint: Path | None) -> NoReturn:
    """Leave, once ``checkpoint`` is saved, as the signal asks: :class:`Terminated` for SIGTERM
    (exit 143), KeyboardInterrupt for SIGINT (130)."""
    name = signal.Signals(signum).name
    runtime.log(f"{name}: stopped at step {step}, {checkpoint} saved; run again with --resume to continue")
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated()
