"""Optimisers and learning-rate schedules for BERT, each a named, documented function.

* :func:`param_groups` -- weight decay on weight matrices only: none on biases and LayerNorm
  (the original BERT's ``exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"]``).
* :func:`build_optimizer` -- ``"adamw"`` as the original (beta 0.9/0.999, eps 1e-6, decay 0.01)
  or ``"lamb"`` (:class:`Lamb`, NVIDIA's large-batch recipe).
* :func:`build_scheduler` -- ``"linear"`` (linear warmup then linear decay to 0), ``"cosine"``
  (linear warmup then half-cosine to 0), ``"constant"`` (linear warmup then flat).
* :func:`build_budget_scheduler` -- the same schedules read on the fraction of a wall-clock
  budget spent instead of the step count (cramming's budget schedules), so they complete when
  the budget does, however many steps fit.

The schedules are exactly ``transformers``' ``get_linear_schedule_with_warmup``,
``get_cosine_schedule_with_warmup`` and ``get_constant_schedule_with_warmup`` (checked value for
value by a test): the multiplier of 0-based optimizer step ``s`` is ``s / warmup_steps`` during
warmup -- so the first update of a warmed-up run uses learning rate 0, as in transformers and in
the original BERT (``global_step / num_warmup_steps``) -- and the linear decay is
``(total - s) / (total - warmup)``, reaching 0 at ``total_steps``. (The original BERT's decay
differs: ``1 - s / total`` from step 0, so its learning rate drops at the end of warmup.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from bertkit.errors import BertkitError
from bertkit.settings import Optimizer, Schedule, choices

OPTIMIZERS = choices(Optimizer)
SCHEDULES = choices(Schedule)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into a decayed group and a non-decayed group.

    Not decayed: every bias, every LayerNorm parameter (found by module type *and* by the HF name
    ``LayerNorm``), and any other 1-d parameter (norm gains). Decayed: everything else (weight
    matrices, embeddings). Tied parameters appear once.
    """
    no_decay_ids: set[int] = set()
    for mod_name, module in model.named_modules():
        is_norm = isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or "layernorm" in mod_name.lower().replace("_", "")
        for p_name, p in module.named_parameters(recurse=False):
            if is_norm or p_name == "bias" or p.ndim < 2:
                no_decay_ids.add(id(p))
    decay, no_decay = [], []
    for p in model.parameters():  # deduplicates tied parameters
        if not p.requires_grad:
            continue
        (no_decay if id(p) in no_decay_ids else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al. 2019) as in NVIDIA's BERT recipe (apex ``FusedLAMB``, ``use_nvlamb=False``).

    Per parameter ``w`` with gradient ``g`` at step ``t``::

        m = b1*m + (1-b1)*g;   v = b2*v + (1-b2)*g^2
        u = (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + weight_decay * w
        r = ||w|| / ||u||   (1 when either norm is 0, or when weight_decay == 0 and not always_adapt)
        w = w - lr * r * u

    Global gradient-norm clipping (NVIDIA's pre-normalisation) is done by the training loop
    before ``step`` (``max_grad_norm``), so it is not repeated here.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        always_adapt: bool = False,
    ):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid LAMB hyper-parameters lr={lr} betas={betas} eps={eps}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, always_adapt=always_adapt)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.float()
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
                t = state["step"].item()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                update = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt_().add_(group["eps"]))
                w = p.float()
                if group["weight_decay"] != 0:
                    update.add_(w, alpha=group["weight_decay"])
                ratio = 1.0
                if group["weight_decay"] != 0 or group["always_adapt"]:
                    w_norm, u_norm = w.norm(), update.norm()
                    if w_norm > 0 and u_norm > 0:
                        ratio = (w_norm / u_norm).item()
                p.add_(update.to(p.dtype), alpha=-group["lr"] * ratio)
        return loss


def build_optimizer(
    model: nn.Module,
    name: str = "adamw",
    lr: float = 1e-4,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-6,
) -> torch.optim.Optimizer:
    """The optimiser ``name`` over :func:`param_groups` of ``model``."""
    groups = param_groups(model, weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if name == "lamb":
        return Lamb(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    raise BertkitError(f"optimizer: unknown value {name!r} (choose from {', '.join(OPTIMIZERS)})")


# ----------------------------------------------------------------------------------------------
# schedules: each returns the LR multiplier as a function of the (0-based) optimizer step; each
# is transformers' schedule of the same name, step for step (tests/test_optim.py compares them).


def _warmup(step: int, warmup_steps: int) -> float:
    """0 -> 1 over ``warmup_steps``: ``step / warmup_steps`` (0 at the first step, as transformers)."""
    return float(step) / float(max(1, warmup_steps))


def linear_warmup_linear_decay(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """``get_linear_schedule_with_warmup``: 0 -> 1 linearly over ``warmup_steps``, then 1 -> 0 at
    ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return _warmup(step, warmup_steps)
        return max(0.0, float(total_steps - step) / float(max(1, total_steps - warmup_steps)))

    return factor


def linear_warmup_cosine_decay(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """``get_cosine_schedule_with_warmup`` (half a cycle): linear warmup, then half a cosine from
    1 to 0 at ``total_steps`` (held at 0 after it)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return _warmup(step, warmup_steps)
        progress = min(1.0, float(step - warmup_steps) / float(max(1, total_steps - warmup_steps)))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return factor


def linear_warmup_constant(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """``get_constant_schedule_with_warmup``: linear warmup, then a constant learning rate
    (``total_steps`` unused, kept for symmetry)."""

    def factor(step: int) -> float:
        return _warmup(step, warmup_steps) if step < warmup_steps else 1.0

    return factor


_SCHEDULE_FNS = {
    "linear": linear_warmup_linear_decay,
    "cosine": linear_warmup_cosine_decay,
    "constant": linear_warmup_constant,
}


def build_scheduler(
    optimizer: torch.optim.Optimizer, name: str, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following schedule ``name``; call ``.step()`` once per optimizer step.

    Its ``state_dict`` holds ``last_epoch`` and ``base_lrs`` (the divergence guard lowers the
    latter), so a resumed run continues the schedule exactly.
    """
    if name not in _SCHEDULE_FNS:
        raise BertkitError(f"schedule: unknown value {name!r} (choose from {', '.join(SCHEDULES)})")
    if warmup_steps < 0 or total_steps < 1:
        raise BertkitError(f"schedule: need warmup_steps >= 0 and max_steps >= 1 (got {warmup_steps}, {total_steps})")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _SCHEDULE_FNS[name](warmup_steps, total_steps))


def build_budget_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    warmup_steps: int,
    total_steps: int,
    progress: Callable[[], float],
) -> torch.optim.lr_scheduler.LambdaLR:
    """Schedule ``name`` driven by time: after each optimizer step the multiplier is the
    schedule's value at step ``floor(progress() * total_steps)``, where ``progress()`` is the
    fraction of a time budget spent (clipped to [0, 1]). ``total_steps`` and ``warmup_steps``
    are then only units: warmup lasts ``warmup_steps / total_steps`` of the budget, and a linear
    or cosine schedule reaches 0 when the budget is spent, whether the machine ran 10 or 10,000
    steps. The schedule is read at whole units (as cramming's budget schedules), never between
    two, so the warmup cannot overshoot the peak; ``total_steps`` sets its resolution.
    """
    build_scheduler(optimizer, name, warmup_steps, total_steps)  # validates name and steps
    fn = _SCHEDULE_FNS[name](warmup_steps, total_steps)

    def factor(_step: int) -> float:
        return fn(math.floor(min(1.0, max(0.0, progress())) * total_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
