"""Corpus readers: formats, gzip, files/directories/globs, sentence splitting, errors, limits."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conftest import require_shared

from bertkit.corpus import (
    CorpusStats,
    detect_format,
    expand_inputs,
    iter_chunks,
    iter_documents,
    split_sentences,
)
from bertkit.errors import BertkitError


def docs_of(paths, fmt="auto", **kw):
    stats = CorpusStats()
    return [(d.doc_id, d.sentences()) for d in iter_documents([Path(p) for p in paths], fmt, stats=stats, **kw)], stats


def test_bert_format(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("First one.\nSecond one here.\n\n\n  \nOther doc.\nMr. Smith left.\n")
    docs, stats = docs_of([p])
    assert docs == [(0, ["First one.", "Second one here."]), (1, ["Other doc.", "Mr. Smith left."])]
    assert stats.documents == 2 and stats.bytes == p.stat().st_size


def test_plain_text_paragraphs_are_segmented(tmp_path):
    p = tmp_path / "plain.txt"
    p.write_text(
        "Dr. Watson arrived at 5 p.m. on Monday. He was late! Was he tired? Yes.\n"
        "A second paragraph. It has two sentences.\n\nNext document here. Short.\n"
    )
    assert detect_format(p) == "text"
    docs, _ = docs_of([p])
    assert docs[0][1] == [
        "Dr. Watson arrived at 5 p.m. on Monday.",
        "He was late!",
        "Was he tired?",
        "Yes.",
        "A second paragraph.",
        "It has two sentences.",
    ]
    assert docs[1][1] == ["Next document here.", "Short."]


def test_jsonl_and_gzip(tmp_path):
    p = tmp_path / "d.jsonl.gz"
    rows = [{"id": "x", "text": "Title\nOne sentence. Another one."}, {"text": "Solo."}]
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert detect_format(p) == "jsonl"
    docs, _ = docs_of([p])
    assert docs == [(0, ["Title", "One sentence.", "Another one."]), (1, ["Solo."])]


def test_byte_order_mark_is_dropped(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": "One. Two."}).encode() + b"\n")
    assert detect_format(p) == "jsonl"
    docs, stats = docs_of([p])
    assert docs == [(0, ["One.", "Two."])] and stats.bytes == p.stat().st_size
    t = tmp_path / "bom.txt"
    t.write_bytes(b"\xef\xbb\xbfFirst.\nSecond.\n")
    assert docs_of([t])[0] == [(0, ["First.", "Second."])]


def test_jsonl_errors_name_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "ok."}\n{"text": \n')
    with pytest.raises(BertkitError, match=r"bad\.jsonl:2: invalid JSON"):
        docs_of([p])
    p.write_text('{"text": "ok."}\n{"body": "no text"}\n')
    with pytest.raises(BertkitError, match=r'bad\.jsonl:2: expected a JSON object with a string "text"'):
        docs_of([p])


def test_expand_inputs(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.txt", "a.jsonl", "sub/c.txt.gz", "skip.bin", ".hidden.txt"):
        (tmp_path / name).write_bytes(b"x\n")
    found = [p.relative_to(tmp_path).as_posix() for p in expand_inputs([tmp_path])]
    assert found == ["a.jsonl", "b.txt", "sub/c.txt.gz"]
    assert [p.name for p in expand_inputs([str(tmp_path / "*.txt"), tmp_path / "b.txt"])] == ["b.txt"]
    with pytest.raises(BertkitError, match="no such file or directory"):
        expand_inputs([tmp_path / "missing.txt"])
    with pytest.raises(BertkitError, match="pattern matches no files"):
        expand_inputs([str(tmp_path / "*.nothing")])


def test_long_lines_are_skipped_counted_and_named(tmp_path):
    p = tmp_path / "long.txt"
    p.write_bytes(b"Short one.\n" + b"x" * 5000 + b"\nAfter it.\n\nNext doc.\n")
    docs, stats = docs_of([p], "bert", max_line_bytes=1000)
    # the long line ends the document like a blank line would; nothing else is lost
    assert [d[1] for d in docs] == [["Short one."], ["After it."], ["Next doc."]]
    assert stats.long_lines == 1 and stats.long_line_examples == [f"{p}:2 (5001 bytes)"]


def test_big_documents_are_cut_into_parts_with_one_id(tmp_path):
    p = tmp_path / "big.txt"
    p.write_text("\n".join(f"Sentence number {i}." for i in range(100)) + "\n\nSmall doc.\n")
    docs, stats = docs_of([p], "bert", max_document_bytes=500)
    ids = [d[0] for d in docs]
    assert ids.count(0) > 3 and ids[-1] == 1 and stats.split_documents == 1
    assert sum(len(d[1]) for d in docs if d[0] == 0) == 100


def test_chunks_hold_whole_documents_and_at_least_two(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("\n\n".join(f"Doc {i} sentence one.\nDoc {i} sentence two." for i in range(50)) + "\n")
    chunks = list(iter_chunks(iter_documents([p], "bert"), chunk_bytes=200))
    assert len(chunks) > 5 and all(len({d.doc_id for d in c}) >= 2 for c in chunks)
    assert [d.doc_id for c in chunks for d in c] == list(range(50))


def test_split_sentences_language_option():
    assert split_sentences("Hallo Welt. Wie geht es dir? Gut.", "de") == ["Hallo Welt.", "Wie geht es dir?", "Gut."]


def test_reads_the_shared_corpus_sample():
    sample = require_shared("corpus", "sample.txt")
    assert detect_format(sample) == "bert"
    docs, stats = docs_of([sample])
    assert stats.documents == 443 and sum(len(s) for _, s in docs) == 8933
