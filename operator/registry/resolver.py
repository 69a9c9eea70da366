"""The registry interface the operator codes against, and what a resolution records.

A rollout never serves a moving reference: at its start the glue resolves `spec.model.uri`
(`models:/fraud@champion`) to one version (`models:/fraud/7`) and keeps that pin in
`status.canaryModel`, then `status.stableModel`; later ticks reuse the pin (`recorded_model`)
instead of asking the registry again. `ModelRegistry` has one implementation per registry
(`mlflow_registry.MlflowRegistry`); everything else in this package is pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field

from modelramp.operator.api.status import ModelDeploymentStatus, ModelLineage, ResolvedModel
from modelramp.operator.registry.uri import RegistryRef, parse_registry_uri, pinned_uri

if TYPE_CHECKING:
    from modelramp.operator.registry.writeback import WriteBackPlan


class ModelVersionInfo(BaseModel):
    """One registered model version, as the registry describes it. Only name and version are
    sure to be there: the rest is lineage, read on a best-effort basis."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str = Field(pattern=r"^[1-9][0-9]*$")
    source: str | None = Field(default=None, description="where the version's files are")
    run_id: str | None = Field(default=None, description="the run that logged the model")
    description: str | None = Field(default=None, description="the version's description (model card)")
    metrics: dict[str, float] = Field(default_factory=dict, description="the run's metrics, latest values")
    signature: str | None = Field(default=None, description="the model's input and output schema")

    def lineage(self) -> ModelLineage | None:
        """The status form, cut to the status's bounds; None when the registry told nothing."""
        lineage = ModelLineage(
            run_id=self.run_id,
            source=self.source,
            description=self.description,
            metrics=self.metrics,
            signature=self.signature,
        )
        return lineage if lineage != ModelLineage() else None


class RegistryResolution(BaseModel):
    """`spec.model.uri` and the immutable version it resolved to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requested_uri: str
    reference: str = Field(description="what the URI names, for messages: 'alias champion', 'version 7'")
    found: ModelVersionInfo

    @property
    def pinned_uri(self) -> str:
        return pinned_uri(self.found.name, self.found.version)

    def as_resolved_model(self) -> ResolvedModel:
        """The status form (`status.canaryModel`); the pinned URI is what the pods load."""
        return ResolvedModel(
            uri=self.requested_uri,
            resolved_uri=self.pinned_uri,
            version=self.found.version,
            lineage=self.found.lineage(),
        )


class ModelRegistry(Protocol):
    """A model registry: look versions up, and record rollout results."""

    def lookup(self, ref: RegistryRef) -> ModelVersionInfo:
        """The version `ref` names now; raises a `RegistryError` subclass on failure."""
        ...

    def write_back(self, plan: WriteBackPlan) -> None:
        """Set the plan's alias and tags; raises a `RegistryError` subclass on failure."""
        ...


def resolve(uri: str, registry: ModelRegistry) -> RegistryResolution:
    """Resolves a `models:/` URI through `registry` (InvalidModelUri for anything else)."""
    ref = parse_registry_uri(uri)
    return RegistryResolution(requested_uri=uri, reference=ref.describe(), found=registry.lookup(ref))


def recorded_model(uri: str, status: ModelDeploymentStatus) -> ResolvedModel | None:
    """The pin already recorded for `uri`: the canary's (the newest) else stable's; None when
    `uri` is new and must be resolved. Reusing it is what keeps a moving alias from changing a
    running rollout."""
    for model in (status.canary_model, status.stable_model):
        if model is not None and model.uri == uri:
            return model
    return None
