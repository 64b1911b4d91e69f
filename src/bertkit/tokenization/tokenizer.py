"""BERT-exact WordPiece tokenizer on the Rust ``tokenizers`` engine.

Encoding follows the original BERT basic tokenizer (as ported by transformers' slow
``BertTokenizer``): remove control characters and U+FFFD, turn whitespace into spaces, put
spaces around CJK ideographs, NFC, optionally lowercase and strip accents (NFD, drop ``Mn``),
split on whitespace and punctuation; then greedy longest-match-first WordPiece with ``##``
continuations, words over 100 characters or without a match becoming ``[UNK]``.

The normaliser, the pre-tokenizer and the Python pre-pass that make the Rust ``tokenizers``
engine match the original are built in :mod:`bertkit.tokenization.normalization`; the
result of encoding is an :class:`~bertkit.tokenization.encoding.Encoding`.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import AddedToken, decoders, models, normalizers, processors
from tokenizers import Tokenizer as RustTokenizer

from bertkit.errors import BertkitError
from bertkit.fileio import atomic_write_json, atomic_write_text, read_json
from bertkit.hub import resolve
from bertkit.tf_checkpoint import is_tf_checkpoint_dir, tokenizer_casing
from bertkit.tokenization.encoding import Encoding, _check_options, _truncated_lengths
from bertkit.tokenization.normalization import (
    _prepass_regex,
    _python_prepass,
    _resolve_strip,
    build_normalizer,
    build_pre_tokenizer,
)

VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer_config.json"
MAX_INPUT_CHARS_PER_WORD = 100
# tokenizer_config.json key of bertkit's Hangul/kana-preserving accent stripping.
PRESERVE_HANGUL_KANA_KEY = "strip_accents_preserve_hangul_kana"
_SPECIAL_KEYS = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
# The special tokens, in the order (and so with the ids 0-4) of vocabularies bertkit trains.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_DEFAULT_SPECIALS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
# Anything but printable ASCII, tab, newline and carriage return.
_NOT_CLEAN_ASCII = re.compile(r"[^\t\n\r\x20-\x7e]")


def _build_engine(
    vocab: dict[str, int],
    unk_token: str,
    specials: Sequence[str],
    *,
    do_lower_case: bool,
    strip: bool,
    tokenize_chinese_chars: bool,
    preserve_hangul_kana: bool,
    clean_ascii_only: bool = False,
):
    """Configure a ``tokenizers.Tokenizer`` that reproduces the original BERT pipeline.

    ``clean_ascii_only``: an engine for texts of printable ASCII (+ tab, newline, CR) only, for
    which cleaning, NFC and accent stripping are no-ops, so that only lowercasing remains.
    """
    tok = RustTokenizer(models.WordPiece(vocab, unk_token=unk_token, max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD))
    if not clean_ascii_only:
        tok.normalizer = build_normalizer(
            do_lower_case=do_lower_case, strip=strip, preserve_hangul_kana=preserve_hangul_kana
        )
    elif do_lower_case:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = build_pre_tokenizer(tokenize_chinese_chars=tokenize_chinese_chars)
    tok.decoder = decoders.WordPiece()
    cls_tok, sep_tok = specials[2], specials[3]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls_tok} $A {sep_tok}",
        pair=f"{cls_tok} $A {sep_tok} $B:1 {sep_tok}:1",
        special_tokens=[(cls_tok, vocab[cls_tok]), (sep_tok, vocab[sep_tok])],
    )
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


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

    def __init__(
        self,
        tokens: Sequence[str],
        *,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        preserve_hangul_kana: bool = False,
        special_tokens: dict[str, str] | None = None,
        extra_config: dict | None = None,
        source: str = "vocabulary",
    ):
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
                raise BertkitError(f"{source}: line {i + 1}: duplicate token {t!r} (first on line {self.vocab[t] + 1})")
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
        self.all_special_ids = frozenset((self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id))
        self._strip = _resolve_strip(self.do_lower_case, strip_accents)
        options = dict(
            do_lower_case=self.do_lower_case,
            strip=self._strip,
            tokenize_chinese_chars=self.tokenize_chinese_chars,
            preserve_hangul_kana=self.preserve_hangul_kana,
        )
        specials = [self.special_tokens[k] for k in _SPECIAL_KEYS]
        unk = self.special_tokens["unk_token"]
        self._engine = _build_engine(self.vocab, unk, specials, **options)
        # Most text is plain ASCII: a leaner engine (same results) encodes it ~10% faster.
        self._ascii_engine = _build_engine(self.vocab, unk, specials, **options, clean_ascii_only=True)
        self._prepass_re = _prepass_regex(self.do_lower_case)
        # Set by train_vocab: a VocabReport on held-out text; None for a loaded vocabulary.
        self.training_report = None

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> Tokenizer:
        """Load ``vocab.txt`` and (if present) ``tokenizer_config.json`` from ``directory``
        (or a Hugging Face Hub name's cached copy). A Google TensorFlow checkpoint directory has
        no ``tokenizer_config.json``: its casing comes from the directory name or vocabulary."""
        d = resolve(directory)
        vocab_path = d / VOCAB_FILE
        if not vocab_path.is_file():
            raise BertkitError(f"{vocab_path}: no such file (a tokenizer directory needs {VOCAB_FILE})")
        tokens = read_vocab(vocab_path)
        cfg = read_json(d / CONFIG_FILE) if (d / CONFIG_FILE).is_file() else {}
        if not cfg:
            if is_tf_checkpoint_dir(d):
                cfg = {"do_lower_case": tokenizer_casing(d)}
        strip = cfg.get("strip_accents")
        if strip is not None and not isinstance(strip, bool):
            raise BertkitError(f"{d / CONFIG_FILE}: strip_accents must be true, false or null")
        if cfg.get("do_basic_tokenize", True) is False or cfg.get("never_split"):
            raise BertkitError(
                f"{d / CONFIG_FILE}: do_basic_tokenize=false and never_split are "
                "not supported (bertkit always runs BERT's basic tokenizer)"
            )
        specials = {k: cfg[k] for k in _SPECIAL_KEYS if isinstance(cfg.get(k), str)}
        return cls(
            tokens,
            do_lower_case=bool(cfg.get("do_lower_case", True)),
            strip_accents=strip,
            tokenize_chinese_chars=bool(cfg.get("tokenize_chinese_chars", True)),
            preserve_hangul_kana=bool(cfg.get(PRESERVE_HANGUL_KANA_KEY, False)),
            special_tokens=specials,
            extra_config=cfg,
            source=str(vocab_path),
        )

    def config(self) -> dict:
        """The ``tokenizer_config.json`` contents (unknown keys of a loaded file are kept)."""
        cfg = dict(self._extra_config)
        cfg.update(
            {
                "tokenizer_class": "BertTokenizer",
                "do_lower_case": self.do_lower_case,
                "strip_accents": self.strip_accents,
                "tokenize_chinese_chars": self.tokenize_chinese_chars,
                PRESERVE_HANGUL_KANA_KEY: self.preserve_hangul_kana,
                **self.special_tokens,
            }
        )
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
        """Fix, in Python, what the Rust engine would get wrong (see :mod:`bertkit.tokenization.normalization`).

        Returns the text for the engine and, when its length changed, the original index of each
        of its characters (plus one end sentinel) to map offsets back.
        """
        if not self._prepass_re.search(text):
            return text, None
        return _python_prepass(text, self.do_lower_case, self._strip, self.preserve_hangul_kana)

    def _encode_many(self, inputs: list, clean: list[bool], add_special_tokens: bool) -> list:
        """Run the engines in their fast mode (ids, types, masks; no offsets or words) over
        ``inputs``: clean-ASCII ones on the lean engine, the rest on the full one, results in
        input order."""
        if all(clean):
            return self._ascii_engine.encode_batch_fast(inputs, add_special_tokens=add_special_tokens)
        if not any(clean):
            return self._engine.encode_batch_fast(inputs, add_special_tokens=add_special_tokens)
        out: list = [None] * len(inputs)
        for engine, flag in ((self._ascii_engine, True), (self._engine, False)):
            idx = [k for k, c in enumerate(clean) if c is flag]
            results = engine.encode_batch_fast([inputs[k] for k in idx], add_special_tokens=add_special_tokens)
            for k, r in zip(idx, results):
                out[k] = r
        return out

    def _refetcher(self, item, clean: bool):
        """A callable that encodes ``item`` again with offsets and words (see Encoding)."""
        engine = self._ascii_engine if clean else self._engine
        args = item if isinstance(item, tuple) else (item,)
        return functools.partial(engine.encode, *args, add_special_tokens=True)

    def tokenize(self, text: str) -> list[str]:
        """WordPiece pieces of ``text`` (no special tokens added)."""
        return self.convert_ids_to_tokens(self.tokenize_ids_batch([text])[0])

    def tokenize_ids_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Piece ids of many texts, no special tokens: the fast path for data preparation."""
        if not texts:
            return []
        clean = [not _NOT_CLEAN_ASCII.search(t) for t in texts]
        inputs = [t if c else self._prepass(t)[0] for t, c in zip(texts, clean)]
        return [e.ids for e in self._encode_many(inputs, clean, add_special_tokens=False)]

    def encode(
        self,
        text: str,
        pair: str | None = None,
        max_length: int | None = None,
        truncation: str | bool | None = "longest_first",
        padding: bool | str = False,
    ) -> Encoding:
        """Encode ``text`` (and optionally ``pair``) as ``[CLS] text [SEP] (pair [SEP])``.

        ``truncation`` (used when ``max_length`` is given): ``"longest_first"`` removes one token
        at a time from the longer sequence (from the pair on ties, as transformers does),
        ``"only_first"`` / ``"only_second"`` cut just that sequence, ``False`` never truncates.
        ``padding``: ``False``; ``"max_length"`` pads to ``max_length``; ``True`` /
        ``"longest"`` is a no-op for one input (pads to the longest in :meth:`encode_batch`).
        """
        return self.encode_batch(
            [text], None if pair is None else [pair], max_length=max_length, truncation=truncation, padding=padding
        )[0]

    def encode_batch(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        max_length: int | None = None,
        truncation: str | bool | None = "longest_first",
        padding: bool | str = False,
    ) -> list[Encoding]:
        """Encode many texts (and pairs); see :meth:`encode` for the options."""
        _check_options(max_length, truncation, padding)
        if pairs is not None and len(pairs) != len(texts):
            raise BertkitError(f"encode_batch: {len(texts)} texts but {len(pairs)} pairs")
        if not texts:
            return []
        clean = [not _NOT_CLEAN_ASCII.search(t) for t in texts]
        fixed_a = [(t, None) if c else self._prepass(t) for t, c in zip(texts, clean)]
        fixed_b = None
        if pairs is not None:
            clean_b = [not _NOT_CLEAN_ASCII.search(t) for t in pairs]
            fixed_b = [(t, None) if c else self._prepass(t) for t, c in zip(pairs, clean_b)]
            clean = [a and b for a, b in zip(clean, clean_b)]
            inputs = [(fa[0], fb[0]) for fa, fb in zip(fixed_a, fixed_b)]
        else:
            inputs = [f[0] for f in fixed_a]
        # Special tokens are added by the engine (in parallel); only inputs that are too long are
        # redone piece by piece, because transformers' pair truncation differs from the engine's.
        raws = self._encode_many(inputs, clean, add_special_tokens=True)
        refetch = [self._refetcher(item, c) for item, c in zip(inputs, clean)]
        if max_length is not None and truncation:
            strategy = "longest_first" if truncation is True else truncation
            if strategy == "only_second" and fixed_b is None:
                raise BertkitError("truncation='only_second' needs pairs")
            for k, raw in enumerate(raws):
                if len(raw) > max_length:
                    raws[k] = self._truncated(inputs[k], fixed_b is not None, max_length, strategy)
                    refetch[k] = None  # the truncated result is a full-mode one already
        if padding == "max_length":
            target = max_length
        elif padding in (True, "longest"):
            target = max(len(r) for r in raws)
        else:
            target = None
        if target is not None:
            pad_tok = self.special_tokens["pad_token"]
            for r in raws:
                if len(r) < target:
                    r.pad(target, pad_id=self.pad_id, pad_type_id=0, pad_token=pad_tok)
        vocab = self._id_to_token
        if fixed_b is None:
            return [Encoding(r, (t,), (f[1],), vocab, rf) for r, t, f, rf in zip(raws, texts, fixed_a, refetch)]
        return [
            Encoding(r, (t, p), (fa[1], fb[1]), vocab, rf)
            for r, t, p, fa, fb, rf in zip(raws, texts, pairs, fixed_a, fixed_b, refetch)
        ]

    def _truncated(self, item, is_pair: bool, max_length: int, strategy: str):
        """Encode one (pre-passed) input truncated with transformers' rules."""
        enc = self._engine.encode
        a = enc(item[0] if is_pair else item, add_special_tokens=False)
        b = enc(item[1], add_special_tokens=False) if is_pair else None
        la, lb = _truncated_lengths(len(a), None if b is None else len(b), max_length, strategy)
        if la < len(a):
            a.truncate(la)
        if b is not None and lb < len(b):
            b.truncate(lb)
        return self._engine.post_process(a, b, add_special_tokens=True)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Join the pieces back into text: ``##`` continuations are glued to the previous piece.

        ``skip_special_tokens`` drops [PAD], [UNK], [CLS], [SEP] and [MASK] (as transformers does).
        """
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.all_special_ids]
        return " ".join(self.convert_ids_to_tokens(ids)).replace(" ##", "").strip()

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={len(self)}, do_lower_case={self.do_lower_case}, "
            f"strip_accents={self.strip_accents}, tokenize_chinese_chars="
            f"{self.tokenize_chinese_chars}, preserve_hangul_kana={self.preserve_hangul_kana})"
        )


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
