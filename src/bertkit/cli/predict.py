"""``bertkit predict``: write a fine-tuned model's predictions for a file (JSON lines, atomic)."""

from __future__ import annotations

import argparse

from bertkit.cli import summary
from bertkit.cli.embed import add_inference_options, load_model
from bertkit.cli.finetune import TASK_NAMES, add_trained_model_options, columns_of


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "predict",
        help=summary("predict"),
        description="Labels in --data are optional; when present they are copied to each record as 'gold'. "
        "Runs on bertkit.inference (length-sorted batches of at most --batch-size examples and --max-tokens tokens).",
    )
    add_trained_model_options(p)
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="predictions file: JSON lines (.jsonl); for qa a .json name writes the official SQuAD {id: answer} file",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file (never an input)")
    p.add_argument(
        "--task", default=None, choices=TASK_NAMES, help="task family (default: from the checkpoint's task.json)"
    )
    add_inference_options(p, batch_and_length=False)
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit import outputs

    outputs.check_output_file(args.out, inputs=[args.data, args.model], overwrite=args.overwrite)
    model = load_model(args, task=args.task, max_length=args.max_length, columns=columns_of(args))
    n = model.predict_file(args.data, args.out, progress=args.progress)
    print(f"wrote {n} predictions to {args.out}")
    return 0
