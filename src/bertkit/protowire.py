"""The protobuf wire format and CRC-32C, by hand: what TensorBoard event files
(:mod:`bertkit.tb_events`) and TensorFlow checkpoints (:mod:`bertkit.tf_checkpoint`) need,
without the ``protobuf`` or ``tensorflow`` packages.

A message is a run of fields ``tag = field_number << 3 | wire_type`` (a varint) followed by a
varint (wire type 0), 8 bytes (1), a varint length and that many bytes (2), or 4 bytes (5).
Records in both formats are checked with the *masked* CRC-32C of LevelDB / TFRecord.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from bertkit.errors import BertkitError

_MASK_DELTA = 0xA282EAD8


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data`` (Google's C implementation, ``google-crc32c``)."""
    import google_crc32c

    return google_crc32c.value(data)


def mask_crc(crc: int) -> int:
    """The masked crc of LevelDB / TFRecord: rotated right by 15 bits plus a constant, so a crc
    stored inside checksummed data does not checksum to a fixed value."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    return mask_crc(crc32c(data))


# --------------------------------------------------------------------------- writing
def encode_varint(n: int) -> bytes:
    """Base-128 varint of ``n`` (negative numbers as their 64-bit two's complement)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint_field(field: int, value: int) -> bytes:
    return encode_varint(field << 3) + encode_varint(value)


def bytes_field(field: int, payload: bytes) -> bytes:
    return encode_varint((field << 3) | 2) + encode_varint(len(payload)) + payload


# --------------------------------------------------------------------------- reading
def read_varint(buf: bytes | memoryview, pos: int, source: str = "protobuf") -> tuple[int, int]:
    """The varint at ``buf[pos]`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise BertkitError(f"{source}: truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise BertkitError(f"{source}: varint longer than 10 bytes")


def iter_fields(buf: bytes | memoryview, source: str = "protobuf") -> Iterator[tuple[int, int | bytes]]:
    """``(field_number, value)`` of each field of a message: an int for varints, the raw bytes
    for fixed64 / fixed32 (little-endian) and length-delimited fields."""
    pos, n = 0, len(buf)
    while pos < n:
        tag, pos = read_varint(buf, pos, source)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = read_varint(buf, pos, source)
            yield field, value
            continue
        if wire == 2:
            size, pos = read_varint(buf, pos, source)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:
            raise BertkitError(f"{source}: unsupported protobuf wire type {wire} (field {field})")
        if pos + size > n:
            raise BertkitError(f"{source}: truncated field {field} ({size} bytes announced)")
        yield field, bytes(buf[pos : pos + size])
        pos += size


def fixed32(value: bytes) -> int:
    return struct.unpack("<I", value)[0]


def signed64(value: int) -> int:
    """An int64 field's varint as a signed number."""
    return value - (1 << 64) if value >= 1 << 63 else value
