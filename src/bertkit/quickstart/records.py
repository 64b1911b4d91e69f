"""Stage records of the quickstart: each stage runs in ``OUT/NAME/`` and is complete once its
``stage.json`` (written last) records its key, a hash of the stage's options and of its inputs'
keys / file fingerprints; a re-run reuses a stage whose key matches and may resume one whose
unfinished attempt has the same key. Torch-free."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bertkit.errors import BertkitError
from bertkit.fileio import atomic_write_json, read_json

STAGE_FILE = "stage.json"
STAGE_FORMAT = 2  # bump when a stage's outputs change meaning: old stages are then redone


def stage_key(name: str, inputs: dict) -> str:
    """A stable hash of a stage's name, format version and inputs (JSON-serialisable)."""
    blob = json.dumps({"stage": name, "format": STAGE_FORMAT, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def file_fingerprint(path: str | os.PathLike) -> dict:
    """Identity of an input file or directory tree: path, sizes and modification times."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        return {"path": str(p.resolve()), "files": [file_fingerprint(f) for f in files]}
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class StageRecord:
    name: str
    key: str
    dir: Path
    result: dict
    seconds: float
    cached: bool


class StageRunner:
    """Runs numbered stages under ``out``; a stage whose ``stage.json`` key matches is reused."""

    def __init__(
        self,
        out: Path,
        log: Callable[[str], None] = print,
        on_done: Callable[[StageRecord], None] | None = None,
    ):
        self.out = Path(out)
        self.log = log
        self.on_done = on_done  # called after every stage, run or reused (the ETA)
        self.records: dict[str, StageRecord] = {}
        self.index = 0

    def completed(self, name: str, key: str, directory: Path) -> dict | None:
        f = directory / STAGE_FILE
        if not f.is_file():
            return None
        try:
            rec = read_json(f)
        except BertkitError:
            return None
        return rec if rec.get("key") == key and rec.get("stage") == name else None

    def run(
        self, name: str, inputs: dict, fn: Callable[[Path, bool], dict], title: str = "", dirname: str | None = None
    ) -> StageRecord:
        """Run ``fn(directory, resume) -> result`` unless an identical run is complete.

        ``resume`` is True when the directory holds an unfinished attempt with the same key
        (a stage may continue it, e.g. pre-training from its last checkpoint); an unfinished
        attempt with another key is deleted first. The directory is ``OUT/dirname`` (default
        the stage name).
        """
        self.index += 1
        directory = self.out / (dirname or name)
        key = stage_key(name, inputs)
        header = f"== [{self.index}] {name}{': ' + title if title else ''}"
        done = self.completed(name, key, directory)
        if done is not None:
            self.log(f"{header} -- done before (key {key}), reusing {directory}")
            rec = StageRecord(name, key, directory, done["result"], done.get("seconds", 0.0), True)
            self.records[name] = rec
            if self.on_done:
                self.on_done(rec)
            return rec
        self.log(header)
        pending = directory / ".pending.json"
        resume = pending.is_file() and _read_key(pending) == key
        if directory.exists() and not resume:
            shutil.rmtree(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(pending, {"key": key})
        t0 = time.perf_counter()
        result = fn(directory, resume)
        seconds = time.perf_counter() - t0
        atomic_write_json(
            directory / STAGE_FILE, {"stage": name, "key": key, "inputs": inputs, "result": result, "seconds": seconds}
        )
        pending.unlink(missing_ok=True)
        self.log(f"   {name} finished in {seconds:.1f} s")
        rec = StageRecord(name, key, directory, result, seconds, False)
        self.records[name] = rec
        if self.on_done:
            self.on_done(rec)
        return rec


def _read_key(path: Path) -> str | None:
    try:
        return read_json(path).get("key")
    except BertkitError:
        return None
