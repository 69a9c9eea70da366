"""Write-back: record a rollout's verdict on the registry version it rolled out.

Opt-in through `spec.model.registry.writeBack`. When a rollout is promoted the configured alias
(e.g. `production`) moves to the promoted version and the version is tagged
`modelramp.dev/rollout=promoted` with the ModelDeployment, the time and the user's tags; when
analysis rolls it back the version is tagged `rolled-back` with the failing metric and value.
A paused or aborted rollout writes nothing: an abort is a person's decision, not a verdict on
the model. `plan_write_back` decides from the status before and after a reconcile (pure); the
registry implementation does the writing.

A decided write-back is queued in `status.pendingWriteBacks` by the same status write as the
transition that decided it (`queue_write_back`), and leaves the queue only once the registry has
accepted it; a failed try is retried with the registry's backoff (`follow.next_poll_delay`). So a
registry that is down at the moment of promotion, or an operator restarted before the write,
delays the write-back but never loses it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict

from modelramp.operator.api.resource import ModelDeployment
from modelramp.operator.api.status import (
    Measurement,
    ModelDeploymentStatus,
    PendingWriteBack,
    ResolvedModel,
    WriteBackOutcome,
)
from modelramp.operator.registry.errors import InvalidModelUri
from modelramp.operator.registry.follow import next_poll_delay
from modelramp.operator.registry.uri import VersionRef, is_registry_uri, parse_registry_uri
from modelramp.operator.rollout.outcome import rollout_outcome

ROLLOUT_TAG: Final = "modelramp.dev/rollout"
DEPLOYMENT_TAG: Final = "modelramp.dev/modeldeployment"
TIME_TAG: Final = "modelramp.dev/time"
FAILED_METRIC_TAG: Final = "modelramp.dev/failed-metric"
FAILED_VALUE_TAG: Final = "modelramp.dev/failed-value"

MAX_PENDING: Final = 8


class WriteBackPlan(BaseModel):
    """What to write to the registry for one registered model version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    outcome: WriteBackOutcome
    alias: str | None = None
    tags: dict[str, str]


def plan_write_back(
    md: ModelDeployment, old: ModelDeploymentStatus, new: ModelDeploymentStatus, now: datetime
) -> WriteBackPlan | None:
    """What the transition from `old` to `new` status asks to write, or None.

    Promotion: the rollout ended with stable serving the canary's model. Rollback: the phase became
    RolledBack and a failed analysis of the canary's revision says which metric failed; without
    one the rollout was aborted by hand, which writes nothing.
    """
    registry = md.spec.model.registry
    if registry is None or registry.write_back is None:
        return None
    common = {
        DEPLOYMENT_TAG: f"{md.metadata.namespace}/{md.metadata.name}",
        TIME_TAG: now.astimezone(UTC).isoformat(timespec="seconds"),
    }
    outcome = rollout_outcome(old, new)
    if outcome == "promoted" and new.stable_model is not None:
        ref = _version_of(new.stable_model)
        if ref is None:
            return None
        tags = {**common, **registry.write_back.tags, ROLLOUT_TAG: "promoted"}
        return WriteBackPlan(
            name=ref.name,
            version=str(ref.version),
            outcome="promoted",
            alias=registry.write_back.alias,
            tags=tags,
        )
    failure = _rollback_cause(old, new) if outcome == "rolled-back" else None
    if failure is None or old.canary_model is None:
        return None
    ref = _version_of(old.canary_model)
    if ref is None:
        return None
    tags = {
        **common,
        ROLLOUT_TAG: "rolled-back",
        FAILED_METRIC_TAG: failure.metric,
        FAILED_VALUE_TAG: "no data" if failure.value is None else f"{failure.value:g}",
    }
    return WriteBackPlan(name=ref.name, version=str(ref.version), outcome="rolled-back", tags=tags)


def _rollback_cause(old: ModelDeploymentStatus, new: ModelDeploymentStatus) -> Measurement | None:
    failed_runs = {
        run.name
        for run in new.analysis_runs
        if run.phase == "Failed" and run.revision == (old.canary_revision or new.canary_revision)
    }
    failures = [m for m in new.measurements if m.verdict == "Failed" and m.analysis in failed_runs]
    return max(failures, key=lambda m: m.time, default=None)


def _version_of(model: ResolvedModel) -> VersionRef | None:
    # Only a registry pin can be written back; any other URI has no version to tag.
    if not is_registry_uri(model.resolved_uri):
        return None
    try:
        ref = parse_registry_uri(model.resolved_uri)
    except InvalidModelUri:
        return None
    return ref if isinstance(ref, VersionRef) else None


def queue_write_back(
    md: ModelDeployment, old: ModelDeploymentStatus, new: ModelDeploymentStatus, now: datetime
) -> ModelDeploymentStatus:
    """`new` with the write-back the transition from `old` decides (if any) queued, due at once. A
    verdict on a version replaces one on the same version still queued: only the latest is true."""
    plan = plan_write_back(md, old, new, now)
    if plan is None:
        return new
    entry = PendingWriteBack(
        name=plan.name,
        version=plan.version,
        outcome=plan.outcome,
        alias=plan.alias,
        tags=plan.tags,
        decided_at=now,
    )
    kept = [p for p in new.pending_write_backs if (p.name, p.version) != (plan.name, plan.version)]
    return new.model_copy(update={"pending_write_backs": [*kept, entry][-MAX_PENDING:]})


def plan_of(pending: PendingWriteBack) -> WriteBackPlan:
    return WriteBackPlan(
        name=pending.name,
        version=pending.version,
        outcome=pending.outcome,
        alias=pending.alias,
        tags=pending.tags,
    )


def is_due(pending: PendingWriteBack, now: datetime) -> bool:
    return pending.next_attempt_time is None or pending.next_attempt_time <= now


def failed_attempt(pending: PendingWriteBack, error: str, now: datetime) -> PendingWriteBack:
    """`pending` after a try the registry did not accept: tried again after the backoff."""
    attempts = pending.attempts + 1
    return pending.model_copy(
        update={
            "attempts": attempts,
            "next_attempt_time": now + timedelta(seconds=next_poll_delay(attempts)),
            "last_error": error[:4096],
        }
    )


def seconds_until_due(status: ModelDeploymentStatus, now: datetime) -> float | None:
    """When the next queued write-back is due (0 when one is due now); None when none is queued."""
    waits = [
        0.0 if p.next_attempt_time is None else max((p.next_attempt_time - now).total_seconds(), 0.0)
        for p in status.pending_write_backs
    ]
    return min(waits, default=None)
