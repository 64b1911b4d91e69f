"""``bertkit evaluate``: metrics of a fine-tuned task checkpoint on a labelled file (JSON)."""

from __future__ import annotations

import argparse

from bertkit.cli import summary
from bertkit.cli.finetune import TASK_NAMES, add_trained_model_options, columns_of
from bertkit.settings import SIMILARITY_MAX_SEQ_LENGTH


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate",
        help=summary("evaluate"),
        description="Prints {SPLIT: {metric: value}} with the same metric keys as finetune's metrics.json.",
    )
    add_trained_model_options(p)
    p.add_argument(
        "--task",
        default=None,
        choices=TASK_NAMES + ("similarity",),
        help="task family (default: from the checkpoint's task.json); 'similarity' scores "
        "cosine of mean-pooled embeddings of any checkpoint against a pair file's scores "
        "(Pearson / Spearman), no fine-tuning",
    )
    p.add_argument("--split", default="test", help="key of the printed JSON (default test)")
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit.fileio import dumps_json
    from bertkit.finetune import evaluate

    if args.task == "similarity":
        from bertkit.tasks.similarity import embedding_similarity

        metrics = embedding_similarity(
            args.model,
            args.data,
            max_seq_length=args.max_length or SIMILARITY_MAX_SEQ_LENGTH,
            batch_size=args.batch_size,
            text_column=args.text_column,
            text_pair_column=args.text_pair_column,
            label_column=args.label_column,
            header=args.header,
            progress=args.progress,
        )
        print(dumps_json({args.split: metrics}, indent=2))
        return 0
    metrics = evaluate(
        args.model,
        args.data,
        task=args.task,
        batch_size=args.batch_size,
        max_seq_length=args.max_length,
        progress=args.progress,
        columns=columns_of(args),
    )
    print(dumps_json({args.split: metrics}, indent=2))
    return 0
