"""The training loop's wall-clock budget (``time_budget_s``): the learning-rate schedule follows
the fraction of the budget spent, so a run whose steps slow down mid-way still completes its
schedule and stops on time; a resumed run continues the same schedule. A fake clock stands in
for the wall clock (each step advances it), so nothing here depends on this machine's speed."""

from __future__ import annotations

import math

import pytest
import torch
from test_training import Crash, ListLoader, cfg, make_batches, make_model, mse_loss

from bertkit import runtime
from bertkit.optim import build_budget_scheduler, linear_warmup_linear_decay
from bertkit.training.checkpoints import list_checkpoints
from bertkit.training.loop import Trainer


@pytest.fixture(autouse=True)
def _fixed_peak(monkeypatch):
    """MFU's peak is measured with matmuls (slow on a busy machine) and plays no part here."""
    monkeypatch.setattr(runtime, "peak_flops", lambda *a, **k: 1e12)


class FakeClock:
    def __init__(self, start: float = 0.0):
        self.t = start

    def __call__(self) -> float:
        return self.t


def timed_loss(clock: FakeClock, seconds_per_call, crash_at: int | None = None):
    """A loss_fn that advances ``clock`` by ``seconds_per_call(i)`` for its i-th call (a step
    taking that long), recording the time each step started."""
    calls = {"n": 0, "starts": []}

    def loss_fn(model, batch):
        i = calls["n"]
        if crash_at is not None and i == crash_at:
            raise Crash
        calls["n"] += 1
        calls["starts"].append(clock.t)
        clock.t += seconds_per_call(i)
        return mse_loss(model, batch)

    return loss_fn, calls


def busy_after(n: int, fast: float = 1.0, slow: float = 4.0):
    """Steps take ``fast`` s, then ``slow`` s from the n-th on: the machine got busy."""
    return lambda i: fast if i < n else slow


def lrs(summary) -> list[float]:
    return [r["lr"] for r in summary["history"] if r["kind"] == "train"]


def test_slow_steps_still_end_on_time_with_the_schedule_completed():
    # Planned at 1 s/step: 100 nominal steps in 100 s, 10% warmup. From step 20 each step
    # takes 4.5 s (a busier machine): a step-driven schedule would be stopped at 40% of its
    # steps (or overrun to 340 s); the budget-driven one ends by 100 s with its LR decayed
    # (a step as long as the last would end past the budget, so it does not start one).
    clock = FakeClock()
    loss_fn, calls = timed_loss(clock, busy_after(20, slow=4.5))
    c = cfg(max_steps=100, warmup_steps=10, time_budget_s=100, log_every=1, lr=1e-2)
    tr = Trainer(make_model(), c, loss_fn, ListLoader(make_batches()), clock=clock)
    summary = tr.fit()
    assert summary["step"] == 20 + 17  # 20 fast steps (20 s), then 17 slow ones to 96.5 s
    assert summary["elapsed_s"] == pytest.approx(96.5)  # on time: an 18th slow step would end at 101
    lr = lrs(summary)
    assert max(lr) == pytest.approx(1e-2, rel=0.02)  # warmed up to the peak (10 s in)
    # The LR follows the fraction of the budget spent, not the step: each update's LR is the
    # schedule at (elapsed / budget) x nominal steps when the update started ...
    fn = linear_warmup_linear_decay(10, 100)
    for got, t in zip(lr, calls["starts"]):
        assert got == pytest.approx(1e-2 * fn(math.floor(min(1.0, t / 100) * 100)), rel=1e-6, abs=1e-12)
    # ... so the last one, started 92 s in, ran at 8/90 of the peak, on a schedule that reaches
    # 0 when the budget ends: completed, where steps would have stopped at 37% of theirs.
    assert calls["starts"][-1] == 92 and lr[-1] == pytest.approx(1e-2 * 8 / 90)


def test_a_fast_machine_runs_more_steps_and_still_stops_at_the_budget():
    clock = FakeClock()
    loss_fn, _ = timed_loss(clock, lambda i: 0.5)
    c = cfg(max_steps=100, warmup_steps=10, time_budget_s=100, log_every=10)
    summary = Trainer(make_model(), c, loss_fn, ListLoader(make_batches()), clock=clock).fit()
    assert summary["step"] == 200  # max_steps is the schedule's unit, not a cap
    assert summary["elapsed_s"] == pytest.approx(100)  # the 200th step ends exactly on the budget


def test_a_resumed_budget_run_continues_the_same_schedule(tmp_path):
    batches = make_batches()
    c = cfg(max_steps=60, warmup_steps=6, time_budget_s=60, log_every=1, save_every=10)
    # A: straight through, 1 s a step.
    clock_a = FakeClock()
    loss_a, _ = timed_loss(clock_a, lambda i: 1.0)
    ma = make_model()
    sa = Trainer(ma, c, loss_a, ListLoader(batches), out_dir=tmp_path / "a", clock=clock_a).fit()
    # B: crashes in step 26 (checkpoint at 20, i.e. 20 s spent), then a new process whose clock
    # reads something else entirely resumes: the 20 s come from the checkpoint.
    clock_b = FakeClock()
    loss_b, _ = timed_loss(clock_b, lambda i: 1.0, crash_at=25)
    with pytest.raises(Crash):
        Trainer(make_model(), c, loss_b, ListLoader(batches), out_dir=tmp_path / "b", clock=clock_b).fit()
    assert list_checkpoints(tmp_path / "b")[-1].name == "checkpoint-20"
    clock_c = FakeClock(start=5000.0)
    loss_c, _ = timed_loss(clock_c, lambda i: 1.0)
    mb = make_model(seed=99)
    sb = Trainer(mb, c, loss_c, ListLoader(batches), out_dir=tmp_path / "b", clock=clock_c).fit(resume=True)
    assert sa["step"] == sb["step"] == 60
    assert sb["elapsed_s"] == pytest.approx(60) and sb["elapsed_this_run_s"] == pytest.approx(40)
    assert lrs(sa)[-1] == pytest.approx(1e-2 * (60 - 59) / (60 - 6))  # the last update, 59 s in
    assert lrs(sb) == lrs(sa)  # the same schedule, record for record
    for (n, a), b in zip(ma.state_dict().items(), mb.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_budget_scheduler_reads_the_progress_not_the_step():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    progress = {"f": 0.0}
    sched = build_budget_scheduler(opt, "linear", 10, 100, lambda: progress["f"])
    for f, want in ((0.5, (100 - 50) / 90), (0.955, 5 / 90), (1.0, 0.0), (3.0, 0.0)):
        progress["f"] = f
        opt.step()
        sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(want)


def test_warmup_read_between_steps_never_overshoots_the_peak():
    """A run whose budget buys few steps reads the warmup at fractions between schedule units;
    read there, (step + 1) / warmup would pass the peak (1.3x at 2.9 of 3 warmup units)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    progress = {"f": 0.0}
    sched = build_budget_scheduler(opt, "linear", 3, 33, lambda: progress["f"])
    seen = []
    for i in range(1, 200):
        progress["f"] = i / 200
        opt.step()
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    assert max(seen) == pytest.approx(1.0)


def test_without_a_budget_steps_decide_whatever_the_clock_says():
    # time_budget_s 0 (the default): steps decide, whatever the clock says.
    clock = FakeClock()
    loss_fn, _ = timed_loss(clock, lambda i: 1000.0)
    summary = Trainer(make_model(), cfg(max_steps=7), loss_fn, ListLoader(make_batches()), clock=clock).fit()
    assert summary["step"] == 7 and summary["time_budget_s"] == 0
