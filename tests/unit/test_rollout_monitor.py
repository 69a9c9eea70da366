"""spec.monitor through the pure engine: runs on stable all the time, sets and clears Drifted,
never touches traffic, follows the stable revision."""

from __future__ import annotations

from typing import Any

from support.rollout_world import PROMETHEUS, World, model_deployment

from modelramp.operator.api.status import FeatureScore, Measurement, Verdict
from modelramp.operator.api.status import TestOutcome as Outcome

INPUT_DRIFT = {"name": "inputs", "builtin": "input-drift", "threshold": 0.25, "interval": "1m", "count": 3}


def monitored(**options: Any) -> World:
    md = model_deployment({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}, analysis=PROMETHEUS)
    md["spec"]["monitor"] = {"metrics": [{**INPUT_DRIFT, **options}]}
    world = World(md)
    world.tick()
    return world


def drift_measurement(world: World, verdict: Verdict, worst: str = "age") -> Measurement:
    run = world.status["monitor"]
    test = Outcome(
        test="chi-square",
        p_value=1e-6 if verdict == "Failed" else 0.5,
        alpha=0.003,
        alpha_spent=0.003,
        effect="largest PSI",
        value=0.6 if verdict == "Failed" else 0.01,
        confidence=0.9,
        bound=0.25,
        canary_samples=500,
        stable_samples=5000,
        decision="Worse" if verdict == "Failed" else "WithinBound",
        worst_features=[FeatureScore(name=worst, psi=0.6, p_value=1e-6)],
    )
    return Measurement(
        metric="inputs",
        analysis=run["name"],
        verdict=verdict,
        time=world.now,
        value=test.value,
        message=f"inputs: {verdict}; worst: {worst}",
        test=test,
    )


def condition(world: World, kind: str) -> dict[str, Any] | None:
    return next((c for c in world.status["conditions"] if c["type"] == kind), None)


def reasons(world: World) -> list[str]:
    return [event.reason for event in world.events]


def test_a_monitor_runs_on_the_stable_revision_and_is_unknown_until_it_decides() -> None:
    world = monitored()
    run = world.status["monitor"]
    assert run["kind"] == "Monitor"
    assert run["revision"] == world.status["stableRevision"]
    assert run["name"] == f"monitor-{world.status['stableRevision']}"
    assert run["phase"] == "Running"
    drifted = condition(world, "Drifted")
    assert drifted is not None
    assert (drifted["status"], drifted["reason"]) == ("Unknown", "NotYetDecided")
    assert world.status["phase"] == "Healthy"


def test_without_a_monitor_there_is_no_run_and_no_drifted_condition() -> None:
    world = World(model_deployment({"canary": {"steps": [{"setWeight": 50}]}}, analysis=PROMETHEUS))
    world.tick()
    assert "monitor" not in world.status
    assert condition(world, "Drifted") is None


def test_a_failed_run_sets_drifted_names_the_feature_and_leaves_traffic_alone() -> None:
    world = monitored()
    world.tick(seconds=60)
    world.tick(measurements=[drift_measurement(world, "Failed", worst="income")])
    drifted = condition(world, "Drifted")
    assert drifted is not None
    assert (drifted["status"], drifted["reason"]) == ("True", "InputDrifted")
    assert "income" in drifted["message"]
    assert world.status["drift"]["drifted"] is True
    assert world.status["drift"]["worstFeatures"][0]["name"] == "income"
    assert reasons(world).count("InputDrifted") == 1
    # Healthy, full traffic on stable, no rollback: a monitor only reports.
    assert world.status["phase"] == "Healthy"
    assert world.status["canaryWeight"] == 0
    assert not world.status.get("abort", False)
    assert world.status["monitor"]["phase"] == "Failed"


def test_the_next_run_starts_at_the_end_of_the_period_and_a_success_clears_drifted() -> None:
    world = monitored()
    started = world.status["monitor"]["startedAt"]
    world.tick(seconds=60)
    world.tick(measurements=[drift_measurement(world, "Failed")])
    # Period = initialDelay (one interval) + count x interval = 4 minutes from the run's start.
    world.tick(seconds=60)
    assert world.status["monitor"]["phase"] == "Failed"
    world.tick(seconds=180)
    world.tick()
    run = world.status["monitor"]
    assert run["phase"] == "Running"
    assert run["startedAt"] != started
    assert condition(world, "Drifted")["status"] == "True"  # type: ignore[index]
    world.tick(seconds=60)
    world.tick(measurements=[drift_measurement(world, "Successful")])
    drifted = condition(world, "Drifted")
    assert drifted is not None
    assert (drifted["status"], drifted["reason"]) == ("False", "WithinReference")
    assert reasons(world).count("InputDriftCleared") == 1
    assert reasons(world).count("InputDrifted") == 1


def test_the_requeue_wakes_the_operator_for_the_next_run() -> None:
    world = monitored()
    world.tick(seconds=60)
    out = world.tick(measurements=[drift_measurement(world, "Failed")])
    assert out.requeue_after is not None
    assert 0 < out.requeue_after <= 180


def test_a_new_stable_revision_gets_its_own_run() -> None:
    world = monitored()
    first = world.status["monitor"]["name"]
    world.set_spec("model.uri", "models:/iris/2")
    world.tick()
    # The rollout pauses at its step; the monitor still watches the old stable.
    assert world.status["monitor"]["name"] == first
    world.patch_status(promoteFull=True)
    for _ in range(5):
        world.tick()
    assert world.status["stableRevision"] != first.removeprefix("monitor-")
    assert world.status["monitor"]["name"] == f"monitor-{world.status['stableRevision']}"


def test_removing_the_monitor_removes_its_run_and_condition() -> None:
    world = monitored()
    world.tick(seconds=60)
    world.tick(measurements=[drift_measurement(world, "Failed")])
    del world.md["spec"]["monitor"]
    world.md["metadata"]["generation"] += 1
    world.tick()
    assert "monitor" not in world.status
    assert "drift" not in world.status
    assert condition(world, "Drifted") is None


def test_a_monitor_without_prometheus_says_why() -> None:
    md = model_deployment({"canary": {"steps": [{"setWeight": 50}]}})
    md["spec"]["monitor"] = {"metrics": [INPUT_DRIFT]}
    world = World(md)
    world.tick()
    drifted = condition(world, "Drifted")
    assert drifted is not None
    assert (drifted["status"], drifted["reason"]) == ("Unknown", "MonitorError")
    assert "no metric provider" in drifted["message"]
