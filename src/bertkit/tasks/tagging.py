"""Token classification (CoNLL ``token<TAB>tag``): NER with BIO tags, POS tagging, ...

Each word is split into WordPieces; only the first piece carries the word's label, the rest
(and [CLS]/[SEP]) get -100 and are ignored by the loss; the prediction for a word is the argmax
at its first piece. Head: ``BertForTokenClassification``. Metrics: entity-level precision /
recall / F1 (seqeval, conlleval rules) when the tag set is BIO, IOB1 or IOBES, token accuracy always.
Words cut off by ``max_seq_length`` are predicted ``O`` (or the first label) and counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F

from bertkit import metrics
from bertkit.errors import BertkitError
from bertkit.tasks.base import Features, Task
from bertkit.tasks.batching import batch_forward, run_model
from bertkit.tasks.readers import Sentence, read_conll


class TaggingTask(Task):
    name = "tagging"
    head = "BertForTokenClassification"
    defaults: dict = {}

    @property
    def main_metric(self) -> str:  # type: ignore[override]
        return "f1" if self.labels and metrics.is_bio_tagset(self.labels) else "accuracy"

    def read(self, path: str, labelled: bool = True) -> list[Sentence]:
        return read_conll(path, require_tags=labelled)

    def label_list(self, examples: Sequence[Sentence]) -> list[str]:
        tags = {t for s in examples for t in (s.tags or [])}
        if len(tags) < 2:
            raise BertkitError("the training file has fewer than two distinct tags")
        return sorted(tags)

    def check_labels(self, path, examples, label2id):
        for s in examples:
            for j, t in enumerate(s.tags or []):
                if t not in label2id:
                    raise BertkitError(
                        f"{path}:{s.line + j}: tag {t!r} does not occur in the training data "
                        f"(known: {', '.join(label2id)})"
                    )

    def num_outputs(self, labels):
        return len(labels or [])

    def featurize(self, examples, tokenizer, label2id, training):
        """``[CLS] pieces... [SEP]``; ``meta[i]`` = position of each word's first piece (-1: cut)."""
        max_pieces = self.settings["max_seq_length"] - 2
        flat = [w for s in examples for w in s.words]
        flat_ids = tokenizer.tokenize_ids_batch(flat)
        items, meta, truncated, k = [], [], 0, 0
        for s in examples:
            ids, labels, first = [tokenizer.cls_id], [-100], []
            cut = False
            for j, _ in enumerate(s.words):
                pieces = flat_ids[k] or [tokenizer.unk_id]  # a word the tokenizer drops -> [UNK]
                k += 1
                if cut or len(ids) - 1 + len(pieces) > max_pieces:
                    cut = True
                    first.append(-1)
                    continue
                first.append(len(ids))
                ids.extend(pieces)
                if s.tags is not None and label2id is not None:
                    labels.extend([label2id[s.tags[j]]] + [-100] * (len(pieces) - 1))
            ids.append(tokenizer.sep_id)
            labels.append(-100)
            truncated += cut
            item = {"input_ids": ids, "token_type_ids": [0] * len(ids)}
            if s.tags is not None and label2id is not None:
                item["labels"] = labels
            items.append(item)
            meta.append(first)
        return Features(items, list(range(len(examples))), meta=meta, n_examples=len(examples), n_truncated=truncated)

    def loss(self, model, batch):
        logits = batch_forward(model, batch)  # (B, T, K)
        labels = batch["labels"].to(logits.device)  # (B, T)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        keep = labels != -100
        acc = ((logits.argmax(-1) == labels) & keep).sum().item() / max(int(keep.sum()), 1)
        return loss, {"acc": acc}

    def _fallback_tag(self, id2label) -> str:
        return "O" if "O" in id2label.values() else id2label[0]

    def predict(self, model, features, examples, id2label, batch_size, pad_id, progress=False, max_tokens=None):
        logits = run_model(
            model, features, batch_size, pad_id, token_level=True, progress=progress, max_tokens=max_tokens
        )  # (T, K) each
        fallback = self._fallback_tag(id2label)
        out = []
        for lg, first in zip(logits, features.meta):
            out.append([id2label[int(lg[i].argmax())] if i >= 0 else fallback for i in first])
        return out

    def score(self, examples, predictions, tune=False):
        gold = [s.tags for s in examples]
        flat_gold = [t for s in gold for t in s]
        flat_pred = [t for s in predictions for t in s]
        res = {"accuracy": metrics.accuracy(flat_pred, flat_gold)}
        tagset = self.labels or sorted(set(flat_gold))
        if metrics.is_bio_tagset(tagset):
            res.update(metrics.entity_f1(predictions, gold))
        return res

    def record(self, example, prediction):
        r = {"line": example.line, "tokens": example.words, "prediction": prediction}
        if example.tags is not None:
            r["gold"] = example.tags
        return r
