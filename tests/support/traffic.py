"""Client traffic for the e2e tests, split between stable and canary by the published weight.

kwok pods run no containers, so there `WeightedTraffic` stands in for the gateway's data plane: it
reads `status.canaryWeight` of the ModelDeployment (what the operator published to the router)
and sends that share of its requests to the canary's model server, the rest to stable's. Each
track has its own sender, paced at its share of `rate`, so a slow canary never starves stable of
traffic (a gateway doesn't serialise its backends either). On the real node, `ServiceTraffic`
sends to one URL in front of both tracks (a Service, or the gateway) and the split is real. Loops
are bounded in count and time and stop by themselves; every address is loopback or on the real
node's bridge.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from modelramp.serving.examples import FEATURES

TRACKS = ("stable", "canary")


def infer_body(rng: np.random.Generator) -> dict[str, Any]:
    """One OIP v2 request of one row of standard-normal features (the example scorers' input)."""
    rows = rng.standard_normal((1, FEATURES)).astype(np.float32)
    return {
        "inputs": [
            {"name": "input-0", "shape": [1, FEATURES], "datatype": "FP32", "data": rows.ravel().tolist()}
        ]
    }


@dataclass
class WeightedTraffic:
    """Sends OIP v2 requests at `rate` per second in all until stopped, `max_seconds` or
    `max_requests` (per track)."""

    stable_url: str
    canary_url: str
    weight: Callable[[], int]
    model_name: str = "model"
    rate: float = 40.0
    max_seconds: float = 600.0
    max_requests: int = 100_000
    sent: Counter[tuple[str, int]] = field(default_factory=Counter)
    _weight: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._read_weight, daemon=True)]
        self._threads += [threading.Thread(target=self._send, args=(track,), daemon=True) for track in TRACKS]
        for thread in self._threads:
            thread.start()

    def halt(self) -> None:
        """Stops sending without waiting for the senders to finish."""
        self._stop.set()

    def stop(self) -> None:
        self.halt()
        for thread in self._threads:
            thread.join(timeout=15)

    def _read_weight(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._weight = self.weight()
            self._stop.wait(0.5)

    def _send(self, track: str) -> None:
        url = self.canary_url if track == "canary" else self.stable_url
        rng = np.random.default_rng(11 if track == "stable" else 12)
        deadline = time.monotonic() + self.max_seconds
        sent = 0
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline and sent < self.max_requests:
                share = self._weight if track == "canary" else 100 - self._weight
                if share <= 0:
                    self._stop.wait(0.2)
                    continue
                started = time.monotonic()
                try:
                    code = client.post(
                        f"{url}/v2/models/{self.model_name}/infer", json=infer_body(rng)
                    ).status_code
                except httpx.HTTPError:
                    code = 0
                with self._lock:
                    self.sent[track, code] += 1
                sent += 1
                pause = 100 / (self.rate * share) - (time.monotonic() - started)
                if pause > 0:
                    self._stop.wait(pause)


@dataclass
class ServiceTraffic:
    """Sends OIP v2 requests at `rate` per second to one URL in front of both tracks (a Service, or
    a gateway) and records, per label at the time of sending (e.g. the published weight), which
    revision answered (`model_version`)."""

    url: str
    model_name: str
    label: Callable[[], Hashable]
    rate: float = 20.0
    max_seconds: float = 900.0
    # kube-proxy picks the endpoint per connection, so through a Service each request opens its
    # own; a gateway picks per request, so one kept-alive connection is what its clients do.
    new_connections: bool = True
    # (label, answering revision or "" for an error, HTTP status) -> count
    answers: Counter[tuple[Hashable, str, int]] = field(default_factory=Counter)
    _label: Hashable = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._label = self.label()
        self._threads = [threading.Thread(target=self._read_label, daemon=True)]
        self._threads.append(threading.Thread(target=self._send, daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def snapshot(self) -> Counter[tuple[Hashable, str, int]]:
        with self._lock:
            return Counter(self.answers)

    def _read_label(self) -> None:
        while not self._stop.is_set():
            self._label = self.label()
            self._stop.wait(0.5)

    def _send(self) -> None:
        rng = np.random.default_rng(13)
        deadline = time.monotonic() + self.max_seconds
        url = f"{self.url}/v2/models/{self.model_name}/infer"
        # Without keep-alive every request opens a connection of its own.
        limits = httpx.Limits(max_keepalive_connections=0 if self.new_connections else None)
        with httpx.Client(timeout=10, limits=limits) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                started, label = time.monotonic(), self._label
                try:
                    response = client.post(url, json=infer_body(rng))
                    ok = response.status_code == 200
                    answer = (response.json().get("model_version", "") if ok else "", response.status_code)
                except (httpx.HTTPError, ValueError):
                    answer = ("", 0)
                with self._lock:
                    self.answers[(label, *answer)] += 1
                pause = 1 / self.rate - (time.monotonic() - started)
                if pause > 0:
                    self._stop.wait(pause)
