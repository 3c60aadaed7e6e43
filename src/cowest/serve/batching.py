"""Batched weak drafting: drafts that concurrent requests ask for within a short window go to the weak model as one
`generate` call, run on the model's own thread so the event loop stays free."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from ..models.base import Backend, Completion, Conversation, Sampling
from ..models.cache import uncached

log = logging.getLogger(__name__)


@dataclass
class _Job:
    conv: Conversation
    n: int
    sampling: Sampling
    future: asyncio.Future
    fresh: bool = False  # past the call cache: neither read from it nor kept in it


class DraftBatcher:
    """Queues draft requests for one weak model; a worker sends each window's requests (same `n` and sampling) as
    one batch. `on_batch(size)` is called after every weak call."""

    def __init__(self, backend: Backend, window_s: float = 0.02, max_batch: int = 16,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.backend, self.window_s, self.max_batch, self.on_batch = backend, window_s, max_batch, on_batch
        # one call at a time: a local model is neither thread-safe nor faster with two callers
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cowest-weak")
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="cowest-draft-batcher")

    async def stop(self) -> None:
        """Stop the worker (queued requests are cancelled) and its thread."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        while self._queue is not None and not self._queue.empty():
            self._queue.get_nowait().future.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def draft(self, conv: Conversation, n: int, sampling: Sampling, fresh: bool = False) -> list[Completion]:
        """`n` completions of `conv`, generated in a batch with whatever else arrives in the same window (`fresh`:
        past the call cache)."""
        if self._queue is None:
            raise RuntimeError("DraftBatcher.start() was not called")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(conv, n, sampling, fut, fresh))
        return await fut

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            if self.window_s > 0:
                await asyncio.sleep(self.window_s)  # let concurrent requests join this batch
            while len(jobs) < self.max_batch and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            groups: dict[tuple[int, Sampling, bool], list[_Job]] = {}
            for job in jobs:
                if not job.future.done():  # a caller that gave up (deadline, disconnect) costs nothing
                    groups.setdefault((job.n, job.sampling, job.fresh), []).append(job)
            for (n, sampling, fresh), group in groups.items():
                convs = [j.conv for j in group]
                backend = uncached(self.backend) if fresh else self.backend
                try:
                    results = await loop.run_in_executor(self._executor, backend.generate, convs, n, sampling)
                except Exception as e:  # this batch's requests fail; the worker serves the next ones
                    log.warning("weak model call for %d drafts failed: %s", len(group), e)
                    for j in group:
                        if not j.future.done():
                            j.future.set_exception(e)
                    continue
                finally:
                    if self.on_batch is not None:
                        self.on_batch(len(group))
                for j, comps in zip(group, results):
                    if not j.future.done():
                        j.future.set_result(comps)
