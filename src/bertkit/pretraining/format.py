"""The prepared-data format: the options that make it, the vocabulary facts it records,
the ``.npy`` shards and the ``manifest.json`` that describes them (written last, so its presence
marks complete data), and the data key that identifies one prepared set.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bertkit.corpus import DEFAULT_MAX_DOCUMENT_BYTES, DEFAULT_MAX_LINE_BYTES
from bertkit.errors import BertkitError
from bertkit.fileio import read_json
from bertkit.settings import DEFAULT_MAX_SEQ_LENGTH, CorpusFormat, EncodingErrors, Masking, Split, check_choice

FORMAT_NAME = "bertkit-pretraining-data"
FORMAT_VERSION = 1
# Part of the data key, not of the file format: bump when the same inputs and options make
# different instances (2: validation documents chosen at least two per chunk), so that a re-run
# redoes old data instead of calling it up to date.
ALGORITHM_VERSION = 2
MANIFEST = "manifest.json"
CONTINUATION_FILE = "vocab_continuation.npy"
SPLITS = ("train", "validation")
IGNORE_INDEX = -100
DEFAULT_CHUNK_BYTES = 1 << 20
SHARD_TARGET_BYTES = 32 << 20  # input_ids bytes per shard (sets the instances per shard)


# ---------------------------------------------------------------------------------------------
# options


@dataclass
class PrepareOptions:
    """Every option that changes the prepared data (all are recorded in the manifest).

    Defaults are the original ``create_pretraining_data.py``'s, except ``max_predictions_per_seq``
    which, left ``None``, is ``ceil(max_seq_length * masked_lm_prob)`` (20 at 128/0.15, the
    original's value; 77 at 512) and ``validation_fraction`` (the original had no split).
    """

    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH  # tokens per instance (512 for BERT's phase 2)
    short_seq_prob: float = 0.1  # probability of a shorter target length
    dupe_factor: int = 10  # passes over the corpus, each with other segments and masks
    masked_lm_prob: float = 0.15  # masked LM probability
    max_predictions_per_seq: int | None = None  # default ceil(max_seq_length * mask_prob): 20 at 128
    whole_word_mask: bool = False  # mask all pieces of a word together
    masking: Masking = "static"  # static: masks drawn now and stored; dynamic: the loader draws new ones every epoch
    nsp: bool = True  # NSP sentence pairs; --no-nsp: MLM only, contiguous sentences packed across documents
    seed: int = 12345  # the original's seed
    validation_fraction: float = 0.01  # fraction of documents held out as the validation split
    format: CorpusFormat = (
        "auto"  # input format (auto: .jsonl/.json are JSONL, others one-sentence-per-line or paragraphs)
    )
    language: str = "en"  # language for sentence segmentation
    encoding_errors: EncodingErrors = "strict"  # invalid UTF-8: stop with an error (strict) or substitute U+FFFD
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES  # skip (and report) longer input lines (a JSONL document is one line)
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES  # longer documents are cut into parts
    chunk_bytes: int = DEFAULT_CHUNK_BYTES  # input bytes per worker task
    shard_instances: int | None = None  # instances per shard (default: as many as fit 32 MiB of input_ids)

    def resolved(self) -> PrepareOptions:
        """Validate and fill in derived defaults; raises :class:`BertkitError` on bad values."""
        o = PrepareOptions(**asdict(self))
        if o.max_seq_length < 8 or o.max_seq_length > 65535:
            raise BertkitError(f"--max-seq-length must be in [8, 65535], got {o.max_seq_length}")
        if not 0.0 <= o.short_seq_prob <= 1.0:
            raise BertkitError(f"--short-seq-prob must be in [0, 1], got {o.short_seq_prob}")
        if o.dupe_factor < 1:
            raise BertkitError(f"--dupe-factor must be >= 1, got {o.dupe_factor}")
        if not 0.0 < o.masked_lm_prob < 1.0:
            raise BertkitError(f"--mask-prob must be in (0, 1), got {o.masked_lm_prob}")
        if o.max_predictions_per_seq is None:
            o.max_predictions_per_seq = math.ceil(o.max_seq_length * o.masked_lm_prob - 1e-9)
        if not 1 <= o.max_predictions_per_seq <= o.max_seq_length:
            raise BertkitError(
                f"--max-predictions-per-seq must be in [1, max_seq_length], got {o.max_predictions_per_seq}"
            )
        check_choice("--masking", o.masking, Masking)
        if not 0.0 <= o.validation_fraction < 1.0:
            raise BertkitError(f"--validation-fraction must be in [0, 1), got {o.validation_fraction}")
        check_choice("--format", o.format, CorpusFormat)
        check_choice("--encoding-errors", o.encoding_errors, EncodingErrors)
        if o.max_line_bytes < 1 or o.max_document_bytes < 1 or o.chunk_bytes < 1:
            raise BertkitError("--max-line-bytes, max_document_bytes and chunk_bytes must be >= 1")
        if o.shard_instances is None:
            o.shard_instances = max(1024, SHARD_TARGET_BYTES // (o.max_seq_length * 2))
        if o.shard_instances < 1:
            raise BertkitError(f"shard_instances must be >= 1, got {o.shard_instances}")
        return o


# ---------------------------------------------------------------------------------------------
# vocabulary facts the workers and the loader need


@dataclass
class InspectOptions:
    """What ``bertkit prepare --inspect`` shows of prepared data."""

    n: int = 3  # instances to decode with --inspect
    split: Split = "train"  # the split --inspect shows


@dataclass
class VocabInfo:
    """Vocabulary facts for instance building and masking, picklable for worker processes."""

    size: int
    pad_id: int
    unk_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    continuation: np.ndarray  # (V,) bool: piece starts with "##"

    @classmethod
    def from_tokenizer(cls, tok) -> VocabInfo:
        cont = np.zeros(len(tok), dtype=bool)
        for piece, i in tok.vocab.items():
            if piece.startswith("##") and len(piece) > 2 and i < len(cont):
                cont[i] = True
        return cls(len(tok), tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id, cont)

    @property
    def special_ids(self) -> list[int]:
        """Ids never masked and never drawn as random replacements."""
        return sorted({self.pad_id, self.cls_id, self.sep_id, self.mask_id, self.unk_id})

    @property
    def dtype(self) -> np.dtype:
        """Smallest unsigned dtype that holds every id."""
        return np.dtype(np.uint16) if self.size <= 1 << 16 else np.dtype(np.uint32)

    def random_ids(self) -> np.ndarray:
        """Ids a masked position may be replaced by (all but the special ones), ascending.

        Called once per batch by dynamic masking: a boolean mask, not ``np.setdiff1d`` (whose
        hash-based unique took ~10 ms a call on a 30k vocabulary, more than a GPU step)."""
        keep = np.ones(self.size, dtype=bool)
        keep[self.special_ids] = False
        return np.flatnonzero(keep).astype(np.int64)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# shards


class ShardWriter:
    """Buffers instance arrays of one split and writes fixed-size ``.npy`` shards in order."""

    def __init__(self, out_dir: Path, split: str, shard_instances: int) -> None:
        self.out_dir, self.split, self.size = out_dir, split, shard_instances
        self.buffer: list[dict[str, np.ndarray]] = []
        self.buffered = 0
        self.shards: list[dict] = []
        self.total = 0

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(arrays["input_ids"])
        if n == 0:
            return
        self.buffer.append(arrays)
        self.buffered += n
        while self.buffered >= self.size:
            self._write(self.size)

    def finish(self) -> list[dict]:
        if self.buffered:
            self._write(self.buffered)
        return self.shards

    def _write(self, n: int) -> None:
        merged = {k: np.concatenate([b[k] for b in self.buffer]) for k in self.buffer[0]}
        rest = {k: v[n:] for k, v in merged.items()}
        name = f"{self.split}-{len(self.shards):05d}"
        entry: dict = {"name": name, "num_instances": n, "files": {}, "sha256": {}}
        for key, arr in merged.items():
            fname = f"{name}.{key}.npy"
            np.save(self.out_dir / fname, np.ascontiguousarray(arr[:n]))
            entry["files"][key] = fname
            entry["sha256"][key] = file_sha256(self.out_dir / fname)
        self.shards.append(entry)
        self.total += n
        self.buffered -= n
        self.buffer = [rest] if self.buffered else []


def data_key(input_hashes: Sequence[str], opts: PrepareOptions, vocab_sha: str, tok_cfg_sha: str) -> str:
    """The identity of a prepared data set: inputs' contents + options + vocabulary."""
    h = hashlib.sha256()
    h.update(
        repr(
            (
                FORMAT_NAME,
                FORMAT_VERSION,
                ALGORITHM_VERSION,
                list(input_hashes),
                sorted(asdict(opts).items()),
                vocab_sha,
                tok_cfg_sha,
            )
        ).encode()
    )
    return h.hexdigest()


def check_vocab(data_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike) -> None:
    """Raise :class:`BertkitError` unless ``data_dir`` was prepared with ``tokenizer_dir``'s vocab."""
    manifest = read_json(Path(data_dir) / MANIFEST)
    sha = file_sha256(Path(tokenizer_dir) / "vocab.txt")
    if manifest.get("vocab_sha256") != sha:
        raise BertkitError(
            f"{Path(data_dir) / MANIFEST}: prepared with a different vocabulary than "
            f"{Path(tokenizer_dir) / 'vocab.txt'}"
        )
