"""The quickstart's pre-training / fine-tuning calls with one thing varied at a time: the
ablations behind docs/RESULTS.md ("Why pre-training does not help at this budget").

Pre-trains ``--steps`` steps (or takes ``--ckpt``), then fine-tunes polarity from it and, with
``--scratch``, from the same config with random weights, ``--seeds`` seeds each, and prints the
dev accuracy per epoch and the medians. One torch thread. Needs ../shared/data (or edit P).

    python bench/quickstart_ablation.py --ckpt QS_OUT/pretrain-15m/run/checkpoint-N \
        --vocab QS_OUT/vocab --out runs/abl-ft6 --ft-epochs 6 --scratch
    python bench/quickstart_ablation.py --data PREPARED --vocab VOCAB --steps 2000 --lr 1e-3 \
        --dropout 0 --out runs/abl-mlm --ft-epochs 6

A task-adaptive corpus (the polarity train sentences, no labels, N reshuffled copies, 8 per
document, after the corpus' own documents; ``-`` for no corpus) is made by
``python bench/quickstart_ablation.py --make-corpus CORPUS.jsonl N OUT.jsonl``.
"""
import argparse
import csv
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
import torch
torch.set_num_threads(1)
from bertkit.pretrain import PretrainConfig, pretrain
from bertkit.finetune import FinetuneConfig, finetune
from bertkit.quickstart import scratch_model_config

SHARED = os.environ.get("BERTKIT_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
P = os.path.join(SHARED, "tasks", "polarity", "")


def make_corpus(src: str, copies: int, out: str, per_doc: int = 8) -> None:
    sents = [r["sentence"] for r in csv.DictReader(open(P + "train.tsv", encoding="utf-8"), delimiter="\t")]
    with open(out, "w", encoding="utf-8") as f:
        if src != "-":
            for line in open(src, encoding="utf-8"):
                f.write(line)
        rng = random.Random(0)
        for r in range(copies):
            s = sents[:]
            rng.shuffle(s)
            for i in range(0, len(s), per_doc):
                f.write(json.dumps({"id": f"task-{r}-{i}", "text": "\n".join(s[i:i + per_doc])}) + "\n")


if len(sys.argv) == 5 and sys.argv[1] == "--make-corpus":
    make_corpus(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    sys.exit(0)
ap = argparse.ArgumentParser()
ap.add_argument("--data"); ap.add_argument("--vocab"); ap.add_argument("--out", required=True)
ap.add_argument("--ckpt"); ap.add_argument("--steps", type=int, default=0)
ap.add_argument("--lr", type=float, default=5e-4); ap.add_argument("--bs", type=int, default=32)
ap.add_argument("--model", default="mini"); ap.add_argument("--warmup", type=float, default=0.1)
ap.add_argument("--ft-epochs", type=int, default=3); ap.add_argument("--ft-lr", type=float, default=1e-4)
ap.add_argument("--ft-bs", type=int, default=32); ap.add_argument("--seeds", type=int, default=3)
ap.add_argument("--scratch", action="store_true"); ap.add_argument("--no-pre", action="store_true")
ap.add_argument("--dropout", type=float, default=None)
a = ap.parse_args()
out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
t0 = time.time()
ckpt = a.ckpt
if a.steps:
    cfg = PretrainConfig(data=a.data, out=str(out / "pre"), model=a.model, tokenizer=a.vocab,
                         max_steps=a.steps, batch_size=a.bs, lr=a.lr, warmup_steps=int(a.steps * a.warmup),
                         precision="bf16", save_every=0, eval_every=0, eval_batches=20, log_every=50,
                         keep_last=1, seed=0, progress=False, dropout=a.dropout)
    s = pretrain(cfg)
    ckpt = s["checkpoint"]
    print("PRE", a.steps, "steps", round(time.time() - t0), "s eval", s.get("eval"), flush=True)
res = {}
inits = []
if not a.no_pre:
    inits.append(("pre", {"init": ckpt}))
if a.scratch:
    inits.append(("scratch", {"model_config": scratch_model_config(ckpt), "tokenizer": a.vocab or ckpt}))
for name, spec in inits:
    accs = []
    for seed in range(a.seeds):
        m = finetune(FinetuneConfig(task="classification", train=P + "train.tsv", dev=P + "dev.tsv",
                                    out=str(out / f"ft-{name}-{seed}"), epochs=a.ft_epochs, lr=a.ft_lr,
                                    batch_size=a.ft_bs, max_seq_length=64, seed=seed, precision="bf16",
                                    progress=False, **spec))
        ep = [round(e["accuracy"] * 100, 1) for e in m.get("dev_history", [])]
        accs.append(m["dev"]["accuracy"] * 100)
        print(name, seed, ep, flush=True)
    res[name] = statistics.median(accs)
    print("MEDIAN", name, res[name], accs, flush=True)
print("RESULT", json.dumps(vars(a)), json.dumps(res), round(time.time() - t0), "s", flush=True)
