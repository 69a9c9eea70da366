"""What goes into and comes out of `reconcile`: the boundary between the pure rollout engine and
the kopf glue that observes the cluster and applies the engine's decisions.

The glue builds a `ReconcileInput` (the ModelDeployment as read, what it observed of the owned
Deployments and of the objects the traffic router reads, the measurements it took this tick, the
time) and gets back a `ReconcileOutput` (complete manifests to server-side apply, the router's
writes, objects to delete, the complete new status, events, when to run again). Nothing here does
I/O.

Manual controls read by the engine (GitOps-safe, as Argo Rollouts: one-shot requests live in the
status subresource, which Argo CD never diffs): `status.abort` (abort; a rollback sets it too),
clearing `status.abort` after an abort or a rollback (retry: restart from the first step),
`status.promoteFull` (skip to the end), `status.promote` (end the current pause or step) and
`spec.paused` (pause/resume). The glue writes only the status fields that differ from the status
it read (or replaces it with the resourceVersion it read), so a request a user makes meanwhile is
never overwritten.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelramp.operator.api.abtest import ABWindow
from modelramp.operator.api.resource import ModelDeployment
from modelramp.operator.api.status import Measurement, ModelDeploymentStatus, ResolvedModel
from modelramp.operator.routers.base import ObjectRef, RoutingRead, RoutingWrite

Track = Literal["stable", "canary"]
EventType = Literal["Normal", "Warning"]

FIELD_MANAGER = "modelramp"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObservedDeployment(_Frozen):
    """One owned Deployment as the API server reports it (`<name>-stable` or `<name>-canary`)."""

    name: str
    # `variant`: an A/B challenger's own Deployment (`<name>-<variant>`).
    track: Track | Literal["variant"]
    revision: str | None = Field(default=None, description="pod template label modelramp.dev/revision")
    spec_replicas: int = Field(default=0, ge=0)
    ready_replicas: int = Field(default=0, ge=0)
    updated_replicas: int = Field(default=0, ge=0)
    available_replicas: int = Field(default=0, ge=0)
    generation: int | None = None
    observed_generation: int | None = None

    def has_ready(self, revision: str, replicas: int) -> bool:
        """True when at least `replicas` pods of `revision` are up to date and Ready, counted by a
        controller that has seen the Deployment's latest spec (else the counts are stale)."""
        caught_up = self.generation is None or (
            self.observed_generation is not None and self.observed_generation >= self.generation
        )
        return (
            caught_up
            and self.revision == revision
            and min(self.updated_replicas, self.ready_replicas) >= replicas
        )


class Observed(_Frozen):
    """What the glue saw of the cluster this tick."""

    deployments: dict[Track, ObservedDeployment] = Field(
        default_factory=dict, description="owned Deployments by track; a missing key means absent"
    )
    routing: list[RoutingRead] = Field(
        default_factory=list, description="the objects the traffic router asked for (`reads`), as read"
    )
    variants: dict[str, ObservedDeployment] = Field(
        default_factory=dict, description="A/B challengers' own Deployments by variant name"
    )


class EngineConfig(_Frozen):
    """Operator-wide settings the engine needs (loaded once at start-up by the glue)."""

    serving_image: str = Field(
        min_length=1, description="model server image when spec.serving.image is unset"
    )
    prometheus_address: str | None = Field(
        default=None, description="Prometheus used when spec.analysis.prometheus is unset"
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


class ReconcileInput(BaseModel):
    """Everything `reconcile` decides from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    md: ModelDeployment
    observed: Observed = Field(default_factory=Observed)
    measurements: list[Measurement] = Field(
        default_factory=list,
        description="measurements taken this tick, each tagged with its analysis run (Measurement.analysis)",
    )
    now: datetime
    config: EngineConfig
    ab_windows: list[ABWindow] = Field(
        default_factory=list, description="windows of the A/B test's decision metric measured this tick"
    )
    model: ResolvedModel | None = Field(
        default=None,
        description=(
            "the registry's resolution of the URI the glue pinned md.spec.model.uri to (the requested "
            "URI, version and lineage), recorded as the desired revision's model; None when the URI "
            "needs no registry"
        ),
    )

    @field_validator("now")
    @classmethod
    def _aware(cls, now: datetime) -> datetime:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware (UTC)")
        return now

    @model_validator(mode="after")
    def _model_is_the_pin(self) -> ReconcileInput:
        if self.model is not None and self.model.resolved_uri != self.md.spec.model.uri:
            raise ValueError(
                f"model resolves to {self.model.resolved_uri}, but spec.model.uri is {self.md.spec.model.uri}"
            )
        return self


class EventRecord(_Frozen):
    """A Kubernetes Event to emit on the ModelDeployment."""

    type: EventType
    reason: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$", max_length=128)
    message: str = Field(max_length=1024)


class ReconcileOutput(_Frozen):
    """Everything the glue must do this tick, in order: apply, write the router's objects, delete,
    write status, emit events, requeue."""

    apply: list[dict[str, Any]] = Field(
        default_factory=list,
        description=(
            f"complete manifests to server-side apply (field manager {FIELD_MANAGER!r}), each owned by "
            "the ModelDeployment (controller=true, blockOwnerDeletion=true)"
        ),
    )
    routing_writes: list[RoutingWrite] = Field(
        default_factory=list,
        description=(
            "the traffic router's writes, in order, or none when it already gives the published "
            "traffic: merge patches of the user's routing objects (send them with their resourceVersion, "
            "so an edit meanwhile fails with a conflict instead of being overwritten) or server-side "
            "applies of the objects the operator owns"
        ),
    )
    delete: list[ObjectRef] = Field(
        default_factory=list, description="objects to delete (none today: idle tracks are scaled to 0)"
    )
    status: ModelDeploymentStatus
    events: list[EventRecord] = Field(default_factory=list)
    requeue_after: float | None = Field(
        default=None, ge=0, description="seconds until the engine wants to run again even if nothing changes"
    )
