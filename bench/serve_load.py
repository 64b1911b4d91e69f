"""Bounded load test of ``bertkit serve`` on 127.0.0.1: dynamic batching on vs off, a 10x overload,
and onnxruntime fp32 / int8 vs torch fp32 latency, all in one run.

    python bench/serve_load.py                        # MiniLM from ../shared/data, 32 clients
    python bench/serve_load.py --clients 32 --seconds 10 --rounds 3 --model DIR

Every server is a real ``bertkit serve`` child process bound to 127.0.0.1; the clients are light
asyncio HTTP/1.1 keep-alive connections in this process (``Connection``: the load generator
shares the machine's cores with the server, so it is kept as cheap as ``wrk``-style tools),
each sending one-text ``POST /embed`` requests back to back (texts from the polarity dev file) for a fixed time, then stopping. Reported per scenario: requests/s,
p50 / p99 latency, status counts, the server's peak RSS (from /proc), model calls and mean
requests per call (from /metrics). Answers are checked: every 200 must equal the reference
embedding of its text (unbatched torch serving, one request at a time) within 1e-4.

Scenarios:
* ``unbatched``: ``--max-batch-tokens 1`` (below one request: each request runs alone);
* ``batched``: the default token budget, ``--max-wait-ms 5``; both servers run side by side and
  are measured in alternating rounds (the load of a shared machine drifts);
* ``overload``: 10x the clients against a queue of ``--overload-queue`` requests: the server
  must stay up with bounded RSS, refuse the excess with 503, and answer every accepted request
  correctly;
* ``latency``: one client, sequential requests, for torch fp32, onnx fp32 and onnx int8 (the
  model exported with ``bertkit export --quantize int8`` in a temp dir).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BERTKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (0 once the process has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    rss = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(rss[0]) / 1024 if rss else 0.0


class Server:
    """``bertkit serve`` in a child process on 127.0.0.1; samples its RSS every 50 ms."""

    def __init__(self, model: str, threads: int, *flags: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": str(threads)}
        cmd = [sys.executable, "-m", "bertkit", "serve", "--model", model, "--port", str(self.port)]
        cmd += ["--threads", str(threads), "--log-level", "warning", *flags]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.peak_rss = 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()
        import httpx

        deadline = time.time() + 300
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                if time.time() > deadline:
                    raise SystemExit("server did not start in 300 s") from None
                time.sleep(0.2)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, rss_mb(self.proc.pid))
            time.sleep(0.05)

    def metrics(self) -> dict[str, float]:
        import httpx

        out = {}
        for line in httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            if line.startswith(("bertkit_batch_requests_count", "bertkit_batch_requests_sum")):
                name, value = line.split()
                out[name] = float(value)
        return out

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(timeout=60)
        self._stop.set()
        return code


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: the load generator's client.

    The clients share this machine's cores with the server, so the load generator is kept as
    light as ``wrk``-style tools: a request is one write and a response one header read plus a
    Content-Length body read (what uvicorn sends).
    Answers are still parsed and checked. ``bertkit serve``'s API tests use real third-party
    clients (httpx, requests, the openai client); this is only the benchmark's load."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, timeout: float) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            self.writer.write(head.encode() + body)
            raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
            data = await asyncio.wait_for(self.reader.readexactly(int(headers.get("content-length", 0))), timeout)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def load(url: str, texts: list[str], clients: int, seconds: float, timeout: float = 60.0) -> dict:
    """``clients`` concurrent loops of one-text /embed requests for ``seconds``, each on its own
    keep-alive connection; returns latencies of 200s, status counts and (text index, embedding)
    of every 200."""
    host, port = url.removeprefix("http://").split(":")
    bodies = [json.dumps({"inputs": t}).encode() for t in texts]
    stop_at = time.perf_counter() + seconds
    lat: list[float] = []
    status: dict[str, int] = {}
    answers: list[tuple[int, list[float]]] = []

    async def worker(k: int) -> None:
        conn = Connection(host, int(port))
        i = k
        try:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    code, headers, data = await conn.post("/embed", bodies[i % len(texts)], timeout)
                    key = str(code)
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as e:
                    code, key = 0, type(e).__name__
                status[key] = status.get(key, 0) + 1
                if code == 200:
                    lat.append(time.perf_counter() - t0)
                    answers.append((i % len(texts), json.loads(data)[0]))
                elif code == 503:
                    await asyncio.sleep(float(headers.get("retry-after", "1")) / 10)  # a polite client backs off
                i += clients
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    wall = time.perf_counter() - t0
    ok = len(lat)
    return {
        "clients": clients,
        "seconds": round(wall, 2),
        "requests_ok": ok,
        "req_per_s": round(ok / wall, 2),
        "p50_ms": round(1000 * float(np.percentile(lat, 50)), 1) if lat else None,
        "p99_ms": round(1000 * float(np.percentile(lat, 99)), 1) if lat else None,
        "status": status,
        "_answers": answers,
        "_lat": lat,
    }


def check(answers: list[tuple[int, list[float]]], reference: dict[int, np.ndarray]) -> float:
    """Largest |answer - reference| over every answered request."""
    worst = 0.0
    for i, emb in answers:
        worst = max(worst, float(np.abs(np.asarray(emb) - reference[i]).max()))
    return worst


def one_by_one(url: str, texts: list[str]) -> dict[int, np.ndarray]:
    import httpx

    return {
        i: np.asarray(httpx.post(f"{url}/embed", json={"inputs": t}, timeout=60).json()[0]) for i, t in enumerate(texts)
    }


def scenario(name, model, threads, texts, clients, seconds, reference, *flags) -> dict:
    server = Server(model, threads, *flags)
    try:
        asyncio.run(load(server.url, texts, min(clients, 4), 2.0))  # warm-up
        res = asyncio.run(load(server.url, texts, clients, seconds))
        m = server.metrics()
        alive = server.proc.poll() is None
    finally:
        code = server.stop()
    answers = res.pop("_answers")
    res.pop("_lat")
    if reference is not None:
        res["max_abs_diff_vs_reference"] = check(answers, reference)
    res.update(
        scenario=name,
        flags=" ".join(flags),
        server_alive_after=alive,
        exit_code=code,
        peak_rss_mb=round(server.peak_rss, 1),
        model_calls=int(m.get("bertkit_batch_requests_count", 0)),
        requests_per_call=round(
            m.get("bertkit_batch_requests_sum", 0) / max(m.get("bertkit_batch_requests_count", 1), 1), 2
        ),
    )
    print(json.dumps(res), flush=True)
    return {**res, "_answers": answers}


def side_by_side(specs: dict, args, texts: list[str], clients: int, seconds: float, reference=None) -> dict:
    """Several servers (``{name: (model, flags)}``) up at once, each idle while another is
    measured, in ``args.rounds`` alternating rounds: a shared machine's drifting load then
    weighs on all of them alike. Without ``reference``, the first server's one-request-at-a-time
    answers become the reference (returned as ``_reference``)."""
    servers = {name: Server(model, args.threads, *flags) for name, (model, flags) in specs.items()}
    rounds: dict[str, list[dict]] = {name: [] for name in servers}
    out: dict = {}
    try:
        if reference is None:
            reference = one_by_one(next(iter(servers.values())).url, texts)
            out["_reference"] = reference
        for s in servers.values():
            asyncio.run(load(s.url, texts, min(clients, 4), 2.0))  # warm-up
        for _ in range(args.rounds):
            for name, s in servers.items():
                rounds[name].append(asyncio.run(load(s.url, texts, clients, seconds)))
        metrics = {name: s.metrics() for name, s in servers.items()}
        alive = {name: s.proc.poll() is None for name, s in servers.items()}
    finally:
        codes = {name: s.stop() for name, s in servers.items()}
    for name, rs in rounds.items():
        lat = [x for r in rs for x in r["_lat"]]
        ok, secs = sum(r["requests_ok"] for r in rs), sum(r["seconds"] for r in rs)
        status: dict[str, int] = {}
        for r in rs:
            for k, v in r["status"].items():
                status[k] = status.get(k, 0) + v
        m = metrics[name]
        out[name] = {
            "flags": " ".join(specs[name][1]),
            "clients": clients,
            "rounds": args.rounds,
            "seconds": round(secs, 1),
            "requests_ok": ok,
            "req_per_s": round(ok / secs, 2),
            "req_per_s_by_round": [r["req_per_s"] for r in rs],
            "p50_ms": round(1000 * float(np.percentile(lat, 50)), 1),
            "p99_ms": round(1000 * float(np.percentile(lat, 99)), 1),
            "status": status,
            "max_abs_diff_vs_reference": check([a for r in rs for a in r["_answers"]], reference),
            "server_alive_after": alive[name],
            "exit_code": codes[name],
            "peak_rss_mb": round(servers[name].peak_rss, 1),
            "requests_per_call": round(
                m.get("bertkit_batch_requests_sum", 0) / max(m.get("bertkit_batch_requests_count", 1), 1), 2
            ),
        }
        print(json.dumps({"scenario": name, **out[name]}), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(SHARED / "checkpoints" / "minilm-l6-uncased"))
    ap.add_argument("--texts", default=str(SHARED / "tasks" / "polarity" / "dev.tsv"))
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of one measured round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of batching off / on")
    ap.add_argument("--threads", type=int, default=2, help="torch / onnxruntime threads of the server")
    ap.add_argument(
        "--device", default="auto", help="the batching / overload servers' device (auto: CUDA when present)"
    )
    ap.add_argument("--overload-queue", type=int, default=64)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument(
        "--scenarios",
        default="batching,overload,latency",
        type=lambda v: set(v.split(",")),
        help="which to run, comma-separated (overload needs batching's reference answers)",
    )
    ap.add_argument("--n-texts", type=int, default=64, help="distinct texts the clients cycle through")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    lines = Path(args.texts).read_text(encoding="utf-8").splitlines()[1:]
    texts = [line.split("\t")[0] for line in lines if line.strip()][: args.n_texts]
    info = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} at start",
        "model": args.model,
        "clients": args.clients,
        "seconds": args.seconds,
        "threads": args.threads,
        "device": args.device,
    }
    print(json.dumps(info), flush=True)

    results: dict = {}
    reference = None
    if "batching" in args.scenarios:
        specs = {
            "unbatched": (args.model, ("--max-batch-tokens", "1", "--device", args.device)),
            "batched": (args.model, ("--max-wait-ms", "5", "--device", args.device)),
        }
        results = side_by_side(specs, args, texts, args.clients, args.seconds)
        reference = results.pop("_reference")
        results["speedup_batched_vs_unbatched"] = round(
            results["batched"]["req_per_s"] / max(results["unbatched"]["req_per_s"], 1e-9), 2
        )
        results["speedup_by_round"] = [
            round(b / max(u, 1e-9), 2)
            for u, b in zip(results["unbatched"]["req_per_s_by_round"], results["batched"]["req_per_s_by_round"])
        ]
    if "overload" in args.scenarios:
        ov = scenario(
            "overload",
            args.model,
            args.threads,
            texts,
            10 * args.clients,
            args.seconds,
            reference,
            "--max-wait-ms",
            "5",
            "--max-queue",
            str(args.overload_queue),
            "--device",
            args.device,
        )
        ov.pop("_answers")
        results["overload"] = ov

    if "latency" in args.scenarios:
        with tempfile.TemporaryDirectory() as tmp:
            exp = Path(tmp) / "export"
            env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
            cmd = [
                sys.executable,
                "-m",
                "bertkit",
                "export",
                "--model",
                args.model,
                "--out",
                str(exp),
                "--quantize",
                "int8",
            ]
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            results["export_parity"] = json.loads((exp / "export.json").read_text())["parity"]
            specs = {
                "latency_torch_fp32": (args.model, ("--device", "cpu")),  # onnxruntime runs on the CPU
                "latency_onnx_fp32": (str(exp), ("--backend", "onnx")),
                "latency_onnx_int8": (str(exp), ("--backend", "onnx-int8")),
            }
            lat = side_by_side(specs, args, texts, 1, args.latency_seconds, reference)
            lat.pop("_reference", None)
            results.update(lat)
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, dict)}))
    if args.out:
        Path(args.out).write_text(json.dumps({"info": info, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
