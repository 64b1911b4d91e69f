"""``bertkit export``: an ONNX model (+ int8) of what a model does, checked with onnxruntime."""

from __future__ import annotations

import argparse
import json

from bertkit.cli import summary
from bertkit.settings import Pooling, choices


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help=summary("export"),
        description="Writes DIR/model.onnx (opset 17, dynamic batch and sequence axes), the tokenizer "
        "files, config.json (+ task.json) and export.json. An encoder exports with its pooling in the "
        "graph (output 'embedding'), a pre-training checkpoint its MLM logits, a fine-tuned task "
        "directory its task head. Before anything is written, onnxruntime must reproduce bertkit's "
        "torch outputs on real text within 1e-4 (fp32). Needs onnx + onnxruntime: pip install 'bertkit[serve]'.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="checkpoint or fine-tuned task directory")
    p.add_argument("--out", required=True, metavar="DIR", help="export directory (must not exist)")
    p.add_argument(
        "--quantize",
        choices=["int8"],
        default=None,
        help="also write model.int8.onnx (onnxruntime dynamic quantization of the matmul weights)",
    )
    p.add_argument(
        "--eval",
        metavar="FILE",
        default=None,
        help="labelled dev file: report the metric of torch fp32, onnx fp32 (and int8) and the change "
        "(task models: the task's metrics; encoders: a scored pair file, Spearman of cosine similarity)",
    )
    p.add_argument(
        "--kind",
        choices=["auto", "embedding", "fill-mask"],
        default="auto",
        help="for a checkpoint without a task: auto = fill-mask when it has an MLM head, else embedding",
    )
    p.add_argument(
        "--pooling", choices=list(choices(Pooling)), default="mean", help="embedding pooling inside the graph"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing bertkit export at --out")
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit import runtime
    from bertkit.export import export_onnx

    info = export_onnx(
        args.model,
        args.out,
        quantize=args.quantize,
        eval_file=args.eval,
        kind=args.kind,
        pooling=args.pooling,
        overwrite=args.overwrite,
        log=runtime.log,
    )
    print(
        json.dumps(
            {"out": args.out, "files": info["files"], "parity": info["parity"], "eval": info.get("eval")}, indent=2
        )
    )
    return 0
