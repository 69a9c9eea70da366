"""Canary rollouts through the pure engine, tick by tick, on a simulated cluster (replica ratio
and Gateway API), with manual controls, analysis verdicts and the progress deadline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from support.rollout_world import PROMETHEUS, World, httproute, measurements, model_deployment

from modelramp.operator.api.status import Verdict

ERROR_RATE = {"name": "error-rate", "builtin": "error-rate", "threshold": 0.05, "interval": "30s", "count": 2}


def canary(*steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"canary": {"steps": list(steps), **options}}


def rolled_out(world: World, uri: str = "models:/iris/2") -> World:
    """A Healthy world whose spec then changes model, so a rollout starts."""
    world.tick()
    assert world.status["phase"] == "Healthy"
    world.set_spec("model.uri", uri)
    return world


def condition(world: World, kind: str) -> dict[str, Any]:
    return next(c for c in world.status["conditions"] if c["type"] == kind)


def reasons(world: World) -> list[str]:
    return [event.reason for event in world.events]


def run_named(world: World, kind: str) -> dict[str, Any]:
    return next(run for run in world.status["analysisRuns"] if run["kind"] == kind)


def test_first_apply_is_stable_at_full_size_and_healthy_once_ready() -> None:
    world = World(model_deployment(canary({"setWeight": 50})), auto_ready=False)
    world.reconcile()
    assert world.status["phase"] == "Initializing"
    assert world.replicas() == {"stable": 4, "canary": 0}
    assert condition(world, "Ready")["status"] == "False"
    world.kubelet()
    world.reconcile()
    assert world.status["phase"] == "Healthy"
    assert world.status["canaryWeight"] == 0
    assert world.status["observedGeneration"] == 1
    assert {c["type"]: c["status"] for c in world.status["conditions"]} == {
        "Ready": "True",
        "Progressing": "False",
        "Degraded": "False",
    }
    assert world.apex_selector() == {"modelramp.dev/name": "md"}
    assert reasons(world) == ["Deploying", "Healthy"]


def test_canary_walks_its_steps_and_promotes() -> None:
    world = rolled_out(World(model_deployment(canary({"setWeight": 10}, {"setWeight": 70}), replicas=3)))
    world.reconcile()
    # The canary comes up before it takes traffic; stable keeps its pods meanwhile (maxSurge 25%).
    assert world.status["canaryWeight"] == 0
    assert world.replicas() == {"stable": 3, "canary": 1}
    world.kubelet()
    world.reconcile()
    # 1 of 3 pods (the minimum): the published weight is what the replicas give, not the 10 asked for.
    assert world.status["canaryWeight"] == 33
    assert world.status["currentStepIndex"] == 1
    assert world.replicas() == {"stable": 2, "canary": 2}
    world.kubelet()
    world.reconcile()
    # 70 of 3 pods: 2 pods (67 %), never 3 (100 %): the canary gets at most the share asked for.
    assert world.status["phase"] == "Promoting"
    assert world.status["canaryWeight"] == 67
    assert world.status["stableRevision"] == world.status["canaryRevision"]
    assert world.status["stableTemplate"]["model"]["uri"] == "models:/iris/2"
    world.kubelet()
    world.reconcile()
    assert world.status["phase"] == "Healthy"
    assert world.status["canaryWeight"] == 0
    assert "canaryRevision" not in world.status
    assert world.replicas() == {"stable": 3, "canary": 0}
    assert [e.message for e in world.events if e.reason == "WeightSet"] == [
        "step 1/2: canary weight 33% (1/3 pods)",
        "step 2/2: canary weight 67% (2/3 pods)",
    ]
    assert reasons(world)[-2:] == ["TrafficShifted", "Promoted"]


def test_replicas_change_resizes_without_a_rollout() -> None:
    world = World(model_deployment(canary({"setWeight": 50})))
    world.tick()
    world.set_spec("serving.replicas", 6)
    world.tick()
    assert world.replicas() == {"stable": 6, "canary": 0}
    assert "RolloutStarted" not in reasons(world)
    assert world.status["phase"] == "Healthy"


def test_timed_pause_counts_from_the_start_time_in_status() -> None:
    world = rolled_out(World(model_deployment(canary({"setWeight": 25}, {"pause": {"duration": "1m"}}))))
    world.tick(seconds=0)
    assert world.status["phase"] == "Paused"
    started = world.status["pauseConditions"][0]["startTime"]
    world.now += timedelta(seconds=59)
    world.tick(seconds=0)
    assert world.status["phase"] == "Paused"
    assert world.status["pauseConditions"][0]["startTime"] == started
    world.now += timedelta(seconds=1)
    world.tick(seconds=0)
    assert world.status["phase"] == "Healthy"


def test_requeue_after_points_at_the_end_of_a_pause() -> None:
    world = rolled_out(World(model_deployment(canary({"setWeight": 25}, {"pause": {"duration": "90s"}}))))
    out = world.tick(seconds=0)
    assert out.requeue_after == 90


def test_indefinite_pause_waits_for_promote() -> None:
    world = rolled_out(World(model_deployment(canary({"setWeight": 25}, {"pause": {}}, {"setWeight": 50}))))
    for _ in range(5):
        world.tick(seconds=3600)
    assert world.status["phase"] == "Paused"
    assert world.status["message"] == "waiting for promote at step 2/3"
    world.patch_status(promote=True)
    world.tick()
    assert world.status["phase"] == "Healthy"
    assert world.status["promote"] is False


def test_analysis_without_a_provider_fails_loudly_and_never_promotes() -> None:
    spec = model_deployment(canary({"setWeight": 25}, {"analysis": {}}), analysis={"metrics": [ERROR_RATE]})
    world = rolled_out(World(spec))
    for _ in range(5):
        world.tick(seconds=600)
    run = run_named(world, "Step")
    assert run["phase"] == "Error"
    assert "no metric provider configured" in run["message"]
    assert world.status["phase"] == "Paused"
    assert world.status["canaryRevision"] != world.status["stableRevision"]
    assert [e.type for e in world.events if e.reason == "AnalysisError"] == ["Warning"]


def analysed(*steps: dict[str, Any], on_failure: str = "Rollback") -> World:
    spec = model_deployment(
        canary(*steps), analysis={**PROMETHEUS, "metrics": [ERROR_RATE], "onFailure": on_failure}
    )
    world = rolled_out(World(spec))
    world.tick(seconds=30)
    return world


def test_successful_analysis_moves_on() -> None:
    world = analysed({"setWeight": 25}, {"analysis": {}}, {"setWeight": 50}, {"pause": {}})
    assert run_named(world, "Step")["phase"] == "Running"
    world.tick(seconds=30, measurements=measurements(world, "Inconclusive", "Step"))
    assert world.status["currentStepIndex"] == 1
    # A builtin's measurement judges the evidence pooled so far: one Successful decides it.
    world.tick(seconds=30, measurements=measurements(world, "Successful", "Step"))
    assert run_named(world, "Step")["phase"] == "Successful"
    assert world.status["message"] == "waiting for promote at step 4/4"
    assert len(world.status["measurements"]) == 2


def test_failed_analysis_rolls_back() -> None:
    world = analysed({"setWeight": 50}, {"analysis": {}})
    world.tick(measurements=measurements(world, "Failed", "Step", value=0.3))
    assert world.status["phase"] == "RolledBack"
    assert world.status["abort"] is True
    assert world.status["canaryWeight"] == 0
    assert world.replicas() == {"stable": 4, "canary": 0}
    degraded = condition(world, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "AnalysisFailed")
    assert "error-rate" in world.status["message"]
    assert [e.type for e in world.events if e.reason == "AnalysisFailed"] == ["Warning"]


def test_failed_analysis_pauses_when_asked_to() -> None:
    world = analysed({"setWeight": 50}, {"analysis": {}}, on_failure="Pause")
    world.tick(measurements=measurements(world, "Failed", "Step", value=0.3))
    assert world.status["phase"] == "Paused"
    assert world.status["pauseConditions"][0]["reason"] == "FailedAnalysis"
    assert world.status["canaryWeight"] == 50
    world.patch_status(promote=True)
    world.tick()
    assert world.status["phase"] == "Healthy"


@pytest.mark.parametrize("verdict", ["Inconclusive", "Error"])
def test_inconclusive_or_errored_analysis_pauses_never_promotes(verdict: Verdict) -> None:
    world = analysed({"setWeight": 50}, {"analysis": {}})
    for _ in range(6):
        world.tick(seconds=30, measurements=measurements(world, verdict, "Step"))
    assert world.status["phase"] == "Paused"
    assert world.status["pauseConditions"][0]["reason"] == "InconclusiveAnalysis"
    assert world.status["canaryRevision"] != world.status["stableRevision"]


def test_background_analysis_failure_rolls_back() -> None:
    spec = model_deployment(
        canary({"setWeight": 25}, {"pause": {}}, analysis={"startingStep": 1}),
        analysis={**PROMETHEUS, "metrics": [ERROR_RATE]},
    )
    world = rolled_out(World(spec))
    world.tick()
    assert run_named(world, "Background")["phase"] == "Running"
    world.tick(measurements=measurements(world, "Failed", "Background", value=0.2))
    assert world.status["phase"] == "RolledBack"


def test_new_revision_mid_rollout_restarts_and_never_inherits_analysis() -> None:
    world = analysed({"setWeight": 25}, {"analysis": {}}, {"pause": {}})
    old_run = run_named(world, "Step")
    stale = measurements(world, "Successful", "Step")
    world.set_spec("model.uri", "models:/iris/3")
    # A measurement taken for the old revision's run arrives after the change.
    world.tick(measurements=stale + stale)
    assert world.status["canaryModel"]["uri"] == "models:/iris/3"
    assert "RolloutRestarted" in reasons(world)
    new_run = run_named(world, "Step")
    assert new_run["name"] != old_run["name"]
    assert all(metric["count"] == 0 for metric in new_run["metrics"])
    assert world.status["currentStepIndex"] == 1


def test_spec_back_to_stable_cancels_cleanly() -> None:
    world = rolled_out(World(model_deployment(canary({"setWeight": 50}, {"pause": {}}))))
    world.tick()
    assert world.status["canaryWeight"] == 50
    world.set_spec("model.uri", "models:/iris/1")
    world.tick()
    assert world.status["phase"] == "Healthy"
    assert world.status["canaryWeight"] == 0
    assert world.replicas() == {"stable": 4, "canary": 0}
    assert "RolloutCancelled" in reasons(world)


def test_progress_deadline_rolls_back_pods_that_never_become_ready() -> None:
    world = rolled_out(World(model_deployment(canary({"setWeight": 50}), deadline=60)))
    world.broken.add("canary")
    world.tick(seconds=59)
    assert world.status["phase"] == "Progressing"
    assert world.status["message"].endswith("0/2 canary pods Ready")
    world.tick()  # 59 s after the rollout started
    assert world.status["phase"] == "Progressing"
    world.tick()
    assert world.status["phase"] == "RolledBack"
    degraded = condition(world, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ProgressDeadlineExceeded")
    assert [e.type for e in world.events if e.reason == "ProgressDeadlineExceeded"] == ["Warning"]
    assert world.replicas() == {"stable": 4, "canary": 0}


def test_abort_then_retry_restarts_from_the_first_step() -> None:
    world = rolled_out(World(model_deployment(canary({"setWeight": 25}, {"pause": {}}, {"setWeight": 75}))))
    world.tick()
    world.patch_status(abort=True)
    world.tick()
    assert world.status["phase"] == "Degraded"
    assert condition(world, "Degraded")["reason"] == "RolloutAborted"
    assert world.status["canaryWeight"] == 0
    assert world.replicas()["canary"] == 0
    for _ in range(3):
        world.tick(seconds=600)  # aborting a paused rollout must not loop
    assert world.status["phase"] == "Degraded"
    world.patch_status(abort=False)
    world.tick()
    assert "RolloutRetried" in reasons(world)
    assert world.status["currentStepIndex"] == 1
    assert world.status["phase"] == "Paused"
    assert world.status["canaryWeight"] == 25


def test_promote_after_a_rollback_continues_past_the_failed_step() -> None:
    world = analysed({"setWeight": 50}, {"analysis": {}}, {"pause": {}})
    world.tick(measurements=measurements(world, "Failed", "Step", value=0.3))
    assert world.status["phase"] == "RolledBack"
    world.patch_status(promote=True)
    world.tick()
    assert world.status["message"] == "waiting for promote at step 3/3"
    assert world.status["canaryWeight"] == 50


def test_promote_full_skips_every_remaining_step() -> None:
    world = analysed({"setWeight": 10}, {"analysis": {}}, {"pause": {}})
    world.patch_status(promoteFull=True)
    world.tick()
    assert world.status["phase"] == "Healthy"
    assert world.status["stableModel"]["uri"] == "models:/iris/2"


def test_spec_paused_holds_even_past_a_timed_pause() -> None:
    world = rolled_out(World(model_deployment(canary({"setWeight": 25}, {"pause": {"duration": "10s"}}))))
    world.tick()
    world.set_spec("paused", True)
    world.tick(seconds=3600)
    world.tick(seconds=3600)
    assert world.status["phase"] == "Paused"
    assert {c["reason"] for c in world.status["pauseConditions"]} >= {"UserPaused"}
    world.set_spec("paused", False)
    world.tick()
    assert world.status["phase"] == "Healthy"
    assert "Resumed" in reasons(world)


GATEWAY = {"gatewayAPI": {"httpRoute": "web"}}


def test_gateway_weights_follow_the_steps_on_the_users_route() -> None:
    world = World(
        model_deployment(canary({"setWeight": 20}, {"pause": {}}), routing=GATEWAY, replicas=5),
    ).add(httproute())
    world = rolled_out(world)
    world.tick()
    refs = world.route["spec"]["rules"][0]["backendRefs"]
    assert [(ref["name"], ref["weight"]) for ref in refs] == [("md-stable", 80), ("md-canary", 20)]
    assert world.route["spec"]["hostnames"] == ["models.example.com"]
    # Sized by weight; stable keeps every pod (no dynamicStableScale).
    assert world.replicas() == {"stable": 5, "canary": 1}
    assert world.status["canaryWeight"] == 20
    assert world.apex_selector() == {"modelramp.dev/name": "md", "modelramp.dev/track": "stable"}
    world.patch_status(promote=True)
    world.tick()
    world.tick()
    refs = world.route["spec"]["rules"][0]["backendRefs"]
    assert [ref["weight"] for ref in refs] == [100, 0]
    assert world.replicas() == {"stable": 5, "canary": 0}
    assert world.status["phase"] == "Healthy"


def test_gateway_canary_scales_down_only_after_the_route_moved_traffic_off_it() -> None:
    world = rolled_out(
        World(
            model_deployment(canary({"setWeight": 40}, {"pause": {}}), routing=GATEWAY, replicas=5),
        ).add(httproute())
    )
    world.tick()
    # The route is unreadable for a while: nothing may scale down meanwhile.
    world.unreadable[("HTTPRoute", "web")] = "HTTPRoute default/web could not be read: 503"
    world.patch_status(promote=True)
    world.tick()
    world.tick()
    assert world.status["phase"] == "Promoting"
    assert world.replicas()["canary"] == 2
    assert "RouteUnavailable" in reasons(world)
    del world.unreadable[("HTTPRoute", "web")]
    world.tick()
    world.tick()
    assert world.replicas() == {"stable": 5, "canary": 0}


def test_dynamic_stable_scale_shrinks_stable_after_the_route_shows_the_weight() -> None:
    world = rolled_out(
        World(
            model_deployment(
                canary({"setWeight": 60}, {"pause": {}}, dynamicStableScale=True), routing=GATEWAY, replicas=5
            ),
        ).add(httproute())
    )
    world.reconcile()
    assert world.replicas() == {"stable": 5, "canary": 3}
    world.kubelet()
    world.reconcile()  # weight published to the route; stable not yet shrunk
    assert world.replicas()["stable"] == 5
    world.reconcile()  # the route now shows 60%
    assert world.replicas() == {"stable": 2, "canary": 3}
    world.kubelet()
    world.patch_status(abort=True)
    world.reconcile()
    # Rolling back waits for stable to grow again before moving traffic back.
    assert world.replicas() == {"stable": 5, "canary": 3}
    assert world.status["canaryWeight"] == 60
    world.kubelet()
    world.reconcile()
    world.reconcile()
    assert world.status["canaryWeight"] == 0
    assert world.replicas() == {"stable": 5, "canary": 0}


def test_an_analysis_that_errored_is_measured_again_and_the_rollout_carries_on_by_itself() -> None:
    world = analysed({"setWeight": 25}, {"analysis": {}}, {"pause": {}})
    # Prometheus is down: consecutiveErrorLimit 4 lets the fifth error in a row end the run.
    for _ in range(5):
        world.tick(seconds=10, measurements=measurements(world, "Error", "Step"))
    assert run_named(world, "Step")["phase"] == "Error"
    assert world.status["phase"] == "Paused"
    assert world.status["canaryWeight"] == 25
    errored_at = world.now
    out = world.tick(seconds=0)
    assert out.requeue_after is not None and 0 < out.requeue_after <= 30  # the retry, one interval on
    world.tick(seconds=30)
    world.tick(seconds=0)
    retried = run_named(world, "Step")
    assert retried["phase"] == "Running" and retried["metrics"][0]["error"] == 0
    assert retried["startedAt"] > errored_at.isoformat()
    assert world.status["phase"] == "Paused"  # still paused until the retry decides
    # Prometheus is back.
    world.tick(seconds=30, measurements=measurements(world, "Successful", "Step"))
    world.tick(seconds=30, measurements=measurements(world, "Successful", "Step"))
    assert run_named(world, "Step")["phase"] == "Successful"
    assert world.status["currentStepIndex"] == 2
    assert [c["reason"] for c in world.status["pauseConditions"]] == ["CanaryPauseStep"]


def test_an_inconclusive_analysis_is_not_retried_it_waits_for_a_human() -> None:
    world = analysed({"setWeight": 25}, {"analysis": {}}, {"pause": {}})
    # A builtin undecided after its `count` (2) measurements ends Inconclusive.
    world.tick(seconds=30, measurements=measurements(world, "Inconclusive", "Step"))
    assert world.status["phase"] == "Progressing"
    world.tick(seconds=30, measurements=measurements(world, "Inconclusive", "Step"))
    assert world.status["phase"] == "Paused"
    for _ in range(5):
        world.tick(seconds=60)
    assert run_named(world, "Step")["phase"] == "Inconclusive"
    assert world.status["currentStepIndex"] == 1


def test_requeue_follows_the_analysis_schedule() -> None:
    world = analysed({"setWeight": 25}, {"analysis": {}}, {"pause": {}})
    # A builtin metric's first measurement waits one interval, for its window to fill with traffic.
    assert world.outputs[-1].requeue_after == 30
    out = world.tick(seconds=0, measurements=measurements(world, "Inconclusive", "Step"))
    assert out.requeue_after == 30  # the metric's interval


def test_measurements_are_counted_once_even_when_replayed() -> None:
    world = analysed({"setWeight": 25}, {"analysis": {}}, {"pause": {}})
    taken = measurements(world, "Successful", "Step")
    world.tick(seconds=0, measurements=taken)
    world.tick(seconds=0, measurements=taken)  # the glue re-sends after a restart
    metric = run_named(world, "Step")["metrics"][0]
    assert (metric["count"], metric["successful"]) == (1, 1)
    assert len(world.status["measurements"]) == 1


def test_a_long_failure_message_still_fits_the_status_schema() -> None:
    world = analysed({"setWeight": 50}, {"analysis": {}})
    failed = [m.model_copy(update={"message": "x" * 4096}) for m in measurements(world, "Failed", "Step")]
    world.tick(measurements=failed)
    assert world.status["phase"] == "RolledBack"
    assert len(run_named(world, "Step")["message"]) == 4096
