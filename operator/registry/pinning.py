"""Glue-side helpers that keep the rollout engine working on pinned models (pure).

The engine builds pods from `spec.model.uri` and records what it built in `status.canaryModel` /
`stableModel`. For a registry URI the glue hands it a view of the ModelDeployment whose URI is the
pinned version (`engine_view`), so the pods load `models:/fraud/7` and the revision hash changes
exactly when the pin does, together with the resolution itself (`ReconcileInput.model`: requested
URI, version, lineage), which the engine records; that is how `recorded_model` finds the pin on
the next tick. When the registry can't resolve a new URI, the engine isn't called:
`blocked_status` says why instead; before the first (possibly slow) call for a new spec,
`resolving_status` says what it waits for.
"""

from __future__ import annotations

from datetime import datetime

from modelramp.operator.api.resource import ModelDeployment
from modelramp.operator.api.status import ModelDeploymentStatus, Phase, ResolvedModel
from modelramp.operator.registry.errors import RegistryError
from modelramp.operator.rollout.conditions import conditions_for


def engine_view(md: ModelDeployment, model: ResolvedModel) -> ModelDeployment:
    """`md` with spec.model.uri replaced by the pin. followAlias and writeBack are left out: they
    don't shape the pods, so toggling them must not make a new revision."""
    source = md.spec.model
    registry = source.registry.model_copy(update={"write_back": None}) if source.registry else None
    # model_copy skips validation on purpose: followAlias's CEL rule is about the user's URI.
    pinned = source.model_copy(
        update={"uri": model.resolved_uri, "follow_alias": False, "registry": registry}
    )
    return md.model_copy(update={"spec": md.spec.model_copy(update={"model": pinned})})


def blocked_status(
    status: ModelDeploymentStatus, error: RegistryError, generation: int | None, now: datetime
) -> ModelDeploymentStatus:
    """The status while a new spec.model.uri can't be resolved: waiting (Progressing) when the
    registry may come back, Degraded when a user must fix the URI or the credentials. The
    serving pods are left as they are; nothing is rolled out."""
    phase: Phase = "Progressing" if error.retryable else "Degraded"
    message = (
        f"waiting for the model registry (retrying; check spec.model.registry.trackingUri if it "
        f"persists): {error}"
        if error.retryable
        else str(error)
    )
    return status.model_copy(
        update={
            "phase": phase,
            "message": message,
            "conditions": conditions_for(
                phase, error.reason, message, generation=generation, now=now, previous=status.conditions
            ),
        }
    )


def resolving_status(
    status: ModelDeploymentStatus, uri: str, server: str, generation: int | None, now: datetime
) -> ModelDeploymentStatus:
    """The status while the registry is first asked about a new spec.model.uri (MLflow loads and
    answers in seconds): Progressing, naming the URI and the server."""
    message = f"resolving {uri} on the MLflow registry {server} (spec.model.registry.trackingUri)"
    return status.model_copy(
        update={
            "phase": "Progressing",
            "message": message,
            "conditions": conditions_for(
                "Progressing",
                "ResolvingModel",
                message,
                generation=generation,
                now=now,
                previous=status.conditions,
            ),
        }
    )


def reported_for(status: ModelDeploymentStatus, generation: int | None) -> bool:
    """Whether the status already speaks about this generation of the spec."""
    return any(condition.observed_generation == generation for condition in status.conditions)
