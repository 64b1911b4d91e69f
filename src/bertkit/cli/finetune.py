"""``bertkit finetune``: fine-tune a checkpoint on a task; write the task model + metrics.json."""

from __future__ import annotations

import argparse
import json

from bertkit import settings
from bertkit.cli import summary
from bertkit.finetune import PAPER_BATCH_SIZES, PAPER_EPOCHS, PAPER_LRS, FinetuneConfig
from bertkit.settings import DEFAULT_MAX_SEQ_LENGTH, QA_MAX_SEQ_LENGTH, TaskName
from bertkit.tasks.qa import QATask

_D = FinetuneConfig(task="classification", train="", dev="")
TASK_NAMES = settings.choices(TaskName)


def add_column_options(p: argparse.ArgumentParser) -> None:
    """Column overrides shared by finetune / evaluate / predict."""
    g = p.add_argument_group("columns (default: detected from the file's header)")
    g.add_argument(
        "--text-column",
        default=None,
        help="text column (classification/regression; choice: the context column, default sent1)",
    )
    g.add_argument(
        "--text-pair-column",
        default=None,
        help="second text column of a pair (choice: the ending prefix column, default sent2)",
    )
    g.add_argument("--label-column", default=None, help="label / score column")
    g.add_argument(
        "--no-header",
        dest="header",
        action="store_const",
        const=False,
        default=None,
        help="TSV/CSV files without a header line (classification, pair, regression): columns "
        "are then numbered from 0 and default to the text(s) first, the label last; name "
        "others by number, e.g. GLUE CoLA: --no-header --text-column 3 --label-column 1",
    )


def add_trained_model_options(p: argparse.ArgumentParser) -> None:
    """The options evaluate and predict share: the task checkpoint, the data, batching, length,
    progress bars and the column overrides."""
    p.add_argument("--model", required=True, metavar="DIR", help="task checkpoint written by bertkit finetune")
    p.add_argument("--data", required=True, metavar="FILE")
    settings.add_flags(
        p,
        settings.InferenceOptions(batch_size=settings.TASK_BATCH_SIZE),
        only=("batch_size", "max_length"),
        names={"max_length": "--max-seq-length"},
        helps={"max_length": "tokens per example (default: as trained)"},
    )
    p.add_argument("--no-progress", dest="progress", action="store_false")
    add_column_options(p)


def columns_of(args: argparse.Namespace) -> dict:
    """The column overrides given on the command line, as ``{"text", "text_pair", "label",
    "header"}``."""
    return {
        "text": args.text_column,
        "text_pair": args.text_pair_column,
        "label": args.label_column,
        "header": args.header,
    }


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "finetune",
        help=summary("finetune"),
        description="Fine-tunes with the BERT paper's recipe (AdamW, 10% warmup then linear decay, "
        "dropout 0.1). --search runs the paper grid (lr 5e-5/3e-5/2e-5, batch 16/32, epochs 2/3/4) "
        "on dev; --seeds N runs each setting N times and reports median ± std. The best setting's "
        "best seed on dev is evaluated once on --test and saved in --out with metrics.json and "
        "predictions.",
    )
    settings.add_flags(
        p,
        _D,
        skip=("model_config", "tokenizer", "task_settings", "search_lrs", "search_batch_sizes", "search_epochs"),
        required=("task", "train", "dev", "init", "out"),
        helps={
            "max_seq_length": f"tokens per example (default {DEFAULT_MAX_SEQ_LENGTH}; qa {QA_MAX_SEQ_LENGTH})",
            "search": f"grid search lr {PAPER_LRS} x batch {PAPER_BATCH_SIZES} x epochs {PAPER_EPOCHS}",
        },
    )
    qa = p.add_argument_group("qa")
    for key in ("doc_stride", "max_query_length", "max_answer_length", "n_best"):
        qa.add_argument(settings.flag(key), type=int, default=None, help=f"(default {QATask.defaults[key]})")
    add_column_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit.finetune import finetune
    from bertkit.tasks.checkpoints import column_settings

    task_settings: dict = column_settings(args.task, **columns_of(args))
    task_settings.update(
        doc_stride=args.doc_stride,
        max_query_length=args.max_query_length,
        max_answer_length=args.max_answer_length,
        n_best=args.n_best,
    )  # qa only
    cfg = settings.from_args(
        args, FinetuneConfig, task_settings={k: v for k, v in task_settings.items() if v is not None}
    )
    result = finetune(cfg)
    print(json.dumps({k: result[k] for k in ("dev", "test", "selected") if k in result}, indent=2))
    print(f"wrote {args.out} (task checkpoint, metrics.json, predictions)")
    return 0
