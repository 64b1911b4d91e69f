"""``bertkit tokenize``: encode lines from stdin, one JSON object per line on stdout."""

from __future__ import annotations

import argparse
import json
import sys

from bertkit import settings
from bertkit.cli import summary
from bertkit.settings import TokenizeOptions


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "tokenize",
        help=summary("tokenize"),
        description="Read lines from stdin and write one JSON object per line with \"tokens\" "
        "and \"ids\" ([CLS] ... [SEP]), plus \"offsets\" (character spans into the line). With "
        "--pair each line holds two tab-separated texts, encoded as a pair.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="directory with vocab.txt (+ tokenizer_config.json)")
    settings.add_flags(p, TokenizeOptions())
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit.errors import BertkitError
    from bertkit.fileio import iter_stdin_lines
    from bertkit.tokenization import Tokenizer

    tok = Tokenizer.from_pretrained(args.model)
    # Interactive use answers each line at once; piped input is encoded in batches.
    batch_size = 1 if sys.stdin.isatty() else max(1, args.batch_size)
    firsts: list[str] = []
    pairs: list[str] = []

    def flush():
        if not firsts:
            return
        encs = tok.encode_batch(firsts, pairs if args.pair else None, max_length=args.max_length)
        for e in encs:
            sys.stdout.write(
                json.dumps(
                    {
                        "tokens": e.tokens,
                        "ids": e.input_ids,
                        "token_type_ids": e.token_type_ids,
                        "offsets": [list(o) for o in e.offsets],
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
        sys.stdout.flush()
        firsts.clear()
        pairs.clear()

    try:
        for lineno, line in enumerate(iter_stdin_lines(), start=1):
            if args.pair:
                parts = line.split("\t")
                if len(parts) != 2:
                    raise BertkitError(f"<stdin>:{lineno}: --pair expects two tab-separated fields, found {len(parts)}")
                firsts.append(parts[0])
                pairs.append(parts[1])
            else:
                firsts.append(line)
            if len(firsts) >= batch_size:
                flush()
    finally:
        flush()  # the lines before a bad one are written
    return 0
