"""The operator against the local cluster: owned objects, canary and blue-green rollouts through
both routers, manual controls, the progress deadline, deletion, and an analysis with no
Prometheus. kwok fakes the pods (Running and Ready without containers), so these tests check
objects, weights, status and events, not HTTP traffic."""

from __future__ import annotations

import math
import time

import pytest
from support.operator import (
    V1,
    V2,
    ModelDeployments,
    OperatorProcess,
    Recorder,
    at_step,
    blue_green_md,
    canary_md,
    healthy,
    http_route,
    reasons,
    replicas,
    route_weights,
    user_fields,
    wait_for,
    with_model,
)

pytestmark = pytest.mark.cluster


def test_first_apply_creates_owned_objects_and_becomes_healthy(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(canary_md([{"setWeight": 50}]))
    status = healthy(mds)
    md = mds.get("web")
    assert status["observedGeneration"] == md["metadata"]["generation"]
    assert status["canaryWeight"] == 0
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"

    stable = mds.deployment("web-stable")
    assert stable.spec.replicas == 4
    labels = stable.spec.template.metadata.labels
    assert labels["modelramp.dev/name"] == "web" and labels["modelramp.dev/track"] == "stable"
    assert labels["modelramp.dev/revision"] == status["stableRevision"]
    assert stable.spec.template.metadata.annotations["modelramp.dev/model-uri"] == V1
    owned = [stable] + [mds.service(n) for n in ("web", "web-stable", "web-canary")]
    for obj in owned:
        assert obj is not None
        (ref,) = obj.metadata.owner_references
        assert (ref.kind, ref.name, ref.uid) == ("ModelDeployment", "web", md["metadata"]["uid"])
        assert ref.controller and ref.block_owner_deletion
    wait_for("a Normal Event on the ModelDeployment", lambda: reasons(mds, type_="Normal"))
    metrics = operator.metrics()
    assert 'modelramp_rollouts{phase="Healthy"} 1.0' in metrics
    assert f'modelramp_canary_weight{{name="web",namespace="{mds.namespace}"}} 0.0' in metrics


def test_nothing_is_written_when_nothing_changes(operator: OperatorProcess, mds: ModelDeployments) -> None:
    mds.apply(canary_md([{"setWeight": 50}], route="web-route"))
    mds.apply(http_route("web-route"))
    healthy(mds)
    wait_for("route weights set", lambda: route_weights(mds.route("web-route"), "web") == (100, 0))
    time.sleep(1)

    def versions() -> list[str]:
        objects = [mds.get("web"), mds.route("web-route")]
        versions = [o["metadata"]["resourceVersion"] for o in objects]
        owned = [mds.deployment("web-stable")] + [mds.service(n) for n in ("web", "web-stable", "web-canary")]
        return versions + [o.metadata.resource_version for o in owned]

    def reconciles(result: str) -> float:
        line = f'modelramp_reconcile_total{{result="{result}"}} '
        found = [row for row in operator.metrics().splitlines() if row.startswith(line)]
        return float(found[0].removeprefix(line)) if found else 0.0

    before, events, changed, unchanged = (
        versions(),
        len(mds.events("web")),
        reconciles("changed"),
        reconciles("unchanged"),
    )
    # Wake the operator without changing anything it owns: an unrelated label on the ModelDeployment.
    mds.kube.kubectl("-n", mds.namespace, "label", "modeldeployments.modelramp.dev", "web", "touched=yes")
    wait_for("the operator to look again", lambda: reconciles("unchanged") > unchanged)
    time.sleep(1)
    # The label itself changed the ModelDeployment's resourceVersion; nothing else may change.
    assert versions()[1:] == before[1:], "the operator rewrote an object that needed no change"
    assert reconciles("changed") == changed, "the operator wrote something on a no-op reconcile"
    assert len(mds.events("web")) == events, "an Event was posted for no transition"


def test_canary_with_replica_ratio_steps_through_weights_to_promotion(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "2s"}}]
    body = canary_md(steps)
    mds.apply(body)
    first = healthy(mds)
    with Recorder(mds.kube, mds.namespace, "web") as recorder:
        mds.apply(with_model(body, V2))
        status = at_step(mds, 1, 25)
        assert status["phase"] == "Paused"
        assert status["canaryRevision"] != first["stableRevision"]
        # weight 25 of 4 pods: ceil(4 * 25 / 100) = 1 canary pod, stable the rest.
        assert replicas(mds, "web-canary") == math.ceil(4 * 25 / 100) == 1
        assert replicas(mds, "web-stable") == 3
        mds.cli("promote", "web")
        promoted = healthy(mds, uri=V2)
    assert promoted["canaryWeight"] == 0
    assert promoted["stableRevision"] == status["canaryRevision"]
    assert replicas(mds, "web-stable") == 4
    assert replicas(mds, "web-canary") == 0
    assert recorder.status_weights == [0, 25, 50, 0]
    assert mds.deployment("web-stable").spec.template.metadata.annotations["modelramp.dev/model-uri"] == V2


def test_canary_with_gateway_api_sets_route_weights_and_leaves_the_rest(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(http_route("web-route"))
    before = user_fields(mds.route("web-route"))
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]
    body = canary_md(steps, route="web-route")
    mds.apply(body)
    healthy(mds)
    # Status is written before the route (operator/controller.py), so the route follows it.
    wait_for("route at 100/0", lambda: route_weights(mds.route("web-route"), "web") == (100, 0))
    with Recorder(mds.kube, mds.namespace, "web", route="web-route") as recorder:
        mds.apply(with_model(body, V2))
        at_step(mds, 1, 20)
        wait_for("route at 80/20", lambda: route_weights(mds.route("web-route"), "web") == (80, 20))
        # Under a router, the canary is sized by its weight; stable stays at full size.
        assert replicas(mds, "web-canary") == 1 and replicas(mds, "web-stable") == 4
        mds.cli("promote", "web")
        at_step(mds, 3, 60)
        wait_for("route at 40/60", lambda: route_weights(mds.route("web-route"), "web") == (40, 60))
        mds.cli("promote", "web")
        healthy(mds, uri=V2)
        wait_for("route back at 100/0", lambda: route_weights(mds.route("web-route"), "web") == (100, 0))
        time.sleep(1)  # let the watch deliver anything that came after
    assert recorder.route_weights == [(100, 0), (80, 20), (40, 60), (100, 0)]
    assert user_fields(mds.route("web-route")) == before
    refs = mds.route("web-route")["spec"]["rules"][0]["backendRefs"]
    assert {r["name"] for r in refs} == {"web-stable", "web-canary"}


def test_blue_green_previews_at_full_size_then_switches(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(http_route("web-route"))
    body = blue_green_md(route="web-route", autoPromotionEnabled=False)
    mds.apply(body)
    healthy(mds)
    with Recorder(mds.kube, mds.namespace, "web", route="web-route") as recorder:
        mds.apply(with_model(body, V2))
        mds.wait_status(
            "web", "preview ready", lambda s: (s.get("blueGreen") or {}).get("previewReadyTime"), timeout=60
        )
        # The preview runs at full size and gets no traffic until promoted.
        assert replicas(mds, "web-canary") == 2 and replicas(mds, "web-stable") == 2
        assert route_weights(mds.route("web-route"), "web") == (100, 0)
        assert mds.status("web")["stableModel"]["uri"] == V1
        mds.cli("promote", "web")
        healthy(mds, uri=V2)
        # The old side is kept for scaleDownDelaySeconds (2 s), then scaled down.
        wait_for("old side scaled down", lambda: replicas(mds, "web-canary") == 0, timeout=30)
        time.sleep(1)
    assert replicas(mds, "web-stable") == 2
    assert mds.deployment("web-stable").spec.template.metadata.annotations["modelramp.dev/model-uri"] == V2
    assert route_weights(mds.route("web-route"), "web") == (100, 0)
    # Traffic went from all-old to all-new in one switch, never in between.
    assert all(weights in {(100, 0), (0, 100)} for weights in recorder.route_weights)
    assert (0, 100) in recorder.route_weights or recorder.route_weights == [(100, 0)]


def test_pause_and_resume(operator: OperatorProcess, mds: ModelDeployments) -> None:
    # Weights that 4 pods can give exactly (the published weight is what the replicas give).
    body = canary_md([{"setWeight": 25}, {"pause": {}}])
    mds.apply(body)
    healthy(mds)
    mds.cli("pause", "web")
    mds.apply(with_model(body, V2))  # kubectl apply leaves the field it never set alone
    assert mds.get("web")["spec"]["paused"] is True
    mds.wait_status("web", "paused rollout", lambda s: s.get("phase") == "Paused" and s.get("canaryRevision"))
    time.sleep(2)
    assert mds.status("web")["canaryWeight"] == 0, "a paused rollout moved traffic"
    mds.cli("resume", "web")
    at_step(mds, 1, 25)


def test_abort_retry_and_promote_full(operator: OperatorProcess, mds: ModelDeployments) -> None:
    body = canary_md([{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}, {"pause": {}}])
    mds.apply(body)
    first = healthy(mds)
    mds.apply(with_model(body, V2))
    at_step(mds, 1, 25)

    mds.cli("abort", "web")
    aborted = mds.wait_status(
        "web", "aborted: all traffic on stable", lambda s: s.get("abort") and s.get("canaryWeight") == 0
    )
    assert aborted["stableRevision"] == first["stableRevision"]
    assert aborted["phase"] in {"Degraded", "RolledBack"}
    wait_for("canary scaled to 0", lambda: replicas(mds, "web-canary") == 0)

    mds.cli("retry", "web")
    retried = at_step(mds, 1, 25)
    assert not retried.get("abort")

    mds.cli("promote", "web", "--full")
    promoted = healthy(mds, uri=V2)
    assert promoted["canaryWeight"] == 0 and not promoted.get("promoteFull")
    assert replicas(mds, "web-stable") == 4


def test_progress_deadline_rolls_back_with_condition_and_warning(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    body = canary_md([{"setWeight": 50}, {"pause": {}}], progressDeadlineSeconds=3)
    mds.apply(body)
    first = healthy(mds)
    # No node carries this label: the canary's pods stay Pending, never Ready.
    mds.apply(with_model(body, V2, nodeSelector={"modelramp.dev/nowhere": "true"}))
    status = mds.wait_status("web", "rolled back", lambda s: s.get("phase") == "RolledBack", timeout=60)
    assert status["canaryWeight"] == 0
    assert status["stableRevision"] == first["stableRevision"]
    degraded = {c["type"]: c for c in status["conditions"]}["Degraded"]
    assert degraded["status"] == "True" and "deadline" in degraded["message"].lower()
    # Events are posted right after the status write that announces them.
    wait_for("a Warning event for the rollback", lambda: reasons(mds, type_="Warning"))


def test_deleting_the_model_deployment_removes_owned_objects(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(canary_md([{"setWeight": 50}]))
    healthy(mds)
    assert mds.deployment("web-stable") is not None and mds.service("web") is not None
    mds.delete_all()
    wait_for(
        "owned objects garbage-collected",
        lambda: (
            all(mds.deployment(n) is None for n in ("web-stable", "web-canary"))
            and all(mds.service(n) is None for n in ("web", "web-stable", "web-canary"))
        ),
        timeout=60,
    )


def test_analysis_without_prometheus_fails_loudly_and_never_promotes(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    metric = {"name": "errors", "builtin": "error-rate", "threshold": 0.05, "interval": "1s"}
    body = canary_md([{"setWeight": 25}, {"analysis": {"metrics": [metric]}}, {"setWeight": 100}])
    mds.apply(body)
    first = healthy(mds)
    mds.apply(with_model(body, V2))
    status = mds.wait_status(
        "web",
        "analysis run in Error",
        lambda s: any(run.get("phase") == "Error" for run in s.get("analysisRuns", [])),
        timeout=60,
    )
    (run,) = [run for run in status["analysisRuns"] if run["phase"] == "Error"]
    assert "no metric provider" in run.get("message", "")
    time.sleep(3)
    later = mds.status("web")
    assert later["phase"] in {"Paused", "Degraded", "RolledBack"}
    assert later["stableRevision"] == first["stableRevision"]
    assert later["canaryWeight"] <= 25
