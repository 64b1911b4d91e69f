"""Prometheus text-format metrics, kept in-process (no client library): counters by label set,
histograms with fixed buckets, gauges read at scrape time."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TOKEN_BUCKETS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    body = ",".join(f'{k}="{v}"'.replace("\n", " ") for k, v in pairs)
    return "{" + body + "}"


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]):
        self.name, self.help, self.buckets = name, help_text, buckets
        self.series: dict[tuple[tuple[str, str], ...], list] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        s = self.series.setdefault(key, [[0] * (len(self.buckets) + 1), 0.0, 0])
        s[0][bisect.bisect_left(self.buckets, value)] += 1
        s[1] += value
        s[2] += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, (counts, total, n) in sorted(self.series.items()):
            cum = 0
            for bound, c in zip(self.buckets, counts):
                cum += c
                lines.append(f"{self.name}_bucket{_labels(key + (('le', f'{bound:g}'),))} {cum}")
            lines.append(f"{self.name}_bucket{_labels(key + (('le', '+Inf'),))} {n}")
            lines.append(f"{self.name}_sum{_labels(key)} {total:.6f}")
            lines.append(f"{self.name}_count{_labels(key)} {n}")
        return lines


class Metrics:
    """What ``GET /metrics`` shows; thread-safe (the batch worker thread observes too)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = {}
        self.latency = Histogram("bertkit_request_duration_seconds", "request latency by route", LATENCY_BUCKETS)
        self.batch_size = Histogram("bertkit_batch_size", "inputs per model call (merged requests)", SIZE_BUCKETS)
        self.batch_requests = Histogram("bertkit_batch_requests", "requests merged into one model call", SIZE_BUCKETS)
        self.batch_tokens = Histogram("bertkit_batch_tokens", "tokens per model call", TOKEN_BUCKETS)
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def request(self, route: str, status: int, seconds: float) -> None:
        with self.lock:
            key = (route, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            self.latency.observe(seconds, route=route)

    def batch(self, inputs: int, requests: int, tokens: int) -> None:
        with self.lock:
            self.batch_size.observe(inputs)
            self.batch_requests.observe(requests)
            self.batch_tokens.observe(tokens)

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.gauges[name] = (help_text, read)

    def render(self) -> str:
        with self.lock:
            lines = [
                "# HELP bertkit_requests_total HTTP requests by route and status",
                "# TYPE bertkit_requests_total counter",
            ]
            for (route, status), n in sorted(self.requests.items()):
                lines.append(f'bertkit_requests_total{{route="{route}",status="{status}"}} {n}')
            for h in (self.latency, self.batch_size, self.batch_requests, self.batch_tokens):
                lines += h.render()
        for name, (help_text, read) in self.gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read():g}"]
        return "\n".join(lines) + "\n"
