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
(:mod:`bertkit.training.checkpoints`, :mod:`bertkit.training.resume`); the log is
:class:`~bertkit.training.runlog.RunLog`. This module holds the loop itself; the optimizer step
is :mod:`~bertkit.training.steps`, its data :mod:`~bertkit.training.batches`, the divergence
guard and stop signals :mod:`~bertkit.training.guards`, tokens/s and MFU
:mod:`~bertkit.training.throughput`, the bar and log lines :mod:`~bertkit.training.progress`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bertkit import runtime
from bertkit.errors import BertkitError
from bertkit.optim import build_budget_scheduler, build_optimizer, build_scheduler
from bertkit.training.batches import Batches
from bertkit.training.checkpoints import TrainerState, prune_checkpoints, write_checkpoint
from bertkit.training.config import TrainConfig
from bertkit.training.guards import (
    StopSignals,
    check_initial_weights,
    is_finite,
    leave_for_signal,
    rollback_lr_scale,
    set_lr_scale,
)
from bertkit.training.progress import postfix, progress_bar, progress_line, summary_line
from bertkit.training.resume import (
    checkpoint_contents,
    checkpoint_due,
    newest_checkpoint,
    restore_checkpoint,
    resume_checkpoint,
)
from bertkit.training.runlog import RunLog
from bertkit.training.steps import LossFn, train_step, wrap_model
from bertkit.training.throughput import PeakFlops, Window, default_flops_fn, mean_over_ranks

EvalFn = Callable[[nn.Module], "dict[str, float]"]


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
        self.forward_model = wrap_model(self.model, cfg, self.dist, self.device)  # what loss_fn gets

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
        self.batches = Batches(train_loader)
        self.flops_fn = flops_fn or default_flops_fn(self.model)
        self._peak_flops = PeakFlops(self.device, cfg.precision, self.dist.world_size)

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
        check_initial_weights(self.model)
        cfg = self.cfg
        start_time = self._fit_start = self._clock()
        start_step = self.state.step
        last_save_time = time.monotonic()
        consecutive_bad = 0
        window = Window()
        bar = progress_bar(cfg, self._bar_position(), self.dist.is_main)
        last_text_log = -math.inf
        signals = StopSignals(enabled=self.out_dir is not None)
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
                if not is_finite(loss, grad_norm, self.scaler.is_enabled()):
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
                        window = Window()
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
                    bar.set_postfix(postfix(record), refresh=False)
                    window = Window()
                    now = self._clock()
                    if not cfg.progress and (now - last_text_log >= cfg.text_log_seconds or done):
                        steps_run = self.state.step - start_step
                        runtime.log(
                            progress_line(cfg, record, self.state.step, now - start_time, steps_run, self.elapsed)
                        )
                        last_text_log = now
                if self.eval_fn is not None and cfg.eval_every and self.state.step % cfg.eval_every == 0:
                    self._evaluate()
                if checkpoint_due(cfg, self.out_dir, self.state.step, last_save_time):
                    self.save_checkpoint()
                    last_save_time = time.monotonic()
                if signals.requested(self.dist, self.device):
                    self._stop(signals.received)
            if self.eval_fn is not None and not (cfg.eval_every and self.state.step % cfg.eval_every == 0):
                self._evaluate()
            if self.out_dir is not None and not self._saved_at_this_step():
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
        runtime.log(summary_line(self.cfg, self.state, self.scaler, summary, self.state.step - start_step))
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

    # ------------------------------------------------------------------------------ one step

    def _train_step(self) -> tuple[float, dict, int, float, float | None, bool]:
        """Run ``grad_accum`` micro-batches and (unless non-finite) one optimizer step (see
        :func:`~bertkit.training.steps.train_step`); remember the learning rate of the update.

        Returns (mean loss over micro-batches and ranks, mean metrics of this rank, tokens of
        this rank, FLOPs of this rank, gradient norm or None, fp16 overflow).
        """
        step = train_step(
            self.cfg,
            self.model,
            self.forward_model,
            self.loss_fn,
            self.batches,
            self.flops_fn,
            self.optimizer,
            self.scheduler,
            self.scaler,
            self.device,
            self.dist,
        )
        if step.lr is not None:
            self._step_lr = step.lr
        return step.loss, step.metrics, step.tokens, step.flops, step.grad_norm, step.overflow

    # ------------------------------------------------------------------------------ divergence, stop signals

    def _handle_divergence(self, in_a_row: int) -> None:
        """Roll back to the newest checkpoint with a lower learning rate, or raise (see guards)."""
        cfg = self.cfg
        newest = newest_checkpoint(self.out_dir)
        scale = rollback_lr_scale(cfg, self.state, self.model, newest, in_a_row, self.out_dir is not None)
        kept = self.state  # the run's own counts survive the rollback
        self._load_checkpoint(newest)
        self.state.rollbacks, self.state.skipped_steps = kept.rollbacks + 1, kept.skipped_steps
        self.state.elapsed_s = kept.elapsed_s
        set_lr_scale(self.optimizer, self.scheduler, self.state, scale)
        runtime.log(
            f"divergence guard: rolled back to {newest.name} (step {self.state.step}); "
            f"learning rate now x{self.state.lr_scale:g} (rollback {self.state.rollbacks}/{cfg.max_rollbacks})"
        )

    def _stop(self, signum: int) -> None:
        """Save a checkpoint at this step boundary (unless one was just saved), then leave as the
        signal asks: :class:`Terminated` for SIGTERM (exit 143), KeyboardInterrupt for SIGINT (130)."""
        if not self._saved_at_this_step():
            self.save_checkpoint()
        leave_for_signal(signum, self.state.step, self.last_checkpoint)

    # ------------------------------------------------------------------------------ records

    @property
    def _peak(self) -> float:
        """The peak FLOP/s (all ranks) that MFU is reported against; 0 before the first train record."""
        return self._peak_flops.value

    def _log_train(self, window: Window) -> dict:
        """Reduce the window's metrics over ranks, append a record to metrics.jsonl/TensorBoard."""
        metrics = mean_over_ranks(window.mean_metrics(), self.dist, self.device)
        record = {
            "kind": "train",
            "step": self.state.step,
            "loss": window.mean_loss(),
            "lr": self._step_lr,  # the one this step used (the optimizer's is already the next step's)
            "grad_norm": window.mean_grad_norm(),
            **metrics,
            **window.rates(self._peak_flops),  # tokens_per_s, mfu
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

    # ------------------------------------------------------------------------------ checkpoints

    def _saved_at_this_step(self) -> bool:
        return self.last_checkpoint is not None and self.last_checkpoint.name == f"checkpoint-{self.state.step}"

    def _write_checkpoint(self, target: Path, rng: list, data: list) -> None:
        state = dataclasses.replace(self.state, elapsed_s=self.elapsed())
        trainer_state, meta = checkpoint_contents(
            state,
            self.cfg,
            self.run_config,
            self.optimizer,
            self.scheduler,
            self.scaler,
            rng,
            data,
            self.dist.world_size,
        )
        write_checkpoint(target, self.model, self.tokenizer, trainer_state, meta, self.optimizer)

    def _resume(self, resume: bool | str | Path) -> None:
        path = resume_checkpoint(resume, self.out_dir, self.dist.rank)
        if path is None:
            return
        self._load_checkpoint(path)
        self._log.truncate_after(self.state.step)
        runtime.log(f"resumed from {path} at step {self.state.step}")

    def _load_checkpoint(self, path: Path) -> None:
        """Restore model, optimizer, scheduler, scaler, data position, RNG and the trainer state."""
        self.state = restore_checkpoint(
            path, self.model, self.optimizer, self.scheduler, self.scaler, self.batches, self.dist
        )
        self.last_checkpoint = path
