"""``bertkit serve``: a model behind HTTP (FastAPI on uvicorn), with dynamic batching and a web page.

::

    from bertkit.serve.config import ServeConfig
    from bertkit.serve.server import create_app, open_model, serve
    serve("runs/sst2", ServeConfig(port=8080))          # blocks; SIGTERM / Ctrl-C stop it gracefully
    app = create_app(open_model("runs/sst2", ServeConfig()))   # the ASGI app, for another server

Modules: ``config`` (``ServeConfig``, torch-free, read by the CLI), ``batcher`` (dynamic
batching), ``metrics`` (Prometheus text), ``app`` (routes, limits, the page), ``server`` (model
loading and uvicorn). This ``__init__`` imports nothing, so ``bertkit serve --help`` stays
torch-free. See :mod:`bertkit.serve.app` for the routes and limits, docs/SERVING.md for
deployment.
"""
