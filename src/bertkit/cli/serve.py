"""``bertkit serve``: a model behind HTTP with dynamic batching, limits, metrics and a web page."""

from __future__ import annotations

import argparse
import dataclasses

from bertkit.cli import summary
from bertkit.serve.config import BACKENDS, ServeConfig
from bertkit.settings import Pooling, choices

# uvicorn stops gracefully on SIGTERM and then re-raises it under the default handler (the
# process ends by the signal, as process managers expect): the CLI's SIGTERM handler stays out
OWN_SIGNAL_HANDLING = True

# flag -> (ServeConfig field, help); defaults come from the dataclass.
_OPTIONS = {
    "--host": ("host", "address to bind (default 127.0.0.1: this machine only)"),
    "--port": ("port", "TCP port"),
    "--backend": ("backend", "torch (a model directory), onnx / onnx-int8 (a `bertkit export` directory)"),
    "--max-batch-tokens": ("max_batch_tokens", "token budget of one merged model call"),
    "--max-wait-ms": ("max_wait_ms", "how long the first request of a batch waits for others"),
    "--max-queue": ("max_queue", "requests waiting at most; beyond: 503 + Retry-After"),
    "--max-inputs": ("max_inputs", "inputs per request at most; beyond: 413"),
    "--max-body-bytes": ("max_body_bytes", "request body size at most; beyond: 413"),
    "--request-timeout-s": ("request_timeout_s", "answer within this or 504"),
    "--pooling": ("pooling", "embedding pooling: mean or cls (an ONNX export has its own)"),
    "--model-id": ("model_id", "model name shown by /info and /v1/embeddings"),
    "--threads": ("threads", "torch / onnxruntime threads (default: the library's)"),
    "--graceful-timeout-s": ("graceful_timeout_s", "on SIGTERM, wait this long for requests in flight"),
}


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve",
        help=summary("serve"),
        description="Routes: POST /embed /predict /fill-mask /similarity (TEI-compatible), POST "
        "/v1/embeddings (OpenAI-style), GET /health /info /metrics, and a web page at /. "
        "See docs/SERVING.md. Needs fastapi + uvicorn: pip install 'bertkit[serve]'.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model directory (or ONNX export with --backend onnx)")
    fields = {f.name: f for f in dataclasses.fields(ServeConfig)}
    for flag, (name, text) in _OPTIONS.items():
        default = fields[name].default
        kind = {"int": int, "float": float, "str": str}.get(str(fields[name].type).split(" ")[0], str)
        extra = {"choices": list(BACKENDS)} if name == "backend" else {}
        extra = {"choices": list(choices(Pooling))} if name == "pooling" else extra
        p.add_argument(flag, dest=name, type=kind, default=default, help=f"{text} (default {default})", **extra)
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit.serve import serve

    cfg = ServeConfig(**{name: getattr(args, name) for name, _ in _OPTIONS.values()})
    serve(args.model, cfg, log_level=args.log_level)
    return 0
