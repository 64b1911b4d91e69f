"""Fault injection for training runs (issue #17, part 1): debris of killed saves, logs that
would hold a step twice, SIGTERM / SIGINT, a disk that fills up; and (``-m slow``) a soak of 20
SIGKILLs at random moments of one pre-training run, resumed each time, bit-identical to the run
that was never interrupted. A synthetic corpus and a hand-made vocabulary: no shared data needed."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO
from pretraining_helpers import make_documents, write_bert_format, write_vocab

from bertkit.pretrain import PretrainConfig, pretrain
from bertkit.tb_events import read_scalars
from bertkit.training.checkpoints import list_checkpoints


@pytest.fixture(autouse=True)
def _no_peak_probe(monkeypatch):
    monkeypatch.setenv("BERTKIT_PEAK_TFLOPS", "1")  # MFU's CPU peak probe: seconds per process


@pytest.fixture(scope="module")
def run_env(tmp_path_factory):
    from bertkit.pretraining.format import PrepareOptions
    from bertkit.pretraining.prepare import prepare

    tmp = tmp_path_factory.mktemp("runs")
    vocab = write_vocab(tmp / "vocab")
    corpus = write_bert_format(tmp / "corpus.txt", make_documents(300, seed=3))
    data = tmp / "data"
    opts = PrepareOptions(max_seq_length=32, dupe_factor=2, validation_fraction=0.1)
    prepare([corpus], vocab, data, opts, workers=1, progress=False)
    model = tmp / "tiny.json"
    n_vocab = len((vocab / "vocab.txt").read_text().splitlines())
    model.write_text(
        json.dumps(
            {
                "vocab_size": n_vocab,
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "max_position_embeddings": 32,
            }
        )
    )
    return {"data": data, "model": model, "vocab": vocab}


def _keys(env, max_steps, save_every, **extra) -> list[str]:
    keys = {
        "model": env["model"],
        "tokenizer": env["vocab"],
        "max_steps": max_steps,
        "batch_size": 8,
        "lr": 1e-3,
        "warmup_steps": 2,
        "save_every": save_every,
        "keep_last": 2,
        "eval_every": 0,
        "eval_batches": 1,
        "log_every": 1,
        "progress": "false",
        "device": "cpu",
        **extra,
    }  # default dropout 0.1: the RNG state must resume too
    return ["--data", str(env["data"]), *(f"{k}={v}" for k, v in keys.items())]


def _cfg(env, out, **kw) -> PretrainConfig:
    d = dict(
        data=str(env["data"]),
        out=str(out),
        model=str(env["model"]),
        tokenizer=str(env["vocab"]),
        batch_size=8,
        lr=1e-3,
        warmup_steps=2,
        eval_every=0,
        eval_batches=1,
        log_every=1,
        keep_last=0,
        progress=False,
        device="cpu",
    )
    d.update(kw)
    return PretrainConfig(**d)


def _subprocess_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}


def _cli(args, env_extra=None, script=None, timeout=300):
    env = {**_subprocess_env(), **(env_extra or {})}
    cmd = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "bertkit", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _weights(ckpt: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(ckpt / "model.safetensors"))


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _train_records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "train"]


def _tb_steps(run: Path, tag: str = "train/loss") -> list[int]:
    return sorted(s for f in (run / "tensorboard").iterdir() for s, t, _ in read_scalars(f) if t == tag)


def _debris(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


# ---------------------------------------------------------------------------------------------
# resume hygiene (issue #17 items 4, 5)


def test_resume_removes_debris_and_logs_no_step_twice(run_env, tmp_path):
    run = tmp_path / "run"
    pretrain(_cfg(run_env, run, max_steps=6, save_every=3))
    # as if killed while writing checkpoint-6: its half-written temp dir, no checkpoint-6
    shutil.rmtree(run / "checkpoint-6")
    partial = run / ".checkpoint-6.tmp-k1ll3d"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\0" * 1000)
    (run / ".summary.json.tmp-abc").write_text("{")
    summary = pretrain(_cfg(run_env, run, max_steps=6, save_every=3), resume=True)
    assert summary["step"] == 6
    assert _debris(run) == []
    assert [r["step"] for r in _train_records(run)] == [1, 2, 3, 4, 5, 6]
    assert _tb_steps(run) == [1, 2, 3, 4, 5, 6]  # steps 4-6 of the killed run were dropped


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_without_checkpoint_starts_a_new_log(run_env, tmp_path, resume):
    run = tmp_path / "run"
    pretrain(_cfg(run_env, run, max_steps=4, save_every=0))
    shutil.rmtree(run / "checkpoint-4")  # as if killed before its first checkpoint
    pretrain(_cfg(run_env, run, max_steps=3, save_every=0), resume=resume)
    assert [r["step"] for r in _train_records(run)] == [1, 2, 3]
    assert _tb_steps(run) == [1, 2, 3]


def test_overwrite_starts_a_finished_run_again(run_env, tmp_path):
    run = tmp_path / "run"
    pretrain(_cfg(run_env, run, max_steps=4, save_every=2))
    from bertkit.errors import BertkitError

    with pytest.raises(BertkitError, match="pass --resume to continue that run, --overwrite to start it again"):
        pretrain(_cfg(run_env, run, max_steps=3))
    pretrain(_cfg(run_env, run, max_steps=3), overwrite=True)
    assert [c.name for c in list_checkpoints(run)] == ["checkpoint-3"]
    assert [r["step"] for r in _train_records(run)] == [1, 2, 3]


# ---------------------------------------------------------------------------------------------
# preemption

SIGNAL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import bertkit.pretrain as P
    from bertkit.cli import main

    at = int(os.environ["SIGNAL_AT_CALL"])
    sig = getattr(signal, os.environ["SIGNAL_NAME"])
    calls = {"n": 0}
    real = P.pretraining_loss_fn

    def loss_fn(model, batch):
        calls["n"] += 1
        if calls["n"] == at:
            os.kill(os.getpid(), sig)
        return real(model, batch)

    P.pretraining_loss_fn = loss_fn
    sys.exit(main(sys.argv[1:]))
""")


def test_sigterm_and_sigint_checkpoint_at_the_next_step_and_resume_exactly(run_env, tmp_path):
    args = _keys(run_env, max_steps=12, save_every=100)  # no periodic checkpoint: the signals make them
    a = _cli(["pretrain", "--out", str(tmp_path / "A"), *args])
    assert a.returncode == 0, a.stderr

    b = tmp_path / "B"
    b1 = _cli(["pretrain", "--out", str(b), *args], {"SIGNAL_AT_CALL": "5", "SIGNAL_NAME": "SIGTERM"}, SIGNAL_SCRIPT)
    assert b1.returncode == 143, b1.stderr
    assert "SIGTERM: stopped at step 5" in b1.stderr and "Traceback" not in b1.stderr
    assert [c.name for c in list_checkpoints(b)] == ["checkpoint-5"] and _debris(b) == []
    b2 = _cli(
        ["pretrain", "--out", str(b), "--resume", *args],
        {"SIGNAL_AT_CALL": "3", "SIGNAL_NAME": "SIGINT"},
        SIGNAL_SCRIPT,
    )
    assert b2.returncode == 130, b2.stderr
    assert "SIGINT: stopped at step 8" in b2.stderr and "Traceback" not in b2.stderr
    b3 = _cli(["pretrain", "--out", str(b), "--resume", *args])
    assert b3.returncode == 0, b3.stderr
    _assert_same_weights(tmp_path / "A" / "checkpoint-12", b / "checkpoint-12")
    assert [r["loss"] for r in _train_records(b)] == [r["loss"] for r in _train_records(tmp_path / "A")]
    assert _debris(b) == []


def test_sigterm_during_finetune_exits_143_and_leaves_nothing(run_env, tmp_path):
    """A fine-tune has no resumable checkpoint: SIGTERM stops it at once, its temporary output
    directory is removed, nothing is published (before: a killed fine-tune left .OUT.tmp-*)."""
    from bertkit.config import BertConfig
    from bertkit.heads import BertForPreTraining
    from bertkit.tokenization import Tokenizer

    init = tmp_path / "init"
    cfg = json.loads(Path(run_env["model"]).read_text())
    BertForPreTraining(BertConfig.from_dict(cfg)).save_pretrained(
        init, tokenizer=Tokenizer.from_pretrained(run_env["vocab"])
    )
    rows = "".join(f"the cat {'runs' if i % 2 else 'sleeps'} .\t{i % 2}\n" for i in range(64))
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / name).write_text("sentence\tlabel\n" + rows)
    out = tmp_path / "ft"
    cmd = [
        sys.executable,
        "-m",
        "bertkit",
        "finetune",
        "--task",
        "classification",
        "--train",
        str(tmp_path / "train.tsv"),
    ]
    cmd += ["--dev", str(tmp_path / "dev.tsv"), "--init", str(init), "--out", str(out), "--epochs", "500"]
    cmd += ["--batch-size", "4", "--no-progress", "--device", "cpu"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=_subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while proc.poll() is None and not list(tmp_path.glob(".ft.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.01)  # training has started once its temporary output directory exists
    time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "bertkit finetune: terminated (SIGTERM)" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.tsv", "init", "train.tsv"]


# ---------------------------------------------------------------------------------------------
# disk full, on a real (1 MiB-ish) file system: tmpfs in a user + mount namespace


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || exit 1"],
        capture_output=True,
    )
    return probe.returncode == 0


NO_PRECHECK = textwrap.dedent("""
    import sys
    import bertkit.outputs as O
    O.check_free_space = lambda *a, **k: None  # the disk fills up after the check, as other writers do
    from bertkit.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.skipif(sys.platform != "linux", reason="tmpfs in a user namespace: Linux")
def test_disk_full_is_one_line_and_leaves_no_partial_checkpoint(run_env, tmp_path):
    if not _unshare_works():
        pytest.skip("unprivileged user + mount namespaces (unshare -rm) are not available here")
    mnt = tmp_path / "small"
    mnt.mkdir()
    args = _keys(run_env, max_steps=2, save_every=1)

    def in_small_fs(size: str, python_args: list[str]) -> subprocess.CompletedProcess:
        quoted = " ".join(f"'{a}'" for a in python_args)
        script = f"mount -t tmpfs -o size={size} tmpfs '{mnt}' && '{sys.executable}' {quoted}; rc=$?; ls -A '{mnt}/run' 2>/dev/null | sed 's/^/LEFT /'; exit $rc"  # noqa: E501
        return subprocess.run(
            ["unshare", "-rm", "sh", "-c", script],
            cwd=REPO,
            env=_subprocess_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )

    # too small for one checkpoint: refused before the first step
    r = in_small_fs("256k", ["-m", "bertkit", "pretrain", "--out", str(mnt / "run"), *args])
    assert r.returncode == 2, r.stderr
    assert "(a checkpoint): not enough disk space: needs about" in r.stderr and "Traceback" not in r.stderr
    assert "LEFT" not in r.stdout  # nothing written: the run directory is gone again

    # the disk fills up during the save (the check bypassed): one line, no partial checkpoint
    r = in_small_fs("256k", ["-c", NO_PRECHECK, "pretrain", "--out", str(mnt / "run"), *args])
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "out of disk space while writing the checkpoint" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    left = [line.split(" ", 1)[1] for line in r.stdout.splitlines() if line.startswith("LEFT ")]
    assert not [name for name in left if ".tmp-" in name or name.startswith("checkpoint-")], left


# ---------------------------------------------------------------------------------------------
# soak: SIGKILL at random moments


def _last_logged_step(run: Path) -> int:
    f = run / "metrics.jsonl"
    if not f.is_file():
        return 0
    step = 0
    for line in f.read_text().splitlines():
        try:
            step = max(step, json.loads(line).get("step", 0))
        except ValueError:
            pass  # a line being written
    return step


@pytest.mark.slow
def test_soak_20_sigkills_at_random_moments_resume_bit_identically(run_env, tmp_path):
    """One run killed 20 times (SIGKILL: no clean-up code runs) at a random moment after it has
    made progress -- inside a step, a log write, a checkpoint save -- and resumed each time;
    the end result equals the uninterrupted run bit for bit, every step is logged once, and no
    temporary file or directory is left."""
    kills, max_steps = 20, 120
    args = _keys(run_env, max_steps=max_steps, save_every=3, keep_last=2)
    a = _cli(["pretrain", "--out", str(tmp_path / "A"), *args])
    assert a.returncode == 0, a.stderr

    run, rng = tmp_path / "B", random.Random(17)
    metrics = run / "metrics.jsonl"
    killed, killed_in_save, seen_debris = 0, 0, 0
    while killed < kills:
        cmd = [sys.executable, "-m", "bertkit", "pretrain", "--out", str(run), "--resume", *args]
        before = metrics.stat().st_ino if metrics.exists() else None
        resumed = max([int(c.name.split("-")[1]) for c in list_checkpoints(run)] or [0])
        proc = subprocess.Popen(cmd, cwd=REPO, env=_subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # wait until THIS process has trained past its checkpoint (resume rewrites metrics.jsonl
        # atomically: a new inode), then kill it at a random moment
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if metrics.exists() and metrics.stat().st_ino != before and _last_logged_step(run) > resumed:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is not None:
            pytest.fail(f"the run ended before kill {killed + 1}: {proc.stderr.read().decode()[-2000:]}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        killed += 1
        debris = _debris(run)
        seen_debris += bool(debris)
        killed_in_save += any(name.startswith(".checkpoint-") for name in debris)
    final = _cli(["pretrain", "--out", str(run), "--resume", *args])
    assert final.returncode == 0, final.stderr

    _assert_same_weights(tmp_path / "A" / f"checkpoint-{max_steps}", run / f"checkpoint-{max_steps}")
    ra, rb = _train_records(tmp_path / "A"), _train_records(run)
    assert [r["step"] for r in rb] == list(range(1, max_steps + 1))
    assert [(r["loss"], r["lr"], r["grad_norm"]) for r in rb] == [(r["loss"], r["lr"], r["grad_norm"]) for r in ra]
    assert _tb_steps(run) == list(range(1, max_steps + 1))
    assert _debris(run) == []
    print(
        f"soak: {killed} SIGKILLs survived, {seen_debris} left debris "
        f"({killed_in_save} inside a checkpoint save), bit-identical after {max_steps} steps"
    )
