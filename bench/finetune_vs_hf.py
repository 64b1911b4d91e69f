"""bertkit fine-tuning vs transformers, same checkpoint / data / hyper-parameters / seeds.

For each task (polarity: sequence classification, accuracy; wnut16: token classification,
seqeval entity F1) and each seed, fine-tune

* bertkit: ``bertkit.finetune.finetune`` (its own tokenizer, model and training loop), and
* transformers: ``AutoModelForSequenceClassification`` / ``AutoModelForTokenClassification`` with
  transformers' fast tokenizer and a plain PyTorch loop of the same recipe (AdamW beta 0.9/0.999,
  eps 1e-6, weight decay 0.01 except biases and LayerNorm, linear warmup + decay via
  ``get_linear_schedule_with_warmup``, gradient clipping 1.0, dynamic padding, dev evaluated after
  every epoch, the last epoch's dev score reported),

then print the median ± std of the dev metric for both, each seed, and the wall-clock ratio
(bertkit time / transformers time, both measured in this same process, one after the other).

    .venv/bin/python bench/finetune_vs_hf.py --tasks polarity wnut16 --seeds 5 --epochs 3 \\
        --lr 5e-5 --batch-size 32 --max-seq-length 128 --json runs/ft_vs_hf.json

``--max-train-examples`` / ``--max-eval-examples`` shrink the data for a quick run (the same
subset for both: bertkit's seeded subset is reproduced here). transformers is a test oracle only:
bertkit never imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BERTKIT_SHARED_DATA", REPO.parent / "shared" / "data"))

TASKS = {
    "polarity": {"family": "classification", "dir": "polarity", "ext": "tsv", "metric": "accuracy"},
    "wnut16": {"family": "tagging", "dir": "wnut16", "ext": "conll", "metric": "f1"},
}


def files(name: str) -> dict[str, str]:
    t = TASKS[name]
    d = SHARED / "tasks" / t["dir"]
    return {split: str(d / f"{split}.{t['ext']}") for split in ("train", "dev")}


# ----------------------------------------------------------------------------------- bertkit


def run_bertkit(name: str, args: argparse.Namespace, seed: int) -> tuple[float, float]:
    from bertkit.finetune import FinetuneConfig, finetune

    f = files(name)
    cfg = FinetuneConfig(task=TASKS[name]["family"], train=f["train"], dev=f["dev"], init=args.init,
                         epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                         max_seq_length=args.max_seq_length, seed=seed, seeds=1, progress=False,
                         max_train_examples=args.max_train_examples, max_eval_examples=args.max_eval_examples,
                         device=args.device, warmup_ratio=args.warmup_ratio, precision=args.precision)
    t0 = time.perf_counter()
    result = finetune(cfg)
    return float(result["dev"][TASKS[name]["metric"]]), time.perf_counter() - t0


# ----------------------------------------------------------------------------------- transformers


def _examples(name: str, split: str, args: argparse.Namespace, seed: int):
    """The same examples bertkit uses (its readers and its seeded training subset)."""
    from bertkit.finetune import _subset
    from bertkit.tasks import get_task

    task = get_task(TASKS[name]["family"])
    ex = task.read(files(name)[split])
    if split == "train":
        return _subset(ex, args.max_train_examples, seed, random_pick=True)
    return _subset(ex, args.max_eval_examples, 0, random_pick=False)


def _hf_encode(name, tok, examples, label2id, max_len):
    """Features as dicts of lists; tagging labels the first sub-token of each word."""
    if TASKS[name]["family"] == "classification":
        enc = tok([e.text for e in examples], truncation=True, max_length=max_len)
        return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                 "token_type_ids": enc["token_type_ids"][i], "labels": label2id[e.label]}
                for i, e in enumerate(examples)], None
    enc = tok([s.words for s in examples], is_split_into_words=True, truncation=True, max_length=max_len)
    feats, word_maps = [], []
    for i, s in enumerate(examples):
        wids = enc.word_ids(i)
        labels, first, prev = [], {}, None
        for pos, w in enumerate(wids):
            if w is None or w == prev:
                labels.append(-100)
            else:
                labels.append(label2id[s.tags[w]])
                first[w] = pos
            prev = w
        feats.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                      "token_type_ids": enc["token_type_ids"][i], "labels": labels})
        word_maps.append([first.get(j, -1) for j in range(len(s.words))])
    return feats, word_maps


def _pad(batch, pad_id):
    T = max(len(b["input_ids"]) for b in batch)
    out = {}
    for key, fill in (("input_ids", pad_id), ("attention_mask", 0), ("token_type_ids", 0)):
        out[key] = torch.tensor([b[key] + [fill] * (T - len(b[key])) for b in batch])
    lab = batch[0]["labels"]
    if isinstance(lab, list):
        out["labels"] = torch.tensor([b["labels"] + [-100] * (T - len(b["labels"])) for b in batch])
    else:
        out["labels"] = torch.tensor([b["labels"] for b in batch])
    return out


def run_hf(name: str, args: argparse.Namespace, seed: int) -> tuple[float, float]:
    import transformers
    from seqeval.metrics import f1_score

    t0 = time.perf_counter()
    family = TASKS[name]["family"]
    train_ex, dev_ex = _examples(name, "train", args, seed), _examples(name, "dev", args, seed)
    if family == "classification":
        labels = sorted({e.label for e in train_ex}, key=float)
    else:
        labels = sorted({t for s in train_ex for t in s.tags})
    label2id = {lab: i for i, lab in enumerate(labels)}
    tok = transformers.AutoTokenizer.from_pretrained(args.init)
    train, _ = _hf_encode(name, tok, train_ex, label2id, args.max_seq_length)
    dev, dev_maps = _hf_encode(name, tok, dev_ex, label2id, args.max_seq_length)
    unk = sum(x == tok.unk_token_id for f in train for x in f["input_ids"]) / sum(len(f["input_ids"]) for f in train)
    assert unk < 0.05, f"transformers tokenizer maps {unk:.0%} of pieces to [UNK]: not the real vocabulary"

    transformers.set_seed(seed)
    cls = (transformers.AutoModelForSequenceClassification if family == "classification"
           else transformers.AutoModelForTokenClassification)
    model = cls.from_pretrained(args.init, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                label2id=label2id, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    model.to(device)
    # The same mixed precision as bertkit's --precision bf16: bf16 autocast, fp32 weights and optimizer.
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999), eps=1e-6)
    steps_per_epoch = (len(train) + args.batch_size - 1) // args.batch_size
    total = steps_per_epoch * args.epochs
    sched = transformers.get_linear_schedule_with_warmup(opt, int(round(args.warmup_ratio * total)), total)
    g = torch.Generator().manual_seed(seed)
    score = 0.0
    for _epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train), generator=g).tolist()
        for s in range(0, len(order), args.batch_size):
            batch = {k: v.to(device) for k, v in _pad([train[i] for i in order[s:s + args.batch_size]],
                                                       tok.pad_token_id).items()}
            with amp:
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
        model.eval()
        preds = []
        with torch.no_grad(), amp:
            for s in range(0, len(dev), 64):
                chunk = dev[s:s + 64]
                batch = {k: v.to(device) for k, v in _pad(chunk, tok.pad_token_id).items() if k != "labels"}
                logits = model(**batch).logits.float().cpu()
                preds.extend(logits.argmax(-1).tolist())
        if family == "classification":
            score = float(np.mean([labels[p] == e.label for p, e in zip(preds, dev_ex)]))
        else:
            fallback = "O"
            pred_tags = [[labels[p[i]] if i >= 0 else fallback for i in m] for p, m in zip(preds, dev_maps)]
            score = float(f1_score([s.tags for s in dev_ex], pred_tags))
    return score, time.perf_counter() - t0


# ----------------------------------------------------------------------------------- main


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "per_seed": values}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--init", default=str(SHARED / "checkpoints" / "minilm-l6-uncased"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--max-eval-examples", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="both sides: bf16 autocast (fp32 weights) or plain fp32")
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args(argv)
    if not Path(args.init).is_dir():
        print(f"no checkpoint at {args.init} (set BERTKIT_SHARED_DATA)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    # Import both stacks before any timing, so neither run pays the other's import cost.
    import seqeval.metrics  # noqa: F401
    import transformers  # noqa: F401

    import bertkit.finetune  # noqa: F401
    import bertkit.heads  # noqa: F401
    import bertkit.training  # noqa: F401

    results = {"config": vars(args), "torch_threads": torch.get_num_threads(), "tasks": {}}
    for name in args.tasks:
        ours, theirs, t_ours, t_theirs = [], [], 0.0, 0.0
        for seed in range(args.seeds):
            s, t = run_bertkit(name, args, seed)
            ours.append(s)
            t_ours += t
            s2, t2 = run_hf(name, args, seed)
            theirs.append(s2)
            t_theirs += t2
            print(f"{name} seed {seed}: bertkit {s:.4f} ({t:.0f}s)  transformers {s2:.4f} ({t2:.0f}s)", flush=True)
        r = {"metric": TASKS[name]["metric"], "bertkit": summary(ours), "transformers": summary(theirs),
             "bertkit_seconds": t_ours, "transformers_seconds": t_theirs, "time_ratio": t_ours / t_theirs}
        r["median_diff_points"] = 100 * (r["bertkit"]["median"] - r["transformers"]["median"])
        results["tasks"][name] = r
        print(f"{name} dev {r['metric']}: bertkit {r['bertkit']['median']:.4f} ± {r['bertkit']['std']:.4f} | "
              f"transformers {r['transformers']['median']:.4f} ± {r['transformers']['std']:.4f} | "
              f"diff {r['median_diff_points']:+.2f} points | time ratio bertkit/transformers "
              f"{r['time_ratio']:.2f}", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
