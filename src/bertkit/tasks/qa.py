"""Extractive question answering: SQuAD v1.1 and v2.0 JSON.

Featurisation follows BERT's ``run_squad.py``: the question is cut to ``max_query_length``
(64) pieces; the context is split into windows of ``max_seq_length`` tokens whose starts are
``doc_stride`` (128) apart; ``[CLS] question [SEP] window [SEP]``. A training answer outside a
window (and a v2 impossible question) points at [CLS]. Prediction: for each window the
``n_best`` (20) start and end logits, spans up to ``max_answer_length`` (30) pieces, scored by
start + end logit, a token counted only in the window where it has the most context. The
answer text is the original context between the character offsets of its pieces.

SQuAD v2: the null score is the [CLS] start + end logit (minimum over windows); the question is
answered "" when null - best span > ``null_threshold``, tuned for F1 on dev as the official
``find_best_thresh`` and saved with the model. Metrics: official EM / F1 (percent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F

from bertkit import metrics
from bertkit.settings import QA_MAX_SEQ_LENGTH
from bertkit.tasks.base import Features, Task
from bertkit.tasks.batching import batch_forward, run_model
from bertkit.tasks.readers import SquadQuestion, read_squad


@dataclass
class _Window:
    start: int  # first context token of the window
    length: int


def _windows(n_tokens: int, max_tokens: int, stride: int) -> list[_Window]:
    """Overlapping windows covering ``n_tokens`` context tokens (at least one, maybe empty)."""
    out, start = [], 0
    while True:
        length = min(n_tokens - start, max_tokens)
        out.append(_Window(start, length))
        if start + length >= n_tokens:
            return out
        start += min(length, stride)


def _is_max_context(windows: list[_Window], cur: int, position: int) -> bool:
    """Is window ``cur`` the one where context token ``position`` has the most context on both
    sides (ties: the longer window), as ``run_squad._check_is_max_context``."""
    best_score, best = None, None
    for i, w in enumerate(windows):
        end = w.start + w.length - 1
        if position < w.start or position > end:
            continue
        score = min(position - w.start, end - position) + 0.01 * w.length
        if best_score is None or score > best_score:
            best_score, best = score, i
    return cur == best


def _char_to_token_span(offsets: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """First and last context token overlapping the character span ``[start, end)``."""
    first = next((i for i, (s, e) in enumerate(offsets) if e > start), None)
    last = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][0] < end), None)
    if first is None or last is None or last < first:
        return None
    return first, last


def _log_softmax_context(logits: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Log-softmax of a window's start (or end) logits over [CLS] (position 0) and its context
    tokens ``lo:hi``; the question and [SEP] positions get -inf."""
    allowed = np.full(logits.shape, -np.inf, dtype=np.float64)
    allowed[0] = logits[0]
    allowed[lo:hi] = logits[lo:hi]
    top = allowed.max()
    return allowed - (top + np.log(np.exp(allowed - top).sum()))


class QATask(Task):
    name = "qa"
    head = "BertForQuestionAnswering"
    main_metric = "f1"
    defaults = {
        "max_seq_length": QA_MAX_SEQ_LENGTH,
        "doc_stride": 128,
        "max_query_length": 64,
        "max_answer_length": 30,
        "n_best": 20,
        "version_2": None,  # from the training file; v2 enables no-answer predictions
        "null_threshold": 0.0,  # tuned on dev for v2
    }

    def read(self, path: str, labelled: bool = True) -> list[SquadQuestion]:
        questions, is_v2 = read_squad(path, require_answers=labelled)
        if self.settings["version_2"] is None:
            self.settings["version_2"] = is_v2
        return questions

    def num_outputs(self, labels):
        return 2

    # -- features -------------------------------------------------------------------------------
    def featurize(self, examples, tokenizer, label2id, training):
        s = self.settings
        q_ids = tokenizer.tokenize_ids_batch([q.question for q in examples])
        context_cache: dict[str, tuple[list[int], list[tuple[int, int]]]] = {}
        items, meta, owner, truncated = [], [], [], 0
        for ex_i, (q, qi) in enumerate(zip(examples, q_ids)):
            if len(qi) > s["max_query_length"]:
                qi = qi[: s["max_query_length"]]
                truncated += 1
            if q.context not in context_cache:
                context_cache[q.context] = self._context_tokens(tokenizer, q.context)
            c_ids, c_offsets = context_cache[q.context]
            max_tokens = s["max_seq_length"] - len(qi) - 3
            windows = _windows(len(c_ids), max_tokens, s["doc_stride"])
            answer = None
            if training and q.answers and not q.is_impossible:
                text, start = q.answers[0]
                answer = _char_to_token_span(c_offsets, start, start + len(text))
            for w_i, w in enumerate(windows):
                ctx_start = len(qi) + 2
                ids = (
                    [tokenizer.cls_id]
                    + qi
                    + [tokenizer.sep_id]
                    + c_ids[w.start : w.start + w.length]
                    + [tokenizer.sep_id]
                )
                types = [0] * ctx_start + [1] * (w.length + 1)
                item = {"input_ids": ids, "token_type_ids": types}
                if training:
                    sp = ep = 0
                    if answer is not None and w.start <= answer[0] and answer[1] < w.start + w.length:
                        sp, ep = ctx_start + answer[0] - w.start, ctx_start + answer[1] - w.start
                    item["start_positions"], item["end_positions"] = sp, ep
                items.append(item)
                owner.append(ex_i)
                meta.append(
                    {
                        "ctx_start": ctx_start,
                        "offsets": c_offsets[w.start : w.start + w.length],
                        "max_context": [_is_max_context(windows, w_i, w.start + j) for j in range(w.length)],
                    }
                )
        return Features(items, owner, meta=meta, n_examples=len(examples), n_truncated=truncated)

    @staticmethod
    def _context_tokens(tokenizer, context: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Context WordPiece ids and their character offsets, special tokens removed."""
        enc = tokenizer.encode(context)
        keep = [i for i, m in enumerate(enc.special_tokens_mask) if not m]
        return [enc.input_ids[i] for i in keep], [tuple(enc.offsets[i]) for i in keep]

    # -- training -------------------------------------------------------------------------------
    def loss(self, model, batch):
        out = batch_forward(model, batch)
        start, end = out.start_logits.float(), out.end_logits.float()  # (B, T) each
        sp = batch["start_positions"].to(start.device)
        ep = batch["end_positions"].to(start.device)
        loss = (F.cross_entropy(start, sp) + F.cross_entropy(end, ep)) / 2
        return loss, {}

    # -- prediction -----------------------------------------------------------------------------
    def predict(self, model, features, examples, id2label, batch_size, pad_id, progress=False, max_tokens=None):
        """Per question: best span text, its character ``start`` / ``end`` in the context, its
        ``score`` (start x end probability, softmax over the window's context tokens and [CLS], as
        transformers' question-answering pipeline) and ``null_score_diff`` (null - best span)."""
        logits = run_model(
            model, features, batch_size, pad_id, token_level=True, progress=progress, max_tokens=max_tokens
        )
        s = self.settings
        best: list[dict] = [
            {"text": "", "score": -np.inf, "null": np.inf, "start": None, "end": None, "prob": 0.0} for _ in examples
        ]
        for (start, end), m, ex_i in zip(logits, features.meta, features.example_index):
            b = best[ex_i]
            b["null"] = min(b["null"], float(start[0] + end[0]))
            n_ctx = len(m["offsets"])
            lo, hi = m["ctx_start"], m["ctx_start"] + n_ctx
            top_s = np.argsort(-start, kind="stable")[: s["n_best"]]
            top_e = np.argsort(-end, kind="stable")[: s["n_best"]]
            log_ps, log_pe = _log_softmax_context(start, lo, hi), _log_softmax_context(end, lo, hi)
            for i in top_s:
                if not (lo <= i < hi) or not m["max_context"][i - lo]:
                    continue
                for j in top_e:
                    if not (lo <= j < hi) or j < i or j - i + 1 > s["max_answer_length"]:
                        continue
                    score = float(start[i] + end[j])
                    if score > b["score"]:
                        b["score"] = score
                        b["start"] = m["offsets"][i - lo][0]
                        b["end"] = m["offsets"][j - lo][1]
                        b["text"] = examples[ex_i].context[b["start"] : b["end"]]
                        b["prob"] = float(np.exp(log_ps[i] + log_pe[j]))
        out = []
        for b in best:
            diff = b["null"] - b["score"] if np.isfinite(b["score"]) else 1e9  # no valid span
            out.append(
                {
                    "text": b["text"],
                    "null_score_diff": float(diff),
                    "start": b["start"],
                    "end": b["end"],
                    "score": b["prob"],
                }
            )
        return out

    def answer(self, prediction: dict) -> str:
        """The final answer: "" for v2 when the null score beats the span by the threshold."""
        if self.settings["version_2"] and prediction["null_score_diff"] > self.settings["null_threshold"]:
            return ""
        return prediction["text"]

    def score(self, examples, predictions, tune=False):
        gold = {q.qid: [a for a, _ in q.answers] for q in examples}
        if self.settings["version_2"] and tune:
            spans = {q.qid: p["text"] for q, p in zip(examples, predictions)}
            diffs = {q.qid: p["null_score_diff"] for q, p in zip(examples, predictions)}
            _, thresh = metrics.best_null_threshold(spans, diffs, gold, metric="f1")
            self.settings["null_threshold"] = float(thresh)
        res = metrics.squad_scores(self.official_predictions(examples, predictions), gold)
        if self.settings["version_2"]:
            res["null_threshold"] = self.settings["null_threshold"]
        return res

    official_format = "SQuAD predictions.json ({id: answer}, the official evaluate script's input)"

    def official_predictions(self, examples, predictions):
        return {q.qid: self.answer(p) for q, p in zip(examples, predictions)}

    def record(self, example, prediction):
        r = {
            "id": example.qid,
            "question": example.question,
            "prediction": self.answer(prediction),
            "best_span": prediction["text"],
            "null_score_diff": prediction["null_score_diff"],
        }
        if example.answers or example.is_impossible:
            r["gold"] = [a for a, _ in example.answers]
        return r
