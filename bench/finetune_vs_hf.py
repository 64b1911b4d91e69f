"""bertkit fine-tuning vs transformers, same checkpoint / data / hyper-parameters / seeds.

For each task (polarity: sequence classification, accuracy; wnut16: token classification,
seqeval entity F1; disflqa: SQuAD v2 extractive QA, F1 at the dev-tuned null threshold) and each
seed, fine-tune

* bertkit: ``bertkit.finetune.finetune`` (its own tokenizer, model and training loop), and
* transformers: ``AutoModelForSequenceClassification`` / ``AutoModelForTokenClassification`` /
  ``AutoModelForQuestionAnswering`` with transformers' fast tokenizer (QA: its overflowing windows
  and offset mapping, as transformers' ``run_qa.py`` example; doc stride 128 there means 128
  tokens of overlap, BERT's means 128 between window starts) and a plain PyTorch loop of the
  same recipe (AdamW beta 0.9/0.999, eps 1e-6, weight decay 0.01 except biases and LayerNorm,
  linear warmup + decay via ``get_linear_schedule_with_warmup``, gradient clipping 1.0, dynamic
  padding, dev evaluated after every epoch, the last epoch's dev score reported),

then print the median ± std of the dev metric for both, each seed, and the wall-clock ratio
(bertkit time / transformers time, both measured in this same process, one after the other).
QA also prints the answerable questions' F1 of the best non-null span, which shows span learning
even where the tuned threshold answers nothing.

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
    "disflqa": {"family": "qa", "dir": "disflqa", "ext": "json", "metric": "f1"},
}


def files(name: str) -> dict[str, str]:
    t = TASKS[name]
    d = SHARED / "tasks" / t["dir"]
    return {split: str(d / f"{split}.{t['ext']}") for split in ("train", "dev")}


# ----------------------------------------------------------------------------------- bertkit


def span_f1(examples, spans: list[str]) -> float:
    """Mean official F1 of the best non-null span over the answerable questions (0-1)."""
    from bertkit import metrics

    f1 = [max(metrics.squad_f1(s, a) for a, _ in e.answers) for e, s in zip(examples, spans) if e.answers]
    return float(np.mean(f1)) if f1 else 0.0


def run_bertkit(name: str, args: argparse.Namespace, seed: int) -> tuple[float, float, dict]:
    import tempfile

    import bertkit
    from bertkit.finetune import FinetuneConfig, finetune

    f = files(name)
    qa = TASKS[name]["family"] == "qa"
    with tempfile.TemporaryDirectory() as tmp:  # QA: the model is saved to read its spans back
        cfg = FinetuneConfig(
            task=TASKS[name]["family"],
            train=f["train"],
            dev=f["dev"],
            init=args.init,
            out=tmp if qa else None,
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            max_seq_length=args.max_seq_length,
            seed=seed,
            seeds=1,
            progress=False,
            max_train_examples=args.max_train_examples,
            max_eval_examples=args.max_eval_examples,
            device=args.device,
            warmup_ratio=args.warmup_ratio,
            precision=args.precision,
        )
        t0 = time.perf_counter()
        result = finetune(cfg)
        seconds = time.perf_counter() - t0
        score = float(result["dev"][TASKS[name]["metric"]])
        extra = {}
        if qa:
            score /= 100.0  # bertkit reports SQuAD EM/F1 in percent, as the official script
            examples, preds = bertkit.load(tmp).predict_examples(f["dev"], batch_size=64, progress=False, labelled=True)
            if args.max_eval_examples:
                examples, preds = examples[: args.max_eval_examples], preds[: args.max_eval_examples]
            extra["span_f1"] = span_f1(examples, [p["text"] for p in preds])
    return score, seconds, extra


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
        return [
            {
                "input_ids": enc["input_ids"][i],
                "attention_mask": enc["attention_mask"][i],
                "token_type_ids": enc["token_type_ids"][i],
                "labels": label2id[e.label],
            }
            for i, e in enumerate(examples)
        ], None
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
        feats.append(
            {
                "input_ids": enc["input_ids"][i],
                "attention_mask": enc["attention_mask"][i],
                "token_type_ids": enc["token_type_ids"][i],
                "labels": labels,
            }
        )
        word_maps.append([first.get(j, -1) for j in range(len(s.words))])
    return feats, word_maps


def _hf_qa_encode(tok, examples, max_len, training):
    """transformers' ``run_qa.py`` featurisation: windows of the context with 128 tokens of
    overlap; a training answer not wholly inside a window (or no answer) points at [CLS]."""
    enc = tok(
        [e.question.lstrip() for e in examples],
        [e.context for e in examples],
        truncation="only_second",
        max_length=max_len,
        stride=128,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    feats, meta = [], []
    for i in range(len(enc["input_ids"])):
        ex_i = enc["overflow_to_sample_mapping"][i]
        seq_ids = enc.sequence_ids(i)
        offsets = [o if seq_ids[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][i])]
        f = {
            "input_ids": enc["input_ids"][i],
            "attention_mask": enc["attention_mask"][i],
            "token_type_ids": enc["token_type_ids"][i],
        }
        if training:
            f["start_positions"] = f["end_positions"] = 0
            ex = examples[ex_i]
            if ex.answers and not ex.is_impossible:
                text, c0 = ex.answers[0]
                c1 = c0 + len(text)
                ctx = [k for k, o in enumerate(offsets) if o is not None]
                if offsets[ctx[0]][0] <= c0 and offsets[ctx[-1]][1] >= c1:
                    f["start_positions"] = next(k for k in ctx if offsets[k][1] > c0)
                    f["end_positions"] = next(k for k in reversed(ctx) if offsets[k][0] < c1)
        feats.append(f)
        meta.append((ex_i, offsets))
    return feats, meta


def _hf_qa_score(examples, meta, logits, n_best=20, max_answer=30) -> tuple[float, dict]:
    """transformers' ``postprocess_qa_predictions`` (v2: null = min [CLS] score over windows),
    scored with the official EM/F1 at the null threshold tuned on these examples; and the
    best spans' F1 on the answerable questions."""
    from bertkit.tasks import get_task

    best = [{"text": "", "score": -np.inf, "null": np.inf} for _ in examples]
    for (ex_i, offsets), (start, end) in zip(meta, logits):
        start, end = start[: len(offsets)], end[: len(offsets)]  # drop the batch padding
        b = best[ex_i]
        b["null"] = min(b["null"], float(start[0] + end[0]))
        for i in np.argsort(-start)[:n_best]:
            for j in np.argsort(-end)[:n_best]:
                if offsets[i] is None or offsets[j] is None or j < i or j - i + 1 > max_answer:
                    continue
                if float(start[i] + end[j]) > b["score"]:
                    b["score"] = float(start[i] + end[j])
                    b["text"] = examples[ex_i].context[offsets[i][0] : offsets[j][1]]
    preds = [
        {"text": b["text"], "null_score_diff": b["null"] - b["score"] if np.isfinite(b["score"]) else 1e9} for b in best
    ]
    task = get_task("qa")  # bertkit's scoring only: threshold tuned on these examples, official EM/F1
    task.settings["version_2"] = any(e.is_impossible for e in examples)
    f1 = task.score(examples, preds, tune=True)["f1"] / 100.0
    return f1, {"span_f1": span_f1(examples, [b["text"] for b in best])}


def _pad(batch, pad_id):
    T = max(len(b["input_ids"]) for b in batch)
    out = {}
    for key, fill in (("input_ids", pad_id), ("attention_mask", 0), ("token_type_ids", 0)):
        out[key] = torch.tensor([b[key] + [fill] * (T - len(b[key])) for b in batch])
    for key in ("labels", "start_positions", "end_positions"):
        if key not in batch[0]:
            continue
        if isinstance(batch[0][key], list):
            out[key] = torch.tensor([b[key] + [-100] * (T - len(b[key])) for b in batch])
        else:
            out[key] = torch.tensor([b[key] for b in batch])
    return out


def run_hf(name: str, args: argparse.Namespace, seed: int) -> tuple[float, float, dict]:
    import transformers
    from seqeval.metrics import f1_score

    t0 = time.perf_counter()
    family = TASKS[name]["family"]
    train_ex, dev_ex = _examples(name, "train", args, seed), _examples(name, "dev", args, seed)
    if family == "classification":
        labels = sorted({e.label for e in train_ex}, key=float)
    elif family == "tagging":
        labels = sorted({t for s in train_ex for t in s.tags})
    else:
        labels = []
    label2id = {lab: i for i, lab in enumerate(labels)}
    tok = transformers.AutoTokenizer.from_pretrained(args.init)
    if family == "qa":
        train, _ = _hf_qa_encode(tok, train_ex, args.max_seq_length, training=True)
        dev, dev_maps = _hf_qa_encode(tok, dev_ex, args.max_seq_length, training=False)
    else:
        train, _ = _hf_encode(name, tok, train_ex, label2id, args.max_seq_length)
        dev, dev_maps = _hf_encode(name, tok, dev_ex, label2id, args.max_seq_length)
    unk = sum(x == tok.unk_token_id for f in train for x in f["input_ids"]) / sum(len(f["input_ids"]) for f in train)
    assert unk < 0.05, f"transformers tokenizer maps {unk:.0%} of pieces to [UNK]: not the real vocabulary"

    transformers.set_seed(seed)
    if family == "qa":
        model = transformers.AutoModelForQuestionAnswering.from_pretrained(
            args.init, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1
        )
    else:
        cls = (
            transformers.AutoModelForSequenceClassification
            if family == "classification"
            else transformers.AutoModelForTokenClassification
        )
        model = cls.from_pretrained(
            args.init,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id=label2id,
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
        )
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    model.to(device)
    # The same mixed precision as bertkit's --precision bf16: bf16 autocast, fp32 weights and optimizer.
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.999),
        eps=1e-6,
    )
    steps_per_epoch = (len(train) + args.batch_size - 1) // args.batch_size
    total = steps_per_epoch * args.epochs
    sched = transformers.get_linear_schedule_with_warmup(opt, int(round(args.warmup_ratio * total)), total)
    g = torch.Generator().manual_seed(seed)
    score, extra = 0.0, {}
    for _epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train), generator=g).tolist()
        for s in range(0, len(order), args.batch_size):
            batch = {
                k: v.to(device)
                for k, v in _pad([train[i] for i in order[s : s + args.batch_size]], tok.pad_token_id).items()
            }
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
                chunk = dev[s : s + 64]
                batch = {
                    k: v.to(device)
                    for k, v in _pad(chunk, tok.pad_token_id).items()
                    if k in ("input_ids", "attention_mask", "token_type_ids")
                }
                out = model(**batch)
                if family == "qa":
                    preds.extend(zip(out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()))
                else:
                    preds.extend(out.logits.float().cpu().argmax(-1).tolist())
        if family == "qa":
            score, extra = _hf_qa_score(dev_ex, dev_maps, preds)
        elif family == "classification":
            score = float(np.mean([labels[p] == e.label for p, e in zip(preds, dev_ex)]))
        else:
            fallback = "O"
            pred_tags = [[labels[p[i]] if i >= 0 else fallback for i in m] for p, m in zip(preds, dev_maps)]
            score = float(f1_score([s.tags for s in dev_ex], pred_tags))
    return score, time.perf_counter() - t0, extra


# ----------------------------------------------------------------------------------- main


def summary(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "per_seed": values,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--init", default=str(SHARED / "checkpoints" / "minilm-l6-uncased"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument(
        "--seed", type=int, default=0, help="first seed (seeds SEED .. SEED+SEEDS-1: split seeds over processes)"
    )
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--max-eval-examples", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="both sides: bf16 autocast (fp32 weights) or plain fp32",
    )
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
    import bertkit.training.loop  # noqa: F401

    results = {"config": vars(args), "torch_threads": torch.get_num_threads(), "tasks": {}}
    for name in args.tasks:
        ours, theirs, t_ours, t_theirs, x_ours, x_theirs = [], [], 0.0, 0.0, [], []
        for seed in range(args.seed, args.seed + args.seeds):
            s, t, x = run_bertkit(name, args, seed)
            ours.append(s)
            t_ours += t
            x_ours.append(x)
            s2, t2, x2 = run_hf(name, args, seed)
            theirs.append(s2)
            t_theirs += t2
            x_theirs.append(x2)
            spans = f"  span F1 bertkit {x['span_f1']:.4f} transformers {x2['span_f1']:.4f}" if x else ""
            print(
                f"{name} seed {seed}: bertkit {s:.4f} ({t:.0f}s)  transformers {s2:.4f} ({t2:.0f}s){spans}", flush=True
            )
        r = {
            "metric": TASKS[name]["metric"],
            "bertkit": summary(ours),
            "transformers": summary(theirs),
            "bertkit_seconds": t_ours,
            "transformers_seconds": t_theirs,
            "time_ratio": t_ours / t_theirs,
        }
        if x_ours and x_ours[0]:
            r["span_f1"] = {
                "bertkit": summary([x["span_f1"] for x in x_ours]),
                "transformers": summary([x["span_f1"] for x in x_theirs]),
            }
        r["median_diff_points"] = 100 * (r["bertkit"]["median"] - r["transformers"]["median"])
        results["tasks"][name] = r
        print(
            f"{name} dev {r['metric']}: bertkit {r['bertkit']['median']:.4f} ± {r['bertkit']['std']:.4f} | "
            f"transformers {r['transformers']['median']:.4f} ± {r['transformers']['std']:.4f} | "
            f"diff {r['median_diff_points']:+.2f} points | time ratio bertkit/transformers "
            f"{r['time_ratio']:.2f}",
            flush=True,
        )
        if "span_f1" in r:
            print(
                f"{name} dev best-span F1 (answerable): bertkit {r['span_f1']['bertkit']['median']:.4f} | "
                f"transformers {r['span_f1']['transformers']['median']:.4f}",
                flush=True,
            )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
