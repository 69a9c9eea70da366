"""The chart's RBAC is exactly what the operator uses: no more (review findings), no less (the RBAC
cluster test fails). Checked for both the cluster-wide and the namespaced-only mode, and for the
registry credential Secrets, which are read in the ModelDeployment's namespace (issue 7).
"""

from __future__ import annotations

from typing import Any

import pytest
from support.chart import by_kind, one, render

from modelramp.operator.routers.registry import rbac_rules

Rules = dict[tuple[str, str], frozenset[str]]

READ = frozenset({"get", "list", "watch"})
# Writes are merge patches and server-side apply (`patch`, plus `create` for an apply that creates)
# and deletes: operator/kube.py sends no PUT, so no `update` anywhere.
MANAGE = READ | {"create", "patch", "delete"}
# What the operator does to the objects of a ModelDeployment, wherever it lives.
WORKLOAD: Rules = {
    ("modelramp.dev", "modeldeployments"): READ | {"patch"},
    ("modelramp.dev", "modeldeployments/status"): frozenset({"get", "patch"}),
    ("apps", "deployments"): MANAGE,
    ("", "services"): MANAGE,
    # An A/B test's assignment table and a shadow step's `<name>-shadow`, mounted by the model servers.
    ("", "configmaps"): MANAGE,
    # core/v1 Events, POSTed once each (kopf's own posting is off).
    ("", "events"): frozenset({"create"}),
    # The traffic routers' objects: exactly what the routers declare (operator/routers/registry.py).
    **{(rule.api_group, rule.resource): rule.verbs for rule in rbac_rules()},
}
# The registry credentials named by `spec.model.registry.secretRef`, by name only.
SECRETS: Rules = {("", "secrets"): frozenset({"get"})}
# What kopf reads cluster-wide to find its resources and namespaces.
KOPF_CLUSTER: Rules = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): READ,
    ("", "namespaces"): READ,
}
PEERING_VERBS = READ | {"patch"}
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


def secret_rules(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for rule in role["rules"] if "secrets" in rule["resources"]]


def test_cluster_wide_mode() -> None:
    objects = render()
    assert [r["metadata"]["name"] for r in by_kind(objects, "ClusterRole")] == ["modelramp"]
    assert role_named(objects, "ClusterRole", "modelramp") == {
        **WORKLOAD,
        **SECRETS,
        **KOPF_CLUSTER,
        ("kopf.dev", "clusterkopfpeerings"): PEERING_VERBS,
    }
    assert not by_kind(objects, "Role")
    assert_bindings_grant_roles_to_the_service_account(objects)


def test_namespaced_mode_grants_workload_rights_only_in_watched_namespaces() -> None:
    objects = render({"watch": {"namespaces": WATCHED}})
    assert [r["metadata"]["name"] for r in by_kind(objects, "ClusterRole")] == ["modelramp-kopf"]
    assert role_named(objects, "ClusterRole", "modelramp-kopf") == KOPF_CLUSTER
    for namespace in WATCHED:
        assert role_named(objects, "Role", "modelramp", namespace) == {
            **WORKLOAD,
            **SECRETS,
            ("kopf.dev", "kopfpeerings"): PEERING_VERBS,
        }
    # Nothing in the release namespace: the operator reads no Secret of its own there.
    assert len(by_kind(objects, "Role")) == len(WATCHED)
    assert_bindings_grant_roles_to_the_service_account(objects)


@pytest.mark.parametrize("watched", [[], WATCHED], ids=["cluster-wide", "namespaced"])
def test_secret_access_narrows_to_named_secrets(watched: list[str]) -> None:
    objects = render({"watch": {"namespaces": watched}, "rbac": {"secretNames": ["mlflow-credentials"]}})
    roles = by_kind(objects, "Role" if watched else "ClusterRole")
    assert len(roles) == max(len(watched), 1)
    for role in roles:
        assert secret_rules(role) == [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": ["mlflow-credentials"],
                "verbs": ["get"],
            }
        ]


@pytest.mark.parametrize("watched", [[], WATCHED], ids=["cluster-wide", "namespaced"])
def test_secret_access_can_be_turned_off(watched: list[str]) -> None:
    objects = render({"watch": {"namespaces": watched}, "rbac": {"readSecrets": False}})
    roles = by_kind(objects, "Role") + by_kind(objects, "ClusterRole")
    assert roles
    for role in roles:
        assert not secret_rules(role), role["metadata"]
    # Only the Secret rule goes: the operator keeps every other right.
    workload_role = by_kind(objects, "Role")[0] if watched else one(objects, "ClusterRole")
    assert flatten(workload_role).items() >= WORKLOAD.items()


def test_secret_names_without_secret_access_are_refused() -> None:
    with pytest.raises(AssertionError, match=r"rbac\.secretNames: set, but rbac\.readSecrets is false"):
        render({"rbac": {"readSecrets": False, "secretNames": ["mlflow-credentials"]}})


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    kinds = {o["kind"] for o in render({"rbac": {"create": False}})}
    assert not kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
