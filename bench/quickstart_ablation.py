"""The quickstart's pre-training / fine-tuning calls with one thing varied at a time: the
ablations behind docs/RESULTS.md ("Why pre-training does not help at this budget").

Pre-trains ``--steps`` steps (or takes ``--ckpt``), then fine-tunes polarity from it and, with
``--scratch``, from the same config with random weights, ``--seeds`` seeds each, and prints the
dev accuracy per epoch and the medians. One torch thread. Needs ../shared/data (or
$BERTKIT_SHARED_DATA).

    python bench/quickstart_ablation.py --ckpt QS_OUT/pretrain-15m/run/checkpoint-N \
        --vocab QS_OUT/vocab --out runs/abl-ft6 --ft-epochs 6 --scratch
    python bench/quickstart_ablation.py --data PREPARED --vocab VOCAB --steps 2000 --lr 1e-3 \
        --dropout 0 --out runs/abl-mlm --ft-epochs 6

A task-adaptive corpus (the polarity train sentences, no labels, N reshuffled copies, 8 per
document, after the corpus' own documents; ``-`` for no corpus) is made by
``python bench/quickstart_ablation.py --make-corpus CORPUS.jsonl N OUT.jsonl``.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bertkit.finetune import FinetuneConfig, finetune
from bertkit.pretrain import PretrainConfig, pretrain
from bertkit.quickstart.data import write_task_text
from bertkit.quickstart.stages import scratch_model_config

SHARED = Path(os.environ.get("BERTKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TASK = SHARED / "tasks" / "polarity"


def make_corpus(src: str, copies: int, out: str) -> None:
    """``src``'s lines (``-``: none), then the polarity train texts ``copies`` times, written by
    the quickstart's own ``--task-text`` code."""
    with tempfile.TemporaryDirectory() as tmp:
        task_text = Path(tmp) / "task_text.jsonl"
        write_task_text(str(TASK / "train.tsv"), task_text, copies)
        with open(out, "wb") as f:
            if src != "-":
                with open(src, "rb") as g:
                    shutil.copyfileobj(g, f)
            with open(task_text, "rb") as g:
                shutil.copyfileobj(g, f)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ckpt", help="fine-tune this checkpoint instead of pre-training one")
    ap.add_argument("--data", help="prepared data to pre-train on (with --steps)")
    ap.add_argument("--vocab", help="vocabulary directory (default: the checkpoint's)")
    ap.add_argument("--steps", type=int, default=0, help="pre-training steps (0: use --ckpt)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--warmup", type=float, default=0.1, help="warmup fraction of --steps")
    ap.add_argument("--dropout", type=float, default=None, help="pre-training dropout override")
    ap.add_argument("--ft-epochs", type=int, default=3)
    ap.add_argument("--ft-lr", type=float, default=1e-4)
    ap.add_argument("--ft-bs", type=int, default=32)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--scratch", action="store_true", help="also fine-tune the same config from random weights")
    ap.add_argument("--no-pre", action="store_true", help="skip fine-tuning the pre-trained checkpoint")
    return ap.parse_args(argv)


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "--make-corpus":
        make_corpus(argv[1], int(argv[2]), argv[3])
        return 0
    a = parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ckpt = a.ckpt
    if a.steps:
        cfg = PretrainConfig(
            data=a.data,
            out=str(out / "pre"),
            model=a.model,
            tokenizer=a.vocab,
            max_steps=a.steps,
            batch_size=a.bs,
            lr=a.lr,
            warmup_steps=int(a.steps * a.warmup),
            precision="bf16",
            save_every=0,
            eval_every=0,
            eval_batches=20,
            log_every=50,
            keep_last=1,
            seed=0,
            progress=False,
            dropout=a.dropout,
        )
        s = pretrain(cfg)
        ckpt = s["checkpoint"]
        print("PRE", a.steps, "steps", round(time.time() - t0), "s eval", s.get("eval"), flush=True)
    inits = []
    if not a.no_pre:
        inits.append(("pre", {"init": ckpt}))
    if a.scratch:
        inits.append(("scratch", {"model_config": scratch_model_config(ckpt), "tokenizer": a.vocab or ckpt}))
    res = {}
    for name, spec in inits:
        accs = []
        for seed in range(a.seeds):
            m = finetune(
                FinetuneConfig(
                    task="classification",
                    train=str(TASK / "train.tsv"),
                    dev=str(TASK / "dev.tsv"),
                    out=str(out / f"ft-{name}-{seed}"),
                    epochs=a.ft_epochs,
                    lr=a.ft_lr,
                    batch_size=a.ft_bs,
                    max_seq_length=64,
                    seed=seed,
                    precision="bf16",
                    progress=False,
                    **spec,
                )
            )
            accs.append(m["dev"]["accuracy"] * 100)
            print(name, seed, [round(e["accuracy"] * 100, 1) for e in m.get("dev_history", [])], flush=True)
        res[name] = statistics.median(accs)
        print("MEDIAN", name, res[name], accs, flush=True)
    print("RESULT", json.dumps(vars(a)), json.dumps(res), round(time.time() - t0), "s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
