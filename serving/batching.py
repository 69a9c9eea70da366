"""Dynamic batching: concurrent requests share one forward pass, then each gets its own rows back.

Batches form under contention, not by waiting: while a forward runs, new requests queue up, and
the next forward takes all of them (up to `max_batch_size` rows). The only deliberate wait is for
requests that have already started arriving (their body is being read or decoded), and never
longer than `max_latency_ms` — so a lone request goes straight to the model (see bentoml#3307 in
the research notes for what a fixed window costs).

The batcher is a few callbacks on the event loop, not a task: a request's submit schedules the
next forward, and a finished forward settles its requests' futures directly. Where the forward
runs is chosen per model (`inline`): a cheap forward runs on the event loop itself, because handing
it to a thread costs more than the forward (a thread wake-up plus a GIL hand-over that waits up to
the interpreter's switch interval while the loop is busy); an expensive one runs on one forward
thread, so that the loop decodes the next requests while the model computes.

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
# Called after every forward, on whichever thread ran it: (merged input rows, seconds, output,
# which rows are mirrored copies or None when none is).
ForwardObserver = Callable[[Array, float, Array, "npt.NDArray[np.bool_] | None"], None]


@dataclass(slots=True)
class _Pending:
    rows: Array
    future: asyncio.Future[Array]
    mirrored: bool = False


@dataclass(slots=True)
class Arrival:
    """A request on its way into the batcher; see `DynamicBatcher.arrival`."""

    batcher: DynamicBatcher
    submitted: bool = field(default=False)

    def submit(self, rows: Array, *, mirrored: bool = False) -> asyncio.Future[Array]:
        """Queues validated rows; the future resolves to the model's output rows for them.
        `mirrored` rows (a copy of another server's request) are observed apart."""
        self.submitted = True
        return self.batcher._enqueue(rows, mirrored)


class DynamicBatcher:
    """Merges queued requests into forwards of up to `max_batch_size` rows, one forward at a time."""

    def __init__(
        self,
        forward: Callable[[Array], Array],
        *,
        max_batch_size: int,
        max_latency_s: float,
        observe: ForwardObserver,
        inline: bool = False,
    ) -> None:
        self._forward = forward
        self._max_rows = max_batch_size
        self._max_latency_s = max_latency_s
        self._observe = observe
        self._inline = inline
        self._queue: deque[_Pending] = deque()
        self._arriving = 0
        self._busy = False  # a forward is running or scheduled to run
        self._deadline: float | None = None  # when the batch being held for arrivals must leave
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # One thread: the model runs one batch at a time (torch parallelises inside the forward).
        self._executor = (
            None if inline else ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelramp-forward")
        )

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        """Fails whatever is still queued (drained requests have already been answered)."""
        if self._timer is not None:
            self._timer.cancel()
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(
                    InferenceFailed("the server stopped before running this request")
                )
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)

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
                self._consider()

    def _enqueue(self, rows: Array, mirrored: bool = False) -> asyncio.Future[Array]:
        loop = self._running_loop()
        future: asyncio.Future[Array] = loop.create_future()
        self._queue.append(_Pending(rows, future, mirrored))
        self._consider()
        return future

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("DynamicBatcher.start() was not called")
        return self._loop

    def _consider(self) -> None:
        """Schedules the next forward once, after the requests already being handled this turn."""
        if not self._busy and self._queue:
            self._busy = True
            self._running_loop().call_soon(self._launch)

    def _launch(self) -> None:
        """Takes a batch, or holds it (timer) while a request that could join it is arriving."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = self._running_loop()
        while self._queue and self._queue[0].future.done():  # the client went away
            self._queue.popleft()
        if not self._queue:
            self._busy = False
            self._deadline = None
            return
        if self._arriving > 0 and self._queued_rows() < self._max_rows:
            now = loop.time()
            if self._deadline is None:
                self._deadline = now + self._max_latency_s
            if now < self._deadline:
                # Re-checked when the arrival submits or fails (`_consider`) or at the deadline.
                self._busy = False
                self._timer = loop.call_at(self._deadline, self._consider)
                return
        self._deadline = None
        batch = self._take()
        if self._executor is None:
            self._settle(batch, self._run(batch))
        else:
            self._executor.submit(self._run_and_settle_later, batch)

    def _queued_rows(self) -> int:
        return sum(len(pending.rows) for pending in self._queue)

    def _take(self) -> list[_Pending]:
        """Moves queued requests into a batch while they fit; the first one always fits."""
        batch: list[_Pending] = []
        rows = 0
        while self._queue:
            head = self._queue[0]
            if head.future.done():
                self._queue.popleft()
                continue
            if batch and rows + len(head.rows) > self._max_rows:
                break
            batch.append(self._queue.popleft())
            rows += len(head.rows)
        return batch

    def _run_and_settle_later(self, batch: list[_Pending]) -> None:
        """On the forward thread: one hop back to the loop per batch, not one per request."""
        results = self._run(batch)
        self._running_loop().call_soon_threadsafe(self._settle, batch, results)

    def _run(self, batch: list[_Pending]) -> list[Array | Exception]:
        """Runs a batch; when a merged batch fails, runs its requests one by one."""
        inputs = [pending.rows for pending in batch]
        mirrored = [pending.mirrored for pending in batch]
        try:
            return list(self._forward_split(inputs, mirrored))
        except Exception as error:
            if len(batch) == 1:
                return [error]
            log.warning(
                "forward of a merged batch of %d requests failed (%s); retrying them one by one",
                len(batch),
                error,
            )
        results: list[Array | Exception] = []
        for rows, copy in zip(inputs, mirrored, strict=True):
            try:
                results.append(self._forward_split([rows], [copy])[0])
            except Exception as error:
                results.append(error)
        return results

    def _settle(self, batch: list[_Pending], results: list[Array | Exception]) -> None:
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, Exception):
                pending.future.set_exception(InferenceFailed(f"the model failed on this input: {result}"))
            else:
                pending.future.set_result(result)
        self._busy = False
        self._consider()

    def _forward_split(self, inputs: list[Array], mirrored: list[bool]) -> list[Array]:
        """Concatenate, forward, split back by each request's rows."""
        merged = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
        started = time.perf_counter()
        output = self._forward(merged)
        elapsed = time.perf_counter() - started
        if output.ndim == 0 or output.shape[0] != merged.shape[0]:
            raise ValueError(f"the model returned {list(output.shape)} for {merged.shape[0]} rows")
        mask = None
        if any(mirrored):
            mask = np.repeat(np.array(mirrored), [len(rows) for rows in inputs])
        self._observe(merged, elapsed, output, mask)
        if len(inputs) == 1:
            return [output]
        offsets = np.cumsum([len(rows) for rows in inputs[:-1]])
        return np.split(output, offsets)
