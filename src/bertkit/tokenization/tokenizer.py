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
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as RustTokenizer

from bertkit.errors import BertkitError
from bertkit.fileio import atomic_write_json, atomic_write_text, read_json
from bertkit.hub import resolve
from bertkit.tf_checkpoint import is_tf_checkpoint_dir, tokenizer_casing
from bertkit.tokenization import unicode_tables as ut

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
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")
_CGJ = "\u034f"  # COMBINING GRAPHEME JOINER
# Anything but printable ASCII, tab, newline and carriage return.
_NOT_CLEAN_ASCII = re.compile(r"[^\t\n\r\x20-\x7e]")


class Encoding:
    """One encoded input (a text or a text pair), with special tokens and optional padding.

    Fields (plain lists, computed from the engine's result on first access):

    * ``input_ids``, ``token_type_ids`` (0 for ``[CLS] text [SEP]``, 1 for ``pair [SEP]``),
      ``attention_mask`` (0 on padding), ``special_tokens_mask`` (1 on [CLS]/[SEP]/[PAD]);
    * ``offsets``: ``(start, end)`` character spans into the ORIGINAL text the token came from
      (the first text where ``sequence_ids`` is 0, the pair where it is 1); ``(0, 0)`` for
      special and padding tokens;
    * ``word_ids``: the basic-tokenizer word of each token, numbered from 0 in each text
      (``None`` for special and padding tokens); ``sequence_ids``: 0, 1 or ``None``;
    * ``tokens``: the piece strings.
    """

    __slots__ = ("_raw", "_texts", "_maps", "_refetch", "_id_to_token", "_cache")
    FIELDS = (
        "input_ids",
        "token_type_ids",
        "attention_mask",
        "special_tokens_mask",
        "offsets",
        "word_ids",
        "tokens",
        "sequence_ids",
    )

    def __init__(
        self, raw, texts: tuple[str, ...], maps: tuple[list[int] | None, ...], id_to_token: Sequence[str], refetch=None
    ):
        self._raw = raw  # tokenizers.Encoding, specials added (and padded)
        self._texts = texts  # the original text (and pair)
        self._maps = maps  # per text: pre-pass index map, or None
        self._id_to_token = id_to_token
        # ``raw`` from the engine's fast mode has no offsets / words; ``refetch()`` encodes the
        # same input again in full mode (only when offsets or word_ids are asked for).
        self._refetch = refetch
        self._cache: dict = {}

    def _full(self):
        """The engine result with offsets and words (padded like ``_raw``)."""
        if self._refetch is None:
            return self._raw
        full = self._cache.get("_full")
        if full is None:
            full = self._refetch()
            if len(full) < len(self._raw):
                full.pad(len(self._raw))
            self._cache["_full"] = full
        return full

    def _get(self, name: str, compute):
        value = self._cache.get(name)
        if value is None:
            value = self._cache[name] = compute()
        return value

    @property
    def input_ids(self) -> list[int]:
        return self._get("input_ids", lambda: self._raw.ids)

    @property
    def token_type_ids(self) -> list[int]:
        return self._get("token_type_ids", lambda: self._raw.type_ids)

    @property
    def attention_mask(self) -> list[int]:
        return self._get("attention_mask", lambda: self._raw.attention_mask)

    @property
    def special_tokens_mask(self) -> list[int]:
        return self._get("special_tokens_mask", lambda: self._raw.special_tokens_mask)

    @property
    def tokens(self) -> list[str]:
        return self._get("tokens", lambda: [self._id_to_token[i] for i in self.input_ids])

    @property
    def word_ids(self) -> list[int | None]:
        return self._get("word_ids", lambda: self._full().word_ids)

    @property
    def sequence_ids(self) -> list[int | None]:
        return self._get(
            "sequence_ids",
            lambda: [None if special else t for t, special in zip(self.token_type_ids, self.special_tokens_mask)],
        )

    @property
    def offsets(self) -> list[tuple[int, int]]:
        return self._get("offsets", self._original_offsets)

    def _original_offsets(self) -> list[tuple[int, int]]:
        offsets = self._full().offsets
        seq = self.sequence_ids
        for s, (text, index) in enumerate(zip(self._texts, self._maps)):
            if index is None and not _MARK_RE.search(text):
                continue
            positions = [k for k, q in enumerate(seq) if q == s]
            spans = [offsets[k] for k in positions]
            if index is not None:
                spans = [_map_span(index, a, b) for a, b in spans]
            if _MARK_RE.search(text):
                spans = _absorb_marks(text, spans)
            for k, span in zip(positions, spans):
                offsets[k] = span
        return offsets

    def __len__(self) -> int:
        return len(self._raw)

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}

    def __getstate__(self):
        return self.to_dict()

    def __setstate__(self, state):
        # A pickled Encoding is plain data: every field already computed.
        self._raw, self._texts, self._maps, self._refetch, self._id_to_token = None, (), (), None, ()
        self._cache = dict(state)

    def __eq__(self, other) -> bool:
        return isinstance(other, Encoding) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "Encoding(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"


def _resolve_strip(do_lower_case: bool, strip_accents: bool | None) -> bool:
    """The original's rule: ``strip_accents=None`` follows ``do_lower_case``."""
    return do_lower_case if strip_accents is None else bool(strip_accents)


def build_normalizer(*, do_lower_case: bool, strip: bool, preserve_hangul_kana: bool):
    """The ``tokenizers`` normalizer of the original basic tokenizer (clean, NFC, lower, strip)."""
    removed = ut.onig_class(ut._without_surrogates(ut.removed_ranges()))
    steps = [normalizers.Replace(Regex(removed), "")]
    if not strip:
        # transformers' slow tokenizer NFC-normalises the text. When accents are stripped the NFD
        # below makes that step redundant (NFD(lower(NFC(x))) == NFD(lower(x)) for every
        # character, checked by a test), and leaving it out keeps offsets per character.
        steps.append(normalizers.NFC())
    if do_lower_case:
        steps.append(normalizers.Lowercase())
    if strip:
        steps.append(normalizers.NFD())
        if preserve_hangul_kana:
            # Strip every Mn except kana voicing marks that follow kana; NFC then recomposes the
            # Hangul syllables (NFD split them into jamo) and the voiced kana.
            voicing = {ord(c) for c in ut.KANA_VOICING_MARKS}
            marks = [(cp, cp) for a, b in ut.mark_ranges() for cp in range(a, b + 1) if cp not in voicing]
            kana = ut.onig_class(ut.KANA_RANGES)
            pattern = ut.onig_class(ut._merge(marks)) + f"|(?<!{kana})[\\x{{3099}}\\x{{309A}}]"
            steps.append(normalizers.Replace(Regex(pattern), ""))
            # NFC must not recompose anything else the original leaves decomposed (Indic
            # two-part vowels): a combining grapheme joiner between such pairs blocks it.
            firsts, seconds = ut.compose_pairs()
            block = f"(?<={ut.onig_class(firsts)})(?={ut.onig_class(seconds)})"
            steps.append(normalizers.Replace(Regex(block), _CGJ))
            steps.append(normalizers.NFC())
            steps.append(normalizers.Replace(_CGJ, ""))
        else:
            steps.append(normalizers.Replace(Regex(ut.onig_class(ut.mark_ranges())), ""))
    return normalizers.Sequence(steps)


def build_pre_tokenizer(*, tokenize_chinese_chars: bool):
    """Split on whitespace, then isolate each punctuation character (and CJK ideograph)."""
    split_ranges = list(ut.punct_ranges()) + (list(ut.CJK_RANGES) if tokenize_chinese_chars else [])
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(ut.onig_class(ut._merge(split_ranges))), "isolated"),
        ]
    )


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


@functools.cache
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
        """Fix, in Python, what the Rust engine would get wrong (see module docstring).

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


def _check_options(max_length, truncation, padding) -> None:
    if truncation not in (False, None, True) and truncation not in TRUNCATION_STRATEGIES:
        raise BertkitError(f"unknown truncation {truncation!r}; use one of {', '.join(TRUNCATION_STRATEGIES)} or False")
    if padding not in (False, True, "longest", "max_length", "do_not_pad"):
        raise BertkitError(f"unknown padding {padding!r}; use False, True/'longest' or 'max_length'")
    if padding == "max_length" and max_length is None:
        raise BertkitError("padding='max_length' needs max_length")
    if max_length is not None and max_length < 1:
        raise BertkitError(f"max_length must be positive, got {max_length}")


def _truncated_lengths(la: int, lb: int | None, max_length: int, strategy: str) -> tuple[int, int]:
    """Lengths of the first / second sequence after truncation, as transformers' slow tokenizer
    (``truncate_sequences``) computes them; ``lb`` is ``None`` for a single text."""
    n_special = 2 if lb is None else 3
    lb_ = lb or 0
    excess = la + lb_ + n_special - max_length
    if excess <= 0:
        return la, lb_
    if max_length < n_special:
        raise BertkitError(
            f"cannot truncate to max_length={max_length}: "
            + ("a pair ([CLS] a [SEP] b [SEP])" if lb is not None else "a text ([CLS] a [SEP])")
            + f" needs {n_special} special tokens alone; use max_length >= {n_special}"
        )
    if strategy == "only_first" or (strategy == "longest_first" and lb is None):
        if la <= excess:
            raise BertkitError(
                f"cannot truncate to max_length={max_length}: the first sequence "
                f"has {la} tokens and {excess} would have to go"
            )
        return la - excess, lb_
    if strategy == "only_second":
        if lb is None:
            raise BertkitError("truncation='only_second' needs a pair")
        if lb_ <= excess:
            raise BertkitError(
                f"cannot truncate to max_length={max_length}: the second sequence "
                f"has {lb_} tokens and {excess} would have to go"
            )
        return la, lb_ - excess
    # longest_first with a pair: one token at a time from the longer one (the pair on ties).
    for _ in range(excess):
        if la > lb_:
            la -= 1
        else:
            lb_ -= 1
    return la, lb_


# Characters that NFC can compose onto the preceding one: combining marks (M*) and the Hangul
# medial vowel / final consonant jamo. The engine aligns a composed character with its first
# source character only, so such trailing characters are given back to the token (below).
_MARK_RE = re.compile(ut.py_class(ut.composing_ranges()))


def _is_composing(ch: str) -> bool:
    return _MARK_RE.match(ch) is not None


def _absorb_marks(text: str, offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Extend each token's span over directly following composing characters no token covers."""
    out = list(offsets)
    n = len(text)
    for k, (s, e) in enumerate(out):
        if e <= s:
            continue
        limit = out[k + 1][0] if k + 1 < len(out) and out[k + 1][1] > out[k + 1][0] else n
        while e < n and e < limit and _is_composing(text[e]):
            e += 1
        out[k] = (s, e)
    return out


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
                rep = "".join(
                    c
                    for c in unicodedata.normalize("NFD", rep)
                    if unicodedata.category(c) != "Mn" or (preserve and c in ut.KANA_VOICING_MARKS)
                )
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
