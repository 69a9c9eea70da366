"""The engine sees the pinned URI; a blocked resolution says why (the status keeping the requested
URI is in test_registry_lineage.py, with the rest of what the engine records of a resolution)."""

from __future__ import annotations

from datetime import UTC, datetime

from modelramp.operator.api import ModelDeployment
from modelramp.operator.api.status import ModelDeploymentStatus, ResolvedModel
from modelramp.operator.config import OperatorConfig
from modelramp.operator.registry import AliasNotFound, RegistryUnavailable
from modelramp.operator.registry.pinning import blocked_status, engine_view
from modelramp.operator.rollout.revision import revision_of, template_of

NOW = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)
URI = "models:/fraud@champion"
V7 = ResolvedModel(uri=URI, resolved_uri="models:/fraud/7", version="7")
V8 = ResolvedModel(uri=URI, resolved_uri="models:/fraud/8", version="8")


def deployment(**model: object) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "fraud", "namespace": "risk", "generation": 3},
            "spec": {
                "model": {"uri": URI, "format": "mlflow", **model},
                "strategy": {"canary": {"steps": [{"setWeight": 20}]}},
            },
        }
    )


def revision(md: ModelDeployment) -> str:
    return revision_of(template_of(md.spec, OperatorConfig().engine_config()))


def test_the_engine_builds_from_the_pin_and_only_the_pin_makes_a_revision() -> None:
    md = deployment(followAlias=True, registry={"trackingUri": "http://mlflow:5000"})
    view = engine_view(md, V7)
    assert view.spec.model.uri == "models:/fraud/7"
    assert md.spec.model.uri == URI
    assert revision(view) != revision(engine_view(md, V8))
    toggled = deployment(registry={"trackingUri": "http://mlflow:5000", "writeBack": {"alias": "production"}})
    assert revision(engine_view(toggled, V7)) == revision(view)


def test_a_blocked_resolution_waits_or_degrades_with_the_reason() -> None:
    healthy = ModelDeploymentStatus(phase="Healthy", stable_model=V7)
    waiting = blocked_status(
        healthy, RegistryUnavailable("MLflow registry http://m: connection refused"), 3, NOW
    )
    assert waiting.phase == "Progressing"
    assert waiting.message == (
        "waiting for the model registry (retrying; check spec.model.registry.trackingUri if it "
        "persists): MLflow registry http://m: connection refused"
    )
    progressing = next(c for c in waiting.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason, progressing.observed_generation) == (
        "True",
        "RegistryUnavailable",
        3,
    )
    assert waiting.stable_model == V7

    missing = blocked_status(
        healthy, AliasNotFound("registered model 'fraud' has no alias 'champion'"), 3, NOW
    )
    degraded = next(c for c in missing.conditions if c.type == "Degraded")
    assert (missing.phase, degraded.status, degraded.reason) == ("Degraded", "True", "AliasNotFound")
