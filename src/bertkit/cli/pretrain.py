"""``bertkit pretrain``: MLM (+ NSP) pre-training on prepared data (see :mod:`bertkit.pretrain`)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from bertkit.pretrain import describe_keys

    p = sub.add_parser(
        "pretrain",
        help="pre-train BERT (MLM + NSP) on data made by `bertkit prepare`",
        description="Pre-train BERT on prepared data. Settings come from the defaults below, then "
        "--config FILE (JSON with the same keys), then key=value arguments. Launch under torchrun "
        "for several processes / nodes (see docs/TRAINING.md).",
        epilog="keys (default, meaning):\n" + describe_keys()
        + "\n\nexample:\n  bertkit pretrain --data prepared/ --out runs/mini model=mini "
        "tokenizer=vocab/ max_steps=2000 batch_size=32 precision=bf16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", metavar="DIR", help="prepared data directory (the `data` key)")
    p.add_argument("--out", metavar="DIR", help="run directory (the `out` key)")
    p.add_argument("--config", metavar="FILE", help="JSON file of keys (e.g. configs/mini-cpu.json)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest complete checkpoint in --out")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override any key listed below")
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig.from_file(args.config) if args.config else PretrainConfig()
    cfg = cfg.with_overrides(args.overrides)
    direct = {k: v for k, v in (("data", args.data), ("out", args.out)) if v is not None}
    cfg = cfg.updated(direct, source="command line")
    pretrain(cfg, resume=args.resume)
    return 0
