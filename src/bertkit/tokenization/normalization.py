"""The original basic tokenizer's normalisation and pre-tokenisation, for the Rust engine.

The engine is configured with character classes computed from Python's own Unicode tables
(see :mod:`bertkit.tokenization.unicode_tables`) instead of the built-in ``BertNormalizer`` /
``BertPreTokenizer``, which drift from the original. The few remaining differences
(context-dependent final sigma, characters whose case/normalisation mapping differs between
the Python and Rust Unicode versions, lone surrogates) are fixed by a small Python pre-pass
that only runs on texts containing such characters. The helpers at the end map the engine's
offsets back through the pre-pass and NFC composition.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from tokenizers import Regex, normalizers, pre_tokenizers

from bertkit.tokenization import unicode_tables as ut

_CGJ = "\u034f"  # COMBINING GRAPHEME JOINER


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


@functools.cache
def _prepass_regex(do_lower_case: bool) -> re.Pattern:
    """Texts matching this need the Python pre-pass: drift chars, surrogates, capital sigma."""
    chars = set(ut.drift_chars())
    if do_lower_case:
        chars.add(ut.GREEK_CAPITAL_SIGMA)
    ranges = ut._merge([(ord(c), ord(c)) for c in chars] + [(0xD800, 0xDFFF)])
    return re.compile(ut.py_class(ranges))


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
