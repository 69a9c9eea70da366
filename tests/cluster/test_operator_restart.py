"""The restart matrix: SIGKILL the operator at every phase of a canary and of a blue-green rollout,
start a new one, and check from a watch that the rollout carried on where it was: every weight
set once, in order, none repeated or skipped, and traffic never on a missing object."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from support.operator import (
    V1,
    V2,
    ModelDeployments,
    OperatorProcess,
    Recorder,
    blue_green_md,
    canary_md,
    healthy,
    http_route,
    replicas,
    route_weights,
    wait_for,
    with_model,
)

pytestmark = [pytest.mark.cluster, pytest.mark.faults]


def traffic_targets_exist(mds: ModelDeployments, route: str, name: str = "web") -> bool:
    """Every backend with weight > 0 is a Service that exists, over pods that exist."""
    for ref in mds.route(route)["spec"]["rules"][0]["backendRefs"]:
        if ref.get("weight", 1) > 0 and (mds.service(ref["name"]) is None or replicas(mds, ref["name"]) == 0):
            return False
    return True


def kill_and_restart_on_each_change(
    operator: OperatorProcess,
    mds: ModelDeployments,
    *,
    snapshot: Callable[[dict[str, Any]], Any],
    done: Callable[[dict[str, Any]], bool],
    route: str,
    timeout: float = 300,
) -> list[Any]:
    """Each time `snapshot(status)` changes, SIGKILLs the operator at once, checks traffic, and
    starts a new one; returns the snapshots it killed at."""
    killed_at: list[Any] = []
    deadline = time.monotonic() + timeout
    last = snapshot(mds.status("web"))
    while not done(status := mds.status("web")):
        assert time.monotonic() < deadline, f"rollout did not finish; killed at {killed_at}, status {status}"
        now = snapshot(status)
        if now != last:
            operator.kill()
            killed_at.append(now)
            assert traffic_targets_exist(mds, route), f"traffic on a missing object after killing at {now}"
            time.sleep(0.5)
            operator.start()
            last = now
        time.sleep(0.05)
    return killed_at


def test_canary_resumes_at_the_same_step_after_sigkill(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(http_route("web-route"))
    steps: list[dict[str, Any]] = []
    for weight in (20, 40, 60, 80):
        steps += [{"setWeight": weight}, {"pause": {"duration": "1s"}}]
    body = canary_md(steps, route="web-route")
    mds.apply(body)
    healthy(mds)
    with Recorder(mds.kube, mds.namespace, "web", route="web-route") as recorder:
        mds.apply(with_model(body, V2))
        killed_at = kill_and_restart_on_each_change(
            operator,
            mds,
            snapshot=lambda s: (s.get("currentStepIndex"), s.get("phase"), s.get("canaryWeight")),
            done=lambda s: s.get("phase") == "Healthy" and (s.get("stableModel") or {}).get("uri") == V2,
            route="web-route",
        )
        wait_for("route back at 100/0", lambda: route_weights(mds.route("web-route"), "web") == (100, 0))
        time.sleep(1)
    assert len(killed_at) >= len(steps), f"killed only at {killed_at}"
    assert recorder.status_weights == [0, 20, 40, 60, 80, 0]
    assert recorder.route_weights == [(100, 0), (80, 20), (60, 40), (40, 60), (20, 80), (100, 0)]
    in_rollout = [step for step in recorder.steps if step is not None]
    started = in_rollout.index(0)
    assert in_rollout[started:] == sorted(set(in_rollout[started:])), f"a step was repeated: {recorder.steps}"
    assert replicas(mds, "web-canary") == 0 and replicas(mds, "web-stable") == 4


def test_blue_green_resumes_after_sigkill_at_every_phase(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(http_route("web-route"))
    body = blue_green_md(route="web-route", autoPromotionSeconds=1)
    mds.apply(body)
    healthy(mds)
    with Recorder(mds.kube, mds.namespace, "web", route="web-route") as recorder:
        mds.apply(with_model(body, V2))
        killed_at = kill_and_restart_on_each_change(
            operator,
            mds,
            snapshot=lambda s: (
                s.get("phase"),
                (s.get("blueGreen") or {}).get("previewReadyTime"),
                (s.get("blueGreen") or {}).get("switchTime"),
            ),
            done=lambda s: s.get("phase") == "Healthy" and (s.get("stableModel") or {}).get("uri") == V2,
            route="web-route",
        )
        wait_for("old side scaled down", lambda: replicas(mds, "web-canary") == 0, timeout=30)
        time.sleep(1)
    assert len(killed_at) >= 3, f"killed only at {killed_at}"
    # One switch: all traffic on the old side, then all on the new, never back and forth.
    assert all(weights in {(100, 0), (0, 100)} for weights in recorder.route_weights), recorder.route_weights
    flips = sum(a != b for a, b in zip(recorder.route_weights, recorder.route_weights[1:], strict=False))
    assert flips <= 2, f"traffic flapped: {recorder.route_weights}"
    assert mds.status("web")["stableModel"]["uri"] == V2
    assert replicas(mds, "web-stable") == 2
    assert (
        V1 not in mds.deployment("web-stable").spec.template.metadata.annotations["modelramp.dev/model-uri"]
    )
