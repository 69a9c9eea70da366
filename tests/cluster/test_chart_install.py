"""`helm install` of charts/modelramp into the local cluster, and what its RBAC allows there.

The API server itself answers the permission questions (`kubectl auth can-i --as` the chart's
ServiceAccount), so this checks the installed objects, not our reading of the templates. The
release is named after the test's namespace so cluster-scoped objects never collide.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from support.chart import CHART, helm
from support.cluster import Kube

pytestmark = pytest.mark.cluster


@contextmanager
def install(kube: Kube, release: str, namespace: str, *values: str) -> Iterator[str]:
    """Installs and waits for the operator Deployment; uninstalls afterwards. Yields the
    ServiceAccount as a user name for `--as`."""
    config = ("--kubeconfig", str(kube.kubeconfig))
    # kwok marks the pods Running and Ready, so --wait proves the Deployment and its probes are valid.
    helm(
        "install", release, str(CHART), "--namespace", namespace, "--wait", "--timeout", "120s",
        "--set", f"peering.name={release}", *(a for v in values for a in ("--set", v)), *config,
    )  # fmt: skip
    try:
        yield f"system:serviceaccount:{namespace}:{release}-modelramp"
    finally:
        helm("uninstall", release, "--namespace", namespace, "--wait", *config)


def can(
    kube: Kube, account: str, verb: str, resource: str, namespace: str | None, *, name: str | None = None
) -> bool:
    """`resource` may name a subresource as `plural.group/status`; `name` asks about one object."""
    resource, _, subresource = resource.partition("/")
    flags = ["--namespace", namespace] if namespace else []
    flags += ["--subresource", subresource] if subresource else []
    target = f"{resource}/{name}" if name else resource
    result = kube.kubectl("auth", "can-i", verb, target, "--as", account, *flags, check=False)
    answer: str = result.stdout.strip()
    return answer == "yes"


@pytest.fixture
def cluster_wide(kube: Kube, namespace: str) -> Iterator[str]:
    with install(kube, namespace, namespace) as account:
        yield account


def test_cluster_wide_install_runs_and_grants_exactly_what_the_operator_uses(
    kube: Kube, namespace: str, cluster_wide: str
) -> None:
    deployment = kube.kubectl("get", "deployment", f"{namespace}-modelramp", "-n", namespace, "-o", "name")
    assert deployment.stdout.strip()
    elsewhere = "default"
    allowed = [
        ("patch", "modeldeployments.modelramp.dev", elsewhere),
        ("patch", "modeldeployments.modelramp.dev/status", elsewhere),
        ("create", "deployments.apps", elsewhere),
        ("delete", "services", elsewhere),
        ("get", "httproutes.gateway.networking.k8s.io", elsewhere),
        ("patch", "httproutes.gateway.networking.k8s.io", elsewhere),
        ("create", "events", elsewhere),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("patch", "clusterkopfpeerings.kopf.dev", None),
        # Registry credentials are read where the ModelDeployment is: any namespace.
        ("get", "secrets", elsewhere),
    ]
    denied = [
        ("delete", "modeldeployments.modelramp.dev", elsewhere),
        ("update", "modeldeployments.modelramp.dev", elsewhere),
        ("update", "modeldeployments.modelramp.dev/status", elsewhere),
        ("update", "deployments.apps", elsewhere),
        ("update", "services", elsewhere),
        ("update", "httproutes.gateway.networking.k8s.io", elsewhere),
        ("watch", "httproutes.gateway.networking.k8s.io", elsewhere),
        ("create", "httproutes.gateway.networking.k8s.io", elsewhere),
        ("patch", "events", elsewhere),
        ("create", "events.events.k8s.io", elsewhere),
        ("list", "secrets", elsewhere),
        ("watch", "secrets", elsewhere),
        ("create", "pods", elsewhere),
        ("delete", "namespaces", None),
    ]
    for verb, resource, where in allowed:
        assert can(kube, cluster_wide, verb, resource, where), f"cannot {verb} {resource} in {where}"
    for verb, resource, where in denied:
        assert not can(kube, cluster_wide, verb, resource, where), f"may {verb} {resource} in {where}"
    peering = kube.kubectl("get", "clusterkopfpeering", namespace, "-o", "name")
    assert peering.stdout.strip()


def test_secret_access_can_be_turned_off(kube: Kube, namespace: str) -> None:
    with install(kube, namespace, namespace, "rbac.readSecrets=false") as sa:
        assert can(kube, sa, "patch", "deployments.apps", "default")
        assert not can(kube, sa, "get", "secrets", "default")
        assert not can(kube, sa, "get", "secrets", namespace)


def test_namespaced_install_acts_only_in_watched_namespaces(kube: Kube, namespace: str) -> None:
    watched, secret = "default", "mlflow-credentials"
    values = (f"watch.namespaces={{{watched}}}", f"rbac.secretNames={{{secret}}}")
    with install(kube, namespace, namespace, *values) as sa:
        assert can(kube, sa, "patch", "modeldeployments.modelramp.dev", watched)
        assert can(kube, sa, "patch", "kopfpeerings.kopf.dev", watched)
        assert not can(kube, sa, "patch", "modeldeployments.modelramp.dev", "kube-system")
        assert not can(kube, sa, "create", "deployments.apps", "kube-system")
        assert not can(kube, sa, "patch", "clusterkopfpeerings.kopf.dev", None)
        # Only the named Secret, only where ModelDeployments are watched: not even the release's own.
        assert can(kube, sa, "get", "secrets", watched, name=secret)
        assert not can(kube, sa, "get", "secrets", watched, name="other")
        assert not can(kube, sa, "get", "secrets", "kube-system", name=secret)
        assert not can(kube, sa, "get", "secrets", namespace, name=secret)
        assert kube.kubectl("get", "kopfpeering", namespace, "-n", watched, "-o", "name").stdout.strip()
