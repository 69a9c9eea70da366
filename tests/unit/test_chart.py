"""charts/modelramp: lint, render, and the operator Deployment's contract with the operator.

Rendered by the real helm (`make tools`) for the local cluster's Kubernetes version.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from support.chart import CHART, NAMESPACE, by_kind, lint, one, render
from support.devtools import REPO

ALL_OPTIONS: dict[str, Any] = {
    "watch": {"namespaces": ["ml-a", "ml-b"]},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
    "rbac": {"secretNames": ["mlflow-credentials"]},
    "replicaCount": 2,
}


@pytest.mark.parametrize("values", [{}, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_lint_is_clean(values: dict[str, Any]) -> None:
    out = lint(values)
    assert "[ERROR]" not in out and "[WARNING]" not in out, out


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: dict[str, Any] = containers[0]
    return container


def test_runs_non_root_read_only_without_capabilities() -> None:
    objects = render()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = operator_container(objects)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_has_resources() -> None:
    resources = operator_container(render())["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]


def flag_values(args: list[str], flag: str) -> list[str]:
    return [a.split("=", 1)[1] for a in args if a.startswith(f"{flag}=")]


def test_probes_hit_kopfs_liveness_endpoint() -> None:
    container = operator_container(render({"health": {"port": 8181}}))
    [liveness] = flag_values(container["args"], "--liveness")
    match = re.fullmatch(r"http://0\.0\.0\.0:(\d+)(/\S+)", liveness)
    assert match, liveness
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == int(match.group(1)) == 8181
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": match.group(2), "port": "health"}


def test_cluster_wide_operator_peers_through_a_cluster_peering() -> None:
    objects = render({"peering": {"name": "ramp"}})
    args = operator_container(objects)["args"]
    assert container_command(objects) == ["modelramp", "operator"]
    assert flag_values(args, "--peering") == ["ramp"]
    assert flag_values(args, "--namespace") == []
    assert [p["metadata"]["name"] for p in by_kind(objects, "ClusterKopfPeering")] == ["ramp"]
    assert by_kind(objects, "KopfPeering") == []


def container_command(objects: list[dict[str, Any]]) -> list[str]:
    command: list[str] = operator_container(objects)["command"]
    return command


def test_namespaced_operator_watches_and_peers_in_each_namespace() -> None:
    objects = render({"watch": {"namespaces": ["ml-a", "ml-b"]}})
    args = operator_container(objects)["args"]
    assert flag_values(args, "--namespace") == ["ml-a", "ml-b"]
    peerings = by_kind(objects, "KopfPeering")
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings) == [
        ("ml-a", "modelramp"),
        ("ml-b", "modelramp"),
    ]
    assert by_kind(objects, "ClusterKopfPeering") == []


def test_metrics_service_reaches_the_operator_pods() -> None:
    objects = render({"metrics": {"port": 9191}})
    container = operator_container(objects)
    assert flag_values(container["args"], "--metrics-port") == ["9191"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"] == 9191
    service = one(objects, "Service")
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9191, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_optional_monitoring_is_off_by_default() -> None:
    kinds = {o["kind"] for o in render()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "ConfigMap"}


def test_optional_monitoring_objects() -> None:
    objects = render(ALL_OPTIONS)
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    alerts = {r["alert"] for g in one(objects, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}
    assert alerts == {
        "ModelRampRollbackHappened",
        "ModelRampRolloutStuckPaused",
        "ModelRampInputDrifted",
        "ModelRampOperatorDown",
    }
    dashboard = one(objects, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "files" / "modelramp-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["modelramp.json"]) == shipped


def test_operator_down_alert_watches_the_metrics_service_job() -> None:
    objects = render({"prometheusRule": {"enabled": True}})
    service = one(objects, "Service")["metadata"]["name"]
    rules = [r for g in one(objects, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    [down] = [r for r in rules if r["alert"] == "ModelRampOperatorDown"]
    assert f'job="{service}"' in down["expr"]


def test_everything_namespaced_lands_in_the_release_namespace_or_a_watched_one() -> None:
    allowed = {NAMESPACE, *ALL_OPTIONS["watch"]["namespaces"]}
    for obj in render(ALL_OPTIONS):
        if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}:
            assert obj["metadata"].get("namespace") in allowed, obj["metadata"]


def documented_values() -> list[str]:
    """Dotted paths of values.yaml keys carrying a `# --` description, in file order."""
    paths: list[str] = []
    stack: list[tuple[int, str]] = []
    described = False
    for line in (CHART / "values.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            described = True
            continue
        key = re.match(r"^(\s*)([A-Za-z][\w.]*):", line)
        if key is None or stripped.startswith("-"):
            continue
        indent = len(key.group(1))
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, key.group(2))]
        if described:
            paths.append(".".join(k for _, k in stack))
        described = False
    return paths


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        return [p for key, sub in values.items() for p in leaf_paths(sub, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


def test_every_value_is_documented_in_values_yaml_and_the_readme() -> None:
    documented = documented_values()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    undocumented = [
        leaf
        for leaf in leaf_paths(values)
        if not any(leaf == d or leaf.startswith(f"{d}.") for d in documented)
    ]
    assert not undocumented, f"values.yaml keys without a `# --` description: {undocumented}"
    readme = (CHART / "README.md").read_text()
    missing = [d for d in documented if f"`{d}`" not in readme]
    assert not missing, f"values missing from charts/modelramp/README.md: {missing}"


def test_chart_crds_are_the_generated_ones() -> None:
    generated = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    assert shipped == generated, "charts/modelramp/crds differs from crds/: run `make crds`"


def test_prometheus_url_is_passed_only_when_set() -> None:
    assert flag_values(operator_container(render())["args"], "--prometheus-url") == []
    url = "http://prometheus-operated.monitoring:9090"
    args = operator_container(render({"prometheusUrl": url}))["args"]
    assert flag_values(args, "--prometheus-url") == [url]
