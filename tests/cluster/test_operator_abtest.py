"""An A/B test on the local cluster, decided on what a real Prometheus scraped: the operator runs
every variant, publishes the assignment table, measures the decision metric per variant, names
the winner in status and, held for a person, promotes it on `modelramp promote`.

The model servers are kwok pods (they never run), so the data stand-ins are scraped instead,
with the labels Prometheus would give them: a shop that reports checkouts per variant (the
business counter), and one fake server per variant exporting `modelramp_variant_requests_total`
for the test the operator set up (the builtin error-rate).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server
from support.operator import V2, ModelDeployments, OperatorProcess, canary_md, healthy, with_model
from support.prometheus import PrometheusServer, Target, free_port

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.timeout(300)]

TICK_SECONDS = 0.1


class Exporter:
    """A loopback /metrics that a thread keeps counting into, every TICK_SECONDS."""

    def __init__(self, tick: Any) -> None:
        self.registry = CollectorRegistry()
        self.port = free_port()
        self._tick = tick
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._server.shutdown()
        self._server.server_close()

    def _run(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            self._tick()


def shop(conversion: dict[str, float]) -> Exporter:
    """Checkouts per variant: 20 sessions a tick each, bought with the variant's probability."""
    rng = np.random.default_rng(5)
    exporter = Exporter(lambda: None)
    sessions = Counter(
        "shop_sessions", "sessions by outcome", ["variant", "outcome"], registry=exporter.registry
    )

    def tick() -> None:
        for variant, rate in conversion.items():
            bought = int(rng.binomial(20, rate))
            sessions.labels(variant, "purchase").inc(bought)
            sessions.labels(variant, "none").inc(20 - bought)

    exporter._tick = tick
    return exporter


@pytest.fixture
def prometheus(namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    app = shop({"control": 0.10, "candidate": 0.25})
    app.start()
    try:
        with PrometheusServer(
            tmp_path_factory.mktemp("prometheus"), [Target(app.address, {"namespace": namespace})]
        ) as server:
            server.wait_for(f'sum(increase(shop_sessions_total{{namespace="{namespace}"}}[5s]))', 300)
            yield server
    finally:
        app.stop()


@pytest.fixture
def operator_args(prometheus: PrometheusServer) -> list[str]:
    return [f"--prometheus-url={prometheus.url}"]


def ab_md(name: str, **fields: Any) -> dict[str, Any]:
    body = canary_md([{"setWeight": 1}], name=name, replicas=2)
    sessions = 'shop_sessions_total{namespace="{{namespace}}"'
    window = "[{{interval}}]"
    body["spec"]["strategy"] = {
        "abTest": {
            "assignment": {"header": "x-user-id"},
            "variants": [{"name": "control", "weight": 60}, {"name": "candidate", "weight": 40}],
            "metric": {
                "name": "checkout",
                "counters": {
                    "successes": f'sum by (variant) (increase({sessions},outcome="purchase"}}{window}))',
                    "total": f"sum by (variant) (increase({sessions}}}{window}))",
                },
                "minEffect": 0.02,
            },
            "duration": "2m",
            "interval": "5s",
            "minSamples": 200,
            **fields,
        }
    }
    return body


def table(mds: ModelDeployments, name: str) -> dict[str, Any]:
    """The assignment table the model servers of `name` mount."""
    config_map = mds.core.read_namespaced_config_map(f"{name}-assignment", mds.namespace)
    loaded: dict[str, Any] = json.loads(config_map.data["assignment.json"])
    return loaded


def test_a_business_counter_decides_the_test_and_promote_takes_the_held_winner(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    body = ab_md("shop", autoPromote=False)
    mds.apply(body)
    first = healthy(mds, "shop")
    mds.apply(with_model(body, V2))

    decided = mds.wait_status(
        "shop",
        "the test decided, held",
        lambda s: (s.get("abTest") or {}).get("phase") == "Decided",
        timeout=90,
    )
    test = decided["abTest"]
    assert decided["phase"] == "Paused" and test["winner"] == "candidate"
    control, candidate = test["variants"]
    assert control["decision"] == "Control" and candidate["decision"] == "Better"
    # Figures per variant, with the effect's bounds: 25 % vs 10 % conversion, by at least 2 points.
    assert control["total"] >= 200 and candidate["total"] >= 200
    assert 0.05 < control["value"] < 0.15 and 0.2 < candidate["value"] < 0.3
    assert candidate["lower"] > 0.02 and candidate["lower"] < candidate["effect"] < candidate["upper"]
    assert candidate["pValue"] <= candidate["alpha"] and candidate["test"] == "farrington-manning"

    # The servers' table, as the operator wrote it, while the winner is held.
    assignment = table(mds, "shop")
    assert assignment["test"] == test["id"] and assignment["header"] == "x-user-id"
    assert [(v["name"], v["weight"], v["revision"]) for v in assignment["variants"]] == [
        ("control", 60, first["stableRevision"]),
        ("candidate", 40, decided["canaryRevision"]),
    ]
    stable = mds.deployment("shop-stable")
    volumes = {v.name: v.config_map.name for v in stable.spec.template.spec.volumes if v.config_map}
    assert volumes == {"assignment": "shop-assignment"}

    shown = mds.cli("status", "shop").stdout
    assert "A/B test:" in shown and "candidate 40%" in shown and ": Better" in shown

    mds.cli("promote", "shop")
    promoted = healthy(mds, "shop", uri=V2)
    assert promoted["abTest"]["phase"] == "Concluded" and promoted["abTest"]["winner"] == "candidate"
    assert table(mds, "shop") == {"variants": []}
    assert "ABTestConcluded" in [e.reason for e in mds.events("shop")]
