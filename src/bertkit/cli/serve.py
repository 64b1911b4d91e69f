"""``bertkit serve``: a model behind HTTP with dynamic batching, limits, metrics and a web page."""

from __future__ import annotations

import argparse

from bertkit import settings
from bertkit.cli import summary
from bertkit.serve.config import ServeConfig

# uvicorn stops gracefully on SIGTERM and then re-raises it under the default handler (the
# process ends by the signal, as process managers expect): the CLI's SIGTERM handler stays out
OWN_SIGNAL_HANDLING = True


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve",
        help=summary("serve"),
        description="Routes: POST /embed /predict /fill-mask /similarity (TEI-compatible), POST "
        "/v1/embeddings (OpenAI-style), GET /health /info /metrics, and a web page at /. "
        "See docs/SERVING.md. Needs fastapi + uvicorn: pip install 'bertkit[serve]'.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model directory (or ONNX export with --backend onnx)")
    settings.add_flags(p, ServeConfig())
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit.serve.server import serve

    serve(args.model, settings.from_args(args, ServeConfig))
    return 0
