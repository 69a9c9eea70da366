"""Fault: the leading replica of two, peered (`--peering`), is SIGKILLed in the middle of a step's
analysis, with no chance to leave the peering. Invariant: once the leader's keep-alive runs out
the standby carries the rollout on from status, every step once, in order (none repeated or
skipped), and the canary is promoted only on an analysis run that passed, its measurements
counted once across the two replicas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cluster import Kube
from support.operator import (
    V2,
    ModelDeployments,
    OperatorProcess,
    Recorder,
    canary_md,
    healthy,
    install_peering_crds,
    stop_replicas,
    wait_for,
    with_model,
)
from support.prometheus import PrometheusServer

pytestmark = [pytest.mark.cluster, pytest.mark.faults, pytest.mark.prometheus]

# Short, so the standby takes over a few seconds after the kill (kopf's default is 60 s).
LIFETIME = "--peering-lifetime=6"
ANALYSIS_STEP = 5


@pytest.fixture
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus; the analysis' query is a constant, so no scrape target is needed."""
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), targets=[]) as server:
        yield server


def peered(kube: Kube, namespace: str, tmp_path: Path, prometheus: PrometheusServer) -> list[OperatorProcess]:
    install_peering_crds(kube)
    peering = '{"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "modelramp"}}'
    kube.kubectl("-n", namespace, "apply", "-f", "-", input=peering)
    return [
        OperatorProcess(
            kube,
            [namespace],
            tmp_path / f"{role}.log",
            ["--peering=modelramp", f"--priority={priority}", LIFETIME, f"--prometheus-url={prometheus.url}"],
        )
        for role, priority in (("leader", 200), ("standby", 100))
    ]


def rollout() -> dict[str, Any]:
    metric = {
        "name": "constant",
        "query": "vector(0)",
        "successCondition": "result < 1",
        "interval": "3s",
        "count": 3,
    }
    steps = [
        {"setWeight": 20},
        {"pause": {"duration": "1s"}},
        {"setWeight": 40},
        {"pause": {"duration": "1s"}},
        {"setWeight": 60},
        {"analysis": {"metrics": [metric]}},
        {"setWeight": 80},
        {"pause": {"duration": "1s"}},
    ]
    return canary_md(steps, replicas=5)


def analysis_running(status: dict[str, Any]) -> bool:
    runs = [run for run in status.get("analysisRuns", []) if run.get("stepIndex") == ANALYSIS_STEP]
    return bool(runs) and runs[0]["phase"] == "Running" and runs[0]["metrics"][0].get("count", 0) >= 1


def test_standby_carries_the_rollout_on_after_the_leader_is_sigkilled_mid_analysis(
    kube: Kube, namespace: str, mds: ModelDeployments, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    leader, standby = peered(kube, namespace, tmp_path, prometheus)
    try:
        # kopf starts paused and resumes once its peering object shows no live peer above it.
        leader.start()
        wait_for("the leader to act", lambda: "Resuming operations" in leader.log_tail(300), timeout=30)
        standby.start()
        body = rollout()
        mds.apply(body)
        healthy(mds)
        with Recorder(mds.kube, mds.namespace, "web") as recorder:
            mds.apply(with_model(body, V2))
            mds.wait_status("web", "the step's analysis measuring", analysis_running, timeout=90)
            assert "Resuming operations" not in standby.log_tail(300), "the standby acted beside the leader"
            leader.kill()
            # Within the leader's lifetime (6 s) and a keep-alive; kopf's default would be up to 60 s.
            wait_for("the standby to take over", lambda: "Resuming operations" in standby.log_tail(300), 30)
            promoted = healthy(mds, uri=V2)
        statuses = recorder.status_weights
        steps = [step for step in recorder.steps if step is not None]
    finally:
        stop_replicas(mds, leader, standby)
    assert statuses == [0, 20, 40, 60, 80, 0], f"a weight was skipped or repeated: {statuses}"
    started = steps.index(0)
    assert steps[started:] == sorted(set(steps[started:])), f"a step was repeated or went back: {steps}"
    (run,) = [run for run in promoted["analysisRuns"] if run.get("stepIndex") == ANALYSIS_STEP]
    assert run["phase"] == "Successful", run
    # Three measurements, the leader's and the standby's together: none taken twice, none lost.
    assert (run["metrics"][0]["count"], run["metrics"][0]["successful"]) == (3, 3), run
