"""Evaluation metrics for every task family.

Classification: :func:`accuracy`, :func:`f1_binary`, :func:`f1_macro`, :func:`matthews_corrcoef`.
Regression: :func:`pearson`, :func:`spearman` (numpy only; ties get average ranks).
Tagging: :func:`entity_f1` (seqeval, conlleval-style BIO chunks), token :func:`accuracy`.
Extractive QA: the official SQuAD v1.1 / v2.0 scoring (:func:`normalize_answer`,
:func:`squad_exact`, :func:`squad_f1`, :func:`squad_scores`) and v2 null-threshold tuning
(:func:`best_null_threshold`).
"""

from __future__ import annotations

import collections
import re
import statistics
import string
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

# ----------------------------------------------------------------------------- classification


def median_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Median and sample standard deviation (0 for one value) of ``values``; ``(None, None)`` when empty."""
    if not values:
        return None, None
    return statistics.median(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def accuracy(preds: Sequence, labels: Sequence) -> float:
    """Fraction of positions where ``preds[i] == labels[i]``."""
    _same_length(preds, labels)
    if len(labels) == 0:
        return 0.0
    return float(sum(p == y for p, y in zip(preds, labels)) / len(labels))


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def f1_binary(preds: Sequence, labels: Sequence, positive: Hashable = 1) -> float:
    """F1 of the ``positive`` class (GLUE MRPC/QQP convention)."""
    _same_length(preds, labels)
    tp = sum(p == positive and y == positive for p, y in zip(preds, labels))
    fp = sum(p == positive and y != positive for p, y in zip(preds, labels))
    fn = sum(p != positive and y == positive for p, y in zip(preds, labels))
    return _prf(tp, fp, fn)[2]


def f1_macro(preds: Sequence, labels: Sequence) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``labels`` or ``preds``."""
    _same_length(preds, labels)
    classes = sorted(set(labels) | set(preds), key=str)
    if not classes:
        return 0.0
    return float(np.mean([f1_binary(preds, labels, positive=c) for c in classes]))


def matthews_corrcoef(preds: Sequence, labels: Sequence) -> float:
    """Multi-class Matthews correlation coefficient (Gorodkin's R_K; binary MCC for 2 classes)."""
    _same_length(preds, labels)
    classes = sorted(set(labels) | set(preds), key=str)
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    conf = np.zeros((k, k), dtype=np.float64)  # (true, pred)
    for p, y in zip(preds, labels):
        conf[index[y], index[p]] += 1
    t = conf.sum(axis=1)  # true counts per class
    p = conf.sum(axis=0)  # predicted counts per class
    c = np.trace(conf)
    s = conf.sum()
    num = c * s - t @ p
    den = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float(num / den) if den else 0.0


# ----------------------------------------------------------------------------- regression


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; 0.0 when either side is constant."""
    _same_length(x, y)
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den else 0.0


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given the mean of the ranks they span (as scipy's rankdata)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson of average ranks)."""
    _same_length(x, y)
    return pearson(_average_ranks(np.asarray(x, np.float64)), _average_ranks(np.asarray(y, np.float64)))


# ----------------------------------------------------------------------------- tagging


def entity_f1(pred_tags: Sequence[Sequence[str]], gold_tags: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level precision/recall/F1 of BIO tag sequences, scored by seqeval (conlleval rules)."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    _same_length(pred_tags, gold_tags)
    for i, (p, g) in enumerate(zip(pred_tags, gold_tags)):
        if len(p) != len(g):
            raise ValueError(f"sentence {i}: {len(p)} predicted tags for {len(g)} gold tags")
    gold = [list(s) for s in gold_tags]
    pred = [list(s) for s in pred_tags]
    return {
        "precision": float(precision_score(gold, pred, zero_division=0)),
        "recall": float(recall_score(gold, pred, zero_division=0)),
        "f1": float(f1_score(gold, pred, zero_division=0)),
    }


def is_bio_tagset(tags: Sequence[str]) -> bool:
    """True when every tag is ``O`` or a chunk tag ``B-X``/``I-X`` (BIO, IOB1) or ``E-X``/``S-X``
    (IOBES): then entity F1 applies (seqeval reads all three schemes), else accuracy."""
    return bool(tags) and all(t == "O" or re.fullmatch(r"[BIES]-.+", t) for t in tags)


# ----------------------------------------------------------------------------- SQuAD


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (official SQuAD script)."""
    s = s.lower()
    exclude = set(string.punctuation)
    s = "".join(ch for ch in s if ch not in exclude)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _answer_tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def squad_exact(prediction: str, gold: str) -> int:
    """1 if the normalised strings are equal, else 0."""
    return int(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 between normalised strings; an empty side scores 1 only if both are empty."""
    pred_toks = _answer_tokens(prediction)
    gold_toks = _answer_tokens(gold)
    if not pred_toks or not gold_toks:
        return float(pred_toks == gold_toks)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_toks)
    recall = same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def squad_raw_scores(
    predictions: Mapping[str, str], gold_answers: Mapping[str, Sequence[str]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Per-question max-over-gold EM and F1. A question with no gold answers (v2 impossible) has
    gold ``[""]``: only the empty prediction scores."""
    exact, f1 = {}, {}
    for qid, golds in gold_answers.items():
        golds = [g for g in golds if normalize_answer(g)] or [""]
        pred = predictions.get(qid, "")
        exact[qid] = float(max(squad_exact(pred, g) for g in golds))
        f1[qid] = float(max(squad_f1(pred, g) for g in golds))
    return exact, f1


def squad_scores(predictions: Mapping[str, str], gold_answers: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Official SQuAD EM / F1 in percent over all questions of ``gold_answers`` (v1.1 and v2.0);
    for v2 also ``HasAns_*`` / ``NoAns_*`` breakdowns."""
    exact, f1 = squad_raw_scores(predictions, gold_answers)
    out = _percent(exact, f1, list(gold_answers))
    has = [q for q, g in gold_answers.items() if any(normalize_answer(x) for x in g)]
    no = [q for q in gold_answers if q not in set(has)]
    if no:
        for prefix, qids in (("HasAns", has), ("NoAns", no)):
            if qids:
                sub = _percent(exact, f1, qids)
                out[f"{prefix}_exact_match"] = sub["exact_match"]
                out[f"{prefix}_f1"] = sub["f1"]
                out[f"{prefix}_total"] = len(qids)
    return out


def _percent(exact: Mapping[str, float], f1: Mapping[str, float], qids: Sequence[str]) -> dict[str, float]:
    n = len(qids)
    return {
        "exact_match": 100.0 * sum(exact[q] for q in qids) / n if n else 0.0,
        "f1": 100.0 * sum(f1[q] for q in qids) / n if n else 0.0,
        "total": n,
    }


def best_null_threshold(
    predictions: Mapping[str, str],
    null_scores: Mapping[str, float],
    gold_answers: Mapping[str, Sequence[str]],
    metric: str = "f1",
) -> tuple[float, float]:
    """Tune the SQuAD v2 no-answer threshold as the official script's ``find_best_thresh``.

    ``null_scores[qid]`` = null score minus best span score: a question is answered "" when it
    exceeds the threshold. Returns ``(best metric in percent, threshold)``; applying the
    threshold (:func:`apply_null_threshold`) reproduces the metric. Two departures from the
    official script, which tunes no-answer probabilities in [0, 1] and reports the best score
    without applying its threshold: "answer nothing" gets a threshold below every score (the
    official 0.0 would answer every question whose score difference is negative), and questions
    with equal scores move together (a threshold cannot split them).
    """
    exact, f1 = squad_raw_scores(predictions, gold_answers)
    raw = f1 if metric == "f1" else exact
    has_ans = {q: any(normalize_answer(g) for g in golds) for q, golds in gold_answers.items()}
    num_no_ans = sum(not v for v in has_ans.values())
    cur = best = float(num_no_ans)  # everything answered "" -> all no-answer questions right
    order = sorted((q for q in null_scores if q in raw), key=lambda q: null_scores[q])
    best_thresh = float(null_scores[order[0]]) - 1.0 if order else 0.0  # below all: answer nothing
    i = 0
    while i < len(order):
        thresh = null_scores[order[i]]
        while i < len(order) and null_scores[order[i]] == thresh:  # answered together
            qid = order[i]
            if has_ans[qid]:
                cur += raw[qid]
            elif predictions.get(qid, ""):
                cur -= 1.0
            i += 1
        if cur > best:
            best, best_thresh = cur, float(thresh)
    return 100.0 * best / len(raw) if raw else 0.0, best_thresh


def apply_null_threshold(
    predictions: Mapping[str, str], null_scores: Mapping[str, float], threshold: float
) -> dict[str, str]:
    """Replace a prediction by "" (no answer) where its null score exceeds ``threshold``."""
    return {q: ("" if null_scores.get(q, float("-inf")) > threshold else p) for q, p in predictions.items()}


def _same_length(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {len(a)} predictions for {len(b)} labels")
