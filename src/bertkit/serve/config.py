"""Serving settings: one dataclass, whose fields (and their comments) are ``bertkit serve``'s
flags (via :mod:`bertkit.settings`); no web imports here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bertkit.errors import BertkitError
from bertkit.settings import EmbedOptions, InferenceOptions, InferencePrecision, Pooling, check_choice

Backend = Literal["torch", "onnx", "onnx-int8"]  # torch: a model directory; onnx*: a `bertkit export` directory
LogLevel = Literal["critical", "error", "warning", "info", "debug"]  # uvicorn's


@dataclass
class ServeConfig:
    """Every serving setting (docs/SERVING.md explains each)."""

    host: str = "127.0.0.1"  # address to bind (127.0.0.1: this machine only)
    port: int = 8080  # TCP port
    backend: Backend = "torch"  # torch (a model directory), onnx / onnx-int8 (a `bertkit export` directory)
    max_batch_tokens: int = 16384  # token budget of one merged model call (1: no merging)
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others
    max_queue: int = 512  # requests waiting at most; beyond: 503 + Retry-After
    max_inputs: int = 64  # inputs per request at most; beyond: 413
    max_body_bytes: int = 2 * 1024 * 1024  # request body size at most; beyond: 413
    request_timeout_s: float = 30.0  # answer within this or 504
    pooling: Pooling = EmbedOptions.pooling  # embedding pooling (an ONNX export has its own)
    model_id: str = "bertkit"  # model name shown by /info and /v1/embeddings
    threads: int | None = None  # torch / onnxruntime threads (default: the library's)
    device: str = InferenceOptions.device  # torch backend: auto (CUDA when present), cpu, cuda, cuda:N
    precision: InferencePrecision = InferenceOptions.precision  # torch backend: fp32, bf16 or auto
    graceful_timeout_s: float = 30.0  # on SIGTERM, wait this long for requests in flight
    log_level: LogLevel = "info"  # server log messages shown (uvicorn's levels)

    def validate(self) -> None:
        for name in ("max_batch_tokens", "max_queue", "max_inputs", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise BertkitError(f"{name.replace('_', '-')} must be >= 1 (got {getattr(self, name)})")
        if self.max_wait_ms < 0 or self.request_timeout_s <= 0:
            raise BertkitError("max-wait-ms must be >= 0 and request-timeout-s > 0")
        check_choice("backend", self.backend, Backend)
        check_choice("pooling", self.pooling, Pooling)
        check_choice("precision", self.precision, InferencePrecision)
        check_choice("log_level", self.log_level, LogLevel)
