"""Task families for fine-tuning, one small module each, behind one registry.

``get_task(name, **settings)`` returns a :class:`~bertkit.tasks.base.Task`:

==================  =================================================  ==========================
name                files                                              metrics
==================  =================================================  ==========================
classification      TSV/CSV/JSONL text + label (SST-2, CoLA, ...)      accuracy, f1 / f1_macro, mcc
pair                pair TSVs (MRPC/QQP/MNLI/QNLI/RTE), BoolQ JSONL    accuracy, f1 / f1_macro, mcc
regression          text or pair + score (STS-B)                       pearson, spearman, mse
tagging             CoNLL token<TAB>tag (NER BIO, POS)                 f1 (entity, BIO), accuracy
qa                  SQuAD v1.1 / v2.0 JSON                             exact_match, f1
choice              SWAG CSV                                           accuracy
==================  =================================================  ==========================
"""

from __future__ import annotations

from bertkit.errors import BertkitError
from bertkit.tasks.base import Features, Task
from bertkit.tasks.choice import ChoiceTask
from bertkit.tasks.classification import ClassificationTask, PairClassificationTask
from bertkit.tasks.qa import QATask
from bertkit.tasks.regression import RegressionTask
from bertkit.tasks.tagging import TaggingTask

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (ClassificationTask, PairClassificationTask, RegressionTask, TaggingTask, QATask, ChoiceTask)
}


def get_task(name: str, **settings) -> Task:
    """The task family ``name`` configured with ``settings`` (unknown names are an error)."""
    if name not in TASKS:
        raise BertkitError(f"unknown task {name!r} (choose from {', '.join(TASKS)})")
    cls = TASKS[name]
    allowed = set(cls.defaults) | {"max_seq_length"}
    extra = sorted(k for k, v in settings.items() if k not in allowed and v is not None)
    if extra:
        raise BertkitError(
            f"task {name}: setting(s) {', '.join(extra)} do not apply (it takes {', '.join(sorted(allowed))})"
        )
    return cls(**{k: v for k, v in settings.items() if k in allowed})


__all__ = ["TASKS", "get_task", "Task", "Features"]
