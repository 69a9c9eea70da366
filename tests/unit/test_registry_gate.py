"""The registry gate's decisions that need no registry server: non-registry URIs pass through
untouched, and a URI that can't reach a server (no tracking server, a missing Secret, half of the
operator's credentials) blocks the rollout with a clear condition, retried on the gate's schedule.
The paths that talk to MLflow are in tests/cluster/test_operator_registry.py."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from modelramp.operator.api import ModelDeployment
from modelramp.operator.api.status import ModelDeploymentStatus
from modelramp.operator.cache import Key
from modelramp.operator.config import OperatorConfig
from modelramp.operator.registry.gate import Admission, RegistryGate
from modelramp.operator.rollout.model import ReconcileOutput

NOW = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)
KEY = Key("risk", "fraud")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def deployment(uri: str, generation: int = 1, **model: Any) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "fraud", "namespace": "risk", "generation": generation},
            "spec": {
                "model": {"uri": uri, "format": "mlflow", **model},
                "strategy": {"canary": {"steps": [{"setWeight": 20}]}},
            },
        }
    )


def gate(
    secrets: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    **config: Any,
) -> RegistryGate:
    known = secrets or {}
    return RegistryGate(
        OperatorConfig(registry_poll_seconds=30, **config),
        lambda namespace, name: known.get((namespace, name)),
        environ=environ or {},
        monotonic=clock or Clock(),
    )


def blocked(admission: Admission) -> ReconcileOutput:
    assert admission.blocked is not None
    return admission.blocked


def test_a_uri_outside_the_registry_passes_through_unchanged() -> None:
    md = deployment("s3://models/fraud.pt")
    admission = gate().admit(KEY, md, NOW)

    assert admission.blocked is None and admission.view is md
    out = ReconcileOutput(status=ModelDeploymentStatus(phase="Healthy"), requeue_after=7)
    assert admission.finish(out) is out


def test_without_any_tracking_server_the_rollout_is_degraded_and_retried_at_the_poll_pace() -> None:
    clock = Clock()
    registry = gate(clock=clock)
    out = blocked(registry.admit(KEY, deployment("models:/fraud@champion"), NOW))

    assert out.status.phase == "Degraded" and out.apply == []
    assert "--mlflow-tracking-uri" in (out.status.message or "")
    degraded = next(c for c in out.status.conditions if c.type == "Degraded")
    assert (degraded.status, degraded.reason) == ("True", "NoTrackingServer")
    assert [(e.type, e.reason) for e in out.events] == [("Warning", "NoTrackingServer")]
    assert out.requeue_after == 30

    # Woken again before the retry is due, the status written: it stands, the registry isn't
    # asked and nothing is announced again.
    clock.now += 10
    written = deployment("models:/fraud@champion").model_copy(update={"status": out.status})
    held = blocked(registry.admit(KEY, written, NOW))
    assert held.status == out.status and held.events == []
    assert held.requeue_after == 20
    # ... and if that write was lost (a conflict), the next reconcile writes it, without waiting
    # for the retry: an apply's outcome shows at once.
    lost = blocked(registry.admit(KEY, deployment("models:/fraud@champion"), NOW))
    assert lost.status == out.status
    assert [e.reason for e in lost.events] == ["NoTrackingServer"]
    # A new generation of the spec is looked at at once.
    again = blocked(registry.admit(KEY, deployment("models:/fraud@champion", generation=2), NOW))
    assert [e.reason for e in again.events] == ["NoTrackingServer"]


def test_a_missing_secret_names_the_secret() -> None:
    md = deployment(
        "models:/fraud@champion",
        registry={"trackingUri": "http://mlflow:5000", "secretRef": {"name": "creds"}},
    )
    out = blocked(gate(mlflow_tracking_uri="http://default:5000").admit(KEY, md, NOW))

    assert out.status.phase == "Degraded"
    assert out.status.message == (
        "spec.model.registry.secretRef: Secret 'creds' not found in namespace risk: create it with "
        "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or fix the name"
    )
    assert [e.reason for e in out.events] == ["RegistryAuthFailed"]


def test_half_of_the_operators_credentials_is_an_auth_error_that_shows_no_value() -> None:
    environ = {"MLFLOW_TRACKING_USERNAME": "admin-user-name"}
    out = blocked(
        gate(environ=environ, mlflow_tracking_uri="http://mlflow:5000").admit(
            KEY, deployment("models:/fraud/3"), NOW
        )
    )

    assert out.status.phase == "Degraded"
    assert "MLFLOW_TRACKING_PASSWORD" in (out.status.message or "")
    assert "admin-user-name" not in (out.status.message or "")


def test_a_new_uri_on_a_configured_server_says_what_it_waits_for_before_asking() -> None:
    # No server listens there: had the gate asked, it would answer RegistryUnavailable.
    md = deployment("models:/fraud@champion", registry={"trackingUri": "http://127.0.0.1:9"})
    out = blocked(gate().admit(KEY, md, NOW))

    assert out.status.phase == "Progressing" and out.requeue_after == 0 and out.events == []
    assert out.status.message == (
        "resolving models:/fraud@champion on the MLflow registry http://127.0.0.1:9 "
        "(spec.model.registry.trackingUri)"
    )
    progressing = next(c for c in out.status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason, progressing.observed_generation) == (
        "True",
        "ResolvingModel",
        1,
    )
