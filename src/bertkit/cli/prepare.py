"""``bertkit prepare``: raw corpora -> masked, sentence-paired, sharded pre-training data."""

from __future__ import annotations

import argparse

from bertkit import settings
from bertkit.cli import summary
from bertkit.pretraining.format import PrepareOptions
from bertkit.settings import Split

FLAGS = {"masked_lm_prob": "--mask-prob"}  # the original's flag name


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "prepare",
        help=summary("prepare"),
        description="Read corpora (BERT one-sentence-per-line format, plain text paragraphs, "
        "JSONL {\"text\": ...}; .gz, directories and globs accepted), tokenize, build NSP or "
        "packed MLM-only instances, mask, and write .npy shards with manifest.json. Re-running with "
        "the same inputs and options does nothing. Or, with --inspect DIR, show prepared data.",
    )
    p.add_argument("--input", nargs="+", metavar="PATH", help="corpus files, directories or globs")
    p.add_argument("--tokenizer", metavar="DIR", help="directory with vocab.txt (+ tokenizer_config.json)")
    p.add_argument("--out", metavar="DIR", help="output directory")
    p.add_argument("--inspect", metavar="DIR", help="print the manifest and decode a few instances of DIR")
    p.add_argument("-n", type=int, default=3, help="instances to decode with --inspect (default 3)")
    p.add_argument("--split", default="train", choices=settings.choices(Split), help="split for --inspect")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU cores)")
    settings.add_flags(p.add_argument_group("options (recorded in the manifest)"), PrepareOptions(), names=FLAGS)
    p.add_argument("--overwrite", action="store_true", help="replace data already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit.errors import BertkitError
    from bertkit.pretraining.inspect import inspect
    from bertkit.pretraining.prepare import prepare

    if args.inspect:
        print(inspect(args.inspect, n=args.n, split=args.split))
        return 0
    missing = [f for f, v in (("--input", args.input), ("--tokenizer", args.tokenizer), ("--out", args.out)) if not v]
    if missing:
        raise BertkitError(f"{', '.join(missing)} required (or use --inspect DIR)")
    opts = settings.from_args(args, PrepareOptions)
    m = prepare(
        args.input,
        args.tokenizer,
        args.out,
        opts,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    c = m["counts"]
    if m.get("up_to_date"):
        print(f"{args.out}: up to date (same inputs, options and vocabulary); nothing to do")
        return 0
    print(
        f"{args.out}: {c['instances']['train']} train + {c['instances']['validation']} validation "
        f"instances from {c['documents']} documents, {c['sentences']} sentences, {c['tokens']} tokens"
    )
    sk = c["skipped"]
    if sk["empty_documents"] or sk["long_lines"] or sk["empty_sentences"]:
        print(
            f"skipped: {sk['empty_documents']} empty documents, {sk['empty_sentences']} sentences "
            f"without tokens, {sk['long_lines']} lines over {m['options']['max_line_bytes']} bytes"
            + (f" ({'; '.join(sk['long_line_examples'])})" if sk["long_line_examples"] else "")
        )
    return 0
