"""The files of ``bertkit embed``: input texts streamed from ``.txt`` / ``.jsonl`` / ``.tsv``
(``.gz`` too) or standard input (``-``: one text per line), and embeddings streamed into
``.npy`` or ``.jsonl``, written atomically."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from bertkit import outputs
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_open, iter_jsonl, iter_lines, iter_stdin_lines, open_binary
from bertkit.settings import TextFileOptions

INPUT_FORMATS = ("txt", "jsonl", "tsv")
TSV_TEXT_COLUMNS = ("text", "sentence")
STDIN = "-"  # an input path meaning standard input, read as .txt


def input_format(path: str | Path) -> str:
    """``txt`` / ``jsonl`` / ``tsv`` from the file name (``.gz`` allowed; ``-``, stdin: ``txt``)."""
    if str(path) == STDIN:
        return "txt"
    name = Path(str(path).removesuffix(".gz")).name.lower()
    for fmt, suffixes in (("txt", (".txt",)), ("jsonl", (".jsonl",)), ("tsv", (".tsv",))):
        if name.endswith(suffixes):
            return fmt
    raise BertkitError(
        f"{path}: unknown input format; name it .txt (one text per line), .jsonl (a text field) or .tsv "
        "(a column), or pipe it in with --input - (one text per line)"
    )


def iter_input_texts(
    paths: Sequence[str], column: str | None = TextFileOptions.column, text_field: str = TextFileOptions.text_field
) -> Iterator[str]:
    """The texts of input files, in order, streamed: ``.txt`` every line (an empty line is an
    empty text, so row i is line i+1), ``.jsonl`` the ``text_field`` of every record, ``.tsv``
    (header line) the ``column`` (a name, or a 0-based position; default ``text`` /
    ``sentence``). Bad input raises :class:`BertkitError` naming file and line."""

    for path in paths:
        fmt = input_format(path)
        if str(path) == STDIN:
            yield from iter_stdin_lines()
        elif fmt == "txt":
            for _, line in iter_lines(path):
                yield line
        elif fmt == "jsonl":
            for lineno, obj in iter_jsonl(path):
                value = obj.get(text_field)
                if not isinstance(value, str):
                    raise BertkitError(f"{path}:{lineno}: no text field {text_field!r} (a string); see --text-field")
                yield value
        else:
            lines = iter_lines(path)
            first = next(lines, None)
            if first is None:
                continue
            columns = first[1].split("\t")
            at = _tsv_column(path, columns, column)
            for lineno, line in lines:
                fields = line.split("\t")
                if len(fields) != len(columns):
                    raise BertkitError(
                        f"{path}:{lineno}: {len(fields)} tab-separated fields, the header has {len(columns)}"
                    )
                yield fields[at]


def _tsv_column(path: str, columns: list[str], column: str | None) -> int:
    if column is None:
        found = next((c for c in TSV_TEXT_COLUMNS if c in columns), None)
        if found is None:
            raise BertkitError(f"{path}: no text column ({' or '.join(TSV_TEXT_COLUMNS)}) in {columns}; pass --column")
        return columns.index(found)
    if column in columns:
        return columns.index(column)
    if column.isdigit() and int(column) < len(columns):
        return int(column)
    raise BertkitError(f"{path}: no column {column!r} (columns: {', '.join(columns)})")


def count_input_texts(paths: Sequence[str]) -> int | None:
    """How many texts :func:`iter_input_texts` will yield (a fast pass over the bytes, for a
    progress bar's total): lines of ``.txt``, non-blank lines of ``.jsonl``, ``.tsv`` lines
    after the header; None when an input is stdin (it can be read only once)."""

    if any(str(p) == STDIN for p in paths):
        return None
    total = 0
    for path in paths:
        fmt = input_format(path)
        n = last = 0
        with open_binary(path) as f:
            if fmt == "jsonl":
                n = sum(1 for raw in f if raw.strip())
            else:
                while block := f.read(1 << 20):
                    n += block.count(b"\n")
                    last = block[-1]
                n += last not in (0, 10)  # a last line without its newline
                n -= fmt == "tsv" and n > 0
        total += n
    return total


class EmbeddingWriter:
    """Rows of embeddings streamed into ``.npy`` (float32 (N, H), header written at the end) or
    ``.jsonl`` (``{"text", "embedding"}`` per line), atomically: the file appears under its name
    only when :meth:`close` succeeds. An existing file is refused unless ``overwrite``
    (:func:`bertkit.outputs.check_output_file`)."""

    NPY_HEADER = 128  # bytes reserved for the .npy header (magic + version + length + dict)

    def __init__(self, path: str | Path, dim: int, overwrite: bool = False) -> None:

        self.path = Path(path)
        self.format = self.path.suffix.lower().lstrip(".")
        if self.format not in ("npy", "jsonl"):
            raise BertkitError(f"{self.path}: output must end in .npy or .jsonl")
        outputs.check_output_file(self.path, overwrite=overwrite)
        self.dim = dim
        self.rows = 0
        self._ctx = atomic_open(self.path)
        self._f = self._ctx.__enter__()
        if self.format == "npy":
            self._f.write(b"\0" * self.NPY_HEADER)

    def write(self, vectors: np.ndarray, texts: Sequence[str]) -> None:
        if self.format == "npy":
            self._f.write(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        else:
            lines = (
                json.dumps({"text": t, "embedding": v}, ensure_ascii=False) for t, v in zip(texts, vectors.tolist())
            )
            self._f.write("".join(line + "\n" for line in lines).encode("utf-8"))
        self.rows += len(vectors)

    def close(self) -> None:
        if self.format == "npy":
            self._f.seek(0)
            self._f.write(npy_header(self.rows, self.dim, self.NPY_HEADER))
        self._ctx.__exit__(None, None, None)

    def __enter__(self) -> EmbeddingWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # drop the temporary file: the output never appears
            self._ctx.__exit__(exc_type, exc, tb)


def npy_header(rows: int, dim: int, size: int) -> bytes:
    """A ``.npy`` v1.0 header of exactly ``size`` bytes for a little-endian float32 (rows, dim) array."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}"
    body = text.ljust(size - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("ascii")
