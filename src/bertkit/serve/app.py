"""The ASGI app: TEI-compatible routes, an OpenAI-style embeddings route, limits, metrics, a page.

Routes (docs/SERVING.md has curl examples):

* ``POST /embed`` ``{"inputs": str | [str], "normalize": true, "truncate": false}`` -> ``[[float]]``
* ``POST /predict`` ``{"inputs": ..., "truncate": false}`` -> classification: ``[{"label", "score"}]``
  (all labels, best first; a list of those for a batch); other tasks: bertkit's prediction dicts
  (one object input -- qa ``{"question", "context"}``, choice ``{"context", "endings"}`` -- or a list)
* ``POST /fill-mask`` ``{"inputs": str | [str], "top_k": 5}`` -> ``{"text", "masks", "filled"}`` (a list for a batch)
* ``POST /similarity`` ``{"inputs": {"source_sentence": str, "sentences": [str]}}`` -> ``[float]``
* ``POST /v1/embeddings`` ``{"input": str | [str], "model": str, "encoding_format": "float" | "base64"}``
* ``GET /health``, ``GET /info``, ``GET /metrics`` (Prometheus text), ``GET /`` (the web page)

Limits: body over ``max_body_bytes`` -> 413; more than ``max_inputs`` inputs -> 413; malformed
JSON or wrong types -> 422 naming the field; a text over the model's length -> truncated when
``truncate`` is true, else 422; queue full -> 503 with ``Retry-After``; no answer within
``request_timeout_s`` -> 504. Errors are ``{"error": message, "error_type": kind}`` (TEI's shape).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from importlib import resources
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from bertkit import __version__
from bertkit.errors import BertkitError
from bertkit.serve.batcher import Batcher, QueueFull
from bertkit.serve.config import ServeConfig
from bertkit.serve.metrics import Metrics
from bertkit.settings import FillMaskOptions
from bertkit.tasks.results import input_example

# Requests with fewer characters than this are tokenised on the event loop (see Service.off_loop).
INLINE_TOKENIZE_CHARS = 8192


class HTTPError(Exception):
    def __init__(self, status: int, message: str, error_type: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.error_type, self.headers = status, message, error_type, headers


def _error(status: int, message: str, error_type: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "error_type": error_type}, status_code=status, headers=headers)


# ------------------------------------------------------------------------------------- requests
Texts = str | list[str]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EmbedRequest(_Body):
    inputs: Texts
    normalize: bool = True
    truncate: bool = False


class PredictRequest(_Body):
    inputs: str | dict[str, Any] | list[str | list[str] | dict[str, Any]]
    truncate: bool = False
    raw_scores: bool = False


class FillMaskRequest(_Body):
    inputs: Texts
    top_k: int = Field(FillMaskOptions.top_k, ge=1, le=100)
    truncate: bool = False


class SimilarityInputs(BaseModel):
    source_sentence: str
    sentences: list[str]


class SimilarityRequest(_Body):
    inputs: SimilarityInputs
    truncate: bool = False


class OpenAIEmbeddingRequest(_Body):
    input: Texts
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None


# ------------------------------------------------------------------------------------- the service
class Service:
    """The model behind the routes: token counting, limits, and the batched operations."""

    def __init__(self, predictor: Any, cfg: ServeConfig):
        self.predictor = predictor
        self.cfg = cfg
        self.tok = predictor.tokenizer
        self.max_length = int(predictor.max_length)
        self.capabilities = set(predictor.capabilities)
        self.metrics = Metrics()
        self.batcher = Batcher(
            {"embed": self._run_embed, "fill_mask": self._run_fill_mask, "predict": self._run_predict},
            cfg.max_batch_tokens,
            cfg.max_wait_ms,
            cfg.max_queue,
            self.metrics,
        )
        self.metrics.gauge("bertkit_queue_depth", "requests waiting for the model", lambda: self.batcher.depth)
        self.metrics.gauge("bertkit_batch_running", "requests in the model call now", lambda: self.batcher.running)

    # -- model calls (worker thread) ------------------------------------------------------------
    def _run_embed(self, token_ids: list[list[int]]) -> list[np.ndarray]:
        # ids from the request's own token count: each text is tokenised once
        vecs = self.predictor.embed_token_ids(
            token_ids, pooling=self.cfg.pooling, normalize=False, batch_size=len(token_ids)
        )
        return list(vecs)

    def _run_fill_mask(self, items: list[tuple[str, int]]) -> list[dict]:
        k = max(top_k for _, top_k in items)
        res = self.predictor.fill_mask([t for t, _ in items], top_k=k, batch_size=len(items))
        for r, (_, top_k) in zip(res, items):
            r["masks"] = [cands[:top_k] for cands in r["masks"]]
        return res

    def _run_predict(self, inputs: list[Any]) -> list[dict]:
        return self.predictor.predict(inputs, batch_size=len(inputs))

    # -- checks (before queueing) ---------------------------------------------------------------
    def require(self, capability: str, route: str) -> None:
        if capability not in self.capabilities:
            kind = getattr(self.predictor, "task_name", None) or getattr(self.predictor, "kind", "model")
            raise HTTPError(
                400,
                f"{route}: this {kind} model cannot do {capability.replace('_', '-')} "
                f"(it can: {', '.join(sorted(self.capabilities))})",
                "Unsupported",
            )

    def check_count(self, n: int, field: str) -> None:
        if n == 0:
            raise HTTPError(422, f"{field}: no inputs", "Validation")
        if n > self.cfg.max_inputs:
            raise HTTPError(
                413, f"{field}: {n} inputs, over the limit of {self.cfg.max_inputs} per request", "Validation"
            )

    def token_ids(self, texts: list[str], field: str) -> list[list[int]]:
        """WordPiece ids of each text (no special tokens); an empty text is a 422."""
        for i, t in enumerate(texts):
            if not t.strip():
                raise HTTPError(422, f"{field}[{i}]: empty text", "Validation")
        return self.tok.tokenize_ids_batch(texts)

    def lengths(self, texts: list[str], field: str) -> list[int]:
        return [len(ids) for ids in self.token_ids(texts, field)]

    async def off_loop(self, fn: Any, texts: list[str], field: str) -> Any:
        """``fn(texts, field)`` (tokenising) on the event loop when the texts are short -- a few
        tens of microseconds in the Rust tokenizer, less than a hop to a thread -- else on a
        thread, so a large request cannot stall the other connections."""
        if sum(map(len, texts)) <= INLINE_TOKENIZE_CHARS:
            return fn(texts, field)
        return await asyncio.to_thread(fn, texts, field)

    def fit(self, totals: list[int], field: str, truncate: bool) -> list[int]:
        """Each input's token count (special tokens included) capped at the model's length; an
        input over it is a 422 unless ``truncate``."""
        if not truncate:
            for i, n in enumerate(totals):
                if n > self.max_length:
                    raise HTTPError(
                        422,
                        f"{field}[{i}]: {n} tokens, over the model's maximum of {self.max_length}; "
                        f'shorten it or pass "truncate": true',
                        "Validation",
                    )
        return [min(n, self.max_length) for n in totals]

    async def run(self, op: str, inputs: list[Any], tokens: int) -> list[Any]:
        try:
            return await asyncio.wait_for(self.batcher.submit(op, inputs, tokens), self.cfg.request_timeout_s)
        except QueueFull:
            raise HTTPError(
                503,
                f"server busy: {self.batcher.depth} requests queued (limit {self.cfg.max_queue}); retry shortly",
                "Overloaded",
                {"Retry-After": "1"},
            ) from None
        except TimeoutError:
            raise HTTPError(
                504, f"no answer within {self.cfg.request_timeout_s:g} s (server overloaded?)", "Timeout"
            ) from None
        except BertkitError as e:
            raise HTTPError(422, str(e), "Validation") from None

    def info(self) -> dict[str, Any]:
        p = self.predictor
        cfg = p.config
        return {
            "model_id": self.cfg.model_id,
            "model_path": str(getattr(p, "path", "")),
            "kind": getattr(p, "kind", None),
            "task": getattr(p, "task_name", None),
            "labels": getattr(p, "labels", None),
            "capabilities": sorted(self.capabilities),
            "backend": self.cfg.backend,
            "device": str(getattr(p, "device", "cpu")),
            "precision": getattr(p, "precision", "fp32"),
            "pooling": self.cfg.pooling,
            "max_input_length": self.max_length,
            "max_batch_tokens": self.cfg.max_batch_tokens,
            "max_client_batch_size": self.cfg.max_inputs,
            "max_concurrent_requests": self.cfg.max_queue,
            "max_body_bytes": self.cfg.max_body_bytes,
            "request_timeout_s": self.cfg.request_timeout_s,
            "hidden_size": cfg.hidden_size,
            "vocab_size": cfg.vocab_size,
            "config": cfg.to_dict() if hasattr(cfg, "to_dict") else None,
            "version": __version__,
        }


def _texts(inputs: Texts) -> list[str]:
    return [inputs] if isinstance(inputs, str) else list(inputs)


# ------------------------------------------------------------------------------------- middleware
KNOWN_ROUTES = {
    "/",
    "/embed",
    "/predict",
    "/fill-mask",
    "/similarity",
    "/v1/embeddings",
    "/health",
    "/info",
    "/metrics",
}


class LimitsAndMetrics:
    """ASGI middleware: refuses bodies over the limit (413, by Content-Length or by counting a
    streamed body) and records every response's route, status and latency."""

    def __init__(self, app: Any, service: Service):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        route = scope["path"] if scope["path"] in KNOWN_ROUTES else "other"
        status = {"code": 500}

        async def send_wrapped(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            limit = self.service.cfg.max_body_bytes
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                return await self._too_large(scope, receive, send_wrapped, int(length), limit)
            if scope["method"] in ("POST", "PUT"):
                body, more = bytearray(), True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > limit:
                        return await self._too_large(scope, receive, send_wrapped, len(body), limit)
                replayed = False

                async def receive_body():
                    nonlocal replayed
                    if not replayed:
                        replayed = True
                        return {"type": "http.request", "body": bytes(body), "more_body": False}
                    return await receive()

                return await self.app(scope, receive_body, send_wrapped)
            return await self.app(scope, receive, send_wrapped)
        finally:
            self.service.metrics.request(route, status["code"], time.perf_counter() - t0)

    async def _too_large(self, scope, receive, send, size: int, limit: int) -> None:
        response = _error(413, f"request body of {size}+ bytes is over the limit of {limit} bytes", "Payload")
        await response(scope, receive, send)


# ------------------------------------------------------------------------------------- the app
def create_app(predictor: Any, cfg: ServeConfig | None = None) -> Any:
    """The ASGI application serving ``predictor`` (a :func:`bertkit.load` result, or an ONNX one)."""
    cfg = cfg or ServeConfig()
    cfg.validate()
    service = Service(predictor, cfg)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        service.batcher.start()
        yield
        await service.batcher.stop()  # after uvicorn has finished the in-flight requests

    app = FastAPI(title="bertkit serve", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, e: HTTPError):
        return _error(e.status, e.message, e.error_type, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError):
        parts = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            parts.append(f"{loc}: {err.get('msg')}")
        return _error(422, "; ".join(parts[:5]), "Validation")

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return resources.files("bertkit.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/info")
    async def info():
        return service.info()

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics():
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")

    async def embed_texts(texts: list[str], field: str, truncate: bool, normalize: bool) -> tuple[list, int]:
        service.require("embed", field)
        service.check_count(len(texts), field)
        ids = await service.off_loop(service.token_ids, texts, field)
        counts = service.fit([len(x) + 2 for x in ids], field, truncate)
        vecs = await service.run("embed", ids, sum(counts))
        if normalize:
            vecs = [v / max(float(np.linalg.norm(v)), 1e-12) for v in vecs]
        return vecs, sum(counts)

    @app.post("/embed")
    async def embed(req: EmbedRequest):
        vecs, _ = await embed_texts(_texts(req.inputs), "inputs", req.truncate, req.normalize)
        # a Response is sent as is: FastAPI's generic encoder would walk every float in Python
        return JSONResponse([v.astype(float).tolist() for v in vecs])

    @app.post("/v1/embeddings")
    async def openai_embeddings(req: OpenAIEmbeddingRequest):
        if req.dimensions is not None and req.dimensions != predictor.config.hidden_size:
            raise HTTPError(
                422, f"dimensions: this model's embeddings have {predictor.config.hidden_size}", "Validation"
            )
        vecs, n_tokens = await embed_texts(_texts(req.input), "input", False, True)
        data = []
        for i, v in enumerate(vecs):
            v32 = np.asarray(v, dtype="<f4")
            emb = (
                base64.b64encode(v32.tobytes()).decode()
                if req.encoding_format == "base64"
                else v32.astype(float).tolist()
            )
            data.append({"object": "embedding", "embedding": emb, "index": i})
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": req.model or cfg.model_id,
                "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
            }
        )

    @app.post("/similarity")
    async def similarity(req: SimilarityRequest):
        texts = [req.inputs.source_sentence, *req.inputs.sentences]
        if not req.inputs.sentences:
            raise HTTPError(422, "inputs.sentences: no sentences", "Validation")
        vecs, _ = await embed_texts(texts, "inputs", req.truncate, True)
        return [float(vecs[0] @ v) for v in vecs[1:]]

    @app.post("/fill-mask")
    async def fill_mask(req: FillMaskRequest):
        service.require("fill_mask", "/fill-mask")
        texts = _texts(req.inputs)
        service.check_count(len(texts), "inputs")
        ids = await service.off_loop(service.token_ids, texts, "inputs")
        counts = service.fit([len(x) + 2 for x in ids], "inputs", req.truncate)
        mask_id, keep = service.tok.mask_id, service.max_length - 2
        mask = service.tok.convert_ids_to_tokens([mask_id])[0]
        for i, x in enumerate(ids):  # checked here, so one bad text cannot fail a merged batch
            if mask_id not in x:
                raise HTTPError(422, f"inputs[{i}]: no {mask} token in the text", "Validation")
            if mask_id not in x[:keep]:
                raise HTTPError(
                    422, f"inputs[{i}]: its {mask} lies beyond the {service.max_length} tokens kept", "Validation"
                )
        res = await service.run("fill_mask", [(t, req.top_k) for t in texts], sum(counts))
        return res[0] if isinstance(req.inputs, str) else res

    @app.post("/predict")
    async def predict(req: PredictRequest):
        service.require("predict", "/predict")
        task = predictor.task_name
        if req.raw_scores:
            raise HTTPError(422, "raw_scores: not supported (scores are probabilities)", "Validation")
        pair_task = task in ("pair", "qa")
        raw = req.inputs
        single = isinstance(raw, str | dict) or (pair_task and len(raw) == 2 and all(isinstance(x, str) for x in raw))
        items = [raw] if single else list(raw)
        service.check_count(len(items), "inputs")
        if task == "choice":
            preds = await predict_choices(items, req.truncate)
            return preds[0] if single else preds
        inputs, texts_a, texts_b = [], [], []
        for i, x in enumerate(items):
            if isinstance(x, dict):
                if task != "qa" or not all(isinstance(x.get(k), str) for k in ("question", "context")):
                    raise HTTPError(422, f"inputs[{i}]: an object input is for qa: {{question, context}}", "Validation")
                a, b = x["question"], x["context"]
            elif isinstance(x, list):
                if len(x) != 2 or not all(isinstance(s, str) for s in x):
                    raise HTTPError(422, f"inputs[{i}]: a pair is a list of two strings", "Validation")
                a, b = x
            else:
                a, b = x, None
            if pair_task and b is None:
                raise HTTPError(422, f"inputs[{i}]: this {task} model needs a pair of texts", "Validation")
            inputs.append((a, b) if b is not None else a)
            texts_a.append(a)
            texts_b.append(b)
        len_a = await service.off_loop(service.lengths, texts_a, "inputs")
        len_b = await service.off_loop(service.lengths, [t for t in texts_b if t is not None], "inputs")
        it = iter(len_b)
        totals = [n + 2 + (next(it) + 1 if t is not None else 0) for n, t in zip(len_a, texts_b)]
        counts = service.fit(totals, "inputs", req.truncate or task == "qa")  # qa reads long contexts in windows
        preds = await service.run("predict", inputs, sum(counts))
        out = [_tei_prediction(p) for p in preds]
        return out[0] if single else out

    async def predict_choices(items: list[Any], truncate: bool) -> list[dict]:
        """Multiple choice: each input ``{"context", "endings": [...], "start"?}`` is one model
        row per ending ([CLS] context [SEP] start ending [SEP]); each row must fit the model."""
        examples = []
        for i, x in enumerate(items):
            try:
                if not isinstance(x, dict):  # the HTTP form is an object
                    raise BertkitError("not an object")
                examples.append(input_example("choice", x, i + 1))  # the library's own check
            except BertkitError:
                raise HTTPError(
                    422,
                    f'inputs[{i}]: a multiple-choice input is {{"context": str, "endings": [str, str, ...], '
                    '"start": str (optional)}',
                    "Validation",
                ) from None
        len_c = await service.off_loop(service.lengths, [e.context for e in examples], "inputs")
        seconds = [s for e in examples for s in e.second_segments]
        len_s = iter(await service.off_loop(service.lengths, seconds, "inputs"))
        tokens = 0
        for i, (e, n) in enumerate(zip(examples, len_c)):
            rows = [n + next(len_s) + 3 for _ in e.endings]
            tokens += sum(service.fit(rows, f"inputs[{i}].endings", truncate))
        return await service.run("predict", items, tokens)

    return LimitsAndMetrics(app, service)


def _tei_prediction(p: dict) -> Any:
    """Classification -> TEI's ``[{"label", "score"}]`` over every label, best first."""
    if "probabilities" in p:
        items = sorted(p["probabilities"].items(), key=lambda kv: -kv[1])
        return [{"label": k, "score": float(v)} for k, v in items]
    return p
