"""One real Prometheus scraping one fake serving process per (ModelDeployment, track) scenario.

Starting Prometheus and letting it gather a window of samples is the slow part, so the whole
module shares one: every scenario is its own ModelDeployment label set, all scraped at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.prometheus import PrometheusServer, Target

from .synthetic import Behaviour, SyntheticServing

NAMESPACE = "analysis-test"
WINDOW = "8s"
# Each test's measurement needs a full window of samples behind it before it can be trusted.
WARMUP_REQUESTS = 400.0

STABLE = Behaviour(seed=1)
SCENARIOS: dict[str, dict[str, Behaviour]] = {
    "good": {"stable": STABLE, "canary": Behaviour(seed=2)},
    "errors": {"stable": STABLE, "canary": Behaviour(error_share=0.2, seed=3)},
    "slow": {"stable": STABLE, "canary": Behaviour(median_latency_seconds=0.12, seed=4)},
    "drifted": {"stable": STABLE, "canary": Behaviour(prediction_beta=(5.0, 2.0), seed=5)},
    "quiet": {"stable": STABLE, "canary": Behaviour(requests_per_tick=0, seed=6)},
}


@pytest.fixture(scope="package")
def serving() -> Iterator[dict[tuple[str, str], SyntheticServing]]:
    servers = {
        (name, track): SyntheticServing(behaviour)
        for name, tracks in SCENARIOS.items()
        for track, behaviour in tracks.items()
    }
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="package")
def prometheus(
    serving: dict[tuple[str, str], SyntheticServing], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    targets = [
        Target(server.address, {"namespace": NAMESPACE, "modeldeployment": name, "track": track})
        for (name, track), server in serving.items()
    ]
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), targets) as server:
        server.wait_for(
            "sum by (modeldeployment, track) "
            f'(increase(modelramp_requests_total{{modeldeployment="good"}}[{WINDOW}]))',
            WARMUP_REQUESTS,
        )
        yield server
