"""Write-back: record a rollout's verdict on the registry version it rolled out.

Opt-in through `spec.model.registry.writeBack`. When a rollout is promoted the configured alias
(e.g. `production`) moves to the promoted version and the version is tagged
`modelramp.dev/rollout=promoted` with the ModelDeployment, the time and the user's tags; when
analysis rolls it back the version is tagged `rolled-back` with the failing metric and value.
A paused or aborted rollout writes nothing: an abort is a person's decision, not a verdict on
the model. `plan_write_back` decides from the status before and after a reconcile (pure); the
registry implementation does the writing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from modelramp.operator.api.resource import ModelDeployment
from modelramp.operator.api.status import Measurement, ModelDeploymentStatus, ResolvedModel
from modelramp.operator.registry.errors import InvalidModelUri
from modelramp.operator.registry.uri import VersionRef, is_registry_uri, parse_registry_uri

ROLLOUT_TAG: Final = "modelramp.dev/rollout"
DEPLOYMENT_TAG: Final = "modelramp.dev/modeldeployment"
TIME_TAG: Final = "modelramp.dev/time"
FAILED_METRIC_TAG: Final = "modelramp.dev/failed-metric"
FAILED_VALUE_TAG: Final = "modelramp.dev/failed-value"

Outcome = Literal["promoted", "rolled-back"]


class WriteBackPlan(BaseModel):
    """What to write to the registry for one registered model version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    outcome: Outcome
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
    promoted = _promoted_model(old, new)
    if promoted is not None:
        ref = _version_of(promoted)
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
    failure = _rollback_cause(old, new)
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


def _promoted_model(old: ModelDeploymentStatus, new: ModelDeploymentStatus) -> ResolvedModel | None:
    # The rollout ends (canaryModel cleared) with stable serving what the canary served; the
    # engine's earlier "Promoting" step, where stable only takes the template, isn't the end yet.
    stable, canary = new.stable_model, old.canary_model
    if stable is None or canary is None or new.canary_model is not None or new.abort:
        return None
    return stable if stable.resolved_uri == canary.resolved_uri else None


def _rollback_cause(old: ModelDeploymentStatus, new: ModelDeploymentStatus) -> Measurement | None:
    if new.phase != "RolledBack" or old.phase == "RolledBack":
        return None
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
