"""What a run shows the person watching it: the tqdm bar (in steps, or in seconds of a time
budget), the text line that stands in for the bar without one (logs, clusters), and the
closing summary line."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm import tqdm

from bertkit.training.checkpoints import TrainerState
from bertkit.training.config import TrainConfig


def fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def progress_bar(cfg: TrainConfig, position: int, is_main: bool) -> tqdm:
    """The bar, at ``position`` (steps, or seconds of the time budget); shown on rank 0 with ``progress``."""
    budget = cfg.time_budget_s > 0
    return tqdm(
        total=int(cfg.time_budget_s) if budget else cfg.max_steps,
        initial=position,
        unit="s" if budget else "step",
        dynamic_ncols=True,
        disable=not (is_main and cfg.progress),
        desc="train",
    )


def postfix(record: dict) -> dict:
    """A train record's loss, learning rate, tokens/s and MFU as the bar shows them."""
    return {
        "loss": f"{record['loss']:.4f}",
        "lr": f"{record['lr']:.2e}",
        "tok/s": f"{record['tokens_per_s']:.0f}",
        "mfu": f"{100 * record['mfu']:.1f}%",
    }


def progress_line(
    cfg: TrainConfig, record: dict, step: int, elapsed: float, steps_run: int, run_elapsed: Callable[[], float]
) -> str:
    """The log line that stands in for the progress bar (``progress=False``): logs, clusters.
    ``elapsed`` is this process's training time, ``run_elapsed()`` the whole run's."""
    post = postfix(record)
    if cfg.time_budget_s > 0:
        eta = max(0.0, cfg.time_budget_s - run_elapsed())
        where = f"step {step} ({100 * min(1.0, run_elapsed() / cfg.time_budget_s):.0f}% of the time budget)"
    else:
        eta = elapsed / max(steps_run, 1) * (cfg.max_steps - step)
        where = f"step {step}/{cfg.max_steps} ({100 * step / cfg.max_steps:.0f}%)"
    return (
        f"{where} loss {post['loss']} "
        f"lr {post['lr']} {post['tok/s']} tok/s MFU {post['mfu']} | {fmt_duration(elapsed)} elapsed, "
        f"ETA {fmt_duration(eta)}"
    )


def summary_line(
    cfg: TrainConfig, state: TrainerState, scaler: torch.amp.GradScaler, summary: dict, steps_run: int
) -> str:
    """The line logged when ``fit`` returns ``summary``."""
    train = summary["train"]
    took = fmt_duration(summary["elapsed_this_run_s"])
    if state.elapsed_s:
        took += f" ({fmt_duration(summary['elapsed_s'])} in all)"
    if cfg.time_budget_s > 0:
        took += f" of a {fmt_duration(cfg.time_budget_s)} time budget"
        parts = [f"done: step {summary['step']} ({steps_run} this run) in {took}"]
    else:
        parts = [f"done: step {summary['step']}/{cfg.max_steps} ({steps_run} this run) in {took}"]
    if train:
        parts.append(f"train loss {train['loss']:.4f}")
        parts.append(f"{train['tokens_per_s']:.0f} tokens/s, MFU {100 * train['mfu']:.1f}%")
    if state.last_eval:
        parts.append("eval " + " ".join(f"{k} {v:.4f}" for k, v in state.last_eval.items() if k != "step"))
    parts.append(f"{summary['skipped_steps']} skipped steps, {summary['rollbacks']} rollbacks")
    if scaler.is_enabled():
        parts.append(f"{summary['overflow_steps']} fp16 overflow steps, loss scale {scaler.get_scale():g}")
    if summary["checkpoint"]:
        parts.append(f"checkpoint {summary['checkpoint']}")
    return "; ".join(parts)
