"""What a rollout's outcome writes back to the registry (pure): promote, rollback, nothing else; and
the queue in status that keeps a write-back until the registry accepts it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelramp.operator.api import ModelDeployment, to_wire
from modelramp.operator.api.status import AnalysisRunStatus, Measurement, ModelDeploymentStatus, ResolvedModel
from modelramp.operator.registry import WriteBackPlan, plan_write_back
from modelramp.operator.registry.writeback import (
    failed_attempt,
    is_due,
    plan_of,
    queue_write_back,
    seconds_until_due,
)

NOW = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)
URI = "models:/fraud@champion"
V6 = ResolvedModel(uri=URI, resolved_uri="models:/fraud/6", version="6")
V7 = ResolvedModel(uri=URI, resolved_uri="models:/fraud/7", version="7")


def deployment(write_back: dict[str, object] | None = None) -> ModelDeployment:
    model: dict[str, object] = {"uri": URI, "format": "mlflow"}
    if write_back is not None:
        model["registry"] = {"trackingUri": "http://mlflow:5000", "writeBack": write_back}
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "fraud", "namespace": "risk"},
            "spec": {"model": model, "strategy": {"canary": {"steps": [{"setWeight": 20}]}}},
        }
    )


WRITE_BACK = deployment({"alias": "production", "tags": {"team": "risk"}})
ROLLING = ModelDeploymentStatus(phase="Progressing", stable_model=V6, canary_model=V7, canary_revision="r7")


def failed_run(*measurements: Measurement) -> ModelDeploymentStatus:
    run = AnalysisRunStatus(name="step-1", kind="Step", revision="r7", phase="Failed")
    return ROLLING.model_copy(
        update={
            "phase": "RolledBack",
            "abort": True,
            "analysis_runs": [run],
            "measurements": list(measurements),
        }
    )


def measurement(verdict: str, value: float | None, seconds: int, metric: str = "error-rate") -> Measurement:
    return Measurement.model_validate(
        {
            "metric": metric,
            "analysis": "step-1",
            "value": value,
            "verdict": verdict,
            "time": NOW - timedelta(seconds=seconds),
        }
    )


def test_promotion_moves_the_alias_and_tags_the_version() -> None:
    promoting = ROLLING.model_copy(update={"phase": "Promoting", "stable_model": V7})
    promoted = ModelDeploymentStatus(phase="Healthy", stable_model=V7)
    assert plan_write_back(WRITE_BACK, promoting, promoted, NOW) == WriteBackPlan(
        name="fraud",
        version="7",
        outcome="promoted",
        alias="production",
        tags={
            "modelramp.dev/modeldeployment": "risk/fraud",
            "modelramp.dev/time": "2026-05-09T12:00:00+00:00",
            "team": "risk",
            "modelramp.dev/rollout": "promoted",
        },
    )


def test_rollback_tags_the_canary_with_the_latest_failing_metric() -> None:
    rolled_back = failed_run(
        measurement("Failed", 0.3, 30, metric="latency-p99"),
        measurement("Successful", 0.01, 20),
        measurement("Failed", 0.21, 10),
    )
    plan = plan_write_back(WRITE_BACK, ROLLING, rolled_back, NOW)
    assert plan is not None
    assert (plan.name, plan.version, plan.outcome, plan.alias) == ("fraud", "7", "rolled-back", None)
    assert plan.tags["modelramp.dev/rollout"] == "rolled-back"
    assert (plan.tags["modelramp.dev/failed-metric"], plan.tags["modelramp.dev/failed-value"]) == (
        "error-rate",
        "0.21",
    )
    assert "team" not in plan.tags


def test_a_failure_without_a_value_says_so() -> None:
    plan = plan_write_back(WRITE_BACK, ROLLING, failed_run(measurement("Failed", None, 1)), NOW)
    assert plan is not None and plan.tags["modelramp.dev/failed-value"] == "no data"


@pytest.mark.parametrize(
    ("md", "old", "new"),
    [
        # Write-back not configured.
        (deployment(), ROLLING, ModelDeploymentStatus(phase="Healthy", stable_model=V7)),
        # Paused: nothing changed hands.
        (WRITE_BACK, ROLLING, ROLLING.model_copy(update={"phase": "Paused"})),
        # Aborted by hand: RolledBack, but no failed analysis.
        (WRITE_BACK, ROLLING, ROLLING.model_copy(update={"phase": "RolledBack", "abort": True})),
        # Already rolled back last tick: written then, not again.
        (WRITE_BACK, failed_run(measurement("Failed", 0.2, 1)), failed_run(measurement("Failed", 0.2, 1))),
        # Promotion begun: stable takes the template, the rollout hasn't ended.
        (
            WRITE_BACK,
            ROLLING,
            ROLLING.model_copy(update={"phase": "Promoting", "stable_model": V7}),
        ),
        # Already promoted last tick.
        (
            WRITE_BACK,
            ModelDeploymentStatus(phase="Healthy", stable_model=V7),
            ModelDeploymentStatus(phase="Healthy", stable_model=V7),
        ),
        # Cancelled: the spec went back to stable's model.
        (WRITE_BACK, ROLLING, ModelDeploymentStatus(phase="Healthy", stable_model=V6)),
        # A first deployment is no promotion.
        (WRITE_BACK, ModelDeploymentStatus(), ModelDeploymentStatus(phase="Healthy", stable_model=V7)),
        # Not a registry version: nothing to tag.
        (
            WRITE_BACK,
            ROLLING.model_copy(update={"canary_model": ResolvedModel(uri=URI, resolved_uri="s3://b/m.pt")}),
            ModelDeploymentStatus(
                phase="Healthy", stable_model=ResolvedModel(uri=URI, resolved_uri="s3://b/m.pt")
            ),
        ),
    ],
)
def test_nothing_is_written_otherwise(
    md: ModelDeployment, old: ModelDeploymentStatus, new: ModelDeploymentStatus
) -> None:
    assert plan_write_back(md, old, new, NOW) is None


# --- the queue in status.pendingWriteBacks ----------------------------------------------------------

PROMOTING = ROLLING.model_copy(update={"phase": "Promoting", "stable_model": V7})
PROMOTED = ModelDeploymentStatus(phase="Healthy", stable_model=V7)


def test_a_verdict_is_queued_with_the_transition_due_at_once() -> None:
    queued = queue_write_back(WRITE_BACK, PROMOTING, PROMOTED, NOW)
    (pending,) = queued.pending_write_backs
    plan = plan_write_back(WRITE_BACK, PROMOTING, PROMOTED, NOW)
    assert plan is not None and plan_of(pending) == plan
    assert (pending.attempts, pending.next_attempt_time, pending.decided_at) == (0, None, NOW)
    assert is_due(pending, NOW) and seconds_until_due(queued, NOW) == 0.0
    # The rest of the status is the engine's, untouched.
    assert queued.model_copy(update={"pending_write_backs": []}) == PROMOTED


def test_no_verdict_queues_nothing() -> None:
    paused = ROLLING.model_copy(update={"phase": "Paused"})
    assert queue_write_back(WRITE_BACK, ROLLING, paused, NOW) is paused
    assert seconds_until_due(paused, NOW) is None


def test_a_later_verdict_on_the_same_version_replaces_the_queued_one() -> None:
    promoted = queue_write_back(WRITE_BACK, PROMOTING, PROMOTED, NOW)
    rolling_again = ROLLING.model_copy(update={"pending_write_backs": promoted.pending_write_backs})
    rolled_back = failed_run(measurement("Failed", 0.2, 1)).model_copy(
        update={"pending_write_backs": promoted.pending_write_backs}
    )
    (pending,) = queue_write_back(WRITE_BACK, rolling_again, rolled_back, NOW).pending_write_backs
    assert (pending.version, pending.outcome) == ("7", "rolled-back")


def test_failed_tries_back_off_and_keep_the_error() -> None:
    (pending,) = queue_write_back(WRITE_BACK, PROMOTING, PROMOTED, NOW).pending_write_backs
    delays = []
    for attempt in range(1, 8):
        pending = failed_attempt(pending, f"down ({attempt})", NOW)
        assert pending.next_attempt_time is not None
        delays.append((pending.next_attempt_time - NOW).total_seconds())
        assert not is_due(pending, NOW) and is_due(pending, pending.next_attempt_time)
    assert delays == [5, 10, 20, 40, 80, 160, 300]
    assert (pending.attempts, pending.last_error) == (7, "down (7)")
    status = PROMOTED.model_copy(update={"pending_write_backs": [pending]})
    assert seconds_until_due(status, NOW) == 300
    assert seconds_until_due(status, NOW + timedelta(seconds=400)) == 0


def test_the_queue_survives_the_api_round_trip() -> None:
    queued = queue_write_back(WRITE_BACK, PROMOTING, PROMOTED, NOW)
    (pending,) = queued.pending_write_backs
    retried = queued.model_copy(update={"pending_write_backs": [failed_attempt(pending, "503", NOW)]})
    assert ModelDeploymentStatus.model_validate(to_wire(retried)) == retried
