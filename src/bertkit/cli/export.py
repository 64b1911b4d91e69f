"""``bertkit export``: an ONNX model (+ int8) of what a model does, checked with onnxruntime."""

from __future__ import annotations

import argparse
import json

from bertkit import settings
from bertkit.cli import summary
from bertkit.settings import ExportOptions


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help=summary("export"),
        description="Writes DIR/model.onnx (opset 17, dynamic batch and sequence axes), the tokenizer "
        "files, config.json (+ task.json) and export.json. An encoder exports with its pooling in the "
        "graph (output 'embedding'), a pre-training checkpoint its MLM logits, a fine-tuned task "
        "directory its task head. Before anything is written, onnxruntime must reproduce bertkit's "
        "torch outputs on real text within 1e-4 (fp32). --eval scores a task model with its task's metrics, an encoder on a scored pair file (Spearman of cosine similarity). Needs onnx + onnxruntime: pip install 'bertkit[serve]'.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="checkpoint or fine-tuned task directory")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="export directory: new, empty, or an earlier export with --overwrite",
    )
    settings.add_flags(p, ExportOptions(), names={"eval_file": "--eval"})
    p.add_argument("--overwrite", action="store_true", help="replace an existing bertkit export at --out")
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit import runtime
    from bertkit.export import export_onnx

    opts = settings.from_args(args, ExportOptions)
    info = export_onnx(
        args.model,
        args.out,
        quantize=opts.quantize,
        eval_file=opts.eval_file,
        kind=opts.kind,
        pooling=opts.pooling,
        overwrite=args.overwrite,
        log=runtime.log,
    )
    print(
        json.dumps(
            {"out": args.out, "files": info["files"], "parity": info["parity"], "eval": info.get("eval")}, indent=2
        )
    )
    return 0
