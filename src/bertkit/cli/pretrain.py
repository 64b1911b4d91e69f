"""``bertkit pretrain``: MLM (+ NSP) pre-training on prepared data (see :mod:`bertkit.pretrain`)."""

from __future__ import annotations

import argparse

from bertkit.cli import summary


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from bertkit.pretrain import describe_keys

    p = sub.add_parser(
        "pretrain",
        help=summary("pretrain"),
        description="Pre-train BERT on prepared data. Settings come from the defaults below, then "
        "--config FILE (JSON with the same keys), then key=value arguments. Launch under torchrun "
        "for several processes / nodes (see docs/TRAINING.md).",
        epilog="keys (default, meaning):\n"
        + describe_keys()
        + "\n\nexample:\n  bertkit pretrain --data prepared/ --out runs/mini model=mini "
        "tokenizer=vocab/ max_steps=2000 batch_size=32 precision=bf16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_options(p)
    # REMAINDER: options may also come after key=value items; run() sorts them out
    p.add_argument("overrides", nargs=argparse.REMAINDER, metavar="key=value", help="override any key listed below")
    p.set_defaults(pretrain_parser=p)
    return p


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="prepared data directory (the `data` key)")
    p.add_argument("--out", metavar="DIR", help="run directory (the `out` key)")
    p.add_argument("--config", metavar="FILE", help="JSON file of keys (e.g. configs/mini-cpu.json)")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in --out")


def _split_trailing_options(args: argparse.Namespace) -> list[str]:
    """Options written after the first key=value land in ``args.overrides``: parse them out."""
    from bertkit.errors import BertkitError

    late = argparse.ArgumentParser(prog="bertkit pretrain", add_help=False)
    _add_options(late)
    ns, rest = late.parse_known_args(args.overrides)
    for name in ("data", "out", "config"):
        if getattr(ns, name) is not None:
            setattr(args, name, getattr(ns, name))
    args.resume = args.resume or ns.resume
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
    direct = {k: v for k, v in (("data", args.data), ("out", args.out)) if v is not None}
    cfg = cfg.updated(direct, source="command line")
    pretrain(cfg, resume=args.resume)
    return 0
