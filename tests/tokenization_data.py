"""Texts for the tokenizer parity tests: every line of every corpus and task file, and a Unicode
stress set. Shared by tests/test_tokenization_parity.py and bench/tokenizer_speed.py."""

from __future__ import annotations

import json
from pathlib import Path


def texts_of_file(path: Path) -> list[str]:
    """The text lines of one shared-data file (its text fields; every line of plain text)."""
    name = path.name
    raw = path.read_text(encoding="utf-8")
    out: list[str] = []
    if name.endswith(".jsonl"):
        for line in raw.splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            for key in ("text", "question", "passage"):
                if isinstance(obj.get(key), str):
                    out.extend(obj[key].split("\n"))
    elif name.endswith(".json"):
        for art in json.loads(raw)["data"]:
            for para in art["paragraphs"]:
                out.extend(para["context"].split("\n"))
                for qa in para["qas"]:
                    out.append(qa["question"])
                    out.extend(a["text"] for a in qa.get("answers", []))
    elif name.endswith(".tsv"):
        for line in raw.splitlines():
            out.extend(line.split("\t"))
    elif name.endswith(".conll"):
        out.extend(line.split("\t")[0] for line in raw.splitlines())
    else:
        out.extend(raw.splitlines())
    return out


def shared_text_files(shared: Path) -> list[Path]:
    files = sorted((shared / "corpus").iterdir()) + sorted((shared / "tasks").rglob("*"))
    return [f for f in files if f.is_file()]


def sample(texts: list[str], n: int) -> list[str]:
    """A deterministic, evenly spread sample of ``n`` texts."""
    if len(texts) <= n:
        return texts
    step = len(texts) / n
    return [texts[int(i * step)] for i in range(n)]


# Unicode stress set: one entry per difficulty the original algorithm has to get right.
STRESS = [
    "UNwant\u00e9d,running",
    "H\u00e9llo, W\u00f6rld! na\u00efve caf\u00e9 \u00c5ngstr\u00f6m \u212b \u2126",
    # emoji, including ones newer than tokenizers' Unicode tables, and ZWJ / skin-tone sequences
    "I love it \U0001f970\U0001f970 so much \U0001f923 \U0001fae0 \U0001f600",
    "family \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 ok \U0001f44d\U0001f3fd done",
    "flags \U0001f1fa\U0001f1f8\U0001f1ec\U0001f1e7 and keycap 1\ufe0f\u20e3 and \u2764\ufe0f",
    # combining marks (decomposed input), stacked marks, marks after spaces / punctuation
    "e\u0301cole\u0300 a\u0308\u0304b \u0301x .\u0301 o\u0323\u0302 \u1ec7",
    # control and zero-width characters, BOM, soft hyphen, bidi controls, U+FFFD, NUL
    "a\x00b\x01c\x7fd\u200be\u200cf\u200dg\ufeffh\u00adi\u202ej\u2066k\ufffdl\x0bm\x0cn\x85o",
    "tab\tnew\nline\rcr\u2028ls\u2029ps\x1cfs\x1fus",
    # CJK: unified, extension A/B/E (the range tokenizers gets wrong), compatibility ideographs
    "\u4e2d\u6587\u5b57\u7b26abc\u3400\U00020000\U0002b820\U0002b8ff\U0002ce00 \uf900\ufa0e \U0002f800",
    # Japanese kana with voicing marks, halfwidth katakana, full-width letters and punctuation
    "\u304c\u304e\u3050\u3071\u30d1\u30d3 \u30ac\u30ae\u30d0 \uff8a\uff9f \uff21\uff22\uff23\uff01\uff1f\u3002\u3001",
    # Hangul syllables and jamo
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8 \u1112\u1161\u11ab \u3131\u314f",
    # Arabic with harakat, Hebrew with points, Thai, Devanagari, Bengali two-part vowels
    "\u0627\u0644\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u0651\u0629 \u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd",
    "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22 \u0e01\u0e34\u0e19\u0e02\u0e49\u0e32\u0e27 \u0939\u093f\u0928\u094d\u0926\u0940 \u0995\u09cb",
    # mixed whitespace: NBSP, ideographic, em/en spaces, narrow NBSP, ogham
    "a\u00a0b\u3000c\u2003d\u2002e\u202ff\u205fg\u1680h  \t  i",
    # Greek final sigma, Turkish dotted I, German sharp s, ligatures, Cyrillic accents
    "\u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u0399\u0391 \u03a3. \u0391\u03a3\u0391\u03a3 \u0130stanbul STRA\u1e9eE \ufb01ne \u0439\u043e\u0301\u0434",
    # long words: 100 and 101 characters and a 200-character word
    "a" * 100 + " " + "b" * 101 + " " + "word" * 50,
    "x" * 99 + "\u0301" + " " + "\u00e9" * 100 + " " + "\u00e9" * 101,
    # punctuation classes: ASCII symbols, Unicode P* and symbols (S*), which are not split
    "a$b^c`d~e|f+g<h=i>j \u00a7\u00b6\u2020\u2021\u2022\u2026\u00bf\u00a1\u00ab\u00bb\u201c\u201d \u00a9\u00ae\u2122\u20ac\u00a3\u00b0\u00b1\u00d7",
    # punctuation newer than tokenizers' tables (U+2E4F Unicode 11, U+2E5D Unicode 14)
    "a\u2e4fb c\u2e5dd e\u2e42f",
    # special tokens inside the text
    "[CLS] hello [MASK] world[SEP]x [mask] [UNK]",
    # private use, unassigned, variation selectors, tags
    "a\ue000b\U000f0000c\U000e0041d\ufe0fe\U0010ffff f\u0378g \U00011f00x",
    # Dives Akuru vowel: a character whose NFD differs between Python 3.11 and tokenizers
    "\U00011938\U00011935\U00011930",
    "",
    "   \t\n ",
]
