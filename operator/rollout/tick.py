"""One reconcile tick's fixed inputs, and the value every transition returns.

A `Tick` is everything `reconcile` was given plus what follows from the spec alone (the desired
revision, the traffic router and what it read); transitions are pure functions
`(Tick, status) -> Transition | None`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from typing_extensions import Unpack

from modelramp.operator.api.abtest import ABTestStatus, ABTestStrategy, ABWindow
from modelramp.operator.api.resource import ModelDeployment
from modelramp.operator.api.spec import BlueGreenStrategy, CanaryStep, CanaryStrategy, ModelDeploymentSpec
from modelramp.operator.api.status import (
    AnalysisRunStatus,
    BlueGreenStatus,
    Condition,
    DriftStatus,
    Measurement,
    ModelDeploymentStatus,
    PauseCondition,
    PauseReason,
    PendingWriteBack,
    Phase,
    ResolvedModel,
    RevisionTemplate,
)
from modelramp.operator.rollout.model import EngineConfig, EventRecord, Observed, ObservedDeployment, Track
from modelramp.operator.routers.base import Reads, TrafficRouter


@dataclass(frozen=True)
class Tick:
    md: ModelDeployment
    observed: Observed
    measurements: tuple[Measurement, ...]
    now: datetime
    config: EngineConfig
    desired: RevisionTemplate
    desired_revision: str
    # What the desired template's URI resolved to, recorded in status with its lineage.
    desired_model: ResolvedModel
    router: TrafficRouter
    reads: Reads
    # This tick's windows of the A/B test's decision metric (spec.strategy.abTest).
    ab_windows: tuple[ABWindow, ...] = ()

    @property
    def spec(self) -> ModelDeploymentSpec:
        return self.md.spec

    @property
    def generation(self) -> int | None:
        return self.md.metadata.generation

    @property
    def total(self) -> int:
        """Pods at full traffic (spec.serving.replicas)."""
        return self.spec.serving.replicas

    @property
    def canary_strategy(self) -> CanaryStrategy | None:
        return self.spec.strategy.canary

    @property
    def blue_green(self) -> BlueGreenStrategy | None:
        return self.spec.strategy.blue_green

    @property
    def ab_test(self) -> ABTestStrategy | None:
        return self.spec.strategy.ab_test

    @property
    def steps(self) -> list[CanaryStep]:
        return self.canary_strategy.steps if self.canary_strategy else []

    def deployment(self, track: Track) -> ObservedDeployment | None:
        return self.observed.deployments.get(track)

    def has_ready(self, track: Track, revision: str | None, replicas: int) -> bool:
        """At least `replicas` Ready pods of `revision` in the track (trivially true for 0)."""
        if replicas == 0:
            return True
        observed = self.deployment(track)
        return observed is not None and revision is not None and observed.has_ready(revision, replicas)

    def ready_pods(self, track: Track, revision: str | None) -> int:
        observed = self.deployment(track)
        if observed is None or observed.revision != revision:
            return 0
        return min(observed.ready_replicas, observed.updated_replicas)

    def deadline(self, status: ModelDeploymentStatus) -> datetime | None:
        """When waiting for pods turns into a failure (progressDeadlineSeconds)."""
        if status.last_progress_time is None:
            return None
        return status.last_progress_time + timedelta(seconds=self.spec.progress_deadline_seconds)

    def past_deadline(self, status: ModelDeploymentStatus) -> bool:
        deadline = self.deadline(status)
        return deadline is not None and self.now >= deadline


@dataclass(frozen=True)
class Transition:
    """A new status and the events that announce the change."""

    status: ModelDeploymentStatus
    events: tuple[EventRecord, ...] = ()


class StatusUpdate(TypedDict, total=False):
    """The fields of ModelDeploymentStatus a transition may set, with their types: a misspelt
    name or a wrong type fails type checking (`model_copy(update=...)` would drop it silently).
    tests/unit/test_rollout_typed_updates.py keeps it equal to the model."""

    observed_generation: int | None
    phase: Phase | None
    message: str | None
    stable_revision: str | None
    canary_revision: str | None
    stable_history: list[str]
    stable_model: ResolvedModel | None
    canary_model: ResolvedModel | None
    current_step_index: int | None
    step_start_time: datetime | None
    canary_weight: int
    last_set_weight: int | None
    pause_conditions: list[PauseCondition]
    abort: bool
    aborted_at: datetime | None
    promote: bool
    promote_full: bool
    blue_green: BlueGreenStatus | None
    stable_template: RevisionTemplate | None
    rollout_start_time: datetime | None
    last_progress_time: datetime | None
    analysis_runs: list[AnalysisRunStatus]
    measurements: list[Measurement]
    replicas: int
    ready_replicas: int
    selector: str | None
    conditions: list[Condition]
    monitor: AnalysisRunStatus | None
    drift: DriftStatus | None
    ab_test: ABTestStatus | None
    pending_write_backs: list[PendingWriteBack]


def updated(status: ModelDeploymentStatus, **updates: Unpack[StatusUpdate]) -> ModelDeploymentStatus:
    """`status` with `updates` applied; the names and types are checked by mypy."""
    return status.model_copy(update=dict(updates))


def changed(
    status: ModelDeploymentStatus, *events: EventRecord, **updates: Unpack[StatusUpdate]
) -> Transition:
    """`status` with `updates` applied, announced by `events`."""
    return Transition(updated(status, **updates), events)


def normal(reason: str, message: str) -> EventRecord:
    return EventRecord(type="Normal", reason=reason, message=message[:1024])


def warning(reason: str, message: str) -> EventRecord:
    return EventRecord(type="Warning", reason=reason, message=message[:1024])


def pause_reasons(status: ModelDeploymentStatus) -> set[PauseReason]:
    return {condition.reason for condition in status.pause_conditions}


def rollout_active(tick: Tick, status: ModelDeploymentStatus) -> bool:
    """A rollout of the desired revision is under way and neither aborted nor promoting."""
    return (
        status.canary_revision == tick.desired_revision
        and status.canary_revision != status.stable_revision
        and not status.abort
        and status.aborted_at is None
    )


def promoting(status: ModelDeploymentStatus) -> bool:
    """Stable has taken the canary's template; the canary still runs until stable is Ready."""
    return status.canary_revision is not None and status.canary_revision == status.stable_revision


def canary_track_revision(status: ModelDeploymentStatus) -> str | None:
    """The revision the canary Deployment runs: the rollout's, else stable's (scaled to 0)."""
    return status.canary_revision or status.stable_revision
