"""Raw corpora -> sentence-paired, masked, sharded pre-training instances (``bertkit prepare``).

This follows Google's ``create_pretraining_data.py`` (each knob an option with the original's
default) and fixes what made it painful: it streams (bounded memory whatever the corpus size),
runs in several processes, and its output is deterministic for a seed whatever the number of
workers.

Pipeline: :mod:`bertkit.corpus` streams documents; the main process groups them into chunks of
about 1 MiB (:func:`bertkit.corpus.iter_chunks`, boundaries depend only on the data); each chunk
is a task for a worker (segment, tokenize with ``Tokenizer.tokenize_ids_batch``, build
instances, mask) whose randomness is seeded by ``(seed, chunk index)`` only; the main process
writes results in chunk order into fixed-width ``.npy`` shards and writes ``manifest.json``
last, all inside a temporary directory renamed into place at the end.

Semantics (``NSP`` mode, the original's):

* a document's target length is ``max_seq_length - 3``, or with probability ``short_seq_prob``
  a random length in ``[2, max_seq_length - 3]``; segments are built from whole sentences;
* segment A is the first ``a_end`` sentences of the gathered chunk; B is the rest (actual next,
  NSP label 0) or, with probability 0.5, sentences from a random *different* document starting
  at a random sentence (NSP label 1, the unused sentences are put back);
* the pair is truncated to fit by removing tokens from the longer side, front or back at random;
* the corpus is passed over ``dupe_factor`` times (different segmentations and masks).

Deliberate deviations, to make the labels what they claim to be. The original forces a random
next whenever a chunk holds a single sentence, so its NSP labels are well off 50/50 (59/41 on
short documents). Here a chunk gathers at least two sentences unless the document ends; a lone
last sentence is paired with the sentence before it; only a one-sentence document still forces
a random next, and each such forced label is balanced by turning the next free "random" draw
into an actual next. And the original picks the "different" document with 10 tries that can all
land on the same document; here it never does.

``MLM-only`` mode (``nsp=False``) packs contiguous sentences up to the full length, crossing
document boundaries with a ``[SEP]`` (RoBERTa's FULL-SENTENCES), one segment, no NSP labels.

Masking (:func:`mask_tokens`): ``num = min(max_predictions, max(1, round(len * mask_prob)))``
positions, never special tokens, 80% ``[MASK]`` / 10% random token / 10% unchanged, optionally
whole words (all WordPiece pieces of a word together). With ``masking="static"`` the masks are
drawn here and stored; with ``"dynamic"`` the shards keep the unmasked ids and
:class:`~bertkit.pretraining_loader.PretrainingLoader` draws fresh masks every epoch.
Randomness for masks comes from a counter-based hash of ``(seed, stream, instance index,
position)``, so the masks of one instance do not depend on batch size, rank or worker count.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing as mp
import os
import random
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from itertools import chain
from pathlib import Path

import numpy as np

from bertkit.corpus import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    DEFAULT_MAX_LINE_BYTES,
    FORMATS,
    CorpusStats,
    Document,
    expand_inputs,
    iter_chunks,
    iter_documents,
)
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_dir, atomic_write_json, read_json

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

    max_seq_length: int = 128
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int | None = None
    whole_word_mask: bool = False
    masking: str = "static"  # "static" | "dynamic"
    nsp: bool = True
    seed: int = 12345
    validation_fraction: float = 0.01
    format: str = "auto"
    language: str = "en"
    encoding_errors: str = "strict"
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    shard_instances: int | None = None  # None: as many as fit SHARD_TARGET_BYTES of input_ids

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
        if o.masking not in ("static", "dynamic"):
            raise BertkitError(f"--masking must be static or dynamic, got {o.masking!r}")
        if not 0.0 <= o.validation_fraction < 1.0:
            raise BertkitError(f"--validation-fraction must be in [0, 1), got {o.validation_fraction}")
        if o.format not in FORMATS:
            raise BertkitError(f"--format must be one of {', '.join(FORMATS)}, got {o.format!r}")
        if o.encoding_errors not in ("strict", "replace"):
            raise BertkitError(f"--encoding-errors must be strict or replace, got {o.encoding_errors!r}")
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
        return np.setdiff1d(np.arange(self.size, dtype=np.int64), self.special_ids)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# counter-based randomness: the same (key, position) always gives the same number


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer, elementwise on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def hash64(*parts: object) -> int:
    """A stable 64-bit integer from any printable parts (seeds, names, indices)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


def instance_keys(base: int, indices: np.ndarray) -> np.ndarray:
    """Per-instance 64-bit keys: ``splitmix(base + index)``, shape ``indices.shape``."""
    with np.errstate(over="ignore"):
        return _splitmix64(np.asarray(indices, dtype=np.uint64) + np.uint64(base))


def _uniforms(keys: np.ndarray, stream: int, width: int) -> np.ndarray:
    """Uniform floats in [0, 1), shape (N, width), a pure function of (key, stream, column)."""
    with np.errstate(over="ignore"):
        base = _splitmix64(keys ^ np.uint64(hash64("stream", stream)))  # (N,)
        x = _splitmix64(base[:, None] + np.arange(width, dtype=np.uint64)[None, :])  # (N, W)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


# ---------------------------------------------------------------------------------------------
# masking


def mask_tokens(
    ids: np.ndarray,
    lengths: np.ndarray,
    vocab: VocabInfo,
    *,
    mask_prob: float,
    max_predictions: int,
    whole_word: bool = False,
    keys: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw MLM masks for a batch of instances, vectorized (the original's rules).

    ``ids`` (N, T) unmasked ids (padding beyond ``lengths``), ``lengths`` (N,) real lengths.
    Randomness comes from ``keys`` (N,) uint64 per-instance keys (counter-based: an instance's
    masks depend only on its key) or, when ``keys`` is None, from ``rng``. For each row,
    ``min(max_predictions, max(1, round(length * mask_prob)))`` positions are chosen among
    non-special tokens (with ``whole_word``, whole words are shuffled and taken greedily, a
    word that would overshoot is skipped, as the original); 80% become ``[MASK]``, 10% a random
    non-special token, 10% stay.

    Returns ``(masked_ids (N, T), positions (N, P) int64 0-padded ascending, labels (N, P)
    int64, IGNORE_INDEX at padding)`` with ``P = max_predictions``.
    """
    if keys is None and rng is None:
        raise ValueError("mask_tokens needs keys or rng")

    def uniforms(stream: int, width: int) -> np.ndarray:  # (N, width) in [0, 1)
        if keys is not None:
            return _uniforms(keys, stream, width).astype(np.float32)
        return rng.random((n, width), dtype=np.float32)

    n, t = ids.shape
    p = max_predictions
    pos = np.arange(t)[None, :]
    lengths = np.asarray(lengths, dtype=np.int64)
    is_special = np.zeros(vocab.size, dtype=bool)
    is_special[vocab.special_ids] = True
    cand = ~is_special[ids] & (pos < lengths[:, None])  # (N, T)
    k = np.minimum(p, np.maximum(1, np.round(lengths * mask_prob).astype(np.int64)))  # (N,)

    if whole_word:
        u = uniforms(0, t)  # (N, T)
        rows = np.arange(n)[:, None]
        cont = vocab.continuation[ids] & cand
        cont[:, 0] = False
        cont[:, 1:] &= cand[:, :-1]
        start = cand & ~cont  # (N, T) first piece of each word
        word_start = np.maximum.accumulate(np.where(start, pos, 0), axis=1)  # (N, T)
        flat = (rows * t + word_start)[cand]
        wlen = np.bincount(flat, minlength=n * t).reshape(n, t)  # pieces per word, at its start
        order = np.argsort(np.where(start, u, np.float32(2.0)), axis=1)  # words in random order first
        wl_sorted = np.take_along_axis(wlen, order, 1)
        is_word = np.take_along_axis(start, order, 1)
        count = np.zeros(n, dtype=np.int64)
        chosen_sorted = np.zeros((n, t), dtype=bool)
        max_words = int(start.sum(axis=1).max()) if n else 0
        for j in range(max_words):
            # greedy as the original: skip a word that would overshoot, try the next one
            fits = is_word[:, j] & (count + wl_sorted[:, j] <= k)
            chosen_sorted[:, j] = fits
            count += np.where(fits, wl_sorted[:, j], 0)
            if j % 8 == 7 and bool((count >= k).all()):
                break
        chosen_start = np.zeros((n, t), dtype=bool)
        np.put_along_axis(chosen_start, order, chosen_sorted, 1)
        selected = chosen_start[rows, word_start] & cand  # (N, T)
        chosen = np.sort(np.where(selected, pos, t), axis=1)[:, :p]  # (N, <=P) ascending, t = none
    else:
        # Floyd's algorithm, vectorized over rows: a uniform random k-subset of each row's
        # candidates in P small steps (no per-row sort of all T positions).
        nc = cand.sum(axis=1)  # (N,) candidates per row
        kk = np.minimum(k, nc)
        cand_pos = np.nonzero(cand)[1]  # positions of all candidates, row after row
        offs = np.cumsum(nc) - nc  # (N,) where each row's candidates start in cand_pos
        u = uniforms(0, p)  # (N, P)
        subset = np.full((n, p), -1, dtype=np.int64)  # candidate indices chosen per row
        for step in range(p):
            active = step < kk
            if not active.any():
                break
            j = nc - kk + step  # Floyd: t uniform in [0, j]; if taken already, take j
            t_ = np.minimum((u[:, step] * (j + 1)).astype(np.int64), j)
            taken = (subset[:, :step] == t_[:, None]).any(axis=1)
            subset[:, step] = np.where(active, np.where(taken, j, t_), -1)
        chosen_idx = np.minimum(offs[:, None] + np.maximum(subset, 0), max(len(cand_pos) - 1, 0))
        chosen = np.where(subset >= 0, cand_pos[chosen_idx] if len(cand_pos) else 0, t)
        chosen = np.sort(chosen, axis=1)  # (N, P) ascending, t = none
    if chosen.shape[1] < p:
        chosen = np.pad(chosen, ((0, 0), (0, p - chosen.shape[1])), constant_values=t)
    used = chosen < t  # (N, P)
    positions = np.where(used, chosen, 0)
    labels = np.where(used, np.take_along_axis(ids, positions, 1).astype(np.int64), IGNORE_INDEX)

    action = uniforms(1, p)  # (N, P): < 0.8 [MASK], >= 0.9 random token, else unchanged
    pool = vocab.random_ids()
    rand_tok = pool[np.minimum((uniforms(2, p) * len(pool)).astype(np.int64), len(pool) - 1)]
    new = np.where(action < 0.8, vocab.mask_id, np.where(action >= 0.9, rand_tok, labels))
    masked = ids.copy()
    r, c = np.nonzero(used)
    masked[r, positions[r, c]] = new[r, c].astype(ids.dtype)
    return masked, positions.astype(np.int64), labels.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# instances


class DocumentPool:
    """The tokenized documents of one chunk (one split), laid out flat for cheap slicing.

    ``flat`` holds every document's tokens followed by one ``[SEP]``; ``starts[d]`` /
    ``lens[d]`` are the flat offsets and lengths of document ``d``'s sentences (all non-empty,
    contiguous), ``doc_ids[d]`` its document number (parts of one document share it and sit
    next to each other). Instances are ranges of ``flat``, so building them never copies
    token lists in Python.
    """

    def __init__(self, docs: list[list[list[int]]], doc_ids: list[int], sep_id: int) -> None:
        self.doc_ids = list(doc_ids)
        self.starts: list[list[int]] = []
        self.lens: list[list[int]] = []
        pieces: list[list[int]] = []
        pos = 0
        for doc in docs:
            st, ln = [], []
            for sent in doc:
                st.append(pos)
                ln.append(len(sent))
                pos += len(sent)
                pieces.append(sent)
            pieces.append([sep_id])
            pos += 1
            self.starts.append(st)
            self.lens.append(ln)
        self.flat = np.fromiter(chain.from_iterable(pieces), dtype=np.int64, count=pos)

    def __len__(self) -> int:
        return len(self.starts)


class _Instances:
    """Instances as token ranges of a :class:`DocumentPool`: ``[CLS] A [SEP] (B [SEP])``."""

    def __init__(self) -> None:
        self.a_lo: list[int] = []
        self.a_len: list[int] = []
        self.b_lo: list[int] = []
        self.b_len: list[int] = []
        self.nsp: list[int] = []
        self.doc_a: list[int] = []
        self.doc_b: list[int] = []

    def __len__(self) -> int:
        return len(self.a_lo)

    def add(self, a_lo: int, a_len: int, b_lo: int, b_len: int, nsp: int, doc_a: int, doc_b: int) -> None:
        self.a_lo.append(a_lo)
        self.a_len.append(a_len)
        self.b_lo.append(b_lo)
        self.b_len.append(b_len)
        self.nsp.append(nsp)
        self.doc_a.append(doc_a)
        self.doc_b.append(doc_b)

    def arrays(self, pool: DocumentPool, max_seq_length: int, vocab: VocabInfo) -> dict[str, np.ndarray]:
        """Fixed-width arrays; tokens are gathered from ``pool.flat`` in a few vectorized steps
        whose cost is proportional to the real tokens, not to N * T."""
        n, t = len(self), max_seq_length
        la = np.asarray(self.a_len, dtype=np.int64)  # (N,)
        lb = np.asarray(self.b_len, dtype=np.int64)
        row0 = np.arange(n, dtype=np.int64) * t  # flat index of each row's column 0
        ids = np.full(n * t, vocab.pad_id, dtype=vocab.dtype)
        for lo, ln, col in ((self.a_lo, la, 1), (self.b_lo, lb, la + 2)):
            total = int(ln.sum())
            if not total:
                continue
            within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(ln) - ln, ln)  # 0.. per range
            src = np.repeat(np.asarray(lo, dtype=np.int64), ln) + within
            ids[np.repeat(row0 + col, ln) + within] = pool.flat[src]
        has_b = lb > 0
        ids[row0] = vocab.cls_id
        ids[row0 + la + 1] = vocab.sep_id
        ids[(row0 + la + lb + 2)[has_b]] = vocab.sep_id
        total_len = np.where(has_b, la + lb + 3, la + 2)
        len_a = np.where(has_b, la + 2, total_len)
        return {
            "input_ids": ids.reshape(n, t),
            "lengths": np.stack([len_a, total_len], 1).astype(np.uint16),  # (N, 2)
            "nsp_labels": np.asarray(self.nsp, dtype=np.uint8),
            "docs": np.stack(
                [np.asarray(self.doc_a, dtype=np.int64), np.asarray(self.doc_b, dtype=np.int64)], 1
            ).reshape(n, 2),
        }


def _binomial_half(n: int, rng: random.Random) -> int:
    """Binomial(n, 1/2), exact: the number of set bits in n random bits."""
    return bin(rng.getrandbits(n)).count("1") if n > 0 else 0


def truncate_counts(la: int, lb: int, max_tokens: int, rng: random.Random) -> tuple[int, int, int, int]:
    """How many tokens to cut from ``(a front, a back, b front, b back)`` to fit ``max_tokens``.

    The same distribution as the original ``truncate_seq_pair`` (pop one token from the longer
    side, front or back with probability 1/2, until it fits) in O(1) Python steps.
    """
    ta = tb = 0
    excess = la + lb - max_tokens
    if excess <= 0:
        return 0, 0, 0, 0
    if la > lb + 1:
        n = min(excess, la - lb - 1)
        ta, excess = n, excess - n
    elif lb > la:
        n = min(excess, lb - la)
        tb, excess = n, excess - n
    if excess > 0:  # balanced: the sides now alternate, the longer one first
        first_a = (la - ta) > (lb - tb)
        ta += (excess + 1) // 2 if first_a else excess // 2
        tb += excess // 2 if first_a else (excess + 1) // 2
    af = _binomial_half(ta, rng)
    bf = _binomial_half(tb, rng)
    return af, ta - af, bf, tb - bf


@dataclass
class _ChunkStats:
    sentences: int = 0
    tokens: int = 0
    empty_sentences: int = 0
    empty_documents: int = 0
    nsp_no_other_document: int = 0


def create_nsp_instances(
    pool: DocumentPool,
    opts: PrepareOptions,
    rng: random.Random,
    dupe_factor: int,
    stats: _ChunkStats,
) -> _Instances:
    """The original ``create_instances_from_document``, over every document of ``pool``,
    ``dupe_factor`` times (see the module docstring for the two deliberate deviations)."""
    out = _Instances()
    max_num_tokens = opts.max_seq_length - 3
    rnd = rng.random
    n = len(pool)
    doc_ids = pool.doc_ids
    # contiguous [lo, hi) range of pool indices that belong to the same document
    lo = list(range(n))
    hi = [i + 1 for i in range(n)]
    for d in range(1, n):
        if doc_ids[d] == doc_ids[d - 1]:
            lo[d] = lo[d - 1]
    for d in range(n - 2, -1, -1):
        if doc_ids[d] == doc_ids[d + 1]:
            hi[d] = hi[d + 1]

    debt = 0  # forced random nexts not yet balanced by an actual next
    for _ in range(dupe_factor):
        for di in range(n):
            st, ln = pool.starts[di], pool.lens[di]
            nsent = len(st)
            others = n - (hi[di] - lo[di])
            target = max_num_tokens
            if rnd() < opts.short_seq_prob:
                target = 2 + int(rnd() * (max_num_tokens - 1))  # randint(2, max_num_tokens)
            c0 = 0  # first sentence of the current chunk
            length = 0
            i = 0
            while i < nsent:
                length += ln[i]
                cnt = i - c0 + 1
                if i == nsent - 1 or (length >= target and cnt >= 2):
                    if cnt == 1 and nsent >= 2:  # a lone last sentence: pair it with the one before
                        c0, cnt = c0 - 1, 2
                    a_end = 1 + int(rnd() * (cnt - 1)) if cnt >= 2 else 1  # randint(1, cnt - 1)
                    a_lo = st[c0]
                    a_len = st[c0 + a_end - 1] + ln[c0 + a_end - 1] - a_lo
                    if cnt == 1:  # a one-sentence document: only a random next is possible
                        random_next = True
                        debt += 1
                    else:
                        random_next = rnd() < 0.5
                        if random_next and debt:  # balance forced random nexts: labels stay 50/50
                            random_next = False
                            debt -= 1
                    if random_next and others == 0:
                        stats.nsp_no_other_document += 1
                        if cnt == 1:  # nothing to pair with: drop this sentence
                            c0, length = i + 1, 0
                            i += 1
                            continue
                        random_next = False
                    if random_next:
                        r = int(rnd() * others)
                        if r >= lo[di]:
                            r += hi[di] - lo[di]
                        rst, rln = pool.starts[r], pool.lens[r]
                        j = int(rnd() * len(rst))
                        b_lo = rst[j]
                        target_b = target - a_len
                        b_len = 0
                        while j < len(rst):
                            b_len += rln[j]
                            j += 1
                            if b_len >= target_b:
                                break
                        doc_b = doc_ids[r]
                        i -= cnt - a_end  # put the unused sentences back
                    else:
                        b_lo = a_lo + a_len
                        b_len = st[i] + ln[i] - b_lo
                        doc_b = doc_ids[di]
                    if a_len + b_len > max_num_tokens:
                        af, ab, bf, bb = truncate_counts(a_len, b_len, max_num_tokens, rng)
                        a_lo, a_len = a_lo + af, a_len - af - ab
                        b_lo, b_len = b_lo + bf, b_len - bf - bb
                    out.add(a_lo, a_len, b_lo, b_len, int(random_next), doc_ids[di], doc_b)
                    c0, length = i + 1, 0
                i += 1
    return out


def create_packed_instances(
    pool: DocumentPool,
    opts: PrepareOptions,
    rng: random.Random,
    dupe_factor: int,
) -> _Instances:
    """MLM-only instances: contiguous sentences packed up to the target length, documents
    joined by ``[SEP]`` (a range of ``pool.flat``); a sentence longer than the target is cut
    into target-sized pieces. The target is ``max_seq_length - 2``, or with probability
    ``short_seq_prob`` a random length in ``[2, max_seq_length - 2]``."""
    out = _Instances()
    max_tokens = opts.max_seq_length - 2
    rnd = rng.random

    def new_target() -> int:
        return 2 + int(rnd() * (max_tokens - 1)) if rnd() < opts.short_seq_prob else max_tokens

    for _ in range(dupe_factor):
        cur_lo = cur_len = 0
        ends_with_sep = False
        first_doc = last_doc = -1
        target = new_target()
        for d in range(len(pool)):
            doc_id = pool.doc_ids[d]
            for s, l in zip(pool.starts[d], pool.lens[d]):
                if cur_len and cur_len + l > target:
                    out.add(cur_lo, cur_len - ends_with_sep, 0, 0, 0, first_doc, last_doc)
                    cur_len, ends_with_sep, target = 0, False, new_target()
                if not cur_len:
                    cur_lo, first_doc = s, doc_id
                while cur_len + l > target:  # only with an empty instance: cut the sentence
                    take = target - cur_len
                    out.add(cur_lo, cur_len + take, 0, 0, 0, first_doc, doc_id)
                    s, l = s + take, l - take
                    cur_lo, cur_len, first_doc, target = s, 0, doc_id, new_target()
                cur_len += l
                ends_with_sep = False
                last_doc = doc_id
            if cur_len:  # the document's [SEP] follows its last sentence in pool.flat
                if cur_len + 1 >= target:
                    out.add(cur_lo, cur_len, 0, 0, 0, first_doc, last_doc)
                    cur_len, target = 0, new_target()
                else:
                    cur_len += 1
                    ends_with_sep = True
        if cur_len - ends_with_sep > 0:
            out.add(cur_lo, cur_len - ends_with_sep, 0, 0, 0, first_doc, last_doc)
    return out


# ---------------------------------------------------------------------------------------------
# one chunk of work (runs in a worker process)

_WORKER: dict = {}


def _init_worker(tokenizer_dir: str, vocab: VocabInfo, opts: PrepareOptions, threads: bool) -> None:
    if not threads:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from bertkit.tokenization import Tokenizer

    _WORKER["tok"] = Tokenizer.from_pretrained(tokenizer_dir)
    _WORKER["vocab"] = vocab
    _WORKER["opts"] = opts


def _tokenize_documents(chunk: list[Document], language: str, stats: _ChunkStats):
    """Segment and tokenize a chunk's documents; drops (and counts) empty sentences/documents."""
    tok = _WORKER["tok"]
    per_doc = [d.sentences(language) for d in chunk]
    flat = [s for sents in per_doc for s in sents]
    stats.sentences += len(flat)
    ids = tok.tokenize_ids_batch(flat) if flat else []
    docs, doc_ids = [], []
    k = 0
    for d, sents in zip(chunk, per_doc):
        doc = [s_ids for s_ids in ids[k : k + len(sents)] if s_ids]
        stats.empty_sentences += len(sents) - len(doc)
        stats.tokens += sum(map(len, doc))
        k += len(sents)
        if doc:
            docs.append(doc)
            doc_ids.append(d.doc_id)
        else:
            stats.empty_documents += 1
    return docs, doc_ids


def validation_documents(doc_ids: list[int], fraction: float, seed: int, index: int) -> set[int]:
    """The documents of chunk ``index`` that go to the validation split.

    Chosen per chunk, never one alone: NSP's random "next" segment must come from another
    document of the same split in the same chunk, so a chunk with a single validation document
    could only make actual-next pairs (a validation set of one NSP label). The count is
    ``fraction * n`` rounded at random (seeded), a count of 1 becomes 2 or 0 with equal odds (the
    expected fraction is unchanged), and the documents with the smallest seeded hashes are taken.
    A pure function of its arguments, so the split does not depend on the number of workers.
    """
    distinct = sorted(set(doc_ids))
    n = len(distinct)
    if fraction <= 0 or n < 2:
        return set()
    u_count, u_pair = _uniforms(instance_keys(hash64(seed, "validation-count"), np.asarray([index])), 0, 2)[0]
    k = int(fraction * n + u_count)
    if k == 1:
        k = 2 if u_pair < 0.5 else 0
    if k == 0:
        return set()
    u = _uniforms(instance_keys(hash64(seed, "validation"), np.asarray(distinct)), 0, 1)[:, 0]
    return {distinct[i] for i in np.argsort(u, kind="stable")[:k]}


def process_chunk(index: int, chunk: list[Document]) -> dict:
    """Tokenize, build and (statically) mask the instances of one chunk: a pure function of
    the chunk, its index, the options and the vocabulary."""
    opts: PrepareOptions = _WORKER["opts"]
    vocab: VocabInfo = _WORKER["vocab"]
    stats = _ChunkStats()
    docs, doc_ids = _tokenize_documents(chunk, opts.language, stats)
    val_docs = validation_documents(doc_ids, opts.validation_fraction, opts.seed, index)
    is_val = [d in val_docs for d in doc_ids]
    result: dict = {"index": index, "nbytes": sum(d.nbytes for d in chunk), "splits": {}}
    for split in SPLITS:
        sel = [i for i, v in enumerate(is_val) if v == (split == "validation")]
        pool = DocumentPool([docs[i] for i in sel], [doc_ids[i] for i in sel], vocab.sep_id)
        rng = random.Random(hash64(opts.seed, "instances", index, split))
        dupe = opts.dupe_factor if split == "train" else 1  # validation: one pass is enough
        if opts.nsp:
            inst = create_nsp_instances(pool, opts, rng, dupe, stats)
        else:
            inst = create_packed_instances(pool, opts, rng, dupe)
        arrays = inst.arrays(pool, opts.max_seq_length, vocab)
        if not opts.nsp:
            del arrays["nsp_labels"]
        if opts.masking == "static":
            masked, positions, labels = mask_tokens(
                arrays["input_ids"],
                arrays["lengths"][:, 1],
                vocab,
                mask_prob=opts.masked_lm_prob,
                max_predictions=opts.max_predictions_per_seq,
                whole_word=opts.whole_word_mask,
                rng=np.random.default_rng(hash64(opts.seed, "static-mask", index, split)),
            )
            arrays["input_ids"] = masked
            arrays["masked_positions"] = positions.astype(np.uint16)
            arrays["masked_labels"] = np.where(labels == IGNORE_INDEX, 0, labels).astype(vocab.dtype)
        result["splits"][split] = arrays
    result["stats"] = asdict(stats)
    return result


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


# ---------------------------------------------------------------------------------------------
# the whole run


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


def _existing_manifest(out_dir: Path) -> dict | None:
    m = out_dir / MANIFEST
    return read_json(m) if m.is_file() else None


def _iter_results(tasks: Iterator[tuple[int, list[Document]]], workers: int, init_args: tuple) -> Iterator[dict]:
    """Run :func:`process_chunk` over tasks, results in task order, at most 2*workers in flight."""
    if workers <= 1:
        _init_worker(*init_args[:3], True)
        for index, chunk in tasks:
            yield process_chunk(index, chunk)
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(*init_args[:3], False)) as pool:
        pending: deque = deque()
        for index, chunk in tasks:
            pending.append(pool.apply_async(process_chunk, (index, chunk)))
            while len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def prepare(
    inputs: Sequence[str | os.PathLike],
    tokenizer_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: PrepareOptions | None = None,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Prepare pre-training data; returns the manifest (``manifest["up_to_date"]`` is true when
    ``out_dir`` already held exactly this data and nothing was done).

    ``workers`` defaults to the number of CPU cores; the output does not depend on it.
    Raises :class:`BertkitError` for unreadable inputs, a vocabulary that does not match the
    manifest already in ``out_dir``, or an ``out_dir`` holding other data (unless ``overwrite``).
    """
    from tqdm import tqdm

    from bertkit import __version__
    from bertkit.tokenization import Tokenizer

    opts = (options or PrepareOptions()).resolved()
    out_dir = Path(out_dir)
    tokenizer_dir = Path(tokenizer_dir)
    vocab_file = tokenizer_dir / "vocab.txt"
    if not vocab_file.is_file():
        raise BertkitError(f"{vocab_file}: no such file (--tokenizer must be a directory with vocab.txt)")
    tok = Tokenizer.from_pretrained(tokenizer_dir)
    vocab = VocabInfo.from_tokenizer(tok)
    del tok  # the workers load their own; keep the main process small
    vocab_sha = file_sha256(vocab_file)
    cfg_file = tokenizer_dir / "tokenizer_config.json"
    tok_cfg_sha = file_sha256(cfg_file) if cfg_file.is_file() else ""
    paths = expand_inputs(inputs)
    input_hashes = [file_sha256(p) for p in paths]
    key = data_key(input_hashes, opts, vocab_sha, tok_cfg_sha)

    old = _existing_manifest(out_dir) if out_dir.exists() else None
    if old is not None and not overwrite:
        if old.get("vocab_sha256") != vocab_sha:
            raise BertkitError(
                f"{out_dir / MANIFEST}: prepared with a different vocabulary (sha256 "
                f"{str(old.get('vocab_sha256'))[:12]}…) than {vocab_file} ({vocab_sha[:12]}…); "
                "use another --out or pass --overwrite"
            )
        if old.get("key") == key:
            return {**old, "up_to_date": True}
        raise BertkitError(
            f"{out_dir}: already holds data prepared from other inputs or options "
            f"(key {str(old.get('key'))[:12]}… vs {key[:12]}…); use another --out or pass --overwrite"
        )
    if old is None and out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise BertkitError(
            f"{out_dir}: exists, is not empty and holds no {MANIFEST}; use another --out or pass --overwrite"
        )

    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    corpus_stats = CorpusStats()
    docs = iter_documents(
        paths,
        opts.format,
        max_line_bytes=opts.max_line_bytes,
        max_document_bytes=opts.max_document_bytes,
        errors=opts.encoding_errors,
        stats=corpus_stats,
    )
    tasks = enumerate(iter_chunks(docs, opts.chunk_bytes))
    gz = any(p.name.endswith(".gz") for p in paths)
    total_bytes = None if gz else sum(p.stat().st_size for p in paths)
    totals = {f.name: 0 for f in fields(_ChunkStats)}
    counts = {s: 0 for s in SPLITS}
    start = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        writers = {s: ShardWriter(tmp, s, opts.shard_instances) for s in SPLITS}
        bar = tqdm(
            total=total_bytes,
            unit="B",
            unit_scale=True,
            unit_divisor=1000,
            desc="prepare",
            disable=not progress,
            dynamic_ncols=True,
        )
        with bar:
            for res in _iter_results(tasks, workers, (str(tokenizer_dir), vocab, opts)):
                for split, arrays in res["splits"].items():
                    writers[split].add(arrays)
                    counts[split] += len(arrays["input_ids"])
                for k, v in res["stats"].items():
                    totals[k] += v
                bar.update(res["nbytes"])
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.set_postfix_str(f"{sum(counts.values()) / elapsed:,.0f} inst/s", refresh=False)
            if total_bytes:  # blank lines and skipped lines are not in any document's size
                bar.update(total_bytes - bar.n)
        shards = {s: writers[s].finish() for s in SPLITS}
        for name in ("vocab.txt", "tokenizer_config.json"):  # the data describes itself
            if (tokenizer_dir / name).is_file():
                (tmp / name).write_bytes((tokenizer_dir / name).read_bytes())
        if opts.whole_word_mask and opts.masking == "dynamic":
            np.save(tmp / CONTINUATION_FILE, vocab.continuation)
        if sum(counts.values()) == 0:
            raise BertkitError(
                f"{', '.join(map(str, paths))}: no instances could be made (no non-empty documents with tokens)"
            )
        cstats = corpus_stats.to_dict()
        cstats["skipped"]["empty_documents"] += totals["empty_documents"]
        cstats["skipped"]["empty_sentences"] = totals["empty_sentences"]
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "bertkit_version": __version__,
            "key": key,
            "vocab_size": vocab.size,
            "vocab_sha256": vocab_sha,
            "tokenizer_config_sha256": tok_cfg_sha,
            "dtype": vocab.dtype.name,
            "special_ids": {
                "pad": vocab.pad_id,
                "unk": vocab.unk_id,
                "cls": vocab.cls_id,
                "sep": vocab.sep_id,
                "mask": vocab.mask_id,
            },
            "max_seq_length": opts.max_seq_length,
            "nsp": opts.nsp,
            "masking": opts.masking,
            "mask_prob": opts.masked_lm_prob,
            "max_predictions_per_seq": opts.max_predictions_per_seq,
            "whole_word_mask": opts.whole_word_mask,
            "options": asdict(opts),
            "inputs": [{"path": str(p), "bytes": p.stat().st_size, "sha256": h} for p, h in zip(paths, input_hashes)],
            "counts": {
                **cstats,
                "sentences": totals["sentences"],
                "tokens": totals["tokens"],
                "nsp_no_other_document": totals["nsp_no_other_document"],
                "instances": counts,
            },
            "splits": {s: {"num_instances": counts[s], "shards": shards[s]} for s in SPLITS},
        }
        atomic_write_json(tmp / MANIFEST, manifest)  # last: its presence marks complete data
    return manifest


def check_vocab(data_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike) -> None:
    """Raise :class:`BertkitError` unless ``data_dir`` was prepared with ``tokenizer_dir``'s vocab."""
    manifest = read_json(Path(data_dir) / MANIFEST)
    sha = file_sha256(Path(tokenizer_dir) / "vocab.txt")
    if manifest.get("vocab_sha256") != sha:
        raise BertkitError(
            f"{Path(data_dir) / MANIFEST}: prepared with a different vocabulary than "
            f"{Path(tokenizer_dir) / 'vocab.txt'}"
        )


def __getattr__(name: str):
    # ``from bertkit.pretraining_data import PretrainingLoader`` (the loader lives in its own
    # module, which imports this one).
    if name == "PretrainingLoader":
        from bertkit.pretraining_loader import PretrainingLoader

        return PretrainingLoader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def inspect(data_dir: str | os.PathLike, n: int = 3, split: str = "train") -> str:
    """A readable summary of prepared data: manifest facts and ``n`` decoded instances
    (tokens with masked positions as ``[MASK:label]``-style marks, segments, NSP label)."""
    import json

    from bertkit.pretraining_loader import PretrainingLoader
    from bertkit.tokenization import Tokenizer

    data_dir = Path(data_dir)
    manifest = read_json(data_dir / MANIFEST)
    summary = {k: v for k, v in manifest.items() if k not in ("splits", "inputs", "options")}
    summary["options"] = manifest["options"]
    summary["inputs"] = [i["path"] for i in manifest["inputs"]]
    summary["splits"] = {
        s: {"num_instances": v["num_instances"], "shards": len(v["shards"])} for s, v in manifest["splits"].items()
    }
    lines = [json.dumps(summary, indent=2, ensure_ascii=False)]
    tok = Tokenizer.from_pretrained(data_dir)
    loader = PretrainingLoader(data_dir, split=split, batch_size=1, shuffle=False)
    count = min(n, loader.num_instances)
    if count == 0:
        return "\n".join(lines)
    batch = loader.make_batch(np.arange(count), 0)
    docs = loader._gather(np.arange(count))["docs"]
    for i in range(count):
        length = int(batch["attention_mask"][i].sum())
        ids = batch["input_ids"][i, :length].tolist()
        types = batch["token_type_ids"][i, :length].tolist()
        toks = tok.convert_ids_to_tokens(ids)
        labels = {
            int(p): int(l)
            for p, l in zip(batch["masked_positions"][i].tolist(), batch["mlm_labels"][i].tolist())
            if l != IGNORE_INDEX
        }
        shown = []
        for j, t in enumerate(toks):
            if j in labels:
                t = f"{t}<{tok.convert_ids_to_tokens([labels[j]])[0]}>"
            shown.append(t)
        head = f"--- {split} instance {i}: {length} tokens, segment B starts at {types.index(1) if 1 in types else '-'}"
        if "nsp_labels" in batch:
            nsp = int(batch["nsp_labels"][i])
            head += f", NSP label {nsp} ({'random next' if nsp else 'actual next'})"
        head += f", documents {int(docs[i, 0])}/{int(docs[i, 1])}, {len(labels)} masked"
        lines.append(head)
        lines.append(" ".join(shown))
    lines.append("(masked positions shown as TOKEN<label>)")
    return "\n".join(lines)
