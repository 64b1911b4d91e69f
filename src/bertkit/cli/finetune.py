"""``bertkit finetune``: fine-tune a checkpoint on a task; write the task model + metrics.json."""

from __future__ import annotations

import argparse
import json

from bertkit.cli import summary
from bertkit.finetune import PAPER_BATCH_SIZES, PAPER_EPOCHS, PAPER_LRS, FinetuneConfig

_D = FinetuneConfig(task="classification", train="", dev="")
TASK_NAMES = ("classification", "pair", "regression", "tagging", "qa", "choice")


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
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-seq-length", type=int, default=None, help="(default: as trained)")
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
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("--train", required=True, metavar="FILE")
    p.add_argument("--dev", required=True, metavar="FILE")
    p.add_argument("--test", default=None, metavar="FILE")
    p.add_argument(
        "--init",
        required=True,
        metavar="DIR",
        help="checkpoint: a bertkit pre-training run, a HF BERT directory, a Google TF checkpoint "
        "directory (bert_model.ckpt.*), or a cached Hugging Face Hub name",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--epochs", type=int, default=_D.epochs, help=f"(default {_D.epochs})")
    p.add_argument("--lr", type=float, default=_D.lr, help=f"peak learning rate (default {_D.lr:g})")
    p.add_argument("--batch-size", type=int, default=_D.batch_size, help=f"(default {_D.batch_size})")
    p.add_argument("--max-seq-length", type=int, default=None, help="(default 128; qa 384)")
    p.add_argument("--warmup-ratio", type=float, default=_D.warmup_ratio, help=f"(default {_D.warmup_ratio})")
    p.add_argument("--dropout", type=float, default=_D.dropout, help=f"(default {_D.dropout})")
    p.add_argument("--weight-decay", type=float, default=_D.weight_decay, help=f"(default {_D.weight_decay})")
    p.add_argument("--seeds", type=int, default=1, help="seeds per setting (default 1)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument(
        "--search",
        action="store_true",
        help=f"grid search lr {PAPER_LRS} x batch {PAPER_BATCH_SIZES} x epochs {PAPER_EPOCHS}",
    )
    p.add_argument("--max-train-examples", type=int, default=None, help="train on a seeded random subset")
    p.add_argument("--max-eval-examples", type=int, default=None, help="first N dev / test examples only")
    p.add_argument("--max-steps", type=int, default=None, help="cap optimizer steps per run")
    p.add_argument("--eval-batch-size", type=int, default=_D.eval_batch_size)
    p.add_argument(
        "--group-by-length",
        action="store_true",
        help="training batches of similar length: less padding, much faster where lengths "
        "vary (BoolQ ~3x); still shuffled, every example once per epoch",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    qa = p.add_argument_group("qa")
    qa.add_argument("--doc-stride", type=int, default=None, help="(default 128)")
    qa.add_argument("--max-query-length", type=int, default=None, help="(default 64)")
    qa.add_argument("--max-answer-length", type=int, default=None, help="(default 30)")
    qa.add_argument("--n-best", type=int, default=None, help="(default 20)")
    add_column_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit.finetune import column_settings, finetune

    settings: dict = column_settings(args.task, **columns_of(args))
    settings.update(
        doc_stride=args.doc_stride,
        max_query_length=args.max_query_length,
        max_answer_length=args.max_answer_length,
        n_best=args.n_best,
    )  # qa only
    cfg = FinetuneConfig(
        task=args.task,
        train=args.train,
        dev=args.dev,
        test=args.test,
        init=args.init,
        out=args.out,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        max_seq_length=args.max_seq_length,
        warmup_ratio=args.warmup_ratio,
        dropout=args.dropout,
        weight_decay=args.weight_decay,
        seeds=args.seeds,
        seed=args.seed,
        search=args.search,
        task_settings={k: v for k, v in settings.items() if v is not None},
        max_train_examples=args.max_train_examples,
        max_eval_examples=args.max_eval_examples,
        max_steps=args.max_steps,
        eval_batch_size=args.eval_batch_size,
        group_by_length=args.group_by_length,
        device=args.device,
        precision=args.precision,
        progress=args.progress,
    )
    result = finetune(cfg)
    print(json.dumps({k: result[k] for k in ("dev", "test", "selected") if k in result}, indent=2))
    print(f"wrote {args.out} (task checkpoint, metrics.json, predictions)")
    return 0
