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

import numpy as np

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
    results["headline"] = headline(results)
    return results


# --------------------------------------------------------------------------------------------
# Evidence: how sure is the comparison? (pure functions of numbers, unit-tested on synthetic ones)
# --------------------------------------------------------------------------------------------

BOOTSTRAP_SAMPLES = 2000
STILL_IMPROVING_POINTS = 1.0  # a median dev gain over the last epoch above this: not converged
MLM_WEAK_FACTOR = 1.5  # MLM accuracy below this x the most-frequent-token guess: barely learned


def correct_matrix(runs: list[dict]) -> np.ndarray | None:
    """(seeds, dev examples) 0/1 matrix from the runs' ``dev_correct`` strings; None when a run
    lacks them or the runs disagree on the number of examples."""
    rows = [r.get("dev_correct") for r in runs]
    if not rows or any(not isinstance(x, str) or not x for x in rows) or len({len(x) for x in rows}) != 1:
        return None
    return np.array([[c == "1" for c in x] for x in rows], dtype=np.float64)


def bootstrap_gap(a: np.ndarray, b: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict:
    """Mean accuracy of ``a`` minus ``b`` in points, with a 95% bootstrap interval.

    ``a`` and ``b`` are (seeds, examples) 0/1 matrices over the same dev examples. Each
    bootstrap sample redraws the seeds of each arm (with replacement) and the dev examples (the
    same draw for both arms: a paired comparison), so the interval covers both the seed-to-seed
    spread of fine-tuning and the finite dev set.
    """
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"different dev sets: {a.shape[1]} vs {b.shape[1]} examples")
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    diffs = np.empty(samples)
    for i in range(samples):
        w = np.bincount(rng.integers(n, size=n), minlength=n) / n  # (n,) example weights
        ra = a[rng.integers(len(a), size=len(a))].mean(0)  # (n,) per-example mean over seeds
        rb = b[rng.integers(len(b), size=len(b))].mean(0)
        diffs[i] = (ra - rb) @ w
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {
        "points": 100.0 * float(a.mean() - b.mean()),
        "ci95": [100.0 * float(lo), 100.0 * float(hi)],
        "seeds": [len(a), len(b)],
        "examples": n,
        "method": "bootstrap over seeds and dev examples (paired)",
    }


def seed_gap(a: list[float], b: list[float]) -> dict:
    """The gap's interval from the seeds' accuracies alone (runs without per-example results):
    mean difference +- 1.96 standard errors; no interval with a single seed in an arm."""
    gap = 100.0 * (statistics.fmean(a) - statistics.fmean(b))
    ci = None
    if len(a) > 1 and len(b) > 1:
        se = 100.0 * (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
        ci = [gap - 1.96 * se, gap + 1.96 * se]
    return {"points": gap, "ci95": ci, "seeds": [len(a), len(b)], "examples": None, "method": "seed spread"}


def arm_gap(ft: dict, arm: str, base: str = "scratch") -> dict | None:
    """The dev-accuracy gap of ``arm`` over ``base`` with its uncertainty (None if one is missing)."""
    ra, rb = (ft.get(k, {}).get("runs", []) for k in (arm, base))
    ma, mb = correct_matrix(ra), correct_matrix(rb)
    if ma is not None and mb is not None and ma.shape[1] == mb.shape[1]:
        return bootstrap_gap(ma, mb)
    va = [r["dev_accuracy"] for r in ra if r.get("dev_accuracy") is not None]
    vb = [r["dev_accuracy"] for r in rb if r.get("dev_accuracy") is not None]
    return seed_gap(va, vb) if va and vb else None


def convergence(runs: list[dict], chance: float | None = None, dev_examples: int | None = None) -> dict:
    """Did fine-tuning settle? The median over seeds of dev accuracy per epoch, its rise over the
    last epoch (points; ``still_improving`` above STILL_IMPROVING_POINTS), and whether the final
    median is within two standard errors of ``chance`` (the majority-class rate)."""
    per_epoch: dict[float, list[float]] = {}
    for r in runs:
        for e in r.get("epochs", []):
            per_epoch.setdefault(e["epoch"], []).append(e["dev_accuracy"])
    curve = [statistics.median(per_epoch[k]) for k in sorted(per_epoch)]
    last_gain = 100.0 * (curve[-1] - curve[-2]) if len(curve) >= 2 else None
    out = {
        "median_per_epoch": curve,
        "last_epoch_gain_points": last_gain,
        "still_improving": last_gain is not None and last_gain > STILL_IMPROVING_POINTS,
        "at_chance": False,
    }
    if chance is not None and dev_examples and curve:
        se = (chance * (1 - chance) / dev_examples) ** 0.5
        out["at_chance"] = curve[-1] <= chance + 2 * se
    return out


def weigh_evidence(results: dict) -> dict:
    """Everything the headline rests on: the gaps with their intervals, the linear probe
    compared pairwise, MLM accuracy against always guessing the most frequent token, and each
    arm's convergence."""
    ft = results.get("finetune") or {}
    task = results.get("task") or {}
    chance, n_dev = task.get("dev_majority"), task.get("dev_examples")
    ev: dict = {"gap": arm_gap(ft, "pretrained"), "minilm_gap": arm_gap(ft, "minilm") if "minilm" in ft else None}
    ev["convergence"] = {k: convergence(e.get("runs", []), chance, n_dev) for k, e in ft.items()}
    probe, pc = results.get("probe") or {}, results.get("probe_dev_correct") or {}
    if "pretrained" in probe and "scratch" in probe:
        if pc.get("pretrained") and pc.get("scratch") and len(pc["pretrained"]) == len(pc["scratch"]):
            pgap = bootstrap_gap(
                correct_matrix([{"dev_correct": pc["pretrained"]}]), correct_matrix([{"dev_correct": pc["scratch"]}])
            )
        else:
            pgap = {"points": 100.0 * (probe["pretrained"] - probe["scratch"]), "ci95": None}
        pgap["learned_nothing"] = pgap["ci95"][0] <= 0 if pgap["ci95"] else pgap["points"] <= 0
        ev["probe"] = pgap
    pt = results.get("pretraining") or {}
    mlm, base = (pt.get("eval") or {}).get("mlm_acc"), pt.get("mlm_majority_acc")
    if mlm is not None:
        ev["mlm"] = {
            "accuracy": mlm,
            "most_frequent_token": base,
            "weak": base is not None and mlm < MLM_WEAK_FACTOR * base,
        }
    return ev


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{100 * x:.1f}%"


def _interval(g: dict) -> str:
    if not g.get("ci95"):
        return "no interval: one seed per arm"
    lo, hi = g["ci95"]
    return f"95% interval {lo:+.1f} to {hi:+.1f}"


def headline(results: dict, ev: dict | None = None) -> dict:
    """The report's claim, worded by its evidence: ``{"verdict", "text", "evidence"}``.

    verdict: ``gain`` (the gap's 95% interval is above 0), ``loss`` (below 0), ``noise`` (it
    contains 0) or None (no comparison). The text says "within the noise" for a noise-level gap,
    and "learned nothing" when the linear probe cannot tell the pre-trained encoder from random
    weights; a gain that the probe does not back, or that an unconverged from-scratch arm could
    explain, is qualified.
    """
    ev = weigh_evidence(results) if ev is None else ev
    ft = results.get("finetune") or {}
    g = ev.get("gap")
    if g is None:
        return {"verdict": None, "text": "", "evidence": ev}
    mean = {
        k: statistics.fmean(r["dev_accuracy"] for r in e["runs"] if r.get("dev_accuracy") is not None)
        for k, e in ft.items()
        if any(r.get("dev_accuracy") is not None for r in e.get("runs", []))
    }
    a, b = _pct(mean.get("pretrained")), _pct(mean.get("scratch"))
    ci = g.get("ci95")
    verdict = "noise" if ci is None or ci[0] <= 0 <= ci[1] else ("gain" if ci[0] > 0 else "loss")
    where = f"{g['seeds'][0]}+{g['seeds'][1]} seeds" + (f", {g['examples']} dev examples" if g.get("examples") else "")
    probe = ev.get("probe") or {}
    nothing = probe.get("learned_nothing", False)
    conv = ev.get("convergence") or {}
    scratch_rising = conv.get("scratch", {}).get("still_improving") or conv.get("scratch", {}).get("at_chance")
    parts = []
    if verdict == "noise":
        parts.append(
            f"Pre-trained ({a}) and from-scratch ({b}) mean dev accuracy over seeds differ by {g['points']:+.1f} points, "
            f"which is **within the noise** ({_interval(g)}; {where}): this run shows no benefit "
            "from pre-training."
        )
    elif verdict == "gain":
        parts.append(
            f"Pre-training beats training from scratch: {a} vs {b} mean dev accuracy over seeds, "
            f"**{g['points']:+.1f} points** ({_interval(g)}; {where})."
        )
    else:
        parts.append(
            f"Pre-training does worse than training from scratch: {a} vs {b} mean dev accuracy over seeds, "
            f"**{g['points']:+.1f} points** ({_interval(g)}; {where})."
        )
    if nothing:
        pa, pb = _pct((results.get("probe") or {}).get("pretrained")), _pct((results.get("probe") or {}).get("scratch"))
        parts.append(
            f"The encoder **learned nothing** the task can use yet: a linear probe on its frozen features "
            f"scores {pa}, against {pb} for the same network's random weights"
            + (f" ({probe['points']:+.1f} points, {_interval(probe)})." if probe.get("ci95") else ".")
        )
        if verdict == "gain":
            parts.append("So the gain is more likely faster fine-tuning than learned features.")
    elif probe:
        parts.append(
            f"A linear probe on the frozen features confirms the pre-trained encoder learned something "
            f"the task can use ({probe['points']:+.1f} points over random weights, {_interval(probe)})."
        )
    mlm = ev.get("mlm") or {}
    if mlm.get("weak"):
        parts.append(
            f"Its masked-word accuracy ({_pct(mlm['accuracy'])}) is close to always guessing the most "
            f"frequent token ({_pct(mlm['most_frequent_token'])})."
        )
    if verdict == "gain" and scratch_rising:
        parts.append(
            "From scratch had not converged by the last epoch, so part of the gap is how fast the "
            "two fine-tune, not where they end."
        )
    m = ev.get("minilm_gap")
    if m is not None and "minilm" in mean:
        parts.append(
            f"A real pre-trained BERT (MiniLM) reaches {_pct(mean['minilm'])} mean dev accuracy, "
            f"{m['points']:+.1f} points over from scratch ({_interval(m)})."
        )
    return {"verdict": verdict, "text": " ".join(parts), "evidence": ev}


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


COLOURS = {"pretrained": "tab:green", "scratch": "tab:red", "minilm": "tab:purple"}


def plot_curves(results: dict, path: Path) -> bool:
    """One figure, every arm: pre-training loss and MLM accuracy against minutes (left), the
    fine-tuning training loss (middle) and dev accuracy (right) per epoch of each init, each seed
    thin and the median thick, chance (the majority class) dashed. False when there is nothing."""
    pt = results.get("pretraining") or {}
    hist = [h for h in pt.get("history", []) if h.get("loss") is not None]
    ft = results.get("finetune") or {}
    has_ft = any(r.get("epochs") or r.get("train_loss") for e in ft.values() for r in e.get("runs", []))
    if not hist and not has_ft:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_pt, ax_loss, ax_acc) = plt.subplots(1, 3, figsize=(15, 4.2))
    if hist:
        t = [h["time_s"] / 60 for h in hist]
        ax_pt.plot(t, [h["loss"] for h in hist], color="tab:blue")
        ax_pt.set_ylabel("loss (MLM + NSP)", color="tab:blue")
        acc = [(x, h["mlm_acc"]) for x, h in zip(t, hist) if h.get("mlm_acc") is not None]
        if acc:
            ax2 = ax_pt.twinx()
            ax2.plot([a[0] for a in acc], [100 * a[1] for a in acc], color="tab:orange")
            ax2.set_ylabel("MLM accuracy (%)", color="tab:orange")
        ax_pt.set_title(f"pre-training {pt.get('model', '')} ({pt.get('steps', '?')} steps)")
    else:
        ax_pt.text(0.5, 0.5, "no pre-training (budget 0)", ha="center", va="center", transform=ax_pt.transAxes)
    ax_pt.set_xlabel("pre-training time (min)")
    for init, e in ft.items():
        c = COLOURS.get(init)
        label = e.get("label", init)
        for i, r in enumerate(e.get("runs", [])):
            tl = r.get("train_loss") or []
            if tl:
                ax_loss.plot(
                    [x[0] for x in tl], [x[1] for x in tl], color=c, alpha=0.5, lw=1, label=label if i == 0 else None
                )
        per_epoch: dict[float, list[float]] = {}
        for r in e.get("runs", []):
            ep = [(x["epoch"], 100 * x["dev_accuracy"]) for x in r.get("epochs", [])]
            if ep:
                ax_acc.plot([q[0] for q in ep], [q[1] for q in ep], color=c, alpha=0.3, lw=1)
            for k, v in ep:
                per_epoch.setdefault(k, []).append(v)
        if per_epoch:
            ks = sorted(per_epoch)
            ax_acc.plot(ks, [statistics.median(per_epoch[k]) for k in ks], color=c, lw=2.5, marker="o", label=label)
    chance = (results.get("task") or {}).get("dev_majority")
    if chance is not None:
        ax_acc.axhline(100 * chance, color="grey", ls="--", lw=1, label="majority class")
    ax_loss.set_xlabel("fine-tuning epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("fine-tuning: training loss (one line per seed)")
    ax_acc.set_xlabel("fine-tuning epoch")
    ax_acc.set_ylabel("dev accuracy (%)")
    ax_acc.set_title("fine-tuning: dev accuracy (thick: median)")
    for ax in (ax_loss, ax_acc):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
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


def _device_words(machine: dict) -> str:
    if machine.get("cuda"):
        return f"a GPU ({machine['cuda']})"
    cpus = machine.get("cpus")
    return f"{cpus} CPU cores" if cpus else "the CPU"


def opening(results: dict) -> str:
    """report.md's first paragraph: what was trained, how it compares with from scratch and with
    a real BERT, what the probe says, what more budget or a GPU would change, the command."""
    o = results.get("options", {})
    pt = results.get("pretraining") or {}
    d = results.get("data", {})
    task = results.get("task") or {}
    ev = (results.get("headline") or {}).get("evidence") or {}
    words = []
    vocab = (results.get("vocab") or {}).get("vocab_size", o.get("vocab_size"))
    params = f" ({pt['params'] / 1e6:.1f}M parameters)" if pt.get("params") else ""
    task_name = Path(str(d.get("task_dir", "the task"))).name
    if pt.get("steps"):
        tokens = f", {pt['tokens_seen'] / 1e6:.1f}M tokens" if pt.get("tokens_seen") else ""
        mlm = ev.get("mlm") or {}
        mlm_text = ""
        if mlm:
            mlm_text = f"; it ended filling in {_pct(mlm['accuracy'])} of masked words correctly"
            if mlm.get("most_frequent_token") is not None:
                mlm_text += f" (always guessing the most frequent word: {_pct(mlm['most_frequent_token'])})"
        words.append(
            f"bertkit trained a {vocab}-piece WordPiece vocabulary on {d.get('corpus_mb', '?')} MB of English "
            f"text and pre-trained a {pt.get('model', '?')} BERT{params} on it for "
            f"{_fmt_minutes(pt.get('seconds'))} (budget {_fmt_minutes(pt.get('budget_s'))}) on "
            f"{_device_words(results.get('machine', {}))}: {pt['steps']} steps{tokens}{mlm_text}."
        )
    else:
        words.append("No pre-training was run (budget 0): arm (a) starts from random weights, like (b).")
    arms = "the same network from random weights (from scratch)"
    if "minilm" in (results.get("finetune") or {}):
        arms += " and MiniLM, a real pre-trained BERT"
    words.append(
        f"It was then fine-tuned on {task_name} ({task.get('train_examples', '?')} training examples, "
        f"{o.get('seeds', '?')} seeds) next to {arms}."
    )
    hl = (results.get("headline") or {}).get("text")
    if hl:
        words.append(hl)
    budget = o.get("budget_s") or 900
    bigger = budget_label(max(4 * budget, 3600))
    out = o.get("out", "quickstart")
    words.append(
        "BERT itself was pre-trained on about 130 billion tokens; a few minutes on a CPU buy a tiny "
        "fraction of that, which is why a real checkpoint is the yardstick here. A larger budget gives "
        "the encoder more of the language (watch the MLM accuracy and the probe rise); a GPU "
        "(`--device cuda`, chosen automatically when present) sizes a larger model, batch and sequence "
        f"length in bf16 for the same minutes. To go further: `bertkit quickstart --budget {bigger} --out {out}` "
        "(reuses the data, vocabulary and baselines already there and adds the new budget to the "
        "budget-vs-gain table)."
    )
    return " ".join(words)


def budget_label(seconds: float) -> str:
    """``900`` -> ``"15m"``, ``90`` -> ``"90s"``: a budget as the command line and directory names write it."""
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def evidence_lines(results: dict) -> list[str]:
    """The "How sure is this?" section: each piece of evidence the headline weighed."""
    ev = (results.get("headline") or {}).get("evidence") or {}
    out = ["## How sure is this?", ""]
    g = ev.get("gap")
    if g:
        out.append(f"- gap, pre-trained minus from scratch: {g['points']:+.1f} points, {_interval(g)} ({g['method']})")
    m = ev.get("minilm_gap")
    if m:
        out.append(f"- gap, MiniLM minus from scratch: {m['points']:+.1f} points, {_interval(m)}")
    p = ev.get("probe")
    if p:
        out.append(
            f"- linear probe, pre-trained minus random weights: {p['points']:+.1f} points"
            + (f", {_interval(p)}" if p.get("ci95") else "")
            + (" -> the encoder learned nothing the task can use" if p.get("learned_nothing") else "")
        )
    mlm = ev.get("mlm")
    if mlm:
        out.append(
            f"- MLM accuracy {_pct(mlm['accuracy'])}, always guessing the most frequent token "
            f"{_pct(mlm.get('most_frequent_token'))}" + (" -> barely past that" if mlm.get("weak") else "")
        )
    for init, c in (ev.get("convergence") or {}).items():
        label = INIT_LABELS.get(init, init)
        if c.get("last_epoch_gain_points") is None:
            continue
        state = "still improving" if c["still_improving"] else "settled"
        if c.get("at_chance"):
            state = "at chance (majority class)"
        out.append(
            f"- {label}: median dev accuracy by epoch "
            + ", ".join(f"{100 * v:.1f}" for v in c["median_per_epoch"])
            + f" ({c['last_epoch_gain_points']:+.1f} over the last epoch: {state})"
        )
    return out + [""] if len(out) > 2 else []


def markdown(results: dict, images: list[str]) -> str:
    """report.md: the answer in one paragraph, then the evidence, setup, tables, plots, stages."""
    o = results.get("options", {})
    pt = results.get("pretraining") or {}
    d = results.get("data", {})
    out = ["# bertkit quickstart report", "", opening(results), ""]
    out += evidence_lines(results)
    out += [
        "## Setup",
        "",
        f"- corpus: {', '.join(map(str, d.get('corpus_files', [])))} ({d.get('corpus_mb', '?')} MB"
        + (f", {d['documents']} documents)" if d.get("documents") else ")"),
        f"- task: {d.get('task_dir', '?')}",
        f"- model: {pt.get('model', o.get('model', '?'))}, vocabulary "
        f"{results.get('vocab', {}).get('vocab_size', o.get('vocab_size', '?'))}, "
        f"max sequence {o.get('max_seq_length', '?')}, device {o.get('device', '?')}",
        (
            f"- pre-training: budget {_fmt_minutes(pt.get('budget_s'))} planned, "
            f"{_fmt_minutes(pt.get('seconds'))} used (training loop {_fmt_minutes(pt.get('train_s'))}); "
            f"{pt.get('steps', 0)} steps, precision {pt.get('precision', '?')}, learning rate schedule "
            f"{pt.get('schedule', 'by steps')}"
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
    chance = (results.get("task") or {}).get("dev_majority")
    if chance is not None:
        out.append(f"| majority class (chance) | {_fmt_acc(chance)} | | | |")
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
    plan = results.get("plan") or {}
    if stages:
        out += ["## Stages", "", "| stage | estimated s | took s | reused |", "| --- | --- | --- | --- |"]
        for name, st in stages.items():
            est = plan.get(name)
            out.append(
                f"| {name} | {'-' if est is None else f'{est:.0f}'} | {st.get('seconds', 0):.1f} | "
                f"{'yes' if st.get('cached') else 'no'} |"
            )
        out.append("")
        if results.get("total_seconds") is not None:
            out += [f"Whole run: {_fmt_minutes(results['total_seconds'])}.", ""]
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
    if plot_curves(results, out_dir / "curves.png"):
        paths["curves_png"] = out_dir / "curves.png"
        images.append("curves.png")
    if plot_budget_curve(results, out_dir / "budget_gap.png"):
        paths["budget_png"] = out_dir / "budget_gap.png"
        images.append("budget_gap.png")
    atomic_write_json(out_dir / "report.json", results)
    atomic_write_text(out_dir / "report.md", markdown(results, images))
    paths["json"] = out_dir / "report.json"
    paths["md"] = out_dir / "report.md"
    return paths
