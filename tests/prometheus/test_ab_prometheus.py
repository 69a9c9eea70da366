"""An A/B test's builtin error-rate window read from a real Prometheus: keyed requests per variant,
their 5xx, and the first count of a series born inside the window (a pod's first 5xx of the
test), which `increase()` alone never sees."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server
from support.abtest import ERROR_RATE, running
from support.prometheus import PrometheusServer, Target, free_port

from modelramp.operator.analysis import ab_queries
from modelramp.operator.analysis.prometheus import PrometheusMetricProvider
from modelramp.operator.api.abtest import ABTestStrategy

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(120)]

LABELS = ("model", "version", "test", "variant", "assignment", "code")
TICK_SECONDS = 0.1


class VariantServers:
    """What two variants' servers would export: keyed 200s every tick, and later a few 5xx."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("modelramp_variant_requests", "served", LABELS, registry=self.registry)
        self.port = free_port()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self, variant: str, code: str, by: float = 1, assignment: str = "keyed") -> None:
        self.requests.labels("m", variant, "t1", variant, assignment, code).inc(by)

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self.count("control", "200", 10)
            self.count("candidate", "200", 5)
            self.count("candidate", "200", 7, assignment="random")

    def __enter__(self) -> VariantServers:
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VariantServers, PrometheusServer]]:
    with VariantServers() as servers:
        target = Target(f"127.0.0.1:{servers.port}", {"namespace": "ml", "modeldeployment": "shop"})
        with PrometheusServer(tmp_path_factory.mktemp("prometheus"), [target]) as prometheus:
            prometheus.wait_for('sum(modelramp_variant_requests_total{variant="control"})', 100)
            yield servers, prometheus


def test_a_window_counts_each_variants_keyed_requests_and_errors_born_inside_it(
    scraped: tuple[VariantServers, PrometheusServer],
) -> None:
    servers, prometheus = scraped
    strategy = ABTestStrategy.model_validate(ERROR_RATE)
    start = datetime.now(UTC)
    test = running(strategy, start)
    time.sleep(2)
    # First 5xx of the test on these servers: series that did not exist when the window began.
    servers.count("candidate", "500", 3)
    servers.count("control", "503", 2)
    time.sleep(6)  # several scrapes after them
    provider = PrometheusMetricProvider(prometheus.url, timeout_seconds=5)
    window = ab_queries.measure(
        provider, strategy, test, namespace="ml", name="shop", now=start + timedelta(seconds=8)
    )
    assert window.error is None, window.error
    counts = {v.name: (v.count, v.total) for v in window.variants}
    assert counts["candidate"][0] == pytest.approx(3.0) and counts["control"][0] == pytest.approx(2.0)
    # Keyed 200s at 100 and 50 a second over the 8 s window (Prometheus extrapolates each series
    # to the window's edges: within a scrape interval's worth); random requests left out.
    assert counts["control"][1] == pytest.approx(800, rel=0.2)
    assert counts["candidate"][1] == pytest.approx(400 + 3, rel=0.2)
