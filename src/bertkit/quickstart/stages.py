"""Stages 2-6 of the quickstart as calls into the other modules, one small function each:
the precision, the vocabulary, the prepared data, pre-training on a wall-clock budget (the
learning-rate schedule follows the fraction of the budget spent), one fine-tuning run, the
linear probe; and what the report reads back from their files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch
from safetensors import safe_open

from bertkit import runtime
from bertkit.config import BertConfig
from bertkit.fileio import atomic_write_json, iter_jsonl, read_json
from bertkit.finetune import FinetuneConfig, finetune
from bertkit.heads import BertForPreTraining
from bertkit.model import BertModel
from bertkit.pretrain import PretrainConfig, pretrain, read_manifest
from bertkit.pretraining.format import PrepareOptions
from bertkit.pretraining.loader import PretrainingLoader
from bertkit.pretraining.prepare import prepare
from bertkit.probe import probe_encoder_correct
from bertkit.quickstart.options import QuickstartOptions
from bertkit.tasks import get_task
from bertkit.tokenization import Tokenizer, train_vocab


def choose_precision(requested: str) -> str:
    """``auto`` -> bf16 when a bf16 matmul runs and is faster than fp32 here, else fp32."""
    if requested != "auto":
        return requested

    device = runtime.choose_device("auto")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        bf16 = runtime.measure_matmul_flops(device, "bf16", n=512, reps=4)
        fp32 = runtime.measure_matmul_flops(device, "fp32", n=512, reps=4)
    except RuntimeError:
        return "fp32"
    return "bf16" if bf16 > 1.2 * fp32 else "fp32"


def run_vocab(opts: QuickstartOptions, data: dict, directory: Path) -> dict:
    tok = train_vocab(data["corpus_files"], vocab_size=opts.vocab_size, lowercase=True)
    tok.save(directory)
    rep = getattr(tok, "training_report", None)
    return {
        "tokenizer_dir": str(directory),
        "vocab_size": len(tok),
        "report": rep.to_dict() if rep is not None else None,
    }


def run_prepare(opts: QuickstartOptions, data: dict, vocab: dict, directory: Path) -> dict:
    options = PrepareOptions(max_seq_length=opts.max_seq_length, dupe_factor=opts.dupe_factor, masking="dynamic")
    manifest = prepare(data["corpus_files"], vocab["tokenizer_dir"], directory / "data", options, workers=opts.workers)
    return {"data_dir": str(directory / "data"), "counts": manifest.get("counts", {})}


EVAL_BATCHES = 20  # validation batches scored at the end of pre-training
CHECKPOINT_MINUTES = 10.0  # a long budget keeps a checkpoint this often, so a crash loses little
WARMUP_FRACTION = 0.1  # of the budget: linear warmup, then linear decay to 0 when the budget ends
SCHEDULE_UNITS = 1000  # the time-driven schedule's resolution: its value changes every 0.1% of the budget
LOG_RECORDS = 200  # about this many train records per pre-training run


def _train_seconds(history: list[dict]) -> tuple[list[dict], float]:
    """Train records of a Trainer history with cumulative training time ``time_s`` added.

    Each record covers the steps since the previous one; its duration is the tokens it saw
    divided by its tokens/s. Evaluation and checkpoint time are not included.
    """
    out, t, seen = [], 0.0, 0
    for h in history:
        if h.get("kind") != "train":
            continue
        tokens = h["tokens_seen"] - seen
        seen = h["tokens_seen"]
        t += tokens / max(h["tokens_per_s"], 1e-9)
        out.append(
            {
                "step": h["step"],
                "time_s": round(t, 3),
                "loss": h["loss"],
                "mlm_acc": h.get("mlm_acc"),
                "nsp_acc": h.get("nsp_acc"),
                "lr": h.get("lr"),
            }
        )
    return out, t


def run_pretrain(
    opts: QuickstartOptions,
    vocab: dict,
    prepared: dict,
    precision: str,
    expected_step_s: float,
    directory: Path,
    resume: bool,
) -> dict:
    """Pre-train for ``opts.budget_s`` seconds of wall-clock time.

    The learning-rate schedule runs on the fraction of the budget spent (the training loop's
    ``time_budget_s``, as cramming's budget schedules), so a machine that gets busier mid-run
    takes fewer steps but still warms up, decays to 0 and stops when the budget is spent.
    The schedule is defined in SCHEDULE_UNITS units of the budget, whatever the speed;
    ``expected_step_s`` (timed before the run) only sizes the logging interval (``plan.json``,
    read back on resume with the loop's elapsed time from its checkpoint, so a resumed run
    continues the same schedule and log).
    """
    run_dir = directory / "run"
    if opts.budget_s <= 0:
        return _untrained_model(opts, vocab, prepared, directory)
    plan_file = directory / "plan.json"
    if resume and plan_file.is_file():
        plan = read_json(plan_file)
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        expected = max(1, int(opts.budget_s / max(expected_step_s, 1e-6)))
        plan = {"budget_s": opts.budget_s, "expected_step_s": expected_step_s, "expected_steps": expected}
        atomic_write_json(plan_file, plan)
    cfg = PretrainConfig(
        data=prepared["data_dir"],
        out=str(run_dir),
        model=opts.model,
        tokenizer=vocab["tokenizer_dir"],
        max_steps=SCHEDULE_UNITS,  # with time_budget_s: the schedule's units, not a step count
        time_budget_s=opts.budget_s,
        batch_size=opts.batch_size,
        lr=opts.lr,
        warmup_steps=int(WARMUP_FRACTION * SCHEDULE_UNITS),
        precision=precision,
        device=opts.device,
        save_every=0,
        save_every_minutes=CHECKPOINT_MINUTES,  # re-running the quickstart resumes from the newest
        eval_every=0,
        eval_batches=EVAL_BATCHES,
        log_every=max(1, plan["expected_steps"] // LOG_RECORDS),
        keep_last=1,
        seed=0,
    )
    t0 = time.perf_counter()
    summary = pretrain(cfg, resume=resume)
    # the loop's own count covers every process of the run (up to its checkpoints); this
    # process's wall time adds model building, the final evaluation and checkpoint
    train_s = summary.get("elapsed_s", 0.0)
    seconds = max(time.perf_counter() - t0, train_s)
    return {
        "model_dir": summary["checkpoint"],
        "model": opts.model,
        "params": count_parameters(summary["checkpoint"]),
        "steps": summary["step"],
        "seconds": round(seconds, 1),
        "train_s": round(train_s, 1),
        "budget_s": opts.budget_s,
        "schedule": f"on the fraction of the budget spent: linear warmup over {WARMUP_FRACTION:.0%}, "
        "linear decay to 0 at its end",
        "precision": precision,
        "plan": plan,
        "history": _merged_history(run_dir),
        "eval": summary.get("eval", {}),
        "tokens_seen": summary.get("tokens_seen"),
        "mlm_majority_acc": mlm_majority_baseline(prepared["data_dir"], opts.batch_size, EVAL_BATCHES),
    }


TIED_DECODER = "cls.predictions.decoder.weight"  # saved as a copy of the word embeddings


def count_parameters(model_dir: str | Path) -> int:
    """Parameters in a checkpoint's ``model.safetensors`` (read from its header, no tensors
    loaded), the MLM decoder's copy of the tied word embeddings counted once."""
    n = 0
    with safe_open(str(Path(model_dir) / "model.safetensors"), framework="pt") as f:
        for k in f.keys():
            if k == TIED_DECODER:
                continue
            shape = f.get_slice(k).get_shape()
            size = 1
            for d in shape:
                size *= d
            n += size
    return n


def mlm_majority_baseline(data_dir: str, batch_size: int, n_batches: int, seed: int = 0) -> float | None:
    """Accuracy of always guessing the most frequent masked token on the validation batches that
    pre-training's evaluation scores (the same unshuffled batches and masks): the floor MLM
    accuracy has to clear before the encoder has learned more than word frequencies. The most
    frequent token is taken from those batches themselves, so the floor is if anything high."""
    manifest = read_manifest(data_dir)
    n_val = manifest["splits"]["validation"]["num_instances"]
    if n_val == 0:
        return None
    loader = PretrainingLoader(
        data_dir, split="validation", batch_size=min(batch_size, n_val), rank=0, world_size=1, seed=seed, shuffle=False
    )
    counts = torch.zeros(manifest["vocab_size"], dtype=torch.long)
    for i, batch in enumerate(loader.one_pass()):
        if i == n_batches:
            break
        labels = batch["mlm_labels"]
        counts += torch.bincount(labels[labels != -100], minlength=len(counts))
    total = int(counts.sum())
    return int(counts.max()) / total if total else None


def _merged_history(run_dir: Path) -> list[dict]:
    """Train records of the whole run (every process, after a resume too) from its metrics.jsonl."""
    f = run_dir / "metrics.jsonl"
    records = [obj for _, obj in iter_jsonl(f)] if f.is_file() else []
    hist, _ = _train_seconds(records)
    return hist


def _untrained_model(opts: QuickstartOptions, vocab: dict, prepared: dict, directory: Path) -> dict:
    """Budget 0: the randomly initialised model, saved like a pre-training checkpoint."""
    tok = Tokenizer.from_pretrained(vocab["tokenizer_dir"])
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig.from_preset(opts.model, vocab_size=len(tok)))
    model.save_pretrained(directory / "model", tokenizer=tok)
    return {
        "model_dir": str(directory / "model"),
        "model": opts.model,
        "steps": 0,
        "seconds": 0.0,
        "budget_s": 0,
        "precision": None,
        "history": [],
        "eval": {},
    }


def run_finetune(opts: QuickstartOptions, data: dict, init: dict, seed: int, precision: str, directory: Path) -> dict:
    """One fine-tuning run; ``init`` is {"init": DIR} or {"model_config": {...}, "tokenizer": DIR}."""
    files = data["task_files"]
    cfg = FinetuneConfig(
        task="classification",
        train=files["train"],
        dev=files["dev"],
        test=files.get("test"),
        out=str(directory / "model"),
        epochs=opts.ft_epochs,
        lr=opts.ft_lr,
        batch_size=opts.ft_batch_size,
        max_seq_length=opts.ft_max_seq_length,
        seeds=1,
        seed=seed,
        precision=precision,
        overwrite=True,  # the stage's own directory: a run killed after writing it is redone
        device=opts.device,
        **init,
    )
    return _finetune_run_record(finetune(cfg), seed, directory / "model")


def run_probe(opts: QuickstartOptions, data: dict, inits: dict[str, dict]) -> dict:
    """Dev accuracy of a linear probe on each init's frozen, mean-pooled features (random
    weights seeded 0 for the from-scratch config): has pre-training learned anything the task
    can use yet, apart from fine-tuning noise? Also each dev example's outcome, for a paired
    comparison of the probes."""
    task = get_task("classification")
    train, dev = (task.read(data["task_files"][s]) for s in ("train", "dev"))
    labels = task.label_list(train)
    split = [([e.text for e in x], [labels.index(e.label) for e in x]) for x in (train, dev)]
    accuracy, correct = {}, {}
    for name, spec in inits.items():
        if "init" in spec:
            model, tok = BertModel.from_pretrained(spec["init"]), Tokenizer.from_pretrained(spec["init"])
        else:
            torch.manual_seed(0)
            model = BertModel(BertConfig.from_dict(spec["model_config"]))
            tok = Tokenizer.from_pretrained(spec["tokenizer"])
        c = probe_encoder_correct(model.eval(), tok, split[0], split[1], opts.ft_max_seq_length)
        accuracy[name], correct[name] = float(c.mean()), _bits(c)
    return {"accuracy": accuracy, "dev_correct": correct}


def _bits(flags) -> str:
    """Per-example outcomes as a compact string of 0/1 (report.json keeps every run's)."""
    return "".join("1" if f else "0" for f in flags)


def _finetune_run_record(metrics: dict, seed: int, model_dir: Path | None = None) -> dict:
    """The report's view of one run: final dev/test accuracy, dev accuracy per epoch, the
    training loss by epoch and each dev example's outcome (from the run's files, when there)."""
    dev = metrics.get("dev", {})
    test = metrics.get("test", {})
    epochs = [
        {"epoch": e["epoch"], "dev_accuracy": e["accuracy"]} for e in metrics.get("dev_history", []) if "accuracy" in e
    ]
    rec = {
        "seed": seed,
        "dev_accuracy": dev.get("accuracy"),
        "test_accuracy": test.get("accuracy"),
        "epochs": epochs,
        "seconds": metrics.get("elapsed_s"),
    }
    if model_dir is not None:
        preds = model_dir / "predictions_dev.jsonl"
        if preds.is_file():
            rec["dev_correct"] = _bits(r.get("label") == r.get("gold") for _, r in iter_jsonl(preds))
        rec["train_loss"] = _train_loss_by_epoch(model_dir, metrics)
    return rec


def _train_loss_by_epoch(model_dir: Path, metrics: dict) -> list[list[float]]:
    """``[[epoch, loss], ...]`` from the selected run's log (``runs/NAME/metrics.jsonl``)."""
    sel = metrics.get("selected") or {}
    runs = sorted((model_dir / "runs").glob("*/metrics.jsonl"))
    if not runs or not sel.get("steps") or not sel.get("epochs"):
        return []
    per_epoch = sel["steps"] / sel["epochs"]
    return [
        [round(r["step"] / per_epoch, 3), r["loss"]]
        for _, r in iter_jsonl(runs[-1])
        if r.get("kind") == "train" and r.get("loss") is not None
    ]


def scratch_model_config(pretrained_dir: str) -> dict:
    """The pre-trained model's exact config, for the from-scratch baseline (random weights)."""
    d = BertConfig.from_pretrained(pretrained_dir).to_dict()
    d.pop("id2label", None)
    d.pop("label2id", None)
    return d
