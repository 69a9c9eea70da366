"""Deletion always finishes, with the operator running: a ModelDeployment deleted on its own, in
the middle of a rollout or of an analysis, or with its whole namespace, is gone within seconds
together with its owned objects, and the `modelramp.dev/operator` finalizer is released. Writes the
API server refuses because the namespace is terminating (403 NamespaceTerminating, e.g. posting an
Event) are expected there: the operator drops them instead of retrying them forever."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from support.cluster import Kube
from support.operator import (
    GROUP,
    PLURAL,
    V2,
    VERSION,
    ModelDeployments,
    OperatorProcess,
    at_step,
    canary_md,
    healthy,
    wait_for,
    with_model,
)
from support.prometheus import free_port

pytestmark = pytest.mark.cluster

# Gone "within seconds": the namespace controller and the garbage collector poll, so allow them a
# few rounds on a busy machine, far below what a stuck finalizer would take (forever).
GONE_WITHIN = 30.0
PAUSED_CANARY: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]


@pytest.fixture
def doomed(kube: Kube) -> Iterator[str]:
    """A second namespace the operator watches, for the test that deletes a whole namespace."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = kubernetes.client.CoreV1Api(kube.api_client)
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture
def operator_args(doomed: str) -> list[str]:
    return [f"--namespace={doomed}"]


def owned_gone(mds: ModelDeployments, name: str = "web") -> bool:
    deployments = (f"{name}-stable", f"{name}-canary")
    services = (name, f"{name}-stable", f"{name}-canary")
    return all(mds.deployment(d) is None for d in deployments) and all(
        mds.service(s) is None for s in services
    )


def model_deployment_gone(mds: ModelDeployments, name: str = "web") -> bool:
    try:
        mds.get(name)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def delete(mds: ModelDeployments, name: str = "web") -> None:
    mds.custom.delete_namespaced_custom_object(GROUP, VERSION, mds.namespace, PLURAL, name)


def assert_released(mds: ModelDeployments, name: str = "web") -> None:
    wait_for(
        f"{name} deleted (its finalizer released)", lambda: model_deployment_gone(mds, name), GONE_WITHIN
    )
    wait_for(f"{name}'s owned objects deleted", lambda: owned_gone(mds, name), GONE_WITHIN)


def test_a_healthy_model_deployment_deleted_on_its_own_goes_with_its_objects(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(canary_md([{"setWeight": 50}]))
    healthy(mds)
    assert mds.get("web")["metadata"]["finalizers"] == ["modelramp.dev/operator"]
    delete(mds)
    assert_released(mds)


def test_deleted_mid_rollout(operator: OperatorProcess, mds: ModelDeployments) -> None:
    body = canary_md(PAUSED_CANARY)
    mds.apply(body)
    healthy(mds)
    mds.apply(with_model(body, V2))
    at_step(mds, 1, 50)
    delete(mds)
    assert_released(mds)


def test_deleted_while_an_analysis_runs(operator: OperatorProcess, mds: ModelDeployments) -> None:
    # A Prometheus nobody listens on: every measurement errors and is retried, so the analysis
    # keeps running (and the operator keeps measuring) when the deletion comes.
    metric = {"name": "errors", "builtin": "error-rate", "threshold": 0.05, "interval": "30s"}
    body = canary_md(
        [{"setWeight": 25}, {"analysis": {"metrics": [metric]}}],
        analysis={"prometheus": {"address": f"http://127.0.0.1:{free_port()}"}},
    )
    mds.apply(body)
    healthy(mds)
    mds.apply(with_model(body, V2))
    mds.wait_status(
        "web",
        "the step analysis running",
        lambda s: any(run.get("phase") == "Running" for run in s.get("analysisRuns", [])),
        timeout=60,
    )
    delete(mds)
    assert_released(mds)


def test_deleting_the_namespace_finishes_and_terminating_writes_are_not_retried(
    kube: Kube, operator: OperatorProcess, doomed: str
) -> None:
    mds = ModelDeployments(kube, doomed)
    body = canary_md(PAUSED_CANARY)
    mds.apply(body)
    healthy(mds)
    mds.apply(with_model(body, V2))
    at_step(mds, 1, 50)
    core = kubernetes.client.CoreV1Api(kube.api_client)
    log_before = operator.log_path.read_text(errors="replace")

    core.delete_namespace(doomed, propagation_policy="Background")

    def namespace_gone() -> bool:
        try:
            core.read_namespace(doomed)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return True
            raise
        return False

    wait_for(f"namespace {doomed} deleted", namespace_gone, GONE_WITHIN)
    new_log = operator.log_path.read_text(errors="replace").removeprefix(log_before)
    assert "is being terminated" not in new_log, new_log[-4000:]
    assert "Traceback" not in new_log, new_log[-4000:]
    # The operator is still well and still serves the other namespace.
    other = ModelDeployments(kube, operator.namespaces[0])
    other.apply(canary_md([{"setWeight": 50}], name="after"))
    healthy(other, "after")
