"""Small I/O helpers shared by every stage: text reading with precise errors, atomic writes."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from bertkit.errors import BertkitError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_mode(path: Path, is_dir: bool = False) -> None:
    """Give a temp file/dir the mode a plain open()/mkdir() would have (mkstemp/mkdtemp use
    0600/0700, and so do libraries that write through them: safetensors 0.8's ``save_file``)."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


class _GzipReader(gzip.GzipFile):
    """A ``GzipFile`` whose corrupt, truncated or fake (not gzip) data raises one
    :class:`BertkitError` naming the file and the uncompressed byte offset reached, instead of
    ``BadGzipFile`` / ``EOFError`` / ``zlib.error`` from the middle of a read."""

    def _checked(self, method, *args):
        try:
            return method(*args)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
            what = "truncated" if isinstance(e, EOFError) else "not valid gzip data"
            raise BertkitError(
                f"{self.name}: {what} at uncompressed byte offset {self.tell()} ({e or type(e).__name__}); "
                f"is the download complete / is it really a .gz file?"
            ) from None

    def read(self, size=-1):
        return self._checked(super().read, size)

    def read1(self, size=-1):
        return self._checked(super().read1, size)

    def readline(self, size=-1):
        return self._checked(super().readline, size)

    def peek(self, n):
        return self._checked(super().peek, n)


def open_binary(path: str | os.PathLike) -> io.BufferedIOBase:
    """Open a file for reading bytes, transparently decompressing ``.gz`` (corrupt or truncated
    gzip data is a :class:`BertkitError` naming the file)."""
    p = Path(path)
    if not p.exists():
        raise BertkitError(f"{p}: no such file")
    if p.is_dir():
        raise BertkitError(f"{p}: is a directory, expected a file")
    try:
        if p.suffix == ".gz":
            return _GzipReader(p, "rb")
        return open(p, "rb")
    except OSError as e:
        raise BertkitError(f"{p}: cannot open: {e.strerror or e}") from None


REPLACE_HINT = "pass --encoding-errors replace to substitute U+FFFD"
UTF8_BOM = b"\xef\xbb\xbf"


def iter_lines(
    path: str | os.PathLike, errors: str = "strict", hint: str = "save the file as UTF-8"
) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` (1-based, without the newline) from a UTF-8 text file; a
    byte-order mark at the start (Excel's "CSV UTF-8") is dropped.

    Invalid UTF-8 raises :class:`BertkitError` naming the file, line and byte offset and ending
    with ``hint``, unless ``errors="replace"`` is given, in which case bad bytes become U+FFFD.
    A NUL byte marks a binary file and is reported the same way.
    """
    offset = 0
    with open_binary(path) as f:
        for lineno, raw in enumerate(f, start=1):
            text = decode_line(path, lineno, raw, offset, errors, hint)
            offset += len(raw)
            yield lineno, text


def iter_stdin_lines() -> Iterator[str]:
    """Standard input's lines as text, without newlines, checked as :func:`iter_lines` checks a
    file (errors name ``<stdin>``, the line and the byte offset)."""
    offset = 0
    for lineno, raw in enumerate(sys.stdin.buffer, start=1):
        yield decode_line("<stdin>", lineno, raw, offset)
        offset += len(raw)


def decode_line(
    path: str | os.PathLike,
    lineno: int,
    raw: bytes,
    offset: int,
    errors: str = "strict",
    hint: str = "save the file as UTF-8",
) -> str:
    """One raw line (starting at byte ``offset`` of the file) as text without its newline; the
    byte-order mark of line 1 is dropped. NUL bytes and invalid UTF-8 (unless ``errors="replace"``)
    raise :class:`BertkitError` naming the file, line and byte offset."""
    if lineno == 1 and raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM) :]
        offset += len(UTF8_BOM)
    nul = raw.find(0)
    if nul >= 0:
        raise BertkitError(
            f"{path}:{lineno}: NUL byte at byte offset {offset + nul}; this looks like a binary file, not text"
        )
    try:
        text = raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise BertkitError(f"{path}:{lineno}: invalid UTF-8 at byte offset {offset + e.start} ({hint})") from None
    return text.rstrip("\r\n")


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON Lines file (``.gz`` too);
    a line that is not valid JSON, or not an object, is an error naming the file and line."""
    for lineno, text in iter_lines(path):
        if text.strip():
            yield lineno, parse_json_object(text, path, lineno)


def parse_json_object(text: str, path: str | os.PathLike, lineno: int) -> dict:
    """One JSON Lines record; invalid JSON or a non-object is an error naming ``path:lineno``."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise BertkitError(f"{path}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(obj, dict):
        raise BertkitError(f"{path}:{lineno}: expected a JSON object, found {type(obj).__name__}")
    return obj


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Build a directory at a temporary path beside ``target``; rename it into place on success.

    An existing ``target`` is replaced only after the new one is complete, so a crash never
    leaves a half-written directory under the final name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        publish_mode(tmp, is_dir=True)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[io.BufferedRandom]:
    """A binary file to write ``path`` through: a temporary file beside it, fsynced and renamed
    over ``path`` when the block ends without an exception (else removed). For outputs written
    piece by piece (streamed embeddings); a crash never leaves a partial file under ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w+b") as f:
            yield f  # type: ignore[misc]
            f.flush()
            os.fsync(f.fileno())
        publish_mode(Path(tmp), is_dir=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file + fsync + rename."""
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def finite_or_null(obj: object) -> object:
    """``obj`` with every NaN / infinite float (in nested dicts, lists, tuples) replaced by ``None``,
    so ``json.dumps`` writes valid JSON (``null``) instead of the non-standard ``NaN``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def dumps_json(obj: object, **kwargs) -> str:
    """``json.dumps`` that always gives valid JSON: an undefined (NaN / infinite) number is ``null``."""
    return json.dumps(finite_or_null(obj), allow_nan=False, **kwargs)


def atomic_write_json(path: str | os.PathLike, obj: object) -> None:
    """Write ``obj`` as indented JSON (non-finite numbers as ``null``) atomically."""
    atomic_write_text(path, dumps_json(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON object, raising :class:`BertkitError` with the position of a syntax error."""
    p = Path(path)
    if not p.is_file():
        raise BertkitError(f"{p}: no such file")
    try:
        obj = json.loads(p.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise BertkitError(f"{p}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise BertkitError(f"{p}: invalid UTF-8 at byte offset {e.start}") from None
    if not isinstance(obj, dict):
        raise BertkitError(f"{p}: expected a JSON object, found {type(obj).__name__}")
    return obj
