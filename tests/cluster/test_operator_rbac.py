"""RBAC proof: the operator, holding nothing but a token of the chart's ServiceAccount, drives
full canary rollouts through every router (a Gateway API HTTPRoute, to Services and to
InferencePools; an Istio VirtualService with a DestinationRule, a header route and a mirror; an
NGINX canary Ingress with header and cookie) and one with a shadow step (its ConfigMap) to
promotion, then releases the deleted ModelDeployments. A missing permission fails a rollout or
leaves a 403 in the operator's log.

The chart's RBAC objects come from `helm template` and are applied as they are; the token comes
from the TokenRequest API (`kubectl create token`), as a pod's projected token would. Before the
rollout the API server must grant the ServiceAccount exactly the rendered rules in the watched,
the release and an unrelated namespace (`kubectl auth can-i --list`), beyond what any
ServiceAccount may do: nothing else in the cluster may widen them. That the rendered rules are the
documented list is pinned by tests/unit/test_chart_rbac.py; which granted verbs this rollout never
used is printed from the API server's audit log for review.

Both modes run: cluster-wide, and namespaced-only watching one namespace while the release lives
in another. They run in a cluster of their own (about 8 s to start), because a cluster-wide
operator on the shared cluster would act on every other test's ModelDeployments.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from support.chart import render
from support.cluster import Kube, audit_events, connect, delete_cluster, start_cluster
from support.operator import (
    V2,
    ModelDeployments,
    OperatorProcess,
    at_step,
    canary_md,
    destination_rule,
    healthy,
    http_route,
    inference_pool,
    ingress,
    install_crd,
    install_peering_crds,
    route_weights,
    virtual_service,
    wait_for,
    with_model,
)

pytestmark = pytest.mark.cluster

# The chart's objects that make up the operator's identity and rights, plus the peering object
# kopf waits for; the test applies exactly these.
IDENTITY_KINDS = {
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ClusterKopfPeering",
    "KopfPeering",
}
# One row of `kubectl auth can-i --list`: (resource, non-resource URLs, resource names) -> verbs.
Rows = dict[tuple[str, str, str], frozenset[str]]
DENIED = re.compile(r"\b403\b|Forbidden")


# Every request a ServiceAccount makes, without bodies: what the operator used.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "userGroups": ["system:serviceaccounts"]}, {"level": "None"}],
}


@dataclass(frozen=True)
class OwnCluster:
    """A cluster for this module alone, auditing ServiceAccounts' requests; `kube` is admin."""

    name: str
    kube: Kube

    def requests_by(self, user: str) -> Rows:
        """The API requests `user` made so far that the API server allowed, as (resource, "[]",
        "[]") -> verbs rows like `granted`'s (resource names are not compared)."""
        rows: Rows = {}
        for event in audit_events(self.name, self.kube.kubeconfig):
            ref = event.get("objectRef")
            if event["user"]["username"] != user or ref is None or event["responseStatus"]["code"] >= 400:
                continue
            key = (
                shown_resource(ref.get("apiGroup", ""), ref["resource"], ref.get("subresource", "")),
                "[]",
                "[]",
            )
            rows[key] = rows.get(key, frozenset()) | {event["verb"]}
        return rows


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnCluster]:
    name = f"rbac-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp(name)
    policy = folder / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    try:
        kube = start_cluster(name, folder / "kubeconfig", audit_policy=policy)
        install_crd(kube)
        install_peering_crds(kube)
        yield OwnCluster(name, kube)
    finally:
        delete_cluster(name, folder / "kubeconfig")


@dataclass(frozen=True)
class Release:
    """The chart's identity objects applied for one mode: release `name` in `home`, the
    operator's ModelDeployments in `workspace`."""

    name: str
    home: str
    workspace: str
    objects: list[dict[str, Any]]

    @property
    def account(self) -> dict[str, Any]:
        [account] = [o for o in self.objects if o["kind"] == "ServiceAccount"]
        return account

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.home}:{self.account['metadata']['name']}"


def apply_identity(kube: Kube, namespaced: bool) -> Release:
    suffix = uuid.uuid4().hex[:6]
    name, home, workspace = f"rbac-{suffix}", f"ops-{suffix}", f"ml-{suffix}"
    for namespace in (home, workspace):
        kube.kubectl("create", "namespace", namespace)
    values: dict[str, Any] = {"peering": {"name": name}}
    if namespaced:
        values["watch"] = {"namespaces": [workspace]}
    objects = [o for o in render(values, release=name, namespace=home) if o["kind"] in IDENTITY_KINDS]
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    return Release(name, home, workspace, objects)


def token_kubeconfig(kube: Kube, release: Release, path: Path) -> Kube:
    """A kubeconfig for the same API server that authenticates with a token of the release's
    ServiceAccount, and nothing else."""
    account = release.account["metadata"]["name"]
    token = kube.kubectl("create", "token", account, "-n", release.home, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    [cluster] = admin["clusters"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster["cluster"]}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": "cluster", "user": account}}],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    return connect(path)


def allowed(kube: Kube, user: str, namespace: str) -> Rows:
    """What the API server says `user` may do in `namespace` (`kubectl auth can-i --list --as`)."""
    out = kube.kubectl("auth", "can-i", "--list", f"--as={user}", "-n", namespace).stdout
    header, *lines = out.splitlines()
    # kubectl pads the columns to line up, so each title's position cuts every line.
    starts = [header.index(title) for title in ("Resources", "Non-Resource URLs", "Resource Names", "Verbs")]
    ends = [*starts[1:], None]
    rows: Rows = {}
    for line in lines:
        resource, urls, names, verbs = (line[a:b].strip() for a, b in zip(starts, ends, strict=True))
        key = (resource, urls, names)
        rows[key] = rows.get(key, frozenset()) | frozenset(verbs.strip("[]").split())
    return rows


def shown_resource(group: str, plural: str, subresource: str) -> str:
    """A resource as `kubectl auth can-i --list` shows it: `plural.group/subresource`."""
    shown = f"{plural}.{group}" if group else plural
    return f"{shown}/{subresource}" if subresource else shown


def granted(objects: list[dict[str, Any]], namespace: str) -> Rows:
    """What the chart's bindings grant in `namespace`, written as `kubectl auth can-i --list` writes
    it (`resource.group/subresource`)."""
    roles = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")): o for o in objects}
    rows: Rows = {}
    for binding in objects:
        where = binding["metadata"].get("namespace")
        if binding["kind"] == "ClusterRoleBinding" or (binding["kind"], where) == ("RoleBinding", namespace):
            ref = binding["roleRef"]
            role = roles[(ref["kind"], ref["name"], where if ref["kind"] == "Role" else None)]
            for rule in role["rules"]:
                names = f"[{' '.join(rule.get('resourceNames', []))}]"
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        plural, _, sub = resource.partition("/")
                        key = (shown_resource(group, plural, sub), "[]", names)
                        rows[key] = rows.get(key, frozenset()) | frozenset(rule["verbs"])
    return rows


def beyond(rows: Rows, baseline: Rows) -> Rows:
    """The rows of `rows` left after taking away what `baseline` already allows."""
    extra = {key: verbs - baseline.get(key, frozenset()) for key, verbs in rows.items()}
    return {key: verbs for key, verbs in extra.items() if verbs}


def ignoring_names(rows: Rows) -> Rows:
    folded: Rows = {}
    for (resource, urls, _), verbs in rows.items():
        folded[(resource, urls, "[]")] = folded.get((resource, urls, "[]"), frozenset()) | verbs
    return folded


def assert_allows_exactly_the_charts_rules(kube: Kube, release: Release) -> None:
    # Every authenticated ServiceAccount may do some things (discovery, self-reviews); a
    # ServiceAccount with no bindings in the same namespace shows what they are on this cluster.
    nobody = f"system:serviceaccount:{release.home}:nobody-{uuid.uuid4().hex[:6]}"
    for namespace in (release.workspace, release.home, "default"):
        rights = beyond(allowed(kube, release.user, namespace), allowed(kube, nobody, namespace))
        listed = granted(release.objects, namespace)
        assert not beyond(rights, listed), f"{namespace}: allowed beyond the chart: {beyond(rights, listed)}"
        assert not beyond(listed, rights), f"{namespace}: chart rules not in force: {beyond(listed, rights)}"


# One ModelDeployment per router, with the routing objects its router reads.
ROUTED: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "web": ({"gatewayAPI": {"httpRoute": "web-route"}}, [http_route("web-route")]),
    "mesh": (
        {
            "istio": {
                "virtualService": "mesh-vs",
                "destinationRule": {"name": "mesh"},
                "canaryHeader": {"name": "x-canary", "value": "always"},
                "mirrorPercent": 50,
            }
        },
        [virtual_service("mesh-vs", "mesh"), destination_rule("mesh", "mesh")],
    ),
    "edge": (
        {
            "nginx": {
                "ingress": "edge-ing",
                "canaryHeader": {"name": "x-canary", "value": "1"},
                "canaryCookie": "c",
            }
        },
        [ingress("edge-ing", "edge")],
    ),
    "pool": (
        {
            "gatewayAPI": {
                "httpRoute": "pool-route",
                "inferencePools": {"stable": "pool-s", "canary": "pool-c"},
            }
        },
        [
            http_route("pool-route"),
            inference_pool("pool-s", "stable", "pool"),
            inference_pool("pool-c", "canary", "pool"),
        ],
    ),
}
# A shadow step first: the operator writes its `<name>-shadow` ConfigMap (on, then off).
SHADOWED = "twin"


ERRORS = {"name": "errors", "builtin": "error-rate", "threshold": 0.01}


def shadow_config(mds: ModelDeployments, name: str) -> dict[str, Any]:
    try:
        found = mds.core.read_namespaced_config_map(f"{name}-shadow", mds.namespace)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return {}
        raise
    config: dict[str, Any] = json.loads(found.data["shadow.json"])
    return config


def roll_out_and_delete(mds: ModelDeployments) -> None:
    """A canary through each router (pause, manual promote, timed pause) to promotion; then the
    ModelDeployments are deleted and the operator must release them."""
    steps: list[dict[str, Any]] = [
        {"setWeight": 20},
        {"pause": {}},
        {"setWeight": 60},
        {"pause": {"duration": "1s"}},
    ]
    bodies = {}
    for name, (routing, objects) in ROUTED.items():
        for body in objects:
            mds.apply(body)
        bodies[name] = canary_md(steps, name=name, trafficRouting=routing)
        mds.apply(bodies[name])
    # Measured against a Prometheus that isn't there: the shadow runs (and mirrors) until promoted.
    unreachable = {"prometheus": {"address": "http://127.0.0.1:1"}, "metrics": [ERRORS]}
    bodies[SHADOWED] = canary_md([{"shadow": {"percent": 50}}, *steps], name=SHADOWED, analysis=unreachable)
    mds.apply(bodies[SHADOWED])
    names = [*ROUTED, SHADOWED]
    for name in names:
        healthy(mds, name)
    wait_for("route at 100/0", lambda: route_weights(mds.route("web-route"), "web") == (100, 0))
    for body in bodies.values():
        mds.apply(with_model(body, V2))
    wait_for("the shadow's mirror on", lambda: "target" in shadow_config(mds, SHADOWED))
    mds.cli("promote", SHADOWED)
    wait_for("the shadow's mirror off", lambda: shadow_config(mds, SHADOWED) == {})
    for name in ROUTED:
        at_step(mds, 1, 20, name)
    # Without a router the pods are the route: 20 % of 4 pods is 1, a quarter of the requests.
    at_step(mds, 2, 25, SHADOWED)
    wait_for("route at 80/20", lambda: route_weights(mds.route("web-route"), "web") == (80, 20))
    for name in names:
        mds.cli("promote", name)
    for name in names:
        healthy(mds, name, uri=V2)
    wait_for("route back at 100/0", lambda: route_weights(mds.route("web-route"), "web") == (100, 0))
    mds.delete_all()
    wait_for(
        "owned objects garbage-collected",
        lambda: all(mds.deployment(f"{n}-{t}") is None for n in names for t in ("stable", "canary")),
        timeout=60,
    )


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "namespaced"])
def test_operator_rolls_out_with_only_the_charts_service_account(
    own_cluster: OwnCluster, namespaced: bool, tmp_path: Path
) -> None:
    kube = own_cluster.kube
    release = apply_identity(kube, namespaced)
    assert_allows_exactly_the_charts_rules(kube, release)

    as_account = token_kubeconfig(kube, release, tmp_path / "kubeconfig")
    whoami = as_account.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
    assert whoami == release.user
    watched = [release.workspace] if namespaced else []
    operator = OperatorProcess(as_account, watched, tmp_path / "operator.log", [f"--peering={release.name}"])
    mds = ModelDeployments(kube, release.workspace)
    try:
        operator.start()
        wait_for("the operator to act", lambda: "Resuming operations" in operator.log_tail(200), timeout=30)
        roll_out_and_delete(mds)
    finally:
        operator.stop()
        mds.strip_finalizers()
        print(f"--- operator log ({operator.log_path}) ---\n{operator.log_tail(200)}")
    denied = [line for line in operator.log_path.read_text().splitlines() if DENIED.search(line)]
    assert not denied, "the API server refused the operator:\n" + "\n".join(denied)
    # A review aid, not a verdict: the audit log records the request's verb only (a server-side
    # apply that creates is a `patch` though `create` is checked too), and one rollout does not walk
    # every path (blue-green scale-down deletes, registry Secrets).
    used = own_cluster.requests_by(release.user)
    unused = beyond(ignoring_names(granted(release.objects, release.workspace)), used)
    print("granted but not used by this rollout:", {key[0]: sorted(verbs) for key, verbs in unused.items()})
