"""The registry against a real MLflow tracking server (basic auth on): two real TorchScript
models logged with `mlflow.pytorch.log_model` and registered as versions 1 and 2 of one model.

Every check of what was written goes through MLflow's own `MlflowClient`, which reads the admin
credentials from the environment this module sets; `MlflowRegistry` must not, so a registry
built without credentials is refused even here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import mlflow
import mlflow.pytorch
import pytest
import torch
from mlflow import MlflowClient
from pydantic import SecretStr
from support.mlflow_server import ADMIN_USERNAME, MlflowServer, admin_server

from modelramp.operator.api import ModelDeployment
from modelramp.operator.api.status import (
    AnalysisRunStatus,
    Measurement,
    ModelDeploymentStatus,
    ResolvedModel,
)
from modelramp.operator.registry import (
    AliasNotFound,
    ModelNotFound,
    RegistryAuthError,
    RegistryCredentials,
    RegistryUnavailable,
    alias_moved,
    parse_registry_uri,
    plan_write_back,
    recorded_model,
    resolve,
)
from modelramp.operator.registry.mlflow_registry import MlflowRegistry
from modelramp.operator.registry.writeback import FAILED_METRIC_TAG, FAILED_VALUE_TAG, ROLLOUT_TAG

pytestmark = [pytest.mark.mlflow, pytest.mark.timeout(600)]

MODEL = "fraud"
NOW = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)


class Scorer(torch.nn.Module):
    """A tiny real model: a fraud score from four features."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(features))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    # For MlflowClient (set-up and checks) only; MlflowRegistry is given its credentials.
    with admin_server(tmp_path_factory.mktemp("mlflow")) as running:
        yield running


@pytest.fixture(scope="module")
def run_ids(server: MlflowServer) -> dict[str, str]:
    """Versions 1 and 2 of MODEL, two different real models; alias champion -> 1."""
    ids = {}
    for version, seed in (("1", 1), ("2", 2)):
        with mlflow.start_run() as run:
            mlflow.pytorch.log_model(
                torch.jit.script(Scorer(seed)),
                name="model",
                registered_model_name=MODEL,
                pip_requirements=["torch"],
                serialization_format="pickle",
            )
        ids[version] = run.info.run_id
    MlflowClient().set_registered_model_alias(MODEL, "champion", "1")
    return ids


@pytest.fixture(scope="module")
def registry(server: MlflowServer) -> MlflowRegistry:
    return MlflowRegistry(
        server.url, RegistryCredentials(username=ADMIN_USERNAME, password=SecretStr(server.admin_password))
    )


def deployment(*, follow: bool = False, write_back: dict[str, object] | None = None) -> ModelDeployment:
    model: dict[str, object] = {"uri": f"models:/{MODEL}@champion", "format": "mlflow", "followAlias": follow}
    if write_back is not None:
        model["registry"] = {"trackingUri": "http://mlflow:5000", "writeBack": write_back}
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "fraud", "namespace": "risk"},
            "spec": {"model": model, "strategy": {"canary": {"steps": [{"setWeight": 20}]}}},
        }
    )


def test_alias_resolves_to_a_pinned_version_with_its_run(
    registry: MlflowRegistry, run_ids: dict[str, str]
) -> None:
    resolution = resolve(f"models:/{MODEL}@champion", registry)

    assert resolution.pinned_uri == f"models:/{MODEL}/1"
    assert resolution.found.run_id == run_ids["1"]
    assert resolution.found.source
    model = resolution.as_resolved_model()
    assert (model.uri, model.resolved_uri, model.version) == (
        f"models:/{MODEL}@champion",
        "models:/fraud/1",
        "1",
    )
    # The pinned version loads as the model that was logged as version 1.
    loaded = mlflow.pytorch.load_model(model.resolved_uri)
    features = torch.ones(1, 4)
    assert torch.allclose(loaded(features), torch.jit.script(Scorer(1))(features))


def test_a_moving_alias_leaves_the_running_rollout_pinned_and_follow_alias_moves_on(
    registry: MlflowRegistry, run_ids: dict[str, str]
) -> None:
    client = MlflowClient()
    client.set_registered_model_alias(MODEL, "champion", "1")
    pinned = resolve(f"models:/{MODEL}@champion", registry).as_resolved_model()
    status = ModelDeploymentStatus(phase="Progressing", canary_model=pinned)

    client.set_registered_model_alias(MODEL, "champion", "2")
    try:
        latest = resolve(f"models:/{MODEL}@champion", registry)
        assert latest.pinned_uri == f"models:/{MODEL}/2"
        assert recorded_model(f"models:/{MODEL}@champion", status) == pinned
        assert alias_moved(deployment(follow=False).spec.model, status, latest) is None

        moved = alias_moved(deployment(follow=True).spec.model, status, latest)
        assert moved is not None
        assert moved.model.resolved_uri == f"models:/{MODEL}/2"
        assert moved.message.startswith("alias champion of model fraud moved from version 1 to 2")
    finally:
        client.set_registered_model_alias(MODEL, "champion", "1")


def test_versions_stages_and_latest_resolve(registry: MlflowRegistry, run_ids: dict[str, str]) -> None:
    client = MlflowClient()
    client.transition_model_version_stage(MODEL, "1", "Production")

    assert resolve(f"models:/{MODEL}/Production", registry).found.version == "1"
    assert resolve(f"models:/{MODEL}/production", registry).found.version == "1"
    assert resolve(f"models:/{MODEL}/latest", registry).found.version == "2"
    assert resolve(f"models:/{MODEL}/2", registry).found.run_id == run_ids["2"]
    with pytest.raises(ModelNotFound, match="has no stage Staging"):
        resolve(f"models:/{MODEL}/Staging", registry)


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        (f"models:/{MODEL}@challenger", AliasNotFound, "registered model 'fraud' has no alias 'challenger'"),
        (f"models:/{MODEL}/9", ModelNotFound, "registered model 'fraud' has no version 9"),
        ("models:/nonexistent@champion", ModelNotFound, "registered model 'nonexistent' does not exist"),
    ],
)
def test_missing_models_and_aliases_are_clear_errors(
    registry: MlflowRegistry, run_ids: dict[str, str], uri: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        resolve(uri, registry)
    assert message in str(raised.value)
    assert registry.tracking_uri in str(raised.value)


def test_promotion_moves_the_alias_and_tags_the_version(
    registry: MlflowRegistry, run_ids: dict[str, str]
) -> None:
    md = deployment(write_back={"alias": "production", "tags": {"team": "risk"}})
    v1 = ResolvedModel(uri=f"models:/{MODEL}@champion", resolved_uri="models:/fraud/1", version="1")
    v2 = ResolvedModel(uri=f"models:/{MODEL}@champion", resolved_uri="models:/fraud/2", version="2")
    old = ModelDeploymentStatus(phase="Promoting", stable_model=v1, canary_model=v2)
    new = ModelDeploymentStatus(phase="Healthy", stable_model=v2)

    plan = plan_write_back(md, old, new, NOW)
    assert plan is not None
    registry.write_back(plan)

    client = MlflowClient()
    assert client.get_model_version_by_alias(MODEL, "production").version == "2"
    tags = client.get_model_version(MODEL, "2").tags
    assert tags[ROLLOUT_TAG] == "promoted"
    assert tags["modelramp.dev/modeldeployment"] == "risk/fraud"
    assert tags["modelramp.dev/time"] == "2026-05-09T12:00:00+00:00"
    assert tags["team"] == "risk"


def test_rollback_tags_the_version_with_the_failing_metric(
    registry: MlflowRegistry, run_ids: dict[str, str]
) -> None:
    md = deployment(write_back={"alias": "production"})
    v2 = ResolvedModel(uri=f"models:/{MODEL}@champion", resolved_uri="models:/fraud/2", version="2")
    v1 = ResolvedModel(uri=f"models:/{MODEL}@champion", resolved_uri="models:/fraud/1", version="1")
    failing = Measurement(
        metric="error-rate", analysis="step-1", value=0.21, verdict="Failed", time=NOW - timedelta(seconds=5)
    )
    run = AnalysisRunStatus(name="step-1", kind="Step", revision="rev-b", phase="Failed")
    old = ModelDeploymentStatus(
        phase="Progressing", stable_model=v2, canary_model=v1, canary_revision="rev-b"
    )
    new = old.model_copy(update={"phase": "RolledBack", "analysis_runs": [run], "measurements": [failing]})
    MlflowClient().set_registered_model_alias(MODEL, "production", "2")

    plan = plan_write_back(md, old, new, NOW)
    assert plan is not None
    registry.write_back(plan)

    client = MlflowClient()
    tags = client.get_model_version(MODEL, "1").tags
    assert (tags[ROLLOUT_TAG], tags[FAILED_METRIC_TAG], tags[FAILED_VALUE_TAG]) == (
        "rolled-back",
        "error-rate",
        "0.21",
    )
    assert client.get_model_version_by_alias(MODEL, "production").version == "2"


def test_bad_or_missing_credentials_are_auth_errors_that_leak_nothing(
    server: MlflowServer, run_ids: dict[str, str]
) -> None:
    wrong = RegistryCredentials(username=ADMIN_USERNAME, password=SecretStr("not-the-password"))
    with pytest.raises(RegistryAuthError) as raised:
        resolve(f"models:/{MODEL}@champion", MlflowRegistry(server.url, wrong))
    assert "not-the-password" not in str(raised.value)
    assert "secretRef" in str(raised.value)

    # The admin credentials are in this process's environment; the registry must not use them.
    with pytest.raises(RegistryAuthError):
        resolve(f"models:/{MODEL}@champion", MlflowRegistry(server.url, None))


def test_registry_down_is_retryable_and_resolves_again_when_back(
    server: MlflowServer, registry: MlflowRegistry, run_ids: dict[str, str]
) -> None:
    ref = parse_registry_uri(f"models:/{MODEL}@champion")
    server.stop()
    try:
        with pytest.raises(RegistryUnavailable) as raised:
            registry.lookup(ref)
        assert raised.value.retryable
        assert server.url in str(raised.value)
    finally:
        server.start()
    assert registry.lookup(ref).version == "1"
