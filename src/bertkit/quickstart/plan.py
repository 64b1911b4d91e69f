"""The quickstart's plan: an estimate per stage on this machine, made before the work starts
(pre-training is the budget; fine-tuning and the probe are timed on a few optimizer steps of each
architecture; vocabulary and preparation from rates per MB), and the ETA as stages finish."""

from __future__ import annotations

import dataclasses
import json
import random
import statistics
import time
from collections.abc import Callable

import torch

from bertkit import runtime
from bertkit.config import BertConfig
from bertkit.heads import BertForPreTraining, BertForSequenceClassification
from bertkit.pretrain import pretraining_loss_fn
from bertkit.quickstart.options import QuickstartOptions
from bertkit.quickstart.records import StageRecord
from bertkit.quickstart.stages import EVAL_BATCHES
from bertkit.report import budget_label
from bertkit.tasks import get_task
from bertkit.tokenization import Tokenizer

PROBE_STEPS = 3  # timed optimizer steps per architecture (after one untimed)
# Rates calibrated on the default run of 2026-12-02 on 2 quiet CPU cores (docs/RESULTS.md,
# "Quickstart"): the plan's estimate of each stage against what it took. Shown as estimates;
# the ETA follows what actually happens.
VOCAB_S_PER_MB = 1.1  # vocabulary training, seconds per MB of corpus (measured 21 s for 19.6 MB)
PREPARE_S_PER_MB = 0.4  # data preparation with dynamic masking (measured 8 s for 19.6 MB)
FT_OVERHEAD_S = 6.0  # per fine-tuning run: reading + featurising the task, building, saving
PROBE_FIT_S = 5.0  # per init: the linear probe's logistic regressions
FORWARD_FRACTION = 0.15  # a no-grad forward pass (dev/test scoring, the probe) per training step's time
WORDPIECES_PER_WORD = 1.3  # the vocabulary to be trained (8,192 pieces); a checkpoint's own is used instead


def time_train_step(model, batch: dict, loss_fn: Callable, precision: str, device, steps: int = PROBE_STEPS) -> float:
    """Median seconds of one optimizer step (forward, backward, AdamW) of ``model`` on
    ``batch``, after one untimed step (allocation, kernel selection)."""

    model = model.to(device).train()
    batch = {k: v.to(device) for k, v in batch.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with runtime.autocast(precision, device):
            loss = loss_fn(model, batch)
        loss.float().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_pretrain_step(opts: QuickstartOptions, precision: str, device) -> float:
    """Seconds per pre-training step of ``opts.model`` at ``opts.batch_size`` x ``opts.max_seq_length``."""

    cfg = BertConfig.from_preset(opts.model, vocab_size=opts.vocab_size)
    b, t = opts.batch_size, opts.max_seq_length
    p = max(1, round(0.15 * t))
    g = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(5, cfg.vocab_size, (b, t), generator=g),
        "attention_mask": torch.ones(b, t, dtype=torch.long),
        "token_type_ids": torch.zeros(b, t, dtype=torch.long),
        "masked_positions": torch.randint(1, t, (b, p), generator=g),
        "mlm_labels": torch.randint(5, cfg.vocab_size, (b, p), generator=g),
        "nsp_labels": torch.randint(0, 2, (b,), generator=g),
    }
    return time_train_step(BertForPreTraining(cfg), batch, lambda m, x: pretraining_loss_fn(m, x)[0], precision, device)


def time_finetune_step(config, batch_size: int, seq_len: int, labels: int, precision: str, device) -> float:
    """Seconds per fine-tuning step of a sequence classifier on ``config``'s encoder."""

    cfg = dataclasses.replace(config)
    cfg.num_labels = max(2, labels)
    g = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(5, cfg.vocab_size, (batch_size, seq_len), generator=g),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
        "token_type_ids": torch.zeros(batch_size, seq_len, dtype=torch.long),
        "labels": torch.randint(0, cfg.num_labels, (batch_size,), generator=g),
    }

    def loss(m, x):
        logits = m(x["input_ids"], x["attention_mask"], x["token_type_ids"])
        return torch.nn.functional.cross_entropy(logits.float(), x["labels"])

    return time_train_step(BertForSequenceClassification(cfg), batch, loss, precision, device)


def typical_batch_length(word_counts: list[int], batch_size: int, max_len: int, seed: int = 0) -> int:
    """Mean padded length of a fine-tuning batch: a text is about WORDPIECES_PER_WORD pieces a
    word plus [CLS] and [SEP], cut at ``max_len``; a batch is padded to its longest text."""
    return padded_batch_length([int(WORDPIECES_PER_WORD * w) + 2 for w in word_counts], batch_size, max_len, seed)


def padded_batch_length(token_counts: list[int], batch_size: int, max_len: int, seed: int = 0) -> int:
    """Mean padded length of a fine-tuning batch of texts of ``token_counts`` tokens (special
    tokens included), cut at ``max_len``, shuffled (seeded) and padded to each batch's longest."""
    if not token_counts:
        return max_len
    lengths = [min(max_len, n) for n in token_counts]
    rng = random.Random(seed)
    rng.shuffle(lengths)
    maxima = [max(lengths[i : i + batch_size]) for i in range(0, len(lengths), batch_size)]
    return max(2, round(statistics.fmean(maxima)))


def finetune_estimate(step_s: float, stats: dict, opts: QuickstartOptions) -> float:
    """Seconds of one fine-tuning run: its steps, a dev pass per epoch and one test pass (a
    forward pass costs FORWARD_FRACTION of a training step), and fixed costs."""
    steps = opts.ft_epochs * -(-stats["train_examples"] // opts.ft_batch_size)
    eval_examples = opts.ft_epochs * stats["dev_examples"] + stats.get("test_examples", 0)
    return steps * step_s + eval_examples / opts.ft_batch_size * step_s * FORWARD_FRACTION + FT_OVERHEAD_S


def make_plan(
    opts: QuickstartOptions,
    stats: dict,
    word_counts: list[int],
    arch: dict[str, object],
    precision: str,
    device,
    corpus_mb: float,
    token_counts: dict[str, list[int]] | None = None,
) -> tuple[dict[str, tuple[float, str]], float]:
    """``({stage name: (estimated seconds, what it does)}, pre-training seconds per step)`` for
    the stages after the data, in order (seconds per step 0.0 with budget 0).

    ``arch`` maps each init to its model config; fine-tuning is timed on a few steps of each
    distinct architecture, pre-training on a few steps of the model to pre-train (which only
    says how many steps the budget will buy: the budget itself is the estimate). Each is timed
    at the task's typical padded batch length: from ``token_counts[init]`` (the training texts'
    token counts under that init's own tokenizer) where given, else from ``word_counts``.
    """
    plan: dict[str, tuple[float, str]] = {}
    plan["vocab"] = (VOCAB_S_PER_MB * corpus_mb, f"WordPiece vocabulary ({opts.vocab_size} pieces)")
    plan["prepare"] = (PREPARE_S_PER_MB * corpus_mb, "NSP pairs + masking")
    token_counts = token_counts or {}
    step_s: dict[str, float] = {}
    timed: dict[str, float] = {}
    for init, cfg in arch.items():
        if init in token_counts:
            seq = padded_batch_length(token_counts[init], opts.ft_batch_size, opts.ft_max_seq_length)
        else:
            seq = typical_batch_length(word_counts, opts.ft_batch_size, opts.ft_max_seq_length)
        key = json.dumps([cfg.to_dict(), seq], sort_keys=True, default=str)
        if key not in timed:
            timed[key] = time_finetune_step(cfg, opts.ft_batch_size, seq, stats["labels"], precision, device)
        step_s[init] = timed[key]
    pt_step = 0.0
    if opts.budget_s > 0:
        pt_step = time_pretrain_step(opts, precision, device)
        steps = int(opts.budget_s / pt_step)
        overhead = EVAL_BATCHES * pt_step / 3 + 10.0
        plan["pretrain"] = (
            opts.budget_s + overhead,
            f"{opts.model}, {budget_label(opts.budget_s)} budget (about {steps} steps at {pt_step:.2f} s/step now)",
        )
    for init in arch:
        est = finetune_estimate(step_s[init], stats, opts)
        for seed in range(opts.seeds):
            plan[f"finetune-{init}-seed{seed}"] = (est, f"fine-tune {init}, seed {seed} ({step_s[init]:.2f} s/step)")
    n = stats["train_examples"] + stats["dev_examples"]
    plan["probe"] = (
        sum(n / opts.ft_batch_size * step_s[i] * FORWARD_FRACTION + PROBE_FIT_S for i in arch),
        "linear probe of each frozen encoder",
    )
    return plan, pt_step


class Timeline:
    """Announces the plan and, after each stage, the time left and the expected end (UTC).

    Fine-tuning estimates of an init are rescaled by what its finished runs actually took, so
    the ETA follows the machine's load."""

    def __init__(self, log: Callable[[str], None] = print, clock: Callable[[], float] = time.time):
        self.log, self.clock = log, clock
        self.plan: dict[str, tuple[float, str]] = {}
        self.done: dict[str, tuple[float, bool]] = {}

    def announce(self, plan: dict[str, tuple[float, str]]) -> None:
        self.plan = dict(plan)
        total = sum(s for s, _ in self.plan.values())
        lines = ["== plan (estimates on this machine, now):"]
        for name, (sec, what) in self.plan.items():
            lines.append(f"   {name:<24} {fmt_s(sec):>8}  {what}")
        lines.append(f"   {'total':<24} {fmt_s(total):>8}  expected end {self._clock_text(total)}")
        self.log("\n".join(lines))

    def stage_done(self, rec: StageRecord) -> None:
        self.done[rec.name] = (rec.seconds, rec.cached)
        if not self.plan or rec.name not in self.plan:
            return
        left = self.remaining()
        todo = sum(1 for k in self.plan if k not in self.done)
        self.log(f"   ETA: {todo} stage(s) left, about {fmt_s(left)}, expected end {self._clock_text(left)}")

    def remaining(self) -> float:
        """Seconds the stages not yet done should take (fine-tuning rescaled per init)."""
        ratio: dict[str, tuple[float, float]] = {}
        for name, (sec, cached) in self.done.items():
            if name.startswith("finetune-") and not cached and name in self.plan:
                group = name.rsplit("-seed", 1)[0]
                a, e = ratio.get(group, (0.0, 0.0))
                ratio[group] = (a + sec, e + self.plan[name][0])
        left = 0.0
        for name, (sec, _) in self.plan.items():
            if name in self.done:
                continue
            a, e = ratio.get(name.rsplit("-seed", 1)[0], (0.0, 0.0))
            left += sec * (a / e if e > 0 else 1.0)
        return left

    def _clock_text(self, seconds_from_now: float) -> str:
        now, end = time.gmtime(self.clock()), time.gmtime(self.clock() + seconds_from_now)
        same_day = (now.tm_year, now.tm_yday) == (end.tm_year, end.tm_yday)
        return time.strftime("%H:%M UTC" if same_day else "%Y-%m-%d %H:%M UTC", end)


def fmt_s(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def plan_run(
    opts: QuickstartOptions, data: dict, stats: dict, minilm_dir: str | None, precision: str
) -> tuple[dict[str, tuple[float, str]], float]:
    """The stage estimates (see :func:`make_plan`) for this run's inits and task."""

    own = BertConfig.from_preset(opts.model, vocab_size=opts.vocab_size)
    arch = {"pretrained": own, "scratch": own}
    train = get_task("classification").read(data["task_files"]["train"])
    words = [len((e.text or "").split()) + len((e.text_pair or "").split()) for e in train]
    token_counts = {}
    if minilm_dir:
        arch["minilm"] = BertConfig.from_pretrained(minilm_dir)
        token_counts["minilm"] = text_token_counts(Tokenizer.from_pretrained(minilm_dir), train)
    device = runtime.choose_device(opts.device)
    return make_plan(opts, stats, words, arch, precision, device, data["corpus_mb"], token_counts)


def text_token_counts(tok: Tokenizer, examples: list) -> list[int]:
    """Tokens of each example as fine-tuning feeds it: [CLS] text [SEP] (+ pair [SEP])."""
    a = tok.tokenize_ids_batch([e.text or "" for e in examples])
    pairs = [e.text_pair for e in examples if e.text_pair]
    b = iter(tok.tokenize_ids_batch(pairs)) if pairs else iter(())
    return [len(x) + 2 + (len(next(b)) + 1 if e.text_pair else 0) for x, e in zip(a, examples)]
