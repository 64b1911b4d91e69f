"""Where and how training runs: device, precision, torch.distributed, seeding, rank-0 logging.

Everything here is small and stateless apart from the process group, so the training loop
(:mod:`bertkit.training`) can stay readable:

* :func:`choose_device` -- ``"auto"`` picks CUDA (this rank's ``LOCAL_RANK``) when present, else CPU.
* :func:`autocast` / :func:`make_grad_scaler` -- ``fp32`` (no autocast), ``bf16`` (autocast on CPU
  and CUDA), ``fp16`` (autocast + dynamic loss scaling; meant for CUDA, also runs on CPU, slowly).
* :func:`init_distributed` -- reads the ``torchrun`` environment (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and starts a process group: ``gloo`` on CPU,
  ``nccl`` on CUDA. Without that environment it is a no-op (world size 1).
* :func:`seed_everything`, :func:`capture_rng_state`, :func:`restore_rng_state` -- every RNG the
  loop touches (Python ``random``, NumPy global, torch CPU, every CUDA device), so a resumed run
  draws exactly the numbers the uninterrupted run would have.
* :func:`log` -- print to stderr on rank 0 only (through ``tqdm.write`` so it never breaks a progress bar).
* :func:`peak_flops` -- the denominator of MFU.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
from tqdm import tqdm

from bertkit.errors import BertkitError
from bertkit.settings import Precision, choices

PRECISIONS = choices(Precision)


# ----------------------------------------------------------------------------------------------
# distributed


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job. ``world_size == 1`` means no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """The current job layout: from the live process group if any, else from the environment."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return DistInfo(
            rank=torch.distributed.get_rank(),
            world_size=torch.distributed.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        )
    return DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init_distributed(device: torch.device, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by the ``torchrun`` environment, if there is one.

    The backend follows the device: ``nccl`` for CUDA, ``gloo`` for CPU. Calling it again once the
    group exists is harmless. Returns the resulting :class:`DistInfo`.
    """
    info = dist_info()
    if info.world_size <= 1:
        return info
    if not torch.distributed.is_available():
        raise BertkitError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if not torch.distributed.is_initialized():
        for key in ("MASTER_ADDR", "MASTER_PORT"):
            if key not in os.environ:
                raise BertkitError(f"WORLD_SIZE={info.world_size} but {key} is not set; launch with torchrun")
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(
            backend=backend,
            rank=info.rank,
            world_size=info.world_size,
            timeout=timedelta(seconds=timeout_s),
        )
        if shared_store_blocks_restarts():
            log(
                "note: torchrun --max-restarts with its shared TCPStore cannot restart the workers (stale "
                "addresses from the failed attempt, pytorch#135712): launch with "
                "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in torchrun's environment"
            )
    return dist_info()


def elastic_restart() -> int:
    """How many times torchrun has restarted this worker group (0 outside torchrun)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def shared_store_blocks_restarts() -> bool:
    """Whether torchrun allows restarts but hands its workers the rendezvous's shared TCPStore:
    restarted workers then read the previous attempt's connection keys and fail to connect
    (gloo and nccl alike), so the restart never runs; ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``
    gives every attempt a fresh store."""
    restarts = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0"))
    return restarts > 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def all_gather_object(obj: object) -> list:
    """Every rank's ``obj``, in rank order (``[obj]`` without a process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        out: list = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(out, obj)
        return out
    return [obj]


def broadcast_object(obj: object, src: int = 0) -> object:
    """Rank ``src``'s ``obj`` on every rank."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=src)
        return box[0]
    return obj


# ----------------------------------------------------------------------------------------------
# device and precision


def choose_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; else ``name``."""
    if name == "auto":
        if torch.cuda.is_available():
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        else:
            dev = torch.device("cpu")
    else:
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise BertkitError(f"device: unknown device {name!r} (use auto, cpu, cuda, cuda:N)") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise BertkitError(f"device: {name!r} requested but CUDA is not available")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def check_precision(precision: str) -> None:
    """Raise :class:`BertkitError` for an unknown precision (all three run on CPU and CUDA)."""
    if precision not in PRECISIONS:
        raise BertkitError(f"precision: unknown value {precision!r} (choose from {', '.join(PRECISIONS)})")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context for ``precision`` (a null context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler, enabled only for fp16 (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=(precision == "fp16"))


# ----------------------------------------------------------------------------------------------
# seeding and RNG state


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)  # also seeds every CUDA device


def capture_rng_state() -> dict:
    """Every RNG state this process uses, as plain picklable objects."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------
# logging


def log(msg: str) -> None:
    """Print ``msg`` on rank 0 only, to stderr (stdout is for a command's results, e.g. evaluate's
    JSON), without breaking an active tqdm bar."""
    if dist_info().is_main:
        tqdm.write(msg, file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# peak FLOP/s for MFU

# Dense tensor-core peaks (no sparsity), FLOP/s, by (device-name substring, precision).
_CUDA_PEAKS: list[tuple[str, dict[str, float]]] = [
    ("H200", {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12}),
    ("H100", {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12}),
    ("A100", {"fp32": 19.5e12, "bf16": 312e12, "fp16": 312e12}),
    ("L4", {"fp32": 30e12, "bf16": 121e12, "fp16": 121e12}),
    ("A10", {"fp32": 31e12, "bf16": 125e12, "fp16": 125e12}),
    ("V100", {"fp32": 15.7e12, "bf16": 15.7e12, "fp16": 125e12}),
    ("T4", {"fp32": 8.1e12, "bf16": 8.1e12, "fp16": 65e12}),
]

_measured_peaks: dict[tuple[str, str], float] = {}


def measure_matmul_flops(
    device: torch.device, precision: str, n: int = 1024, reps: int = 8, max_seconds: float = 1.0
) -> float:
    """Achieved FLOP/s of an ``n x n`` matmul in ``precision`` on ``device``: the best of ``reps``
    repetitions, or of those that fit in ``max_seconds`` (at least one; fp16 on a CPU without
    fp16 matrix units takes seconds per matmul)."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    g = torch.Generator(device=device).manual_seed(0)  # private: the global RNGs stay untouched
    a = torch.randn(n, n, device=device, generator=g).to(dtype)
    b = torch.randn(n, n, device=device, generator=g).to(dtype)
    best, start = float("inf"), time.perf_counter()
    for _ in range(reps):
        if best < float("inf") and time.perf_counter() - start > max_seconds:
            break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def peak_flops(device: torch.device, precision: str, remeasure: bool = False) -> float:
    """The peak FLOP/s that MFU divides by, per process.

    ``BERTKIT_PEAK_TFLOPS`` overrides. On CUDA: the datasheet dense peak for known cards. On CPU
    (no reliable datasheet number): the best achieved FLOP/s of a 1024^3 matmul in the same
    precision with all threads, measured on the first call -- so CPU MFU reads as "fraction of
    what this machine's matmul kernel reaches", see docs/TRAINING.md. ``remeasure=True`` measures
    again and keeps the best so far: one measurement taken while another job briefly held the
    cores reads low and would inflate MFU (a run measured at half speed showed MFU 95% beside an
    identical one at 50%). The measurement does not touch the global RNGs (its inputs come from a
    private generator).
    """
    env = os.environ.get("BERTKIT_PEAK_TFLOPS")
    if env:
        return float(env) * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peaks in _CUDA_PEAKS:
            if key in name:
                return peaks[precision]
    key = (str(device), precision)
    if key not in _measured_peaks or remeasure:
        _measured_peaks[key] = max(_measured_peaks.get(key, 0.0), measure_matmul_flops(device, precision))
    return _measured_peaks[key]
