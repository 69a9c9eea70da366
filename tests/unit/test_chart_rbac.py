"""The chart's RBAC is exactly what the operator uses: no more (review finding), no less (the RBAC
cluster test fails). Checked for both the cluster-wide and the namespaced-only mode.
"""

from __future__ import annotations

from typing import Any

from support.chart import NAMESPACE, by_kind, one, render

Rules = dict[tuple[str, str], frozenset[str]]

READ = frozenset({"get", "list", "watch"})
MANAGE = frozenset({"get", "list", "watch", "create", "patch", "update", "delete"})
# What the operator does to the objects of a ModelDeployment, wherever it lives.
WORKLOAD: Rules = {
    ("modelramp.dev", "modeldeployments"): READ | {"patch"},
    ("modelramp.dev", "modeldeployments/status"): frozenset({"get", "patch", "update"}),
    ("apps", "deployments"): MANAGE,
    ("", "services"): MANAGE,
    ("", "events"): frozenset({"create", "patch"}),
    ("events.k8s.io", "events"): frozenset({"create", "patch"}),
    ("gateway.networking.k8s.io", "httproutes"): READ | {"patch", "update"},
}
# What kopf reads cluster-wide to find its resources and namespaces.
KOPF_CLUSTER: Rules = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): READ,
    ("", "namespaces"): READ,
}
PEERING_VERBS = READ | {"patch"}
SECRETS: Rules = {("", "secrets"): frozenset({"get"})}
WATCHED = ["ml-a", "ml-b"]


def flatten(role: dict[str, Any]) -> Rules:
    """(apiGroup, resource) -> verbs, refusing wildcards and rules that hide resource names."""
    rules: Rules = {}
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"{role['metadata']['name']}: wildcard in {field}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                key = (group, resource)
                rules[key] = rules.get(key, frozenset()) | frozenset(rule["verbs"])
    return rules


def role_named(objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> Rules:
    [role] = [
        o
        for o in by_kind(objects, kind)
        if o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
    ]
    return flatten(role)


def assert_bindings_grant_roles_to_the_service_account(objects: list[dict[str, Any]]) -> None:
    account = one(objects, "ServiceAccount")["metadata"]
    roles = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objects}
    bindings = by_kind(objects, "RoleBinding") + by_kind(objects, "ClusterRoleBinding")
    bound = set()
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        assert (ref["kind"], ref["name"], namespace) in roles, f"binding to a missing {ref}"
        bound.add((ref["kind"], ref["name"], namespace))
    granted = {r for r in roles if r[0] in {"Role", "ClusterRole"}}
    assert bound == granted, f"roles bound to nobody: {granted - bound}"


def test_cluster_wide_mode() -> None:
    objects = render()
    assert [r["metadata"]["name"] for r in by_kind(objects, "ClusterRole")] == ["modelramp"]
    assert role_named(objects, "ClusterRole", "modelramp") == {
        **WORKLOAD,
        **KOPF_CLUSTER,
        ("kopf.dev", "clusterkopfpeerings"): PEERING_VERBS,
    }
    assert [(r["metadata"]["name"], r["metadata"]["namespace"]) for r in by_kind(objects, "Role")] == [
        ("modelramp-secrets", NAMESPACE)
    ]
    assert role_named(objects, "Role", "modelramp-secrets", NAMESPACE) == SECRETS
    assert_bindings_grant_roles_to_the_service_account(objects)


def test_namespaced_mode_grants_workload_rights_only_in_watched_namespaces() -> None:
    objects = render({"watch": {"namespaces": WATCHED}})
    assert [r["metadata"]["name"] for r in by_kind(objects, "ClusterRole")] == ["modelramp-kopf"]
    assert role_named(objects, "ClusterRole", "modelramp-kopf") == KOPF_CLUSTER
    for namespace in WATCHED:
        assert role_named(objects, "Role", "modelramp", namespace) == {
            **WORKLOAD,
            ("kopf.dev", "kopfpeerings"): PEERING_VERBS,
        }
    assert role_named(objects, "Role", "modelramp-secrets", NAMESPACE) == SECRETS
    assert len(by_kind(objects, "Role")) == len(WATCHED) + 1
    assert_bindings_grant_roles_to_the_service_account(objects)


def test_secret_access_narrows_to_named_secrets() -> None:
    objects = render({"rbac": {"secretNames": ["mlflow-credentials"]}})
    [secrets_role] = [r for r in by_kind(objects, "Role") if r["metadata"]["name"] == "modelramp-secrets"]
    assert secrets_role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["mlflow-credentials"],
            "verbs": ["get"],
        }
    ]


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    kinds = {o["kind"] for o in render({"rbac": {"create": False}})}
    assert not kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
