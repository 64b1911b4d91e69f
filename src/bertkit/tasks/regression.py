"""Regression on a sentence or sentence pair (STS-B: score 0-5).

Head: ``BertForSequenceClassification`` with one output (``num_labels == 1``); loss: mean
squared error; metrics: Pearson and Spearman correlation (and MSE).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F

from bertkit import metrics
from bertkit.errors import BertkitError
from bertkit.tasks.base import Task
from bertkit.tasks.batching import batch_forward, run_model
from bertkit.tasks.classification import TextExample, featurize_texts, read_text_examples, text_record

SCORE_COLUMNS = ("score", "label", "similarity", "relatedness_score")


class RegressionTask(Task):
    """Real-valued target from one text or a pair (a pair when the file has pair columns).

    Whether the training file held pairs is saved (setting ``pair``), so an unlabelled file
    without a header is read the same way at predict time: ``a<TAB>b`` is a pair there, not a
    text and its score."""

    name = "regression"
    head = "BertForSequenceClassification"
    main_metric = "pearson"
    defaults = {"text_column": None, "text_pair_column": None, "label_column": None, "header": True, "pair": None}

    def read(self, path: str, labelled: bool = True) -> list[TextExample]:
        s = self.settings
        pair = True if s["text_pair_column"] else s["pair"]
        return read_text_examples(
            path,
            pair,
            s["text_column"],
            s["text_pair_column"],
            s["label_column"],
            SCORE_COLUMNS,
            labelled,
            as_float=True,
            header=s["header"],
        )

    def label_list(self, examples: Sequence[TextExample]) -> None:
        if len({e.label for e in examples}) < 2:
            raise BertkitError("the training file's scores are all equal; nothing to regress")
        self.settings["pair"] = any(e.text_pair is not None for e in examples)
        return None

    def num_outputs(self, labels):
        return 1

    def featurize(self, examples, tokenizer, label2id, training):
        label_of = (lambda e: float(e.label)) if training else None
        return featurize_texts(examples, tokenizer, self.settings["max_seq_length"], label_of)

    def loss(self, model, batch):
        pred = batch_forward(model, batch)[:, 0]  # (B,)
        loss = F.mse_loss(pred.float(), batch["labels"].to(pred.device))
        return loss, {}

    def predict(self, model, features, examples, id2label, batch_size, pad_id, progress=False, max_tokens=None):
        out = run_model(model, features, batch_size, pad_id, progress=progress, max_tokens=max_tokens)
        return [{"score": float(o[0])} for o in out]

    def score(self, examples, predictions, tune=False):
        gold = [e.label for e in examples]
        pred = [p["score"] for p in predictions]
        mse = sum((a - b) ** 2 for a, b in zip(pred, gold)) / len(gold)
        return {"pearson": metrics.pearson(pred, gold), "spearman": metrics.spearman(pred, gold), "mse": mse}

    def record(self, example, prediction):
        return text_record(example, prediction)
