"""A dependency-free writer of TensorBoard event files (scalars only).

TensorBoard reads ``events.out.tfevents.*`` files: a sequence of TFRecords, each a serialised
``tensorflow.Event`` protobuf. Scalars need only a handful of protobuf fields, so this module
encodes them by hand instead of requiring the ``tensorboard`` package at training time::

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

# ---- CRC-32C (Castagnoli), table driven ------------------------------------------------------

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ---- minimal protobuf encoding -----------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(field: int, payload: bytes) -> bytes:
    return _varint((field << 3) | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, *, file_version: str | None = None, summary: bytes | None = None) -> bytes:
    msg = b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step)
    if file_version is not None:
        msg += _field_bytes(3, file_version.encode())
    if summary is not None:
        msg += _field_bytes(5, summary)
    return msg


def _scalar_summary(scalars: dict[str, float]) -> bytes:
    out = b""
    for tag, value in scalars.items():
        val = _field_bytes(1, tag.encode()) + b"\x15" + struct.pack("<f", float(value))
        out += _field_bytes(1, val)
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
        header = struct.pack("<Q", len(data))
        self._f.write(header + struct.pack("<I", _masked_crc(header)) + data + struct.pack("<I", _masked_crc(data)))

    def add_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """Write one event holding every ``tag -> value`` in ``scalars`` at ``step``."""
        self._write(_event(time.time(), step, summary=_scalar_summary(scalars)))
        self._f.flush()

    def close(self) -> None:
        self._f.close()


# ---- reading back (tests, tools) ---------------------------------------------------------------


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _parse(buf: bytes) -> dict[int, list]:
    """Decode one protobuf message into ``{field: [raw values]}`` (wire types 0, 1, 2, 5)."""
    fields: dict[int, list] = {}
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _read_varint(buf, i)
        elif wire == 1:
            val, i = buf[i : i + 8], i + 8
        elif wire == 2:
            n, i = _read_varint(buf, i)
            val, i = buf[i : i + n], i + n
        elif wire == 5:
            val, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(field, []).append(val)
    return fields


def read_scalars(path: str | os.PathLike) -> list[tuple[int, str, float]]:
    """All ``(step, tag, value)`` scalars of an event file, checking every record's CRCs."""
    data = Path(path).read_bytes()
    out, i = [], 0
    while i < len(data):
        header = data[i : i + 8]
        (n,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", data[i + 8 : i + 12])
        rec = data[i + 12 : i + 12 + n]
        (dcrc,) = struct.unpack("<I", data[i + 12 + n : i + 16 + n])
        if hcrc != _masked_crc(header) or dcrc != _masked_crc(rec):
            raise ValueError(f"{path}: corrupt record at byte {i}")
        i += 16 + n
        ev = _parse(rec)
        step = ev.get(2, [0])[0]
        for summary in ev.get(5, []):
            for value in _parse(summary).get(1, []):
                v = _parse(value)
                out.append((step, v[1][0].decode(), struct.unpack("<f", v[2][0])[0]))
    return out
