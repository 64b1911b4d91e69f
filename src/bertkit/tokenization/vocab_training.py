"""Learn a WordPiece vocabulary from a corpus (``bertkit vocab``).

Text is streamed from the input files (plain text one paragraph per line, JSON Lines with a
``"text"`` field, either optionally ``.gz``), so corpus size is bounded by disk, not RAM. It goes
through exactly the normalisation and pre-tokenisation the resulting :class:`Tokenizer` applies,
and ``tokenizers``' ``WordPieceTrainer`` learns the pieces. Every ``HELDOUT_EVERY``-th text (up
to ``HELDOUT_MAX``) is held out and used to report pieces per word and the ``[UNK]`` rate.

The vocabulary file lists ``[PAD]`` (id 0), ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``, then
``[unused0]`` ... ``[unusedN-1]`` if a reserve was asked for, then the learned pieces: the
alphabet's characters (by code point), their ``##`` continuations (by code point), then the
merged pieces in the order they were learned.

Reproducible: the same input and options give a byte-identical ``vocab.txt`` run after run and
for any thread count. ``tokenizers``' trainer alone does not: it keeps its word counts in a
randomly seeded hash map, so (1) which characters ``limit_alphabet`` drops among equally frequent
ones at the cut, and (2) the ids of the ``##c`` continuation pieces (created in hash order) --
which break ties between equally frequent merges -- change from run to run. A first pass over
the corpus (:func:`_alphabet`) therefore fixes both: it ranks the characters of the normalised,
pre-tokenised words by (count descending, code point) and keeps the first ``limit_alphabet``,
and the trainer is given that alphabet (``initial_alphabet``, ``limit_alphabet=len(alphabet)``)
and the ``##c`` pieces pre-registered in code-point order, so every id and every tie is the same
in each run. ``##c`` is registered for every kept character the pre-tokenizer does not isolate
(so a character seen only at word starts still gets its ``##c``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tokenizers import Regex, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as RustTokenizer
from tqdm import tqdm

from bertkit.errors import BertkitError
from bertkit.fileio import REPLACE_HINT, iter_lines
from bertkit.settings import EncodingErrors, VocabOptions, check_choice
from bertkit.tokenization import unicode_tables as ut
from bertkit.tokenization.normalization import (
    _prepass_regex,
    _python_prepass,
    _resolve_strip,
    build_normalizer,
    build_pre_tokenizer,
)
from bertkit.tokenization.tokenizer import SPECIAL_TOKENS, Tokenizer

HELDOUT_EVERY = 50
HELDOUT_MAX = 5000


@dataclass
class VocabReport:
    """What ``train_vocab`` reports: sizes, timing, and quality on the held-out texts."""

    vocab_size: int
    alphabet_size: int
    train_texts: int
    heldout_texts: int
    heldout_words: int
    heldout_pieces: int
    pieces_per_word: float | None
    unk_rate: float | None  # fraction of held-out pieces that are [UNK]
    unk_word_rate: float | None  # fraction of held-out words that became [UNK]
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"vocabulary size   {self.vocab_size} (alphabet {self.alphabet_size} characters)",
            f"training texts    {self.train_texts} ({self.seconds:.1f} s)",
        ]
        if self.heldout_texts:
            lines += [
                f"held-out texts    {self.heldout_texts} ({self.heldout_words} words)",
                f"pieces per word   {self.pieces_per_word:.3f}",
                f"[UNK] rate        {self.unk_rate:.5f} of pieces, {self.unk_word_rate:.5f} of words",
            ]
        else:
            lines.append(f"held-out texts    none (fewer than {HELDOUT_EVERY} texts in the corpus)")
        return "\n".join(lines)


def iter_texts(paths: Sequence[str | os.PathLike], encoding_errors: str = "strict") -> Iterator[str]:
    """Stream the texts of the input files.

    ``*.jsonl`` / ``*.jsonl.gz``: the ``"text"`` field of each object (one document per line);
    anything else: each non-empty line. Invalid UTF-8 raises :class:`BertkitError` with the
    file, line and byte offset unless ``encoding_errors="replace"``.
    """
    for path in paths:
        name = Path(path).name
        is_jsonl = name.endswith(".jsonl") or name.endswith(".jsonl.gz")
        for lineno, line in iter_lines(path, errors=encoding_errors, hint=REPLACE_HINT):
            if not line.strip():
                continue
            if not is_jsonl:
                yield line
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise BertkitError(f"{path}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
            text = obj.get("text") if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise BertkitError(f"{path}:{lineno}: expected a JSON object with a string \"text\" field")
            yield text


def _progress(paths: Sequence[str | os.PathLike], texts: Iterable[str], show: bool) -> Iterator[str]:
    """Wrap ``texts`` in a tqdm bar over the (uncompressed) input size where it is known."""
    if not show:
        yield from texts
        return
    sizes = [Path(p).stat().st_size for p in paths if Path(p).is_file()]
    known = not any(str(p).endswith(".gz") for p in paths)
    with tqdm(
        total=sum(sizes) if known else None, unit="B", unit_scale=True, desc="reading corpus", leave=False
    ) as bar:
        for t in texts:
            bar.update(len(t) + 1)
            yield t


def _alphabet(engine, texts: Iterable[str], limit: int | None, tokenize_chinese_chars: bool) -> tuple[list, list]:
    """``(alphabet, continued)`` in code-point order: the characters the vocabulary keeps -- the
    ``limit`` most frequent in ``engine``'s normalised, pre-tokenised words, ties by code point
    (all when ``limit`` is None) -- and those of them that can continue a word (not punctuation
    or, with ``tokenize_chinese_chars``, CJK, which the pre-tokenizer isolates): they get ``##c``.

    Counted by ``tokenizers``' word-level trainer over single characters (parallel, in Rust),
    which ranks equal counts by the character, so the result does not depend on hash order.
    """
    counter = RustTokenizer(models.WordLevel(unk_token="[UNK]"))
    counter.normalizer = engine.normalizer
    counter.pre_tokenizer = pre_tokenizers.Sequence(
        [engine.pre_tokenizer, pre_tokenizers.Split(Regex("."), "isolated")]
    )
    ranking = trainers.WordLevelTrainer(vocab_size=2**31 - 1, min_frequency=0, special_tokens=[], show_progress=False)
    counter.train_from_iterator(texts, ranking)
    ranked = [c for c, _ in sorted(counter.get_vocab().items(), key=lambda kv: kv[1])]
    kept = sorted(ranked if limit is None else ranked[:limit], key=ord)
    isolated = list(ut.punct_ranges()) + (list(ut.CJK_RANGES) if tokenize_chinese_chars else [])
    return kept, [c for c in kept if not any(a <= ord(c) <= b for a, b in isolated)]


_DEFAULTS = VocabOptions()  # bertkit vocab's defaults are train_vocab's


def train_vocab(
    files: Sequence[str | os.PathLike],
    vocab_size: int = _DEFAULTS.vocab_size,
    lowercase: bool = not _DEFAULTS.cased,
    *,
    strip_accents: bool | None = None,
    tokenize_chinese_chars: bool = True,
    preserve_hangul_kana: bool = _DEFAULTS.preserve_hangul_kana,
    unused: int = _DEFAULTS.unused,
    min_frequency: int = _DEFAULTS.min_frequency,
    limit_alphabet: int | None = _DEFAULTS.limit_alphabet,
    encoding_errors: str = _DEFAULTS.encoding_errors,
    progress: bool = True,
) -> Tokenizer:
    """Learn a WordPiece vocabulary of ``vocab_size`` tokens from ``files``.

    ``lowercase`` / ``strip_accents`` / ``tokenize_chinese_chars`` are the encoding options of
    the result; ``preserve_hangul_kana`` (default on for trained vocabularies) keeps Hangul
    syllables and kana whole when stripping accents. ``unused`` reserves ``[unusedN]`` tokens
    after the specials. ``limit_alphabet`` keeps only the most frequent characters (rarer ones
    become ``[UNK]``). Returns the :class:`Tokenizer`; its ``training_report``
    (:class:`VocabReport`) has the statistics.
    """
    if not files:
        raise BertkitError("no input files given")
    check_choice("encoding_errors", encoding_errors, EncodingErrors)
    if unused < 0:
        raise BertkitError(f"the [unused] reserve must be >= 0, got {unused}")
    if limit_alphabet is not None and limit_alphabet < 1:
        raise BertkitError(f"the alphabet limit must be >= 1, got {limit_alphabet}")
    n_fixed = len(SPECIAL_TOKENS) + unused
    if vocab_size <= n_fixed:
        raise BertkitError(
            f"vocab size {vocab_size} leaves no room for learned pieces after "
            f"{len(SPECIAL_TOKENS)} special and {unused} [unused] tokens"
        )
    for f in files:
        if not Path(f).is_file():
            raise BertkitError(f"{f}: no such file")

    strip = _resolve_strip(lowercase, strip_accents)
    engine = RustTokenizer(models.WordPiece(unk_token="[UNK]"))
    engine.normalizer = build_normalizer(
        do_lower_case=lowercase, strip=strip, preserve_hangul_kana=preserve_hangul_kana
    )
    engine.pre_tokenizer = build_pre_tokenizer(tokenize_chinese_chars=tokenize_chinese_chars)

    prepass = _prepass_regex(lowercase)
    heldout: list[str] = []
    counts = {"train": 0}

    def training_texts(show: bool) -> Iterator[str]:
        heldout.clear()
        counts["train"] = 0
        for i, text in enumerate(_progress(files, iter_texts(files, encoding_errors), show)):
            if i % HELDOUT_EVERY == HELDOUT_EVERY - 1 and len(heldout) < HELDOUT_MAX:
                heldout.append(text)
                continue
            counts["train"] += 1
            if prepass.search(text):
                text = _python_prepass(text, lowercase, strip, preserve_hangul_kana)[0]
            yield text

    start = time.perf_counter()
    chars, continued = _alphabet(engine, training_texts(progress), limit_alphabet, tokenize_chinese_chars)
    if counts["train"] == 0 or not chars:
        raise BertkitError(f"{', '.join(map(str, files))}: no text to train on (empty corpus)")
    # The ##c pieces, pre-registered in code-point order, get the same ids in every run.
    registered = list(SPECIAL_TOKENS) + ["##" + c for c in continued]
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size - unused,
        min_frequency=min_frequency,
        limit_alphabet=len(chars),
        initial_alphabet=chars,
        special_tokens=registered,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    engine.train_from_iterator(training_texts(False), trainer)
    seconds = time.perf_counter() - start

    by_id = [t for t, _ in sorted(engine.get_vocab().items(), key=lambda kv: kv[1]) if t not in SPECIAL_TOKENS]
    alphabet = [t for t in by_id if len(t) == 1] + ["##" + c for c in continued]
    learned = alphabet + [t for t in by_id if len(t) > 1 and t not in registered]
    tokens = list(SPECIAL_TOKENS) + [f"[unused{i}]" for i in range(unused)] + learned
    if len(tokens) > vocab_size:
        raise BertkitError(
            f"vocab size {vocab_size} is smaller than the alphabet: the corpus needs "
            f"{len(alphabet)} characters and ## continuations plus {n_fixed} special/unused "
            f"tokens; raise --vocab-size or lower --limit-alphabet"
        )
    if not learned:
        raise BertkitError(f"{', '.join(map(str, files))}: no text to train on (empty corpus)")

    tok = Tokenizer(
        tokens,
        do_lower_case=lowercase,
        strip_accents=strip_accents,
        tokenize_chinese_chars=tokenize_chinese_chars,
        preserve_hangul_kana=preserve_hangul_kana,
        source="trained vocabulary",
    )
    tok.training_report = evaluate_vocab(
        tok,
        heldout,
        seconds=seconds,
        train_texts=counts["train"],
        alphabet_size=len([t for t in alphabet if len(t) == 1]),
    )
    return tok


def evaluate_vocab(
    tok: Tokenizer, texts: Sequence[str], *, seconds: float = 0.0, train_texts: int = 0, alphabet_size: int = 0
) -> VocabReport:
    """Pieces per word and ``[UNK]`` rates of ``tok`` on ``texts``."""
    words = pieces = unk = unk_words = 0
    for e in tok.encode_batch(list(texts)) if texts else []:
        ids = e.input_ids[1:-1]
        wids = e.word_ids[1:-1]
        pieces += len(ids)
        words += len(set(wids))
        unk += sum(1 for i in ids if i == tok.unk_id)
        unk_words += len({w for i, w in zip(ids, wids) if i == tok.unk_id})
    return VocabReport(
        vocab_size=len(tok),
        alphabet_size=alphabet_size,
        train_texts=train_texts,
        heldout_texts=len(texts),
        heldout_words=words,
        heldout_pieces=pieces,
        pieces_per_word=pieces / words if words else None,
        unk_rate=unk / pieces if pieces else None,
        unk_word_rate=unk_words / words if words else None,
        seconds=seconds,
    )
