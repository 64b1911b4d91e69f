"""BERT-exact WordPiece tokenizer on the Rust ``tokenizers`` engine.

Encoding follows the original BERT basic tokenizer (as ported by transformers' slow
``BertTokenizer``): remove control characters and U+FFFD, turn whitespace into spaces, put
spaces around CJK ideographs, NFC, optionally lowercase and strip accents (NFD, drop ``Mn``),
split on whitespace and punctuation; then greedy longest-match-first WordPiece with ``##``
continuations, words over 100 characters or without a match becoming ``[UNK]``.

The engine is a ``tokenizers.Tokenizer`` configured with character classes computed from
Python's own Unicode tables (see :mod:`bertkit.tokenization.unicode_tables`) instead of the
built-in ``BertNormalizer`` / ``BertPreTokenizer``, which drift from the original. The few
remaining differences (context-dependent final sigma, characters whose case/normalisation
mapping differs between the Python and Rust Unicode versions, lone surrogates) are fixed by a
small Python pre-pass that only runs on texts containing such characters.

Offsets are character spans into the original string, through every normalisation step.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from bertkit.errors import BertkitError
from bertkit.fileio import atomic_write_json, atomic_write_text, read_json
from bertkit.tokenization import unicode_tables as ut

VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer_config.json"
MAX_INPUT_CHARS_PER_WORD = 100
# tokenizer_config.json key of bertkit's Hangul/kana-preserving accent stripping.
PRESERVE_HANGUL_KANA_KEY = "strip_accents_preserve_hangul_kana"
_SPECIAL_KEYS = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
_DEFAULT_SPECIALS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")


@dataclass
class Encoding:
    """One encoded input (a text or a text pair), with special tokens and optional padding.

    ``offsets`` are ``(start, end)`` character spans into the original text the token came from
    (the first text for ``sequence_ids == 0``, the pair for ``1``); ``(0, 0)`` for special and
    padding tokens. ``word_ids`` number the basic-tokenizer words of each text from 0 (``None``
    for special and padding tokens).
    """

    input_ids: list[int]
    token_type_ids: list[int]
    attention_mask: list[int]
    special_tokens_mask: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    tokens: list[str] = field(default_factory=list)
    sequence_ids: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class _Pieces:
    """Pieces of one text without special tokens (internal)."""

    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]

    def cut(self, n: int) -> "_Pieces":
        return _Pieces(self.ids[:n], self.tokens[:n], self.offsets[:n], self.word_ids[:n])


def _resolve_strip(do_lower_case: bool, strip_accents: bool | None) -> bool:
    """The original's rule: ``strip_accents=None`` follows ``do_lower_case``."""
    return do_lower_case if strip_accents is None else bool(strip_accents)


def _build_engine(vocab: dict[str, int], unk_token: str, specials: Sequence[str], *,
                  do_lower_case: bool, strip: bool, tokenize_chinese_chars: bool,
                  preserve_hangul_kana: bool):
    """Configure a ``tokenizers.Tokenizer`` that reproduces the original BERT pipeline."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    removed = ut.onig_class(ut._without_surrogates(ut.removed_ranges()))
    steps = [normalizers.Replace(Regex(removed), ""), normalizers.NFC()]
    if do_lower_case:
        steps.append(normalizers.Lowercase())
    if strip:
        steps.append(normalizers.NFD())
        if preserve_hangul_kana:
            marks = [r for r in ut.mark_ranges() if not (r[0] <= 0x3099 <= r[1] or r[0] <= 0x309A <= r[1])]
            # Strip every Mn except kana voicing marks that follow kana; NFC then recomposes
            # Hangul syllables (NFD split them into jamo) and voiced kana.
            extra = [r for r in ut.mark_ranges() if r[0] <= 0x3099 <= r[1] or r[0] <= 0x309A <= r[1]]
            keep = set(range(0x3099, 0x309B))
            rest = []
            for a, b in extra:
                rest += [(cp, cp) for cp in range(a, b + 1) if cp not in keep]
            kana = ut.onig_class(ut.KANA_RANGES)
            pattern = ut.onig_class(ut._merge(marks + rest)) + f"|(?<!{kana})[\\x{{3099}}\\x{{309A}}]"
            steps.append(normalizers.Replace(Regex(pattern), ""))
            steps.append(normalizers.NFC())
        else:
            steps.append(normalizers.Replace(Regex(ut.onig_class(ut.mark_ranges())), ""))
    split_ranges = list(ut.punct_ranges()) + (list(ut.CJK_RANGES) if tokenize_chinese_chars else [])
    tok = Tokenizer(models.WordPiece(vocab, unk_token=unk_token,
                                     max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex(ut.onig_class(ut._merge(split_ranges))), "isolated"),
    ])
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


@functools.lru_cache(maxsize=None)
def _prepass_regex(do_lower_case: bool) -> re.Pattern:
    """Texts matching this need the Python pre-pass: drift chars, surrogates, capital sigma."""
    chars = set(ut.drift_chars())
    if do_lower_case:
        chars.add(ut.GREEK_CAPITAL_SIGMA)
    ranges = ut._merge([(ord(c), ord(c)) for c in chars] + [(0xD800, 0xDFFF)])
    return re.compile(ut.py_class(ranges))


class Tokenizer:
    """BERT WordPiece tokenizer: ``vocab.txt`` + ``tokenizer_config.json``.

    Build it with :meth:`from_pretrained` (a checkpoint directory) or from a token list.
    Options (all stored in ``tokenizer_config.json``):

    * ``do_lower_case`` — lowercase the text;
    * ``strip_accents`` — ``None`` follows ``do_lower_case`` (the original rule);
    * ``tokenize_chinese_chars`` — each CJK ideograph becomes its own word;
    * ``strip_accents_preserve_hangul_kana`` — when stripping accents, keep Hangul syllables and
      kana (with their voicing marks) intact instead of decomposing them into jamo / bare kana as
      the original does. Default off when loading an existing vocabulary (its ids stay exactly
      as the model saw them); on for vocabularies bertkit trains.
    """

    def __init__(self, tokens: Sequence[str], *, do_lower_case: bool = True,
                 strip_accents: bool | None = None, tokenize_chinese_chars: bool = True,
                 preserve_hangul_kana: bool = False, special_tokens: dict[str, str] | None = None,
                 extra_config: dict | None = None, source: str = "vocabulary"):
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.preserve_hangul_kana = bool(preserve_hangul_kana)
        self.special_tokens = dict(_DEFAULT_SPECIALS, **(special_tokens or {}))
        self._extra_config = dict(extra_config or {})
        self._id_to_token = list(tokens)
        self.vocab: dict[str, int] = {}
        for i, t in enumerate(self._id_to_token):
            if t in self.vocab:
                raise BertkitError(f"{source}: line {i + 1}: duplicate token {t!r} "
                                   f"(first on line {self.vocab[t] + 1})")
            self.vocab[t] = i
        for key in _SPECIAL_KEYS:
            tok = self.special_tokens[key]
            if tok not in self.vocab:
                raise BertkitError(f"{source}: lacks the special token {tok} ({key})")
        self.pad_id = self.vocab[self.special_tokens["pad_token"]]
        self.unk_id = self.vocab[self.special_tokens["unk_token"]]
        self.cls_id = self.vocab[self.special_tokens["cls_token"]]
        self.sep_id = self.vocab[self.special_tokens["sep_token"]]
        self.mask_id = self.vocab[self.special_tokens["mask_token"]]
        self.all_special_ids = frozenset(
            (self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id))
        self._strip = _resolve_strip(self.do_lower_case, strip_accents)
        self._engine = _build_engine(
            self.vocab, self.special_tokens["unk_token"],
            [self.special_tokens[k] for k in _SPECIAL_KEYS],
            do_lower_case=self.do_lower_case, strip=self._strip,
            tokenize_chinese_chars=self.tokenize_chinese_chars,
            preserve_hangul_kana=self.preserve_hangul_kana)
        self._prepass_re = _prepass_regex(self.do_lower_case)

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "Tokenizer":
        """Load ``vocab.txt`` and (if present) ``tokenizer_config.json`` from ``directory``."""
        d = Path(directory)
        vocab_path = d / VOCAB_FILE
        if not vocab_path.is_file():
            raise BertkitError(f"{vocab_path}: no such file (a tokenizer directory needs {VOCAB_FILE})")
        tokens = read_vocab(vocab_path)
        cfg = read_json(d / CONFIG_FILE) if (d / CONFIG_FILE).is_file() else {}
        strip = cfg.get("strip_accents")
        if strip is not None and not isinstance(strip, bool):
            raise BertkitError(f"{d / CONFIG_FILE}: strip_accents must be true, false or null")
        specials = {k: cfg[k] for k in _SPECIAL_KEYS if isinstance(cfg.get(k), str)}
        return cls(tokens, do_lower_case=bool(cfg.get("do_lower_case", True)),
                   strip_accents=strip,
                   tokenize_chinese_chars=bool(cfg.get("tokenize_chinese_chars", True)),
                   preserve_hangul_kana=bool(cfg.get(PRESERVE_HANGUL_KANA_KEY, False)),
                   special_tokens=specials, extra_config=cfg, source=str(vocab_path))

    def config(self) -> dict:
        """The ``tokenizer_config.json`` contents (unknown keys of a loaded file are kept)."""
        cfg = dict(self._extra_config)
        cfg.update({
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.do_lower_case,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            PRESERVE_HANGUL_KANA_KEY: self.preserve_hangul_kana,
            **self.special_tokens,
        })
        return cfg

    def save(self, directory: str | os.PathLike) -> None:
        """Write ``vocab.txt`` and ``tokenizer_config.json`` into ``directory`` (atomically each)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(d / VOCAB_FILE, "".join(t + "\n" for t in self._id_to_token))
        atomic_write_json(d / CONFIG_FILE, self.config())

    # ------------------------------------------------------------------ vocabulary

    def __len__(self) -> int:
        return len(self._id_to_token)

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        unk = self.unk_id
        return [self.vocab.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        n = len(self._id_to_token)
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise BertkitError(f"token id {i} is outside the vocabulary (size {n})")
            out.append(self._id_to_token[i])
        return out

    # ------------------------------------------------------------------ tokenizing

    def _prepass(self, text: str) -> tuple[str, list[int] | None]:
        """Fix, in Python, what the Rust engine would get wrong (see module docstring).

        Returns the text for the engine and, when its length changed, the original index of each
        of its characters (plus one end sentinel) to map offsets back.
        """
        if not self._prepass_re.search(text):
            return text, None
        return _python_prepass(text, self.do_lower_case, self._strip, self.preserve_hangul_kana)

    def _pieces(self, texts: list[str]) -> list[_Pieces]:
        fixed = [self._prepass(t) for t in texts]
        encs = self._engine.encode_batch([f[0] for f in fixed], add_special_tokens=False) \
            if len(texts) > 1 else [self._engine.encode(fixed[0][0], add_special_tokens=False)]
        out = []
        for (_, index), e in zip(fixed, encs):
            offsets = e.offsets
            if index is not None:
                offsets = [_map_span(index, s, e_) for s, e_ in offsets]
            out.append(_Pieces(e.ids, e.tokens, offsets, e.word_ids))
        return out

    def tokenize(self, text: str) -> list[str]:
        """WordPiece pieces of ``text`` (no special tokens added)."""
        text, _ = self._prepass(text)
        return self._engine.encode(text, add_special_tokens=False).tokens

    def tokenize_ids_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Piece ids of many texts, no special tokens: the fast path for data preparation."""
        if not texts:
            return []
        fixed = [self._prepass(t)[0] for t in texts]
        return [e.ids for e in self._engine.encode_batch(fixed, add_special_tokens=False)]

    def encode(self, text: str, pair: str | None = None, max_length: int | None = None,
               truncation: str | bool | None = "longest_first",
               padding: bool | str = False) -> Encoding:
        """Encode ``text`` (and optionally ``pair``) as ``[CLS] text [SEP] (pair [SEP])``.

        ``truncation`` (used when ``max_length`` is given): ``"longest_first"`` removes one token
        at a time from the longer sequence (from the pair on ties, as transformers does),
        ``"only_first"`` / ``"only_second"`` cut just that sequence, ``False`` never truncates.
        ``padding``: ``False``; ``"max_length"`` pads to ``max_length``; ``True`` /
        ``"longest"`` is a no-op for one input (pads to the longest in :meth:`encode_batch`).
        """
        return self.encode_batch([text], None if pair is None else [pair], max_length=max_length,
                                 truncation=truncation, padding=padding)[0]

    def encode_batch(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                     max_length: int | None = None,
                     truncation: str | bool | None = "longest_first",
                     padding: bool | str = False) -> list[Encoding]:
        """Encode many texts (and pairs); see :meth:`encode` for the options."""
        _check_options(max_length, truncation, padding)
        if pairs is not None and len(pairs) != len(texts):
            raise BertkitError(f"encode_batch: {len(texts)} texts but {len(pairs)} pairs")
        if not texts:
            return []
        firsts = self._pieces(list(texts))
        seconds = self._pieces(list(pairs)) if pairs is not None else [None] * len(texts)
        encs = [self._assemble(a, b, max_length, truncation) for a, b in zip(firsts, seconds)]
        if padding in ("max_length",):
            target = max_length
        elif padding in (True, "longest"):
            target = max(len(e) for e in encs)
        else:
            target = None
        if target is not None:
            for e in encs:
                self._pad(e, target)
        return encs

    def _assemble(self, a: _Pieces, b: _Pieces | None, max_length: int | None,
                  truncation) -> Encoding:
        if max_length is not None and truncation:
            a, b = _truncate(a, b, max_length, truncation)
        cls_tok, sep_tok = self.special_tokens["cls_token"], self.special_tokens["sep_token"]
        ids = [self.cls_id] + a.ids + [self.sep_id]
        tokens = [cls_tok] + a.tokens + [sep_tok]
        offsets = [(0, 0)] + list(a.offsets) + [(0, 0)]
        word_ids = [None] + list(a.word_ids) + [None]
        seq = [None] + [0] * len(a.ids) + [None]
        types = [0] * len(ids)
        special = [1] + [0] * len(a.ids) + [1]
        if b is not None:
            ids += b.ids + [self.sep_id]
            tokens += b.tokens + [sep_tok]
            offsets += list(b.offsets) + [(0, 0)]
            word_ids += list(b.word_ids) + [None]
            seq += [1] * len(b.ids) + [None]
            types += [1] * (len(b.ids) + 1)
            special += [0] * len(b.ids) + [1]
        return Encoding(ids, types, [1] * len(ids), special, offsets, word_ids, tokens, seq)

    def _pad(self, e: Encoding, target: int) -> None:
        n = target - len(e.input_ids)
        if n <= 0:
            return
        e.input_ids += [self.pad_id] * n
        e.token_type_ids += [0] * n
        e.attention_mask += [0] * n
        e.special_tokens_mask += [1] * n
        e.offsets += [(0, 0)] * n
        e.word_ids += [None] * n
        e.tokens += [self.special_tokens["pad_token"]] * n
        e.sequence_ids += [None] * n

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Join the pieces back into text: ``##`` continuations are glued to the previous piece."""
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.all_special_ids or i == self.unk_id]
        return " ".join(self.convert_ids_to_tokens(ids)).replace(" ##", "").strip()

    def __repr__(self) -> str:
        return (f"Tokenizer(vocab_size={len(self)}, do_lower_case={self.do_lower_case}, "
                f"strip_accents={self.strip_accents}, tokenize_chinese_chars="
                f"{self.tokenize_chinese_chars}, preserve_hangul_kana={self.preserve_hangul_kana})")


# ---------------------------------------------------------------------- helpers


def read_vocab(path: str | os.PathLike) -> list[str]:
    """Tokens of a ``vocab.txt``, one per line, id = line number - 1 (as transformers reads it)."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise BertkitError(f"{p}: invalid UTF-8 at byte offset {e.start}") from None
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    if not tokens:
        raise BertkitError(f"{p}: empty vocabulary")
    return tokens


def _check_options(max_length, truncation, padding) -> None:
    if truncation not in (False, None, True) and truncation not in TRUNCATION_STRATEGIES:
        raise BertkitError(f"unknown truncation {truncation!r}; use one of "
                           f"{', '.join(TRUNCATION_STRATEGIES)} or False")
    if padding not in (False, True, "longest", "max_length", "do_not_pad"):
        raise BertkitError(f"unknown padding {padding!r}; use False, True/'longest' or 'max_length'")
    if padding == "max_length" and max_length is None:
        raise BertkitError("padding='max_length' needs max_length")
    if max_length is not None and max_length < 1:
        raise BertkitError(f"max_length must be positive, got {max_length}")


def _truncate(a: _Pieces, b: _Pieces | None, max_length: int, strategy) -> tuple[_Pieces, _Pieces | None]:
    """transformers' ``truncate_sequences`` semantics (the slow tokenizer's)."""
    if strategy is True:
        strategy = "longest_first"
    n_special = 2 if b is None else 3
    la, lb = len(a.ids), (len(b.ids) if b is not None else 0)
    excess = la + lb + n_special - max_length
    if excess <= 0:
        return a, b
    if strategy == "only_first" or (strategy == "longest_first" and b is None):
        if la <= excess:
            raise BertkitError(f"cannot truncate to max_length={max_length}: the first sequence "
                               f"has {la} tokens and {excess} would have to go")
        return a.cut(la - excess), b
    if strategy == "only_second":
        if b is None:
            raise BertkitError("truncation='only_second' needs a pair")
        if lb <= excess:
            raise BertkitError(f"cannot truncate to max_length={max_length}: the second sequence "
                               f"has {lb} tokens and {excess} would have to go")
        return a, b.cut(lb - excess)
    # longest_first with a pair: one token at a time from the longer one (the pair on ties).
    for _ in range(excess):
        if la > lb:
            la -= 1
        else:
            lb -= 1
    return a.cut(la), b.cut(lb)


def _map_span(index: list[int], s: int, e: int) -> tuple[int, int]:
    """Map a span of the pre-passed text back to the original (``index`` has an end sentinel)."""
    if e <= s:
        return index[s], index[s]
    return index[s], index[e - 1] + 1


def _python_prepass(text: str, lower: bool, strip: bool, preserve: bool) -> tuple[str, list[int]]:
    """Rewrite the characters the Rust engine would treat differently, keeping an index map.

    * lone surrogates are dropped (the original removes them as control characters);
    * a capital sigma becomes the final-form small sigma where Python's ``str.lower`` would make
      it one (it depends on the surrounding word, which the engine's per-character lowercase
      cannot see);
    * a drift character is replaced by what the original pipeline turns it into.
    """
    drift = ut.drift_chars()
    out: list[str] = []
    index: list[int] = []
    final_sigma = _final_sigma_positions(text) if lower and ut.GREEK_CAPITAL_SIGMA in text else set()
    for i, ch in enumerate(text):
        if 0xD800 <= ord(ch) <= 0xDFFF:
            continue
        if i in final_sigma:
            out.append("\u03c2")
            index.append(i)
            continue
        if ch in drift:
            rep = unicodedata.normalize("NFC", ch)
            if lower:
                rep = rep.lower()
            if strip:
                rep = "".join(c for c in unicodedata.normalize("NFD", rep)
                              if unicodedata.category(c) != "Mn")
            out.extend(rep)
            index.extend([i] * len(rep))
            continue
        out.append(ch)
        index.append(i)
    index.append(len(text))
    return "".join(out), index


def _final_sigma_positions(text: str) -> set[int]:
    """Indices of capital sigmas that the original's per-word ``lower()`` makes final (ς).

    The original lowercases each whitespace-separated word of the cleaned, CJK-padded,
    NFC-normalised text, so the context is taken from exactly that word.
    """
    kept = [i for i, ch in enumerate(text) if not (ut.is_removed(ch) or 0xD800 <= ord(ch) <= 0xDFFF)]
    positions: set[int] = set()
    word: list[int] = []

    def flush():
        if not word:
            return
        w = "".join(text[i] for i in word)
        if ut.GREEK_CAPITAL_SIGMA in w:
            sig = [i for i in word if text[i] == ut.GREEK_CAPITAL_SIGMA]
            low = unicodedata.normalize("NFC", w).lower()
            finals = [c == "\u03c2" for c in low if c in "\u03c3\u03c2"]
            # σ/ς already in the word stay as they are; map the results back to capitals in order.
            originals = [c for c in unicodedata.normalize("NFC", w) if c in "\u03a3\u03c3\u03c2"]
            k = 0
            for c, fin in zip(originals, finals):
                if c == ut.GREEK_CAPITAL_SIGMA:
                    if fin:
                        positions.add(sig[k])
                    k += 1
        word.clear()

    for i in kept:
        ch = text[i]
        if ch.isspace() or ut.is_cjk(ch):
            flush()
            if ut.is_cjk(ch):
                word.append(i)
                flush()
            continue
        word.append(i)
    flush()
    return positions
