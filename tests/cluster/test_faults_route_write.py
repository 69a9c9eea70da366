"""Fault: the operator SIGKILLed (as the OOM killer does) while its write of the traffic split is in
flight: the HTTPRoute patch of the Gateway API router, and the canary Deployment's scale-up that is
the replica-ratio router's split. A real admission webhook (tests/support/webhook.py) holds that
one write open at the API server while the test kills the operator, then lets it go (the API server
may commit it or drop it with its client gone). Invariant: traffic never goes back a step, and a
new operator carries on with every step once, none repeated or skipped."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support.operator import (
    V2,
    ModelDeployments,
    OperatorProcess,
    Recorder,
    canary_md,
    healthy,
    http_route,
    route_weights,
    with_model,
)
from support.webhook import HoldingWebhook

pytestmark = [pytest.mark.cluster, pytest.mark.faults]

WEIGHTS = (20, 40, 60, 80)


def stepped(**spec: Any) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for weight in WEIGHTS:
        steps += [{"setWeight": weight}, {"pause": {"duration": "1s"}}]
    return canary_md(steps, replicas=5, **spec)


def killed_inside_the_held_write(
    operator: OperatorProcess, mds: ModelDeployments, webhook: HoldingWebhook, body: dict[str, Any]
) -> dict[str, Any]:
    """Rolls `body` to V2, SIGKILLs the operator while the webhook holds its write, lets the write
    go, starts a new operator and waits for the promotion; returns the status at the kill."""
    mds.apply(with_model(body, V2))
    assert webhook.held.wait(90), "the operator never made the write the webhook waits for"
    at_kill = mds.status("web")
    operator.kill()
    webhook.release()
    time.sleep(1)
    operator.start()
    healthy(mds, uri=V2)
    time.sleep(1)
    return at_kill


def assert_steps_once(recorder: Recorder) -> None:
    steps = [step for step in recorder.steps if step is not None]
    started = steps.index(0)
    assert steps[started:] == sorted(set(steps[started:])), f"a step was repeated: {recorder.steps}"


def test_gateway_route_patch_killed_midway(
    operator: OperatorProcess, mds: ModelDeployments, tmp_path: Path
) -> None:
    mds.apply(http_route("web-route"))
    body = stepped(trafficRouting={"gatewayAPI": {"httpRoute": "web-route"}})
    mds.apply(body)
    healthy(mds)

    def to_forty(request: dict[str, Any]) -> bool:
        return request["name"] == "web-route" and route_weights(request["object"], "web") == (60, 40)

    rule = ("gateway.networking.k8s.io", "v1", "httproutes")
    with (
        HoldingWebhook(mds.kube, tmp_path / "webhook", mds.namespace, rule, to_forty) as webhook,
        Recorder(mds.kube, mds.namespace, "web", route="web-route") as recorder,
    ):
        at_kill = killed_inside_the_held_write(operator, mds, webhook, body)
    # The status that asks for the split (lastSetWeight) is written before the route: it was there
    # at the kill, at the step that sets 40, while the weight in effect was still 20.
    fields = ("currentStepIndex", "lastSetWeight", "canaryWeight")
    assert tuple(at_kill.get(key) for key in fields) == (2, 40, 20), at_kill
    assert recorder.status_weights == [0, 20, 40, 60, 80, 0], recorder.status_weights
    assert recorder.route_weights == [(100, 0), (80, 20), (60, 40), (40, 60), (20, 80), (100, 0)], (
        f"the route went back or skipped a step: {recorder.route_weights}"
    )
    assert_steps_once(recorder)


def test_replica_ratio_scale_up_killed_midway(
    operator: OperatorProcess, mds: ModelDeployments, tmp_path: Path
) -> None:
    body = stepped()
    mds.apply(body)
    healthy(mds)

    def canary_to_two(request: dict[str, Any]) -> bool:
        return request["name"] == "web-canary" and request["object"]["spec"].get("replicas") == 2

    rule = ("apps", "v1", "deployments")
    with (
        HoldingWebhook(mds.kube, tmp_path / "webhook", mds.namespace, rule, canary_to_two) as webhook,
        Recorder(mds.kube, mds.namespace, "web", deployment="web-canary") as recorder,
    ):
        killed_inside_the_held_write(operator, mds, webhook, body)
    *rollout, last = recorder.status_weights
    assert last == 0 and rollout == sorted(set(rollout)), f"traffic went back: {recorder.status_weights}"
    assert set(WEIGHTS) <= set(rollout), f"a step's weight was skipped: {recorder.status_weights}"
    *scaled, scaled_down = recorder.deployment_replicas
    assert scaled_down == 0 and scaled == sorted(set(scaled)), (
        f"the canary's pods went back: {recorder.deployment_replicas}"
    )
    assert_steps_once(recorder)
