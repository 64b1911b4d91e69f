"""``bertkit prepare``: raw corpora -> masked, sentence-paired, sharded pre-training data."""

from __future__ import annotations

import argparse

from bertkit.cli import summary


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
    p.add_argument("--split", default="train", choices=["train", "validation"], help="split for --inspect")
    p.add_argument("--max-seq-length", type=int, default=128, help="default 128 (512 for phase 2)")
    p.add_argument(
        "--short-seq-prob", type=float, default=0.1, help="probability of a shorter target length (default 0.1)"
    )
    p.add_argument(
        "--dupe-factor",
        type=int,
        default=10,
        help="passes over the corpus, each with other segments and masks (default 10)",
    )
    p.add_argument(
        "--masking",
        choices=["static", "dynamic"],
        default="static",
        help="static: masks drawn now and stored; dynamic: shards keep unmasked ids and the "
        "loader draws new masks every epoch",
    )
    p.add_argument("--mask-prob", type=float, default=0.15, help="masked LM probability (default 0.15)")
    p.add_argument(
        "--max-predictions-per-seq", type=int, default=None, help="default ceil(max_seq_length * mask_prob): 20 at 128"
    )
    p.add_argument(
        "--no-nsp", action="store_true", help="MLM only: pack contiguous sentences to full length across documents"
    )
    p.add_argument("--whole-word-mask", action="store_true", help="mask all pieces of a word together")
    p.add_argument("--seed", type=int, default=12345, help="default 12345 (the original's)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU cores)")
    p.add_argument(
        "--validation-fraction",
        type=float,
        default=0.01,
        help="fraction of documents held out as the validation split (default 0.01)",
    )
    p.add_argument(
        "--format",
        choices=["auto", "bert", "text", "jsonl"],
        default="auto",
        help="input format (default auto: .jsonl/.json are JSONL, other files are "
        "detected as one-sentence-per-line or paragraphs)",
    )
    p.add_argument("--language", default="en", help="language for sentence segmentation (default en)")
    p.add_argument(
        "--encoding-errors",
        choices=["strict", "replace"],
        default="strict",
        help="invalid UTF-8: stop with an error (strict) or substitute U+FFFD",
    )
    p.add_argument(
        "--max-line-bytes",
        type=int,
        default=8 << 20,
        help="skip (and report) input lines longer than this (default 8 MiB; a JSONL document is one line)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace data already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit.errors import BertkitError
    from bertkit.pretraining.format import PrepareOptions
    from bertkit.pretraining.inspect import inspect
    from bertkit.pretraining.prepare import prepare

    if args.inspect:
        print(inspect(args.inspect, n=args.n, split=args.split))
        return 0
    missing = [f for f, v in (("--input", args.input), ("--tokenizer", args.tokenizer), ("--out", args.out)) if not v]
    if missing:
        raise BertkitError(f"{', '.join(missing)} required (or use --inspect DIR)")
    opts = PrepareOptions(
        max_seq_length=args.max_seq_length,
        short_seq_prob=args.short_seq_prob,
        dupe_factor=args.dupe_factor,
        masked_lm_prob=args.mask_prob,
        max_predictions_per_seq=args.max_predictions_per_seq,
        whole_word_mask=args.whole_word_mask,
        masking=args.masking,
        nsp=not args.no_nsp,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        format=args.format,
        language=args.language,
        encoding_errors=args.encoding_errors,
        max_line_bytes=args.max_line_bytes,
    )
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
