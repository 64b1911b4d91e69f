"""``TrainConfig``: every knob of the training loop (shared by pre-training and fine-tuning).

Torch-free: the command line builds its flags from these fields (help from the comments).
"""

from __future__ import annotations

from dataclasses import dataclass

from bertkit.errors import BertkitError
from bertkit.settings import DivergenceAction, Optimizer, Precision, Schedule, check_choice


@dataclass
class TrainConfig:
    """Every knob of the loop. Defaults follow the original BERT (AdamW, linear schedule, clip 1.0)."""

    max_steps: int = 1000  # optimizer steps (each = grad_accum micro-batches)
    # > 0: a wall-clock promise (docs/TRAINING.md): training stops when this many seconds of
    # training are spent (every process of the run, as the checkpoints count them; no step is
    # started that would end past them) and the schedule follows the fraction spent;
    # max_steps / warmup_steps then only set its shape (see optim.build_budget_scheduler)
    time_budget_s: float = 0.0  # seconds of wall-clock training (0: max_steps decides)
    lr: float = 1e-4  # peak learning rate
    warmup_steps: int = 0  # steps of linear warmup to lr
    schedule: Schedule = "linear"  # learning-rate schedule after the warmup
    optimizer: Optimizer = "adamw"  # AdamW or LAMB (large batches)
    weight_decay: float = 0.01  # not applied to biases and LayerNorm
    adam_beta1: float = 0.9  # AdamW/LAMB first-moment decay
    adam_beta2: float = 0.999  # AdamW/LAMB second-moment decay
    adam_eps: float = 1e-6  # AdamW/LAMB epsilon
    grad_accum: int = 1  # micro-batches per optimizer step (per process)
    max_grad_norm: float = 1.0  # global gradient clipping; 0 disables
    precision: Precision = "fp32"  # bf16: autocast (CPU+CUDA); fp16: autocast + loss scaling (for CUDA)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    eval_every: int = 0  # steps between evaluations; 0 = only at the end
    save_every: int = 0  # steps between checkpoints; 0 = none by step count
    save_every_minutes: float = 0.0  # minutes between checkpoints; 0 = none by time
    keep_last: int = 3  # checkpoints kept (older ones deleted); 0 keeps all
    log_every: int = 10  # steps between metrics.jsonl / TensorBoard records
    seed: int = 0  # random seed: dropout (each process adds its rank); pretrain: also initial weights, data order
    compile: bool = False  # torch.compile the model
    activation_checkpointing: bool = False  # recompute each layer's activations in backward (less memory)
    divergence_patience: int = 5  # non-finite losses in a row before rollback / stop
    divergence_action: DivergenceAction = "rollback"  # rollback (to the last checkpoint, lower LR) or stop
    lr_backoff: float = 0.5  # LR multiplier applied at each rollback
    max_rollbacks: int = 3  # rollbacks before stopping
    find_unused_parameters: bool = False  # DDP: some parameters get no gradient (e.g. MLM-only)
    tensorboard: bool = True  # write TensorBoard event files in the run directory
    progress: bool = True  # show the progress bar (else a text line at most every text_log_seconds)
    text_log_seconds: float = 60.0  # without the bar: seconds between progress lines in the log

    def validate(self) -> None:
        """Raise :class:`BertkitError` for values the loop cannot run with."""
        checks = [
            (self.max_steps >= 1, "max_steps must be >= 1"),
            (self.time_budget_s >= 0, "time_budget_s must be >= 0"),
            (self.lr > 0, "lr must be > 0"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.grad_accum >= 1, "grad_accum must be >= 1"),
            (self.max_grad_norm >= 0, "max_grad_norm must be >= 0"),
            (self.eval_every >= 0 and self.save_every >= 0, "eval_every and save_every must be >= 0"),
            (self.save_every_minutes >= 0, "save_every_minutes must be >= 0"),
            (self.keep_last >= 0, "keep_last must be >= 0"),
            (self.log_every >= 1, "log_every must be >= 1"),
            (self.divergence_patience >= 1, "divergence_patience must be >= 1"),
            (0 < self.lr_backoff <= 1, "lr_backoff must be in (0, 1]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise BertkitError(f"training config: {msg}")
        try:
            for name, literal in (
                ("schedule", Schedule),
                ("optimizer", Optimizer),
                ("precision", Precision),
                ("divergence_action", DivergenceAction),
            ):
                check_choice(name, getattr(self, name), literal)
        except BertkitError as e:
            raise BertkitError(f"training config: {e}") from None
