"""A writer of TensorBoard event files (scalars only) that needs no tensorboard package.

TensorBoard reads ``events.out.tfevents.*`` files: a sequence of TFRecords, each a serialised
``tensorflow.Event`` protobuf. Scalars need only a handful of protobuf fields, so this module
encodes them by hand (:mod:`bertkit.protowire`) instead of requiring the ``tensorboard`` package at training time::

    TFRecord: uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
    Event   : 1 wall_time (double) | 2 step (int64) | 3 file_version (string) | 5 summary
    Summary : 1 value (repeated)    Value: 1 tag (string) | 2 simple_value (float)

:func:`read_scalars` decodes such files back (used by the tests; TensorBoard itself reads them
with ``tensorboard --logdir RUN_DIR``).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

from bertkit.fileio import atomic_write_bytes
from bertkit.protowire import bytes_field, encode_varint, iter_fields, masked_crc32c


def _event(wall_time: float, step: int, *, file_version: str | None = None, summary: bytes | None = None) -> bytes:
    msg = b"\x09" + struct.pack("<d", wall_time) + b"\x10" + encode_varint(step)
    if file_version is not None:
        msg += bytes_field(3, file_version.encode())
    if summary is not None:
        msg += bytes_field(5, summary)
    return msg


def _scalar_summary(scalars: dict[str, float]) -> bytes:
    out = b""
    for tag, value in scalars.items():
        val = bytes_field(1, tag.encode()) + b"\x15" + struct.pack("<f", float(value))
        out += bytes_field(1, val)
    return out


class EventWriter:
    """Append scalar events to a new ``events.out.tfevents.TIME.HOST`` file in ``log_dir``."""

    def __init__(self, log_dir: str | os.PathLike):
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = Path(log_dir) / name
        self._f = open(self.path, "ab")
        self._write(_event(time.time(), 0, file_version="brain.Event:2"))

    def _write(self, data: bytes) -> None:
        self._f.write(_frame(data))

    def add_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """Write one event holding every ``tag -> value`` in ``scalars`` at ``step``."""
        self._write(_event(time.time(), step, summary=_scalar_summary(scalars)))
        self._f.flush()

    def close(self) -> None:
        self._f.close()


# ---- reading back (tests, tools) ---------------------------------------------------------------


def _parse(buf: bytes) -> dict[int, list]:
    """Decode one protobuf message into ``{field: [raw values]}``."""
    fields: dict[int, list] = {}
    for field, value in iter_fields(buf, "tensorboard event"):
        fields.setdefault(field, []).append(value)
    return fields


def _records(data: bytes, path: str | os.PathLike) -> list[bytes]:
    """The TFRecords of an event file, CRCs checked; a record cut short at the end (a writer
    killed mid-write) is dropped, any other damage is an error."""
    out, i = [], 0
    while i < len(data):
        if i + 16 > len(data):
            break
        header = data[i : i + 8]
        (n,) = struct.unpack("<Q", header)
        if i + 16 + n > len(data):
            break
        (hcrc,) = struct.unpack("<I", data[i + 8 : i + 12])
        rec = data[i + 12 : i + 12 + n]
        (dcrc,) = struct.unpack("<I", data[i + 12 + n : i + 16 + n])
        if hcrc != masked_crc32c(header) or dcrc != masked_crc32c(rec):
            raise ValueError(f"{path}: corrupt record at byte {i}")
        out.append(rec)
        i += 16 + n
    return out


def _step(event: dict[int, list]) -> int:
    return event.get(2, [0])[0]


def read_scalars(path: str | os.PathLike) -> list[tuple[int, str, float]]:
    """All ``(step, tag, value)`` scalars of an event file, checking every record's CRCs."""
    out = []
    for rec in _records(Path(path).read_bytes(), path):
        ev = _parse(rec)
        for summary in ev.get(5, []):
            for value in _parse(summary).get(1, []):
                v = _parse(value)
                out.append((_step(ev), v[1][0].decode(), struct.unpack("<f", v[2][0])[0]))
    return out


def truncate_events(path: str | os.PathLike, max_step: int) -> int:
    """Drop the scalar events after ``max_step`` from an event file (atomically rewritten; a
    record cut short by a kill goes too); returns how many events were dropped. Used on resume,
    so that no step appears twice once the resumed run logs it again."""
    data = Path(path).read_bytes()
    kept, dropped, size = [], 0, 0
    for rec in _records(data, path):
        ev = _parse(rec)
        if 5 in ev and _step(ev) > max_step:
            dropped += 1
            continue
        kept.append(rec)
        size += 16 + len(rec)
    if dropped or size != len(data):
        atomic_write_bytes(path, b"".join(_frame(rec) for rec in kept))
    return dropped


def _frame(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))
