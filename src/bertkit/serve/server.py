"""Load a model and serve it: the predictor (torch through :func:`bertkit.load`, or onnxruntime
through an ONNX export), the ASGI app (:mod:`bertkit.serve.app`) and uvicorn.

fastapi and uvicorn are the optional ``bertkit[serve]`` extra: they (and :mod:`bertkit.serve.app`,
built on them) are imported when a server is asked for, so that without them this module still
imports and the request is one clear error naming the missing package."""

from __future__ import annotations

from typing import Any

import torch

from bertkit.errors import BertkitError
from bertkit.export import load_onnx
from bertkit.inference import load
from bertkit.serve.config import ServeConfig

MISSING_HINT = "pip install 'bertkit[serve]'"


def _require_server() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise BertkitError(f"bertkit serve needs fastapi and uvicorn ({e.name} is missing): {MISSING_HINT}") from None


def open_model(model: str, cfg: ServeConfig) -> Any:
    """The predictor for ``model``: :func:`bertkit.load` (torch) or an ONNX export directory."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.backend in ("onnx", "onnx-int8"):
        return load_onnx(model, int8=cfg.backend == "onnx-int8", max_tokens=cfg.max_batch_tokens, threads=cfg.threads)
    return load(model, max_tokens=cfg.max_batch_tokens, device=cfg.device, precision=cfg.precision)


def create_app(predictor: Any, cfg: ServeConfig | None = None) -> Any:
    """The ASGI app serving ``predictor`` (see :mod:`bertkit.serve.app` for routes and limits)."""
    _require_server()
    from bertkit.serve.app import create_app as create

    return create(predictor, cfg)


def serve(model: str, cfg: ServeConfig) -> None:
    """Load ``model`` and serve it until SIGTERM / SIGINT: uvicorn then stops accepting
    connections, finishes the requests in flight (up to ``cfg.graceful_timeout_s``), and the
    batch worker drains its queue before the process exits."""
    _require_server()
    import uvicorn

    cfg.validate()
    app = create_app(open_model(model, cfg), cfg)
    config = uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        log_level=cfg.log_level,
        timeout_graceful_shutdown=cfg.graceful_timeout_s,
        access_log=False,
    )
    uvicorn.Server(config).run()
