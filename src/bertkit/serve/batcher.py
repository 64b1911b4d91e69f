"""Dynamic batching: concurrent requests merged into one model call, bounded by tokens and wait.

Requests are queued as jobs ``(op, inputs, tokens)``. One asyncio task takes the oldest job and
adds later jobs of the same ``op`` while the merged batch stays within ``max_batch_tokens``
(a single larger job still runs, alone), waiting at most ``max_wait_ms`` after the first job for
company. The merged call runs on one worker thread (off the event loop; the model runs one batch
at a time), and each job's slice of the results is handed back to its request. The queue holds
at most ``max_queue`` requests: beyond that :class:`QueueFull` (HTTP 503 + Retry-After).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bertkit.serve.metrics import Metrics


class QueueFull(Exception):
    """The queue already holds ``max_queue`` requests."""


@dataclass
class Job:
    op: str
    inputs: list[Any]
    tokens: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    """``await batcher.submit(op, inputs, tokens)`` -> that request's results (a list, one per input).

    ``runners[op](inputs) -> list`` does the work for a merged list of inputs (called on the
    worker thread); results must come back one per input, in order.
    """

    def __init__(
        self,
        runners: dict[str, Callable[[list[Any]], Sequence[Any]]],
        max_batch_tokens: int,
        max_wait_ms: float,
        max_queue: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.runners = runners
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.metrics = metrics
        self.queue: collections.deque[Job] = collections.deque()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bertkit-batch")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.running = 0  # requests in the model call now
        self.batches = 0

    @property
    def depth(self) -> int:
        """Requests waiting (not yet in a model call)."""
        return len(self.queue)

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Finish every queued job, then stop the worker."""
        while self.queue or self.running:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    async def submit(self, op: str, inputs: list[Any], tokens: int) -> list[Any]:
        if len(self.queue) >= self.max_queue:
            raise QueueFull
        job = Job(op, inputs, tokens, asyncio.get_running_loop().create_future())
        self.queue.append(job)
        assert self._wake is not None, "Batcher.start() was not called"
        self._wake.set()
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:  # the client went away or timed out: drop it if not started
            if job in self.queue:
                self.queue.remove(job)
            raise

    def _take(self, first: Job) -> list[Job]:
        """``first`` and the queued jobs of its op that fit in the token budget, oldest first."""
        batch, tokens = [first], first.tokens
        for job in list(self.queue):
            if job.op == first.op and tokens + job.tokens <= self.max_batch_tokens:
                self.queue.remove(job)
                batch.append(job)
                tokens += job.tokens
        return batch

    async def _loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            first = self.queue.popleft()
            # Wait for company while the budget has room, at most max_wait after the first job.
            deadline = first.enqueued + self.max_wait
            while first.tokens < self.max_batch_tokens and time.perf_counter() < deadline:
                pending = sum(j.tokens for j in self.queue if j.op == first.op)
                if first.tokens + pending >= self.max_batch_tokens:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.perf_counter()))
                except TimeoutError:
                    break
            jobs = self._take(first)
            jobs = [j for j in jobs if not j.future.done()]  # cancelled while waiting
            if not jobs:
                continue
            merged = [x for j in jobs for x in j.inputs]
            self.running = len(jobs)
            try:
                results = await loop.run_in_executor(self.executor, self.runners[first.op], merged)
            except Exception as e:  # the model call failed: every request of the batch hears it
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(e)
            else:
                if self.metrics is not None:
                    self.metrics.batch(len(merged), len(jobs), sum(j.tokens for j in jobs))
                at = 0
                for j in jobs:
                    if not j.future.done():
                        j.future.set_result(list(results[at : at + len(j.inputs)]))
                    at += len(j.inputs)
            finally:
                self.running = 0
                self.batches += 1
