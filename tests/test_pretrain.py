"""Pre-training end to end on real text (a slice of ../shared/data/corpus/sample.txt, MiniLM's
vocabulary, a tiny model): loss falls, exact resume after SIGKILL, 2-process DDP == 1 process with
grad_accum 2, config round-trip, clear errors for bad configs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import REPO, require_shared

from bertkit.errors import BertkitError
from bertkit.pretrain import PretrainConfig, pretrain
from bertkit.training.checkpoints import list_checkpoints

TINY = {
    "vocab_size": 30522,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 64,
}


def _prepare(tmp: Path, nsp: bool) -> Path:
    from bertkit.pretraining.format import PrepareOptions
    from bertkit.pretraining.prepare import prepare

    sample = require_shared("corpus", "sample.txt")
    vocab = require_shared("checkpoints", "minilm-l6-uncased")
    text = tmp / "sample300k.txt"
    if not text.exists():
        text.write_bytes(sample.read_bytes()[:300_000].rsplit(b"\n\n", 1)[0] + b"\n")
    out = tmp / ("prepared-nsp" if nsp else "prepared-mlm")
    prepare(
        [text],
        vocab,
        out,
        PrepareOptions(max_seq_length=64, dupe_factor=1, validation_fraction=0.1, nsp=nsp),
        workers=1,
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pretrain")
    data = _prepare(tmp, nsp=True)
    model_cfg = tmp / "tiny.json"
    model_cfg.write_text(json.dumps(TINY))
    return {
        "tmp": tmp,
        "data": data,
        "model": model_cfg,
        "tokenizer": require_shared("checkpoints", "minilm-l6-uncased"),
    }


def base_cfg(env, out, **kw) -> PretrainConfig:
    d = dict(
        data=str(env["data"]),
        out=str(out),
        model=str(env["model"]),
        tokenizer=str(env["tokenizer"]),
        max_steps=40,
        batch_size=8,
        lr=2e-3,
        warmup_steps=4,
        save_every=0,
        eval_every=20,
        eval_batches=4,
        log_every=5,
        progress=False,
        device="cpu",
    )
    d.update(kw)
    return PretrainConfig(**d)


def test_loss_falls_eval_and_checkpoint(env, tmp_path):
    from bertkit.heads import BertForPreTraining
    from bertkit.tokenization import Tokenizer

    summary = pretrain(base_cfg(env, tmp_path / "run"))
    train = [r for r in summary["history"] if r["kind"] == "train"]
    evals = [r for r in summary["history"] if r["kind"] == "eval"]
    assert train[-1]["loss"] < train[0]["loss"] - 1.0, (train[0]["loss"], train[-1]["loss"])
    assert [e["step"] for e in evals] == [20, 40]
    assert {"mlm_loss", "mlm_acc", "nsp_loss", "nsp_acc"} <= set(evals[-1])
    assert evals[-1]["mlm_loss"] < evals[0]["mlm_loss"]
    assert 0 < summary["train"]["mfu"] < 1
    ckpt = Path(summary["checkpoint"])
    assert ckpt.name == "checkpoint-40"
    for name in (
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer_config.json",
        "trainer_state.pt",
        "meta.json",
    ):
        assert (ckpt / name).is_file(), name
    meta = json.loads((ckpt / "meta.json").read_text())
    assert meta["config"]["model"] == str(env["model"]) and meta["step"] == 40
    assert meta["metrics"]["eval"]["step"] == 40
    model = BertForPreTraining.from_pretrained(ckpt)
    assert model.config.hidden_size == 64
    assert len(Tokenizer.from_pretrained(ckpt)) == 30522
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["step"] == 40 and "history" not in saved


def test_mlm_only_data_trains_without_nsp(env, tmp_path):
    data = _prepare(env["tmp"], nsp=False)
    summary = pretrain(base_cfg(env, tmp_path / "run", data=str(data), max_steps=4, eval_every=0, log_every=1))
    assert "nsp_loss" not in summary["train"] and "mlm_loss" in summary["train"]
    assert set(summary["eval"]) == {"step", "mlm_loss", "mlm_acc"}


def test_fp16_with_loss_scaling_trains_bert(env, tmp_path, monkeypatch):
    """The CUDA recipe's fp16 path (autocast + dynamic loss scaling), run on CPU: BERT's MLM+NSP
    loss falls, the weights stay finite and fp32, the scaler state is in the checkpoint."""
    import torch

    monkeypatch.setenv("BERTKIT_PEAK_TFLOPS", "1")  # skip the slow fp16 matmul probe on CPU
    summary = pretrain(base_cfg(env, tmp_path / "run", precision="fp16", max_steps=15, eval_every=0))
    train = [r for r in summary["history"] if r["kind"] == "train"]
    assert train[-1]["loss"] < train[0]["loss"] - 0.5, (train[0]["loss"], train[-1]["loss"])
    assert summary["step"] == 15 and summary["skipped_steps"] == 0
    state = torch.load(Path(summary["checkpoint"]) / "trainer_state.pt", weights_only=False)
    assert state["scaler"]["scale"] == 2.0 ** (16 - summary["overflow_steps"])
    from safetensors.torch import load_file

    weights = load_file(Path(summary["checkpoint"]) / "model.safetensors")
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())


# ---------------------------------------------------------------------------------------------
# exact resume after SIGKILL (subprocesses)

KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import bertkit.pretrain as P
    from bertkit.cli import main

    kill_at = int(os.environ["KILL_AT_CALL"])
    # under torchrun: only rank KILL_RANK, only in the first attempt (restarts run through)
    killer = os.environ.get("RANK", "0") == os.environ.get("KILL_RANK", "0")
    killer = killer and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    calls = {"n": 0}
    real = P.pretraining_loss_fn

    def loss_fn(model, batch):
        calls["n"] += 1
        if killer and calls["n"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(model, batch)

    P.pretraining_loss_fn = loss_fn
    hide = os.environ.get("HIDE_CHECKPOINTS_AFTER_RESTART")
    if hide is not None and hide == os.environ.get("RANK") and not killer:
        # this rank's view of the run directory lags (a shared file system's cached listing)
        import bertkit.training.resume as R

        R.list_checkpoints = lambda out_dir: []
    sys.exit(main(sys.argv[1:]))
""")


def _cli(args, env_extra=None, script=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "bertkit", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _weights(ckpt: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(ckpt / "model.safetensors"))


def test_resume_after_sigkill_is_bitwise_exact(env, tmp_path):
    n = 6
    args = [
        "--data",
        str(env["data"]),
        "model=" + str(env["model"]),
        "tokenizer=" + str(env["tokenizer"]),
        f"max_steps={2 * n}",
        "batch_size=8",
        "grad_accum=2",
        "lr=1e-3",
        "warmup_steps=2",
        f"save_every={n}",
        "eval_every=0",
        "eval_batches=2",
        "log_every=1",
        "progress=false",
        "device=cpu",
        "precision=fp32",
    ]  # default dropout 0.1: the RNG state must resume too
    a = _cli(["pretrain", "--out", str(tmp_path / "A"), *args])
    assert a.returncode == 0, a.stderr

    # B: SIGKILLed in step n+2 (after checkpoint-n and after metrics of step n+1 were logged)
    b1 = _cli(["pretrain", "--out", str(tmp_path / "B"), *args], {"KILL_AT_CALL": str((n + 1) * 2 + 1)}, KILL_SCRIPT)
    assert b1.returncode == -9, b1.stderr
    assert [c.name for c in list_checkpoints(tmp_path / "B")] == [f"checkpoint-{n}"]
    b2 = _cli(["pretrain", "--out", str(tmp_path / "B"), "--resume", *args])
    assert b2.returncode == 0, b2.stderr
    assert f"resumed from {tmp_path / 'B' / f'checkpoint-{n}'} at step {n}" in b2.stderr + b2.stdout

    wa, wb = _weights(tmp_path / "A" / f"checkpoint-{2 * n}"), _weights(tmp_path / "B" / f"checkpoint-{2 * n}")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    steps = [json.loads(line)["step"] for line in (tmp_path / "B" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 2 * n + 1)) + [2 * n]  # train records 1..2n, then the final eval


# ---------------------------------------------------------------------------------------------
# DDP: 2 gloo processes (torchrun) == 1 process with grad_accum 2, on one node and on two
# simulated nodes; elastic restart after a worker is SIGKILLed

DDP_ARGS = [
    "max_steps=20",
    "batch_size=4",
    "lr=1e-3",
    "warmup_steps=2",
    "dropout=0",
    "eval_every=0",
    "eval_batches=1",
    "log_every=1",
    "progress=false",
    "device=cpu",
]


def _data_args(env) -> list[str]:
    return ["--data", str(env["data"]), "model=" + str(env["model"]), "tokenizer=" + str(env["tokenizer"])]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(
    launcher: list[str], target: list[str], nodes: int = 1, env_extra: dict | None = None
) -> list[subprocess.CompletedProcess]:
    """Run ``torchrun LAUNCHER TARGET`` as ``nodes`` agents (simulated nodes of one machine, all
    started before any is waited for); one CompletedProcess per agent."""
    env_ = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", *launcher, *target]
    procs = [
        subprocess.Popen(
            cmd, cwd=REPO, env=env_, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        for _ in range(nodes)
    ]
    done = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for q in procs:  # the agents and their workers (a hung group would outlive its agent)
                os.killpg(q.pid, signal.SIGKILL)
            raise
        done.append(subprocess.CompletedProcess(cmd, p.returncode, out, err))
    return done


def _train_losses(run: Path) -> list[float]:
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in recs if r["kind"] == "train"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), (k, (wa[k] - wb[k]).abs().max())


@pytest.fixture(scope="module")
def one_process_accum2(env):
    """The reference: one process, grad_accum 2 (the same 8 sequences a step as 2 ranks x 4)."""
    out = env["tmp"] / "ddp-one"
    one = _cli(["pretrain", "--out", str(out), *_data_args(env), *DDP_ARGS, "grad_accum=2"])
    assert one.returncode == 0, one.stderr
    return out


def test_ddp_two_processes_match_one_process_grad_accum(env, one_process_accum2, tmp_path):
    (two,) = _torchrun(
        ["--standalone", "--nproc_per_node=2", "--module"],
        ["bertkit", "pretrain", "--out", str(tmp_path / "two"), *_data_args(env), *DDP_ARGS, "grad_accum=1"],
    )
    assert two.returncode == 0, two.stderr[-3000:]
    l1, l2 = _train_losses(one_process_accum2), _train_losses(tmp_path / "two")
    assert len(l1) == len(l2) == 20
    assert max(abs(a - b) for a, b in zip(l1, l2)) < 1e-5, list(zip(l1, l2))
    meta = json.loads((tmp_path / "two" / "checkpoint-20" / "meta.json").read_text())
    assert meta["world_size"] == 2


@pytest.mark.slow
def test_two_simulated_nodes_match_one_process_grad_accum(env, one_process_accum2, tmp_path):
    """The multi-node launch of docs/TRAINING.md: two torchrun agents (one process each) meet
    through the c10d rendezvous as two nodes. The gradient is the same arithmetic as one process
    with grad_accum 2 (g1/2 + g2/2 == (g1 + g2)/2 exactly: halving is exact, a sum of two
    commutes), so the weights are bitwise equal."""
    launcher = [
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{_free_port()}",
        "--rdzv-id=two-nodes",
        "--max-restarts=1",  # unused here; with torchrun's shared store, bertkit warns that it would fail
        "--module",
    ]
    target = ["bertkit", "pretrain", "--out", str(tmp_path / "two"), *_data_args(env), *DDP_ARGS, "grad_accum=1"]
    agents = _torchrun(launcher, target, nodes=2)
    for a in agents:
        assert a.returncode == 0, a.stderr[-3000:]
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in "".join(a.stdout + a.stderr for a in agents)
    meta = json.loads((tmp_path / "two" / "checkpoint-20" / "meta.json").read_text())
    assert meta["world_size"] == 2
    assert len(_train_losses(tmp_path / "two")) == 20
    _assert_same_weights(one_process_accum2 / "checkpoint-20", tmp_path / "two" / "checkpoint-20")


@pytest.mark.slow
def test_elastic_restart_after_sigkill_resumes_bitwise_exact(env, tmp_path):
    """torchrun --max-restarts: one worker of two simulated nodes is SIGKILLed in step n+2 (after
    checkpoint-n); both agents restart their workers, which resume from checkpoint-n (``--resume``
    in the launch line: the first attempt starts fresh on the empty run directory) and finish
    bitwise equal to an uninterrupted run with the same world size (dropout on: every rank's
    RNG state resumes too). After the restart rank 1's listing of the run directory is empty (a
    lagging shared file system): it resumes from rank 0's choice all the same."""
    n = 6
    args = [
        *_data_args(env),
        f"max_steps={2 * n}",
        "batch_size=4",
        "lr=1e-3",
        "warmup_steps=2",
        f"save_every={n}",
        "eval_every=0",
        "eval_batches=1",
        "log_every=1",
        "progress=false",
        "device=cpu",
    ]
    (ref,) = _torchrun(
        ["--standalone", "--nproc_per_node=2", "--module"], ["bertkit", "pretrain", "--out", str(tmp_path / "A"), *args]
    )
    assert ref.returncode == 0, ref.stderr[-3000:]

    script = tmp_path / "kill_worker.py"
    script.write_text(KILL_SCRIPT)
    launcher = [
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{_free_port()}",
        "--rdzv-id=elastic",
        "--max-restarts=1",
        "--monitor-interval=0.5",
    ]
    target = [str(script), "pretrain", "--out", str(tmp_path / "B"), "--resume", *args]
    kill = {"KILL_RANK": "1", "KILL_AT_CALL": str(n + 2)}  # in step n+2 (one micro-batch a step)
    # after the restart rank 1 does not see checkpoint-n yet: rank 0's choice must still hold
    kill["HIDE_CHECKPOINTS_AFTER_RESTART"] = "1"
    # without it the restarted workers read the failed attempt's addresses from torchrun's shared
    # store and never connect (pytorch#135712; bertkit warns at start-up)
    fresh_store = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    agents = _torchrun(launcher, target, nodes=2, env_extra={**kill, **fresh_store})
    logs = "\n".join(a.stderr + a.stdout for a in agents)
    for a in agents:
        assert a.returncode == 0, logs[-4000:]
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE" not in logs  # no warning: the store is fresh
    assert "starting from scratch" in logs  # attempt 0: --resume on an empty directory
    assert f"resumed from {tmp_path / 'B' / f'checkpoint-{n}'} at step {n}" in logs, logs[-4000:]
    _assert_same_weights(tmp_path / "A" / f"checkpoint-{2 * n}", tmp_path / "B" / f"checkpoint-{2 * n}")
    steps = [json.loads(line)["step"] for line in (tmp_path / "B" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 2 * n + 1)) + [2 * n]  # the killed attempt's records after step n dropped


# ---------------------------------------------------------------------------------------------
# configs and errors


def test_config_round_trip(tmp_path):
    cfg = PretrainConfig(data="d", out="o", model="base", init=None, max_steps=7, lr=3e-4, compile=True)
    cfg.save(tmp_path / "c.json")
    assert PretrainConfig.from_file(tmp_path / "c.json") == cfg
    over = cfg.with_overrides(["lr=1e-3", "init=none", "compile=false", "max_steps=1e3", "tokenizer=v"])
    assert (over.lr, over.init, over.compile, over.max_steps, over.tokenizer) == (1e-3, None, False, 1000, "v")


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.json")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = PretrainConfig.from_file(path)
    assert cfg.max_steps >= 1


def test_cli_config_file_and_overrides_reach_pretrain(env, tmp_path):
    cfgfile = tmp_path / "c.json"
    base_cfg(env, tmp_path / "x", max_steps=2, eval_every=0).save(cfgfile)
    r = _cli(["pretrain", "--config", str(cfgfile), "--out", str(tmp_path / "cli"), "max_steps=3"])
    assert r.returncode == 0, r.stderr
    assert "done: step 3/3" in r.stderr + r.stdout
    assert [c.name for c in list_checkpoints(tmp_path / "cli")] == ["checkpoint-3"]


def test_cli_help_lists_every_key():
    r = _cli(["pretrain", "--help"])
    assert r.returncode == 0
    for key in PretrainConfig().to_dict():
        assert re.search(rf"\n  --{key.replace('_', '-')}[ ,\n]", r.stdout), key


@pytest.mark.parametrize(
    "overrides, msg",
    [
        (["lrr=1"], "unknown key 'lrr' (did you mean 'lr'?)"),
        (["max_steps=ten"], "max_steps: expected int, got 'ten'"),
        (["compile=maybe"], "compile: expected bool"),
        (["precision=fp8"], "precision must be one of fp32, bf16, fp16"),
        (["optimizer=sgd"], "optimizer must be one of adamw, lamb"),
    ],
)
def test_bad_keys_are_clear_errors(env, tmp_path, overrides, msg):
    with pytest.raises(BertkitError) as e:
        pretrain(base_cfg(env, tmp_path / "r").with_overrides(overrides))
    assert msg in str(e.value)


def test_config_file_unknown_key_names_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"max_step": 3}))
    with pytest.raises(BertkitError, match=r"bad.json: unknown key 'max_step' \(did you mean 'max_steps'\?\)"):
        PretrainConfig.from_file(p)


def test_vocab_size_mismatch(env, tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({**TINY, "vocab_size": 1000}))
    with pytest.raises(BertkitError, match="vocab_size 1000 does not match the data's vocab_size 30522"):
        pretrain(base_cfg(env, tmp_path / "r", model=str(bad)))


def test_tokenizer_not_the_datas_vocabulary(env, tmp_path):
    other = tmp_path / "tok"
    other.mkdir()
    lines = (env["tokenizer"] / "vocab.txt").read_text().splitlines()
    (other / "vocab.txt").write_text("\n".join(lines[:-1] + ["zzzz"]) + "\n")
    with pytest.raises(BertkitError, match="different vocabulary"):
        pretrain(base_cfg(env, tmp_path / "r", tokenizer=str(other)))


def test_missing_data(env, tmp_path):
    with pytest.raises(BertkitError, match="no such data directory"):
        pretrain(base_cfg(env, tmp_path / "r", data=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BertkitError, match="no manifest.json"):
        pretrain(base_cfg(env, tmp_path / "r", data=str(tmp_path / "empty")))


def test_existing_run_needs_resume(env, tmp_path):
    pretrain(base_cfg(env, tmp_path / "r", max_steps=1, eval_every=0))
    with pytest.raises(BertkitError, match="pass --resume"):
        pretrain(base_cfg(env, tmp_path / "r", max_steps=2))
    assert pretrain(base_cfg(env, tmp_path / "r", max_steps=2, eval_every=0), resume=True)["step"] == 2


def test_torchrun_restart_without_resume_says_what_to_launch(env, tmp_path, monkeypatch):
    pretrain(base_cfg(env, tmp_path / "r", max_steps=1, eval_every=0))
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    with pytest.raises(BertkitError, match="torchrun restart: put --resume in the launch line"):
        pretrain(base_cfg(env, tmp_path / "r", max_steps=2))


@pytest.mark.parametrize(
    "environ, blocked",
    [
        ({"TORCHELASTIC_MAX_RESTARTS": "3", "TORCHELASTIC_USE_AGENT_STORE": "True"}, True),
        ({"TORCHELASTIC_MAX_RESTARTS": "0", "TORCHELASTIC_USE_AGENT_STORE": "True"}, False),
        ({"TORCHELASTIC_MAX_RESTARTS": "3", "TORCHELASTIC_USE_AGENT_STORE": "False"}, False),  # disabled
        ({}, False),  # not under torchrun
    ],
)
def test_shared_store_restart_trap_is_detected(monkeypatch, environ, blocked):
    from bertkit import runtime

    for key in ("TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_USE_AGENT_STORE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    assert runtime.shared_store_blocks_restarts() is blocked


def test_plot_curves(tmp_path):
    pytest.importorskip("matplotlib")
    from bertkit.pretrain import plot_curves

    run = tmp_path / "run"
    run.mkdir()
    recs = [{"kind": "train", "step": s, "loss": 10 - s} for s in (1, 2, 3)]
    recs += [{"kind": "eval", "step": 3, "mlm_loss": 7.0, "mlm_acc": 0.1, "nsp_loss": 0.6, "nsp_acc": 0.6}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    png = plot_curves(run, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(BertkitError, match="no such file"):
        plot_curves(tmp_path / "nope", tmp_path / "d.png")


def test_cli_options_may_follow_key_values(tmp_path):
    r = _cli(["pretrain", "--out", str(tmp_path / "o"), "lr=1e-3", "--data", str(tmp_path / "nope")])
    assert r.returncode == 2 and f"{tmp_path / 'nope'}: no such data directory" in r.stderr
    r = _cli(["pretrain", "--out", str(tmp_path / "o"), "lr=1e-3", "--bogus"])
    assert r.returncode == 2 and "unknown option '--bogus'" in r.stderr


def test_init_from_checkpoint_continues_pretraining(env, tmp_path):
    """Phase-2 style: start from a phase-1 checkpoint's weights (new optimizer, new schedule)."""
    from safetensors.torch import load_file

    first = pretrain(base_cfg(env, tmp_path / "p1", max_steps=30, eval_every=0))
    ckpt = Path(first["checkpoint"])
    second = pretrain(
        base_cfg(
            env,
            tmp_path / "p2",
            model="ignored-when-init",
            init=str(ckpt),
            tokenizer=None,
            max_steps=1,
            lr=1e-12,
            warmup_steps=0,
            eval_every=0,
            log_every=1,
        )
    )
    # lr ~ 0: the weights after one step are the phase-1 weights
    a, b = load_file(str(ckpt / "model.safetensors")), load_file(str(Path(second["checkpoint"]) / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert (Path(second["checkpoint"]) / "vocab.txt").is_file()  # tokenizer taken from init


def test_checkpoint_takes_tokenizer_from_data_dir_when_none_given(env, tmp_path):
    # Without tokenizer= or init=, checkpoints used to hold no vocab.txt, so
    # `bertkit finetune --init RUN` failed on a run made exactly as the README shows.
    summary = pretrain(base_cfg(env, tmp_path / "run", tokenizer=None, max_steps=2, eval_every=0))
    ckpt = Path(summary["checkpoint"])
    assert (ckpt / "vocab.txt").read_bytes() == (Path(env["data"]) / "vocab.txt").read_bytes()
    assert (ckpt / "tokenizer_config.json").is_file()


@pytest.mark.slow
def test_torch_compile_trains_like_eager_and_saves_plain_weights(env, tmp_path):
    """compile=true runs through torch.compile (inductor on CPU, ~1 min of compiling): same
    losses as eager to float tolerance, and the checkpoint holds the plain module's keys."""
    from safetensors import safe_open

    eager = pretrain(base_cfg(env, tmp_path / "eager", max_steps=6, eval_every=0, dropout=0.0))
    comp = pretrain(base_cfg(env, tmp_path / "compiled", max_steps=6, eval_every=0, dropout=0.0, compile=True))
    le = [r["loss"] for r in eager["history"] if r["kind"] == "train"]
    lc = [r["loss"] for r in comp["history"] if r["kind"] == "train"]
    assert len(le) == len(lc) and max(abs(a - b) for a, b in zip(le, lc)) < 1e-3, (le, lc)
    with safe_open(str(Path(comp["checkpoint"]) / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not any("_orig_mod" in k for k in keys)
