"""Fast rollback (spec.rollbackWindow, like Argo Rollouts' rollbackWindow) through the pure engine:
going back to a revision that was stable within the window makes it stable at once, without steps
or analysis, with a FastRollback event; any other revision rolls out through the strategy, and
status.stableHistory keeps the previous stable revisions, each once, newest last, bounded."""

from __future__ import annotations

from typing import Any

from support.rollout_world import PROMETHEUS, World, measurements, model_deployment

from modelramp.operator.api.status import MAX_STABLE_HISTORY
from modelramp.operator.rollout.model import ReconcileOutput

ERROR_RATE = {"name": "error-rate", "builtin": "error-rate", "threshold": 0.05, "interval": "30s", "count": 1}
CANARY = {"canary": {"steps": [{"setWeight": 25}, {"analysis": {}}, {"pause": {}}]}}
BLUE_GREEN = {
    "blueGreen": {"prePromotionAnalysis": {}, "postPromotionAnalysis": {}, "scaleDownDelaySeconds": 600}
}


def deployed(strategy: dict[str, Any], window: int | None) -> World:
    """A Healthy world on models:/iris/1 with `rollbackWindow.revisions: window` (None: unset)."""
    spec = model_deployment(strategy, analysis={**PROMETHEUS, "metrics": [ERROR_RATE]})
    if window is not None:
        spec["spec"]["rollbackWindow"] = {"revisions": window}
    world = World(spec)
    world.tick()
    assert world.status["phase"] == "Healthy"
    return world


def walked(world: World, uri: str) -> str:
    """`uri` rolled out through every canary step (the analysis passes, the pause is promoted);
    the revision that is stable now."""
    world.set_spec("model.uri", uri)
    world.tick(seconds=30)
    world.tick(seconds=30, measurements=measurements(world, "Successful", "Step"))
    assert world.status["phase"] == "Paused"
    world.patch_status(promote=True)
    world.tick()
    return stable(world, uri)


def promoted_fully(world: World, uri: str) -> str:
    """`uri` started and promoted with `promote --full`; the revision that is stable now."""
    world.set_spec("model.uri", uri)
    world.tick()
    world.patch_status(promoteFull=True)
    world.tick()
    return stable(world, uri)


def stable(world: World, uri: str) -> str:
    assert world.status["phase"] == "Healthy"
    assert world.status["stableModel"]["uri"] == uri
    revision: str = world.status["stableRevision"]
    return revision


def back_to(world: World, uri: str) -> tuple[list[str], list[ReconcileOutput]]:
    """The spec set to `uri`, one tick: the events and the outputs since the change."""
    events, outputs = len(world.events), len(world.outputs)
    world.set_spec("model.uri", uri)
    world.tick()
    return [event.reason for event in world.events[events:]], world.outputs[outputs:]


def history(world: World) -> list[str]:
    revisions: list[str] = world.status.get("stableHistory", [])
    return revisions


def canary_pods(out: ReconcileOutput) -> int:
    deployment = next(
        m for m in out.apply if m["kind"] == "Deployment" and m["metadata"]["name"] == "md-canary"
    )
    pods: int = deployment["spec"]["replicas"]
    return pods


def test_canary_back_to_the_previous_stable_skips_steps_and_analysis() -> None:
    world = deployed(CANARY, window=1)
    first = world.status["stableRevision"]
    walked(world, "models:/iris/2")
    assert history(world) == [first]
    reasons, outputs = back_to(world, "models:/iris/1")
    assert stable(world, "models:/iris/1") == first
    assert reasons == ["FastRollback", "Promoting", "Promoted"]
    message = next(e.message for e in world.events if e.reason == "FastRollback")
    assert message == (
        f"revision {first} is within rollbackWindow (was stable 1 revision ago): skipping steps and analysis"
    )
    assert next(e.type for e in world.events if e.reason == "FastRollback") == "Normal"
    # Straight to it: the canary never gets a pod or a share of traffic, no analysis ever starts.
    assert all(out.status.canary_weight == 0 and not out.status.last_set_weight for out in outputs)
    assert all(canary_pods(out) == 0 and not out.status.analysis_runs for out in outputs)
    assert world.replicas() == {"stable": 4, "canary": 0}


def test_blue_green_back_to_the_previous_stable_skips_both_analyses_and_the_delay() -> None:
    world = deployed(BLUE_GREEN, window=1)
    first = world.status["stableRevision"]
    promoted_fully(world, "models:/iris/2")
    reasons, outputs = back_to(world, "models:/iris/1")
    assert stable(world, "models:/iris/1") == first
    assert reasons[0] == "FastRollback"
    assert {"Switched", "Promoted"} <= set(reasons)
    assert "Paused" not in reasons
    assert all(not out.status.analysis_runs for out in outputs)
    # Promoted in the same tick, not after scaleDownDelaySeconds: the old side is gone at once.
    assert world.replicas() == {"stable": 4, "canary": 0}


def test_without_a_window_going_back_rolls_out_through_the_steps() -> None:
    world = deployed(CANARY, window=None)
    first = world.status["stableRevision"]
    walked(world, "models:/iris/2")
    assert history(world) == [first]
    reasons, _ = back_to(world, "models:/iris/1")
    assert "FastRollback" not in reasons
    assert reasons[0] == "RolloutStarted"
    assert world.status["phase"] == "Progressing"
    assert world.status["canaryRevision"] == first
    assert world.status["canaryWeight"] == 25
    assert [run["kind"] for run in world.status["analysisRuns"]] == ["Step"]


def test_a_revision_outside_the_window_rolls_out_through_the_steps() -> None:
    world = deployed(CANARY, window=2)
    walked(world, "models:/iris/2")
    walked(world, "models:/iris/3")
    walked(world, "models:/iris/4")
    reasons, _ = back_to(world, "models:/iris/1")  # stable 3 revisions ago
    assert "FastRollback" not in reasons
    assert world.status["phase"] == "Progressing"
    assert world.status["canaryWeight"] == 25


def test_a_window_of_one_covers_only_the_stable_just_before() -> None:
    world = deployed(CANARY, window=1)
    second = walked(world, "models:/iris/2")
    promoted_fully(world, "models:/iris/3")
    reasons, _ = back_to(world, "models:/iris/1")  # stable 2 revisions ago
    assert reasons[0] == "RolloutStarted"
    reasons, _ = back_to(world, "models:/iris/2")  # mid-rollout of iris/1: iris/2 is still 1 ago
    assert reasons[0] == "FastRollback"
    assert stable(world, "models:/iris/2") == second


def test_wider_window_names_how_long_ago() -> None:
    world = deployed(CANARY, window=3)
    first = world.status["stableRevision"]
    promoted_fully(world, "models:/iris/2")
    promoted_fully(world, "models:/iris/3")
    back_to(world, "models:/iris/1")
    message = next(e.message for e in world.events if e.reason == "FastRollback")
    assert message.startswith(f"revision {first} is within rollbackWindow (was stable 2 revisions ago)")


def test_history_is_bounded_and_each_revision_is_in_it_once() -> None:
    world = deployed(CANARY, window=10)
    revisions = [world.status["stableRevision"]]
    for version in range(2, MAX_STABLE_HISTORY + 4):
        revisions.append(promoted_fully(world, f"models:/iris/{version}"))
    # Everything but the current stable, newest last, the oldest ones dropped.
    assert history(world) == revisions[:-1][-MAX_STABLE_HISTORY:]
    current, previous = revisions[-1], revisions[-2]
    # Back and forth between two revisions: each goes out of the history as it becomes stable.
    reasons, _ = back_to(world, f"models:/iris/{MAX_STABLE_HISTORY + 2}")
    assert reasons[0] == "FastRollback"
    assert history(world) == [*revisions[:-2][-(MAX_STABLE_HISTORY - 1) :], current]
    back_to(world, f"models:/iris/{MAX_STABLE_HISTORY + 3}")
    assert history(world) == [*revisions[:-2][-(MAX_STABLE_HISTORY - 1) :], previous]
    assert len(set(history(world))) == len(history(world)) == MAX_STABLE_HISTORY


def test_a_rolled_back_revision_never_enters_the_history() -> None:
    world = deployed(CANARY, window=3)
    first = world.status["stableRevision"]
    world.set_spec("model.uri", "models:/iris/2")
    world.tick(seconds=30)
    world.tick(measurements=measurements(world, "Failed", "Step", value=0.3))
    assert world.status["phase"] == "RolledBack"
    assert history(world) == []
    promoted_fully(world, "models:/iris/3")
    assert history(world) == [first]
    reasons, _ = back_to(world, "models:/iris/2")
    assert "FastRollback" not in reasons
    assert world.status["phase"] == "Progressing"
