"""``Encoding``, the result of encoding one text (or pair), and transformers' truncation rules.

Offsets are character spans into the original string, through every normalisation step.
"""

from __future__ import annotations

from collections.abc import Sequence

from bertkit.errors import BertkitError
from bertkit.tokenization.normalization import _MARK_RE, _absorb_marks, _map_span

TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")


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
