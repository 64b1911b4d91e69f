"""The ``bertkit`` command line: a thin layer of subcommands over the library.

Each subcommand lives in its own module in this package and exposes two functions:

* ``register(subparsers) -> argparse.ArgumentParser`` adds the subcommand's parser;
* ``run(args: argparse.Namespace) -> int`` does the work and returns the exit status.

Add a new subcommand by writing such a module and listing it in ``COMMANDS``.
User errors are raised as :class:`bertkit.BertkitError` and printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bertkit import __version__
from bertkit.errors import BertkitError

# Subcommand name -> module (relative to this package). Order is the order in --help.
COMMANDS: dict[str, str] = {
    "quickstart": "quickstart",
    "data": "data",
    "vocab": "vocab",
    "tokenize": "tokenize",
    "prepare": "prepare",
    "pretrain": "pretrain",
    "finetune": "finetune",
    "evaluate": "evaluate",
    "predict": "predict",
    "info": "info",
}


def _available_commands() -> dict[str, object]:
    mods = {}
    for name, modname in COMMANDS.items():
        try:
            mods[name] = importlib.import_module(f"bertkit.cli.{modname}")
        except ModuleNotFoundError as e:
            # A command whose module is not written yet is simply not offered.
            if e.name == f"bertkit.cli.{modname}":
                continue
            raise
    return mods


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="bertkit",
        description="BERT end to end: train a WordPiece vocabulary, prepare data, pre-train, "
        "fine-tune, evaluate and predict, with Hugging Face-compatible checkpoints.",
    )
    parser.add_argument("--version", action="version", version=f"bertkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    mods = _available_commands()
    for mod in mods.values():
        mod.register(sub)  # type: ignore[attr-defined]
    return parser, mods


def main(argv: list[str] | None = None) -> int:
    parser, mods = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    try:
        return int(mods[args.command].run(args) or 0)  # type: ignore[attr-defined]
    except BertkitError as e:
        print(f"bertkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bertkit {args.command}: interrupted", file=sys.stderr)
        return 130
