"""The training loop on a small nn.Module: accumulation, checkpoints, exact resume, divergence guard,
logging files, activation checkpointing, DDP (2-process gloo) equivalence."""

from __future__ import annotations

import json
import math
import os
import socket
from collections import namedtuple

import pytest
import torch
from torch import nn

from bertkit.errors import BertkitError
from bertkit.tb_events import read_scalars
from bertkit.training.checkpoints import list_checkpoints
from bertkit.training.config import TrainConfig
from bertkit.training.loop import Trainer
from bertkit.training.steps import enable_activation_checkpointing


class TinyNet(nn.Module):
    """Embedding -> 2 residual blocks (in a ModuleList) -> mean pool -> linear regression head."""

    def __init__(self, vocab=50, hidden=16, dropout=0.1):
        super().__init__()
        self.emb = nn.Embedding(vocab, hidden)
        self.layer = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.LayerNorm(hidden))
            for _ in range(2)
        )
        self.head = nn.Linear(hidden, 1)

    def forward(self, input_ids):
        h = self.emb(input_ids)  # (B, T, H)
        for block in self.layer:
            h = h + block(h)
        return self.head(h.mean(1)).squeeze(-1)  # (B,)


class ListLoader:
    """A deterministic, endless, stateful loader over a fixed list of batches."""

    def __init__(self, batches):
        self.batches = batches
        self.pos = 0

    def __iter__(self):
        while True:
            b = self.batches[self.pos % len(self.batches)]
            self.pos += 1
            yield b

    def state_dict(self):
        return {"pos": self.pos}

    def load_state_dict(self, d):
        self.pos = d["pos"]


def make_batches(n=16, bsz=8, seq=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, 50, (bsz, seq), generator=g)
        out.append({"input_ids": ids, "labels": (ids.float().mean(1) / 25.0 - 1.0)})
    return out


def mse_loss(model, batch):
    pred = model(batch["input_ids"])
    loss = nn.functional.mse_loss(pred, batch["labels"])
    return loss, {"mse": loss.item()}


def make_model(seed=0, dropout=0.1):
    torch.manual_seed(seed)
    return TinyNet(dropout=dropout)


def cfg(**kw):
    base = dict(max_steps=20, lr=1e-2, warmup_steps=2, log_every=5, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls_and_summary(tmp_path):
    model = make_model()
    tr = Trainer(
        model,
        cfg(max_steps=60, eval_every=30),
        mse_loss,
        ListLoader(make_batches()),
        out_dir=tmp_path,
        eval_fn=lambda m: {"const": 1.0},
    )
    summary = tr.fit()
    train = [r for r in summary["history"] if r["kind"] == "train"]
    assert train[-1]["loss"] < 0.5 * train[0]["loss"]
    assert summary["step"] == 60 and summary["eval"]["const"] == 1.0
    assert {"loss", "lr", "grad_norm", "mse", "tokens_per_s", "mfu"} <= set(summary["train"])
    assert summary["train"]["tokens_per_s"] > 0 and summary["train"]["mfu"] > 0


def test_grad_accum_matches_big_batch():
    """2 micro-batches of 4 == 1 batch of 8 (no dropout): same weights after 5 steps."""
    big = make_batches(n=5, bsz=8)
    small = []
    for b in big:
        small += [{k: v[:4] for k, v in b.items()}, {k: v[4:] for k, v in b.items()}]
    m1, m2 = make_model(dropout=0.0), make_model(dropout=0.0)
    Trainer(m1, cfg(max_steps=5), mse_loss, ListLoader(big)).fit()
    Trainer(m2, cfg(max_steps=5, grad_accum=2), mse_loss, ListLoader(small)).fit()
    for (n, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_checkpoints_files_keep_last_and_logs(tmp_path):
    model = make_model()
    Trainer(model, cfg(save_every=5, keep_last=2), mse_loss, ListLoader(make_batches()), out_dir=tmp_path).fit()
    ckpts = list_checkpoints(tmp_path)
    assert [c.name for c in ckpts] == ["checkpoint-15", "checkpoint-20"]
    for name in ("model.safetensors", "trainer_state.pt", "meta.json"):
        assert (ckpts[-1] / name).is_file()
    meta = json.loads((ckpts[-1] / "meta.json").read_text())
    assert meta["step"] == 20 and meta["train_config"]["max_steps"] == 20 and "torch" in meta["versions"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [5, 10, 15, 20]
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    scalars = read_scalars(events[0])
    losses = [(s, v) for s, tag, v in scalars if tag == "train/loss"]
    assert [s for s, _ in losses] == [5, 10, 15, 20]
    assert math.isclose(losses[0][1], records[0]["loss"], rel_tol=1e-6)


class Crash(Exception):
    pass


def crash_at(call):
    count = {"n": 0}

    def loss_fn(model, batch):
        if count["n"] == call:
            raise Crash
        count["n"] += 1
        return mse_loss(model, batch)

    return loss_fn


def test_resume_is_bitwise_exact(tmp_path):
    """A: 20 steps straight. B: crashes in step 18 (checkpoint at 10, metrics logged at 15), a fresh Trainer resumes to 20."""
    batches = make_batches()
    ma = make_model()
    Trainer(ma, cfg(), mse_loss, ListLoader(batches)).fit()

    mb = make_model()
    with pytest.raises(Crash):
        Trainer(mb, cfg(save_every=10), crash_at(17), ListLoader(batches), out_dir=tmp_path).fit()
    assert [c.name for c in list_checkpoints(tmp_path)] == ["checkpoint-10"]
    # a different initialisation and RNG state: resume must overwrite all of it
    mb2 = make_model(seed=99)
    torch.manual_seed(1234)
    tr = Trainer(mb2, cfg(), mse_loss, ListLoader(batches), out_dir=tmp_path)
    summary = tr.fit(resume=True)
    assert summary["step"] == 20
    # the run's time counts the first process's part up to its checkpoint, not only this process's
    first = torch.load(tmp_path / "checkpoint-10" / "trainer_state.pt", weights_only=False)["elapsed_s"]
    assert first > 0 and summary["elapsed_s"] == pytest.approx(first + summary["elapsed_this_run_s"])
    for (n, a), b in zip(ma.state_dict().items(), mb2.state_dict().values()):
        assert torch.equal(a, b), n
    # metrics.jsonl has each step once
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    tr = Trainer(make_model(), cfg(max_steps=3), mse_loss, ListLoader(make_batches()), out_dir=tmp_path)
    assert tr.fit(resume=True)["step"] == 3


def nan_loss_at(calls_to_poison):
    """A loss_fn returning NaN on the given (0-based) call numbers."""
    count = {"n": 0}

    def loss_fn(model, batch):
        loss, m = mse_loss(model, batch)
        i = count["n"]
        count["n"] += 1
        if i in calls_to_poison:
            loss = loss * float("nan")
        return loss, m

    return loss_fn


def test_single_nonfinite_step_is_skipped_and_counted():
    model = make_model()
    summary = Trainer(model, cfg(max_steps=10), nan_loss_at({3}), ListLoader(make_batches())).fit()
    assert summary["step"] == 10 and summary["skipped_steps"] == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_divergence_rolls_back_and_lowers_lr(tmp_path):
    # calls 12..14 are bad: 3 in a row -> roll back to checkpoint-10, LR halved
    tr = Trainer(
        make_model(),
        cfg(max_steps=16, save_every=10, divergence_patience=3, schedule="constant"),
        nan_loss_at({12, 13, 14}),
        ListLoader(make_batches()),
        out_dir=tmp_path,
    )
    summary = tr.fit()
    assert summary["step"] == 16 and summary["rollbacks"] == 1 and summary["skipped_steps"] == 3
    assert tr.state.lr_scale == 0.5
    assert math.isclose(tr.optimizer.param_groups[0]["lr"], 0.5 * 1e-2)


def test_divergence_stop_and_no_checkpoint_messages(tmp_path):
    with pytest.raises(BertkitError, match="divergence_action=stop"):
        Trainer(
            make_model(),
            cfg(divergence_patience=2, divergence_action="stop"),
            nan_loss_at({4, 5}),
            ListLoader(make_batches()),
        ).fit()
    with pytest.raises(BertkitError, match="no checkpoint to roll back to"):
        Trainer(
            make_model(), cfg(divergence_patience=2), nan_loss_at({4, 5}), ListLoader(make_batches()), out_dir=tmp_path
        ).fit()


@pytest.mark.parametrize(
    "bad, msg",
    [
        (dict(max_steps=0), "max_steps"),
        (dict(optimizer="sgd"), "optimizer must be one of adamw, lamb"),
        (dict(precision="fp8"), "precision"),
        (dict(schedule="poly"), "schedule"),
        (dict(grad_accum=0), "grad_accum"),
    ],
)
def test_bad_train_config(bad, msg):
    with pytest.raises(BertkitError, match=msg):
        Trainer(make_model(), cfg(**bad), mse_loss, ListLoader(make_batches()))


def fp16_trainer(model, config, loss_fn, loader, out_dir=None, **scaler_kw):
    """A Trainer in fp16 whose loss scaler has the given settings (e.g. one that grows fast
    enough to overflow within a few steps)."""
    tr = Trainer(model, config, loss_fn, loader, out_dir=out_dir)
    if scaler_kw:
        tr.scaler = torch.amp.GradScaler("cpu", **scaler_kw)
    return tr


def test_fp16_loss_scaling_trains(monkeypatch):
    monkeypatch.setenv("BERTKIT_PEAK_TFLOPS", "1")  # skip the (slow on CPU) fp16 matmul probe
    tr = fp16_trainer(
        make_model(), cfg(max_steps=30, precision="fp16", device="cpu"), mse_loss, ListLoader(make_batches())
    )
    summary = tr.fit()
    train = [r for r in summary["history"] if r["kind"] == "train"]
    assert train[-1]["loss"] < train[0]["loss"]
    # the default scale (2^16) may overflow once or twice before it settles
    assert summary["step"] == 30 and summary["overflow_steps"] <= 2
    assert tr.scaler.get_scale() == 2.0 ** (16 - summary["overflow_steps"])


def test_fp16_overflow_skips_the_update_and_the_schedule():
    """A loss scale of 2^100 overflows fp16 gradients: no weight, optimizer or scheduler change,
    the scale halves, the step is not counted (and not treated as divergence)."""
    model = make_model()
    tr = fp16_trainer(
        model,
        cfg(max_steps=3, precision="fp16", device="cpu"),
        mse_loss,
        ListLoader(make_batches()),
        init_scale=2.0**100,
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    *_, overflow = tr._train_step()
    assert overflow and tr.scaler.get_scale() == 2.0**99
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert tr.scheduler.last_epoch == 0 and not tr.optimizer.state
    summary = tr.fit()
    assert summary["step"] == 3 and summary["skipped_steps"] == 0 and summary["rollbacks"] == 0
    assert summary["overflow_steps"] >= 80  # halved from 2^99 until fp16 gradients fit
    assert tr.scheduler.last_epoch == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_fp16_resume_is_bitwise_exact_with_the_scaler_state(tmp_path):
    """A scaler that doubles every 2 steps overflows repeatedly; a run crashed after its
    checkpoint and resumed must replay the same scale decisions and end bitwise equal."""
    batches, fast = make_batches(), dict(init_scale=2.0**10, growth_interval=2)
    config = dict(max_steps=24, precision="fp16", device="cpu")
    ma = make_model()
    a = fp16_trainer(ma, cfg(**config), mse_loss, ListLoader(batches), **fast).fit()
    assert a["overflow_steps"] > 0
    mb = make_model()
    with pytest.raises(Crash):
        fp16_trainer(
            mb,
            cfg(save_every=12, **config),
            crash_at(a["overflow_steps"] + 20),
            ListLoader(batches),
            out_dir=tmp_path,
            **fast,
        ).fit()
    assert [c.name for c in list_checkpoints(tmp_path)] == ["checkpoint-12"]
    mb2 = make_model(seed=99)
    b = fp16_trainer(mb2, cfg(**config), mse_loss, ListLoader(batches), out_dir=tmp_path).fit(resume=True)
    assert b["step"] == 24 and b["overflow_steps"] == a["overflow_steps"]
    for (n, x), y in zip(ma.state_dict().items(), mb2.state_dict().values()):
        assert torch.equal(x, y), n


def test_bf16_autocast_trains():
    summary = Trainer(
        make_model(), cfg(max_steps=30, precision="bf16", device="cpu"), mse_loss, ListLoader(make_batches())
    ).fit()
    train = [r for r in summary["history"] if r["kind"] == "train"]
    assert train[-1]["loss"] < train[0]["loss"]


def test_out_of_disk_is_a_clear_error(tmp_path, monkeypatch):
    import shutil

    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(BertkitError, match="checkpoint-5: not enough disk space: needs about"):
        Trainer(make_model(), cfg(save_every=5), mse_loss, ListLoader(make_batches()), out_dir=tmp_path).fit()
    assert list_checkpoints(tmp_path) == []


def test_activation_checkpointing_same_gradients():
    batch = make_batches(n=1)[0]
    grads = []
    for ckpt in (False, True):
        m = make_model(dropout=0.1)
        if ckpt:
            assert enable_activation_checkpointing(m) == 2
        torch.manual_seed(5)
        loss, _ = mse_loss(m, batch)
        loss.backward()
        grads.append([p.grad.clone() for p in m.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-7)


def test_plain_iterable_loader_resumes_by_replay(tmp_path):
    batches = make_batches(n=7)  # a list: re-iterated each epoch, no state_dict
    ma = make_model()
    Trainer(ma, cfg(max_steps=12), mse_loss, batches).fit()
    mb = make_model()
    with pytest.raises(Crash):
        Trainer(mb, cfg(max_steps=12, save_every=6), crash_at(8), batches, out_dir=tmp_path).fit()
    mb2 = make_model(seed=7)
    Trainer(mb2, cfg(max_steps=12), mse_loss, batches, out_dir=tmp_path).fit(resume=True)
    for a, b in zip(ma.state_dict().values(), mb2.state_dict().values()):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------
# DDP: 2 gloo processes with micro-batch b == 1 process with grad_accum 2


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RankSlice(ListLoader):
    """Rank r of w takes micro-batch r, r+w, r+2w, ... of the global sequence."""

    def __init__(self, batches, rank, world):
        super().__init__(batches[rank::world])


def _ddp_worker(rank, world, port, out):
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    try:
        model = make_model(dropout=0.0)
        batches = make_batches(n=40, bsz=4)
        tr = Trainer(model, cfg(max_steps=20, log_every=1, device="cpu"), mse_loss, RankSlice(batches, rank, world))
        summary = tr.fit()
        if rank == 0:
            losses = [r["loss"] for r in summary["history"] if r["kind"] == "train"]
            torch.save({"losses": losses, "state": model.state_dict()}, out)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow  # tests/test_pretrain.py proves the same with torchrun on the real model
def test_ddp_two_processes_match_grad_accum(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    ddp = torch.load(out)

    model = make_model(dropout=0.0)
    summary = Trainer(
        model,
        cfg(max_steps=20, log_every=1, grad_accum=2, device="cpu"),
        mse_loss,
        ListLoader(make_batches(n=40, bsz=4)),
    ).fit()
    single = [r["loss"] for r in summary["history"] if r["kind"] == "train"]
    assert len(single) == len(ddp["losses"]) == 20
    for a, b in zip(single, ddp["losses"]):
        assert abs(a - b) < 1e-5
    for a, b in zip(model.state_dict().values(), ddp["state"].values()):
        assert torch.allclose(a, b, atol=1e-5)


def test_save_every_minutes(tmp_path):
    """A tiny interval saves after every step; keep_last prunes the rest."""
    Trainer(
        make_model(),
        cfg(max_steps=4, save_every_minutes=1e-9, keep_last=2),
        mse_loss,
        ListLoader(make_batches()),
        out_dir=tmp_path,
    ).fit()
    assert [c.name for c in list_checkpoints(tmp_path)] == ["checkpoint-3", "checkpoint-4"]


def test_resume_with_another_world_size_is_an_error(tmp_path):
    Trainer(make_model(), cfg(max_steps=2), mse_loss, ListLoader(make_batches()), out_dir=tmp_path).fit()
    path = tmp_path / "checkpoint-2" / "trainer_state.pt"
    state = torch.load(path, weights_only=False)
    state["world_size"] = 2
    torch.save(state, path)
    with pytest.raises(BertkitError, match="saved with world size 2, now 1"):
        Trainer(make_model(), cfg(max_steps=4), mse_loss, ListLoader(make_batches()), out_dir=tmp_path).fit(resume=True)


def test_checkpoints_without_later_counters_still_resume(tmp_path):
    """trainer_state.pt files written before overflow_steps / elapsed_s were kept still resume."""
    Trainer(make_model(), cfg(max_steps=2), mse_loss, ListLoader(make_batches()), out_dir=tmp_path).fit()
    path = tmp_path / "checkpoint-2" / "trainer_state.pt"
    state = torch.load(path, weights_only=False)
    del state["overflow_steps"], state["elapsed_s"]
    torch.save(state, path)
    tr = Trainer(make_model(), cfg(max_steps=4), mse_loss, ListLoader(make_batches()), out_dir=tmp_path)
    summary = tr.fit(resume=True)
    assert summary["step"] == 4 and summary["overflow_steps"] == 0
    assert tr.state.tokens_seen == state["tokens_seen"] * 2


def test_lamb_trains():
    summary = Trainer(make_model(), cfg(max_steps=40, optimizer="lamb"), mse_loss, ListLoader(make_batches())).fit()
    train = [r for r in summary["history"] if r["kind"] == "train"]
    assert train[-1]["loss"] < 0.7 * train[0]["loss"]


@pytest.mark.parametrize(
    "seconds,steps", [(0.0, ["5/20", "10/20", "15/20", "20/20"]), (3600.0, ["5/20", "20/20"])]
)  # rate-limited: first, last
def test_no_progress_bar_logs_text_progress_lines(capsys, seconds, steps):
    """Without the bar (--no-progress, logs on a cluster) the loop still says where it is."""
    tr = Trainer(
        make_model(), cfg(max_steps=20, log_every=5, text_log_seconds=seconds), mse_loss, ListLoader(make_batches())
    )
    tr.fit()
    out = capsys.readouterr()
    lines = [ln for ln in (out.out + out.err).splitlines() if ln.startswith("step ")]
    assert [ln.split()[1] for ln in lines] == steps
    assert all("loss " in ln and "ETA " in ln for ln in lines)


def test_default_flops_leave_out_embedding_tables():
    """6 * N * tokens with N the matmul parameters: embedding lookups cost no FLOPs per token."""
    model = make_model()
    tr = Trainer(model, cfg(), mse_loss, ListLoader(make_batches()))
    batch = make_batches(n=1)[0]
    n_matmul = sum(p.numel() for p in model.parameters()) - model.emb.weight.numel()
    assert tr.flops_fn(batch) == 6.0 * n_matmul * batch["input_ids"].numel()


def test_measured_peak_is_the_best_of_the_first_windows(tmp_path, monkeypatch):
    """A CPU peak measured while the cores were busy reads low and inflates MFU; the peak is
    re-measured over the first PEAK_CHECKS log windows and the best kept (then no more cost)."""
    from bertkit import runtime
    from bertkit.training.throughput import PEAK_CHECKS

    monkeypatch.delenv("BERTKIT_PEAK_TFLOPS", raising=False)
    monkeypatch.setattr(runtime, "_measured_peaks", {})
    speeds = iter([1e9, 4e9, 2e9, 100e9, 100e9])  # first: a busy moment; 100e9 is never asked for
    calls = []

    def fake_measure(device, precision):
        calls.append(precision)
        return next(speeds)

    monkeypatch.setattr(runtime, "measure_matmul_flops", fake_measure)
    cpu = torch.device("cpu")
    assert runtime.peak_flops(cpu, "fp32") == 1e9 and runtime.peak_flops(cpu, "fp32") == 1e9  # cached
    assert runtime.peak_flops(cpu, "fp32", remeasure=True) == 4e9
    assert runtime.peak_flops(cpu, "fp32", remeasure=True) == 4e9  # 2e9 is worse: the best is kept
    monkeypatch.setattr(runtime, "_measured_peaks", {})
    speeds = iter([1e9, 4e9, 2e9, 100e9])
    calls.clear()
    tr = Trainer(make_model(), cfg(max_steps=10, log_every=2), mse_loss, ListLoader(make_batches()), out_dir=tmp_path)
    tr.fit()
    assert len(calls) == PEAK_CHECKS == 3
    mfu = [r["mfu"] for r in tr.state.history if r["kind"] == "train"]
    assert tr._peak == 4e9 and len(mfu) == 5 and all(m > 0 for m in mfu)
