"""``bertkit serve``: a model behind HTTP (FastAPI on uvicorn), with dynamic batching and a web page.

::

    from bertkit.serve import ServeConfig, create_app, open_model, serve
    serve("runs/sst2", ServeConfig(port=8080))          # blocks; SIGTERM / Ctrl-C stop it gracefully
    app = create_app(open_model("runs/sst2", ServeConfig()))   # the ASGI app, for another server

See :mod:`bertkit.serve.app` for the routes and limits, docs/SERVING.md for deployment.
"""

from __future__ import annotations

from typing import Any

from bertkit.errors import BertkitError
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
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.backend in ("onnx", "onnx-int8"):
        from bertkit.export import load_onnx

        return load_onnx(model, int8=cfg.backend == "onnx-int8", max_tokens=cfg.max_batch_tokens, threads=cfg.threads)
    from bertkit.inference import load

    return load(model, max_tokens=cfg.max_batch_tokens, device="cpu")


def create_app(predictor: Any, cfg: ServeConfig | None = None) -> Any:
    _require_server()
    from bertkit.serve.app import create_app as _create

    return _create(predictor, cfg)


def serve(model: str, cfg: ServeConfig, log_level: str = "info") -> None:
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
        log_level=log_level,
        timeout_graceful_shutdown=cfg.graceful_timeout_s,
        access_log=False,
    )
    uvicorn.Server(config).run()


__all__ = ["ServeConfig", "create_app", "open_model", "serve"]
