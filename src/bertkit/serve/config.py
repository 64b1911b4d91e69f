"""Serving settings: one dataclass, filled by ``bertkit serve``'s flags (no web imports here)."""

from __future__ import annotations

from dataclasses import dataclass

from bertkit.errors import BertkitError

BACKENDS = ("torch", "onnx", "onnx-int8")


@dataclass
class ServeConfig:
    """Every serving setting (the CLI's flags; docs/SERVING.md explains each)."""

    host: str = "127.0.0.1"
    port: int = 8080
    backend: str = "torch"  # torch | onnx | onnx-int8
    max_batch_tokens: int = 16384
    max_wait_ms: float = 5.0
    max_queue: int = 512  # requests waiting for the model
    max_inputs: int = 64  # inputs in one request
    max_body_bytes: int = 2 * 1024 * 1024
    request_timeout_s: float = 30.0
    pooling: str = "mean"
    model_id: str = "bertkit"
    threads: int | None = None
    graceful_timeout_s: float = 30.0

    def validate(self) -> None:
        for name in ("max_batch_tokens", "max_queue", "max_inputs", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise BertkitError(f"{name.replace('_', '-')} must be >= 1 (got {getattr(self, name)})")
        if self.max_wait_ms < 0 or self.request_timeout_s <= 0:
            raise BertkitError("max-wait-ms must be >= 0 and request-timeout-s > 0")
        if self.backend not in BACKENDS:
            raise BertkitError(f"backend: unknown value {self.backend!r} (choose from {', '.join(BACKENDS)})")
