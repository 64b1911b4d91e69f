"""Training checkpoints: ``out_dir/checkpoint-STEP/`` directories a run resumes from.

(Not to be confused with model directories, :mod:`bertkit.checkpoint`, which a training
checkpoint contains, nor with activation checkpointing.) A training checkpoint holds the model
(``save_pretrained`` when the model has it: ``config.json`` + ``model.safetensors`` + tokenizer
files; otherwise ``model.safetensors``), ``trainer_state.pt`` (the :class:`TrainerState`
counters, optimizer, scheduler, scaler, every rank's RNG and data-loader state) and
``meta.json`` (resolved config, versions, step, last metrics), written last: its presence marks
the directory complete.
"""

from __future__ import annotations

import dataclasses
import platform
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from bertkit import __version__, outputs
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_dir, atomic_write_json, publish_mode, read_json

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.pt"
META = "meta.json"


@dataclass
class TrainerState:
    """The loop's progress: what a checkpoint restores besides weights, optimizer, RNG and data.

    Saved by :meth:`to_dict` into ``trainer_state.pt`` and read back by :meth:`from_dict`;
    a field added later gets its default when an older checkpoint lacks it.
    """

    step: int = 0
    skipped_steps: int = 0  # non-finite steps skipped, over the whole run
    overflow_steps: int = 0  # fp16: updates the loss scaler skipped (gradient overflow)
    rollbacks: int = 0
    lr_scale: float = 1.0  # cumulative divergence back-off
    tokens_seen: int = 0  # global (all ranks)
    elapsed_s: float = 0.0  # seconds of fit() in earlier processes (saved: up to the checkpoint)
    history: list[dict] = field(default_factory=list)
    last_train: dict = field(default_factory=dict)
    last_eval: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> TrainerState:
        return cls(**{f.name: saved[f.name] for f in dataclasses.fields(cls) if f.name in saved})


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints in ``out_dir`` (``checkpoint-STEP`` with trainer state), oldest first."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = []
    for p in out_dir.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir() and (p / TRAINER_STATE).is_file() and (p / META).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def prune_checkpoints(out_dir: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` complete checkpoints (0 keeps all)."""
    if keep_last <= 0:
        return
    for old in list_checkpoints(out_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def checkpoint_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> int:
    """What a checkpoint will take on disk: the model file as written (for BERT pre-training
    the tied decoder is stored a second time), the optimizer state (its tensors once they
    exist, else two fp32 moments per trainable parameter as AdamW and LAMB keep) + 1 MiB of
    configuration, vocabulary and counters."""
    if hasattr(model, "saved_bytes"):
        weights = model.saved_bytes()
    else:
        weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    moments = 2 * sum(4 * p.numel() for p in model.parameters() if p.requires_grad)
    if optimizer is not None:
        held = sum(
            t.numel() * t.element_size()
            for state in optimizer.state.values()
            for t in state.values()
            if isinstance(t, torch.Tensor)
        )
        moments = max(moments, held)
    return weights + moments + 2**20


def write_checkpoint(
    target: Path,
    model: nn.Module,
    tokenizer: Any,
    trainer_state: dict,
    meta: dict,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Write ``target`` atomically: the model, ``trainer_state.pt`` (``trainer_state``), and
    ``meta.json`` (``meta`` + versions + time) last. Raises :class:`BertkitError` when the disk
    has too little space for it, or runs out while writing (the partial copy is removed)."""
    outputs.check_free_space(target.parent, checkpoint_bytes(model, optimizer), str(target))
    meta = {**meta, "versions": _versions(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with atomic_dir(target) as tmp, outputs.disk_errors(target, "the checkpoint"):
        _save_model(model, tmp, tokenizer)
        torch.save(trainer_state, tmp / TRAINER_STATE)
        atomic_write_json(tmp / META, meta)  # written last: marks the directory complete


def read_trainer_state(path: Path) -> dict:
    """The ``trainer_state.pt`` of checkpoint ``path`` (on CPU)."""
    return torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=False)


def read_meta(checkpoint_dir: str | Path) -> dict:
    """The ``meta.json`` of a training checkpoint."""
    return read_json(Path(checkpoint_dir) / META)


def _versions() -> dict:
    return {"bertkit": __version__, "torch": torch.__version__, "python": platform.python_version()}


def _save_model(model: nn.Module, directory: Path, tokenizer: Any) -> None:
    """``model.save_pretrained`` when the model has it, else ``model.safetensors`` (+ tokenizer)."""
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(directory, tokenizer=tokenizer)
        return
    save_model(model, str(directory / "model.safetensors"))
    publish_mode(directory / "model.safetensors")
    if tokenizer is not None:
        tokenizer.save(directory)


def load_model_weights(model: nn.Module, directory: Path) -> None:
    """Load the weights of a checkpoint written by :func:`write_checkpoint` into ``model`` in place.

    A checkpoint of another architecture (e.g. ``--resume`` with a different model preset) is a
    :class:`BertkitError` naming the differing config keys or tensor shapes."""
    if hasattr(type(model), "from_pretrained"):
        loaded = type(model).from_pretrained(directory)
        _check_fits(model, loaded.state_dict(), directory, getattr(loaded, "config", None))
        model.load_state_dict(loaded.state_dict())
        return
    try:
        load_model(model, str(directory / "model.safetensors"), device=str(next(model.parameters()).device))
    except RuntimeError as e:  # missing / unexpected / mis-shaped tensors
        first = str(e).strip().splitlines()[-1].strip()
        raise BertkitError(
            f"{directory}: the checkpoint was saved by a different model than this run's ({first}); "
            f"resume with the model settings the run was started with"
        ) from None


def _check_fits(model: nn.Module, saved: dict, directory: Path, saved_config: Any) -> None:
    """Refuse ``saved`` weights that do not fit ``model``, naming the config keys that differ (or
    else the tensors)."""
    own = model.state_dict()
    problems = [f"{k} missing" for k in own if k not in saved] + [f"{k} unexpected" for k in saved if k not in own]
    problems += [
        f"{k} {list(saved[k].shape)} in the checkpoint vs {list(v.shape)} in the model"
        for k, v in own.items()
        if k in saved and saved[k].shape != v.shape
    ]
    if not problems:
        return
    own_config = getattr(model, "config", None)
    if saved_config is not None and own_config is not None:
        a, b = saved_config.to_dict(), own_config.to_dict()
        keys = [k for k in a if k in b and a[k] != b[k] and k not in ("id2label", "label2id", "architectures")]
        if keys:
            problems = [f"{k} {a[k]!r} in the checkpoint vs {b[k]!r} now" for k in keys]
    more = f", ... ({len(problems) - 4} more)" if len(problems) > 4 else ""
    raise BertkitError(
        f"{directory}: the checkpoint was saved by a different model than this run's "
        f"({'; '.join(problems[:4])}{more}); resume with the model settings the run was started with"
    )
