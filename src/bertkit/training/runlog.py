"""A run's log: ``metrics.jsonl`` (one JSON record a line) and TensorBoard scalars under
``tensorboard/`` (``train/loss``, ``eval/accuracy``, ...). The training loop appends as it goes;
fine-tuning, whose loops run without an output directory, writes a finished run's records at once.
"""

from __future__ import annotations

import json
from pathlib import Path

from bertkit.fileio import atomic_write_text
from bertkit.tb_events import EventWriter, truncate_events

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
        """On resume: drop the records (metrics.jsonl and TensorBoard) that the interrupted run
        wrote after its last checkpoint, so that no step appears twice. A line cut short by a
        kill goes too."""
        if self.out_dir is None:
            return
        path = self.out_dir / METRICS
        if path.is_file():
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # the partial last line of a killed writer
                if isinstance(record, dict) and record.get("step", 0) <= step:
                    kept.append(line)
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        for events in sorted((self.out_dir / TENSORBOARD).glob("events.out.tfevents.*")):
            truncate_events(events, step)

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
