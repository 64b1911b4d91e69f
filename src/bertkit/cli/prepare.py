"""``bertkit prepare``: raw corpora -> masked, sentence-paired, sharded pre-training data."""

from __future__ import annotations

import argparse

from bertkit import settings
from bertkit.cli import summary
from bertkit.pretraining.format import InspectOptions, PrepareOptions

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
    settings.add_flags(p, InspectOptions(), names={"n": "-n"})
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU cores)")
    settings.add_flags(p.add_argument_group("options (recorded in the manifest)"), PrepareOptions(), names=FLAGS)
    p.add_argument(
        "--num-shards",
        type=int,
        default=1,
        metavar="N",
        help="split the work over N machines: this run prepares part --shard-index into "
        "OUT/part-IIIII-of-NNNNN (each part a contiguous range of the corpus's ~1 MiB chunks); "
        "then `bertkit prepare --merge --out OUT` (docs/SCALING.md)",
    )
    p.add_argument("--shard-index", type=int, default=None, metavar="I", help="this machine's part, 0..N-1")
    p.add_argument(
        "--merge",
        action="store_true",
        help="join the parts in --out into one data set (a manifest listing their shards; nothing is "
        "copied): the same instances, order and data key as one machine's run",
    )
    p.add_argument("--overwrite", action="store_true", help="replace data bertkit prepared in --out before")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit.errors import BertkitError
    from bertkit.pretraining.inspect import inspect
    from bertkit.pretraining.prepare import merge_parts, prepare

    if args.inspect:
        print(inspect(args.inspect, n=args.n, split=args.split))
        return 0
    if args.merge:
        if not args.out:
            raise BertkitError("--merge needs --out (the directory holding the parts)")
        m = merge_parts(args.out, args.num_shards if args.num_shards > 1 else None, overwrite=args.overwrite)
        if m.get("up_to_date"):
            print(f"{args.out}: up to date (already merged from these {len(m['parts'])} parts); nothing to do")
        else:
            c = m["counts"]["instances"]
            print(
                f"{args.out}: {len(m['parts'])} parts merged: {c['train']} train + {c['validation']} validation instances"
            )
        return 0
    if (args.num_shards > 1) != (args.shard_index is not None):
        raise BertkitError("--num-shards N (N > 1) and --shard-index I go together")
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
        num_shards=args.num_shards,
        shard_index=args.shard_index or 0,
    )
    c = m["counts"]
    if m.get("up_to_date"):
        print(f"{args.out}: up to date (same inputs, options and vocabulary); nothing to do")
        return 0
    if "part" in m:
        part = m["part"]
        print(
            f"{args.out}: part {part['index']} of {part['num_shards']} (chunks [{part['chunks'][0]}, {part['chunks'][1]}) "
            f"of {part['num_chunks']}): {c['instances']['train']} train + {c['instances']['validation']} validation "
            f"instances, {c['sentences']} sentences, {c['tokens']} tokens"
        )
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
