"""Dynamic batching: concurrent requests share one forward pass, then each gets its own rows back.

Batches form under contention, not by waiting: while a forward runs, new requests queue up, and
the next forward takes all of them (up to `max_batch_size` rows). The only deliberate wait is for
requests that have already started arriving (their body is being read or decoded), and never
longer than `max_latency_ms` — so a lone request goes straight to the model (see bentoml#3307 in
the research notes for what a fixed window costs).

A forward that raises on a merged batch is retried one request at a time, so one request the model
chokes on fails alone instead of failing its batch-mates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from modelramp.serving.errors import InferenceFailed

log = logging.getLogger(__name__)

Array = npt.NDArray[Any]
# Called on the forward thread after every forward: (rows, seconds, output).
ForwardObserver = Callable[[int, float, Array], None]


@dataclass(slots=True)
class _Pending:
    rows: Array
    future: asyncio.Future[Array]


@dataclass(slots=True)
class Arrival:
    """A request on its way into the batcher; see `DynamicBatcher.arrival`."""

    batcher: DynamicBatcher
    submitted: bool = field(default=False)

    def submit(self, rows: Array) -> asyncio.Future[Array]:
        """Queues validated rows; the future resolves to the model's output rows for them."""
        self.submitted = True
        return self.batcher._enqueue(rows)


class DynamicBatcher:
    """Merges queued requests into forwards of up to `max_batch_size` rows on one worker thread."""

    def __init__(
        self,
        forward: Callable[[Array], Array],
        *,
        max_batch_size: int,
        max_latency_s: float,
        observe: ForwardObserver,
    ) -> None:
        self._forward = forward
        self._max_rows = max_batch_size
        self._max_latency_s = max_latency_s
        self._observe = observe
        self._queue: deque[_Pending] = deque()
        self._arriving = 0
        self._wakeup = asyncio.Event()
        # One thread: the model runs one batch at a time (torch parallelises inside the forward).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelramp-forward")
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="modelramp-batcher")

    async def stop(self) -> None:
        """Fails whatever is still queued (drained requests have already been answered)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(
                    InferenceFailed("the server stopped before running this request")
                )
        self._executor.shutdown(wait=True)

    @contextmanager
    def arrival(self) -> Iterator[Arrival]:
        """Marks a request as arriving until it submits or fails validation.

        While any request is arriving, a batch that is not full waits (at most `max_latency_ms`)
        for it instead of leaving without it.
        """
        self._arriving += 1
        arrival = Arrival(self)
        try:
            yield arrival
        finally:
            self._arriving -= 1
            if not arrival.submitted:
                self._wakeup.set()

    def _enqueue(self, rows: Array) -> asyncio.Future[Array]:
        future: asyncio.Future[Array] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(rows, future))
        self._wakeup.set()
        return future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch, rows = self._take([], 0)
            deadline = loop.time() + self._max_latency_s
            while rows < self._max_rows and self._arriving > 0:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
                batch, rows = self._take(batch, rows)
            if batch:
                await self._dispatch(batch)

    def _take(self, batch: list[_Pending], rows: int) -> tuple[list[_Pending], int]:
        """Moves queued requests into `batch` while they fit; the first one always fits."""
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # the client went away
                self._queue.popleft()
                continue
            if batch and rows + len(head.rows) > self._max_rows:
                break
            batch.append(self._queue.popleft())
            rows += len(head.rows)
        return batch, rows

    async def _dispatch(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        inputs = [pending.rows for pending in batch]
        try:
            outputs = await loop.run_in_executor(self._executor, self._forward_split, inputs)
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0], error=error)
                return
            log.warning(
                "forward of a merged batch of %d requests failed (%s); retrying them one by one",
                len(batch),
                error,
            )
            for pending in batch:
                await self._dispatch([pending])
            return
        for pending, output in zip(batch, outputs, strict=True):
            _settle(pending, output=output)

    def _forward_split(self, inputs: list[Array]) -> list[Array]:
        """Runs on the forward thread: concatenate, forward, split back by each request's rows."""
        merged = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
        started = time.perf_counter()
        output = self._forward(merged)
        elapsed = time.perf_counter() - started
        if output.ndim == 0 or output.shape[0] != merged.shape[0]:
            raise ValueError(f"the model returned {list(output.shape)} for {merged.shape[0]} rows")
        self._observe(merged.shape[0], elapsed, output)
        if len(inputs) == 1:
            return [output]
        offsets = np.cumsum([len(rows) for rows in inputs[:-1]])
        return np.split(output, offsets)


def _settle(pending: _Pending, *, output: Array | None = None, error: Exception | None = None) -> None:
    if pending.future.done():
        return
    if output is not None:
        pending.future.set_result(output)
    else:
        pending.future.set_exception(InferenceFailed(f"the model failed on this input: {error}"))
