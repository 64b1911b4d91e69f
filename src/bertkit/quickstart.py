"""``bertkit quickstart``: raw text -> WordPiece vocab -> pre-trained small BERT -> fine-tuned
classifier, against the same network trained from scratch, with a report.

Stages (each in ``OUT/NAME/``, each skipped on a re-run when its ``stage.json`` records the
same key -- a hash of the stage's options and of its inputs' keys / file fingerprints)::

    1 data       default corpus + task (bertkit.downloads) or the user's; validated
    2 vocab      bertkit.tokenization.train_vocab
    3 prepare    bertkit.pretraining (NSP pairs, masking, shards)
    4 pretrain   bertkit.pretrain within the time budget (steps calibrated on this machine)
    5 finetune   bertkit.finetune: (a) pre-trained, (b) random init, (c) MiniLM; N seeds each
    6 report     bertkit.report: report.md, report.json, PNG plots, summary table

A stage's directory is complete only once ``stage.json`` is written (last). The calls into the
other modules go through one small function per stage (``_run_*``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bertkit import downloads, outputs
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_write_json, iter_jsonl, read_json
from bertkit.settings import QuickstartPrecision, choices

STAGE_FILE = "stage.json"
STAGE_FORMAT = 1  # bump when a stage's outputs change meaning: old stages are then redone
TASK_FILE_SUFFIXES = (".tsv", ".csv", ".jsonl")


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """``"15m"``, ``"90s"``, ``"1h30m"``, ``"0"`` -> seconds. A bare number means minutes."""
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s) * 60
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", s)
    if not parts or "".join(a + b for a, b in parts) != s.replace(" ", ""):
        raise BertkitError(f"--budget: cannot read {text!r}; use e.g. 15m, 90s, 1h30m")
    scale = {"h": 3600, "m": 60, "s": 1}
    return float(sum(float(n) * scale[u] for n, u in parts))


@dataclass
class QuickstartOptions:
    """Every knob of the quickstart; defaults are the documented default run."""

    budget_s: float = 15 * 60  # pre-training wall-clock budget
    corpus: list[str] = field(default_factory=list)  # empty: the default PyPI corpus
    task: str | None = None  # task directory (train/dev[/test] files); None: polarity
    out: str = "quickstart"
    data_dir: str | None = None  # data root for the defaults (see bertkit.downloads)
    seeds: int = 3
    model: str = "mini"  # bertkit.config preset
    vocab_size: int = 8192
    max_seq_length: int = 64  # pre-training sequence length (polarity sentences are short)
    batch_size: int = 32  # pre-training sequences per step
    lr: float = 5e-4  # pre-training peak learning rate
    dupe_factor: int = 1  # dynamic masking draws fresh masks each epoch
    task_text: int = 0  # copies of the task's training texts (no labels) added to
    # the pre-training corpus (task-adaptive pre-training)
    precision: QuickstartPrecision = "auto"  # auto: bf16 where this CPU/GPU runs it fast, else fp32
    ft_epochs: int = 3
    ft_lr: float = 1e-4
    ft_batch_size: int = 32
    ft_max_seq_length: int = 64
    minilm: bool = True  # also fine-tune from the MiniLM checkpoint if available
    workers: int | None = None

    def validate(self) -> None:
        checks = [
            (self.budget_s >= 0, "--budget must be >= 0"),
            (self.seeds >= 1, "--seeds must be >= 1"),
            (self.vocab_size >= 200, "--vocab-size must be >= 200"),
            (self.ft_epochs >= 1, "--ft-epochs must be >= 1"),
            (self.task_text >= 0, "--task-text must be >= 0"),
            (self.batch_size >= 1 and self.ft_batch_size >= 1, "batch sizes must be >= 1"),
            (
                self.precision in choices(QuickstartPrecision),
                f"--precision must be one of {', '.join(choices(QuickstartPrecision))}",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise BertkitError(msg)


# --------------------------------------------------------------------------------------------
# Stage bookkeeping: keys, completion records, headers
# --------------------------------------------------------------------------------------------


def stage_key(name: str, inputs: dict) -> str:
    """A stable hash of a stage's name, format version and inputs (JSON-serialisable)."""
    blob = json.dumps({"stage": name, "format": STAGE_FORMAT, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def file_fingerprint(path: str | os.PathLike) -> dict:
    """Identity of an input file or directory tree: path, sizes and modification times."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        return {"path": str(p.resolve()), "files": [file_fingerprint(f) for f in files]}
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class StageRecord:
    name: str
    key: str
    dir: Path
    result: dict
    seconds: float
    cached: bool


class StageRunner:
    """Runs numbered stages under ``out``; a stage whose ``stage.json`` key matches is reused."""

    def __init__(self, out: Path, log: Callable[[str], None] = print):
        self.out = Path(out)
        self.log = log
        self.records: dict[str, StageRecord] = {}
        self.index = 0

    def completed(self, name: str, key: str, directory: Path) -> dict | None:
        f = directory / STAGE_FILE
        if not f.is_file():
            return None
        try:
            rec = read_json(f)
        except BertkitError:
            return None
        return rec if rec.get("key") == key and rec.get("stage") == name else None

    def run(
        self, name: str, inputs: dict, fn: Callable[[Path, bool], dict], title: str = "", dirname: str | None = None
    ) -> StageRecord:
        """Run ``fn(directory, resume) -> result`` unless an identical run is complete.

        ``resume`` is True when the directory holds an unfinished attempt with the same key
        (a stage may continue it, e.g. pre-training from its last checkpoint); an unfinished
        attempt with another key is deleted first. The directory is ``OUT/dirname`` (default
        the stage name).
        """
        self.index += 1
        directory = self.out / (dirname or name)
        key = stage_key(name, inputs)
        header = f"== [{self.index}] {name}{': ' + title if title else ''}"
        done = self.completed(name, key, directory)
        if done is not None:
            self.log(f"{header} -- done before (key {key}), reusing {directory}")
            rec = StageRecord(name, key, directory, done["result"], done.get("seconds", 0.0), True)
            self.records[name] = rec
            return rec
        self.log(header)
        pending = directory / ".pending.json"
        resume = pending.is_file() and _read_key(pending) == key
        if directory.exists() and not resume:
            shutil.rmtree(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(pending, {"key": key})
        t0 = time.perf_counter()
        result = fn(directory, resume)
        seconds = time.perf_counter() - t0
        atomic_write_json(
            directory / STAGE_FILE, {"stage": name, "key": key, "inputs": inputs, "result": result, "seconds": seconds}
        )
        pending.unlink(missing_ok=True)
        self.log(f"   {name} finished in {seconds:.1f} s")
        rec = StageRecord(name, key, directory, result, seconds, False)
        self.records[name] = rec
        return rec


def _read_key(path: Path) -> str | None:
    try:
        return read_json(path).get("key")
    except BertkitError:
        return None


# --------------------------------------------------------------------------------------------
# Stage 1: data
# --------------------------------------------------------------------------------------------


def find_split_file(task_dir: Path, split: str) -> Path | None:
    for suffix in TASK_FILE_SUFFIXES:
        p = task_dir / f"{split}{suffix}"
        if p.is_file():
            return p
    return None


def check_task_dir(task_dir: Path) -> dict[str, str]:
    """The task's split files; a clear error when the directory or its train/dev file is missing."""
    if not task_dir.is_dir():
        raise BertkitError(f"{task_dir}: task directory does not exist")
    files = {}
    for split in ("train", "dev", "test"):
        p = find_split_file(task_dir, split)
        if p is not None:
            files[split] = str(p)
    want = "/".join(f"SPLIT{s}" for s in TASK_FILE_SUFFIXES)
    for split in ("train", "dev"):
        if split not in files:
            raise BertkitError(f"{task_dir}: no {split} file (expected {want.replace('SPLIT', split)})")
    return files


def check_corpus(paths: list[str]) -> list[Path]:
    """Expand the user's corpus paths; each must exist and together hold some text."""
    from bertkit import corpus

    for p in paths:
        if not any(ch in p for ch in "*?[") and not Path(p).exists():
            raise BertkitError(f"{p}: corpus path does not exist")
    files = corpus.expand_inputs(paths)
    if not files:
        raise BertkitError(f"{', '.join(paths)}: no corpus files found")
    for _ in corpus.iter_documents(files):
        return files
    raise BertkitError(f"{', '.join(paths)}: the corpus is empty (no non-blank text)")


def _run_data(opts: QuickstartOptions, directory: Path) -> dict:
    """Resolve (fetching if needed) the corpus, the task and the MiniLM checkpoint."""
    if opts.corpus:
        corpus_files = [str(p) for p in check_corpus(opts.corpus)]
        documents = None
    else:
        root = downloads.fetch("corpus", opts.data_dir)
        src = [root / Path(f).name for f in downloads.DATASETS["corpus"].files]
        corpus_files = [str(directory / "corpus.jsonl")]
        documents = _write_default_corpus(src, Path(corpus_files[0]))
    task_dir = Path(opts.task) if opts.task else downloads.fetch("polarity", opts.data_dir)
    task_files = check_task_dir(task_dir)
    task_text = None
    if opts.task_text > 0:
        path = directory / "task_text.jsonl"
        task_text = write_task_text(task_files["train"], path, opts.task_text)
        corpus_files.append(str(path))
    mb = sum(Path(f).stat().st_size for f in corpus_files) / 1e6
    return {
        "corpus_files": corpus_files,
        "corpus_mb": round(mb, 2),
        "documents": documents,
        "task_dir": str(task_dir),
        "task_files": task_files,
        "task_text": task_text,
    }


TASK_TEXT_DOC_SENTENCES = 8  # training texts per pseudo-document in task_text.jsonl


def write_task_text(train_file: str, out: Path, copies: int) -> dict:
    """Write the task's training texts -- never its labels, never dev/test -- ``copies`` times
    into ``out`` (JSONL documents of a few texts each, reshuffled per copy, seeded), so that
    pre-training sees the task's domain (task-adaptive pre-training, Gururangan et al. 2020)."""
    import random

    from bertkit.tasks import get_task

    examples = get_task("classification").read(train_file, labelled=False)
    texts = [t for e in examples for t in (e.text, e.text_pair) if t and t.strip()]
    if not texts:
        raise BertkitError(f"{train_file}: no text to add to the pre-training corpus (--task-text)")
    rng = random.Random(0)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for copy in range(copies):
            order = texts[:]
            rng.shuffle(order)
            for i in range(0, len(order), TASK_TEXT_DOC_SENTENCES):
                doc = "\n".join(order[i : i + TASK_TEXT_DOC_SENTENCES])
                f.write(json.dumps({"id": f"task-{copy}-{i}", "text": doc}, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    return {"file": str(out), "texts": len(texts), "copies": copies, "mb": round(out.stat().st_size / 1e6, 2)}


def find_minilm(opts: QuickstartOptions) -> str | None:
    """The MiniLM checkpoint under the data root if it is there (it is never downloaded here)."""
    if not opts.minilm:
        return None
    ds = downloads.DATASETS["minilm"]
    root = downloads.data_root(opts.data_dir)
    return str(root / ds.path) if ds.present(root) else None


def _write_default_corpus(src: list[Path], out: Path) -> int:
    """Concatenate the PyPI-sourced documents of the data root's corpus files into ``out``."""
    n = 0
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for d in downloads.read_corpus_docs(src, downloads.DEFAULT_CORPUS_SOURCES):
            f.write(json.dumps({"id": d["id"], "source": d["source"], "text": d["text"]}, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, out)
    if n == 0:
        raise BertkitError(
            f"{', '.join(map(str, src))}: no documents from {', '.join(downloads.DEFAULT_CORPUS_SOURCES)}"
        )
    return n


# --------------------------------------------------------------------------------------------
# Stages 2-5: calls into the other modules (one small function each)
# --------------------------------------------------------------------------------------------


def choose_precision(requested: str) -> str:
    """``auto`` -> bf16 when a bf16 matmul runs and is faster than fp32 here, else fp32."""
    if requested != "auto":
        return requested
    import torch

    from bertkit import runtime

    device = runtime.choose_device("auto")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        bf16 = runtime.measure_matmul_flops(device, "bf16", n=512, reps=4)
        fp32 = runtime.measure_matmul_flops(device, "fp32", n=512, reps=4)
    except RuntimeError:
        return "fp32"
    return "bf16" if bf16 > 1.2 * fp32 else "fp32"


def _run_vocab(opts: QuickstartOptions, data: dict, directory: Path) -> dict:
    from bertkit.tokenization import train_vocab

    tok = train_vocab(data["corpus_files"], vocab_size=opts.vocab_size, lowercase=True)
    tok.save(directory)
    rep = getattr(tok, "training_report", None)
    return {
        "tokenizer_dir": str(directory),
        "vocab_size": len(tok),
        "report": rep.to_dict() if rep is not None else None,
    }


def _run_prepare(opts: QuickstartOptions, data: dict, vocab: dict, directory: Path) -> dict:
    from bertkit.pretraining.format import PrepareOptions
    from bertkit.pretraining.prepare import prepare

    options = PrepareOptions(max_seq_length=opts.max_seq_length, dupe_factor=opts.dupe_factor, masking="dynamic")
    manifest = prepare(data["corpus_files"], vocab["tokenizer_dir"], directory / "data", options, workers=opts.workers)
    return {"data_dir": str(directory / "data"), "counts": manifest.get("counts", {})}


CALIBRATION_STEPS = 10  # the first steps of the run, timed to size the rest to the budget
EVAL_BATCHES = 20  # validation batches scored at the end of the run (2 after calibration)
CHECKPOINT_MINUTES = 10.0  # a long budget keeps a checkpoint this often, so a crash loses little


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


def steady_step_seconds(records: list[dict]) -> float:
    """Seconds per step after the first record (whose first step pays one-off warm-up costs)."""
    if len(records) >= 2 and records[-1]["step"] > records[0]["step"]:
        return (records[-1]["time_s"] - records[0]["time_s"]) / (records[-1]["step"] - records[0]["step"])
    return records[-1]["time_s"] / max(records[-1]["step"], 1) if records else 0.0


def plan_steps(budget_s: float, calib_wall_s: float, step_s: float, calib_steps: int) -> int:
    """Total optimizer steps that fit ``budget_s`` after a calibration run of ``calib_steps``
    that took ``calib_wall_s``, at ``step_s`` seconds per step from then on.

    The calibration's time beyond its steps (model build, warm-up, evaluation, checkpoint) is
    charged once more for the continuation, which pays the same costs.
    """
    overhead_s = max(calib_wall_s - calib_steps * step_s, 0.0)
    remaining = budget_s - calib_wall_s - overhead_s
    return calib_steps + max(0, int(remaining / max(step_s, 1e-9)))


def _run_pretrain(
    opts: QuickstartOptions, vocab: dict, prepared: dict, precision: str, directory: Path, resume: bool
) -> dict:
    """Pre-train within ``opts.budget_s``: time the first steps, then continue to the number of
    steps that fits (the warm-up covers both, so the calibration steps are part of the run)."""
    from bertkit.pretrain import PretrainConfig, pretrain

    run_dir = directory / "run"
    if opts.budget_s <= 0:
        return _untrained_model(opts, vocab, prepared, directory)
    cfg = PretrainConfig(
        data=prepared["data_dir"],
        out=str(run_dir),
        model=opts.model,
        tokenizer=vocab["tokenizer_dir"],
        max_steps=CALIBRATION_STEPS,
        batch_size=opts.batch_size,
        lr=opts.lr,
        warmup_steps=10 * CALIBRATION_STEPS,
        precision=precision,
        save_every=0,
        eval_every=0,
        eval_batches=2,
        log_every=1,
        keep_last=1,
        seed=0,
    )
    plan_file = directory / "plan.json"
    if resume and plan_file.is_file():
        plan = read_json(plan_file)
        t0 = time.perf_counter() - plan["calibration_wall_s"]
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        t0 = time.perf_counter()
        calib = pretrain(cfg)
        wall = time.perf_counter() - t0
        records, train_s = _train_seconds(calib["history"])
        step_s = steady_step_seconds(records)
        steps = plan_steps(opts.budget_s, wall, step_s, CALIBRATION_STEPS)
        plan = {
            "calibration_steps": CALIBRATION_STEPS,
            "calibration_wall_s": wall,
            "calibration_train_s": train_s,
            "step_s": step_s,
            "max_steps": steps,
        }
        atomic_write_json(plan_file, plan)
    steps = plan["max_steps"]
    cfg.max_steps = steps
    cfg.warmup_steps = max(CALIBRATION_STEPS, steps // 10)
    cfg.log_every = max(1, steps // 200)
    cfg.eval_batches = EVAL_BATCHES
    cfg.save_every_minutes = CHECKPOINT_MINUTES  # re-running the quickstart resumes from the newest
    summary = pretrain(cfg, resume=True) if steps > CALIBRATION_STEPS else read_summary(run_dir)
    # wall time of this stage; after an interruption the run's own count (every process's
    # training time up to its checkpoints) is the larger and the true one
    seconds = max(time.perf_counter() - t0, summary.get("elapsed_s", 0.0))
    history = _merged_history(run_dir)
    return {
        "model_dir": summary["checkpoint"],
        "model": opts.model,
        "steps": summary["step"],
        "seconds": round(seconds, 1),
        "budget_s": opts.budget_s,
        "precision": precision,
        "plan": plan,
        "history": history,
        "eval": summary.get("eval", {}),
        "tokens_seen": summary.get("tokens_seen"),
    }


def read_summary(run_dir: Path) -> dict:
    return read_json(run_dir / "summary.json")


def _merged_history(run_dir: Path) -> list[dict]:
    """Train records of the whole run (calibration + continuation) from its metrics.jsonl."""
    f = run_dir / "metrics.jsonl"
    records = [obj for _, obj in iter_jsonl(f)] if f.is_file() else []
    hist, _ = _train_seconds(records)
    return hist


def _untrained_model(opts: QuickstartOptions, vocab: dict, prepared: dict, directory: Path) -> dict:
    """Budget 0: the randomly initialised model, saved like a pre-training checkpoint."""
    import torch

    from bertkit.config import BertConfig
    from bertkit.heads import BertForPreTraining
    from bertkit.tokenization import Tokenizer

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


def _run_finetune(opts: QuickstartOptions, data: dict, init: dict, seed: int, precision: str, directory: Path) -> dict:
    """One fine-tuning run; ``init`` is {"init": DIR} or {"model_config": {...}, "tokenizer": DIR}."""
    from bertkit.finetune import FinetuneConfig, finetune

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
        **init,
    )
    return _finetune_run_record(finetune(cfg), seed)


def _run_probe(opts: QuickstartOptions, data: dict, inits: dict[str, dict]) -> dict:
    """Dev accuracy of a linear probe on each init's frozen, mean-pooled features (random
    weights seeded 0 for the from-scratch config): has pre-training learned anything the task
    can use yet, apart from fine-tuning noise?"""
    import torch

    from bertkit.config import BertConfig
    from bertkit.model import BertModel
    from bertkit.probe import probe_encoder
    from bertkit.tasks import get_task
    from bertkit.tokenization import Tokenizer

    task = get_task("classification")
    train, dev = (task.read(data["task_files"][s]) for s in ("train", "dev"))
    labels = task.label_list(train)
    split = [([e.text for e in x], [labels.index(e.label) for e in x]) for x in (train, dev)]
    out = {}
    for name, spec in inits.items():
        if "init" in spec:
            model, tok = BertModel.from_pretrained(spec["init"]), Tokenizer.from_pretrained(spec["init"])
        else:
            torch.manual_seed(0)
            model = BertModel(BertConfig.from_dict(spec["model_config"]))
            tok = Tokenizer.from_pretrained(spec["tokenizer"])
        out[name] = probe_encoder(model.eval(), tok, split[0], split[1], opts.ft_max_seq_length)
    return out


def _finetune_run_record(metrics: dict, seed: int) -> dict:
    """The report's view of one run: final dev/test accuracy and dev accuracy per epoch."""
    dev = metrics.get("dev", {})
    test = metrics.get("test", {})
    epochs = [
        {"epoch": e["epoch"], "dev_accuracy": e["accuracy"]} for e in metrics.get("dev_history", []) if "accuracy" in e
    ]
    return {
        "seed": seed,
        "dev_accuracy": dev.get("accuracy"),
        "test_accuracy": test.get("accuracy"),
        "epochs": epochs,
        "seconds": metrics.get("elapsed_s"),
    }


def scratch_model_config(pretrained_dir: str) -> dict:
    """The pre-trained model's exact config, for the from-scratch baseline (random weights)."""
    from bertkit.config import BertConfig

    d = BertConfig.from_pretrained(pretrained_dir).to_dict()
    d.pop("id2label", None)
    d.pop("label2id", None)
    return d


# --------------------------------------------------------------------------------------------
# Budget sweep: every pre-training budget run into the same OUT
# --------------------------------------------------------------------------------------------


def budget_label(seconds: float) -> str:
    """``900`` -> ``"15m"``, ``90`` -> ``"90s"``: the budget as used in directory names."""
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def budget_curve(out: Path, scratch_runs: list[dict]) -> list[dict]:
    """Median dev accuracy from every pre-training budget fine-tuned in ``out`` so far, and its
    gap to the from-scratch baseline: the "what did pre-training buy" curve."""
    import statistics

    by_budget: dict[float, list[float]] = {}
    for f in sorted(out.glob("finetune-pretrained-*-seed*/" + STAGE_FILE)):
        m = re.fullmatch(r"finetune-pretrained-(.+)-seed\d+", f.parent.name)
        try:
            acc = read_json(f)["result"].get("dev_accuracy")
            budget = parse_duration(m.group(1)) if m else None
        except (BertkitError, KeyError):
            continue
        if acc is not None and budget is not None:
            by_budget.setdefault(budget, []).append(acc)
    scratch = [r["dev_accuracy"] for r in scratch_runs if r.get("dev_accuracy") is not None]
    base = statistics.median(scratch) if scratch else None
    curve = []
    for budget in sorted(by_budget):
        med = statistics.median(by_budget[budget])
        curve.append(
            {
                "budget_s": budget,
                "seeds": len(by_budget[budget]),
                "dev_median": med,
                "gap_points": None if base is None else round(100 * (med - base), 2),
            }
        )
    return curve


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


def machine_info() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run(opts: QuickstartOptions, log: Callable[[str], None] = print) -> dict:
    """Run (or resume) the whole quickstart; returns the report's results dictionary.

    ``opts.out`` must be new, empty or an earlier quickstart's (which is resumed); one
    quickstart at a time holds its lock (:func:`bertkit.outputs.exclusive`)."""
    opts.validate()
    out = Path(opts.out)
    inputs = [*opts.corpus, opts.task]
    outputs.check_output_dir(out, "quickstart", inputs=inputs, resume=True)
    with outputs.exclusive(out), outputs.disk_errors(out, "the quickstart's outputs"):
        outputs.check_not_input(out, inputs)
        outputs.write_marker(out, "quickstart")
        return _run_locked(opts, out, log)


def _run_locked(opts: QuickstartOptions, out: Path, log: Callable[[str], None]) -> dict:
    runner = StageRunner(out, log)
    t_start = time.perf_counter()

    # The data stage's key covers the options that pick the data and the user's files.
    data_inputs = {
        "corpus": [file_fingerprint(p) for p in opts.corpus if Path(p).exists()] or [str(p) for p in opts.corpus],
        "task": file_fingerprint(opts.task) if opts.task and Path(opts.task).exists() else opts.task,
        # (only when on, so that runs from before the option keep their keys)
        **({"task_text": opts.task_text} if opts.task_text else {}),
        "data_root": None if (opts.corpus and opts.task) else str(downloads.data_root(opts.data_dir)),
    }
    data = runner.run(
        "data",
        data_inputs,
        lambda d, r: _run_data(opts, d),
        "corpus + task" + ("" if opts.corpus else " (default: PyPI prose)"),
    )
    d = data.result
    minilm_dir = find_minilm(opts)
    log(
        f"   corpus {d['corpus_mb']} MB in {len(d['corpus_files'])} file(s); task {d['task_dir']}; "
        f"MiniLM {minilm_dir or 'not used'}"
    )

    vocab = runner.run(
        "vocab",
        {"data": data.key, "vocab_size": opts.vocab_size},
        lambda dd, r: _run_vocab(opts, d, dd),
        f"WordPiece, {opts.vocab_size} pieces",
    )
    prepared = runner.run(
        "prepare",
        {"vocab": vocab.key, "max_seq_length": opts.max_seq_length, "dupe_factor": opts.dupe_factor},
        lambda dd, r: _run_prepare(opts, d, vocab.result, dd),
        f"NSP pairs + masking, seq {opts.max_seq_length}",
    )
    # Resolved once and then reused, so that a noisy measurement cannot invalidate later stages.
    precision = runner.run(
        "precision",
        {"requested": opts.precision},
        lambda dd, r: {"precision": choose_precision(opts.precision)},
        f"{opts.precision}",
    ).result["precision"]
    pre_inputs = {
        "prepare": prepared.key,
        "model": opts.model,
        "budget_s": opts.budget_s,
        "batch_size": opts.batch_size,
        "lr": opts.lr,
        "precision": precision,
    }
    pretrained = runner.run(
        "pretrain",
        pre_inputs,
        lambda dd, r: _run_pretrain(opts, vocab.result, prepared.result, precision, dd, r),
        f"{opts.model}, budget {opts.budget_s / 60:.1f} min, {precision}",
        dirname=f"pretrain-{budget_label(opts.budget_s)}",
    )
    # (b) uses the pre-trained model's config and vocabulary with random weights (seeded per
    # fine-tuning seed), so it does not depend on the pre-training budget.
    scratch_cfg = scratch_model_config(pretrained.result["model_dir"])
    tok_dir = vocab.result["tokenizer_dir"]
    inits = {
        "pretrained": ({"init": pretrained.result["model_dir"]}, pretrained.key),
        "scratch": (
            {"model_config": scratch_cfg, "tokenizer": tok_dir},
            stage_key("scratch", {"config": scratch_cfg, "vocab": vocab.key}),
        ),
    }
    if minilm_dir:
        inits["minilm"] = ({"init": minilm_dir}, stage_key("minilm", file_fingerprint(minilm_dir)))
    ft_opts = {
        "epochs": opts.ft_epochs,
        "lr": opts.ft_lr,
        "batch_size": opts.ft_batch_size,
        "max_seq_length": opts.ft_max_seq_length,
        "precision": precision,
    }
    finetune_results: dict[str, dict] = {}
    for init, (init_spec, init_key) in inits.items():
        runs = []
        for seed in range(opts.seeds):
            # Runs from each pre-training budget keep their own directories (a budget sweep
            # in one OUT reuses everything else); the other inits do not depend on the budget.
            label = f"pretrained-{budget_label(opts.budget_s)}" if init == "pretrained" else init
            rec = runner.run(
                f"finetune-{init}-seed{seed}",
                {"init": init_key, "data": data.key, "seed": seed, **ft_opts},
                lambda dd, r, i=init_spec, s=seed: _run_finetune(opts, d, i, s, precision, dd),
                f"{init} init, seed {seed}",
                dirname=f"finetune-{label}-seed{seed}",
            )
            runs.append(rec.result)
        finetune_results[init] = {"runs": runs}

    probe = runner.run(
        "probe",
        {
            "inits": {k: key for k, (_, key) in inits.items()},
            "data": data.key,
            "max_seq_length": opts.ft_max_seq_length,
        },
        lambda dd, r: _run_probe(opts, d, {k: spec for k, (spec, _) in inits.items()}),
        "linear probe of the frozen encoders",
        dirname=f"probe-{budget_label(opts.budget_s)}",
    )

    results = {
        "options": asdict(opts) | {"precision_resolved": precision},
        "machine": machine_info(),
        "data": d | {"minilm_dir": minilm_dir},
        "vocab": vocab.result,
        "pretraining": pretrained.result,
        "finetune": finetune_results,
        "probe": probe.result,
        "stages": {name: {"seconds": round(r.seconds, 1), "cached": r.cached} for name, r in runner.records.items()},
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    results["budget_curve"] = budget_curve(out, finetune_results.get("scratch", {}).get("runs", []))
    from bertkit import report

    log(f"== [{runner.index + 1}] report")
    paths = report.write_report(out, results)
    log(report.summary_table(results))
    log(f"report: {paths['md']} (+ report.json, plots)")
    return results
