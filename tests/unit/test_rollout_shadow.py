"""The shadow step through the pure engine: the canary gets the pods for the mirrored share and no
real traffic, the stable pods are told where to copy (the `<name>-shadow` ConfigMap) only while its
analysis runs, the verdict moves on or rolls back, the duration ends an undecided shadow, and the
canary sheds the mirror's pods before the next weight is published."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from support.rollout_world import (
    PROMETHEUS,
    ROUTINGS,
    World,
    httproute,
    measurements,
    model_deployment,
    routing_objects,
)

from modelramp.operator.rollout import analyses, runs

ERRORS = {"name": "errors", "builtin": "error-rate", "threshold": 0.05, "interval": "30s", "count": 4}
SHADOW = {"shadow": {"percent": 50, "duration": "10m"}}


def shadow_then_canary(*, routing: dict[str, Any] | None = None, replicas: int = 4) -> World:
    md = model_deployment(
        {"canary": {"steps": [SHADOW, {"setWeight": 25}, {"pause": {"duration": "1m"}}]}},
        replicas=replicas,
        routing=routing,
        analysis={**PROMETHEUS, "metrics": [ERRORS]},
    )
    world = World(md).add(httproute())
    world.tick()
    assert world.status["phase"] == "Healthy"
    world.set_spec("model.uri", "models:/iris/2")
    return world


def mirror_config(world: World) -> dict[str, Any]:
    body = world.objects[("ConfigMap", "md-shadow")]
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    config: dict[str, Any] = json.loads(body["data"]["shadow.json"])
    return config


def shadow_run(world: World) -> dict[str, Any]:
    return next(run for run in world.status["analysisRuns"] if run["kind"] == "Shadow")


def test_shadow_mirrors_to_a_canary_that_takes_no_traffic_then_the_canary_steps_on() -> None:
    world = shadow_then_canary()
    world.tick()
    # Mirror pods for 50 % of the traffic beside a full stable; no weight, so the replica ratio
    # router's Service leaves the canary's pods out.
    assert world.replicas() == {"stable": 4, "canary": 2}
    assert world.status["canaryWeight"] == 0
    assert world.apex_selector() == {"modelramp.dev/name": "md", "modelramp.dev/track": "stable"}
    run = shadow_run(world)
    assert run["name"].startswith("shadow-0-") and run["phase"] == "Running"
    assert mirror_config(world) == {
        "target": "http://md-canary.default.svc:80",
        "percent": 50,
        "stableVersion": world.status["stableRevision"],
        "canaryVersion": world.status["canaryRevision"],
    }
    assert "shadow 50%" in world.status["message"]

    world.tick(measurements=measurements(world, "Successful", kind="Shadow"))
    # Passed: the stable pods stop copying; the canary sheds the mirror's pods before it takes 25 %.
    assert mirror_config(world) == {}
    assert shadow_run(world)["phase"] == "Successful"
    assert world.status["currentStepIndex"] == 2
    assert world.replicas()["canary"] == 1
    assert world.status["canaryWeight"] == 25
    assert world.apex_selector() == {"modelramp.dev/name": "md"}


def test_the_weight_after_a_shadow_waits_until_the_mirror_pods_are_gone() -> None:
    world = shadow_then_canary()
    world.tick()
    world.auto_ready = False
    world.reconcile(measurements(world, "Successful", kind="Shadow"))
    # The canary still has the 2 mirror pods Ready: 25 % on them would be 2 of 5 pods, 40 %.
    assert world.status["currentStepIndex"] == 1 and world.replicas()["canary"] == 1
    world.reconcile()
    assert world.status.get("lastSetWeight", 0) == 0
    assert world.apex_selector()["modelramp.dev/track"] == "stable"
    world.kubelet()
    world.reconcile()
    assert world.status["lastSetWeight"] == 25


def test_failed_shadow_rolls_back_without_the_canary_ever_taking_traffic() -> None:
    world = shadow_then_canary()
    world.tick()
    world.tick(measurements=measurements(world, "Failed", kind="Shadow"))
    assert world.status["phase"] == "RolledBack"
    assert "analysis shadow-0-" in world.status["message"]
    assert mirror_config(world) == {}
    assert world.replicas() == {"stable": 4, "canary": 0}
    assert all(out.status.canary_weight == 0 for out in world.outputs)


def test_a_shadow_undecided_at_the_end_of_its_duration_pauses_for_a_person() -> None:
    world = shadow_then_canary()
    world.tick()
    world.tick(seconds=9 * 60, measurements=measurements(world, "Inconclusive", kind="Shadow"))
    assert shadow_run(world)["phase"] == "Running"
    out = world.tick(seconds=0)
    # The requeue wakes the engine when the duration ends.
    assert out.requeue_after is not None and out.requeue_after <= 60
    world.now += timedelta(seconds=61)
    world.tick()
    assert shadow_run(world)["phase"] == "Inconclusive"
    assert "ShadowEnded" in [event.reason for event in world.events]
    assert world.status["phase"] == "Paused"
    assert mirror_config(world) == {}


def test_the_mirror_waits_for_the_canary_pods_it_needs() -> None:
    world = shadow_then_canary()
    world.broken.add("canary")
    world.tick()
    assert world.replicas()["canary"] == 2
    assert not world.status.get("analysisRuns")
    assert mirror_config(world) == {}


def test_only_a_spec_with_a_shadow_step_mounts_the_config_and_adding_one_starts_no_rollout() -> None:
    plain = model_deployment({"canary": {"steps": [{"setWeight": 25}]}})
    world = World(plain)
    world.tick()
    pod = world.deployments["stable"]["spec"]["template"]["spec"]
    assert [volume["name"] for volume in pod["volumes"]] == ["tmp"]
    assert ("ConfigMap", "md-shadow") not in world.objects

    world.set_spec("strategy.canary.steps", [SHADOW, {"setWeight": 25}])
    world.set_spec("analysis", {**PROMETHEUS, "metrics": [ERRORS]})
    world.tick()
    assert world.status["phase"] == "Healthy" and "canaryRevision" not in world.status
    pod = world.deployments["stable"]["spec"]["template"]["spec"]
    assert pod["volumes"][1] == {"name": "shadow", "configMap": {"name": "md-shadow", "optional": True}}
    (server,) = pod["containers"]
    assert {"name": "MODELRAMP_SHADOW_CONFIG", "value": "/etc/modelramp/shadow/shadow.json"} in server["env"]
    assert mirror_config(world) == {}


def test_shadow_metrics_are_paired_and_spend_the_rollouts_budget() -> None:
    spec = shadow_then_canary().model().spec
    analysis = analyses.analysis_in(spec, "Shadow", 0)
    assert analysis is not None
    [metric] = runs.effective_metrics(analysis, spec, paired=True)
    assert metric.paired
    # One builtin in the shadow step: it alone holds the rollout's 1 %, over its 4 measurements.
    assert runs.builtin_metrics_in_rollout(spec) == 1
    assert metric.alpha == 0.01 / 4


def test_shadow_works_with_every_router() -> None:
    for name in ("gateway", "istio", "nginx"):
        world = shadow_then_canary(routing=ROUTINGS[name])
        world.add(*routing_objects())
        world.tick()
        assert world.status["canaryWeight"] == 0, name
        assert mirror_config(world)["percent"] == 50, name
        world.tick(measurements=measurements(world, "Successful", kind="Shadow"))
        assert world.status["canaryWeight"] == 25, name
