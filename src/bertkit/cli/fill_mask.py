"""``bertkit fill-mask``: the top tokens for every [MASK] of each text (JSON lines on stdout)."""

from __future__ import annotations

import argparse
import json
import sys

from bertkit import settings
from bertkit.cli import summary
from bertkit.cli.embed import add_inference_options, load_model
from bertkit.fileio import iter_stdin_lines
from bertkit.settings import FillMaskOptions


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "fill-mask",
        help=summary("fill-mask"),
        description="For every [MASK] in each TEXT (or each stdin line when no TEXT is given) print the "
        "top-k tokens and their probabilities: one JSON line per input, "
        '{"text", "masks": [[{"token_id", "token", "score"}, ...] per mask], "filled"}. The model needs a '
        "masked-LM head (a pre-training checkpoint).",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="a checkpoint with an MLM head")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts with [MASK] (default: stdin lines)")
    settings.add_flags(p, FillMaskOptions())
    add_inference_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    model = load_model(args)
    # Interactive use answers each line at once; piped input is predicted in batches.
    per_batch = 1 if not args.texts and sys.stdin.isatty() else max(1, args.lines_per_batch)
    pending: list[str] = []

    def flush() -> None:
        for r in model.fill_mask(pending, top_k=args.top_k):
            sys.stdout.write(json.dumps(r, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        pending.clear()

    for text in args.texts or iter_stdin_lines():
        pending.append(text)
        if len(pending) >= per_batch:
            flush()
    if pending:
        flush()
    return 0
