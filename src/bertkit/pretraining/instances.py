"""Sentence-paired (NSP) and packed (MLM-only) instances, as token ranges of a chunk's documents.

Semantics (``NSP`` mode, Google's ``create_pretraining_data.py``):

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
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import chain

import numpy as np

from bertkit.pretraining.format import PrepareOptions, VocabInfo

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
