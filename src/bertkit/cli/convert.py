"""``bertkit convert --from-tf DIR --out DIR``: an original Google BERT TensorFlow checkpoint ->
a normal checkpoint directory (config.json, model.safetensors, vocab.txt, tokenizer_config.json).

The Python equivalent is ``BertForPreTraining.from_pretrained(tf_dir).save_pretrained(out,
tokenizer=Tokenizer.from_pretrained(tf_dir))``; this command adds the casing and GELU choices
and the output guard (bertkit.outputs: an existing --out is replaced only when it is an earlier
conversion and --overwrite is given).
"""

from __future__ import annotations

import argparse

from bertkit import settings
from bertkit.cli import summary
from bertkit.settings import ConvertOptions


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert",
        help=summary("convert"),
        description="Read a google-research/bert TensorFlow checkpoint (bert_config.json, "
        "bert_model.ckpt.index + .data-*, vocab.txt) without TensorFlow and write a checkpoint "
        "directory that bertkit and transformers load unchanged. Optimizer slots and global_step "
        "are dropped; the pre-training heads are kept when the checkpoint has them. --gelu tanh computes what google-research/bert computes (closest to the TF model's own outputs); erf is the exact GELU transformers' converter picks.",
    )
    p.add_argument(
        "--from-tf",
        required=True,
        metavar="DIR",
        help="directory with bert_config.json, vocab.txt and one TF checkpoint (bert_model.ckpt.* or any single *.index)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output directory: new, empty, or an earlier conversion with --overwrite",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a conversion bertkit wrote in --out before")
    case = p.add_mutually_exclusive_group()
    case.add_argument("--cased", dest="lower", action="store_false", default=None, help="keep case when tokenizing")
    case.add_argument("--uncased", dest="lower", action="store_true", help="lower-case and strip accents")
    settings.add_flags(p, ConvertOptions())
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bertkit import outputs
    from bertkit.checkpoint import resolve_pretrained
    from bertkit.errors import BertkitError
    from bertkit.fileio import atomic_dir
    from bertkit.heads import BertForPreTraining
    from bertkit.model import BertModel
    from bertkit.tf_checkpoint import GELU_ACT, converted_size, find_prefix, is_tf_checkpoint_dir, tokenizer_casing
    from bertkit.tokenization import Tokenizer, read_vocab

    src, out = resolve_pretrained(Path(args.from_tf)), Path(args.out)
    if not is_tf_checkpoint_dir(src):
        find_prefix(src)  # names what is missing
        raise BertkitError(f"{src}: has a config.json: already a converted checkpoint, not a TensorFlow one")
    need_bytes, has_heads = converted_size(src)
    outputs.check_output_dir(out, "convert", inputs=[src], overwrite=args.overwrite, need_bytes=need_bytes)
    cls = BertForPreTraining if has_heads else BertModel
    model = cls.from_pretrained(src, hidden_act=GELU_ACT[settings.from_args(args, ConvertOptions).gelu])
    vocab = src / "vocab.txt"
    tok = Tokenizer(read_vocab(vocab), do_lower_case=tokenizer_casing(src, args.lower), source=str(vocab))
    with atomic_dir(out) as tmp, outputs.disk_errors(out, "the converted checkpoint"):
        model.save_pretrained(tmp, tokenizer=tok)
        outputs.write_marker(tmp, "convert")
    what = "with the MLM + NSP heads" if has_heads else "encoder + pooler (the checkpoint has no cls/ heads)"
    n = sum(p.numel() for p in model.parameters())
    print(
        f"{out}: {cls.__name__} {what}, {n / 1e6:.1f}M parameters, hidden_act {model.config.hidden_act!r}, "
        f"{'uncased' if tok.do_lower_case else 'cased'}"
    )
    return 0
