"""Fine-tune, evaluate and predict for every task family, on the one training loop.

::

    from bertkit.finetune import FinetuneConfig, finetune, evaluate, predict
    result = finetune(FinetuneConfig(task="classification", train="train.tsv", dev="dev.tsv",
                                     test="test.tsv", init="checkpoints/minilm", out="runs/sst2"))
    result["dev"]["accuracy"], result["test"]["accuracy"], result["dev_history"]

Recipe (the BERT paper's): AdamW, linear decay after 10% warmup, dropout 0.1, learning rate in
{5e-5, 3e-5, 2e-5}, batch {16, 32}, epochs {2, 3, 4}. ``search=True`` runs that grid;
``seeds=N`` runs every setting with N seeds. A setting is scored by the median dev value of the
task's main metric over its seeds; the best setting's best seed is the selected model (best on
dev), evaluated on the test file once and saved as the task checkpoint in ``out``:

``out/`` = ``config.json`` (with ``id2label`` / ``label2id``) + ``model.safetensors`` + tokenizer
files + ``task.json`` (task family and its settings) + ``metrics.json`` + ``predictions_dev.jsonl``
(+ ``predictions_test.jsonl``) + ``runs/NAME/metrics.jsonl`` (the training loop's log per run).

``metrics.json``: ``{"dev": {metric: median over seeds, ..., "std": {...}, "per_seed": [...]},
"test": {metric: value, ...}, "selected": {...}, "dev_history": [per-epoch dev metrics], ...}``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit import heads, outputs, runtime
from bertkit.config import BertConfig
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_dir, atomic_write_json
from bertkit.inference import load
from bertkit.metrics import median_std
from bertkit.settings import TASK_BATCH_SIZE, Precision, TaskName
from bertkit.tasks import TASKS, get_task
from bertkit.tasks.base import Task
from bertkit.tasks.batching import EpochLoader
from bertkit.tasks.checkpoints import (
    check_seq_length,
    resolve_init,
    save_task_model,
    write_predictions,
)
from bertkit.tokenization import Tokenizer
from bertkit.training.config import TrainConfig
from bertkit.training.loop import Trainer
from bertkit.training.runlog import write_run_log

METRICS_FILE = "metrics.json"
# The BERT paper's fine-tuning grid (Appendix A.3).
PAPER_LRS = (5e-5, 3e-5, 2e-5)
PAPER_BATCH_SIZES = (16, 32)
PAPER_EPOCHS = (2, 3, 4)


@dataclass
class FinetuneConfig:
    """Everything a fine-tuning run needs; the CLI fills it from flags, the quickstart directly.

    ``init`` is any checkpoint directory (bertkit pre-training run, bertkit task checkpoint, HF
    BERT directory). For a from-scratch baseline leave ``init`` empty and give ``model_config``
    (``BertConfig`` keys, or ``{"preset": "mini", ...}``) and ``tokenizer`` (a directory with
    ``vocab.txt``): the encoder starts from random weights.
    """

    task: TaskName  # task family
    train: str  # training file
    dev: str  # dev file: model and setting selection, reported medians
    test: str | None = None  # test file, scored once with the selected model
    init: str | None = None  # checkpoint directory: a bertkit pre-training run, a HF BERT directory, ...
    model_config: dict[str, Any] | None = None
    tokenizer: str | None = None
    out: str | None = None  # output directory: task checkpoint, metrics.json, predictions
    epochs: int = 3  # training epochs
    lr: float = 3e-5  # peak learning rate
    batch_size: int = 32  # training batch size
    warmup_ratio: float = 0.1  # fraction of the steps with linear warmup
    dropout: float = 0.1  # hidden and attention dropout
    weight_decay: float = 0.01  # AdamW decay (none on biases and LayerNorm)
    max_seq_length: int | None = None  # tokens per example (default: the task's, at most the model's positions)
    seeds: int = 1  # seeds per setting (median ± std reported)
    seed: int = 0  # first seed; the others are seed+1, seed+2, ...
    search: bool = False  # grid search over search_lrs x search_batch_sizes x search_epochs
    search_lrs: Sequence[float] = PAPER_LRS
    search_batch_sizes: Sequence[int] = PAPER_BATCH_SIZES
    search_epochs: Sequence[int] = PAPER_EPOCHS
    task_settings: dict[str, Any] = field(default_factory=dict)  # column names, QA lengths, ...
    max_train_examples: int | None = None  # train on a seeded random subset of this size
    max_eval_examples: int | None = None  # first N dev / test examples only (quick runs)
    max_steps: int | None = None  # cap on optimizer steps per run (quick runs)
    eval_batch_size: int = TASK_BATCH_SIZE  # batch size of dev / test predictions
    group_by_length: bool = False  # training batches of similar length: less padding, much faster where lengths vary (BoolQ ~3x); still shuffled, every example once per epoch
    device: str = TrainConfig.device  # auto | cpu | cuda | cuda:N
    precision: Precision = TrainConfig.precision  # bf16: autocast (CPU+CUDA); fp16: autocast + loss scaling (for CUDA)
    progress: bool = True  # progress bars
    overwrite: bool = False  # replace a fine-tuned model bertkit wrote in --out before (never an input)

    def validate(self) -> None:
        if self.task not in TASKS:
            raise BertkitError(f"unknown task {self.task!r} (choose from {', '.join(TASKS)})")
        if self.init is None and (self.model_config is None or self.tokenizer is None):
            raise BertkitError("give --init DIR (a checkpoint), or model_config + tokenizer for random init")
        if self.init is not None and self.model_config is not None:
            raise BertkitError("give either init (a checkpoint) or model_config (random init), not both")
        for name in ("epochs", "batch_size", "seeds", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise BertkitError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise BertkitError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.dropout < 1:
            raise BertkitError(f"dropout must be a probability in [0, 1), got {self.dropout}")
        if self.weight_decay < 0:
            raise BertkitError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.warmup_ratio < 1:
            raise BertkitError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_seq_length is not None and self.max_seq_length < 8:
            raise BertkitError(f"max_seq_length must be >= 8, got {self.max_seq_length}")

    def grid(self) -> list[tuple[float, int, int]]:
        """(lr, batch_size, epochs) settings to run: the paper grid with ``search``, else one."""
        if self.search:
            return [(lr, b, e) for lr in self.search_lrs for b in self.search_batch_sizes for e in self.search_epochs]
        return [(self.lr, self.batch_size, self.epochs)]


# ------------------------------------------------------------------------------------------ data


@dataclass
class Split:
    """A file's examples and features."""

    path: str
    examples: list
    features: Any


def _subset(examples: list, n: int | None, seed: int, random_pick: bool) -> list:
    if n is None or n >= len(examples):
        return examples
    if not random_pick:
        return examples[:n]
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def _featurize(task: Task, path: str, examples: list, tok: Any, label2id, training: bool) -> Any:
    feats = task.featurize(examples, tok, label2id, training)
    if feats.n_truncated:
        runtime.log(
            f"{path}: {feats.n_truncated} of {feats.n_examples} examples truncated "
            f"(max_seq_length {task.settings['max_seq_length']})"
        )
    return feats


def _model_positions(cfg: FinetuneConfig) -> tuple[int, str]:
    """``(max_position_embeddings, where it comes from)`` of the model ``cfg`` will fine-tune."""
    if cfg.init is not None:
        return BertConfig.from_pretrained(cfg.init).max_position_embeddings, str(Path(cfg.init) / "config.json")
    mc = dict(cfg.model_config or {})
    preset = mc.pop("preset", None)
    base = BertConfig.from_preset(preset) if preset else BertConfig()
    return int(mc.get("max_position_embeddings", base.max_position_embeddings)), "the model config"


# ------------------------------------------------------------------------------------------ model


def build_model(task: Task, cfg: FinetuneConfig, labels: list[str] | None, vocab_size: int, seed: int):
    """The task's head model from ``cfg.init`` (or random weights), its head seeded by ``seed``."""
    runtime.seed_everything(seed)
    cls = getattr(heads, task.head)
    overrides: dict[str, Any] = {"hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.dropout}
    if labels:
        overrides["id2label"] = {i: lab for i, lab in enumerate(labels)}
    else:
        overrides["num_labels"] = task.num_outputs(None)
    if cfg.init is not None:
        return cls.from_pretrained(cfg.init, ignore_mismatched_sizes=True, **overrides)
    mc = dict(cfg.model_config or {})
    preset = mc.pop("preset", None)
    mc.update(overrides, vocab_size=vocab_size)
    if "num_labels" in mc and labels:
        del mc["num_labels"]
    bc = BertConfig.from_preset(preset, **mc) if preset else BertConfig.from_dict(mc)
    return cls(bc)


# ------------------------------------------------------------------------------------------ runs


def _aggregate(per_seed: list[dict]) -> dict[str, Any]:
    """Median of every numeric metric over seeds, their std, and the per-seed values."""
    keys = [k for k, v in per_seed[0]["metrics"].items() if isinstance(v, (int, float))]
    out: dict[str, Any] = {}
    std: dict[str, float] = {}
    for k in keys:
        out[k], std[k] = median_std([float(r["metrics"][k]) for r in per_seed])
    out["std"] = std
    out["per_seed"] = [{"seed": r["seed"], **r["metrics"]} for r in per_seed]
    return out


class _Runner:
    """Runs one (setting, seed) fine-tuning and keeps what the selection needs."""

    def __init__(
        self, cfg: FinetuneConfig, task: Task, tok: Any, labels, train: Split, dev: Split, log_root: Path | None
    ):
        self.cfg, self.task, self.tok, self.labels = cfg, task, tok, labels
        self.train, self.dev = train, dev
        self.log_root = log_root
        self.id2label = {i: lab for i, lab in enumerate(labels)} if labels else None

    def evaluate_dev(self, model) -> tuple[dict, list]:
        preds = self.task.predict(
            model, self.dev.features, self.dev.examples, self.id2label, self.cfg.eval_batch_size, self.tok.pad_id
        )
        return self.task.score(self.dev.examples, preds, tune=True), preds

    def run(self, lr: float, batch_size: int, epochs: int, seed: int) -> dict:
        cfg, task = self.cfg, self.task
        model = build_model(task, cfg, self.labels, len(self.tok), seed)
        loader = EpochLoader(
            self.train.features, batch_size, self.tok.pad_id, seed=seed, group_by_length=self.cfg.group_by_length
        )
        steps = epochs * loader.steps_per_epoch
        if cfg.max_steps is not None:
            steps = min(steps, cfg.max_steps)
        name = f"lr{lr:g}-b{batch_size}-e{epochs}-s{seed}"
        history: list[dict] = []

        last_preds: list = []

        def eval_fn(m) -> dict[str, float]:
            metrics, preds = self.evaluate_dev(m)
            last_preds[:] = [preds]
            epoch = loader.epoch + loader.position / loader.steps_per_epoch
            history.append({"epoch": round(epoch, 3), **metrics})
            return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}

        tcfg = TrainConfig(
            max_steps=steps,
            lr=lr,
            warmup_steps=int(round(cfg.warmup_ratio * steps)),
            schedule="linear",
            optimizer="adamw",
            weight_decay=cfg.weight_decay,
            max_grad_norm=1.0,
            precision=cfg.precision,
            device=cfg.device,
            eval_every=loader.steps_per_epoch,
            seed=seed,
            progress=cfg.progress,
            log_every=max(1, min(50, loader.steps_per_epoch // 4)),
            tensorboard=False,
        )
        runtime.log(f"fine-tune {name}: {len(self.train.examples)} train examples, {steps} steps")
        start = time.perf_counter()
        # No out_dir: the loop would write a resumable checkpoint (weights + optimizer) per run,
        # which fine-tuning does not need; its log records are written below instead.
        trainer = Trainer(model, tcfg, task.loss, loader, out_dir=None, tokenizer=self.tok, eval_fn=eval_fn)
        summary = trainer.fit()
        if self.log_root is not None:
            write_run_log(self.log_root / name, summary["history"])
        final = history[-1] if history else {}
        train_losses = [h["loss"] for h in summary["history"] if h.get("kind") == "train"]
        return {
            "name": name,
            "lr": lr,
            "batch_size": batch_size,
            "epochs": epochs,
            "seed": seed,
            "steps": steps,
            "metrics": {k: v for k, v in final.items() if k != "epoch"},
            "epoch_history": history,
            "train_loss_first": train_losses[0] if train_losses else None,
            "train_loss_last": train_losses[-1] if train_losses else None,
            "time_s": time.perf_counter() - start,
            "model": trainer.model,
            "dev_predictions": last_preds[0] if last_preds else None,
        }


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune per ``cfg``; write the task checkpoint + reports to ``cfg.out`` (when given).

    Returns the ``metrics.json`` content (plus ``"out"``): dev medians / std / per-seed, test
    metrics of the selected model, the selected setting, per-epoch dev history of every run,
    and per-setting medians when searching.
    """
    cfg.validate()
    given_init = cfg.init
    if cfg.init is not None:
        cfg = dataclasses.replace(cfg, init=resolve_init(cfg.init))
    if cfg.out is None:
        return _finetune(cfg)
    inputs = [cfg.train, cfg.dev, cfg.test, given_init, cfg.init, cfg.tokenizer]
    outputs.check_output_dir(cfg.out, "finetune", inputs=inputs, overwrite=cfg.overwrite, need_bytes=_output_bytes(cfg))
    with outputs.exclusive(cfg.out):
        outputs.check_not_input(cfg.out, inputs)
        out = Path(cfg.out).absolute()
        outputs.remove_stale_temps(out.parent, out.name)  # of fine-tunes killed while writing --out
        return _finetune(cfg)


def _output_bytes(cfg: FinetuneConfig) -> int:
    """Room the task checkpoint needs: the initial weights (a task model is no larger) + 4 MiB
    of configuration, vocabulary and predictions."""
    init = Path(cfg.init) if cfg.init else None
    weights = sum(p.stat().st_size for p in init.glob("*.safetensors")) if init else 0
    if init and not weights and (init / "pytorch_model.bin").is_file():
        weights = (init / "pytorch_model.bin").stat().st_size
    return weights + (4 << 20)


def _finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    settings = dict(cfg.task_settings)
    if cfg.max_seq_length is not None:
        settings["max_seq_length"] = cfg.max_seq_length
    task = get_task(cfg.task, **settings)
    check_seq_length(task, *_model_positions(cfg), given=cfg.max_seq_length is not None)
    tok = Tokenizer.from_pretrained(cfg.init or cfg.tokenizer)

    all_train = task.read(cfg.train)
    labels = task.label_list(all_train)  # from the whole file: a --max-train-examples subset may lack some
    train_ex = _subset(all_train, cfg.max_train_examples, cfg.seed, random_pick=True)
    task.labels = labels
    label2id = {lab: i for i, lab in enumerate(labels)} if labels else None
    dev_ex = _subset(task.read(cfg.dev), cfg.max_eval_examples, 0, random_pick=False)
    task.check_labels(cfg.dev, dev_ex, label2id or {})
    test_ex = None
    if cfg.test:
        test_ex = _subset(task.read(cfg.test), cfg.max_eval_examples, 0, random_pick=False)
        task.check_labels(cfg.test, test_ex, label2id or {})
    train = Split(cfg.train, train_ex, _featurize(task, cfg.train, train_ex, tok, label2id, training=True))
    dev = Split(cfg.dev, dev_ex, _featurize(task, cfg.dev, dev_ex, tok, label2id, training=False))
    test = (
        Split(cfg.test, test_ex, _featurize(task, cfg.test, test_ex, tok, label2id, training=False))
        if cfg.test
        else None
    )

    work = Path(tempfile.mkdtemp(prefix="bertkit-finetune-")) if cfg.out is None else None
    publish = atomic_dir(cfg.out) if cfg.out is not None else contextlib.nullcontext(work)
    with publish as out_dir, outputs.disk_errors(cfg.out or work, "the fine-tuned model"):
        result = _search_and_select(cfg, task, tok, labels, train, dev, test, out_dir)
        result["elapsed_s"] = time.perf_counter() - t0
        atomic_write_json(out_dir / METRICS_FILE, result)
        if cfg.out is not None:
            outputs.write_marker(out_dir, "finetune")
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    result["out"] = cfg.out
    return result


def _search_and_select(cfg, task, tok, labels, train, dev, test, out_dir: Path) -> dict[str, Any]:
    runner = _Runner(cfg, task, tok, labels, train, dev, out_dir / "runs" if cfg.out is not None else None)
    main = task.main_metric
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    settings_summary, all_runs = [], []
    best: dict | None = None  # the selected setting: {"median", "runs", "run", "state", "dev_predictions"}
    model = None
    for lr, bs, ep in cfg.grid():
        runs, best_run, best_state, best_preds = [], None, None, None
        for seed in seeds:
            r = runner.run(lr, bs, ep, seed)
            model, preds = r.pop("model"), r.pop("dev_predictions")
            runs.append(r)
            if best_run is None or r["metrics"].get(main, -math.inf) > best_run["metrics"].get(main, -math.inf):
                best_run, best_preds = r, preds
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        median, std = median_std([r["metrics"].get(main, math.nan) for r in runs])
        settings_summary.append(
            {"lr": lr, "batch_size": bs, "epochs": ep, f"dev_{main}_median": median, f"dev_{main}_std": std}
        )
        runtime.log(
            f"setting lr {lr:g} batch {bs} epochs {ep}: dev {main} median {median:.4f} ± {std:.4f} "
            f"over {len(runs)} seed(s)"
        )
        all_runs.extend(runs)
        if best is None or median > best["median"]:
            best = {"median": median, "runs": runs, "run": best_run, "state": best_state, "dev_predictions": best_preds}

    # The selected weights go into the last trained model (same architecture); its last dev
    # predictions are re-scored (QA: re-tunes the null threshold); the test set is run once.
    run = best["run"]
    model.load_state_dict(best["state"])
    id2label = runner.id2label
    dev_preds = best["dev_predictions"]
    task.score(dev.examples, dev_preds, tune=True)
    _write_split_predictions(out_dir, "dev", task, dev.examples, dev_preds)
    result: dict[str, Any] = {"task": task.name, "main_metric": main, "dev": _aggregate(best["runs"])}
    if test is not None:
        test_preds = task.predict(
            model, test.features, test.examples, id2label, cfg.eval_batch_size, tok.pad_id, progress=cfg.progress
        )
        result["test"] = task.score(test.examples, test_preds)
        _write_split_predictions(out_dir, "test", task, test.examples, test_preds)
    result["selected"] = {k: run[k] for k in ("lr", "batch_size", "epochs", "seed", "steps")}
    result["dev_history"] = run["epoch_history"]
    result["runs"] = [{k: v for k, v in r.items()} for r in all_runs]
    if cfg.search:
        result["search"] = settings_summary
    result["data"] = {
        "train": {"path": train.path, "examples": len(train.examples), "truncated": train.features.n_truncated},
        "dev": {"path": dev.path, "examples": len(dev.examples), "truncated": dev.features.n_truncated},
    }
    if test is not None:
        result["data"]["test"] = {
            "path": test.path,
            "examples": len(test.examples),
            "truncated": test.features.n_truncated,
        }
    result["config"] = _jsonable(dataclasses.asdict(cfg))
    save_task_model(out_dir, model, tok, task)
    return result


# ------------------------------------------------------------------------------------------ I/O


def evaluate(
    model_dir: str,
    data: str,
    task: str | None = None,
    batch_size: int = TASK_BATCH_SIZE,
    max_seq_length: int | None = None,
    progress: bool = True,
    columns: dict | None = None,
) -> dict[str, float]:
    """Metrics of a task checkpoint on a labelled file (same keys as ``metrics.json``).
    SQuAD v2 uses the null threshold tuned on dev at training time."""

    predictor = load(model_dir, task=task, max_length=max_seq_length, batch_size=batch_size, columns=columns)
    examples, preds = predictor.predict_examples(data, progress=progress, labelled=True)
    return predictor.task.score(examples, preds)


def predict(
    model_dir: str,
    data: str,
    out: str,
    batch_size: int = TASK_BATCH_SIZE,
    task: str | None = None,
    max_seq_length: int | None = None,
    progress: bool = True,
    columns: dict | None = None,
    precision: str = "fp32",
    overwrite: bool = False,
) -> int:
    """Write one JSON line per example of ``data`` (labels optional) to ``out``, or for an ``out``
    ending in ``.json`` the task's official format (SQuAD ``{id: answer}``); returns the count.
    Runs on :mod:`bertkit.inference` (token-budget batches, inference mode). An existing ``out``
    is replaced only with ``overwrite``, an input never."""

    outputs.check_output_file(out, inputs=[data, model_dir], overwrite=overwrite)
    predictor = load(
        model_dir, task=task, max_length=max_seq_length, batch_size=batch_size, columns=columns, precision=precision
    )
    return predictor.predict_file(data, out, progress=progress)


def _write_split_predictions(out_dir: Path, split: str, task: Task, examples: Sequence, predictions: Sequence) -> None:
    """``predictions_SPLIT.jsonl``, and ``predictions_SPLIT.json`` for a task with an official format."""
    for suffix in (".jsonl", ".json") if task.official_format is not None else (".jsonl",):
        write_predictions(out_dir / f"predictions_{split}{suffix}", task, examples, predictions)
