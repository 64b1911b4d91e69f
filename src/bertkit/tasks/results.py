"""Task predictions in the shapes ``Predictor.predict`` returns (docs/INFERENCE.md): a Python
input (a text, a pair, ``{"question", "context"}``, ``{"context", "endings"}``) as the task's
example type, and a task's raw outputs as the per-input dicts users get (QA answers, tagging
words and transformers-"simple" grouped entities)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from bertkit.errors import BertkitError, quoted
from bertkit.tasks.choice import ChoiceExample
from bertkit.tasks.classification import TextExample
from bertkit.tasks.readers import SquadQuestion


def input_example(task: str, x: Any, line: int) -> Any:
    """One Python input as the task's example type (no gold label)."""
    if task in ("classification", "pair", "regression"):
        if isinstance(x, str):
            return TextExample(x, None, None, line)
        if isinstance(x, tuple | list) and len(x) == 2 and all(isinstance(t, str) for t in x):
            return TextExample(x[0], x[1], None, line)
        raise BertkitError(f"predict: input {line} must be a text or a (text, text_pair) pair, got {quoted(str(x))}")
    if task == "qa":
        if isinstance(x, dict) and isinstance(x.get("question"), str) and isinstance(x.get("context"), str):
            q, c = x["question"], x["context"]
        elif isinstance(x, tuple | list) and len(x) == 2 and all(isinstance(t, str) for t in x):
            q, c = x
        else:
            raise BertkitError(f"predict: input {line} must be (question, context) or {{'question', 'context'}}")
        return SquadQuestion(str(line), q, c, [], False)
    if task == "choice":
        if (
            isinstance(x, dict)
            and isinstance(x.get("context"), str)
            and isinstance(x.get("endings"), list | tuple)
            and isinstance(x.get("start", ""), str)
        ):
            ctx, start, endings = x["context"], x.get("start", ""), list(x["endings"])
        elif isinstance(x, tuple | list) and len(x) == 2 and isinstance(x[0], str) and isinstance(x[1], list | tuple):
            ctx, start, endings = x[0], "", list(x[1])
        else:
            raise BertkitError(f"predict: input {line} must be (context, endings) or {{'context', 'endings'}}")
        if len(endings) < 2 or not all(isinstance(e, str) for e in endings):
            raise BertkitError(f"predict: input {line} needs at least two endings (texts)")
        return ChoiceExample(ctx, start, endings, None, line)
    raise BertkitError(f"predict: task {task!r} has no Python input form")


def qa_result(task: Any, p: dict) -> dict:
    answer = task.answer(p)
    found = answer != "" and p["start"] is not None
    return {
        "answer": answer,
        "start": p["start"] if found else None,
        "end": p["end"] if found else None,
        "score": p["score"] if found else 0.0,
        "null_score_diff": p["null_score_diff"],
    }


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _tag_type(label: str) -> tuple[str, str]:
    """``(B|I, type)`` of a tag, as transformers' pipeline reads it (no prefix = I)."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def tagging_result(text: str, enc: Any, logits: np.ndarray, id2label: dict[int, str], unk_id: int) -> dict:
    """Per-word labels (first piece) and transformers-"simple" grouped entities of one text."""
    probs = _softmax(logits.astype(np.float64))  # (T, K)
    words: list[dict] = []
    tokens: list[dict] = []
    seen: set[int] = set()
    for t, (wid, special) in enumerate(zip(enc.word_ids, enc.special_tokens_mask)):
        if special:
            continue
        start, end = enc.offsets[t]
        k = int(probs[t].argmax())
        piece = text[start:end] if enc.input_ids[t] == unk_id else enc.tokens[t]  # as the pipeline
        tokens.append({"label": id2label[k], "score": float(probs[t, k]), "token": piece, "start": start, "end": end})
        if wid is not None and wid not in seen:
            seen.add(wid)
            words.append({"word": text[start:end], "label": id2label[k], "start": start, "end": end})
        elif wid is not None:
            words[-1]["end"] = end
            words[-1]["word"] = text[words[-1]["start"] : end]
    groups: list[list[dict]] = []
    for tk in tokens:
        bi, typ = _tag_type(tk["label"])
        if groups and bi != "B" and _tag_type(groups[-1][-1]["label"])[1] == typ:
            groups[-1].append(tk)
        else:
            groups.append([tk])
    entities = []
    for g in groups:
        typ = _tag_type(g[0]["label"])[1]
        if typ == "O":
            continue
        entities.append(
            {
                "entity_group": typ,
                "score": float(np.mean([tk["score"] for tk in g])),
                "word": _join_pieces([tk["token"] for tk in g]),
                "start": g[0]["start"],
                "end": g[-1]["end"],
            }
        )
    return {"words": words, "entities": entities}


def _join_pieces(tokens: list[str]) -> str:
    """WordPiece tokens as text (transformers' ``convert_tokens_to_string`` for BERT)."""
    return re.sub(r" ##", "", " ".join(tokens)).strip()
