"""The kustomize install (manifests/): rendered from the chart, up to date, and built by kubectl.

`kubectl kustomize` is the kubectl built with the local cluster, so this is the kustomize users of
that Kubernetes version get.
"""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.chart import NAMESPACE
from support.devtools import REPO, kubectl

RENDERED = [
    "base/crds.yaml",
    "base/operator.yaml",
    "monitoring/monitoring.yaml",
    "monitoring/modelramp-dashboard.json",
]


def test_rendered_manifests_match_the_chart(tmp_path: Path) -> None:
    subprocess.run([str(REPO / "hack" / "render-manifests.sh"), str(tmp_path)], check=True, timeout=120)
    stale = [
        name
        for name in RENDERED
        if not filecmp.cmp(tmp_path / name, REPO / "manifests" / name, shallow=False)
    ]
    assert not stale, f"manifests/ out of date with charts/modelramp: {stale}; run `make manifests`"


def kustomize(path: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(REPO / path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def install() -> list[dict[str, Any]]:
    return kustomize("manifests")


def test_base_installs_namespace_crds_and_operator(install: list[dict[str, Any]]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in install}
    assert ("Namespace", NAMESPACE) in kinds
    assert ("Deployment", "modelramp") in kinds
    assert {
        ("CustomResourceDefinition", n) for n in ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")
    } <= kinds
    assert ("CustomResourceDefinition", "modeldeployments.modelramp.dev") in kinds


def test_base_is_labelled_as_managed_by_kustomize(install: list[dict[str, Any]]) -> None:
    for obj in install:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "kustomize", obj["metadata"]["name"]


def test_namespaced_objects_land_in_the_operator_namespace(install: list[dict[str, Any]]) -> None:
    cluster_scoped = {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterKopfPeering",
    }
    for obj in install:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]


def test_monitoring_builds_with_the_dashboard() -> None:
    objects = {o["kind"]: o for o in kustomize("manifests/monitoring")}
    assert set(objects) == {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    dashboard = objects["ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = (REPO / "manifests" / "monitoring" / "modelramp-dashboard.json").read_text()
    assert dashboard["data"]["modelramp.json"] == shipped
