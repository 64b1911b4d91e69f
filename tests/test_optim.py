"""Parameter groups, AdamW hyper-parameters, LAMB against a hand-written reference, schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bertkit.errors import BertkitError
from bertkit.optim import (
    Lamb,
    build_optimizer,
    build_scheduler,
    linear_warmup_constant,
    linear_warmup_cosine_decay,
    linear_warmup_linear_decay,
    param_groups,
)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(10, 4)
        self.dense = nn.Linear(4, 4)
        self.LayerNorm = nn.LayerNorm(4)
        self.decoder = nn.Linear(4, 10)
        self.decoder.weight = self.word_embeddings.weight  # tied, as the MLM head


def test_param_groups_no_decay_on_bias_and_layernorm():
    m = Block()
    decay, no_decay = param_groups(m, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    ids = lambda ps: {id(p) for p in ps}
    assert ids(decay["params"]) == {id(m.word_embeddings.weight), id(m.dense.weight)}
    assert ids(no_decay["params"]) == {
        id(m.dense.bias),
        id(m.LayerNorm.weight),
        id(m.LayerNorm.bias),
        id(m.decoder.bias),
    }
    # tied weight counted once, every trainable parameter present exactly once
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(m.parameters()))


def test_adamw_matches_original_hyperparameters():
    opt = build_optimizer(Block(), "adamw", lr=1e-4)
    assert isinstance(opt, torch.optim.AdamW)
    g = opt.param_groups[0]
    assert g["betas"] == (0.9, 0.999) and g["eps"] == 1e-6 and g["weight_decay"] == 0.01
    assert opt.param_groups[1]["weight_decay"] == 0.0


def test_unknown_optimizer_and_schedule():
    with pytest.raises(BertkitError, match="unknown value 'sgd'"):
        build_optimizer(Block(), "sgd")
    opt = build_optimizer(Block(), "adamw")
    with pytest.raises(BertkitError, match="unknown value 'poly'"):
        build_scheduler(opt, "poly", 1, 10)


def lamb_reference(w, g, steps, lr, b1=0.9, b2=0.999, eps=1e-6, wd=0.01):
    """NVIDIA LAMB written out in float64 for a single tensor and a constant gradient."""
    w, g = w.double().clone(), g.double()
    m = torch.zeros_like(w)
    v = torch.zeros_like(w)
    for t in range(1, steps + 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        u = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps) + wd * w
        r = (w.norm() / u.norm()).item() if wd else 1.0
        w = w - lr * r * u
    return w


@pytest.mark.parametrize("wd", [0.01, 0.0])
def test_lamb_matches_reference(wd):
    torch.manual_seed(0)
    w0 = torch.randn(5, 3)
    g = torch.randn(5, 3)
    p = nn.Parameter(w0.clone())
    opt = Lamb([p], lr=0.01, weight_decay=wd)
    for _ in range(3):
        p.grad = g.clone()
        opt.step()
    ref = lamb_reference(w0, g, 3, 0.01, wd=wd)
    assert torch.allclose(p.detach().double(), ref, atol=1e-6)


def test_lamb_state_round_trips():
    p = nn.Parameter(torch.ones(3))
    opt = Lamb([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    opt2 = Lamb([p], lr=0.1)
    opt2.load_state_dict(opt.state_dict())
    assert torch.equal(opt2.state[p]["exp_avg"], opt.state[p]["exp_avg"])


def test_schedules():
    lin = linear_warmup_linear_decay(10, 110)
    assert lin(0) == 0.0 and lin(1) == pytest.approx(0.1) and lin(10) == 1.0  # transformers: 0 at step 0
    assert lin(60) == pytest.approx(0.5) and lin(110) == 0.0 and lin(200) == 0.0
    cos = linear_warmup_cosine_decay(10, 110)
    assert cos(10) == pytest.approx(1.0) and cos(60) == pytest.approx(0.5) and cos(110) == pytest.approx(0.0)
    assert cos(200) == 0.0
    const = linear_warmup_constant(10, 110)
    assert const(5) == pytest.approx(0.5) and const(50) == 1.0 and const(10**6) == 1.0
    assert linear_warmup_linear_decay(0, 10)(0) == 1.0  # no warmup: full LR from step 0


@pytest.mark.parametrize("name", ["linear", "cosine", "constant"])
@pytest.mark.parametrize("warmup,total", [(0, 7), (1, 7), (3, 10), (10, 110), (7, 7)])
def test_schedules_are_transformers_step_for_step(name, warmup, total):
    """Issue #17 item 10: the warmup ran one step ahead of transformers ((s + 1) / warmup). Now
    every learning rate a step uses equals transformers' exactly, and resume continues it."""
    transformers = pytest.importorskip("transformers")
    reference = {
        "linear": lambda o: transformers.get_linear_schedule_with_warmup(o, warmup, total),
        "cosine": lambda o: transformers.get_cosine_schedule_with_warmup(o, warmup, total),
        "constant": lambda o: transformers.get_constant_schedule_with_warmup(o, warmup),
    }[name]
    ours_opt, ref_opt = (torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4) for _ in range(2))
    ours, ref = build_scheduler(ours_opt, name, warmup, total), reference(ref_opt)
    used, expected = [], []
    for step in range(total + 1):  # every step a run takes, and the 0 after it
        if step == total // 2:  # a resume half way: a fresh scheduler loaded from the state dict
            state = ours.state_dict()
            ours_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
            ours = build_scheduler(ours_opt, name, warmup, total)
            ours.load_state_dict(state)
            ours_opt.param_groups[0]["lr"] = ours.get_last_lr()[0]
        used.append(ours_opt.param_groups[0]["lr"])
        expected.append(ref_opt.param_groups[0]["lr"])
        ours_opt.step(), ref_opt.step(), ours.step(), ref.step()
    assert used == expected


def test_scheduler_drives_optimizer_lr():
    opt = build_optimizer(Block(), "adamw", lr=1.0)
    sched = build_scheduler(opt, "linear", warmup_steps=2, total_steps=4)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 0.5])  # then 0 after the last step
    assert math.isclose(opt.param_groups[1]["lr"], opt.param_groups[0]["lr"])
