"""bertkit serve: every route driven by clients written by others (httpx, requests, the openai
client) against a real uvicorn on 127.0.0.1; every limit's status code; dynamic batching (merged
calls, answers routed back); metrics; the ONNX backend; graceful SIGTERM shutdown."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx", reason="httpx not installed (test extra)")
pytest.importorskip("fastapi", reason="fastapi not installed (pip install 'bertkit[serve]')")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn not installed (pip install 'bertkit[serve]')")

from serve_helpers import make_model_dir, running  # noqa: E402

import bertkit  # noqa: E402
from bertkit.serve.config import ServeConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
SRC = Path(bertkit.__file__).resolve().parents[1]  # the bertkit under test, for subprocesses


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        k: make_model_dir(root, k)
        for k in ("encoder", "pretraining", "classification", "pair", "tagging", "qa", "choice")
    }


@pytest.fixture(scope="module")
def predictors(models):
    return {k: bertkit.load(d, device="cpu") for k, d in models.items()}


@pytest.fixture(scope="module")
def encoder_server(predictors):
    with running(predictors["encoder"], max_wait_ms=2) as (url, app):
        yield url, app


# ------------------------------------------------------------------------------------- routes
def test_embed_tei_route_equals_the_library(encoder_server, predictors):
    url, _ = encoder_server
    texts = ["the film was good .", "mary lives in paris", "a dog sat on the mat today"]
    want = predictors["encoder"].embed(texts, pooling="mean", normalize=True)
    r = httpx.post(f"{url}/embed", json={"inputs": texts})
    assert r.status_code == 200
    got = np.array(r.json())
    assert got.shape == (3, 32)
    np.testing.assert_allclose(got, want, atol=1e-5)
    one = httpx.post(f"{url}/embed", json={"inputs": texts[0], "normalize": False}).json()
    raw = predictors["encoder"].embed(texts[:1], pooling="mean", normalize=False)
    assert len(one) == 1
    np.testing.assert_allclose(one, raw, atol=1e-5)


@pytest.mark.parametrize("encoding_format", [None, "float", "base64"])
def test_openai_client_embeddings_create(encoder_server, predictors, encoding_format):
    openai = pytest.importorskip("openai", reason="openai client not installed (test extra)")
    url, _ = encoder_server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    texts = ["the film was good .", "he eats food"]
    kw = {} if encoding_format is None else {"encoding_format": encoding_format}
    res = client.embeddings.create(model="tiny", input=texts, **kw)  # the client asks for base64 by default
    want = predictors["encoder"].embed(texts, pooling="mean", normalize=True)
    assert [d.index for d in res.data] == [0, 1] and res.model == "tiny"
    if encoding_format == "base64":  # asked for explicitly, the client hands back the server's string
        got = np.array([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in res.data])
    else:  # the client decoded its own default (base64) or read floats
        got = np.array([d.embedding for d in res.data])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert res.usage.prompt_tokens == res.usage.total_tokens > 0


def test_similarity_info_health_and_page(encoder_server, predictors):
    requests = pytest.importorskip("requests", reason="requests not installed (test extra)")
    url, _ = encoder_server
    r = requests.post(
        f"{url}/similarity", json={"inputs": {"source_sentence": "the cat sat", "sentences": ["a cat sat", "paris"]}}
    )
    want = predictors["encoder"].similarity(["the cat sat"], ["a cat sat", "paris"])[0]
    np.testing.assert_allclose(r.json(), want, atol=1e-5)
    assert requests.get(f"{url}/health").json() == {"status": "ok"}
    info = requests.get(f"{url}/info").json()
    assert info["max_input_length"] == 64 and info["hidden_size"] == 32 and info["version"] == bertkit.__version__
    assert "embed" in info["capabilities"] and info["config"]["num_hidden_layers"] == 2
    page = requests.get(f"{url}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"] and "/fill-mask" in page.text


def test_device_and_precision_reach_the_model(models):
    """``--device`` / ``--precision`` are handed to bertkit.load (a GPU server runs on the GPU)
    and shown by /info; a GPU asked for where there is none is one clear error."""
    import torch

    from bertkit.errors import BertkitError
    from bertkit.serve.server import open_model

    p = open_model(str(models["encoder"]), ServeConfig(device="cpu", precision="bf16"))
    assert p.device.type == "cpu" and p.precision == "bf16"
    with running(p) as (url, _):
        info = httpx.get(f"{url}/info").json()
    assert info["device"] == "cpu" and info["precision"] == "bf16"
    with pytest.raises(BertkitError, match="precision"):
        ServeConfig(precision="int4").validate()
    if not torch.cuda.is_available():
        with pytest.raises(BertkitError, match="(?i)cuda"):
            open_model(str(models["encoder"]), ServeConfig(device="cuda"))


def test_fill_mask_route(predictors):
    requests = pytest.importorskip("requests")
    with running(predictors["pretraining"]) as (url, _):
        r = requests.post(f"{url}/fill-mask", json={"inputs": "paris is the [MASK] of france", "top_k": 3})
        assert r.status_code == 200
        body = r.json()
        want = predictors["pretraining"].fill_mask(["paris is the [MASK] of france"], top_k=3)[0]
        assert [c["token"] for c in body["masks"][0]] == [c["token"] for c in want["masks"][0]]
        np.testing.assert_allclose(
            [c["score"] for c in body["masks"][0]], [c["score"] for c in want["masks"][0]], atol=1e-5
        )
        both = requests.post(f"{url}/fill-mask", json={"inputs": ["[MASK] dog", "a [MASK] sat"], "top_k": 2}).json()
        assert len(both) == 2 and len(both[1]["masks"][0]) == 2
        r = requests.post(f"{url}/fill-mask", json={"inputs": "no mask here"})
        assert r.status_code == 422 and "inputs[0]" in r.json()["error"]
        late = "the dog sat on the mat " * 12 + "[MASK]"  # > 64 tokens, the mask at the end
        r = requests.post(f"{url}/fill-mask", json={"inputs": ["a [MASK]", late], "truncate": True})
        assert r.status_code == 422 and "inputs[1]" in r.json()["error"] and "beyond" in r.json()["error"]
        r = requests.post(f"{url}/embed", json={"inputs": "a dog"})
        assert r.status_code == 200  # a pre-training checkpoint embeds too


def test_predict_routes(predictors):
    requests = pytest.importorskip("requests")
    with running(predictors["classification"]) as (url, _):
        r = requests.post(f"{url}/predict", json={"inputs": "a good film ."})
        want = predictors["classification"].predict(["a good film ."])[0]
        assert r.status_code == 200
        body = r.json()
        assert [x["label"] for x in body] == sorted(want["probabilities"], key=lambda k: -want["probabilities"][k])
        assert body[0]["score"] == pytest.approx(want["probability"], abs=1e-5)
        batch = requests.post(f"{url}/predict", json={"inputs": ["a good film .", "a bad plot ."]}).json()
        assert len(batch) == 2 and all(len(x) == 2 for x in batch)
        r = requests.post(f"{url}/fill-mask", json={"inputs": "a [MASK] film"})
        assert r.status_code == 400 and "cannot do fill-mask" in r.json()["error"]
    with running(predictors["pair"]) as (url, _):
        single = requests.post(f"{url}/predict", json={"inputs": ["who lives in paris ?", "mary lives in paris"]})
        assert single.status_code == 200 and {x["label"] for x in single.json()} == {"no", "yes"}
        r = requests.post(f"{url}/predict", json={"inputs": "only one text"})
        assert r.status_code == 422 and "pair" in r.json()["error"]
    with running(predictors["tagging"]) as (url, _):
        body = requests.post(f"{url}/predict", json={"inputs": "john lives in paris"}).json()
        want = predictors["tagging"].predict(["john lives in paris"])[0]
        assert body == json.loads(json.dumps(want))
    with running(predictors["qa"]) as (url, _):
        q = {"question": "where does mary live ?", "context": "mary lives in paris today"}
        body = requests.post(f"{url}/predict", json={"inputs": [q]}).json()
        want = predictors["qa"].predict([q])[0]
        assert body[0]["answer"] == want["answer"]
        # one object is one input (the documented form, and what the web page sends): was a 422
        one = requests.post(f"{url}/predict", json={"inputs": q})
        assert one.status_code == 200 and one.json() == body[0]


def test_multiple_choice_over_http_equals_the_library(predictors):
    """A multiple-choice model answers /predict (it was refused with a 400): one object or a list,
    the library's probabilities, one-line 422s for malformed inputs and over-long endings."""
    requests = pytest.importorskip("requests")
    x = {"context": "the man sat on the mat .", "start": "he", "endings": ["eats food", "runs", "sleeps today"]}
    y = {"context": "the dog runs in paris", "endings": ["and rome", "very good"]}
    want = predictors["choice"].predict([x, y])
    with running(predictors["choice"]) as (url, _):
        one = requests.post(f"{url}/predict", json={"inputs": x})
        assert one.status_code == 200
        assert one.json()["choice"] == want[0]["choice"]
        assert one.json()["probabilities"] == pytest.approx(want[0]["probabilities"], abs=1e-5)
        both = requests.post(f"{url}/predict", json={"inputs": [x, y]}).json()
        assert [b["choice"] for b in both] == [w["choice"] for w in want] and len(both[1]["probabilities"]) == 2
        bad = requests.post(f"{url}/predict", json={"inputs": [y, {"context": "a", "endings": ["only one"]}]})
        assert bad.status_code == 422 and bad.json()["error"].startswith("inputs[1]: a multiple-choice input is")
        long = {"context": "the film " * 10, "endings": ["good", "the plot " * 20]}
        r = requests.post(f"{url}/predict", json={"inputs": long})
        assert r.status_code == 422 and r.json()["error"].startswith("inputs[0].endings[1]:")
        r = requests.post(f"{url}/predict", json={"inputs": long, "truncate": True})
        assert r.status_code == 200 and len(r.json()["probabilities"]) == 2


# ------------------------------------------------------------------------------------- limits
def test_body_too_large_is_413(predictors):
    with running(predictors["encoder"], max_body_bytes=1000) as (url, _):
        r = httpx.post(f"{url}/embed", json={"inputs": "the film " * 200})
        assert r.status_code == 413 and r.json()["error_type"] == "Payload"

        def chunks():  # no Content-Length: the server counts the streamed body
            for _ in range(20):
                yield b" " * 100

        r = httpx.post(f"{url}/embed", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413


def test_too_many_inputs_is_413(predictors):
    with running(predictors["encoder"], max_inputs=4) as (url, _):
        assert httpx.post(f"{url}/embed", json={"inputs": ["a dog"] * 4}).status_code == 200
        r = httpx.post(f"{url}/embed", json={"inputs": ["a dog"] * 5})
        assert r.status_code == 413 and "5 inputs" in r.json()["error"]


def test_malformed_json_and_wrong_types_are_422_naming_the_field(encoder_server):
    url, _ = encoder_server
    r = httpx.post(f"{url}/embed", content=b'{"inputs": ["a"', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]
    r = httpx.post(f"{url}/embed", json={"inputs": 5})
    assert r.status_code == 422 and r.json()["error"].startswith("inputs")
    r = httpx.post(f"{url}/embed", json={"inputs": "a", "normalize": "maybe"})
    assert r.status_code == 422 and "normalize" in r.json()["error"]
    r = httpx.post(f"{url}/v1/embeddings", json={"input": "a", "encoding_format": "hex"})
    assert r.status_code == 422 and "encoding_format" in r.json()["error"]
    r = httpx.post(f"{url}/embed", json={"texts": ["a"]})
    assert r.status_code == 422 and "inputs" in r.json()["error"]
    r = httpx.post(f"{url}/embed", json={"inputs": []})
    assert r.status_code == 422 and "no inputs" in r.json()["error"]


def test_long_text_is_422_unless_truncate(encoder_server, predictors):
    url, _ = encoder_server
    long = "the film was good and very fine " * 20  # > 64 tokens
    r = httpx.post(f"{url}/embed", json={"inputs": ["a dog", long]})
    assert r.status_code == 422 and "inputs[1]" in r.json()["error"] and "truncate" in r.json()["error"]
    r = httpx.post(f"{url}/embed", json={"inputs": [long], "truncate": True})
    assert r.status_code == 200
    np.testing.assert_allclose(r.json(), predictors["encoder"].embed([long], normalize=True), atol=1e-5)


class Gate:
    """Wraps a predictor so its model calls wait until ``open()`` (a busy or stuck model)."""

    def __init__(self, predictor):
        self.p = predictor
        self.event = threading.Event()
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.p, name)

    def embed_token_ids(self, *a, **kw):  # what the embedding routes call
        self.calls += 1
        self.event.wait(30)
        return self.p.embed_token_ids(*a, **kw)

    def open(self):
        self.event.set()


def test_queue_full_is_503_with_retry_after_and_timeout_is_504(predictors):
    gate = Gate(predictors["encoder"])
    with running(gate, max_queue=1, max_wait_ms=0, request_timeout_s=20) as (url, app):
        service = app.service
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(httpx.post, f"{url}/embed", json={"inputs": "a dog"}, timeout=30)
            deadline = time.time() + 30  # a hang here fails the test instead of stalling the suite
            while service.batcher.running == 0:  # the first is in the (stuck) model call
                assert time.time() < deadline, "the first request never reached the model"
                time.sleep(0.01)
            second = pool.submit(httpx.post, f"{url}/embed", json={"inputs": "a cat"}, timeout=30)
            while service.batcher.depth == 0:  # the second waits in the queue
                assert time.time() < deadline, "the second request never queued"
                time.sleep(0.01)
            r = httpx.post(f"{url}/embed", json={"inputs": "a man"})
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.json()["error_type"] == "Overloaded"
            gate.open()
            assert first.result().status_code == 200 and second.result().status_code == 200  # accepted = answered
    gate = Gate(predictors["encoder"])
    with running(gate, request_timeout_s=0.3) as (url, _):
        r = httpx.post(f"{url}/embed", json={"inputs": "a dog"}, timeout=30)
        assert r.status_code == 504 and r.json()["error_type"] == "Timeout"
        gate.open()


# ------------------------------------------------------------------------------------- batching
def test_concurrent_requests_are_merged_and_answers_routed_back(predictors):
    texts = [f"{w} sat on the mat" for w in ("a dog", "the cat", "mary", "john", "he", "she", "a man", "the dog")]
    want = predictors["encoder"].embed(texts, pooling="mean", normalize=True)
    for budget, merged in ((16384, True), (9, False)):  # 9 tokens = one request: batching off
        with running(predictors["encoder"], max_wait_ms=300, max_batch_tokens=budget) as (url, app):
            with ThreadPoolExecutor(len(texts)) as pool:
                futures = [pool.submit(httpx.post, f"{url}/embed", json={"inputs": t}, timeout=30) for t in texts]
                got = [f.result().json()[0] for f in futures]
            np.testing.assert_allclose(got, want, atol=1e-5)
            batches = app.service.batcher.batches
            assert (batches < len(texts)) if merged else (batches == len(texts))


def test_metrics_are_prometheus_text(predictors):
    with running(predictors["encoder"]) as (url, _):
        for _ in range(3):
            httpx.post(f"{url}/embed", json={"inputs": ["a dog", "a cat"]})
        httpx.post(f"{url}/embed", json={"inputs": 5})
        text = httpx.get(f"{url}/metrics").text
    assert 'bertkit_requests_total{route="/embed",status="200"} 3' in text
    assert 'bertkit_requests_total{route="/embed",status="422"} 1' in text
    assert 'bertkit_request_duration_seconds_bucket{route="/embed",le="+Inf"} 4' in text
    assert "bertkit_batch_size_count 3" in text and "bertkit_batch_size_sum 6" in text
    assert "# TYPE bertkit_queue_depth gauge" in text and "bertkit_queue_depth 0" in text


# ------------------------------------------------------------------------------------- backends
def test_onnx_backend_serves_an_export(models, predictors, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'bertkit[serve]')")
    from bertkit.export import export_onnx, load_onnx

    export_onnx(models["encoder"], tmp_path / "exp")
    with running(load_onnx(tmp_path / "exp"), backend="onnx") as (url, _):
        got = httpx.post(f"{url}/embed", json={"inputs": ["a dog sat", "mary lives in paris"]}).json()
        assert httpx.get(f"{url}/info").json()["backend"] == "onnx"
    want = predictors["encoder"].embed(["a dog sat", "mary lives in paris"], normalize=True)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_onnx_predictor_fill_mask_and_task_equal_torch(models, predictors, tmp_path):
    """The ONNX predictor reuses the Predictor's tokenization and decoding; only the model differs."""
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'bertkit[serve]')")
    from bertkit.errors import BertkitError
    from bertkit.export import export_onnx, load_onnx

    export_onnx(models["pretraining"], tmp_path / "mlm", quantize="int8")
    texts = ["paris is the [MASK] of france", "a [MASK] sat on the [MASK]"]
    for int8 in (False, True):
        onnx_mlm = load_onnx(tmp_path / "mlm", int8=int8)
        assert onnx_mlm.capabilities == ("fill_mask",)
        got = onnx_mlm.fill_mask(texts, top_k=3)
        want = predictors["pretraining"].fill_mask(texts, top_k=3)
        if not int8:
            assert [[c["token"] for c in m] for g in got for m in g["masks"]] == [
                [c["token"] for c in m] for w in want for m in w["masks"]
            ]
        assert all(len(m) == 3 for g in got for m in g["masks"])
    with pytest.raises(BertkitError, match="not an encoder"):
        onnx_mlm.embed(["a dog"])
    export_onnx(models["tagging"], tmp_path / "tag")
    onnx_tag = load_onnx(tmp_path / "tag")
    got, want = onnx_tag.predict(["john lives in paris"])[0], predictors["tagging"].predict(["john lives in paris"])[0]
    assert got["words"] == want["words"]
    assert [e["entity_group"] for e in got["entities"]] == [e["entity_group"] for e in want["entities"]]
    np.testing.assert_allclose([e["score"] for e in got["entities"]], [e["score"] for e in want["entities"]], atol=1e-5)
    with pytest.raises(BertkitError, match="no int8 model"):
        load_onnx(tmp_path / "tag", int8=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve_binds_loopback_and_shuts_down_gracefully_on_sigterm(models):
    """A real `bertkit serve` process: 127.0.0.1 by default; on SIGTERM the request in flight
    (held in the batcher by --max-wait-ms) is answered, then the process exits cleanly."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bertkit", "serve", "--model", str(models["encoder"]), "--port", str(port)]
    proc = subprocess.Popen(
        cmd + ["--max-wait-ms", "1500", "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 300  # a generous start-up wait: importing torch is slow on a busy machine
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.time() < deadline, "server did not come up"
                time.sleep(0.1)
        with ThreadPoolExecutor(1) as pool:
            inflight = pool.submit(httpx.post, f"{url}/embed", json={"inputs": "a dog"}, timeout=30)
            time.sleep(0.5)  # the request now waits in the batcher
            proc.send_signal(signal.SIGTERM)
            r = inflight.result()
        assert r.status_code == 200 and len(r.json()[0]) == 32
        # uvicorn re-raises SIGTERM once its graceful shutdown is done (serve keeps its own
        # signal handling): the process ends by the signal, as a process manager expects
        assert proc.wait(timeout=30) == -signal.SIGTERM
        assert "Traceback" not in proc.stdout.read().decode()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_default_bind_is_loopback_and_missing_server_packages_are_one_line(models, monkeypatch, capsys):
    from bertkit.cli import build_parser, main

    parser, _ = build_parser(["serve"])
    args = parser.parse_args(["serve", "--model", "x"])
    assert args.host == "127.0.0.1" == ServeConfig().host
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve", "--model", str(models["encoder"])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "uvicorn is missing" in err and "bertkit[serve]" in err
