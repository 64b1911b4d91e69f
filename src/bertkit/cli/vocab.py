"""``bertkit vocab``: learn a WordPiece vocabulary from text files."""

from __future__ import annotations

import argparse
from pathlib import Path

from bertkit.cli import summary


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "vocab",
        help=summary("vocab"),
        description="Learn a WordPiece vocabulary from text: plain text (one paragraph per line), "
        "JSON Lines with a \"text\" field (*.jsonl), optionally gzip-compressed (*.gz). Input is "
        "streamed. Writes OUT/vocab.txt ([PAD]=0, [UNK], [CLS], [SEP], [MASK], [unusedN]..., "
        "learned pieces) and OUT/tokenizer_config.json, and reports pieces per word and the "
        "[UNK] rate on held-out text.",
    )
    p.add_argument("--input", nargs="+", required=True, metavar="FILE", help="text files")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output directory (new, empty, or an earlier vocab with --overwrite)",
    )
    p.add_argument("--vocab-size", type=int, default=30000, help="total tokens (default 30000)")
    p.add_argument("--cased", action="store_true", help="keep case and accents (default: lowercase and strip accents)")
    p.add_argument(
        "--unused", type=int, default=0, metavar="N", help="reserve N [unusedI] tokens after the specials (default 0)"
    )
    p.add_argument("--min-frequency", type=int, default=2, help="minimum count of a merged piece (default 2)")
    p.add_argument(
        "--limit-alphabet",
        type=int,
        default=1000,
        help="keep the N most frequent characters; rarer ones become [UNK] (default 1000)",
    )
    p.add_argument(
        "--preserve-hangul-kana",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="when stripping accents keep Hangul syllables and kana whole instead of "
        "decomposing them like the original BERT (default: on)",
    )
    p.add_argument(
        "--encoding-errors",
        choices=["strict", "replace"],
        default="strict",
        help="invalid UTF-8: stop with an error (strict, default) or use U+FFFD",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a vocabulary bertkit wrote in --out before")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit import outputs
    from bertkit.fileio import atomic_dir, atomic_write_json
    from bertkit.tokenization import train_vocab

    out = Path(args.out)
    outputs.check_output_dir(out, "vocab", inputs=args.input, overwrite=args.overwrite, need_bytes=4 << 20)
    tok = train_vocab(
        args.input,
        vocab_size=args.vocab_size,
        lowercase=not args.cased,
        preserve_hangul_kana=args.preserve_hangul_kana,
        unused=args.unused,
        min_frequency=args.min_frequency,
        limit_alphabet=args.limit_alphabet,
        encoding_errors=args.encoding_errors,
        progress=not args.quiet,
    )
    report = tok.training_report
    with atomic_dir(out) as tmp, outputs.disk_errors(out, "the vocabulary"):
        tok.save(tmp)
        atomic_write_json(tmp / "vocab_report.json", report.to_dict())
        outputs.write_marker(tmp, "vocab")
    print(report.summary())
    print(f"wrote {out}/vocab.txt, tokenizer_config.json, vocab_report.json")
    return 0
