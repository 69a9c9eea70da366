"""The shadow tee: a stable server answers its client, then copies a share of its requests to the
canary and compares both answers to each, off the request path (the operator's shadow step,
docs/analysis.md, "Shadow step").

Only here are both answers to one request seen together, so only here can the comparison be paired:
per request, whether each track failed, the canary's server time over stable's, and each row's two
scores (shadow_metrics.py). A router's mirror (Istio `mirror`, Gateway API `RequestMirror`) copies
requests too, but drops the canary's answer unseen.

Where to copy to comes from a JSON file (`--shadow-config`; in a cluster the ConfigMap
`<name>-shadow` the operator writes, mounted in every pod), read again every second: `target` (the
canary Service's URL), `percent`, `stableVersion`, `canaryVersion`, `timeoutSeconds`. A missing or
empty file, or a `stableVersion` other than this server's version, copies nothing: the canary's
pods mount the same file.

What it may cost stable is bounded: `offer` only draws a number and appends to a queue, never
waits; at most MAX_QUEUED copies (MAX_QUEUED_BYTES of bodies) wait and WORKERS are in flight, and a
request that finds the queue full is not copied (`modelramp_shadow_dropped_total{reason=
"queue-full"}`). A canary that hangs only fills the queue; one that is down is not tried again for
BACKOFF_SECONDS after each failed delivery.

The canary is told a request is a copy by the `x-modelramp-shadow` header: it answers it with its
server time (`server-timing: app;dur=<ms>`) and version, and counts it apart from its real
traffic (`modelramp_mirrored_*`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelramp.serving.binary import HEADER_LENGTH, decode_tensor
from modelramp.serving.bodies import SHADOW_HEADER, RequestBody
from modelramp.serving.dataplane import Answer
from modelramp.serving.errors import ServingError
from modelramp.serving.predictor import scores
from modelramp.serving.shadow_metrics import ShadowMetrics

log = logging.getLogger(__name__)

TIMING_HEADER = "server-timing"
VERSION_HEADER = "x-modelramp-model-version"
POLL_SECONDS = 1.0
WORKERS = 8
MAX_QUEUED = 64
MAX_QUEUED_BYTES = 32 * 1024 * 1024
# After a copy could not be delivered (no endpoint, refused), copies are dropped unsent this long:
# trying every request against a canary that is down costs stable a failed connection each.
BACKOFF_SECONDS = 1.0
_VERSIONED = re.compile(r"^(/v2/models/[^/]+)/versions/[^/]+(/infer)$")
_DURATION = re.compile(r"dur=([0-9.]+)")


class ShadowConfig(BaseModel):
    """Where to copy requests to; every field absent (`{}`) copies nothing."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    target: str | None = Field(default=None, pattern=r"^https?://[^/]+$")
    percent: float = Field(default=100.0, ge=0, le=100)
    stable_version: str | None = Field(default=None, alias="stableVersion")
    canary_version: str | None = Field(default=None, alias="canaryVersion")
    timeout_seconds: float = Field(default=10.0, gt=0, le=300, alias="timeoutSeconds")

    def copies_from(self, version: str) -> bool:
        return (
            self.target is not None
            and self.percent > 0
            and (self.stable_version is None or self.stable_version == version)
        )


@dataclass(frozen=True, slots=True)
class Copy:
    """A request stable answered, with its answer and its server time."""

    path: str
    body: RequestBody
    status: int
    answer: Answer
    seconds: float

    @property
    def size(self) -> int:
        return len(self.body.data) + len(self.answer.body)


def read_config(path: Path) -> ShadowConfig:
    """The file's config; a missing, empty or invalid file copies nothing (an invalid one is logged)."""
    try:
        text = path.read_bytes()
    except OSError:
        return ShadowConfig()
    if not text.strip():
        return ShadowConfig()
    try:
        return ShadowConfig.model_validate(orjson.loads(text))
    except (orjson.JSONDecodeError, ValidationError) as error:
        log.warning("shadow config %s ignored: %s", path, error)
        return ShadowConfig()


def answer_scores(body: bytes, header_length: int | None) -> npt.NDArray[np.float64] | None:
    """One score per row of an answer (OIP JSON or binary, or MLflow's `predictions`), as the
    prediction histogram scores them; None when the answer holds no rows to score."""
    try:
        if header_length is not None:
            output = orjson.loads(body[:header_length])["outputs"][0]
            size = int(output["parameters"]["binary_data_size"])
            raw = memoryview(body)[header_length : header_length + size]
            array: Any = decode_tensor(raw, output["datatype"], list(output["shape"]), "outputs[0]")
        else:
            document = orjson.loads(body)
            if "outputs" in document:
                output = document["outputs"][0]
                array = np.asarray(output["data"], dtype=np.float64).reshape(output["shape"])
            else:
                array = np.asarray(document["predictions"], dtype=np.float64)
        rows = np.asarray(array, dtype=np.float64)
        return scores(rows) if rows.ndim >= 1 and rows.shape[0] > 0 else None
    except (KeyError, IndexError, TypeError, ValueError, orjson.JSONDecodeError, ServingError):
        return None


def canary_path(path: str) -> str:
    """The canary serves another version: a request for stable's version goes to the model."""
    return _VERSIONED.sub(r"\1\2", path)


class ShadowTee:
    """Copies a share of the answered requests to the canary named in the config file."""

    def __init__(
        self,
        config_path: Path,
        version: str,
        metrics: ShadowMetrics,
        *,
        draw: Callable[[], float] = random.random,
        poll_seconds: float = POLL_SECONDS,
        workers: int = WORKERS,
        max_queued: int = MAX_QUEUED,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
    ) -> None:
        self.config_path = config_path
        self.version = version
        self.metrics = metrics
        self.config = ShadowConfig()
        self._draw = draw
        self._poll_seconds = poll_seconds
        self._workers = workers
        self._queue: asyncio.Queue[Copy] = asyncio.Queue(maxsize=max_queued)
        self._max_queued_bytes = max_queued_bytes
        self._queued_bytes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._client: aiohttp.ClientSession | None = None
        self._down_until = 0.0

    async def start(self) -> None:
        # aiohttp's client: a fifth of httpx's CPU per request (bench/shadow_serving.py), and every
        # copy's CPU is stable's.
        self._client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self._workers))
        self._reload()
        self._tasks = [asyncio.create_task(self._watch())]
        self._tasks += [asyncio.create_task(self._work()) for _ in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.close()

    def offer(self, copy: Copy) -> None:
        """Queues `copy` for the canary when it is drawn; never waits."""
        config = self.config
        if not config.copies_from(self.version) or self._draw() * 100.0 >= config.percent:
            return
        if time.monotonic() < self._down_until:
            self.metrics.dropped("unreachable")
            return
        if self._queued_bytes + copy.size > self._max_queued_bytes:
            self.metrics.dropped("queue-full")
            return
        try:
            self._queue.put_nowait(copy)
        except asyncio.QueueFull:
            self.metrics.dropped("queue-full")
            return
        self._queued_bytes += copy.size

    def _reload(self) -> None:
        config = read_config(self.config_path)
        if config != self.config:
            log.info("shadow config: %s", config.model_dump(by_alias=True, exclude_none=True) or "off")
            self.config = config
        on = config.copies_from(self.version)
        self.metrics.active(on)
        if on and config.canary_version is not None:
            self.metrics.prepare(config.canary_version)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            self._reload()

    async def _work(self) -> None:
        while True:
            copy = await self._queue.get()
            self._queued_bytes -= copy.size
            try:
                await self._compare(copy, self.config)
            except Exception:  # a bug must cost one comparison, never the worker
                log.exception("shadow comparison failed")

    async def _compare(self, copy: Copy, config: ShadowConfig) -> None:
        if self._client is None or config.target is None:
            return
        headers = {SHADOW_HEADER.decode(): "1"}
        if copy.body.content_type:
            headers["content-type"] = copy.body.content_type
        if copy.body.header_length is not None:
            headers[HEADER_LENGTH.decode()] = str(copy.body.header_length)
        limit = config.timeout_seconds
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=limit, sock_read=limit)
        started = time.perf_counter()
        try:
            async with self._client.post(
                config.target + canary_path(copy.path), data=copy.body.data, headers=headers, timeout=timeout
            ) as response:
                content = await response.read()
                status, answered = response.status, response.headers
        except aiohttp.ServerTimeoutError:
            # The canary took the request and never answered: a failure of the model's.
            self.metrics.pair(config.canary_version or "unknown", copy.status == 200, False)
            return
        except (aiohttp.ClientError, OSError) as error:
            log.debug("shadow copy not delivered: %s", error)
            self.metrics.dropped("unreachable")
            self._down_until = time.monotonic() + BACKOFF_SECONDS
            return
        elapsed = time.perf_counter() - started
        version = answered.get(VERSION_HEADER) or config.canary_version or "unknown"
        stable_ok, canary_ok = copy.status == 200, status == 200
        self.metrics.pair(version, stable_ok, canary_ok)
        if not (stable_ok and canary_ok):
            return
        self.metrics.latency(version, copy.seconds, _server_seconds(answered.get(TIMING_HEADER, ""), elapsed))
        header_length = answered.get(HEADER_LENGTH.decode())
        stable = answer_scores(copy.answer.body, copy.answer.header_length)
        canary = answer_scores(content, int(header_length) if header_length else None)
        if stable is None or canary is None or stable.shape != canary.shape:
            self.metrics.dropped("unreadable")
            return
        self.metrics.predictions(version, stable, canary)


def _server_seconds(timing: str, elapsed: float) -> float:
    """The canary's own server time (what stable's is), else the round trip's."""
    found = _DURATION.search(timing)
    return float(found.group(1)) / 1000.0 if found else elapsed
