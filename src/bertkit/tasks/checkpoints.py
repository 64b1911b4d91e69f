"""Task checkpoints: the directory a fine-tuning run leaves (model + tokenizer + ``task.json``)
and the predictions files written from it. Below both :mod:`bertkit.finetune` (which writes them)
and :mod:`bertkit.inference` (which reads them), so neither imports the other for this."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bertkit import heads, outputs, runtime
from bertkit.checkpoint import resolve_pretrained
from bertkit.config import BertConfig
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_write_json, atomic_write_text, iter_jsonl, read_json
from bertkit.tasks import get_task
from bertkit.tasks.base import Task
from bertkit.tf_checkpoint import is_tf_checkpoint_dir
from bertkit.tokenization import Tokenizer
from bertkit.training.checkpoints import list_checkpoints

TASK_FILE = "task.json"


def resolve_init(path: str) -> str:
    """A checkpoint directory as given (also a Google TensorFlow checkpoint), a Hugging Face Hub
    name's cached copy, or for a pre-training run directory (no ``config.json``,
    ``checkpoint-STEP/`` inside) its newest complete checkpoint."""
    p = resolve_pretrained(path)
    if (p / "config.json").is_file() or is_tf_checkpoint_dir(p):
        return str(p)
    found = list_checkpoints(p)
    if not found:
        raise BertkitError(f"{p}: neither a checkpoint (no config.json) nor a run with checkpoint-STEP/ inside")
    runtime.log(f"{p}: a training run; initialising from its newest checkpoint {found[-1].name}")
    return str(found[-1])


def check_seq_length(task: Task, max_position_embeddings: int, source: str, given: bool = True) -> None:
    """Refuse a ``max_seq_length`` the model has no position embeddings for (before any work); a
    default one (not ``given``) longer than the model's positions is lowered to them."""
    n = task.settings["max_seq_length"]
    if n > max_position_embeddings and not given:
        task.settings["max_seq_length"] = max_position_embeddings
    elif n > max_position_embeddings:
        raise BertkitError(
            f"--max-seq-length {n} is longer than the model's {max_position_embeddings} positions "
            f"(max_position_embeddings in {source}); use at most {max_position_embeddings}"
        )


def save_task_model(directory: Path, model, tok, task: Task) -> None:
    """Write the model + tokenizer + ``task.json`` into ``directory`` (other files kept)."""
    staging = Path(tempfile.mkdtemp(prefix=".model-", dir=directory))
    target = staging / "m"
    model.save_pretrained(target, tokenizer=tok)
    for p in target.iterdir():
        p.replace(directory / p.name)
    shutil.rmtree(staging, ignore_errors=True)
    atomic_write_json(directory / TASK_FILE, {"task": task.name, "settings": task.settings, "labels": task.labels})


def column_settings(
    task_name: str,
    text: str | None = None,
    text_pair: str | None = None,
    label: str | None = None,
    header: bool | None = None,
) -> dict[str, Any]:
    """Column overrides under the task's setting names (multiple choice: context / start)."""
    if task_name == "choice":
        d = {"context_column": text, "start_column": text_pair, "label_column": label}
    else:
        d = {"text_column": text, "text_pair_column": text_pair, "label_column": label}
    d["header"] = header
    return {k: v for k, v in d.items() if v is not None}


def load_task_model(model_dir: str, task_name: str | None = None, columns: dict | None = None, **settings: Any):
    """``(task, model, tokenizer)`` from a task checkpoint (``task.json``) or, with ``task_name``,
    from any head checkpoint (labels from its ``config.json``). ``columns`` = ``{"text", "text_pair",
    "label"}`` overrides of the saved column names; ``settings`` other task settings."""
    path = Path(model_dir)
    if not path.is_dir():
        raise BertkitError(f"{path}: no such model directory")
    saved = read_json(path / TASK_FILE) if (path / TASK_FILE).is_file() else None
    if saved is None and task_name is None:
        raise BertkitError(f"{path}: no {TASK_FILE} (not a bertkit task checkpoint); pass --task")
    if saved is not None and task_name is not None and task_name != saved["task"]:
        raise BertkitError(f"{path}: this model was fine-tuned for task {saved['task']!r}, not {task_name!r}")
    name = saved["task"] if saved else task_name
    merged = {
        **(saved["settings"] if saved else {}),
        **{k: v for k, v in settings.items() if v is not None},
        **column_settings(name, **(columns or {})),
    }
    task = get_task(name, **merged)
    cfg = BertConfig.from_pretrained(path)
    given = settings.get("max_seq_length") is not None or (saved is not None and "max_seq_length" in saved["settings"])
    check_seq_length(task, cfg.max_position_embeddings, str(path / "config.json"), given)
    if saved is not None:
        task.labels = saved.get("labels")
    elif name in ("classification", "pair", "tagging"):
        task.labels = [cfg.id2label[i] for i in sorted(cfg.id2label)]
    model = getattr(heads, task.head).from_pretrained(path)
    if model.loading_info and model.loading_info.missing:
        raise BertkitError(
            f"{path}: the checkpoint has no trained {task.head} head "
            f"(missing {', '.join(model.loading_info.missing[:4])})"
        )
    model.to(runtime.choose_device("auto"))
    return task, model, Tokenizer.from_pretrained(str(path))


def write_predictions(path: Path, task: Task, examples: Sequence, predictions: Sequence) -> None:
    """Atomically write one JSON object per line: the input, ``prediction`` fields and ``gold``;
    a ``.json`` path gets the task's official format instead."""
    if path.suffix == ".json":
        with outputs.disk_errors(path, "predictions"):
            atomic_write_json(path, task.official_predictions(examples, predictions))
        return
    lines = []
    for i, (e, p) in enumerate(zip(examples, predictions), start=1):
        try:
            lines.append(json.dumps(task.record(e, p), ensure_ascii=False, allow_nan=False))
        except ValueError:  # NaN / infinity: not JSON, and not a prediction
            raise BertkitError(
                f"{path}: the model's output for example {i} is not finite (NaN or infinity); "
                f"nothing written (the model's activations overflow on this input)"
            ) from None
    with outputs.disk_errors(path, "predictions"):
        atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_predictions(path: str) -> list[dict]:
    """The records of a predictions file written by :func:`write_predictions`."""
    return [obj for _, obj in iter_jsonl(path)]
