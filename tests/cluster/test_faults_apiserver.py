"""Fault: the cluster's kube-apiserver killed and started again in the middle of a canary (a
control-plane crash or a lost control-plane node), the operator running throughout. Invariant:
the operator rides it out without a restart of its own, and the rollout completes with every step
once, in order, none repeated or skipped, on status and on the route."""

from __future__ import annotations

import pytest
from support.cluster import restart_api_server
from support.operator import (
    V2,
    ModelDeployments,
    OperatorProcess,
    Recorder,
    at_step,
    canary_md,
    healthy,
    http_route,
    with_model,
)

# serial: every other test talks to this API server, so it is killed only with nothing else running.
pytestmark = [pytest.mark.cluster, pytest.mark.faults, pytest.mark.serial]


def test_rollout_completes_across_an_api_server_restart(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(http_route("web-route"))
    steps = [
        {"setWeight": 20},
        {"pause": {"duration": "2s"}},
        {"setWeight": 40},
        {"pause": {"duration": "2s"}},
    ]
    steps += [
        {"setWeight": 60},
        {"pause": {"duration": "2s"}},
        {"setWeight": 80},
        {"pause": {"duration": "2s"}},
    ]
    body = canary_md(steps, route="web-route")
    mds.apply(body)
    healthy(mds)
    with Recorder(mds.kube, mds.namespace, "web", route="web-route") as recorder:
        mds.apply(with_model(body, V2))
        at_step(mds, 3, 40)
        # Down longer than the step's pause: the operator's next writes meet no API server.
        restart_api_server(mds.kube, down_seconds=10)
        healthy(mds, uri=V2)
    assert operator.process is not None and operator.process.poll() is None, "the operator exited"
    assert operator.starts == 1
    assert recorder.status_weights == [0, 20, 40, 60, 80, 0], recorder.status_weights
    assert recorder.route_weights == [(100, 0), (80, 20), (60, 40), (40, 60), (20, 80), (100, 0)], (
        recorder.route_weights
    )
    in_rollout = [step for step in recorder.steps if step is not None]
    started = in_rollout.index(0)
    assert in_rollout[started:] == sorted(set(in_rollout[started:])), f"a step was repeated: {recorder.steps}"
