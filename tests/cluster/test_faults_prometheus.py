"""Fault: Prometheus flapping (down 20 s, up 20 s, over and over) while two canaries are analysed,
one good and one answering 30 % errors. Invariant: a measurement Prometheus could not answer, or
whose window had no series (right after a restart), is an Error: retried, never counted toward the
metric's `count` and never Inconclusive, so the outage can't use up inconclusiveLimit and leave one
window to promote; the bad canary is never promoted, and the good one only on `count` windows with
data, all Successful."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus.synthetic import Behaviour, scraped_canaries
from support.operator import V2, ModelDeployments, OperatorProcess, canary_md, healthy, with_model
from support.prometheus import PrometheusServer

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.faults]

CANARIES = {"good": Behaviour(seed=12), "bad": Behaviour(error_share=0.3, seed=13)}
FLAP_SECONDS = 20.0
COUNT = 3


class Flapping:
    """Stops Prometheus, starts it FLAP_SECONDS later, and so on from a thread; `outages` counts
    the stops."""

    def __init__(self, prometheus: PrometheusServer) -> None:
        self.prometheus = prometheus
        self.outages = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flap, daemon=True)

    def _flap(self) -> None:
        # Down first: the analyses start in an outage, and their first windows after it have no series.
        while not self._stop.is_set():
            self.prometheus.stop()
            self.outages += 1
            self._stop.wait(FLAP_SECONDS)
            self.prometheus.start()
            self._stop.wait(FLAP_SECONDS)

    def __enter__(self) -> Flapping:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


@pytest.fixture
def prometheus(namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp("prometheus")
    with scraped_canaries(namespace, workdir, CANARIES, Behaviour(seed=11), warm_requests=100) as server:
        yield server


@pytest.fixture
def operator_args(prometheus: PrometheusServer) -> list[str]:
    return [f"--prometheus-url={prometheus.url}"]


def analysed(name: str) -> dict[str, Any]:
    """A canary judged on its 5xx share over each window: no 5xx series is 0 (`or vector(0)`), no
    requests series at all is no result."""
    selector = 'namespace="{{ namespace }}",modeldeployment="{{ name }}",track="canary"'
    errors = f'sum(increase(modelramp_requests_total{{{selector},code=~"5.."}}[{{{{ interval }}}}]))'
    total = f"sum(increase(modelramp_requests_total{{{selector}}}[{{{{ interval }}}}]))"
    metric = {
        "name": "errors",
        "query": f"({errors} or vector(0)) / {total}",
        "successCondition": "result < 0.05",
        "interval": "5s",
        "count": COUNT,
        "inconclusiveLimit": COUNT,
        "consecutiveErrorLimit": 20,
    }
    return canary_md([{"setWeight": 50}, {"analysis": {"metrics": [metric]}}], name=name, replicas=2)


def test_flapping_prometheus_is_measurement_errors_never_a_promotion(
    operator: OperatorProcess, mds: ModelDeployments, prometheus: PrometheusServer
) -> None:
    bodies = {name: analysed(name) for name in CANARIES}
    for body in bodies.values():
        mds.apply(body)
    for name in CANARIES:
        healthy(mds, name)
    with Flapping(prometheus) as flapping:
        for body in bodies.values():
            mds.apply(with_model(body, V2))
        promoted = mds.wait_status(
            "good",
            f"promoted after {COUNT} windows with data",
            lambda s: s.get("phase") == "Healthy" and (s.get("stableModel") or {}).get("uri") == V2,
            timeout=300,
        )
        rolled_back = mds.wait_status("bad", "rolled back", lambda s: s.get("phase") == "RolledBack", 300)
        outages = flapping.outages
    assert outages >= 1, "Prometheus never went down during the analysis"
    (run,) = promoted["analysisRuns"]
    result = run["metrics"][0]
    assert run["phase"] == "Successful" and result["count"] == COUNT == result["successful"], run
    assert result.get("inconclusive", 0) == 0, run
    good = [m for m in promoted["measurements"] if m["analysis"] == run["name"]]
    errors = [m for m in good if m["verdict"] == "Error"]
    assert [m["verdict"] for m in good if m["verdict"] != "Error"] == ["Successful"] * COUNT, good
    outage = ("unreachable", "no data", "did not answer", "failed")
    assert all(any(word in m["message"] for word in outage) for m in errors), errors
    assert rolled_back["stableModel"]["uri"] != V2
    verdicts = {m["verdict"] for m in rolled_back["measurements"]}
    assert "Failed" in verdicts and "Inconclusive" not in verdicts, rolled_back["measurements"]
