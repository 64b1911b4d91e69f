"""Multiple choice (SWAG CSV: ``sent1, sent2, ending0..endingN, label``).

Each choice is encoded as ``[CLS] sent1 [SEP] sent2 + " " + ending_i [SEP]`` (as BERT's SWAG
setup); the model scores every choice with one shared linear layer over the pooled output and
a softmax over choices. Head: ``BertForMultipleChoice``; loss: cross-entropy over choices;
metric: accuracy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F

from bertkit import metrics
from bertkit.errors import BertkitError
from bertkit.tasks.base import Features, Task, build_pair
from bertkit.tasks.batching import batch_forward, run_model
from bertkit.tasks.readers import field_text, label_text, pick_column, read_table, require_rows


@dataclass
class ChoiceExample:
    context: str
    start: str
    endings: list[str]
    label: int | None
    line: int

    @property
    def second_segments(self) -> list[str]:
        """Each ending after the start: the second segment of its [CLS] context [SEP] ... [SEP] row."""
        return [(self.start + " " + end).strip() for end in self.endings]


class ChoiceTask(Task):
    name = "choice"
    head = "BertForMultipleChoice"
    main_metric = "accuracy"
    defaults = {"context_column": None, "start_column": None, "label_column": None}

    def read(self, path: str, labelled: bool = True) -> list[ChoiceExample]:
        s = self.settings
        columns, rows = read_table(path)
        require_rows(path, rows)
        ctx = pick_column(
            path, columns, s["context_column"], ("sent1", "context", "question"), "context", "--text-column"
        )
        if s["start_column"] is not None:
            start = pick_column(path, columns, s["start_column"], (), "ending start", "--text-pair-column")
        else:
            start = "sent2" if "sent2" in columns else None
        endings = sorted((c for c in columns if re.fullmatch(r"ending\d+", c)), key=lambda c: int(c[6:]))
        if len(endings) < 2:
            raise BertkitError(
                f"{path}: need at least two columns ending0, ending1, ... (columns: {', '.join(columns)})"
            )
        label_col = None
        if labelled or (s["label_column"] or "label") in columns:
            label_col = pick_column(path, columns, s["label_column"], ("label",), "label", "--label-column")
        out = []
        for row in rows:
            label = None
            if label_col is not None:
                raw = label_text(row.fields.get(label_col, ""))
                if not raw.isdigit() or int(raw) >= len(endings):
                    raise BertkitError(f"{path}:{row.line}: label {raw!r} is not an ending index 0..{len(endings) - 1}")
                label = int(raw)
            out.append(
                ChoiceExample(
                    field_text(path, row, ctx),
                    field_text(path, row, start) if start else "",
                    [field_text(path, row, c) for c in endings],
                    label,
                    row.line,
                )
            )
        n = {len(e.endings) for e in out}
        if len(n) > 1:
            raise BertkitError(f"{path}: rows have different numbers of endings {sorted(n)}")
        return out

    def num_outputs(self, labels):
        return 1

    def featurize(self, examples, tokenizer, label2id, training):
        max_len = self.settings["max_seq_length"]
        ctx_ids = tokenizer.tokenize_ids_batch([e.context for e in examples])
        second = [s for e in examples for s in e.second_segments]
        second_ids = tokenizer.tokenize_ids_batch(second)
        items, truncated, k = [], 0, 0
        for e, a in zip(examples, ctx_ids):
            ids_c, types_c, cut_any = [], [], False
            for _ in e.endings:
                ids, types, cut = build_pair(a, second_ids[k], max_len, tokenizer.cls_id, tokenizer.sep_id)
                k += 1
                cut_any |= cut
                ids_c.append(ids)
                types_c.append(types)
            truncated += cut_any
            item = {"input_ids": ids_c, "token_type_ids": types_c}  # (C, T_c) lists
            if e.label is not None:
                item["labels"] = e.label
            items.append(item)
        return Features(items, list(range(len(examples))), n_examples=len(examples), n_truncated=truncated)

    def loss(self, model, batch):
        logits = batch_forward(model, batch)  # (B, C)
        labels = batch["labels"].to(logits.device)
        loss = F.cross_entropy(logits.float(), labels)
        return loss, {"acc": (logits.argmax(-1) == labels).float().mean().item()}

    def predict(self, model, features, examples, id2label, batch_size, pad_id, progress=False, max_tokens=None):
        logits = run_model(model, features, batch_size, pad_id, progress=progress, max_tokens=max_tokens)  # (C,) each
        out = []
        for lg in logits:
            p = np.exp(lg - lg.max())
            p /= p.sum()
            out.append({"choice": int(lg.argmax()), "probabilities": [round(float(x), 6) for x in p]})
        return out

    def score(self, examples, predictions, tune=False):
        return {"accuracy": metrics.accuracy([p["choice"] for p in predictions], [e.label for e in examples])}

    def record(self, example, prediction):
        r = {"line": example.line, "context": example.context, **prediction}
        if example.label is not None:
            r["gold"] = example.label
        return r
