"""``TrainConfig``: every knob of the training loop (shared by pre-training and fine-tuning)."""

from __future__ import annotations

from dataclasses import dataclass

from bertkit import runtime
from bertkit.errors import BertkitError
from bertkit.optim import OPTIMIZERS, SCHEDULES


@dataclass
class TrainConfig:
    """Every knob of the loop. Defaults follow the original BERT (AdamW, linear schedule, clip 1.0)."""

    max_steps: int = 1000  # optimizer steps (each = grad_accum micro-batches)
    lr: float = 1e-4  # peak learning rate
    warmup_steps: int = 0
    schedule: str = "linear"  # linear | cosine | constant (all with linear warmup)
    optimizer: str = "adamw"  # adamw | lamb
    weight_decay: float = 0.01  # not applied to biases and LayerNorm
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-6
    grad_accum: int = 1  # micro-batches per optimizer step (per rank)
    max_grad_norm: float = 1.0  # global gradient clipping; 0 disables
    precision: str = "fp32"  # fp32 | bf16 (autocast, CPU+CUDA) | fp16 (autocast + loss scaling; for CUDA)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    eval_every: int = 0  # steps between evaluations; 0 = only at the end
    save_every: int = 0  # steps between checkpoints; 0 = none by step count
    save_every_minutes: float = 0.0  # minutes between checkpoints; 0 = none by time
    keep_last: int = 3  # checkpoints kept (older ones deleted); 0 keeps all
    log_every: int = 10  # steps between metrics.jsonl / TensorBoard records
    seed: int = 0  # seeds dropout etc. (each rank uses seed + rank)
    compile: bool = False  # torch.compile the model
    activation_checkpointing: bool = False  # recompute each layer's activations in backward
    divergence_patience: int = 5  # non-finite losses in a row before rollback / stop
    divergence_action: str = "rollback"  # rollback (to last checkpoint, lower LR) | stop
    lr_backoff: float = 0.5  # LR multiplier applied at each rollback
    max_rollbacks: int = 3  # then stop
    find_unused_parameters: bool = False  # DDP: some parameters get no gradient (e.g. MLM-only)
    tensorboard: bool = True  # write TensorBoard event files in out_dir
    progress: bool = True  # show the tqdm bar (else a text line at most every text_log_seconds)
    text_log_seconds: float = 60.0  # without the bar: seconds between progress lines in the log

    def validate(self) -> None:
        """Raise :class:`BertkitError` for values the loop cannot run with."""
        checks = [
            (self.max_steps >= 1, "max_steps must be >= 1"),
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
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)} (got {self.schedule!r})"),
            (
                self.optimizer in OPTIMIZERS,
                f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {self.optimizer!r})",
            ),
            (
                self.precision in runtime.PRECISIONS,
                f"precision must be one of {', '.join(runtime.PRECISIONS)} (got {self.precision!r})",
            ),
            (
                self.divergence_action in ("rollback", "stop"),
                f"divergence_action must be rollback or stop (got {self.divergence_action!r})",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise BertkitError(f"training config: {msg}")
