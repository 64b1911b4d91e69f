"""MLM masking, vectorized, with counter-based randomness.

Masking (:func:`mask_tokens`): ``num = min(max_predictions, max(1, round(len * mask_prob)))``
positions, never special tokens, 80% ``[MASK]`` / 10% random token / 10% unchanged, optionally
whole words (all WordPiece pieces of a word together). With ``masking="static"`` the masks are
drawn by ``bertkit prepare`` and stored; with ``"dynamic"`` the shards keep the unmasked ids and
:class:`~bertkit.pretraining.loader.PretrainingLoader` draws fresh masks every epoch.
Randomness for masks comes from a counter-based hash of ``(seed, stream, instance index,
position)``, so the masks of one instance do not depend on batch size, rank or worker count.
"""

from __future__ import annotations

import hashlib

import numpy as np

from bertkit.pretraining.format import IGNORE_INDEX, VocabInfo

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
