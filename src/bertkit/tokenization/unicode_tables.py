"""Character classes that make the Rust ``tokenizers`` engine behave exactly like the original BERT.

The original basic tokenizer (and transformers' slow ``BertTokenizer``, its faithful port) asks
Python's :mod:`unicodedata` which characters are control characters (removed), punctuation
(split off) and non-spacing marks (stripped with the accents). ``tokenizers``' built-in
``BertNormalizer`` / ``BertPreTokenizer`` answer the same questions from their own Unicode
tables (of other versions), which is where the drift comes from. Measured with tokenizers 0.23
against Python 3.11 (Unicode 14): punctuation added after Unicode 9 (e.g. U+2E4F) is not split
off; code points unassigned in Python's tables (e.g. Kawi, U+11F00) are kept instead of removed;
CJK extension E starts at U+2B920 instead of U+2B820; capital sigma is always lowercased to σ,
never to the final ς; and (transformers' slow tokenizer only) there is no NFC step. Earlier
tokenizers releases also deleted emoji newer than their tables; the stress test covers them.

So bertkit never uses those built-ins: it builds regular-expression character classes from
Python's own tables and gives them to ``tokenizers``' ``Replace`` normalizer and ``Split``
pre-tokenizer. What is left over are the few characters whose lowercase / NFC / NFD mapping differs
between Python and Rust (different Unicode versions), plus the context-dependent final sigma;
:func:`drift_chars` lists them and the tokenizer fixes texts containing them in Python first.

Building the classes takes about 1.5 s (passes over all 1.1M code points), so the results are
stored in the generated module ``_unicode_data.py`` for the Unicode version of this Python and
the ``tokenizers`` version they were computed with; with other versions they are recomputed
(once per process). Regenerate with ``python -m bertkit.tokenization.unicode_tables``; a test
checks that the stored tables equal freshly computed ones.
"""

from __future__ import annotations

import functools
import sys
import unicodedata

# The CJK ranges of the original ``_is_chinese_char`` (identical in transformers). NB:
# ``tokenizers`` has 0x2B920 instead of 0x2B820 as the start of extension E, another drift.
CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0x2F800, 0x2FA1F),
)
# ASCII characters the original treats as punctuation although Unicode files some as symbols.
_ASCII_PUNCT = [(33, 47), (58, 64), (91, 96), (123, 126)]
# Kana (hiragana + katakana blocks, and the halfwidth katakana) whose voicing marks bertkit's
# Hangul/kana-preserving accent stripping keeps.
KANA_RANGES: tuple[tuple[int, int], ...] = ((0x3041, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F))
KANA_VOICING_MARKS = "\u3099\u309a"
GREEK_CAPITAL_SIGMA = "\u03a3"


def _ranges(pred) -> list[tuple[int, int]]:
    """Collapse the code points for which ``pred(cp, category)`` holds into inclusive ranges."""
    out: list[tuple[int, int]] = []
    cat = unicodedata.category
    for cp in range(sys.maxunicode + 1):
        if pred(cp, cat(chr(cp))):
            if out and out[-1][1] == cp - 1:
                out[-1] = (out[-1][0], cp)
            else:
                out.append((cp, cp))
    return out


def _merge(ranges) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


def onig_class(ranges, negated: bool = False) -> str:
    """A character class for the Oniguruma regexes of ``tokenizers`` (``\\x{HHHH}`` escapes)."""
    parts = []
    for a, b in ranges:
        parts.append(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}")
    return ("[^" if negated else "[") + "".join(parts) + "]"


def py_class(ranges) -> str:
    """The same class for Python's :mod:`re`."""
    parts = []
    for a, b in ranges:
        parts.append(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}")
    return "[" + "".join(parts) + "]"


def _without_surrogates(ranges) -> list[tuple[int, int]]:
    """Rust strings cannot hold surrogates, so the Rust-side classes leave them out."""
    out = []
    for a, b in ranges:
        if b < 0xD800 or a > 0xDFFF:
            out.append((a, b))
            continue
        if a < 0xD800:
            out.append((a, 0xD7FF))
        if b > 0xDFFF:
            out.append((0xE000, b))
    return out


@functools.cache
def _stored(need_tokenizers: bool):
    """The generated tables module if it matches the running versions, else ``None``."""
    try:
        from bertkit.tokenization import _unicode_data as data
    except ImportError:
        return None
    names = (
        "UNIDATA_VERSION",
        "TOKENIZERS_VERSION",
        "REMOVED",
        "PUNCT",
        "MARKS",
        "COMPOSING",
        "COMPOSE_FIRSTS",
        "COMPOSE_SECONDS",
        "DRIFT",
    )
    if not all(hasattr(data, n) for n in names) or data.UNIDATA_VERSION != unicodedata.unidata_version:
        return None
    if need_tokenizers:
        import tokenizers

        if data.TOKENIZERS_VERSION != tokenizers.__version__:
            return None
    return data


@functools.cache
def removed_ranges() -> tuple[tuple[int, int], ...]:
    """Characters the original's ``_clean_text`` deletes: NUL, U+FFFD and every ``C*`` category
    character except tab, newline and carriage return (which count as whitespace)."""
    data = _stored(False)
    if data is not None:
        return tuple(data.REMOVED)
    keep = {0x09, 0x0A, 0x0D}
    return tuple(_ranges(lambda cp, c: cp == 0xFFFD or (c[0] == "C" and cp not in keep)))


@functools.cache
def punct_ranges() -> tuple[tuple[int, int], ...]:
    """The original's ``_is_punctuation``: ASCII non-alphanumerics and every ``P*`` character."""
    data = _stored(False)
    if data is not None:
        return tuple(data.PUNCT)
    return tuple(_merge(_ASCII_PUNCT + _ranges(lambda cp, c: c[0] == "P")))


@functools.cache
def mark_ranges() -> tuple[tuple[int, int], ...]:
    """Non-spacing marks (``Mn``), which the original's accent stripping deletes after NFD."""
    data = _stored(False)
    if data is not None:
        return tuple(data.MARKS)
    return tuple(_ranges(lambda cp, c: c == "Mn"))


_JAMO_VT = [(0x1160, 0x11FF), (0xD7B0, 0xD7FF)]


@functools.cache
def composing_ranges() -> tuple[tuple[int, int], ...]:
    """Characters NFC can compose onto the preceding one: marks (``M*``) and Hangul V/T jamo."""
    data = _stored(False)
    if data is not None:
        return tuple(data.COMPOSING)
    return tuple(_merge(_JAMO_VT + _ranges(lambda cp, c: c[0] == "M")))


def _compute_compose_pairs() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    firsts, seconds = set(), set()
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        d = unicodedata.decomposition(chr(cp))
        if not d or d.startswith("<"):
            continue
        parts = [int(x, 16) for x in d.split()]
        if len(parts) != 2 or unicodedata.category(chr(parts[1])) == "Mn":
            continue
        if unicodedata.normalize("NFC", chr(parts[0]) + chr(parts[1])) == chr(cp):
            firsts.add(parts[0])
            seconds.add(parts[1])
    return _merge((c, c) for c in firsts), _merge((c, c) for c in seconds)


@functools.cache
def compose_pairs() -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """First and second characters of canonical compositions whose second character is not a
    non-spacing mark (Indic two-part vowels and the like). Accent stripping leaves such pairs
    decomposed; the Hangul/kana-preserving variant must not let its final NFC recompose them."""
    data = _stored(False)
    if data is not None:
        return tuple(data.COMPOSE_FIRSTS), tuple(data.COMPOSE_SECONDS)
    firsts, seconds = _compute_compose_pairs()
    return tuple(firsts), tuple(seconds)


def _in(ranges, cp: int) -> bool:
    return any(a <= cp <= b for a, b in ranges)


@functools.cache
def drift_chars() -> frozenset[str]:
    """Characters kept by cleaning whose NFC, lowercase or NFD differ between Python and Rust.

    Computed by running ``tokenizers``' normalizers over every such character and comparing
    with :mod:`unicodedata` / ``str.lower``. Texts containing one of them (or a capital sigma,
    whose lowercase depends on context) are fixed in Python before the Rust pipeline runs.
    """
    data = _stored(True)
    if data is not None:
        return frozenset(data.DRIFT)
    return compute_drift_chars()


def compute_drift_chars() -> frozenset[str]:
    """:func:`drift_chars` computed afresh (about a second)."""
    from tokenizers import normalizers

    removed = removed_ranges()
    chars = []
    for a, b in _without_surrogates([(0, sys.maxunicode)]):
        for cp in range(a, b + 1):
            chars.append(chr(cp))
    # Remove what cleaning removes (it is never transformed); compare in blocks so that the
    # common case (whole block identical) costs one string comparison.
    chars = [c for c in chars if not _in_sorted(removed, ord(c))]
    checks = [
        (normalizers.NFC(), lambda s: unicodedata.normalize("NFC", s)),
        (normalizers.Lowercase(), str.lower),
        (normalizers.NFD(), lambda s: unicodedata.normalize("NFD", s)),
    ]
    drift: set[str] = set()
    block = 4096
    for rust, py in checks:
        for i in range(0, len(chars), block):
            chunk = chars[i : i + block]
            joined = "\n".join(chunk)  # separators keep lowercase context-free per char
            if rust.normalize_str(joined) == "\n".join(py(c) for c in chunk):
                continue
            drift.update(c for c in chunk if rust.normalize_str(c) != py(c))
    return frozenset(drift)


def _in_sorted(ranges, cp: int) -> bool:
    """Binary search in sorted, disjoint inclusive ranges."""
    lo, hi = 0, len(ranges)
    while lo < hi:
        mid = (lo + hi) // 2
        a, b = ranges[mid]
        if cp < a:
            hi = mid
        elif cp > b:
            lo = mid + 1
        else:
            return True
    return False


def is_removed(ch: str) -> bool:
    return _in_sorted(removed_ranges(), ord(ch))


def is_punct(ch: str) -> bool:
    return _in_sorted(punct_ranges(), ord(ch))


def is_cjk(ch: str) -> bool:
    return _in(CJK_RANGES, ord(ch))


def is_kana(ch: str) -> bool:
    return _in(KANA_RANGES, ord(ch))


def compute_all() -> dict:
    """Every stored table, computed afresh from the running Python and ``tokenizers``."""
    import tokenizers

    keep = {0x09, 0x0A, 0x0D}
    return {
        "UNIDATA_VERSION": unicodedata.unidata_version,
        "TOKENIZERS_VERSION": tokenizers.__version__,
        "REMOVED": _ranges(lambda cp, c: cp == 0xFFFD or (c[0] == "C" and cp not in keep)),
        "PUNCT": _merge(_ASCII_PUNCT + _ranges(lambda cp, c: c[0] == "P")),
        "MARKS": _ranges(lambda cp, c: c == "Mn"),
        "COMPOSING": _merge(_JAMO_VT + _ranges(lambda cp, c: c[0] == "M")),
        "COMPOSE_FIRSTS": _compute_compose_pairs()[0],
        "COMPOSE_SECONDS": _compute_compose_pairs()[1],
        "DRIFT": "".join(sorted(compute_drift_chars())),
    }


def write_data_module(path=None) -> str:
    """Write ``_unicode_data.py`` (next to this file unless ``path`` is given)."""
    from pathlib import Path

    from bertkit.fileio import atomic_write_text

    tables = compute_all()
    lines = ['"""Generated by ``python -m bertkit.tokenization.unicode_tables``; do not edit."""', ""]
    for key, value in tables.items():
        if isinstance(value, list):
            lines.append(f"{key} = [")
            lines += [f"    (0x{a:X}, 0x{b:X})," for a, b in value]
            lines.append("]")
        else:
            lines.append(f"{key} = {ascii(value)}")
    target = Path(path) if path else Path(__file__).with_name("_unicode_data.py")
    atomic_write_text(target, "\n".join(lines) + "\n")
    return str(target)


if __name__ == "__main__":
    print(write_data_module())
