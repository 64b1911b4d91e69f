"""A running trainer's side of its checkpoints: when one is due, what ``trainer_state.pt`` and
``meta.json`` hold besides the model, which checkpoint a resume (or a rollback) starts from,
and putting every part back: weights, optimizer, scheduler, loss scaler, data position, RNG
and the :class:`~bertkit.training.checkpoints.TrainerState`."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
from torch import nn

from bertkit import runtime
from bertkit.errors import BertkitError
from bertkit.training.batches import Batches
from bertkit.training.checkpoints import (
    TRAINER_STATE,
    TrainerState,
    list_checkpoints,
    load_model_weights,
    read_trainer_state,
)
from bertkit.training.config import TrainConfig


def newest_checkpoint(out_dir: Path | None) -> Path | None:
    """The newest complete checkpoint in ``out_dir`` (None without one, or without ``out_dir``)."""
    found = list_checkpoints(out_dir) if out_dir is not None else []
    return found[-1] if found else None


def checkpoint_due(cfg: TrainConfig, out_dir: Path | None, step: int, last_save_time: float) -> bool:
    """Whether to save at ``step``: every ``save_every`` steps, or ``save_every_minutes`` after
    ``last_save_time`` (``time.monotonic``; collective then: rank 0's clock decides)."""
    if out_dir is None:
        return False
    if cfg.save_every and step % cfg.save_every == 0:
        return True
    if cfg.save_every_minutes:
        due = time.monotonic() - last_save_time >= 60 * cfg.save_every_minutes
        return bool(runtime.broadcast_object(due))  # rank 0's clock decides for everyone
    return False


def checkpoint_contents(
    state: TrainerState,
    cfg: TrainConfig,
    run_config: dict,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    rng: list,
    data: list,
    world_size: int,
) -> tuple[dict, dict]:
    """``(trainer_state, meta)``: what ``trainer_state.pt`` and ``meta.json`` of a checkpoint at
    ``state`` hold (``rng`` and ``data``: one entry per rank)."""
    trainer_state = {
        **state.to_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng,  # one entry per rank
        "data": data,  # one entry per rank
        "world_size": world_size,
    }
    meta = {
        "step": state.step,
        "config": run_config,
        "train_config": dataclasses.asdict(cfg),
        "world_size": world_size,
        "metrics": {"train": state.last_train, "eval": state.last_eval},
    }
    return trainer_state, meta


def resume_checkpoint(resume: bool | str | Path, out_dir: Path | None, rank: int) -> Path | None:
    """The checkpoint ``fit(resume=...)`` starts from: ``resume`` itself when it is a path, else
    the newest complete one in ``out_dir`` as rank 0 sees it (None, with a message, when there
    is none: the run starts from scratch)."""
    if isinstance(resume, (str, Path)):
        path = Path(resume)
        if not (path / TRAINER_STATE).is_file():
            raise BertkitError(f"{path}: not a complete training checkpoint (no {TRAINER_STATE})")
        return path
    if out_dir is None:
        raise BertkitError("resume: needs an out_dir to look for checkpoints in")
    found = list_checkpoints(out_dir)
    # rank 0's listing decides for every rank: on a shared file system another node's
    # view of the directory may lag (NFS caches listings for up to a minute), and ranks
    # resuming from different steps would train apart
    newest = runtime.broadcast_object(str(found[-1]) if found else None)
    if newest is None:
        runtime.log(f"resume: no complete checkpoint in {out_dir}; starting from scratch")
        return None
    path = Path(str(newest))
    if not (path / TRAINER_STATE).is_file():
        raise BertkitError(
            f"{path}: rank 0 resumes from this checkpoint, which rank {rank} cannot read; "
            "--out must be on storage every node shares"
        )
    return path


def restore_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    batches: Batches,
    dist: runtime.DistInfo,
) -> TrainerState:
    """Restore model, optimizer, scheduler, scaler, data position and RNG (this rank's) from
    checkpoint ``path``; returns its trainer state."""
    saved = read_trainer_state(path)
    if saved["world_size"] != dist.world_size:
        raise BertkitError(
            f"{path}: saved with world size {saved['world_size']}, now "
            f"{dist.world_size}; resume with the same number of processes"
        )
    load_model_weights(model, path)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    batches.load_state_dict(saved["data"][dist.rank])
    state = TrainerState.from_dict(saved)
    runtime.restore_rng_state(saved["rng"][dist.rank])  # last: loading may draw numbers
    return state
