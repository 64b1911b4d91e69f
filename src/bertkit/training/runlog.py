"""A run's log: ``metrics.jsonl`` (one JSON record a line) and TensorBoard scalars under
``tensorboard/`` (``train/loss``, ``eval/accuracy``, ...). The training loop appends as it goes;
fine-tuning, whose loops run without an output directory, writes a finished run's records at once.
"""

from __future__ import annotations

import json
from pathlib import Path

from bertkit.fileio import atomic_write_text
from bertkit.tb_events import EventWriter

METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"


def scalars(record: dict) -> dict[str, float]:
    """A record's numeric values as TensorBoard tags ``KIND/NAME`` (kind ``train`` or ``eval``)."""
    prefix = record.get("kind", "train")
    return {
        f"{prefix}/{k}": v
        for k, v in record.items()
        if k not in ("step", "kind") and isinstance(v, (int, float)) and v is not None
    }


class RunLog:
    """``metrics.jsonl`` + TensorBoard events in ``out_dir`` (no-op without out_dir)."""

    def __init__(self, out_dir: Path | None, tensorboard: bool):
        self.out_dir = out_dir
        self.tensorboard = tensorboard
        self._tb = None

    def truncate_after(self, step: int) -> None:
        """On resume: drop records the killed run wrote after its last checkpoint."""
        path = self.out_dir / METRICS if self.out_dir else None
        if path is None or not path.is_file():
            return
        kept = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def write(self, record: dict) -> None:
        """Append ``record`` to ``metrics.jsonl`` and its scalars to TensorBoard."""
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / METRICS, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.add_scalars(record)

    def add_scalars(self, record: dict) -> None:
        """TensorBoard scalars of ``record`` (when enabled)."""
        if self.tensorboard:
            if self._tb is None:
                self._tb = EventWriter(self.out_dir / TENSORBOARD)
            self._tb.add_scalars(record["step"], scalars(record))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def write_run_log(directory: Path, history: list[dict]) -> None:
    """A finished run's records at once: ``metrics.jsonl`` replaced atomically, then TensorBoard."""
    atomic_write_text(directory / METRICS, "".join(json.dumps(rec) + "\n" for rec in history))
    log = RunLog(directory, tensorboard=True)
    try:
        for rec in history:
            log.add_scalars(rec)
    finally:
        log.close()
