"""Fine-tune the MiniLM checkpoint on every shared task; print a results table (docs/RESULTS.md).

Per task: ``seeds`` runs of the fixed setting below (median ± std on dev, every seed kept), the
best seed on dev evaluated once on test; plus lee-sts Pearson / Spearman from the cosine of
mean-pooled embeddings (no training). Each task's OUT directory is a full task checkpoint with
metrics.json and predictions (see bertkit.finetune).

    .venv/bin/python bench/finetune_real.py --out runs/real --seeds 5            # the full protocol
    .venv/bin/python bench/finetune_real.py --tasks polarity wnut16 --seeds 1 \\
        --max-train-examples 800 --epochs 2 --max-seq-length 64                  # a CPU-sized slice

The equivalent CLI call for one task is printed before it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BERTKIT_SHARED_DATA", REPO.parent / "shared" / "data"))

# name -> (family, dir, train/dev/test file stem ext, settings). Settings follow the paper's grid
# (lr in {5e-5, 3e-5, 2e-5}, batch {16, 32}, epochs {2, 3, 4}); lengths fit each task's texts.
TASKS: dict[str, dict] = {
    "polarity": {
        "task": "classification",
        "ext": "tsv",
        "lr": 5e-5,
        "batch_size": 32,
        "epochs": 3,
        "max_seq_length": 128,
    },
    "boolq": {"task": "pair", "ext": "jsonl", "lr": 3e-5, "batch_size": 32, "epochs": 3, "max_seq_length": 256},
    "news20": {
        "task": "classification",
        "ext": "tsv",
        "lr": 5e-5,
        "batch_size": 32,
        "epochs": 3,
        "max_seq_length": 256,
    },
    "wnut16": {"task": "tagging", "ext": "conll", "lr": 5e-5, "batch_size": 16, "epochs": 3, "max_seq_length": 128},
    "disflqa": {"task": "qa", "ext": "json", "lr": 5e-5, "batch_size": 16, "epochs": 3, "max_seq_length": 384},
}
REPORT = {
    "classification": ("accuracy", "f1"),
    "pair": ("accuracy", "f1"),
    "tagging": ("f1", "accuracy"),
    "qa": ("exact_match", "f1"),
}


def split_file(name: str, split: str) -> str | None:
    """The task's split file, plain or gzipped (bench/pack_device_data.py gzips them)."""
    p = SHARED / "tasks" / name / f"{split}.{TASKS[name]['ext']}"
    for candidate in (p, p.with_name(p.name + ".gz")):
        if candidate.is_file():
            return str(candidate)
    return None


def _pair(metrics: dict, a: str, b: str) -> str:
    return f"{metrics[a]:.4f} / {metrics[b]:.4f}" if a in metrics and b in metrics else "-"


def cli_line(name: str, spec: dict, args: argparse.Namespace) -> str:
    parts = [
        ".venv/bin/bertkit finetune",
        f"--task {spec['task']}",
        f"--train {split_file(name, 'train')}",
        f"--dev {split_file(name, 'dev')}",
    ]
    if split_file(name, "test"):
        parts.append(f"--test {split_file(name, 'test')}")
    parts += [
        f"--init {args.init}",
        f"--out {Path(args.out) / name}",
        f"--lr {spec['lr']:g}",
        f"--batch-size {spec['batch_size']}",
        f"--epochs {spec['epochs']}",
        f"--max-seq-length {spec['max_seq_length']}",
        f"--seeds {args.seeds}",
    ]
    if args.seed:
        parts.append(f"--seed {args.seed}")
    if args.precision != "fp32":
        parts.append(f"--precision {args.precision}")
    if args.group_by_length:
        parts.append("--group-by-length")
    for flag, key in (("--max-train-examples", "max_train_examples"), ("--max-eval-examples", "max_eval_examples")):
        if getattr(args, key):
            parts.append(f"{flag} {getattr(args, key)}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    from bertkit.finetune import FinetuneConfig, finetune
    from bertkit.tasks.similarity import embedding_similarity

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASKS) + ["lee-sts"], choices=list(TASKS) + ["lee-sts"])
    p.add_argument("--init", default=str(SHARED / "checkpoints" / "minilm-l6-uncased"))
    p.add_argument("--out", default="runs/real")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="first seed (split the seeds over processes)")
    p.add_argument("--epochs", type=int, default=None, help="override every task's epochs")
    p.add_argument("--max-seq-length", type=int, default=None, help="override every task's length")
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--max-eval-examples", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--group-by-length", action="store_true", help="training batches of similar length")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars (logs)")
    args = p.parse_args(argv)
    if not Path(args.init).is_dir():
        print(f"no checkpoint at {args.init} (set BERTKIT_SHARED_DATA)", file=sys.stderr)
        return 2
    rows, results = [], {}
    for name in args.tasks:
        t0 = time.perf_counter()
        if name == "lee-sts":
            r = embedding_similarity(args.init, str(SHARED / "tasks" / "lee-sts" / "pairs.tsv"))
            results[name] = r
            rows.append(
                f"| lee-sts (cosine of mean-pooled embeddings, no training) | pearson / spearman | "
                f"{r['pearson']:.4f} / {r['spearman']:.4f} | - | - | {time.perf_counter() - t0:.0f} |"
            )
            continue
        spec = dict(TASKS[name])
        if args.epochs:
            spec["epochs"] = args.epochs
        if args.max_seq_length:
            spec["max_seq_length"] = args.max_seq_length
        print(cli_line(name, spec, args), flush=True)
        cfg = FinetuneConfig(
            task=spec["task"],
            train=split_file(name, "train"),
            dev=split_file(name, "dev"),
            test=split_file(name, "test"),
            init=args.init,
            out=str(Path(args.out) / name),
            lr=spec["lr"],
            batch_size=spec["batch_size"],
            epochs=spec["epochs"],
            max_seq_length=spec["max_seq_length"],
            seeds=args.seeds,
            seed=args.seed,
            group_by_length=args.group_by_length,
            device=args.device,
            precision=args.precision,
            max_train_examples=args.max_train_examples,
            max_eval_examples=args.max_eval_examples,
            progress=args.progress,
        )
        r = finetune(cfg)
        results[name] = {k: r[k] for k in ("dev", "test", "selected", "data") if k in r}
        main_key, second = REPORT[spec["task"]]
        dev = r["dev"]
        if second not in dev:  # more than two classes: macro F1
            second = "f1_macro"
        test = r.get("test", {})
        per_seed = ", ".join(f"{s[main_key]:.4f}" for s in dev["per_seed"])
        rows.append(
            f"| {name} ({spec['task']}, {r['data']['train']['examples']} train) | {main_key} / {second} | "
            f"{dev[main_key]:.4f} ± {dev['std'][main_key]:.4f} / {dev[second]:.4f} (seeds: {per_seed}) | "
            f"{_pair(test, main_key, second)} | "
            f"lr {spec['lr']:g}, batch {spec['batch_size']}, {spec['epochs']} ep, len {spec['max_seq_length']} | "
            f"{time.perf_counter() - t0:.0f} |"
        )
        print(rows[-1], flush=True)
    print("\n| task | metric | dev median ± std (per seed) | test (best dev seed) | setting | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
