"""An analysis step measured through a real Prometheus (the operator's `--prometheus-url`): a good
canary is promoted, one answering 30% errors is rolled back, and the measurements that decided it
are in status. Fake model servers (tests/prometheus/synthetic.py) stand in for the pods, scraped
with the labels Prometheus would give the pods (namespace, modeldeployment, track)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus.synthetic import Behaviour, scraped_canaries
from support.operator import V2, ModelDeployments, OperatorProcess, canary_md, healthy, with_model
from support.prometheus import PrometheusServer

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]

CANARIES = {"good": Behaviour(seed=2), "bad": Behaviour(error_share=0.3, seed=3)}


@pytest.fixture
def prometheus(namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp("prometheus")
    with scraped_canaries(namespace, workdir, CANARIES, Behaviour(seed=1), warm_requests=300) as server:
        yield server


@pytest.fixture
def operator_args(prometheus: PrometheusServer) -> list[str]:
    return [f"--prometheus-url={prometheus.url}"]


def _with_analysis(name: str) -> dict[str, Any]:
    metric = {"name": "errors", "builtin": "error-rate", "threshold": 0.05, "interval": "5s", "count": 2}
    return canary_md([{"setWeight": 50}, {"analysis": {"metrics": [metric]}}], name=name, replicas=2)


def test_analysis_promotes_a_good_canary_and_rolls_back_a_bad_one(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    bodies = {name: _with_analysis(name) for name in CANARIES}
    for body in bodies.values():
        mds.apply(body)
    first = {name: healthy(mds, name) for name in CANARIES}
    for body in bodies.values():
        mds.apply(with_model(body, V2))

    promoted = healthy(mds, "good", uri=V2)
    (good_run,) = promoted["analysisRuns"]
    assert good_run["phase"] == "Successful"
    # The pooled evidence showed it within the bound: one Successful measurement decides a builtin.
    assert good_run["metrics"][0]["successful"] == 1
    assert good_run["metrics"][0]["test"]["decision"] == "WithinBound"

    # Under replica ratio the published weight is what the pods give: it reaches 0 once the canary's
    # pods are gone, a tick after the verdict.
    rolled_back = mds.wait_status(
        "bad",
        "rolled back, all traffic on stable",
        lambda s: s.get("phase") == "RolledBack" and s.get("canaryWeight") == 0,
        timeout=60,
    )
    assert rolled_back["stableRevision"] == first["bad"]["stableRevision"]
    assert rolled_back["canaryWeight"] == 0
    failed = [m for m in rolled_back["measurements"] if m["verdict"] == "Failed"]
    assert failed, rolled_back["measurements"]
    assert failed[0]["value"] > 0.05 and "modelramp_requests_total" in failed[0]["message"]
    # The operator's own view of the same: one rollout promoted, one rolled back, and each
    # ModelDeployment's latest error rate with its bound. Counted once the status is written, by
    # the reconcile that wrote it (maybe still finishing, the other ModelDeployment's done).
    wanted = {
        "modelramp_rollout_promotion_duration_seconds_count 1.0",
        "modelramp_rollout_rollback_duration_seconds_count 1.0",
    }
    deadline = time.monotonic() + 10
    while not wanted <= set((metrics := operator.metrics()).splitlines()) and time.monotonic() < deadline:
        time.sleep(0.2)
    rollouts = [
        row for row in metrics.splitlines() if row.startswith("modelramp_rollout_") and "_count" in row
    ]
    assert wanted <= set(rollouts), rollouts
    assert 'modelramp_analysis_measurements_total{metric="errors",verdict="Failed"}' in metrics
    labels = f'{{metric="errors",name="bad",namespace="{mds.namespace}"}}'
    assert f"modelramp_analysis_measurement_threshold{labels} 0.05" in metrics
    value = f"modelramp_analysis_measurement_value{labels} "
    (line,) = [row for row in metrics.splitlines() if row.startswith(value)]
    assert float(line.removeprefix(value)) == failed[-1]["value"]
