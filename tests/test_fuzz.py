"""Fuzzing every file reader and the tokenizer with ``hypothesis``: random bytes, broken UTF-8,
wrong column counts, huge lines, empty files, fake gzip. A reader either returns its records or
raises :class:`BertkitError` whose message starts with the file's name (and line where there is
one); never another exception, and never a silent skip (every non-blank data line is accounted
for). ``FUZZ_EXAMPLES`` cases per reader in the default suite (``BERTKIT_FUZZ_EXAMPLES`` raises it
for a longer hunt)."""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bertkit.corpus import CorpusStats, iter_documents  # noqa: E402
from bertkit.errors import BertkitError  # noqa: E402
from bertkit.tasks import get_task  # noqa: E402
from bertkit.tasks.readers import read_conll, read_table  # noqa: E402
from bertkit.tokenization import Tokenizer  # noqa: E402
from bertkit.tokenization.tokenizer import read_vocab  # noqa: E402
from bertkit.tokenization.vocab_training import iter_texts  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("BERTKIT_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# Pieces that make structure (separators, quotes, brackets, field names, labels) and break it
# (invalid UTF-8, NUL, a BOM in the middle, lone continuation bytes, a huge line).
FRAGMENTS = [
    b"\t", b",", b'"', b"\n", b"\r\n", b"\r", b" ", b"{", b"}", b"[", b"]", b":", b"null", b"true", b"1.5",
    b"sentence", b"text", b"label", b"question", b"context", b"ending0", b"ending1", b'"text"', b'"label"',
    b'"data"', b'"paragraphs"', b'"qas"', b'"id"', b'"answers"', b'"answer_start"', b"0", b"1", b"2", b"-3",
    b"O", b"B-x", b"-DOCSTART-", b"the film", "caf\u00e9 \u4e2d\u6587".encode(), b"\xef\xbb\xbf",
    b"\xff", b"\xc3", b"\xe2\x82", b"\x80", b"\x00", b"\x1f", b"a" * 70_000,
]  # fmt: skip
CONTENT = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(b"".join),
    st.lists(
        st.lists(st.sampled_from([b"the film", b"0", b"1", b"B-x", b"O", b"", b"\xff", b'"']), max_size=4).map(
            b"\t".join
        ),
        max_size=8,
    ).map(lambda rows: b"sentence\tlabel\n" + b"\n".join(rows)),  # a header, then rows of any width
)
COMPRESS = st.sampled_from(["plain", "gzip", "fake-gzip", "truncated-gzip"])


def write(directory: Path, name: str, data: bytes, compress: str) -> Path:
    if compress == "plain":
        p = directory / name
        p.write_bytes(data)
        return p
    p = directory / (name + ".gz")
    if compress == "fake-gzip":
        p.write_bytes(data)
    else:
        packed = gzip.compress(data, mtime=0)
        p.write_bytes(packed if compress == "gzip" else packed[: max(1, len(packed) // 2)])
    return p


def only_bertkit_errors(fn, path: Path):
    """``fn()``'s result, or None after a BertkitError that names ``path`` first."""
    try:
        return fn()
    except BertkitError as e:
        msg = str(e)
        assert msg.startswith(str(path)) and "\n" not in msg, msg
        return None


def data_lines(data: bytes, errors: str = "strict") -> list[str]:
    """The non-blank lines of UTF-8 ``data`` as the readers split them."""
    text = data.decode("utf-8", errors).removeprefix("\ufeff")
    return [ln.rstrip("\r") for ln in text.split("\n") if ln.strip()]  # files split on "\n" only


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# ------------------------------------------------------------------------------ task readers


@FUZZ
@given(data=CONTENT, ext=st.sampled_from(["tsv", "csv", "jsonl", "json"]), compress=COMPRESS)
def test_table_reader(workdir, data, ext, compress):
    path = write(workdir, f"t.{ext}", data, compress)
    result = only_bertkit_errors(lambda: read_table(path), path)
    if result is not None and ext == "tsv" and compress in ("plain", "gzip"):
        columns, rows = result
        assert len(rows) == len(data_lines(data)) - 1  # every data line is a row (no silent skip)
        assert all(len(r.fields) == len(columns) for r in rows)


@FUZZ
@given(
    data=CONTENT,
    task=st.sampled_from(["classification", "pair", "regression", "choice"]),
    ext=st.sampled_from(["tsv", "csv", "jsonl"]),
    compress=COMPRESS,
)
def test_task_readers(workdir, data, task, ext, compress):
    path = write(workdir, f"{task}.{ext}", data, compress)
    examples = only_bertkit_errors(lambda: get_task(task).read(str(path)), path)
    if examples is not None:
        assert examples  # an empty split is an error, never zero examples


@FUZZ
@given(data=CONTENT, compress=COMPRESS, labelled=st.booleans())
def test_conll_reader(workdir, data, compress, labelled):
    path = write(workdir, "t.conll", data, compress)
    sentences = only_bertkit_errors(lambda: read_conll(path, require_tags=labelled), path)
    if sentences is not None and compress in ("plain", "gzip"):
        words = [ln for ln in data_lines(data) if not ln.startswith("-DOCSTART-")]
        assert sum(len(s.words) for s in sentences) == len(words)  # every token line is kept
        assert all(s.tags is None or len(s.tags) == len(s.words) for s in sentences)
    tagged = only_bertkit_errors(lambda: get_task("tagging").read(str(path), labelled=labelled), path)
    assert tagged is None or tagged


@FUZZ
@given(data=CONTENT, labelled=st.booleans())
def test_squad_reader(workdir, data, labelled):
    path = write(workdir, "squad.json", data, "plain")
    questions = only_bertkit_errors(lambda: get_task("qa").read(str(path), labelled=labelled), path)
    assert questions is None or questions


# ------------------------------------------------------------------------------ corpus readers


@FUZZ
@given(
    data=CONTENT,
    name=st.sampled_from(["c.txt", "c.jsonl"]),
    fmt=st.sampled_from(["auto", "bert", "text", "jsonl"]),
    compress=COMPRESS,
    max_line_bytes=st.sampled_from([64, 1 << 20]),
    errors=st.sampled_from(["strict", "replace"]),
)
def test_corpus_reader(workdir, data, name, fmt, compress, max_line_bytes, errors):
    path = write(workdir, name, data, compress)
    stats = CorpusStats()
    docs = only_bertkit_errors(
        lambda: list(iter_documents([path], fmt, max_line_bytes=max_line_bytes, errors=errors, stats=stats)), path
    )
    if docs is not None and compress in ("plain", "gzip") and fmt in ("bert", "text"):
        kept = sum(len(d.lines) for d in docs)
        # every non-blank line is a document line or counted as skipped (too long)
        assert kept <= len(data_lines(data, "replace")) <= kept + stats.long_lines
    texts = only_bertkit_errors(lambda: list(iter_texts([path], errors)), path)  # `bertkit vocab`'s reader
    assert texts is None or all(isinstance(t, str) and t.strip() for t in texts)


# ------------------------------------------------------------------------------ vocabularies


@FUZZ
@given(data=CONTENT)
def test_vocab_file_reader(workdir, data):
    d = workdir / "vocab_dir"
    d.mkdir(exist_ok=True)
    (d / "vocab.txt").write_bytes(data)
    only_bertkit_errors(lambda: read_vocab(d / "vocab.txt"), d / "vocab.txt")
    tok = only_bertkit_errors(lambda: Tokenizer.from_pretrained(d), d)
    if tok is not None:
        tok.encode("the film, caf\u00e9")


# ------------------------------------------------------------------------------ tokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "##s", "caf", "##e", ",", "."]


@FUZZ
@given(
    text=st.text(max_size=200),
    pair=st.none() | st.text(max_size=200),
    max_length=st.sampled_from([None, -1, 0, 1, 2, 3, 4, 5, 8, 12]),
    truncation=st.sampled_from([True, False, "longest_first", "only_first", "only_second"]),
    padding=st.sampled_from([False, True, "max_length"]),
)
def test_tokenizer(text, pair, max_length, truncation, padding):
    tok = Tokenizer(VOCAB)
    try:
        enc = tok.encode(text, pair, max_length=max_length, truncation=truncation, padding=padding)
    except BertkitError as e:
        assert "\n" not in str(e)
        return
    assert len(enc.input_ids) == len(enc.attention_mask) == len(enc.token_type_ids)
    if max_length is not None and truncation:
        assert len(enc.input_ids) <= max_length
    assert all(0 <= i < len(VOCAB) for i in enc.input_ids)
