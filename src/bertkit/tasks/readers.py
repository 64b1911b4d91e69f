"""Reading task files into rows with precise errors: TSV / CSV / JSONL tables, CoNLL, SQuAD JSON.

Every row remembers the line it came from so later checks (unseen labels, bad answers) can
name ``FILE:LINE``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bertkit.errors import BertkitError
from bertkit.fileio import iter_jsonl, iter_lines, read_json


@dataclass
class Row:
    """One record of a table: its fields by column name and its 1-based line in the file."""

    fields: dict[str, object]
    line: int


def table_format(path: str | os.PathLike) -> str:
    """``tsv``, ``csv`` or ``jsonl`` from the file name (``.gz`` ignored)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for ext, fmt in ((".tsv", "tsv"), (".txt", "tsv"), (".csv", "csv"), (".jsonl", "jsonl"), (".json", "jsonl")):
        if name.endswith(ext):
            return fmt
    raise BertkitError(f"{path}: cannot tell the table format from the name; use .tsv, .csv or .jsonl")


def read_table(path: str | os.PathLike, header: bool = True) -> tuple[list[str], list[Row]]:
    """Read a TSV (GLUE style: tab-separated, no quoting), CSV (RFC 4180) or JSONL file (a
    ``.json`` file may also hold one array of objects).

    TSV and CSV files start with a header line, unless ``header`` is false: then the columns are
    named by their 0-based position (``"0"``, ``"1"``, ...) and the first line is data (GLUE's
    CoLA files). Returns ``(columns, rows)``; a row with a different number of fields than the
    first line is an error naming the line.
    """
    fmt = table_format(path)
    if fmt == "jsonl":
        return _read_jsonl(path)
    lines = iter_lines(path)
    if fmt == "tsv":
        return _read_tsv(path, lines, header)
    return _read_csv(path, lines, header)


def table_format_is_json_array(path) -> bool:
    """A ``.json`` table whose first non-blank character is ``[`` (one array of objects, as
    pandas' ``to_json(orient="records")`` writes) rather than JSON lines."""
    if not Path(str(path).removesuffix(".gz")).name.lower().endswith(".json"):
        return False
    for _, text in iter_lines(path):
        if text.strip():
            return text.lstrip().startswith("[")
    return False


def positional_columns(n: int) -> list[str]:
    """Column names of a file without a header line: ``"0" .. "n-1"``."""
    return [str(i) for i in range(n)]


def _read_tsv(path, lines, has_header: bool = True) -> tuple[list[str], list[Row]]:
    header: list[str] | None = None
    rows: list[Row] = []
    for lineno, text in lines:
        if header is None:
            if not text.strip():
                continue
            header = text.split("\t")
            if has_header:
                continue
            header = positional_columns(len(header))
        if not text.strip():
            continue
        parts = text.split("\t")
        if len(parts) != len(header):
            raise BertkitError(
                f"{path}:{lineno}: expected {len(header)} tab-separated fields "
                f"({', '.join(header)}), found {len(parts)}"
            )
        rows.append(Row(dict(zip(header, parts)), lineno))
    if header is None:
        raise BertkitError(f"{path}: empty file (expected a header line and examples)")
    return header, rows


def _read_csv(path, lines, has_header: bool = True) -> tuple[list[str], list[Row]]:
    numbered = list(lines)
    reader = csv.reader(t + "\n" for _, t in numbered)
    header: list[str] | None = None
    rows: list[Row] = []
    try:
        for parts in reader:
            lineno = numbered[reader.line_num - 1][0] if reader.line_num else 0
            if not parts or all(not p.strip() for p in parts):
                continue
            if header is None:
                header = parts if has_header else positional_columns(len(parts))
                if has_header:
                    continue
            if len(parts) != len(header):
                raise BertkitError(
                    f"{path}:{lineno}: expected {len(header)} comma-separated fields "
                    f"({', '.join(header)}), found {len(parts)}"
                )
            rows.append(Row(dict(zip(header, parts)), lineno))
    except csv.Error as e:
        raise BertkitError(f"{path}:{reader.line_num}: malformed CSV: {e}") from None
    if header is None:
        raise BertkitError(f"{path}: empty file (expected a header line and examples)")
    return header, rows


def _read_json_array(path, text: str) -> tuple[list[str], list[Row]]:
    """A ``.json`` file holding one array of objects; each row keeps the line its object starts on."""
    decoder = json.JSONDecoder()
    rows: list[Row] = []
    columns: dict[str, None] = {}
    pos, line = text.index("[") + 1, 1 + text.count("\n", 0, text.index("["))

    def skip(i: int) -> int:
        nonlocal line
        j = i
        while j < len(text) and text[j] in " \t\r\n":
            j += 1
        line += text.count("\n", i, j)
        return j

    try:
        pos = skip(pos)
        while pos < len(text) and text[pos] != "]":
            obj, end = decoder.raw_decode(text, pos)
            if not isinstance(obj, dict):
                raise BertkitError(f"{path}:{line}: expected a JSON object, found {type(obj).__name__}")
            columns.update(dict.fromkeys(obj))
            rows.append(Row(obj, line))
            line += text.count("\n", pos, end)
            pos = skip(end)
            if pos < len(text) and text[pos] == ",":
                pos = skip(pos + 1)
            elif pos < len(text) and text[pos] != "]":
                raise BertkitError(f"{path}:{line}: invalid JSON: expected ',' or ']' between objects")
    except json.JSONDecodeError as e:
        raise BertkitError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    if pos >= len(text):
        raise BertkitError(f"{path}:{line}: invalid JSON: the array is not closed with ']'")
    return list(columns), rows


def _read_jsonl(path) -> tuple[list[str], list[Row]]:
    if table_format_is_json_array(path):
        return _read_json_array(path, "\n".join(t for _, t in iter_lines(path)))
    rows: list[Row] = []
    columns: dict[str, None] = {}
    for lineno, obj in iter_jsonl(path):
        columns.update(dict.fromkeys(obj))
        rows.append(Row(obj, lineno))
    return list(columns), rows


def pick_column(
    path,
    columns: Sequence[str],
    wanted: str | None,
    candidates: Sequence[str],
    what: str,
    option: str,
    hint: str = "",
) -> str:
    """The column named ``wanted`` (user override), else the first of ``candidates`` present;
    ``hint`` ends the error message when none is."""
    if wanted is not None:
        if wanted not in columns:
            raise BertkitError(f"{path}: missing {what} column '{wanted}' (columns: {', '.join(columns) or 'none'})")
        return wanted
    for c in candidates:
        if c in columns:
            return c
    raise BertkitError(
        f"{path}: no {what} column: expected one of {', '.join(repr(c) for c in candidates)} "
        f"(columns: {', '.join(columns) or 'none'}); name it with {option}{hint}"
    )


def field_text(path, row: Row, column: str) -> str:
    """The string value of ``column`` in ``row``; a missing JSONL key or non-string is an error."""
    if column not in row.fields:
        raise BertkitError(f"{path}:{row.line}: missing field '{column}'")
    v = row.fields[column]
    if v is None:
        raise BertkitError(f"{path}:{row.line}: field '{column}' is null")
    if isinstance(v, (dict, list)):
        raise BertkitError(f"{path}:{row.line}: field '{column}' must be text, found {type(v).__name__}")
    return str(v)


def label_text(value: object) -> str:
    """Canonical label string: JSON ``true``/``false`` -> ``"true"``/``"false"``, 1.0 -> ``"1"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def require_rows(path, rows: Sequence) -> None:
    """An empty split is an error, not a silent zero-example run."""
    if not rows:
        raise BertkitError(f"{path}: no examples (empty split)")


# ----------------------------------------------------------------------------- CoNLL


@dataclass
class Sentence:
    """One CoNLL sentence: its words, tags (``None`` for unlabelled data) and first line."""

    words: list[str]
    tags: list[str] | None
    line: int


def read_conll(path: str | os.PathLike, require_tags: bool = True) -> list[Sentence]:
    """Read CoNLL: one ``token<TAB>tag`` per line (whitespace-separated if the line has no tab),
    a blank line between sentences, ``-DOCSTART-`` lines skipped.

    Files with more columns (CoNLL-2003: token POS chunk NER) use the first field as the token
    and the last as the tag; every line must have the same number of fields as the first one.
    Without ``require_tags`` a one-field file (tokens only) is accepted for prediction.
    """
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    start = 0
    n_fields: int | None = None

    def flush() -> None:
        if words:
            sentences.append(Sentence(list(words), list(tags) if n_fields and n_fields >= 2 else None, start))
        words.clear()
        tags.clear()

    for lineno, text in iter_lines(path):
        if not text.strip():
            flush()
            continue
        if text.startswith("-DOCSTART-"):
            flush()
            continue
        parts = text.split("\t") if "\t" in text else text.split()
        if n_fields is None:
            n_fields = len(parts)
            if n_fields < 2 and require_tags:
                raise BertkitError(f"{path}:{lineno}: expected 'token<TAB>tag', found {n_fields} field")
        if len(parts) != n_fields:
            raise BertkitError(
                f"{path}:{lineno}: expected {n_fields} fields ('token<TAB>tag'), found {len(parts)}: {text!r}"
            )
        if not words:
            start = lineno
        words.append(parts[0])
        if n_fields >= 2:
            tag = parts[-1].strip()
            if not tag:
                raise BertkitError(f"{path}:{lineno}: empty tag")
            tags.append(tag)
    flush()
    require_rows(path, sentences)
    return sentences


# ----------------------------------------------------------------------------- SQuAD


@dataclass
class SquadQuestion:
    """One SQuAD question with its context and gold answers (text, char start)."""

    qid: str
    question: str
    context: str
    answers: list[tuple[str, int]]
    is_impossible: bool


def _line_of(raw: str, needle: str) -> int:
    at = raw.find(needle)
    return raw.count("\n", 0, at) + 1 if at >= 0 else 0


def read_squad(path: str | os.PathLike, require_answers: bool = True) -> tuple[list[SquadQuestion], bool]:
    """Read SQuAD v1.1 / v2.0 JSON. Returns ``(questions, is_v2)``.

    Every answer's ``answer_start`` must point at its text in the context, otherwise the error
    names the file, the line of the question id and both strings.
    """
    obj = read_json(path)
    data = obj.get("data")
    if not isinstance(data, list):
        raise BertkitError(f"{path}: not SQuAD JSON: expected a top-level 'data' list")
    is_v2 = str(obj.get("version", "")).startswith("v2")
    out: list[SquadQuestion] = []
    raw: str | None = None

    def where(qid: str) -> str:
        nonlocal raw
        if raw is None:
            raw = Path(path).read_text(encoding="utf-8")
        line = _line_of(raw, json.dumps(qid))
        return f"{path}:{line}" if line else str(path)

    for article in data:
        for para in article.get("paragraphs", []):
            context = para.get("context")
            if not isinstance(context, str):
                raise BertkitError(f"{path}: a paragraph has no 'context' string")
            for qa in para.get("qas", []):
                qid = str(qa.get("id", ""))
                if not qid or not isinstance(qa.get("question"), str):
                    raise BertkitError(f"{path}: a question lacks 'id' or 'question'")
                impossible = bool(qa.get("is_impossible", False))
                is_v2 = is_v2 or impossible
                answers = []
                for a in qa.get("answers", []) or []:
                    text, start = a.get("text"), a.get("answer_start")
                    if not isinstance(text, str) or not isinstance(start, int):
                        raise BertkitError(
                            f"{where(qid)}: question {qid}: answer needs 'text' and integer 'answer_start'"
                        )
                    found = context[start : start + len(text)]
                    if found != text:
                        raise BertkitError(
                            f"{where(qid)}: question {qid}: answer_start {start} does not match the "
                            f"context: answer {text!r}, context there {found!r}"
                        )
                    answers.append((text, start))
                if require_answers and not impossible and not answers:
                    raise BertkitError(f"{where(qid)}: question {qid} has no answers and is not marked is_impossible")
                out.append(SquadQuestion(qid, qa["question"], context, answers, impossible))
    require_rows(path, out)
    return out, is_v2
