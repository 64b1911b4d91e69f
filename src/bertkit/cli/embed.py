"""``bertkit embed``: sentence embeddings of text files, streamed into ``.npy`` or ``.jsonl``."""

from __future__ import annotations

import argparse

from bertkit import settings
from bertkit.cli import summary
from bertkit.settings import EmbedOptions, InferenceOptions, TextFileOptions


def add_inference_options(p: argparse.ArgumentParser, batch_and_length: bool = True) -> None:
    """Options every inference command shares, from :class:`bertkit.settings.InferenceOptions`
    (``batch_and_length=False``: a command that has its own --batch-size / length option)."""
    skip = () if batch_and_length else ("batch_size", "max_length")
    settings.add_flags(p, InferenceOptions(), skip=skip)


def load_model(args: argparse.Namespace, **overrides):
    """``bertkit.load(args.model, ...)`` with the options of :func:`add_inference_options`."""
    from bertkit.inference import load

    kw = dict(
        device=args.device,
        precision=args.precision,
        max_length=getattr(args, "max_length", None),
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
    )
    return load(args.model, **{**kw, **overrides})


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "embed",
        help=summary("embed"),
        description="Embed every text of the input files (in order) with a model directory. Inputs: .txt (one "
        "text per line, empty lines included), .jsonl (a text field), .tsv (a column; header line); .gz too. "
        "Output: .npy (float32 rows in input order) or .jsonl ({\"text\", \"embedding\"} per line), written "
        "atomically; an existing output file is refused unless --overwrite. Inputs are streamed (memory bounded by --chunk-size).",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="any model directory (encoder, pre-training, task)")
    p.add_argument(
        "--input",
        required=True,
        nargs="+",
        metavar="FILE",
        help="text files, read in the order given; - reads stdin (one text per line)",
    )
    p.add_argument("--out", required=True, metavar="OUT", help="OUT.npy or OUT.jsonl (must not exist)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file (never an input)")
    settings.add_flags(p, EmbedOptions())
    settings.add_flags(p, TextFileOptions())
    add_inference_options(p)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit import outputs
    from bertkit.embedding_files import EmbeddingWriter, count_input_texts, iter_input_texts

    outputs.check_output_file(args.out, inputs=[*args.input, args.model], overwrite=args.overwrite)  # before loading
    model = load_model(args)
    total = count_input_texts(args.input) if args.progress else None
    texts = iter_input_texts(args.input, column=args.column, text_field=args.text_field)
    dim = model.config.hidden_size
    with EmbeddingWriter(args.out, dim, overwrite=args.overwrite) as writer:
        for chunk, vectors in model.iter_embed(
            texts,
            pooling=args.pooling,
            normalize=args.normalize,
            chunk_size=args.chunk_size,
            progress=args.progress,
            total=total,
        ):
            writer.write(vectors, chunk)
    print(f"wrote {writer.rows} embeddings ({writer.rows} x {dim}, {args.pooling} pooling) to {args.out}")
    return 0
