"""The output guard: no command replaces what bertkit did not create; one writer per run directory.

Every command that writes calls one of the checks below BEFORE its long work starts::

    from bertkit import outputs

    # a directory output (vocab, prepare, pretrain, finetune, quickstart, export, ...)
    own = outputs.check_output_dir(out, "finetune", inputs=[train, dev, init], overwrite=args.overwrite)
    with outputs.exclusive(out):                    # runs that take a while: one writer at a time
        with atomic_dir(out) as tmp:                # bertkit.fileio: temp + rename
            ...write into tmp...
            outputs.write_marker(tmp, "finetune")   # marks the directory as bertkit's own

    # a single-file output (predict, embed, ...)
    outputs.check_output_file(out, inputs=[data], overwrite=args.overwrite)

The rules (one :class:`BertkitError` line each, nothing touched):

* a directory output must be absent, empty, or hold bertkit's own output of the SAME kind
  (its :data:`MARKER` file, or the files earlier bertkit versions wrote for that kind); the
  latter is replaced only with ``overwrite`` (``--overwrite``, transformers'
  ``overwrite_output_dir``) or continued with ``resume``; a non-empty directory that bertkit
  did not write is never replaced, ``--overwrite`` or not;
* a file output must not exist (``--overwrite`` replaces it) and must not be a directory;
* no output may be one of the command's inputs or contain one (symlinks resolved), whatever
  the flags: ``finetune --init RUN --out RUN``, ``predict --data x --out x``;
* the path must not lie under a file, its nearest existing directory must be writable, and
  ``need_bytes`` (what will really be written) must fit in the free space.

:func:`exclusive` holds an OS lock (``fcntl.flock`` on ``DIR/.bertkit.lock``) for the life of
a run: released by the OS when the process dies, so a SIGKILL never leaves a stale lock; a
second writer gets "DIR is in use by pid N". :func:`disk_errors` turns a disk filling up
during a write (``OSError`` ENOSPC, torch's / safetensors' wrapped write errors) into one line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from bertkit import __version__
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_write_json

MARKER = ".bertkit.json"  # {"kind": ..., "bertkit": version, "time": ...}: bertkit wrote this directory
LOCK = ".bertkit.lock"  # flock'ed by the process writing the directory; holds its pid
_BOOKKEEPING = {MARKER, LOCK}


def _json_keys(path: Path) -> set[str]:
    """The top-level keys of a JSON object file (of the first line for JSON Lines); empty when
    the file is absent or not such JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.readline() if path.suffix == ".jsonl" else f.read()
        obj = json.loads(text)
    except (OSError, ValueError, UnicodeDecodeError):
        return set()
    return set(obj) if isinstance(obj, dict) else set()


def _first(paths: Iterable[Path]) -> Path:
    return next(iter(sorted(paths)), Path("/nonexistent"))


# What earlier bertkit versions (before the marker) left in a complete output of each kind,
# checked by content: a user's manifest.json or metrics.jsonl is not bertkit's.
_LEGACY = {
    "vocab": lambda d: (d / "vocab.txt").is_file() and {"vocab_size"} <= _json_keys(d / "vocab_report.json"),
    "prepare": lambda d: {"format", "key", "vocab_sha256", "splits"} <= _json_keys(d / "manifest.json"),
    "pretrain": lambda d: (
        {"train_config", "step"} <= _json_keys(_first(d.glob("checkpoint-*/meta.json")))
        or {"kind", "step"} <= _json_keys(d / "metrics.jsonl")
    ),
    "finetune": lambda d: {"task", "settings"} <= _json_keys(d / "task.json") and (d / "metrics.json").is_file(),
    "quickstart": lambda d: (
        {"stage", "key", "result"} <= _json_keys(_first(d.glob("*/stage.json"))) or any(d.glob("*/.pending.json"))
    ),
    "export": lambda d: {"format", "kind", "opset", "parity"} <= _json_keys(d / "export.json"),
}


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n / 2**10:,.1f} KiB"


def _resolved(p: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(p))))


def output_kind(directory: str | os.PathLike) -> str | None:
    """The kind of bertkit output ``directory`` holds (its marker, else the files an earlier
    bertkit wrote), or None."""
    d = Path(directory)
    marker = d / MARKER
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text(encoding="utf-8")).get("kind")
        except (ValueError, UnicodeDecodeError, AttributeError):
            kind = None
        if isinstance(kind, str):
            return kind
    return next((kind for kind, looks_like in _LEGACY.items() if looks_like(d)), None)


def write_marker(directory: str | os.PathLike, kind: str) -> None:
    """Mark ``directory`` as bertkit's own output of ``kind`` (write it into the temp directory
    before it is renamed into place, or at the start of an incremental run)."""
    atomic_write_json(
        Path(directory) / MARKER,
        {"kind": kind, "bertkit": __version__, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    )


def is_empty_dir(directory: Path) -> bool:
    """No entries except bertkit's own bookkeeping (lock file, marker of an unfinished run)."""
    return all(p.name in _BOOKKEEPING for p in directory.iterdir())


def check_not_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], what: str = "--out") -> None:
    """Refuse an output that is one of ``inputs`` or a directory containing one (symlinks resolved)."""
    target = _resolved(out)
    for given in inputs:
        if given is None or given == "":
            continue
        src = _resolved(given)
        if src == target:
            raise BertkitError(f"{out}: is also an input ({given}); {what} must be a new path")
        if target in src.parents:
            raise BertkitError(f"{out}: contains the input {given}; {what} must not hold the command's inputs")


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest existing ancestor; raises when that is not a directory."""
    p = Path(os.path.abspath(path))
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe != p and not probe.is_dir():
        raise BertkitError(f"{path}: cannot be created: {probe} is a file, not a directory")
    return probe


def _check_writable_and_space(path: Path, need_bytes: int) -> None:
    base = _nearest_existing(path)
    if base.is_dir():
        try:  # a real probe: os.access ignores read-only mounts and says yes to root
            fd, probe = tempfile.mkstemp(prefix=".bertkit-probe-", dir=base)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise BertkitError(f"{path}: cannot write in {base}: {e.strerror}") from None
    check_free_space(base, need_bytes, str(path))


def check_free_space(directory: str | os.PathLike, need_bytes: int, what: str) -> None:
    """Raise when the file system of ``directory`` has less than ``need_bytes`` free."""
    if need_bytes <= 0:
        return
    free = shutil.disk_usage(_nearest_existing(Path(directory))).free
    if free < need_bytes:
        raise BertkitError(f"{what}: not enough disk space: needs about {_mib(need_bytes)}, {_mib(free)} free")


def check_output_dir(
    out: str | os.PathLike,
    kind: str,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    resume: bool = False,
    need_bytes: int = 0,
    hint: str = "pass --overwrite to replace it, or choose another --out",
) -> bool:
    """Check a directory output before work starts (see the module docstring for the rules).

    Returns True when ``out`` already holds bertkit's own ``kind`` output (allowed only with
    ``overwrite`` or ``resume``), False when it is absent or empty. ``hint`` ends the message
    for an existing output of the same kind.
    """
    path = Path(out)
    check_not_input(path, inputs)
    if path.exists() and not path.is_dir():
        raise BertkitError(f"{path}: exists and is a file; --out must be a directory")
    own = False
    if path.is_dir() and not is_empty_dir(path):
        found = output_kind(path)
        if found is None:
            raise BertkitError(
                f"{path}: exists, is not empty and was not written by bertkit {kind}; bertkit never "
                f"replaces what it did not create: choose another --out (or remove it yourself)"
            )
        if found != kind:
            raise BertkitError(f"{path}: holds bertkit {found} output, not {kind} output; choose another --out")
        if not (overwrite or resume):
            raise BertkitError(f"{path}: already holds bertkit {kind} output; {hint}")
        own = True
    _check_writable_and_space(path, need_bytes)
    return own


def check_output_file(
    out: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    need_bytes: int = 0,
) -> None:
    """Check a single-file output before work starts: not an input (ever), not a directory,
    not an existing file unless ``overwrite``; writable, ``need_bytes`` free."""
    path = Path(out)
    if path.is_dir():
        raise BertkitError(f"{path}: is a directory; --out must be a file name")
    check_not_input(path, inputs)
    if path.exists() and not overwrite:
        raise BertkitError(f"{path}: exists; pass --overwrite to replace it, or choose another --out")
    _check_writable_and_space(path, need_bytes)


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-[^/]+$")


def remove_stale_temps(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete what killed atomic writes left in ``directory``: the ``.NAME.tmp-*`` and
    ``.NAME.old-*`` files and directories of :mod:`bertkit.fileio` (a crashed checkpoint save
    leaves a whole checkpoint there), only those of target ``name`` when given. Call it only
    while holding :func:`exclusive` on the directory being written, so that no live writer's
    temp is touched. Returns what was removed."""
    d = Path(directory)
    if not d.is_dir():
        return []
    removed = []
    for p in sorted(d.iterdir()):
        m = _TEMP.match(p.name)
        if not m or (name is not None and m.group("name") != name):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


@contextlib.contextmanager
def exclusive(directory: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive OS lock on ``directory`` (created if absent) while the block runs.

    ``fcntl.flock`` on ``directory/.bertkit.lock``, which holds the owner's pid; the OS drops
    the lock when the process ends however it ends. A second process raises
    ``BertkitError("DIR is in use by pid N ...")`` at once instead of waiting.
    """
    d = Path(directory)
    created = not d.exists()
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise BertkitError(f"{d}: cannot create the run directory's lock file: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise BertkitError(
                f"{d} is in use by pid {pid} (another bertkit process writes there); "
                f"wait for it to finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield d
        finally:
            if created and d.is_dir() and is_empty_dir(d):  # a run that wrote nothing leaves nothing
                shutil.rmtree(d, ignore_errors=True)
    finally:
        os.close(fd)  # releases the lock; the file stays (unlinking it would race a new locker)


NEARLY_FULL = 16 << 20  # free bytes below which torch's unspecific write error means "disk full"


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(_nearest_existing(path)).free
    except (OSError, BertkitError):
        return None


def _is_disk_full(exc: BaseException, free: int | None) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)  # safetensors' SafetensorError wraps the OSError's text
    if any(s in text for s in ("No space left", "os error 28", "Disk quota exceeded")):
        return True
    # torch.save's C++ writer says only "unexpected pos N vs M" / "file write failed"
    return "inline_container" in text and free is not None and free < NEARLY_FULL


@contextlib.contextmanager
def disk_errors(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn "disk full" (and a write refused by the file system) inside the block into one
    :class:`BertkitError` line naming ``path``; other errors pass through unchanged. Put it
    INSIDE ``atomic_dir`` so the free space is read before the temp files are removed."""
    try:
        yield
    except BertkitError:
        raise
    except Exception as e:
        free = _free_bytes(Path(path))
        if _is_disk_full(e, free):
            left = f"; {_mib(free)} free" if free is not None else ""
            raise BertkitError(f"{path}: out of disk space while writing {what}{left}") from None
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise BertkitError(f"{path}: cannot write {what}: {e.strerror}") from None
        raise
