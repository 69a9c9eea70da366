"""The operator with a real MLflow registry: `models:/` URIs pinned to a version, a followed alias
rolling out on its own, the verdict written back, a missing alias, and the registry going down and
coming back.

One `mlflow server` (basic auth on) serves the module; two real TorchScript scorers are logged
with `mlflow.pytorch.log_model` as versions 1 and 2 of one registered model. The operator gets
the server as its default (`--mlflow-tracking-uri`) with the admin credentials in its environment,
and polls followed aliases every second. One ModelDeployment names the server itself with a
Secret instead. Everything written to the registry is checked through `MlflowClient`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import kubernetes
import mlflow
import mlflow.pytorch
import pytest
import torch
from mlflow import MlflowClient
from support.mlflow_server import ADMIN_USERNAME, MlflowServer, admin_server
from support.operator import ModelDeployments, OperatorProcess, canary_md, reasons, replicas, wait_for

from modelramp.serving.examples import Scorer

pytestmark = [pytest.mark.cluster, pytest.mark.mlflow, pytest.mark.timeout(400)]

MODEL = "fraud"
CHAMPION = f"models:/{MODEL}@champion"
PINNED = {version: f"models:/{MODEL}/{version}" for version in ("1", "2")}
PAUSED_CANARY: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    # The operator (a child process) reads the credentials for its default server too.
    with admin_server(tmp_path_factory.mktemp("mlflow")) as running:
        yield running


@pytest.fixture(scope="module")
def versions(server: MlflowServer) -> MlflowClient:
    """Versions 1 and 2 of MODEL: two real scorers with different weights."""
    for bias in (0.0, 2.5):
        with mlflow.start_run():
            mlflow.pytorch.log_model(
                torch.jit.script(Scorer(bias=bias, fail_above=float("inf"), extra_work=0).eval()),
                name="model",
                registered_model_name=MODEL,
                pip_requirements=["torch"],
                serialization_format="pickle",
            )
    return MlflowClient()


@pytest.fixture
def operator_args(server: MlflowServer) -> list[str]:
    return [f"--mlflow-tracking-uri={server.url}", "--registry-poll-seconds=1"]


@pytest.fixture
def champion_v1(versions: MlflowClient) -> MlflowClient:
    versions.set_registered_model_alias(MODEL, "champion", "1")
    return versions


def registry_md(uri: str, steps: list[dict[str, Any]], **model: Any) -> dict[str, Any]:
    body = canary_md(steps, replicas=2)
    body["spec"]["model"] = {"uri": uri, "format": "mlflow", **model}
    return body


def container_env(mds: ModelDeployments, deployment: str) -> dict[str, str]:
    (container,) = mds.deployment(deployment).spec.template.spec.containers
    return {var.name: var.value for var in container.env or []}


def model_of(status: dict[str, Any], track: str) -> dict[str, Any]:
    return status.get(f"{track}Model") or {}


def pinned(status: dict[str, Any], track: str) -> dict[str, Any]:
    """The track's model without its lineage, which must name the registered version's run."""
    model = dict(model_of(status, track))
    assert (model.pop("lineage", None) or {}).get("runId"), model_of(status, track)
    return model


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def credentials_secret(mds: ModelDeployments, server: MlflowServer) -> dict[str, Any]:
    """A Secret with the admin's credentials; the spec.model.registry that names it."""
    core = kubernetes.client.CoreV1Api(mds.kube.api_client)
    secret = {"MLFLOW_TRACKING_USERNAME": ADMIN_USERNAME, "MLFLOW_TRACKING_PASSWORD": server.admin_password}
    core.create_namespaced_secret(
        mds.namespace,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="mlflow-credentials"),
            data={key: base64.b64encode(value.encode()).decode() for key, value in secret.items()},
        ),
    )
    return {"trackingUri": server.url, "secretRef": {"name": "mlflow-credentials"}}


def test_alias_is_pinned_followed_to_a_new_version_and_the_promotion_written_back(
    operator: OperatorProcess, mds: ModelDeployments, champion_v1: MlflowClient, server: MlflowServer
) -> None:
    registry = credentials_secret(mds, server) | {
        "writeBack": {"alias": "production", "tags": {"team": "risk"}}
    }
    mds.apply(registry_md(CHAMPION, PAUSED_CANARY, followAlias=True, registry=registry))

    first = mds.wait_status(
        "web", "Healthy on version 1", lambda s: s.get("phase") == "Healthy" and "stableModel" in s, 90
    )
    assert pinned(first, "stable") == {"uri": CHAMPION, "resolvedUri": PINNED["1"], "version": "1"}
    stable_env = container_env(mds, "web-stable")
    assert stable_env["MODELRAMP_MODEL_URI"] == PINNED["1"]
    assert stable_env["MLFLOW_TRACKING_URI"] == server.url

    champion_v1.set_registered_model_alias(MODEL, "champion", "2")
    moving = mds.wait_status(
        "web",
        "a canary of version 2 paused at 50%",
        lambda s: s.get("phase") == "Paused" and model_of(s, "canary").get("resolvedUri") == PINNED["2"],
        60,
    )
    assert pinned(moving, "canary") == {"uri": CHAMPION, "resolvedUri": PINNED["2"], "version": "2"}
    assert model_of(moving, "stable")["resolvedUri"] == PINNED["1"]
    assert moving["canaryWeight"] == 50 and replicas(mds, "web-canary") == 1
    assert container_env(mds, "web-canary")["MODELRAMP_MODEL_URI"] == PINNED["2"]
    assert container_env(mds, "web-stable")["MODELRAMP_MODEL_URI"] == PINNED["1"]
    (moved,) = [e.message for e in mds.events("web") if e.reason == "AliasMoved"]
    assert f"alias champion of model {MODEL} moved from version 1 to 2" in moved

    mds.cli("promote", "web")
    promoted = mds.wait_status(
        "web",
        "Healthy on version 2",
        lambda s: s.get("phase") == "Healthy" and model_of(s, "stable").get("resolvedUri") == PINNED["2"],
        60,
    )
    assert "canaryModel" not in promoted
    assert container_env(mds, "web-stable")["MODELRAMP_MODEL_URI"] == PINNED["2"]
    wait_for("the write-back event", lambda: "RegistryWriteBack" in reasons(mds, type_="Normal"))
    assert champion_v1.get_model_version_by_alias(MODEL, "production").version == "2"
    tags = champion_v1.get_model_version(MODEL, "2").tags
    assert tags["modelramp.dev/rollout"] == "promoted"
    assert tags["modelramp.dev/modeldeployment"] == f"{mds.namespace}/web"
    assert tags["team"] == "risk"
    assert "modelramp.dev/rollout" not in champion_v1.get_model_version(MODEL, "1").tags
    assert server.admin_password not in operator.log_path.read_text(), "a credential reached the log"


def test_an_alias_that_does_not_exist_is_degraded_naming_it(
    operator: OperatorProcess, mds: ModelDeployments, versions: MlflowClient
) -> None:
    mds.apply(registry_md(f"models:/{MODEL}@no-such-alias", PAUSED_CANARY))

    status = mds.wait_status("web", "Degraded", lambda s: s.get("phase") == "Degraded", 60)
    degraded = condition(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "AliasNotFound")
    assert f"registered model {MODEL!r} has no alias 'no-such-alias'" in degraded["message"]
    # The event is posted just after the status is written.
    wait_for("the AliasNotFound event", lambda: "AliasNotFound" in reasons(mds, type_="Warning"))
    assert mds.deployment("web-stable") is None


@pytest.mark.faults
def test_a_registry_that_is_down_holds_a_new_uri_until_it_is_back(
    operator: OperatorProcess, mds: ModelDeployments, champion_v1: MlflowClient, server: MlflowServer
) -> None:
    champion_v1.set_registered_model_alias(MODEL, "challenger", "2")
    body = registry_md(CHAMPION, [{"setWeight": 50}])
    mds.apply(body)
    mds.wait_status("web", "Healthy on version 1", lambda s: s.get("phase") == "Healthy", 90)

    server.stop()
    try:
        mds.patch_spec("web", {"model": {"uri": f"models:/{MODEL}@challenger"}})
        waiting = mds.wait_status(
            "web",
            "waiting for the registry",
            lambda s: s.get("message", "").startswith("waiting for the model registry"),
            60,
        )
        assert waiting["phase"] == "Progressing"
        assert condition(waiting, "Progressing")["reason"] == "RegistryUnavailable"
        assert server.url in waiting["message"]
        assert "canaryModel" not in waiting and "canaryRevision" not in waiting
        assert model_of(waiting, "stable")["resolvedUri"] == PINNED["1"]
        assert replicas(mds, "web-canary") == 0
        assert container_env(mds, "web-stable")["MODELRAMP_MODEL_URI"] == PINNED["1"]
    finally:
        server.start()

    back = mds.wait_status(
        "web",
        "Healthy on version 2 once the registry is back",
        lambda s: s.get("phase") == "Healthy" and model_of(s, "stable").get("resolvedUri") == PINNED["2"],
        120,
    )
    assert model_of(back, "stable")["uri"] == f"models:/{MODEL}@challenger"
    assert container_env(mds, "web-stable")["MODELRAMP_MODEL_URI"] == PINNED["2"]
    assert server.admin_password not in operator.log_path.read_text(), "a credential reached the log"


@pytest.mark.faults
@pytest.mark.timeout(700)  # the retries back off to minutes while the server is down and restarts
def test_a_promotion_while_the_registry_is_down_is_written_back_once_it_is_back(
    operator: OperatorProcess, mds: ModelDeployments, champion_v1: MlflowClient, server: MlflowServer
) -> None:
    """Fault: the registry is down when the rollout is promoted. Invariant: the verdict is kept in
    status (pendingWriteBacks, with the error and the tries) until the registry takes it, then
    written exactly as an undisturbed promotion writes it."""
    if "production" in champion_v1.get_registered_model(MODEL).aliases:
        champion_v1.delete_registered_model_alias(MODEL, "production")
    registry = credentials_secret(mds, server) | {"writeBack": {"alias": "production"}}
    body = registry_md(PINNED["1"], PAUSED_CANARY, registry=registry)
    mds.apply(body)
    mds.wait_status("web", "Healthy on version 1", lambda s: s.get("phase") == "Healthy", 90)
    body["spec"]["model"]["uri"] = PINNED["2"]
    mds.apply(body)
    mds.wait_status("web", "the canary of version 2 paused", lambda s: s.get("phase") == "Paused", 60)

    server.stop()
    try:
        mds.cli("promote", "web")
        pending = mds.wait_status(
            "web",
            "promoted, the write-back pending after a failed try",
            lambda s: (
                s.get("phase") == "Healthy"
                and any(p.get("attempts", 0) >= 1 for p in s.get("pendingWriteBacks", []))
            ),
            90,
        )
        (queued,) = pending["pendingWriteBacks"]
        assert (queued["name"], queued["version"], queued["outcome"], queued["alias"]) == (
            MODEL,
            "2",
            "promoted",
            "production",
        )
        assert server.url in queued["lastError"] and "nextAttemptTime" in queued
        assert "RegistryWriteBackFailed" in reasons(mds, type_="Warning")
    finally:
        server.start()

    done = mds.wait_status("web", "the write-back delivered", lambda s: not s.get("pendingWriteBacks"), 360)
    assert model_of(done, "stable")["resolvedUri"] == PINNED["2"]
    assert champion_v1.get_model_version_by_alias(MODEL, "production").version == "2"
    assert champion_v1.get_model_version(MODEL, "2").tags["modelramp.dev/rollout"] == "promoted"
    wait_for("the delivery event", lambda: "RegistryWriteBack" in reasons(mds, type_="Normal"))
    assert server.admin_password not in operator.log_path.read_text(), "a credential reached the log"
