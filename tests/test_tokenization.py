"""Tokenizer unit tests with hand-made vocabularies, in the style of the original BERT
tokenization_test.py, plus the encode/offsets/truncation/padding/save contract."""

from __future__ import annotations

import json
import unicodedata

import pytest

from bertkit.errors import BertkitError
from bertkit.tokenization import PRESERVE_HANGUL_KANA_KEY, Tokenizer

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# The vocabulary of the original tests (plus the specials bertkit needs).
ORIGINAL_VOCAB = SPECIALS + ["want", "##want", "##ed", "wa", "un", "runn", "##ing", ",", "low", "lowest"]


def make(tokens, **kw) -> Tokenizer:
    return Tokenizer(SPECIALS + [t for t in tokens if t not in SPECIALS], **kw)


def test_full_tokenizer_original_example():
    tok = Tokenizer(ORIGINAL_VOCAB)
    pieces = tok.tokenize("UNwant\u00e9d,running")
    assert pieces == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert tok.convert_tokens_to_ids(pieces) == [9, 6, 7, 12, 10, 11]


def test_wordpiece_original_cases():
    tok = Tokenizer(ORIGINAL_VOCAB)
    assert tok.tokenize("") == []
    assert tok.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert tok.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]


def test_basic_tokenizer_lower_and_accents():
    tok = make(["hello", "how", "are", "you", "?", "!", "allo", "##hello"])
    assert tok.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are", "you", "?"]
    assert tok.tokenize("H\u00e9llo") == ["hello"]
    assert tok.tokenize("H\u00c4llo") == ["[UNK]"]  # "hallo" is not in the vocabulary


def test_basic_tokenizer_cased_and_strip_options():
    cased = make(["HeLLo", "H\u00e9llo", "Hello", "hello"], do_lower_case=False)
    assert cased.tokenize("HeLLo H\u00e9llo") == ["HeLLo", "H\u00e9llo"]
    cased_strip = make(["HeLLo", "Hello"], do_lower_case=False, strip_accents=True)
    assert cased_strip.tokenize("H\u00e9llo") == ["Hello"]
    lower_keep = make(["h\u00e9llo"], do_lower_case=True, strip_accents=False)
    assert lower_keep.tokenize("H\u00c9llo") == ["h\u00e9llo"]


def test_chinese_chars_and_option():
    tok = make(["\u4e2d", "\u6587", "ah", "##\u4e2d"])
    assert tok.tokenize("ah\u535a\u63a8zz") == ["ah", "[UNK]", "[UNK]", "[UNK]"]
    assert tok.tokenize("ah\u4e2d\u6587") == ["ah", "\u4e2d", "\u6587"]
    off = make(["\u4e2d", "\u6587", "ah", "##\u4e2d"], tokenize_chinese_chars=False)
    assert off.tokenize("ah\u4e2d") == ["ah", "##\u4e2d"]


def test_control_whitespace_and_punctuation():
    tok = make(["a", "b", "c", "$", "^", "`", "~", "\u00bf", "\u2026"])
    assert tok.tokenize("a\x00b\u200bc\ufffd") == ["[UNK]"]  # one word "abc" after cleaning
    assert tok.tokenize("a\u00a0b\u3000c") == ["a", "b", "c"]
    assert tok.tokenize("a$b^c`a~b") == ["a", "$", "b", "^", "c", "`", "a", "~", "b"]
    assert tok.tokenize("\u00bfa\u2026") == ["\u00bf", "a", "\u2026"]
    # Symbols (S*) outside ASCII are not punctuation: they stay inside the word.
    assert tok.tokenize("a\u00a9") == ["[UNK]"]


def test_long_words_become_unk():
    tok = make(["a", "##a"])
    assert tok.tokenize("a" * 100) == ["a"] + ["##a"] * 99
    assert tok.tokenize("a" * 101) == ["[UNK]"]


def test_special_tokens_are_never_split():
    tok = Tokenizer(ORIGINAL_VOCAB)
    assert tok.tokenize("want[MASK]want [SEP]") == ["want", "[MASK]", "want", "[SEP]"]
    assert tok.tokenize("[mask]") == ["[UNK]", "[UNK]", "[UNK]"]  # "[", "mask", "]"


def test_special_ids_and_len():
    tok = Tokenizer(ORIGINAL_VOCAB)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert len(tok) == len(ORIGINAL_VOCAB)
    assert tok.vocab["want"] == 5
    assert tok.convert_ids_to_tokens([2, 5, 6]) == ["[CLS]", "want", "##want"]
    assert tok.convert_tokens_to_ids(["nope"]) == [tok.unk_id]
    with pytest.raises(BertkitError, match="outside the vocabulary"):
        tok.convert_ids_to_tokens([999])


def test_encode_single_and_pair():
    tok = Tokenizer(ORIGINAL_VOCAB)
    e = tok.encode("unwanted", "running")
    assert e.tokens == ["[CLS]", "un", "##want", "##ed", "[SEP]", "runn", "##ing", "[SEP]"]
    assert e.input_ids == [2, 9, 6, 7, 3, 10, 11, 3]
    assert e.token_type_ids == [0, 0, 0, 0, 0, 1, 1, 1]
    assert e.attention_mask == [1] * 8
    assert e.special_tokens_mask == [1, 0, 0, 0, 1, 0, 0, 1]
    assert e.offsets == [(0, 0), (0, 2), (2, 6), (6, 8), (0, 0), (0, 4), (4, 7), (0, 0)]
    assert e.word_ids == [None, 0, 0, 0, None, 0, 0, None]
    assert e.sequence_ids == [None, 0, 0, 0, None, 1, 1, None]


def test_truncation_strategies():
    tok = make(["a", "b"])
    a, b = " ".join(["a"] * 10), " ".join(["b"] * 10)
    # longest_first: one at a time from the longer, from the pair on ties (transformers' rule).
    e = tok.encode(a, b, max_length=18)
    assert e.tokens.count("a") == 8 and e.tokens.count("b") == 7
    e = tok.encode(a, " ".join(["b"] * 4), max_length=12)
    assert e.tokens.count("a") == 5 and e.tokens.count("b") == 4
    e = tok.encode(a, b, max_length=15, truncation="only_first")
    assert e.tokens.count("a") == 2 and e.tokens.count("b") == 10
    e = tok.encode(a, b, max_length=15, truncation="only_second")
    assert e.tokens.count("a") == 10 and e.tokens.count("b") == 2
    assert len(tok.encode(a, max_length=5)) == 5
    assert len(tok.encode(a, max_length=5, truncation=False)) == 12
    with pytest.raises(BertkitError, match="cannot truncate"):
        tok.encode(a, b, max_length=12, truncation="only_second")
    with pytest.raises(BertkitError, match="only_second' needs pairs"):
        tok.encode(a, max_length=50, truncation="only_second")
    with pytest.raises(BertkitError, match="unknown truncation"):
        tok.encode(a, max_length=5, truncation="middle")


def test_padding():
    tok = make(["a", "b"])
    e = tok.encode("a b", max_length=8, padding="max_length")
    assert e.input_ids == [2, 5, 6, 3, 0, 0, 0, 0]
    assert e.attention_mask == [1, 1, 1, 1, 0, 0, 0, 0]
    assert e.special_tokens_mask == [1, 0, 0, 1, 1, 1, 1, 1]
    assert e.offsets[-1] == (0, 0) and e.word_ids[-1] is None
    batch = tok.encode_batch(["a", "a b a b"], padding=True)
    assert [len(x) for x in batch] == [6, 6]
    assert batch[0].attention_mask == [1, 1, 1, 0, 0, 0]
    with pytest.raises(BertkitError, match="needs max_length"):
        tok.encode("a", padding="max_length")


def test_encode_batch_matches_single():
    tok = Tokenizer(ORIGINAL_VOCAB)
    texts = ["unwanted", "running, low", "", "lowest want"]
    pairs = ["low", "want", "runn", ""]
    batch = tok.encode_batch(texts, pairs, max_length=6)
    assert batch == [tok.encode(t, p, max_length=6) for t, p in zip(texts, pairs)]
    assert tok.tokenize_ids_batch(texts) == [tok.convert_tokens_to_ids(tok.tokenize(t)) for t in texts]
    with pytest.raises(BertkitError, match="pairs"):
        tok.encode_batch(texts, pairs[:2])


def test_ascii_fast_path_equals_full_engine():
    """Clean ASCII text goes to a leaner engine; it must give what the full engine gives."""
    tok = Tokenizer(ORIGINAL_VOCAB)
    texts = ["UNwanted,running [MASK] low~est", "want\ted\nrunn\ring", "a\x01b\x7fc", "x" * 120]
    for text in texts:
        full = tok._engine.encode(text, add_special_tokens=False)
        assert tok.tokenize(text) == full.tokens
        assert tok.encode(text).offsets[1:-1] == full.offsets
    mixed = texts + ["unw\u00e4nted"]
    assert tok.tokenize_ids_batch(mixed) == [tok._engine.encode(t, add_special_tokens=False).ids for t in mixed]


def test_decode_joins_pieces():
    tok = Tokenizer(ORIGINAL_VOCAB)
    e = tok.encode("UNwant\u00e9d,running")
    assert tok.decode(e.input_ids) == "unwanted , running"
    assert tok.decode(e.input_ids, skip_special_tokens=False) == "[CLS] unwanted , running [SEP]"


def _strip(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _hangul_or_kana(c: str) -> bool:
    return 0xAC00 <= ord(c) <= 0xD7A3 or 0x3041 <= ord(c) <= 0x30FF


def _normalize_like(tok: Tokenizer, span: str) -> str:
    """What the basic tokenizer makes of an original span (reference, pure Python)."""
    span = "".join(c for c in span if unicodedata.category(c)[0] != "C" or c in "\t\n\r")
    span = unicodedata.normalize("NFC", span)
    if tok.do_lower_case:
        span = span.lower().replace("\u03c2", "\u03c3")
    strip = tok.do_lower_case if tok.strip_accents is None else tok.strip_accents
    if strip:
        if tok.preserve_hangul_kana:  # Hangul syllables and kana stay whole, the rest is stripped
            span = "".join(c if _hangul_or_kana(c) else _strip(c) for c in span)
        else:
            span = "".join(c for c in unicodedata.normalize("NFD", span) if unicodedata.category(c) != "Mn")
    return span


OFFSET_TEXTS = [
    "UNwant\u00e9d,running",
    "\u00c9COLE e\u0301cole \u0130stanbul \u039f\u0394\u039f\u03a3 STRA\u00dfE",
    "\u212b\u2126 \uf900\u4e2d\u6587 caf\u00e9\u0327",
    "a\x00b\u200bc \ufffd x\u00adyz \U0001f970 \U00011938 \ud800z",
    "\ud55c\uad6d\uc5b4 \u304c\u3099 \u304b\u3099 \u1112\u1161\u11ab",
]


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("preserve", [False, True])
def test_offsets_point_into_original_text(lower, preserve):
    chars = sorted(
        set(
            "".join(_normalize_like(Tokenizer(ORIGINAL_VOCAB), t) for t in OFFSET_TEXTS)
            + "".join(OFFSET_TEXTS)
            + "".join(t.lower() for t in OFFSET_TEXTS)
        )
    )
    # A character vocabulary (+ continuations) so that almost every token is a real piece.
    pieces = [c for c in chars if not c.isspace() and unicodedata.category(c)[0] != "C"]
    tok = make(
        pieces + ["##" + c for c in pieces] + ["un", "##want", "##ed", "runn", "##ing"],
        do_lower_case=lower,
        preserve_hangul_kana=preserve,
    )
    checked = 0
    for text in OFFSET_TEXTS:
        e = tok.encode(text)
        for token, (s, end), special in zip(e.tokens, e.offsets, e.special_tokens_mask):
            if special:
                assert (s, end) == (0, 0)
                continue
            if token == "[UNK]":
                continue
            piece = token[2:] if token.startswith("##") else token
            want = piece.replace("\u03c2", "\u03c3") if lower else piece
            got = _normalize_like(tok, text[s:end])
            # One original character that normalises to several (U+11938 -> two letters, split
            # into two pieces) cannot be divided: each piece then points at that one character.
            assert got == want or (end - s == 1 and want in got), (text, token, s, end)
            checked += 1
    assert checked > 40


def test_word_ids_group_pieces_of_a_word():
    tok = Tokenizer(ORIGINAL_VOCAB)
    e = tok.encode("unwanted, running")
    assert e.word_ids == [None, 0, 0, 0, 1, 2, 2, None]


# ------------------------------------------------------------------ Hangul / kana option

KO_JA_VOCAB = [
    "\ud55c\uad6d\uc5b4",
    "\ud14d\uc2a4\ud2b8",
    "\u304c",
    "##\u304e",
    "\u30d1\u30f3",
    "cafe",
    "\u304b",
    "##\u304d",
    "\u30cf\u30f3",
    "\u1112",
    "##\u1161",
    "##\u11ab",
    "\u1112\u1161\u11ab",
    "\uc548\ub155",
    "\u3053\u3093\u306b\u3061\u306f",
    "\u3067\u3059",
]


def test_preserve_hangul_kana_keeps_korean_and_japanese():
    tok = make(KO_JA_VOCAB, preserve_hangul_kana=True)
    assert tok.tokenize("\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8") == ["\ud55c\uad6d\uc5b4", "\ud14d\uc2a4\ud2b8"]
    assert tok.tokenize("\u304c\u304e \u30d1\u30f3 Caf\u00e9") == ["\u304c", "##\u304e", "\u30d1\u30f3", "cafe"]
    assert tok.tokenize("\uc548\ub155 \u3053\u3093\u306b\u3061\u306f\u3067\u3059") == [
        "\uc548\ub155",
        "[UNK]",
    ]  # the whole word is matched greedily, no "##" piece for the rest
    # Decomposed input is recomposed: jamo -> syllable, kana + voicing mark -> voiced kana.
    assert tok.tokenize("\u304b\u3099\u304d\u3099") == ["\u304c", "##\u304e"]


def test_original_accent_stripping_decomposes_hangul_and_kana():
    tok = make(KO_JA_VOCAB)  # default: loading an existing vocabulary keeps the original rule
    assert not tok.preserve_hangul_kana
    assert tok.tokenize("\u304c\u304e \u30d1\u30f3") == ["\u304b", "##\u304d", "\u30cf\u30f3"]
    assert tok.tokenize("\ud55c") == ["\u1112\u1161\u11ab"]  # the syllable became three jamo
    assert tok.tokenize("\ud55c\uad6d\uc5b4") == ["[UNK]"]


def test_preserve_option_round_trips_through_config(tmp_path):
    tok = make(KO_JA_VOCAB, preserve_hangul_kana=True)
    tok.save(tmp_path)
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert cfg[PRESERVE_HANGUL_KANA_KEY] is True
    assert Tokenizer.from_pretrained(tmp_path).tokenize("\ud55c\uad6d\uc5b4") == ["\ud55c\uad6d\uc5b4"]
    cfg.pop(PRESERVE_HANGUL_KANA_KEY)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert Tokenizer.from_pretrained(tmp_path).tokenize("\ud55c\uad6d\uc5b4") == ["[UNK]"]


# ------------------------------------------------------------------ files and errors


def test_save_and_load_round_trip(tmp_path):
    tok = make(["want", "##ed"], do_lower_case=False, tokenize_chinese_chars=False)
    tok.save(tmp_path / "tok")
    assert (tmp_path / "tok" / "vocab.txt").read_text().splitlines()[:3] == ["[PAD]", "[UNK]", "[CLS]"]
    again = Tokenizer.from_pretrained(tmp_path / "tok")
    assert again.vocab == tok.vocab
    assert (again.do_lower_case, again.tokenize_chinese_chars) == (False, False)
    assert again.tokenize("wanted Want") == ["want", "##ed", "[UNK]"]


def test_missing_special_tokens_are_clear_errors(tmp_path):
    for missing in ["[UNK]", "[CLS]", "[SEP]"]:
        (tmp_path / "vocab.txt").write_text("\n".join(t for t in ORIGINAL_VOCAB if t != missing) + "\n")
        with pytest.raises(BertkitError, match=rf"vocab.txt: lacks the special token \{missing[:-1]}\]"):
            Tokenizer.from_pretrained(tmp_path)


def test_bad_vocab_files(tmp_path):
    with pytest.raises(BertkitError, match="no such file"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_bytes(b"[PAD]\n\xff\n")
    with pytest.raises(BertkitError, match="invalid UTF-8 at byte offset 6"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(ORIGINAL_VOCAB) + "\n")
    (tmp_path / "tokenizer_config.json").write_text('{"do_basic_tokenize": false}')
    with pytest.raises(BertkitError, match="do_basic_tokenize=false .* not supported"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"strip_accents": "yes"}')
    with pytest.raises(BertkitError, match="strip_accents must be"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").unlink()
    (tmp_path / "vocab.txt").write_text("\n".join(ORIGINAL_VOCAB + ["want"]) + "\n")
    with pytest.raises(BertkitError, match="line 16: duplicate token 'want'"):
        Tokenizer.from_pretrained(tmp_path)


def test_real_vocab_loads(minilm_dir):
    tok = Tokenizer.from_pretrained(minilm_dir)
    assert len(tok) == 30522
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102, 103)
    assert tok.tokenize("The quick brown fox jumped.") == ["the", "quick", "brown", "fox", "jumped", "."]
