"""The one training loop, used by pre-training and fine-tuning alike.

::

    cfg = TrainConfig(max_steps=1000, lr=1e-4, warmup_steps=100, grad_accum=2, save_every=200)
    trainer = Trainer(model, cfg, loss_fn, train_loader, out_dir="runs/x", eval_fn=eval_fn)
    summary = trainer.fit()            # or trainer.fit(resume=True)

``loss_fn(model, batch) -> (loss, {name: float})`` computes the loss of one micro-batch (the
model it receives may be DDP- or compile-wrapped: call it, don't reach into it).
``eval_fn(model) -> {name: float}`` runs on rank 0 under ``model.eval()`` and ``torch.no_grad()``.

One optimizer step = ``grad_accum`` micro-batches (DDP all-reduces only on the last, the others
run under ``no_sync``), optional loss scaling (fp16), gradient clipping, optimizer + scheduler
step. Around it: a tqdm bar, ``metrics.jsonl`` and TensorBoard event files in ``out_dir``,
atomic checkpoints every N steps and/or minutes (keep the last K), exact O(1) resume from the
newest complete checkpoint, and a divergence guard (non-finite loss -> step skipped and counted;
``divergence_patience`` in a row -> roll back to the last checkpoint with a lower learning rate,
or stop with a clear message). With an ``out_dir``, SIGTERM / SIGINT save a checkpoint at the
next step boundary and then raise :class:`~bertkit.errors.Terminated` / ``KeyboardInterrupt``
(the CLI exits 143 / 130).

The settings are :class:`~bertkit.training.config.TrainConfig`; the run's progress is one
:class:`~bertkit.training.checkpoints.TrainerState`, saved and restored with the checkpoints
(:mod:`bertkit.training.checkpoints`); the log is :class:`~bertkit.training.runlog.RunLog`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint
from tqdm import tqdm

from bertkit import runtime
from bertkit.checkpoint import first_non_finite
from bertkit.errors import BertkitError, Terminated
from bertkit.optim import build_budget_scheduler, build_optimizer, build_scheduler
from bertkit.training.checkpoints import (
    TRAINER_STATE,
    TrainerState,
    list_checkpoints,
    load_model_weights,
    prune_checkpoints,
    read_trainer_state,
    write_checkpoint,
)
from bertkit.training.config import TrainConfig
from bertkit.training.runlog import RunLog

PEAK_CHECKS = 3  # log windows over which a measured (CPU) peak FLOP/s is re-measured, best kept

LossFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, dict[str, float]]"]
EvalFn = Callable[[nn.Module], "dict[str, float]"]


# ----------------------------------------------------------------------------------------------
# helpers


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Recompute every repeated layer's activations during backward instead of storing them.

    Wraps the ``forward`` of each child of every ``nn.ModuleList`` (for BERT: the encoder
    layers) in non-reentrant ``torch.utils.checkpoint``, which replays the RNG so dropout masks
    match. Returns how many modules were wrapped; raises if the model has no such list.
    """
    wrapped = 0
    for module in model.modules():
        if not isinstance(module, nn.ModuleList):
            continue
        for layer in module:
            if getattr(layer, "_bertkit_checkpointed", False):
                continue
            original = layer.forward

            def forward(*args, __orig=original, **kwargs):
                if torch.is_grad_enabled():
                    return _checkpoint(__orig, *args, use_reentrant=False, **kwargs)
                return __orig(*args, **kwargs)

            layer.forward = forward
            layer._bertkit_checkpointed = True
            wrapped += 1
    if not wrapped:
        raise BertkitError("activation_checkpointing: the model has no nn.ModuleList of layers to checkpoint")
    return wrapped


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters that cost FLOPs per token (for the default 6 * N * tokens): all but embedding
    tables, which are looked up, not multiplied (half of MiniLM's 22.7M; counting them put a
    fine-tuning run's MFU above 100%)."""
    lookups = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in lookups)


def count_tokens(batch: Any) -> int:
    """Token positions in a batch: ``input_ids.numel()`` (padding included), else 0."""
    if isinstance(batch, dict) and isinstance(batch.get("input_ids"), torch.Tensor):
        return batch["input_ids"].numel()
    if isinstance(batch, torch.Tensor) and batch.ndim >= 2:
        return batch.shape[0] * batch.shape[1]
    return 0


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor (in dicts, lists, tuples) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def _fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class _Batches:
    """An endless iterator over ``loader`` that knows how to save and restore its position.

    With a loader that has ``state_dict``/``load_state_dict`` (``PretrainingLoader``) resume is
    O(1). Any other iterable is re-iterated epoch after epoch and resumed by replaying the
    consumed batches -- exact when its iteration order is deterministic.
    """

    def __init__(self, loader: Iterable):
        self.loader = loader
        self.stateful = hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict")
        self.consumed = 0
        self._it = None

    def __next__(self):
        if self._it is None:
            self._it = iter(self.loader)
        try:
            batch = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            try:
                batch = next(self._it)
            except StopIteration:
                raise BertkitError("training data: the loader yielded no batches") from None
        self.consumed += 1
        return batch

    def state_dict(self) -> dict:
        state = {"consumed": self.consumed}
        if self.stateful:
            state["loader"] = self.loader.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self._it = None
        if self.stateful:
            self.loader.load_state_dict(state["loader"])
            self.consumed = state["consumed"]
        else:
            self.consumed = 0
            for _ in range(state["consumed"]):
                next(self)


# ----------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """Train ``model`` with ``loss_fn`` on batches from ``train_loader``; see the module docstring.

    Keyword-only extras: ``flops_fn(batch) -> float`` (training FLOPs of one micro-batch, for MFU;
    default ``6 * parameters * tokens``), ``run_config`` (the resolved user-level config dict
    written to ``meta.json``; default the :class:`TrainConfig`) and ``clock`` (seconds, for the
    elapsed time and ``time_budget_s``; default ``time.perf_counter``).
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        loss_fn: LossFn,
        train_loader: Iterable,
        out_dir: str | Path | None = None,
        eval_fn: EvalFn | None = None,
        tokenizer: Any = None,
        *,
        flops_fn: Callable[[Any], float] | None = None,
        run_config: dict | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        cfg.validate()
        self.cfg = cfg
        self._clock = clock
        self.loss_fn = loss_fn
        self.eval_fn = eval_fn
        self.tokenizer = tokenizer
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_config = run_config if run_config is not None else dataclasses.asdict(cfg)
        self.device = runtime.choose_device(cfg.device)
        runtime.check_precision(cfg.precision)
        self.dist = runtime.init_distributed(self.device)
        runtime.seed_everything(cfg.seed + self.dist.rank)

        self.model = model.to(self.device)  # the raw module: saved, loaded, evaluated
        if cfg.activation_checkpointing:
            enable_activation_checkpointing(self.model)
        self.forward_model: nn.Module = self.model  # what loss_fn gets: maybe DDP / compiled
        if self.dist.enabled:
            self.forward_model = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters,
            )
        if cfg.compile:
            self.forward_model = torch.compile(self.forward_model)

        self.optimizer = build_optimizer(
            self.model, cfg.optimizer, cfg.lr, cfg.weight_decay, (cfg.adam_beta1, cfg.adam_beta2), cfg.adam_eps
        )
        self.state = TrainerState()
        self._fit_start: float | None = None
        self._last_step_s = 0.0  # duration of the last step (a time budget does not start one it cannot finish)
        if cfg.time_budget_s > 0:
            self.scheduler = build_budget_scheduler(
                self.optimizer, cfg.schedule, cfg.warmup_steps, cfg.max_steps, self.budget_progress
            )
        else:
            self.scheduler = build_scheduler(self.optimizer, cfg.schedule, cfg.warmup_steps, cfg.max_steps)
        self._step_lr = self.optimizer.param_groups[0]["lr"]  # the learning rate of the latest update
        self.scaler = runtime.make_grad_scaler(cfg.precision, self.device)
        self.batches = _Batches(train_loader)
        n_params = matmul_params(self.model)
        self.flops_fn = flops_fn or (lambda batch: 6.0 * n_params * count_tokens(batch))
        self._peak = 0.0  # lazily: measuring the CPU peak takes a moment
        self._peak_checks = 0

        self.last_checkpoint: Path | None = None
        self._log = RunLog(self.out_dir if self.dist.is_main else None, cfg.tensorboard)

    # ------------------------------------------------------------------------------ public

    def fit(self, resume: bool | str | Path = False) -> dict:
        """Train to ``cfg.max_steps``; returns ``{"step", "train", "eval", "history", ...}``.

        ``resume=True`` continues from the newest complete checkpoint in ``out_dir`` (starting
        fresh, with a message, when there is none); a path resumes from that checkpoint.
        """
        if resume:
            self._resume(resume)
        self._check_initial_weights()
        cfg = self.cfg
        start_time = self._fit_start = self._clock()
        start_step = self.state.step
        last_save_time = time.monotonic()
        consecutive_bad = 0
        window = _Window()
        bar = self._progress_bar()
        last_text_log = -math.inf
        signals = _StopSignals(enabled=self.out_dir is not None)
        try:
            done = self._finished()
            while not done:
                step_start = self._clock()
                loss, metrics, tokens, flops, grad_norm, overflow = self._train_step()
                self._last_step_s = self._clock() - step_start
                if overflow:  # fp16: the loss scaler skipped the update and lowered the scale
                    self.state.overflow_steps += 1
                    done = self._finished()
                    continue
                if not self._is_finite(loss, grad_norm):
                    self.state.skipped_steps += 1
                    consecutive_bad += 1
                    runtime.log(
                        f"step {self.state.step + 1}: non-finite loss ({loss:.4g}); step skipped "
                        f"({consecutive_bad} in a row, {self.state.skipped_steps} in total)"
                    )
                    if consecutive_bad >= cfg.divergence_patience:
                        self._handle_divergence(consecutive_bad)
                        consecutive_bad = 0
                        bar.reset(total=bar.total)
                        bar.update(self._bar_position())
                        window = _Window()
                    done = self._finished()
                    continue
                consecutive_bad = 0
                self.state.step += 1
                self.state.tokens_seen += tokens * self.dist.world_size
                window.add(loss, metrics, tokens * self.dist.world_size, flops * self.dist.world_size, grad_norm)
                bar.update(self._bar_position() - bar.n)
                done = self._finished()

                if self.state.step % cfg.log_every == 0 or done:
                    record = self._log_train(window)
                    bar.set_postfix(self._postfix(record), refresh=False)
                    window = _Window()
                    now = self._clock()
                    if not cfg.progress and (now - last_text_log >= cfg.text_log_seconds or done):
                        runtime.log(self._progress_line(record, now - start_time, self.state.step - start_step))
                        last_text_log = now
                if self.eval_fn is not None and cfg.eval_every and self.state.step % cfg.eval_every == 0:
                    self._evaluate()
                if self._should_save(last_save_time):
                    self.save_checkpoint()
                    last_save_time = time.monotonic()
                if self._stop_requested(signals):
                    self._stop(signals.received)
            if self.eval_fn is not None and not (cfg.eval_every and self.state.step % cfg.eval_every == 0):
                self._evaluate()
            if self.out_dir is not None and (
                self.last_checkpoint is None or self.last_checkpoint.name != f"checkpoint-{self.state.step}"
            ):
                self.save_checkpoint()
        finally:
            signals.restore()
            bar.close()
            self._log.close()
        elapsed = self._clock() - start_time
        summary = {
            "step": self.state.step,
            "train": self.state.last_train,
            "eval": self.state.last_eval,
            "history": self.state.history,
            "skipped_steps": self.state.skipped_steps,
            "overflow_steps": self.state.overflow_steps,
            "rollbacks": self.state.rollbacks,
            "tokens_seen": self.state.tokens_seen,
            "elapsed_s": self.state.elapsed_s + elapsed,  # the whole run, earlier processes included
            "elapsed_this_run_s": elapsed,
            "time_budget_s": self.cfg.time_budget_s,
            "checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
        }
        runtime.log(self._summary_line(summary, self.state.step - start_step))
        return summary

    def save_checkpoint(self) -> Path | None:
        """Write ``out_dir/checkpoint-STEP`` atomically (collective: every rank must call it)."""
        if self.out_dir is None:
            return None
        rng = runtime.all_gather_object(runtime.capture_rng_state())
        data = runtime.all_gather_object(self.batches.state_dict())
        target = self.out_dir / f"checkpoint-{self.state.step}"
        error = None
        if self.dist.is_main:
            try:
                self._write_checkpoint(target, rng, data)
                prune_checkpoints(self.out_dir, self.cfg.keep_last)
            except BertkitError as e:
                error = str(e)
        error = runtime.broadcast_object(error)
        if error:
            raise BertkitError(error)
        self.last_checkpoint = target
        return target

    def elapsed(self) -> float:
        """Training seconds of the whole run: earlier processes (from the resumed checkpoint) + this fit."""
        return self.state.elapsed_s + (self._clock() - self._fit_start if self._fit_start is not None else 0.0)

    def budget_progress(self) -> float:
        """Fraction of ``time_budget_s`` spent (0 when there is no budget)."""
        return self.elapsed() / self.cfg.time_budget_s if self.cfg.time_budget_s > 0 else 0.0

    def _finished(self) -> bool:
        """Steps: ``max_steps`` done. Time budget: the next step, as long as the last one, would
        end past the budget (so the loop ends on time, not one step late)."""
        if self.cfg.time_budget_s > 0:
            return self.elapsed() + self._last_step_s > self.cfg.time_budget_s
        return self.state.step >= self.cfg.max_steps

    def _bar_position(self) -> int:
        """Progress bar units: seconds of the budget, or steps."""
        if self.cfg.time_budget_s > 0:
            return min(int(self.elapsed()), int(self.cfg.time_budget_s))
        return self.state.step

    # ------------------------------------------------------------------------------ preemption

    def _stop_requested(self, signals: _StopSignals) -> bool:
        """Whether any rank got SIGTERM / SIGINT (all ranks must agree: the save is collective)."""
        if not signals.enabled:
            return False
        if not self.dist.enabled:
            return signals.received is not None
        flag = torch.tensor([signals.received or 0], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if signals.received is None and int(flag.item()):
            signals.received = int(flag.item())
        return bool(int(flag.item()))

    def _stop(self, signum: int) -> None:
        """Save a checkpoint at this step boundary (unless one was just saved), then leave as the
        signal asks: :class:`Terminated` for SIGTERM (exit 143), KeyboardInterrupt for SIGINT (130)."""
        if self.last_checkpoint is None or self.last_checkpoint.name != f"checkpoint-{self.state.step}":
            self.save_checkpoint()
        name = signal.Signals(signum).name
        runtime.log(
            f"{name}: stopped at step {self.state.step}, {self.last_checkpoint} saved; "
            f"run again with --resume to continue"
        )
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated()

    # ------------------------------------------------------------------------------ one step

    def _train_step(self) -> tuple[float, dict, int, float, float | None, bool]:
        """Run ``grad_accum`` micro-batches and (unless non-finite) one optimizer step.

        Returns (mean loss over micro-batches and ranks, mean metrics of this rank, tokens of
        this rank, FLOPs of this rank, gradient norm or None, fp16 overflow). A non-finite step
        leaves the weights and optimizer untouched; so does an fp16 overflow (the loss scaler
        skips the update and lowers its scale; the scheduler does not advance).
        """
        cfg = self.cfg
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        metric_sums: dict[str, float] = {}
        tokens = 0
        flops = 0.0
        for micro in range(cfg.grad_accum):
            batch = move_to(next(self.batches), self.device)
            tokens += count_tokens(batch)
            flops += self.flops_fn(batch)
            sync = micro == cfg.grad_accum - 1
            no_sync = (
                self.forward_model.no_sync()
                if self.dist.enabled and not sync and hasattr(self.forward_model, "no_sync")
                else contextlib.nullcontext()
            )
            with no_sync:
                with runtime.autocast(cfg.precision, self.device):
                    loss, metrics = self.loss_fn(self.forward_model, batch)
                self.scaler.scale(loss.float() / cfg.grad_accum).backward()
            loss_sum += loss.detach().float()
            for k, v in metrics.items():
                metric_sums[k] = metric_sums.get(k, 0.0) + float(v)
        loss_mean = loss_sum / cfg.grad_accum
        if self.dist.enabled:  # every rank sees the same (mean) loss -> the same skip decision
            torch.distributed.all_reduce(loss_mean, op=torch.distributed.ReduceOp.SUM)
            loss_mean /= self.dist.world_size
        loss_value = loss_mean.item()
        metrics = {k: v / cfg.grad_accum for k, v in metric_sums.items()}

        grad_norm, overflow = None, False
        if math.isfinite(loss_value):
            self.scaler.unscale_(self.optimizer)
            if cfg.max_grad_norm > 0:
                grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm))
            if self._is_finite(loss_value, grad_norm):
                self._step_lr = self.optimizer.param_groups[0]["lr"]  # what this update uses (logged)
                scale = self.scaler.get_scale()  # 1.0 when disabled (fp32 / bf16)
                self.scaler.step(self.optimizer)  # fp16: skips the update on inf/nan gradients
                self.scaler.update()  # ... and then lowers the scale
                overflow = self.scaler.get_scale() < scale
                if not overflow:
                    self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_value, metrics, tokens, flops, grad_norm, overflow

    def _is_finite(self, loss: float, grad_norm: float | None) -> bool:
        """A step counts when its loss is finite and (outside fp16, where the scaler handles
        overflow) so is its gradient norm."""
        if not math.isfinite(loss):
            return False
        if grad_norm is not None and not math.isfinite(grad_norm) and not self.scaler.is_enabled():
            return False
        return True

    # ------------------------------------------------------------------------------ divergence

    def _check_initial_weights(self) -> None:
        """Refuse to start from NaN / infinite weights: no learning rate can fix those."""
        bad = first_non_finite(self.model)
        if bad is not None:
            name, n_nan, n_inf = bad
            raise BertkitError(
                f"training cannot start: non-finite initial weights (tensor {name}: {n_nan} NaN, "
                f"{n_inf} infinite values); start from a finite checkpoint or a fresh initialisation"
            )

    def _handle_divergence(self, in_a_row: int) -> None:
        cfg = self.cfg
        newest = (
            list_checkpoints(self.out_dir)[-1] if self.out_dir is not None and list_checkpoints(self.out_dir) else None
        )
        detected = f"non-finite loss at step {self.state.step + 1} ({in_a_row} in a row)"
        bad = first_non_finite(self.model)
        if bad is not None:
            detected += f", and the weights are no longer finite (first: {bad[0]})"
        fix = "lower the learning rate or lengthen the warmup"
        if cfg.divergence_action == "stop":
            raise BertkitError(
                f"training diverged: {detected}; stopping (divergence_action=stop). {fix.capitalize()}"
                + (", or use fp32/bf16" if cfg.precision == "fp16" else "")
            )
        if newest is None:
            raise BertkitError(
                f"training diverged: {detected}, and there is no checkpoint to roll back to; {fix}"
                + (" (or set save_every, so the guard has a checkpoint to roll back to)" if self.out_dir else "")
            )
        if self.state.rollbacks >= cfg.max_rollbacks:
            raise BertkitError(
                f"training diverged: {detected}, after {self.state.rollbacks} rollbacks "
                f"(max_rollbacks={cfg.max_rollbacks}); {fix}"
            )
        scale = self.state.lr_scale * cfg.lr_backoff
        kept = self.state  # the run's own counts survive the rollback
        self._load_checkpoint(newest)
        self.state.rollbacks, self.state.skipped_steps = kept.rollbacks + 1, kept.skipped_steps
        self.state.elapsed_s = kept.elapsed_s
        self._set_lr_scale(scale)
        runtime.log(
            f"divergence guard: rolled back to {newest.name} (step {self.state.step}); "
            f"learning rate now x{self.state.lr_scale:g} (rollback {self.state.rollbacks}/{cfg.max_rollbacks})"
        )

    def _set_lr_scale(self, scale: float) -> None:
        factor = scale / self.state.lr_scale
        self.scheduler.base_lrs = [lr * factor for lr in self.scheduler.base_lrs]
        for group in self.optimizer.param_groups:
            group["lr"] *= factor
        self.state.lr_scale = scale

    # ------------------------------------------------------------------------------ logging

    def _peak_flops(self) -> float:
        """Peak FLOP/s of all ranks; a measured (CPU) peak is re-measured over the first
        ``PEAK_CHECKS`` log windows and the best kept, so a busy moment at start-up does not stick."""
        if self._peak_checks < PEAK_CHECKS:
            self._peak_checks += 1
            self._peak = (
                runtime.peak_flops(self.device, self.cfg.precision, remeasure=self._peak_checks > 1)
                * self.dist.world_size
            )
        return self._peak

    def _log_train(self, window: _Window) -> dict:
        """Reduce the window's metrics over ranks, append a record to metrics.jsonl/TensorBoard."""
        metrics = window.mean_metrics()
        if self.dist.enabled and metrics:
            keys = sorted(metrics)
            t = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
            metrics = {k: float(v) / self.dist.world_size for k, v in zip(keys, t.tolist())}
        seconds = max(window.seconds(), 1e-9)
        record = {
            "kind": "train",
            "step": self.state.step,
            "loss": window.mean_loss(),
            "lr": self._step_lr,  # the one this step used (the optimizer's is already the next step's)
            "grad_norm": window.mean_grad_norm(),
            **metrics,
            "tokens_per_s": window.tokens / seconds,
            "mfu": window.flops / seconds / self._peak_flops(),
            "tokens_seen": self.state.tokens_seen,
            "skipped_steps": self.state.skipped_steps,
        }
        self.state.last_train = record
        self.state.history.append(record)
        self._log.write(record)
        return record

    def _evaluate(self) -> dict:
        """Run ``eval_fn`` on rank 0 in eval mode; log and return its metrics."""
        result: dict = {}
        if self.dist.is_main:
            self.model.eval()
            with torch.no_grad(), runtime.autocast(self.cfg.precision, self.device):
                result = {k: float(v) for k, v in self.eval_fn(self.model).items()}
            self.model.train()
            record = {"kind": "eval", "step": self.state.step, **result}
            self.state.history.append(record)
            self._log.write(record)
            runtime.log(f"eval @ step {self.state.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
        result = runtime.broadcast_object(result)
        self.state.last_eval = {"step": self.state.step, **result}
        return result

    def _progress_bar(self):
        budget = self.cfg.time_budget_s > 0
        return tqdm(
            total=int(self.cfg.time_budget_s) if budget else self.cfg.max_steps,
            initial=self._bar_position(),
            unit="s" if budget else "step",
            dynamic_ncols=True,
            disable=not (self.dist.is_main and self.cfg.progress),
            desc="train",
        )

    @staticmethod
    def _postfix(record: dict) -> dict:
        return {
            "loss": f"{record['loss']:.4f}",
            "lr": f"{record['lr']:.2e}",
            "tok/s": f"{record['tokens_per_s']:.0f}",
            "mfu": f"{100 * record['mfu']:.1f}%",
        }

    def _progress_line(self, record: dict, elapsed: float, steps_run: int) -> str:
        """The log line that stands in for the progress bar (``progress=False``): logs, clusters."""
        cfg = self.cfg
        post = self._postfix(record)
        if cfg.time_budget_s > 0:
            eta = max(0.0, cfg.time_budget_s - self.elapsed())
            where = f"step {self.state.step} ({100 * min(1.0, self.budget_progress()):.0f}% of the time budget)"
        else:
            eta = elapsed / max(steps_run, 1) * (cfg.max_steps - self.state.step)
            where = f"step {self.state.step}/{cfg.max_steps} ({100 * self.state.step / cfg.max_steps:.0f}%)"
        return (
            f"{where} loss {post['loss']} "
            f"lr {post['lr']} {post['tok/s']} tok/s MFU {post['mfu']} | {_fmt_duration(elapsed)} elapsed, "
            f"ETA {_fmt_duration(eta)}"
        )

    def _summary_line(self, summary: dict, steps_run: int) -> str:
        train = summary["train"]
        took = _fmt_duration(summary["elapsed_this_run_s"])
        if self.state.elapsed_s:
            took += f" ({_fmt_duration(summary['elapsed_s'])} in all)"
        if self.cfg.time_budget_s > 0:
            took += f" of a {_fmt_duration(self.cfg.time_budget_s)} time budget"
            parts = [f"done: step {summary['step']} ({steps_run} this run) in {took}"]
        else:
            parts = [f"done: step {summary['step']}/{self.cfg.max_steps} ({steps_run} this run) in {took}"]
        if train:
            parts.append(f"train loss {train['loss']:.4f}")
            parts.append(f"{train['tokens_per_s']:.0f} tokens/s, MFU {100 * train['mfu']:.1f}%")
        if self.state.last_eval:
            parts.append("eval " + " ".join(f"{k} {v:.4f}" for k, v in self.state.last_eval.items() if k != "step"))
        parts.append(f"{summary['skipped_steps']} skipped steps, {summary['rollbacks']} rollbacks")
        if self.scaler.is_enabled():
            parts.append(f"{summary['overflow_steps']} fp16 overflow steps, loss scale {self.scaler.get_scale():g}")
        if summary["checkpoint"]:
            parts.append(f"checkpoint {summary['checkpoint']}")
        return "; ".join(parts)

    # ------------------------------------------------------------------------------ checkpoints

    def _should_save(self, last_save_time: float) -> bool:
        if self.out_dir is None:
            return False
        if self.cfg.save_every and self.state.step % self.cfg.save_every == 0:
            return True
        if self.cfg.save_every_minutes:
            due = time.monotonic() - last_save_time >= 60 * self.cfg.save_every_minutes
            return bool(runtime.broadcast_object(due))  # rank 0's clock decides for everyone
        return False

    def _write_checkpoint(self, target: Path, rng: list, data: list) -> None:
        state = dataclasses.replace(self.state, elapsed_s=self.elapsed())
        trainer_state = {
            **state.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,  # one entry per rank
            "data": data,  # one entry per rank
            "world_size": self.dist.world_size,
        }
        meta = {
            "step": state.step,
            "config": self.run_config,
            "train_config": dataclasses.asdict(self.cfg),
            "world_size": self.dist.world_size,
            "metrics": {"train": state.last_train, "eval": state.last_eval},
        }
        write_checkpoint(target, self.model, self.tokenizer, trainer_state, meta, self.optimizer)

    def _resume(self, resume: bool | str | Path) -> None:
        if isinstance(resume, (str, Path)):
            path = Path(resume)
            if not (path / TRAINER_STATE).is_file():
                raise BertkitError(f"{path}: not a complete training checkpoint (no {TRAINER_STATE})")
        else:
            if self.out_dir is None:
                raise BertkitError("resume: needs an out_dir to look for checkpoints in")
            found = list_checkpoints(self.out_dir)
            # rank 0's listing decides for every rank: on a shared file system another node's
            # view of the directory may lag (NFS caches listings for up to a minute), and ranks
            # resuming from different steps would train apart
            newest = runtime.broadcast_object(str(found[-1]) if found else None)
            if newest is None:
                runtime.log(f"resume: no complete checkpoint in {self.out_dir}; starting from scratch")
                return
            path = Path(str(newest))
            if not (path / TRAINER_STATE).is_file():
                raise BertkitError(
                    f"{path}: rank 0 resumes from this checkpoint, which rank {self.dist.rank} cannot read; "
                    "--out must be on storage every node shares"
                )
        self._load_checkpoint(path)
        self._log.truncate_after(self.state.step)
        runtime.log(f"resumed from {path} at step {self.state.step}")

    def _load_checkpoint(self, path: Path) -> None:
        """Restore model, optimizer, scheduler, scaler, data position, RNG and the trainer state."""
        saved = read_trainer_state(path)
        if saved["world_size"] != self.dist.world_size:
            raise BertkitError(
                f"{path}: saved with world size {saved['world_size']}, now "
                f"{self.dist.world_size}; resume with the same number of processes"
            )
        load_model_weights(self.model, path)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        self.batches.load_state_dict(saved["data"][self.dist.rank])
        self.state = TrainerState.from_dict(saved)
        self.last_checkpoint = path
        runtime.restore_rng_state(saved["rng"][self.dist.rank])  # last: loading may draw numbers


class _StopSignals:
    """While training with an output directory: SIGTERM (what SLURM and Kubernetes send before
    killing a job) and SIGINT only set ``received``; the loop saves a checkpoint at the next
    step boundary and stops. The first signal puts the previous handlers back, so a second one
    acts at once (the checkpoint being written is then removed, the previous one kept)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.received: int | None = None
        self._previous: dict = {}
        if enabled and threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = signum
        self.restore()

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        self._previous = {}


class _Window:
    """Running sums between two log records."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.steps = 0
        self.loss = 0.0
        self.metrics: dict[str, float] = {}
        self.tokens = 0
        self.flops = 0.0
        self.grad_norm = 0.0
        self.grad_norm_n = 0

    def add(self, loss: float, metrics: dict, tokens: int, flops: float, grad_norm: float | None) -> None:
        self.steps += 1
        self.loss += loss
        for k, v in metrics.items():
            self.metrics[k] = self.metrics.get(k, 0.0) + v
        self.tokens += tokens
        self.flops += flops
        if grad_norm is not None:
            self.grad_norm += grad_norm
            self.grad_norm_n += 1

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def mean_loss(self) -> float:
        return self.loss / max(1, self.steps)

    def mean_metrics(self) -> dict:
        return {k: v / max(1, self.steps) for k, v in self.metrics.items()}

    def mean_grad_norm(self) -> float | None:
        return self.grad_norm / self.grad_norm_n if self.grad_norm_n else None
