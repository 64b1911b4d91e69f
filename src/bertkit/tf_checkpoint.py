"""Original Google BERT TensorFlow checkpoints, read without TensorFlow.

A TF checkpoint ``PREFIX`` (Google's zips: ``bert_model.ckpt``) is a *V2 tensor bundle*:

* ``PREFIX.index``: a LevelDB-style sorted string table. Its 48-byte footer holds the block
  handles (varint offset + size) of the metaindex and index blocks and the magic number; the
  index block maps the last key of each data block to that block's handle. A block is a run of
  prefix-compressed entries (shared, unshared and value lengths as varints, then the key's new
  bytes and the value), an array of uint32 restart offsets and their count, followed by a
  5-byte trailer: the compression type (TF writes 0 = none) and the masked crc32c of the block
  and that type byte. Keys are variable names; the empty key holds a ``BundleHeaderProto``
  (shard count, endianness), every other value a ``BundleEntryProto`` (dtype, shape, shard,
  offset, size, masked crc32c of the tensor bytes).
* ``PREFIX.data-NNNNN-of-MMMMM``: the shards, raw little-endian tensor bytes.

Both protobuf messages are decoded here by a small reader of the wire format (varints and
length-delimited fields); every block and every tensor is checked against its crc32c. Then
:func:`load_bert_state_dict` renames google-research/bert's variables to bertkit's (= Hugging
Face's) tensor names, checks every shape against ``bert_config.json`` and skips what a
pre-training run also saves (``global_step``, Adam/LAMB slots).

numpy only: importing this module does not import torch.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bertkit.config import GOOGLE_CONFIG_NAME as BERT_CONFIG_NAME
from bertkit.errors import BertkitError
from bertkit.fileio import read_json
from bertkit.protowire import fixed32, iter_fields, masked_crc32c, read_varint, signed64
from bertkit.settings import TfGelu

# the GELU a converted checkpoint computes (settings.ConvertOptions.gelu) -> BertConfig.hidden_act
GELU_ACT: dict[TfGelu, str] = {"erf": "gelu", "tanh": "gelu_new"}

DEFAULT_PREFIX = "bert_model.ckpt"
VOCAB_NAME = "vocab.txt"

log = logging.getLogger("bertkit")
_PROGRESS_BYTES = 64 << 20  # show a progress bar when reading more than this

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two block handles padded to 40 bytes, then the 8-byte magic
_BLOCK_TRAILER_SIZE = 5  # compression type byte + masked crc32c


# --------------------------------------------------------------------------- bundle entries
# TF DataType enum value -> (name, numpy dtype as stored). bfloat16 is read as uint16 and
# widened to float32 (exact) since numpy has no bfloat16.
DTYPES: dict[int, tuple[str, str]] = {
    1: ("float32", "<f4"),
    2: ("float64", "<f8"),
    3: ("int32", "<i4"),
    4: ("uint8", "u1"),
    5: ("int16", "<i2"),
    6: ("int8", "i1"),
    9: ("int64", "<i8"),
    10: ("bool", "?"),
    14: ("bfloat16", "<u2"),
    17: ("uint16", "<u2"),
    19: ("float16", "<f2"),
    22: ("uint32", "<u4"),
    23: ("uint64", "<u8"),
}
_DTYPE_NAMES = {7: "string", 8: "complex64", 18: "complex128", 20: "resource", 21: "variant"}


@dataclass(frozen=True)
class TensorEntry:
    """One variable of a bundle: where its bytes are and what they hold."""

    name: str
    dtype: int  # TF DataType enum value
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int  # masked, as stored
    sliced: bool = False

    @property
    def dtype_name(self) -> str:
        if self.dtype in DTYPES:
            return DTYPES[self.dtype][0]
        return _DTYPE_NAMES.get(self.dtype, f"DataType {self.dtype}")


def _parse_shape(buf: bytes, source: str) -> tuple[int, ...]:
    dims = []
    for field, value in iter_fields(buf, source):
        if field == 2:  # repeated Dim {int64 size = 1; string name = 2}
            size = -1
            for f, v in iter_fields(value, source):  # type: ignore[arg-type]
                if f == 1:
                    size = signed64(v)  # type: ignore[arg-type]
            dims.append(size)
        elif field == 3 and value:
            raise BertkitError(f"{source}: tensor of unknown rank")
    if any(d < 0 for d in dims):
        raise BertkitError(f"{source}: tensor with an unknown dimension {dims}")
    return tuple(dims)


def _parse_entry(name: str, buf: bytes, source: str) -> TensorEntry:
    fields: dict[str, object] = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": 0}
    sliced = False
    where = f"{source}: entry {name!r}"
    for field, value in iter_fields(buf, where):
        if field == 1:
            fields["dtype"] = value
        elif field == 2:
            fields["shape"] = _parse_shape(value, where)  # type: ignore[arg-type]
        elif field == 3:
            fields["shard_id"] = value
        elif field == 4:
            fields["offset"] = signed64(value)  # type: ignore[arg-type]
        elif field == 5:
            fields["size"] = signed64(value)  # type: ignore[arg-type]
        elif field == 6:
            fields["crc32c"] = fixed32(value)  # type: ignore[arg-type]
        elif field == 7:
            sliced = True
    return TensorEntry(name=name, sliced=sliced, **fields)  # type: ignore[arg-type]


def _parse_header(buf: bytes, source: str) -> tuple[int, int]:
    """(num_shards, endianness) of a BundleHeaderProto; endianness 0 = little, 1 = big."""
    num_shards, endianness = 1, 0
    for field, value in iter_fields(buf, f"{source}: bundle header"):
        if field == 1:
            num_shards = value  # type: ignore[assignment]
        elif field == 2:
            endianness = value  # type: ignore[assignment]
    return num_shards, endianness  # type: ignore[return-value]


# --------------------------------------------------------------------------- the sorted table
def _block_handle(buf: bytes | memoryview, pos: int, source: str) -> tuple[int, int, int]:
    offset, pos = read_varint(buf, pos, source)
    size, pos = read_varint(buf, pos, source)
    return offset, size, pos


def _read_block(data: bytes, offset: int, size: int, source: str) -> memoryview:
    """The contents of the block at ``offset`` (``size`` bytes without the trailer), checked."""
    end = offset + size
    if end + _BLOCK_TRAILER_SIZE > len(data):
        raise BertkitError(f"{source}: truncated (block at byte {offset} runs past the end of the file)")
    kind = data[end]
    (stored,) = struct.unpack_from("<I", data, end + 1)
    if masked_crc32c(data[offset : end + 1]) != stored:
        raise BertkitError(f"{source}: checksum mismatch in the block at byte {offset} (corrupt file)")
    if kind != 0:
        what = "snappy" if kind == 1 else f"type {kind}"
        raise BertkitError(
            f"{source}: block at byte {offset} is {what}-compressed; only uncompressed tables "
            "(what TensorFlow writes) are supported"
        )
    return memoryview(data)[offset:end]


def _iter_block(block: memoryview, source: str) -> Iterator[tuple[bytes, memoryview]]:
    """``(key, value)`` of each entry of a block, keys expanded from their shared prefixes."""
    if len(block) < 4:
        raise BertkitError(f"{source}: block too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise BertkitError(f"{source}: block with {num_restarts} restart points does not fit its size")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = read_varint(block, pos, source)
        unshared, pos = read_varint(block, pos, source)
        value_len, pos = read_varint(block, pos, source)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise BertkitError(f"{source}: corrupt block entry at byte {pos}")
        key = key[:shared] + bytes(block[pos : pos + unshared])
        pos += unshared
        yield key, block[pos : pos + value_len]
        pos += value_len


def read_table(path: Path) -> Iterator[tuple[bytes, memoryview]]:
    """Every ``(key, value)`` of a LevelDB-format table file, in key order."""
    data = path.read_bytes()
    source = str(path)
    if len(data) < _FOOTER_SIZE:
        raise BertkitError(f"{source}: truncated ({len(data)} bytes; not a TensorFlow checkpoint index)")
    footer = memoryview(data)[len(data) - _FOOTER_SIZE :]
    (magic,) = struct.unpack_from("<Q", footer, _FOOTER_SIZE - 8)
    if magic != _TABLE_MAGIC:
        raise BertkitError(f"{source}: not a TensorFlow checkpoint index (bad magic number; truncated?)")
    _, _, pos = _block_handle(footer, 0, source)  # metaindex: TF writes it empty
    index_offset, index_size, _ = _block_handle(footer, pos, source)
    for _, handle in _iter_block(_read_block(data, index_offset, index_size, source), source):
        offset, size, _ = _block_handle(handle, 0, source)
        yield from _iter_block(_read_block(data, offset, size, source), source)


# --------------------------------------------------------------------------- the bundle
class TFCheckpoint:
    """A V2 tensor bundle: ``TFCheckpoint(prefix)`` reads ``prefix.index``;
    :meth:`read` returns one variable as a numpy array, checked against its crc32c."""

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = Path(prefix)
        self.index_path = Path(f"{self.prefix}.index")
        if not self.index_path.is_file():
            raise BertkitError(f"{self.index_path}: no such file (not a TensorFlow checkpoint)")
        self.num_shards = 1
        self.entries: dict[str, TensorEntry] = {}
        header_seen = False
        for key, value in read_table(self.index_path):
            if key == b"":
                self.num_shards, endianness = _parse_header(bytes(value), str(self.index_path))
                if endianness != 0:
                    raise BertkitError(f"{self.index_path}: big-endian checkpoints are not supported")
                header_seen = True
                continue
            name = key.decode("utf-8", errors="replace")
            self.entries[name] = _parse_entry(name, bytes(value), str(self.index_path))
        if not header_seen:
            raise BertkitError(f"{self.index_path}: no bundle header (not a TensorFlow V2 checkpoint)")
        if self.num_shards < 1:
            raise BertkitError(f"{self.index_path}: bundle header says {self.num_shards} shards")
        self._sizes: dict[int, int] = {}

    def shard_path(self, shard_id: int) -> Path:
        return Path(f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}")

    def _shard_size(self, shard_id: int) -> int:
        if shard_id not in self._sizes:
            p = self.shard_path(shard_id)
            if not p.is_file():
                raise BertkitError(f"{p}: no such file (shard {shard_id} of {self.index_path})")
            self._sizes[shard_id] = p.stat().st_size
        return self._sizes[shard_id]

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def read(self, name: str, transpose: bool = False) -> np.ndarray:
        """Variable ``name`` as a writable numpy array in native byte order (bfloat16 widened to
        float32), checksum verified; ``transpose=True`` returns it transposed (C-contiguous)."""
        if name not in self.entries:
            raise BertkitError(f"{self.index_path}: no variable {name!r}")
        e = self.entries[name]
        where = f"{self.index_path}: variable {name!r}"
        if e.sliced:
            raise BertkitError(f"{where} is partitioned into slices; partitioned variables are not supported")
        if e.dtype not in DTYPES:
            raise BertkitError(f"{where} has dtype {e.dtype_name}, which bertkit cannot read")
        if not 0 <= e.shard_id < self.num_shards:
            raise BertkitError(f"{where} is in shard {e.shard_id}, but the bundle has {self.num_shards}")
        np_dtype = np.dtype(DTYPES[e.dtype][1])
        count = int(np.prod(e.shape, dtype=np.int64))
        if e.size != count * np_dtype.itemsize or e.offset < 0:
            raise BertkitError(
                f"{where}: {e.size} bytes stored for shape {list(e.shape)} of {e.dtype_name} "
                f"({count * np_dtype.itemsize} expected)"
            )
        path = self.shard_path(e.shard_id)
        if e.offset + e.size > self._shard_size(e.shard_id):
            raise BertkitError(
                f"{path}: truncated: variable {name!r} needs bytes {e.offset}..{e.offset + e.size} "
                f"but the file has {self._shard_size(e.shard_id)}"
            )
        with open(path, "rb") as f:
            f.seek(e.offset)
            data = f.read(e.size)
        if len(data) != e.size:
            raise BertkitError(f"{path}: truncated while reading variable {name!r}")
        if masked_crc32c(data) != e.crc32c:
            raise BertkitError(f"{path}: checksum mismatch for variable {name!r} (corrupt file)")
        arr = np.frombuffer(data, dtype=np_dtype).reshape(e.shape)  # read-only, on `data`
        if transpose:
            arr = arr.T
        if DTYPES[e.dtype][0] == "bfloat16":
            return (arr.astype(np.uint32, order="C") << 16).view(np.float32)
        return arr.astype(arr.dtype.newbyteorder("="), order="C")  # the one copy


# --------------------------------------------------------------------------- checkpoint directories
def find_prefix(directory: str | os.PathLike) -> Path:
    """The bundle prefix in ``directory``: ``bert_model.ckpt`` if there, else the only
    ``*.index``, else the one the TF ``checkpoint`` file names (that file is optional)."""
    d = Path(directory)
    if (d / f"{DEFAULT_PREFIX}.index").is_file():
        return d / DEFAULT_PREFIX
    indexes = sorted(p for p in d.glob("*.index") if p.is_file())
    if len(indexes) == 1:
        return indexes[0].with_suffix("")
    if (d / "checkpoint").is_file():
        m = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', (d / "checkpoint").read_text(errors="replace"), re.M)
        if m and Path(f"{d / m.group(1)}.index").is_file():
            return d / m.group(1)
    if not indexes:
        raise BertkitError(f"{d}: not a checkpoint directory (no config.json, no TensorFlow *.index file)")
    names = ", ".join(p.name for p in indexes)
    raise BertkitError(f"{d}: several TensorFlow checkpoints ({names}); keep one, or name it in a 'checkpoint' file")


def is_tf_checkpoint_dir(path: str | os.PathLike) -> bool:
    """A directory holding a TF bundle (``*.index``) and no Hugging Face-style weights."""
    d = Path(path)
    if not d.is_dir() or (d / "config.json").is_file():
        return False
    return any(p.is_file() for p in d.glob("*.index"))


def read_bert_config(directory: str | os.PathLike) -> dict:
    """``bert_config.json`` of a Google checkpoint directory (Hugging Face config keys)."""
    p = Path(directory) / BERT_CONFIG_NAME
    if not p.is_file():
        raise BertkitError(f"{p}: no such file (a Google BERT checkpoint directory ships its {BERT_CONFIG_NAME})")
    return read_json(p)


_CASE_WORD = re.compile(r"(?<![a-z])(uncased|cased)(?![a-z])")


def detect_casing(directory: str | os.PathLike) -> tuple[bool, str]:
    """``(do_lower_case, how it was decided)`` for a Google checkpoint: from the directory's
    name (``uncased_L-12_...`` / ``cased_L-12_...``), else from ``vocab.txt`` (a vocabulary
    with upper-case word pieces was trained on cased text)."""
    d = Path(directory).resolve()
    m = _CASE_WORD.search(d.name.lower())
    if m:
        return m.group(1) == "uncased", f"directory name {d.name!r} says {m.group(1)}"
    vocab = d / VOCAB_NAME
    if not vocab.is_file():
        raise BertkitError(f"{vocab}: no such file (a Google BERT checkpoint directory ships its vocabulary)")
    tokens = [t.strip() for t in vocab.read_text(encoding="utf-8", errors="replace").splitlines()]
    words = [t for t in tokens if t and not (t.startswith("[") and t.endswith("]"))]
    upper = sum(1 for t in words if t != t.lower())
    cased = upper >= max(3, len(words) // 1000)
    verdict = "cased" if cased else "uncased"
    return not cased, f"vocabulary has {upper} upper-case word pieces of {len(words)}: {verdict}"


def tokenizer_casing(directory: str | os.PathLike, do_lower_case: bool | None = None) -> bool:
    """``do_lower_case`` for a Google checkpoint: as given (``--cased`` / ``--uncased``), else
    :func:`detect_casing`, saying which it chose and why (a log warning: a wrong guess
    silently hurts every result, so it is shown by default)."""
    if do_lower_case is not None:
        return do_lower_case
    do_lower_case, how = detect_casing(directory)
    log.warning("%s: treating the vocabulary as %s (%s)", directory, "uncased" if do_lower_case else "cased", how)
    return do_lower_case


# --------------------------------------------------------------------------- Google -> HF names
@dataclass(frozen=True)
class Target:
    """Where one Google variable goes: bertkit/HF name, expected Google shape, and whether it is
    an ``[in, out]`` dense kernel (transposed into torch's ``[out, in]``)."""

    name: str
    shape: tuple[int, ...]
    transpose: bool = False
    required: bool = True  # the encoder; heads and pooler may be absent


def expected_variables(cfg: dict) -> dict[str, Target]:
    """Google variable name -> :class:`Target` for a model of ``bert_config.json`` ``cfg``."""
    H, I = cfg["hidden_size"], cfg["intermediate_size"]
    V, P, TV = cfg["vocab_size"], cfg["max_position_embeddings"], cfg["type_vocab_size"]
    out: dict[str, Target] = {}

    def dense(g: str, hf: str, n_in: int, n_out: int, required: bool = True) -> None:
        out[f"{g}/kernel"] = Target(f"{hf}.weight", (n_in, n_out), transpose=True, required=required)
        out[f"{g}/bias"] = Target(f"{hf}.bias", (n_out,), required=required)

    def layer_norm(g: str, hf: str, required: bool = True) -> None:
        out[f"{g}/gamma"] = Target(f"{hf}.weight", (H,), required=required)
        out[f"{g}/beta"] = Target(f"{hf}.bias", (H,), required=required)

    for table, rows in (("word", V), ("position", P), ("token_type", TV)):
        out[f"bert/embeddings/{table}_embeddings"] = Target(f"bert.embeddings.{table}_embeddings.weight", (rows, H))
    layer_norm("bert/embeddings/LayerNorm", "bert.embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        g, hf = f"bert/encoder/layer_{i}", f"bert.encoder.layer.{i}"
        for part in ("query", "key", "value"):
            dense(f"{g}/attention/self/{part}", f"{hf}.attention.self.{part}", H, H)
        dense(f"{g}/attention/output/dense", f"{hf}.attention.output.dense", H, H)
        layer_norm(f"{g}/attention/output/LayerNorm", f"{hf}.attention.output.LayerNorm")
        dense(f"{g}/intermediate/dense", f"{hf}.intermediate.dense", H, I)
        dense(f"{g}/output/dense", f"{hf}.output.dense", I, H)
        layer_norm(f"{g}/output/LayerNorm", f"{hf}.output.LayerNorm")
    dense("bert/pooler/dense", "bert.pooler.dense", H, H, required=False)
    dense("cls/predictions/transform/dense", "cls.predictions.transform.dense", H, H, required=False)
    layer_norm("cls/predictions/transform/LayerNorm", "cls.predictions.transform.LayerNorm", required=False)
    out["cls/predictions/output_bias"] = Target("cls.predictions.bias", (V,), required=False)
    # Used as matmul(x, W, transpose_b=True): already torch's [out, in] layout.
    out["cls/seq_relationship/output_weights"] = Target("cls.seq_relationship.weight", (2, H), required=False)
    out["cls/seq_relationship/output_bias"] = Target("cls.seq_relationship.bias", (2,), required=False)
    return out


# What a training run saves beside the weights: the step counter and optimizer state
# (google-research/bert's AdamWeightDecay: adam_m/adam_v; LAMB implementations: lamb_m/lamb_v
# or adam_m/adam_v; tf.train optimizers: Adam, Adam_1, Momentum, beta1/2_power; mixed-precision
# loss scaling).
_TRAINING_STATE = re.compile(
    r"(^|/)(global_step|beta[12]_power|loss_scale|good_steps|current_loss_scale)$"
    r"|/(adam_m|adam_v|lamb_m|lamb_v|Adam|Adam_1|Momentum|LAMB|LAMB_1|m|v)$"
)


def is_training_state(name: str) -> bool:
    """Whether a variable is optimizer / step bookkeeping rather than a model weight."""
    return bool(_TRAINING_STATE.search(name))


@dataclass
class ImportReport:
    """What :func:`load_bert_state_dict` left out."""

    skipped_training_state: int = 0
    unknown: list[str] | None = None  # neither a model weight nor training state


def _config_hint(cfg: dict, google_name: str) -> str:
    keys = ["hidden_size", "vocab_size"]
    if "position" in google_name:
        keys = ["max_position_embeddings", "hidden_size"]
    elif "token_type" in google_name:
        keys = ["type_vocab_size", "hidden_size"]
    elif "intermediate" in google_name or ("/output/dense" in google_name and "attention" not in google_name):
        keys = ["hidden_size", "intermediate_size"]
    elif "layer_" in google_name or "pooler" in google_name or "transform" in google_name:
        keys = ["hidden_size"]
    return ", ".join(f"{k}={cfg.get(k)}" for k in keys)


def bert_tensor_names(directory: str | os.PathLike) -> set[str]:
    """The bertkit/HF names of the BERT weights the Google checkpoint in ``directory`` holds
    (from its index alone; nothing is checked or read)."""
    d = Path(directory)
    targets = expected_variables(read_bert_config(d))
    return {targets[n].name for n in TFCheckpoint(find_prefix(d)).entries if n in targets}


def converted_size(directory: str | os.PathLike) -> tuple[int, bool]:
    """``(bytes, has_heads)``: what the checkpoint's BERT weights take as float32 safetensors
    (with the tied decoder's copy when the MLM head is there), from the index alone."""
    d = Path(directory)
    cfg = read_bert_config(d)
    targets = expected_variables(cfg)
    bundle = TFCheckpoint(find_prefix(d))
    n = sum(int(np.prod(t.shape)) for g, t in targets.items() if g in bundle)
    has_heads = "cls/predictions/output_bias" in bundle
    if has_heads:
        n += cfg["vocab_size"] * cfg["hidden_size"]
    return 4 * n + (1 << 20), has_heads


def load_bert_state_dict(
    directory: str | os.PathLike, cfg: dict | None = None
) -> tuple[dict[str, np.ndarray], ImportReport]:
    """The weights of the Google checkpoint in ``directory`` under bertkit/HF names
    (``bert.embeddings...``, ``bert.encoder.layer.N...``, ``cls.predictions...``), as numpy
    arrays in torch's layout, each shape checked against ``bert_config.json`` (or ``cfg``).

    Raises :class:`BertkitError` for a missing encoder variable (named), a shape that disagrees
    with the config, more layers than the config has, and any unreadable tensor.
    """
    d = Path(directory)
    cfg = read_bert_config(d) if cfg is None else cfg
    bundle = TFCheckpoint(find_prefix(d))
    where = str(bundle.prefix)
    targets = expected_variables(cfg)
    missing = [g for g, t in targets.items() if t.required and g not in bundle]
    if missing and "_CHECKPOINTABLE_OBJECT_GRAPH" in bundle:
        raise BertkitError(
            f"{where}: a TF2 object-based checkpoint (tf.train.Checkpoint, e.g. TF Model Garden's "
            f"BERT), not google-research/bert's variable names; missing variable {missing[0]!r}"
        )
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BertkitError(f"{where}: missing variable {missing[0]!r}{more}; is this a BERT checkpoint?")
    report = ImportReport(unknown=[])
    wanted: list[tuple[str, Target]] = []  # every name and shape checked before any byte is read
    for name, entry in bundle.entries.items():
        target = targets.get(name)
        if target is None:
            if is_training_state(name):
                report.skipped_training_state += 1
                continue
            if re.match(r"bert/encoder/layer_\d+/", name):
                raise BertkitError(
                    f"{where}: variable {name!r} but {BERT_CONFIG_NAME} says num_hidden_layers="
                    f"{cfg['num_hidden_layers']}"
                )
            report.unknown.append(name)  # type: ignore[union-attr]
            continue
        if entry.shape != target.shape:
            raise BertkitError(
                f"{where}: variable {name!r} has shape {list(entry.shape)} but {BERT_CONFIG_NAME} "
                f"({_config_hint(cfg, name)}) gives {list(target.shape)}"
            )
        wanted.append((name, target))
    total = sum(bundle.entries[name].size for name, _ in wanted)
    sd: dict[str, np.ndarray] = {}
    # A bar for checkpoints that take a while (BERT-base: 440 MB); none for small ones.
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc="reading TF checkpoint",
        leave=False,
        disable=total < _PROGRESS_BYTES,
    ) as bar:
        for name, target in wanted:
            sd[target.name] = bundle.read(name, transpose=target.transpose)
            bar.update(bundle.entries[name].size)
    return sd, report
