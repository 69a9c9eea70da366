"""Stand-ins for `modelramp serve` processes: the serving metrics contract with chosen behaviour.

Each `SyntheticServing` exports `modelramp_requests_total`, `modelramp_request_duration_seconds`
and `modelramp_prediction` on its own 127.0.0.1 port (same names, labels and default buckets as
docs/architecture.md) and records a steady stream of requests drawn from its `Behaviour`: error
share, latency and prediction distribution. Real Prometheus then scrapes them, so the analysis
under test sees genuine rates, extrapolated increases and histogram quantiles.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from support.prometheus import PrometheusServer, Target, free_port

from modelramp.serving.shadow_metrics import ShadowMetrics

PREDICTION_BUCKETS = tuple(round(0.1 * step, 1) for step in range(1, 11))
TICK_SECONDS = 0.1


@dataclass(frozen=True)
class Behaviour:
    """How one fake model server behaves; values are drawn from a seeded generator."""

    requests_per_tick: int = 10
    error_share: float = 0.0
    median_latency_seconds: float = 0.04
    # Predictions are Beta(a, b) distributed scores in [0, 1].
    prediction_beta: tuple[float, float] = (2.0, 5.0)
    seed: int = 0


class _Exporter:
    """A registry on its own 127.0.0.1 port, and a thread recording a tick of traffic every
    TICK_SECONDS (`_record`)."""

    def __init__(self, seed: int) -> None:
        self.port = free_port()
        self._rng = np.random.default_rng(seed)
        self._registry = CollectorRegistry()
        self._stopping = threading.Event()
        self._traffic = threading.Thread(target=self._serve_traffic, daemon=True)
        self._server: WSGIServer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self._registry)
        self._server = server
        self._traffic.start()

    def stop(self) -> None:
        self._stopping.set()
        self._traffic.join(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _serve_traffic(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            self._record()

    def _record(self) -> None:
        raise NotImplementedError


class SyntheticServing(_Exporter):
    def __init__(self, behaviour: Behaviour, model: str = "demo", version: str = "1") -> None:
        super().__init__(behaviour.seed)
        self.behaviour = behaviour
        self._labels = {"model": model, "version": version}
        self._requests = Counter(
            "modelramp_requests_total", "requests", ["model", "version", "code"], registry=self._registry
        )
        self._duration = Histogram(
            "modelramp_request_duration_seconds",
            "request time",
            ["model", "version"],
            registry=self._registry,
        )
        self._prediction = Histogram(
            "modelramp_prediction",
            "score",
            ["model", "version"],
            buckets=PREDICTION_BUCKETS,
            registry=self._registry,
        )

    def _record(self) -> None:
        count = self.behaviour.requests_per_tick
        failed = self._rng.random(count) < self.behaviour.error_share
        latencies = self.behaviour.median_latency_seconds * self._rng.lognormal(0.0, 0.25, count)
        scores = self._rng.beta(*self.behaviour.prediction_beta, count)
        for is_error, latency, score in zip(failed, latencies, scores, strict=True):
            self._requests.labels(code="500" if is_error else "200", **self._labels).inc()
            self._duration.labels(**self._labels).observe(float(latency))
            if not is_error:
                self._prediction.labels(**self._labels).observe(float(score))


class SyntheticTee(_Exporter):
    """Stands in for a stable pod's shadow tee (serving/shadow.py): exports `modelramp_shadow_*`
    through the tee's own `ShadowMetrics`, for a canary that answers the same requests as stable
    as well as stable does: the same outcomes, its own server noise on the same request sizes, and
    scores a little off stable's on the same rows. Exports nothing until `pair_with` names the
    revisions (the canary's is known only once a rollout starts)."""

    def __init__(self, requests_per_tick: int = 5, seed: int = 0) -> None:
        super().__init__(seed)
        self.requests_per_tick = requests_per_tick
        self._paired: tuple[ShadowMetrics, str] | None = None

    def pair_with(self, stable_version: str, canary_version: str) -> None:
        metrics = ShadowMetrics(self._registry, "demo", stable_version, PREDICTION_BUCKETS)
        metrics.prepare(canary_version)
        metrics.active(True)
        self._paired = (metrics, canary_version)

    def _record(self) -> None:
        if self._paired is None:
            return
        metrics, canary_version = self._paired
        count = self.requests_per_tick
        size = 0.03 * self._rng.lognormal(0.0, 0.5, count)
        stable_s, canary_s = size * self._rng.lognormal(0, 0.1, (2, count))
        stable = self._rng.beta(2.0, 5.0, count)
        canary = np.clip(stable + self._rng.normal(0, 0.01, count), 0, 1)
        for one_stable, one_canary in zip(stable_s, canary_s, strict=True):
            metrics.pair(canary_version, True, True)
            metrics.latency(canary_version, float(one_stable), float(one_canary))
        metrics.predictions(canary_version, stable, canary)


@contextlib.contextmanager
def scraped_canaries(
    namespace: str, workdir: Path, canaries: Mapping[str, Behaviour], stable: Behaviour, warm_requests: int
) -> Iterator[PrometheusServer]:
    """A Prometheus scraping a canary (its `Behaviour`) and a stable server for each
    ModelDeployment named in `canaries`, labelled as their pods in `namespace` would be; yielded
    once it has seen `warm_requests` requests in the namespace over 5 s."""
    servers = {(name, "canary"): SyntheticServing(canary) for name, canary in canaries.items()}
    servers |= {(name, "stable"): SyntheticServing(stable) for name in canaries}
    for server in servers.values():
        server.start()
    targets = [
        Target(server.address, {"namespace": namespace, "modeldeployment": name, "track": track})
        for (name, track), server in servers.items()
    ]
    try:
        with PrometheusServer(workdir, targets) as prometheus:
            prometheus.wait_for(
                f'sum(increase(modelramp_requests_total{{namespace="{namespace}"}}[5s]))', warm_requests
            )
            yield prometheus
    finally:
        for server in servers.values():
            server.stop()
