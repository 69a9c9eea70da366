"""Lineage from a real MLflow tracking server (basic auth on, artifacts proxied by the server): a
run that logs metrics and a model with a signature, registered with a description, read back by
`MlflowRegistry.lookup` with the ModelDeployment's own credentials.

Set-up goes through MLflow's own client, which reads the admin credentials from the environment
this module sets; `MlflowRegistry` is handed them.
"""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel
from pydantic import SecretStr
from support.mlflow_server import ADMIN_USERNAME, MlflowServer, admin_server

from modelramp.operator.registry import RegistryCredentials, resolve
from modelramp.operator.registry.mlflow_registry import MlflowRegistry

pytestmark = [pytest.mark.mlflow, pytest.mark.timeout(600)]

MODEL = "fraud"
CARD = "# Fraud scorer\nTrained on April's transactions; see the run for the data set."


class Scorer(PythonModel):  # type: ignore[misc]
    """A real (if trivial) pyfunc model: the mean of four features."""

    def predict(self, context: object, model_input: np.ndarray) -> np.ndarray:
        return np.asarray(model_input, dtype=np.float32).mean(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with admin_server(tmp_path_factory.mktemp("mlflow"), proxied_artifacts=True) as running:
        yield running


def test_lookup_reads_run_metrics_card_and_signature_of_a_registered_model(server: MlflowServer) -> None:
    features = np.ones((2, 4), dtype=np.float32)
    with mlflow.start_run() as run:
        mlflow.log_metrics({"auc": 0.91, "loss": 0.2})
        mlflow.log_metric("auc", 0.93, step=1)
        # More metrics than the status keeps: the first ten by name are.
        mlflow.log_metrics({f"z{index:02d}": float(index) for index in range(11)})
        mlflow.pyfunc.log_model(
            name="model",
            python_model=Scorer(),
            signature=infer_signature(features, Scorer().predict(None, features)),
            registered_model_name=MODEL,
            pip_requirements=["numpy"],
        )
    client = MlflowClient()
    client.update_model_version(MODEL, "1", description=CARD)
    client.set_registered_model_alias(MODEL, "champion", "1")
    registry = MlflowRegistry(
        server.url, RegistryCredentials(username=ADMIN_USERNAME, password=SecretStr(server.admin_password))
    )

    model = resolve(f"models:/{MODEL}@champion", registry).as_resolved_model()

    assert (model.resolved_uri, model.version) == (f"models:/{MODEL}/1", "1")
    lineage = model.lineage
    assert lineage is not None
    assert lineage.run_id == run.info.run_id
    assert lineage.source == client.get_model_version(MODEL, "1").source
    assert lineage.description == CARD
    assert lineage.metrics == {"auc": 0.93, "loss": 0.2} | {
        f"z{index:02d}": float(index) for index in range(8)
    }
    assert lineage.signature == "inputs: [Tensor('float32', (-1, 4))]; outputs: [Tensor('float32', (-1, 1))]"

    # A deleted run still names where the version came from; the version resolves as before.
    client.delete_run(run.info.run_id)
    after = resolve(f"models:/{MODEL}@champion", registry).as_resolved_model()
    assert after.version == "1"
    assert after.lineage is not None
    assert (after.lineage.run_id, after.lineage.metrics) == (run.info.run_id, lineage.metrics)
