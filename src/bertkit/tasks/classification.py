"""Sequence classification: single sentences (SST-2, CoLA, any table with a text and a label
column) and sentence pairs (MRPC, QQP, MNLI, QNLI, RTE TSVs; BoolQ JSONL question + passage).

Head: ``BertForSequenceClassification`` (pooled [CLS] -> linear); loss: cross-entropy;
metrics: accuracy, MCC, and F1 (binary: of the positive label; more classes: macro F1 as
``f1_macro``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.nn.functional as F

from bertkit import metrics
from bertkit.errors import BertkitError
from bertkit.tasks.base import Features, Task, build_pair
from bertkit.tasks.batching import batch_forward, run_model
from bertkit.tasks.readers import field_text, label_text, pick_column, read_table, require_rows, table_format

SINGLE_TEXT_COLUMNS = ("sentence", "text", "review", "content", "document")
# (first, second) column conventions: STS-B/MNLI/RTE, QQP, MRPC, BoolQ, QNLI, SNLI-style, generic.
PAIR_TEXT_COLUMNS = (
    ("sentence1", "sentence2"),
    ("question1", "question2"),
    ("#1 String", "#2 String"),
    ("question", "passage"),
    ("question", "sentence"),
    ("premise", "hypothesis"),
    ("text_a", "text_b"),
    ("text", "text_pair"),
)
LABEL_COLUMNS = ("label", "gold_label", "Quality", "is_duplicate", "labels", "class", "category")
POSITIVE_LABELS = ("1", "true", "yes", "positive", "entailment")


@dataclass
class TextExample:
    """One row: text (and second text for pairs), its gold label (None if unlabelled), line."""

    text: str
    text_pair: str | None
    label: Any
    line: int


def resolve_text_columns(path, columns, pair: bool | None, text_col, pair_col) -> tuple[str, str | None]:
    """Choose the text column(s). ``pair=None`` means "pair if the file looks like pairs"."""
    if text_col is not None or pair_col is not None:
        first = pick_column(path, columns, text_col, SINGLE_TEXT_COLUMNS, "text", "--text-column")
        if pair_col is None and pair:
            raise BertkitError(f"{path}: a pair task needs --text-pair-column along with --text-column")
        second = pick_column(path, columns, pair_col, (), "second text", "--text-pair-column") if pair_col else None
        return first, second
    if pair is not False:
        for a, b in PAIR_TEXT_COLUMNS:
            if a in columns and b in columns:
                return a, b
        if pair:
            raise BertkitError(
                f"{path}: no sentence-pair columns: expected one of "
                f"{', '.join(f'{a}+{b}' for a, b in PAIR_TEXT_COLUMNS)} (columns: {', '.join(columns)}); "
                f"name them with --text-column and --text-pair-column{no_header_hint(path)}"
            )
    return pick_column(path, columns, None, SINGLE_TEXT_COLUMNS, "text", "--text-column", no_header_hint(path)), None


def no_header_hint(path) -> str:
    """For a table whose first line did not name the columns: point at ``--no-header``."""
    return "" if table_format(path) == "jsonl" else " (or pass --no-header if the file has no header line)"


def positional_defaults(path, n: int, pair: bool | None, labelled: bool) -> tuple[str, str | None, str | None]:
    """(text, pair, label) columns of a file without a header line, read by position: the text
    (and pair) first, the label last -- ``text<TAB>label``, ``a<TAB>b<TAB>label``, or texts only."""
    layouts = [(1, False), (2, True)] if pair is None else [(2 if pair else 1, bool(pair))]
    for k, is_pair in layouts:
        if n == k + 1 or (n == k and not labelled):
            return "0", ("1" if is_pair else None), (str(k) if n == k + 1 else None)
    raise BertkitError(
        f"{path}: no header line and {n} columns; say which is which by position (0-based): "
        "--text-column N [--text-pair-column N] --label-column N"
    )


def read_text_examples(
    path: str,
    pair: bool | None,
    text_col: str | None,
    pair_col: str | None,
    label_col: str | None,
    label_candidates: Sequence[str],
    labelled: bool,
    as_float: bool = False,
    header: bool = True,
) -> list[TextExample]:
    """Read any TSV/CSV/JSONL of texts (and labels) into :class:`TextExample` rows. Without a
    ``header`` line, columns are named by 0-based position and default to text(s) then label."""
    columns, rows = read_table(path, header=header)
    require_rows(path, rows)
    if not header and table_format(path) != "jsonl" and text_col is None and pair_col is None:
        text_col, pair_col, default_label = positional_defaults(path, len(columns), pair, labelled)
        label_col = label_col or default_label
        label_candidates = ()
    first, second = resolve_text_columns(path, columns, pair, text_col, pair_col)
    label_name = None
    if labelled:
        label_name = pick_column(path, columns, label_col, label_candidates, "label", "--label-column")
    elif label_col in columns or (label_col is None and any(c in columns for c in label_candidates)):
        label_name = label_col or next(c for c in label_candidates if c in columns)
    out = []
    for row in rows:
        text = field_text(path, row, first)
        text_pair = field_text(path, row, second) if second else None
        label = None
        raw = label_text(row.fields[label_name]) if label_name is not None and label_name in row.fields else ""
        if raw or (labelled and label_name in row.fields):
            if as_float:
                try:
                    label = float(raw)
                except ValueError:
                    raise BertkitError(f"{path}:{row.line}: score {raw!r} is not a number") from None
            else:
                if not raw:
                    raise BertkitError(f"{path}:{row.line}: empty label in column '{label_name}'")
                label = raw
        elif labelled:  # a JSONL row without the key
            raise BertkitError(f"{path}:{row.line}: missing field '{label_name}'")
        out.append(TextExample(text, text_pair, label, row.line))
    return out


def featurize_texts(examples: Sequence[TextExample], tokenizer: Any, max_len: int, label_of=None) -> Features:
    """``[CLS] text [SEP] (pair [SEP])`` per example, longest-first truncation, counted.

    ``label_of(example)`` gives the training target (omitted: features without labels)."""
    a_ids = tokenizer.tokenize_ids_batch([e.text for e in examples])
    pairs = [e.text_pair for e in examples]
    b_ids = (
        tokenizer.tokenize_ids_batch([p for p in pairs if p is not None]) if any(p is not None for p in pairs) else []
    )
    b_iter = iter(b_ids)
    items, truncated = [], 0
    for e, a in zip(examples, a_ids):
        b = next(b_iter) if e.text_pair is not None else None
        ids, types, cut = build_pair(a, b, max_len, tokenizer.cls_id, tokenizer.sep_id)
        truncated += cut
        item = {"input_ids": ids, "token_type_ids": types}
        if label_of is not None and e.label is not None:
            item["labels"] = label_of(e)
        items.append(item)
    return Features(items, list(range(len(examples))), n_examples=len(examples), n_truncated=truncated)


def sort_labels(labels: set[str]) -> list[str]:
    """Numeric labels in numeric order (so "0","1" keep ids 0,1), else alphabetical."""
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def text_record(example: TextExample, prediction: dict) -> dict:
    """One predictions-file row for a text (or text pair) example: source line, text, prediction, gold."""
    r = {"line": example.line, "text": example.text}
    if example.text_pair is not None:
        r["text_pair"] = example.text_pair
    r.update(prediction)
    if example.label is not None:
        r["gold"] = example.label
    return r


class ClassificationTask(Task):
    """Single-sentence classification (a pair is used when ``--text-pair-column`` is given)."""

    name = "classification"
    head = "BertForSequenceClassification"
    main_metric = "accuracy"
    pair: bool | None = False
    defaults = {"text_column": None, "text_pair_column": None, "label_column": None, "header": True}

    def read(self, path: str, labelled: bool = True) -> list[TextExample]:
        s = self.settings
        pair = True if s["text_pair_column"] else self.pair
        return read_text_examples(
            path,
            pair,
            s["text_column"],
            s["text_pair_column"],
            s["label_column"],
            LABEL_COLUMNS,
            labelled,
            header=s["header"],
        )

    def label_list(self, examples: Sequence[TextExample]) -> list[str]:
        labels = sort_labels({e.label for e in examples})
        if len(labels) < 2:
            raise BertkitError(f"the training file has only one label ({labels[0]!r}); need at least two")
        return labels

    def check_labels(self, path: str, examples: Sequence[TextExample], label2id: dict[str, int]) -> None:
        for e in examples:
            if e.label is not None and e.label not in label2id:
                raise BertkitError(
                    f"{path}:{e.line}: label {e.label!r} does not occur in the training data "
                    f"(known: {', '.join(label2id)})"
                )

    def num_outputs(self, labels: list[str] | None) -> int:
        return len(labels or [])

    def featurize(self, examples, tokenizer, label2id, training):
        label_of = (lambda e: label2id[e.label]) if label2id else None
        return featurize_texts(examples, tokenizer, self.settings["max_seq_length"], label_of)

    def loss(self, model, batch):
        logits = batch_forward(model, batch)  # (B, K)
        labels = batch["labels"].to(logits.device)
        loss = F.cross_entropy(logits.float(), labels)
        acc = (logits.argmax(-1) == labels).float().mean().item()
        return loss, {"acc": acc}

    def predict(self, model, features, examples, id2label, batch_size, pad_id, progress=False, max_tokens=None):
        logits = run_model(model, features, batch_size, pad_id, progress=progress, max_tokens=max_tokens)
        out = []
        for lg in logits:
            p = np.exp(lg - lg.max())
            p /= p.sum()
            k = int(lg.argmax())
            probabilities = {id2label[j]: float(x) for j, x in enumerate(p)}
            out.append({"label": id2label[k], "probability": float(p[k]), "probabilities": probabilities})
        return out

    def score(self, examples, predictions, tune=False):
        gold = [e.label for e in examples]
        pred = [p["label"] for p in predictions]
        res = {"accuracy": metrics.accuracy(pred, gold), "mcc": metrics.matthews_corrcoef(pred, gold)}
        classes = set(self.labels or gold)
        if len(classes) <= 2:
            positive = next((c for c in POSITIVE_LABELS if c in classes), sort_labels(classes)[-1])
            res["f1"] = metrics.f1_binary(pred, gold, positive=positive)
        else:
            res["f1_macro"] = metrics.f1_macro(pred, gold)
        return res

    def record(self, example, prediction):
        return text_record(example, prediction)


class PairClassificationTask(ClassificationTask):
    """Sentence-pair classification: MRPC/QQP/MNLI/QNLI/RTE column conventions, BoolQ JSONL."""

    name = "pair"
    pair = True
