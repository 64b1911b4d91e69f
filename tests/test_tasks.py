"""Featurisation and prediction decoding of each task family, with a hand-made vocabulary."""

from __future__ import annotations

import json

import pytest
import torch

from bertkit.heads import QAOutput
from bertkit.tasks import get_task
from bertkit.tasks.base import Features
from bertkit.tasks.batching import collate, run_model
from bertkit.tasks.qa import _is_max_context, _windows
from bertkit.tokenization import Tokenizer

WORDS = (
    "the cat sat on mat a good bad film is . , ? who where john lives in paris he eats flies runs sleeps man sits dog"
).split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s", "##x"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tok():
    return Tokenizer(VOCAB)


def ids(tok, text):
    return tok.convert_tokens_to_ids(tok.tokenize(text))


def write(p, text):
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_classification_pair_features_and_truncation(tok, tmp_path):
    task = get_task("pair", max_seq_length=8)
    f = write(
        tmp_path / "p.tsv",
        "sentence1\tsentence2\tlabel\nthe cat\tsat\t1\nthe cat sat on the mat\tthe good dog sleeps\t0\n",
    )
    ex = task.read(f)
    feats = task.featurize(ex, tok, {"0": 0, "1": 1}, training=True)
    a = feats.items[0]
    assert a["input_ids"] == [tok.cls_id] + ids(tok, "the cat") + [tok.sep_id] + ids(tok, "sat") + [tok.sep_id]
    assert a["token_type_ids"] == [0, 0, 0, 0, 1, 1] and a["labels"] == 1
    b = feats.items[1]  # 6 + 4 pieces cut longest-first (ties: the second) to 5 = 3 + 2
    assert len(b["input_ids"]) == 8 and b["token_type_ids"].count(1) == 3
    assert b["input_ids"][1:5] == ids(tok, "the cat sat") + [tok.sep_id]
    assert b["input_ids"][5:7] == ids(tok, "the good")
    assert feats.n_truncated == 1
    batch = collate(feats.items, tok.pad_id)
    assert batch["input_ids"].shape == (2, 8) and batch["attention_mask"][0].tolist() == [1] * 6 + [0, 0]
    assert batch["labels"].tolist() == [1, 0]


def test_tagging_labels_first_subtoken_only(tok, tmp_path):
    task = get_task("tagging", max_seq_length=8)
    f = write(tmp_path / "t.conll", "john\tB-per\ncats\tO\nsat\tO\n\nparis\tB-loc\n")
    ex = task.read(f)
    labels = task.label_list(ex)
    assert labels == ["B-loc", "B-per", "O"]
    l2i = {t: i for i, t in enumerate(labels)}
    feats = task.featurize(ex, tok, l2i, training=True)
    it = feats.items[0]
    # [CLS] john cat ##s sat [SEP]
    assert it["input_ids"] == [tok.cls_id] + ids(tok, "john cats sat") + [tok.sep_id]
    assert it["labels"] == [-100, l2i["B-per"], l2i["O"], -100, l2i["O"], -100]
    assert feats.meta[0] == [1, 2, 4]
    # too long: words that do not fit are cut, counted, and predicted "O"
    long_task = get_task("tagging", max_seq_length=5)
    feats = long_task.featurize(ex, tok, l2i, training=True)
    assert feats.meta[0] == [1, 2, -1] and feats.n_truncated == 1

    class Fixed(torch.nn.Module):  # predicts label id 1 (B-per) everywhere
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, ids, mask, types):
            out = torch.zeros(*ids.shape, 3)
            out[..., 1] = 1.0
            return out

    preds = long_task.predict(Fixed(), feats, ex, dict(enumerate(labels)), 4, tok.pad_id)
    assert preds == [["B-per", "B-per", "O"], ["B-per"]]
    long_task.labels = labels
    s = long_task.score(ex, preds)
    assert s["accuracy"] == pytest.approx(2 / 4)
    # gold entities per(john), loc(paris); predicted per(john), per(cats), per(paris): 1 right
    # -> P 1/3, R 1/2, F1 = 2 * (1/6) / (5/6) = 0.4
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(0.5)
    assert s["f1"] == pytest.approx(0.4)


def test_qa_windows_and_max_context():
    w = _windows(10, 4, 2)
    assert [(x.start, x.length) for x in w] == [(0, 4), (2, 4), (4, 4), (6, 4)]
    # token 3: window 0 has (3,0) context, window 1 (1,2) -> min 1 beats 0; window 2 (start 4) excludes it
    assert _is_max_context(w, 1, 3) and not _is_max_context(w, 0, 3)
    assert [(x.start, x.length) for x in _windows(0, 4, 2)] == [(0, 0)]


def squad_file(tmp_path, context, qas, version="v2.0"):
    obj = {"version": version, "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}
    return write(tmp_path / "squad.json", json.dumps(obj))


def test_qa_features_map_answers_into_windows(tok, tmp_path):
    ctx = "john lives in paris , the cat sat on the mat , a good dog sleeps"
    start = ctx.index("the mat")
    f = squad_file(
        tmp_path,
        ctx,
        [
            {"id": "a", "question": "where sat the cat ?", "answers": [{"text": "the mat", "answer_start": start}]},
            {"id": "b", "question": "who flies ?", "answers": [], "is_impossible": True},
        ],
    )
    task = get_task("qa", max_seq_length=16, doc_stride=4, max_query_length=4)
    ex = task.read(f)
    assert task.settings["version_2"] is True
    feats = task.featurize(ex, tok, None, training=True)
    # "where sat the cat ?" is cut to max_query_length 4 pieces (counted)
    assert feats.n_truncated == 1
    assert all(len(it["input_ids"]) <= 16 for it in feats.items)
    found = []
    for it, m, owner in zip(feats.items, feats.meta, feats.example_index):
        question = "where sat the cat" if owner == 0 else "who flies ?"
        assert it["input_ids"][: len(ids(tok, question)) + 2] == [tok.cls_id] + ids(tok, question) + [tok.sep_id]
        assert len(m["offsets"]) <= 16 - len(ids(tok, question)) - 3
        if owner == 0 and it["start_positions"]:
            s, e = it["start_positions"], it["end_positions"]
            c0 = m["offsets"][s - m["ctx_start"]][0]
            c1 = m["offsets"][e - m["ctx_start"]][1]
            found.append(ctx[c0:c1])
        if owner == 1:
            assert it["start_positions"] == it["end_positions"] == 0
    assert found and set(found) == {"the mat"}


class SpanModel(torch.nn.Module):
    """Start logit high on ``start_id``, end logit high on ``end_id``; [CLS] gets ``null``."""

    def __init__(self, start_id, end_id, null=0.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.start_id, self.end_id, self.null = start_id, end_id, null

    def forward(self, ids, mask, types):
        start = (ids == self.start_id).float() * 5.0
        end = (ids == self.end_id).float() * 5.0
        start = start.masked_fill(types == 0, -1.0)
        end = end.masked_fill(types == 0, -1.0)
        start[:, 0] = self.null
        end[:, 0] = self.null
        return QAOutput(start, end)


def test_qa_decoding_and_null_threshold(tok, tmp_path):
    ctx = "Paris , where John lives ; the cat sat on the mat ."
    f = squad_file(
        tmp_path,
        ctx,
        [
            {
                "id": "a",
                "question": "who sat ?",
                "answers": [{"text": "the cat", "answer_start": ctx.index("the cat")}],
            },
            {"id": "b", "question": "who flies ?", "answers": [], "is_impossible": True},
        ],
    )
    task = get_task("qa", max_seq_length=12, doc_stride=3, max_query_length=4)
    ex = task.read(f)
    feats = task.featurize(ex, tok, None, training=False)
    assert len(feats) > 2  # several windows per question
    model = SpanModel(tok.vocab["the"], tok.vocab["cat"])
    preds = task.predict(model, feats, ex, None, 4, tok.pad_id)
    # original casing and spacing come from the context via offsets
    assert preds[0]["text"] == "the cat" and preds[1]["text"] == "the cat"
    assert preds[0]["null_score_diff"] == pytest.approx(0.0 - 10.0)
    s = task.score(ex, preds)  # default threshold 0: both answered -> a right, b wrong
    assert s["exact_match"] == pytest.approx(50.0)
    # with a high null score the threshold tuned on dev answers "" only where that helps
    preds_hi = task.predict(SpanModel(tok.vocab["the"], tok.vocab["cat"], null=9.0), feats, ex, None, 4, tok.pad_id)
    assert preds_hi[0]["null_score_diff"] == pytest.approx(18.0 - 10.0)
    preds_hi[0]["null_score_diff"] = -2.0  # a: span clearly better
    preds_hi[1]["null_score_diff"] = 3.0  # b: null clearly better
    s = task.score(ex, preds_hi, tune=True)
    # official find_best_thresh: start 1/2 right (all ""), a answered (+1) at -2 -> best, b (-1)
    assert s["exact_match"] == pytest.approx(100.0) and s["null_threshold"] == pytest.approx(-2.0)
    assert task.record(ex[1], preds_hi[1])["prediction"] == ""
    assert task.record(ex[0], preds_hi[0])["prediction"] == "the cat"


def test_qa_max_answer_length_limits_spans(tok, tmp_path):
    ctx = "the cat sat on the mat ."
    f = squad_file(
        tmp_path,
        ctx,
        [{"id": "a", "question": "who ?", "answers": [{"text": "cat", "answer_start": 4}]}],
        version="v1.1",
    )
    task = get_task("qa", max_seq_length=32, max_answer_length=2)
    ex = task.read(f)
    feats = task.featurize(ex, tok, None, training=False)
    # best start "cat", best end "mat" is 5 pieces away -> not allowed; falls back within 2 pieces
    preds = task.predict(SpanModel(tok.vocab["cat"], tok.vocab["mat"]), feats, ex, None, 4, tok.pad_id)
    assert len(preds[0]["text"].split()) <= 2 and preds[0]["text"] != "cat sat on the mat"
    assert task.settings["version_2"] is False and "null_threshold" not in task.score(ex, preds)


def test_choice_features(tok, tmp_path):
    header = "video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n"
    f = write(tmp_path / "s.csv", header + "v,1,x,a man sits .,he,gold,eats .,flies .,runs .,sleeps on the mat .,3\n")
    task = get_task("choice")
    ex = task.read(f)
    feats = task.featurize(ex, tok, None, training=True)
    it = feats.items[0]
    assert len(it["input_ids"]) == 4 and it["labels"] == 3
    assert it["input_ids"][1] == [tok.cls_id] + ids(tok, "a man sits .") + [tok.sep_id] + ids(tok, "he flies .") + [
        tok.sep_id
    ]
    batch = collate(feats.items, tok.pad_id)
    assert batch["input_ids"].shape == (1, 4, len(it["input_ids"][3]))  # (B, C, T) padded to longest choice


def test_run_model_counts_every_choice_row_against_the_token_budget():
    """A multiple-choice item is C rows: max_tokens bounds the padded (B, C, T) batch, not (B, T)
    (a batch of 4-ending items was 4x over the budget)."""
    shapes = []

    class Scores(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))  # where run_model reads the device

        def forward(self, ids, mask, types):
            shapes.append(tuple(ids.shape))
            return (mask.sum(-1).float(),)  # (B, C)

    items = [{"input_ids": [[2] + [5] * 8 + [3]] * 4, "token_type_ids": [[0] * 10] * 4} for _ in range(6)]
    out = run_model(Scores(), Features(items, list(range(6))), batch_size=64, pad_id=0, max_tokens=100)
    assert all(b * c * t <= 100 for b, c, t in shapes) and sum(b for b, _, _ in shapes) == 6
    assert all(o.tolist() == [10.0] * 4 for o in out)


def test_unknown_task_is_an_error():
    from bertkit.errors import BertkitError

    with pytest.raises(BertkitError, match="unknown task 'ner'"):
        get_task("ner")


def test_pos_tags_score_accuracy_only(tok, tmp_path):
    task = get_task("tagging")
    ex = task.read(write(tmp_path / "pos.conll", "john\tNNP\nsat\tVBD\n\nthe\tDT\ncat\tNN\n"))
    task.labels = task.label_list(ex)
    assert task.main_metric == "accuracy"
    s = task.score(ex, [["NNP", "NN"], ["DT", "NN"]])
    assert s == {"accuracy": pytest.approx(3 / 4)}
    task.labels = ["B-x", "I-x", "O"]
    assert task.main_metric == "f1"
