"""``bertkit pretrain``: MLM (+ NSP) pre-training on prepared data (see :mod:`bertkit.pretrain`)."""

from __future__ import annotations

import argparse

from bertkit import settings
from bertkit.cli import summary
from bertkit.errors import BertkitError


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "pretrain",
        help=summary("pretrain"),
        description="Pre-train BERT on prepared data. Settings come from the defaults, then "
        "--config FILE (JSON with the keys below: each --flag-name is the key flag_name), then "
        "key=value arguments and flags. Launch under torchrun for several processes / nodes "
        "(see docs/TRAINING.md).",
        epilog="example:\n  bertkit pretrain --data prepared/ --out runs/mini --model mini "
        "--tokenizer vocab/ --max-steps 2000 --batch-size 32 --precision bf16\n"
        "  (the same with key=value: ... model=mini tokenizer=vocab/ max_steps=2000 ...)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_options(p)
    # REMAINDER: options may also come after key=value items; run() sorts them out
    p.add_argument("overrides", nargs=argparse.REMAINDER, metavar="key=value", help="set any key (as its flag does)")
    p.set_defaults(pretrain_parser=p)
    return p


def _add_options(p: argparse.ArgumentParser) -> None:
    from bertkit.pretrain import PretrainConfig

    p.add_argument("--config", metavar="FILE", help="JSON file of keys (e.g. configs/mini-cpu.json)")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in --out")
    p.add_argument(
        "--overwrite", action="store_true", help="start the run in --out again, deleting its checkpoints and logs"
    )
    settings.add_flags(
        p.add_argument_group("settings (also keys of --config files and key=value)"), PretrainConfig(), suppress=True
    )


def _split_trailing_options(args: argparse.Namespace) -> list[str]:
    """Options written after the first key=value land in ``args.overrides``: parse them out."""
    late = argparse.ArgumentParser(prog="bertkit pretrain", add_help=False)
    _add_options(late)
    ns, rest = late.parse_known_args(args.overrides)
    for name, value in vars(ns).items():
        if name in ("resume", "overwrite"):
            setattr(args, name, getattr(args, name) or value)
        elif value is not None:
            setattr(args, name, value)
    for item in rest:
        if item in ("-h", "--help"):
            args.pretrain_parser.print_help()
            raise SystemExit(0)
        if item.startswith("-"):
            raise BertkitError(f"unknown option {item!r} (see bertkit pretrain --help)")
    return rest


def run(args: argparse.Namespace) -> int:
    from bertkit.pretrain import PretrainConfig, pretrain

    overrides = _split_trailing_options(args)
    cfg = PretrainConfig.from_file(args.config) if args.config else PretrainConfig()
    cfg = cfg.with_overrides(overrides)
    cfg = cfg.updated(settings.given(args, PretrainConfig), source="command line")
    pretrain(cfg, resume=args.resume, overwrite=args.overwrite)
    return 0
