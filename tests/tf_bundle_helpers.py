"""A minimal writer of TensorFlow V2 tensor bundles (what ``tf.train.Saver`` writes), so tests
build their own small Google-style checkpoints without TensorFlow.

The index is a LevelDB table written like TF's ``table::TableBuilder`` (prefix-compressed keys,
a restart point every ``restart_interval`` entries, blocks of about ``block_size`` bytes, an
index block, an empty metaindex block, the footer with the magic number); values are
``BundleHeaderProto`` / ``BundleEntryProto`` messages; tensor bytes go round-robin into
``num_shards`` data files.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from bertkit.protowire import bytes_field, encode_varint, masked_crc32c, varint_field
from bertkit.tf_checkpoint import expected_variables

DT = {"float32": 1, "float64": 2, "int32": 3, "int64": 9, "bfloat16": 14, "float16": 19, "string": 7}


# --------------------------------------------------------------------------- protobuf
def pb_fixed32(field: int, value: int) -> bytes:
    return encode_varint(field << 3 | 5) + struct.pack("<I", value)


def entry_proto(dtype: int, shape: tuple[int, ...], shard: int, offset: int, size: int, crc: int) -> bytes:
    shape_pb = b"".join(bytes_field(2, varint_field(1, d)) for d in shape)
    return (
        varint_field(1, dtype)
        + bytes_field(2, shape_pb)
        + (varint_field(3, shard) if shard else b"")
        + (varint_field(4, offset) if offset else b"")
        + varint_field(5, size)
        + pb_fixed32(6, crc)
    )


def header_proto(num_shards: int) -> bytes:
    return varint_field(1, num_shards) + bytes_field(3, varint_field(1, 1))  # version { producer: 1 }


# --------------------------------------------------------------------------- LevelDB table
def _block(entries: list[tuple[bytes, bytes]], restart_interval: int) -> bytes:
    out, restarts, last = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        if i % restart_interval == 0:
            restarts.append(len(out))
            shared = 0
        else:
            shared = 0
            while shared < min(len(last), len(key)) and last[shared] == key[shared]:
                shared += 1
        out += (
            encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value)) + key[shared:] + value
        )
        last = key
    for r in restarts or [0]:
        out += struct.pack("<I", r)
    out += struct.pack("<I", len(restarts or [0]))
    return bytes(out)


def _handle(offset: int, size: int) -> bytes:
    return encode_varint(offset) + encode_varint(size)


def write_table(
    path: Path,
    entries: list[tuple[bytes, bytes]],
    block_size: int = 4096,
    restart_interval: int = 16,
    block_type: int = 0,
) -> None:
    """A LevelDB table of sorted ``entries``; several data blocks when they exceed ``block_size``.
    ``block_type`` is the compression byte written in the data blocks' trailers (0 = none)."""
    data = bytearray()
    index: list[tuple[bytes, bytes]] = []

    def emit(contents: bytes, kind: int = 0) -> bytes:
        offset = len(data)
        trailer = bytes([kind])
        data.extend(contents + trailer + struct.pack("<I", masked_crc32c(contents + trailer)))
        return _handle(offset, len(contents))

    pending: list[tuple[bytes, bytes]] = []
    size = 0
    for key, value in entries:
        pending.append((key, value))
        size += len(key) + len(value) + 3
        if size >= block_size:
            index.append((key, emit(_block(pending, restart_interval), block_type)))
            pending, size = [], 0
    if pending:
        index.append((pending[-1][0], emit(_block(pending, restart_interval), block_type)))
    meta = emit(_block([], restart_interval))
    idx = emit(_block(index, 1))
    footer = (meta + idx).ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    path.write_bytes(bytes(data) + footer)


# --------------------------------------------------------------------------- bundles
def _raw(value) -> tuple[int, tuple[int, ...], bytes]:
    """(dtype enum, shape, bytes) of a numpy array, or a ``(dtype_name, shape, bytes)`` triple."""
    if isinstance(value, tuple):
        name, shape, raw = value
        return DT[name], tuple(shape), raw
    a = np.asarray(value)  # (ascontiguousarray would turn a scalar into shape (1,))
    return DT[a.dtype.name], a.shape, a.astype(a.dtype.newbyteorder("<")).tobytes()


def bfloat16(a: np.ndarray) -> tuple[str, tuple[int, ...], bytes]:
    """``a`` (float32) truncated to bfloat16, as a ``_raw`` triple."""
    bits = (np.ascontiguousarray(a, dtype=np.float32).view(np.uint32) >> 16).astype("<u2")
    return "bfloat16", a.shape, bits.tobytes()


def write_bundle(prefix: Path, tensors: dict, num_shards: int = 1, **table_options) -> None:
    """``prefix.index`` + ``prefix.data-*-of-*`` holding ``tensors`` (name -> array or triple)."""
    shards = [bytearray() for _ in range(num_shards)]
    entries = [(b"", header_proto(num_shards))]
    for i, name in enumerate(sorted(tensors)):
        dtype, shape, raw = _raw(tensors[name])
        shard = i % num_shards
        offset = len(shards[shard])
        shards[shard] += raw
        entries.append((name.encode(), entry_proto(dtype, shape, shard, offset, len(raw), masked_crc32c(raw))))
    prefix.parent.mkdir(parents=True, exist_ok=True)
    write_table(Path(f"{prefix}.index"), entries, **table_options)
    for s, data in enumerate(shards):
        Path(f"{prefix}.data-{s:05d}-of-{num_shards:05d}").write_bytes(bytes(data))


TINY_CONFIG = {
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 16,
    "initializer_range": 0.02,
    "intermediate_size": 32,
    "max_position_embeddings": 24,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "type_vocab_size": 2,
    "vocab_size": 30,
}

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(25)]


def google_weights(cfg: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights for every variable of a google-research/bert model of ``cfg``."""
    rng = np.random.default_rng(seed)
    return {g: rng.normal(0, 0.1, t.shape).astype(np.float32) for g, t in expected_variables(cfg).items()}


def write_google_checkpoint(
    directory: Path,
    cfg: dict | None = None,
    weights: dict | None = None,
    *,
    optimizer_slots: bool = True,
    vocab: list[str] | None = None,
    prefix: str = "bert_model.ckpt",
    num_shards: int = 1,
) -> dict:
    """A Google-style checkpoint directory (bert_config.json, vocab.txt, the bundle, with
    global_step and Adam slots by default); returns the weights written (Google names)."""
    cfg = dict(TINY_CONFIG if cfg is None else cfg)
    weights = google_weights(cfg) if weights is None else weights
    tensors = dict(weights)
    if optimizer_slots:
        tensors["global_step"] = np.array(7, dtype=np.int64)
        for name, w in weights.items():
            if isinstance(w, np.ndarray):
                tensors[f"{name}/adam_m"] = np.zeros_like(w)
                tensors[f"{name}/adam_v"] = np.zeros_like(w)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bert_config.json").write_text(json.dumps(cfg))
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in (vocab or VOCAB)))
    write_bundle(directory / prefix, tensors, num_shards=num_shards, block_size=1024)
    return weights
