"""``bertkit vocab``: learn a WordPiece vocabulary from text files."""

from __future__ import annotations

import argparse
from pathlib import Path

from bertkit import settings
from bertkit.cli import summary
from bertkit.settings import VocabOptions


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
    settings.add_flags(p, VocabOptions())
    p.add_argument("--overwrite", action="store_true", help="replace a vocabulary bertkit wrote in --out before")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit import outputs
    from bertkit.fileio import atomic_dir, atomic_write_json
    from bertkit.tokenization import train_vocab

    out = Path(args.out)
    outputs.check_output_dir(out, "vocab", inputs=args.input, overwrite=args.overwrite, need_bytes=4 << 20)
    opts = settings.from_args(args, VocabOptions)
    tok = train_vocab(
        args.input,
        vocab_size=opts.vocab_size,
        lowercase=not opts.cased,
        preserve_hangul_kana=opts.preserve_hangul_kana,
        unused=opts.unused,
        min_frequency=opts.min_frequency,
        limit_alphabet=opts.limit_alphabet,
        encoding_errors=opts.encoding_errors,
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
