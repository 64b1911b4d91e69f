"""The quickstart report: report.json (everything), report.md (for people), PNG plots.

Everything here is a pure function of one results dictionary (the content of report.json),
so the report can be rebuilt or tested without training anything. Its shape::

    {"options": {...}, "machine": {...}, "data": {...}, "stages": {name: {"seconds", "cached"}},
     "pretraining": {"budget_s", "steps", "seconds", "precision", "model", "history": [
         {"step", "time_s", "loss", "mlm_acc", ...}], "eval": {...}} | None,
     "finetune": {INIT: {"label", "runs": [{"seed", "dev_accuracy", "test_accuracy"?,
         "epochs": [{"epoch", "dev_accuracy"}]}]}}}

INIT is "pretrained" (a), "scratch" (b) or "minilm" (c). ``summarize`` adds the median and
standard deviation per INIT and the pre-trained minus from-scratch gap in accuracy points.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bertkit.fileio import atomic_write_json, atomic_write_text
from bertkit.metrics import median_std

INIT_LABELS = {
    "pretrained": "(a) pre-trained here",
    "scratch": "(b) random init (from scratch)",
    "minilm": "(c) MiniLM-L6 checkpoint",
}


def summarize(results: dict) -> dict:
    """Add ``median``/``std`` (dev and, when present, test accuracy) per init and the gap."""
    ft = results.get("finetune") or {}
    for init, entry in ft.items():
        entry.setdefault("label", INIT_LABELS.get(init, init))
        for split in ("dev", "test"):
            vals = [r[f"{split}_accuracy"] for r in entry.get("runs", []) if r.get(f"{split}_accuracy") is not None]
            entry[f"{split}_median"], entry[f"{split}_std"] = median_std(vals)
    a = ft.get("pretrained", {}).get("dev_median")
    b = ft.get("scratch", {}).get("dev_median")
    results["gap_points"] = None if a is None or b is None else round(100.0 * (a - b), 2)
    return results


def _fmt_acc(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def summary_table(results: dict) -> str:
    """A short fixed-width table: one row per init, median ± std of dev accuracy and seeds."""
    lines = [f"{'init':<34} {'dev acc (median ± std)':>24} {'test acc':>9}  seeds (dev)"]
    for init, e in (results.get("finetune") or {}).items():
        runs = e.get("runs", [])
        seeds = " ".join(_fmt_acc(r.get("dev_accuracy")) for r in runs)
        ms = f"{_fmt_acc(e.get('dev_median'))} ± {100 * (e.get('dev_std') or 0):.1f}"
        lines.append(f"{e.get('label', init):<34} {ms:>24} {_fmt_acc(e.get('test_median')):>9}  {seeds}")
    gap = results.get("gap_points")
    if gap is not None:
        lines.append(f"pre-trained minus from-scratch: {gap:+.1f} accuracy points (median dev)")
    probe = results.get("probe") or {}
    if probe:
        lines.append(
            "linear probe of the frozen encoder (dev acc): " + ", ".join(f"{k} {_fmt_acc(v)}" for k, v in probe.items())
        )
    return "\n".join(lines)


def plot_pretraining(results: dict, path: Path) -> bool:
    """Pre-training loss and MLM accuracy against wall-clock minutes; False if no history."""
    pt = results.get("pretraining") or {}
    hist = [h for h in pt.get("history", []) if h.get("loss") is not None]
    if not hist:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [h["time_s"] / 60 for h in hist]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(t, [h["loss"] for h in hist], color="tab:blue", label="train loss")
    ax1.set_xlabel("pre-training time (min)")
    ax1.set_ylabel("loss (MLM + NSP)", color="tab:blue")
    acc = [(x, h["mlm_acc"]) for x, h in zip(t, hist) if h.get("mlm_acc") is not None]
    if acc:
        ax2 = ax1.twinx()
        ax2.plot([a[0] for a in acc], [100 * a[1] for a in acc], color="tab:orange", label="MLM accuracy")
        ax2.set_ylabel("MLM accuracy (%)", color="tab:orange")
    ax1.set_title(f"pre-training {pt.get('model', '')} ({pt.get('steps', '?')} steps)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_finetuning(results: dict, path: Path) -> bool:
    """Dev accuracy per epoch, one colour per init: each seed thin, the median thick."""
    ft = results.get("finetune") or {}
    if not any(r.get("epochs") for e in ft.values() for r in e.get("runs", [])):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colours = {"pretrained": "tab:green", "scratch": "tab:red", "minilm": "tab:purple"}
    for init, e in ft.items():
        c = colours.get(init, None)
        per_epoch: dict[int, list[float]] = {}
        for r in e.get("runs", []):
            ep = [(x["epoch"], 100 * x["dev_accuracy"]) for x in r.get("epochs", [])]
            if ep:
                ax.plot([p[0] for p in ep], [p[1] for p in ep], color=c, alpha=0.3, lw=1)
            for k, v in ep:
                per_epoch.setdefault(k, []).append(v)
        if per_epoch:
            ks = sorted(per_epoch)
            ax.plot(
                ks,
                [statistics.median(per_epoch[k]) for k in ks],
                color=c,
                lw=2.5,
                marker="o",
                label=e.get("label", init),
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev accuracy (%)")
    ax.set_title("fine-tuning: dev accuracy per epoch (thin: seeds, thick: median)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_budget_curve(results: dict, path: Path) -> bool:
    """Pre-trained minus from-scratch dev accuracy against the pre-training budget (>= 2 budgets)."""
    curve = [c for c in results.get("budget_curve") or [] if c.get("gap_points") is not None]
    if len(curve) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([c["budget_s"] / 60 for c in curve], [c["gap_points"] for c in curve], marker="o")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("pre-training budget (min)")
    ax.set_ylabel("gap (accuracy points)")
    ax.set_title("pre-trained minus from-scratch, median dev accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _fmt_minutes(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds / 60:.3g} min"


def markdown(results: dict, images: list[str]) -> str:
    """report.md: what ran, the result table, the plots, and how long each stage took."""
    o = results.get("options", {})
    pt = results.get("pretraining") or {}
    d = results.get("data", {})
    out = ["# bertkit quickstart report", ""]
    gap = results.get("gap_points")
    if gap is not None:
        verdict = (
            f"beats training from scratch by **{gap:.1f} accuracy points**"
            if gap > 0
            else f"does not beat training from scratch (gap **{gap:+.1f} accuracy points**)"
        )
        out += [f"Pre-training {verdict}: median dev accuracy over {o.get('seeds', '?')} seeds.", ""]
    out += [
        "## Setup",
        "",
        f"- corpus: {', '.join(map(str, d.get('corpus_files', [])))} ({d.get('corpus_mb', '?')} MB"
        + (f", {d['documents']} documents)" if d.get("documents") else ")"),
        f"- task: {d.get('task_dir', '?')}",
        f"- model: {pt.get('model', o.get('model', '?'))}, vocabulary "
        f"{results.get('vocab', {}).get('vocab_size', o.get('vocab_size', '?'))}, "
        f"max sequence {o.get('max_seq_length', '?')}",
        (
            f"- pre-training: budget {_fmt_minutes(o.get('budget_s'))} -> {pt.get('steps', 0)} steps in "
            f"{pt.get('seconds', 0):.0f} s, precision {pt.get('precision', '?')}"
            + (
                f", final MLM acc {100 * pt['eval']['mlm_acc']:.1f}%"
                if pt.get("eval", {}).get("mlm_acc") is not None
                else ""
            )
        )
        if pt.get("steps")
        else "- pre-training: none (budget 0: (a) starts from the random weights of seed 0, saved as a checkpoint)",
        f"- fine-tuning: {o.get('ft_epochs', '?')} epochs, lr {o.get('ft_lr', '?')}, batch "
        f"{o.get('ft_batch_size', '?')}, seeds {o.get('seeds', '?')}",
        "",
    ]
    out += [
        "## Results",
        "",
        "| init | dev acc median | ± std | test acc median | per seed (dev) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for init, e in (results.get("finetune") or {}).items():
        seeds = ", ".join(_fmt_acc(r.get("dev_accuracy")) for r in e.get("runs", []))
        out.append(
            f"| {e.get('label', init)} | {_fmt_acc(e.get('dev_median'))} | "
            f"{100 * (e.get('dev_std') or 0):.1f} | {_fmt_acc(e.get('test_median'))} | {seeds} |"
        )
    out.append("")
    probe = results.get("probe") or {}
    if probe:
        labels = {k: (results.get("finetune") or {}).get(k, {}).get("label", k) for k in probe}
        out += [
            "Linear probe (no fine-tuning: the frozen encoder's mean-pooled features, a logistic "
            "regression fit on train, dev accuracy): "
            + "; ".join(f"{labels[k]} {_fmt_acc(v)}" for k, v in probe.items())
            + ". Pre-trained features that probe no better than random weights mean the encoder "
            "has not yet learned anything this task can use.",
            "",
        ]
    curve = results.get("budget_curve") or []
    if curve:
        out += [
            "## Pre-training budget vs gain",
            "",
            "Every budget fine-tuned in this output directory so far (re-run with another "
            "`--budget` and the same `--out` to add one; everything else is reused).",
            "",
            "| budget | pre-trained dev median | gap vs from scratch (points) | seeds |",
            "| --- | --- | --- | --- |",
        ]
        for c in curve:
            gap = "-" if c.get("gap_points") is None else f"{c['gap_points']:+.1f}"
            out.append(f"| {_fmt_minutes(c['budget_s'])} | {_fmt_acc(c['dev_median'])} | {gap} | {c['seeds']} |")
        out.append("")
    for img in images:
        out += [f"![{img}]({img})", ""]
    stages = results.get("stages", {})
    if stages:
        out += ["## Stages", "", "| stage | seconds | reused |", "| --- | --- | --- |"]
        for name, s in stages.items():
            out.append(f"| {name} | {s.get('seconds', 0):.1f} | {'yes' if s.get('cached') else 'no'} |")
        out.append("")
    m = results.get("machine", {})
    if m:
        out += ["## Machine", "", ", ".join(f"{k}: {v}" for k, v in m.items()), ""]
    return "\n".join(out)


def write_report(out_dir: str | Path, results: dict) -> dict[str, Path]:
    """Write report.json, report.md and the PNG plots into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = summarize(results)
    paths: dict[str, Path] = {}
    images = []
    if plot_pretraining(results, out_dir / "pretraining.png"):
        paths["pretraining_png"] = out_dir / "pretraining.png"
        images.append("pretraining.png")
    if plot_finetuning(results, out_dir / "finetune_dev_accuracy.png"):
        paths["finetune_png"] = out_dir / "finetune_dev_accuracy.png"
        images.append("finetune_dev_accuracy.png")
    if plot_budget_curve(results, out_dir / "budget_gap.png"):
        paths["budget_png"] = out_dir / "budget_gap.png"
        images.append("budget_gap.png")
    atomic_write_json(out_dir / "report.json", results)
    atomic_write_text(out_dir / "report.md", markdown(results, images))
    paths["json"] = out_dir / "report.json"
    paths["md"] = out_dir / "report.md"
    return paths
