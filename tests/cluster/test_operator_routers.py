"""The Istio and NGINX routers against the real API server, with Istio's networking.istio.io CRDs
installed (hack/cluster.sh, from istio.io/api at a pinned version) and the built-in Ingress API:
weights, header routes, cookies and mirrors are written, read back from the server and restored
on abort, and the user's fields are left as they were. And every sample in manifests/samples,
applied beside the objects its router reads, becomes Healthy. kwok fakes the pods, so these
tests check objects, not HTTP traffic."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from support.api_documents import SAMPLES, load_yaml
from support.operator import (
    V2,
    ModelDeployments,
    OperatorProcess,
    at_step,
    canary_md,
    destination_rule,
    healthy,
    http_route,
    ingress,
    route_weights,
    virtual_service,
    wait_for,
    with_model,
)

from modelramp.operator.api import ModelDeployment
from modelramp.operator.rollout.objects import backends_of
from modelramp.operator.routers.base import ObjectRef
from modelramp.operator.routers.registry import router_for

pytestmark = pytest.mark.cluster

PREFIX = "nginx.ingress.kubernetes.io/"
HEADER = {"name": "x-canary", "value": "always"}


def read(
    mds: ModelDeployments, api_version: str, plural: str, name: str, namespace: str | None = None
) -> Any:
    group, version = api_version.split("/")
    try:
        return mds.custom.get_namespaced_custom_object(
            group, version, namespace or mds.namespace, plural, name
        )
    except kubernetes.client.ApiException as error:
        if error.status == 404:  # the operator hasn't created it yet
            return None
        raise


def assert_left_alone(read: Callable[[], dict[str, Any] | None], seconds: float = 3.0) -> None:
    """Once it gives what is wanted, the operator writes the object no more (what it wrote reads
    back as written, server defaults and all)."""
    before = read()
    time.sleep(seconds)
    after = read()
    assert before is not None and after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "rewritten"


def service(mds: ModelDeployments, name: str = "web-vs") -> dict[str, Any]:
    body: dict[str, Any] = read(mds, "networking.istio.io/v1", "virtualservices", name)
    return body


def http_routes(mds: ModelDeployments, name: str = "web-vs") -> dict[str, dict[str, Any]]:
    return {route.get("name", ""): route for route in service(mds, name)["spec"]["http"]}


def destinations(route: dict[str, Any]) -> list[tuple[str, int]]:
    """(host or host/subset, weight) of a route's destinations."""
    found = []
    for entry in route["route"]:
        destination = entry["destination"]
        where = destination["host"] + (f"/{destination['subset']}" if "subset" in destination else "")
        found.append((where, entry.get("weight", 100)))
    return found


def user_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Everything of a routing object but what the operator owns (and server bookkeeping)."""
    spec = copy.deepcopy(body["spec"])
    for route in spec.get("http", []):
        for owned in ("route", "mirror", "mirrorPercentage"):
            route.pop(owned, None)
    spec["http"] = [r for r in spec.get("http", []) if not r.get("name", "").startswith("web-canary-header-")]
    return {"spec": spec, "labels": body["metadata"].get("labels")}


def test_istio_weights_header_route_and_mirror_are_written_and_restored_on_abort(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(virtual_service("web-vs"))
    before = user_fields(service(mds))
    routing = {
        "istio": {
            "virtualService": "web-vs",
            "routes": ["primary"],
            "canaryHeader": HEADER,
            "mirrorPercent": 25,
        }
    }
    body = canary_md([{"setWeight": 20}, {"pause": {}}], trafficRouting=routing)
    mds.apply(body)
    healthy(mds)
    wait_for(
        "VirtualService at 100/0",
        lambda: destinations(http_routes(mds)["primary"]) == [("web-stable", 100), ("web-canary", 0)],
    )
    assert "mirror" not in http_routes(mds)["primary"] and "web-canary-header-primary" not in http_routes(mds)
    assert_left_alone(lambda: service(mds))

    mds.apply(with_model(body, V2))
    at_step(mds, 1, 20)
    wait_for("header route", lambda: "web-canary-header-primary" in http_routes(mds))
    first, primary, other = service(mds)["spec"]["http"]
    assert first["name"] == "web-canary-header-primary"
    assert first["match"] == [
        {"uri": {"prefix": "/v2/models/web"}, "headers": {"x-canary": {"exact": "always"}}}
    ]
    assert destinations(first) == [("web-canary", 100)] and first["timeout"] == "10s"
    assert destinations(primary) == [("web-stable", 80), ("web-canary", 20)]
    assert primary["mirror"] == {"host": "web-canary"} and primary["mirrorPercentage"] == {"value": 25}
    assert other == virtual_service("web-vs")["spec"]["http"][1]
    assert user_fields(service(mds)) == before

    mds.cli("abort", "web")
    mds.wait_status("web", "aborted", lambda s: s.get("abort") and s.get("canaryWeight") == 0)
    wait_for(
        "VirtualService restored",
        lambda: (
            list(http_routes(mds)) == ["primary", "other-team"]
            and destinations(http_routes(mds)["primary"]) == [("web-stable", 100), ("web-canary", 0)]
            and "mirror" not in http_routes(mds)["primary"]
        ),
    )
    assert user_fields(service(mds)) == before


def test_istio_destination_rule_subsets_carry_the_weights(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(virtual_service("web-vs"))
    mds.apply(destination_rule("web"))
    routing = {"istio": {"virtualService": "web-vs", "destinationRule": {"name": "web"}}}
    body = canary_md([{"setWeight": 25}, {"pause": {}}], trafficRouting=routing)
    mds.apply(body)
    healthy(mds)
    # Behind the DestinationRule the apex Service selects both tracks: the subsets split them.
    assert mds.service("web").spec.selector == {"modelramp.dev/name": "web"}
    mds.apply(with_model(body, V2))
    at_step(mds, 1, 25)
    routes = http_routes(mds)
    # Without `routes`, every route is managed: another team's too (name the routes to avoid it).
    for name in ("primary", "other-team"):
        assert destinations(routes[name]) == [("web/stable", 75), ("web/canary", 25)]
    mds.cli("promote", "web")
    healthy(mds, uri=V2)
    wait_for(
        "subsets back at 100/0",
        lambda: destinations(http_routes(mds)["primary"]) == [("web/stable", 100), ("web/canary", 0)],
    )


def test_gateway_header_rule_and_mirror_filter_are_written_and_restored_on_abort(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(http_route("web-route"))
    user_rule = mds.route("web-route")["spec"]["rules"][0]
    routing = {"gatewayAPI": {"httpRoute": "web-route", "canaryHeader": HEADER, "mirrorPercent": 50}}
    body = canary_md([{"setWeight": 20}, {"pause": {}}], trafficRouting=routing)
    mds.apply(body)
    healthy(mds)
    mds.apply(with_model(body, V2))
    at_step(mds, 1, 20)
    wait_for("the header rule", lambda: len(mds.route("web-route")["spec"]["rules"]) == 2)
    header, rule = mds.route("web-route")["spec"]["rules"]
    assert header["name"] == "web-canary-header-0"
    assert header["matches"] == [
        {**user_rule["matches"][0], "headers": [{"type": "Exact", "name": "x-canary", "value": "always"}]}
    ]
    assert [ref["name"] for ref in header["backendRefs"]] == ["web-canary"]
    mirror = {
        "type": "RequestMirror",
        "requestMirror": {
            "backendRef": {"group": "", "kind": "Service", "name": "web-canary", "port": 80},
            "percent": 50,
        },
    }
    assert rule["filters"] == [*user_rule["filters"], mirror]
    assert [(ref["name"], ref["weight"]) for ref in rule["backendRefs"]] == [
        ("web-stable", 80),
        ("web-canary", 20),
    ]

    mds.cli("abort", "web")
    wait_for("the route restored", lambda: len(mds.route("web-route")["spec"]["rules"]) == 1)
    (restored,) = mds.route("web-route")["spec"]["rules"]
    assert restored["filters"] == user_rule["filters"] and restored["matches"] == user_rule["matches"]
    wait_for("route at 100/0", lambda: route_weights(mds.route("web-route"), "web") == (100, 0))


def canary_ingress(mds: ModelDeployments) -> dict[str, Any] | None:
    body: dict[str, Any] | None = read(mds, "networking.k8s.io/v1", "ingresses", "web-ing-canary")
    return body


def canary_annotations(mds: ModelDeployments) -> dict[str, str]:
    body = canary_ingress(mds)
    annotations = (body or {}).get("metadata", {}).get("annotations") or {}
    return {k.removeprefix(PREFIX): v for k, v in annotations.items() if k.startswith(PREFIX)}


def test_nginx_canary_ingress_weight_header_and_cookie_are_written_and_restored_on_abort(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(ingress("web-ing"))
    stable_before = read(mds, "networking.k8s.io/v1", "ingresses", "web-ing")["spec"]
    routing = {"nginx": {"ingress": "web-ing", "canaryHeader": HEADER, "canaryCookie": "canary"}}
    body = canary_md([{"setWeight": 20}, {"pause": {}}], trafficRouting=routing)
    mds.apply(body)
    healthy(mds)
    idle = {"canary": "true", "canary-weight": "0"}
    wait_for("the canary Ingress at weight 0", lambda: canary_annotations(mds) == idle)
    assert_left_alone(lambda: canary_ingress(mds))
    canary = canary_ingress(mds)
    assert canary is not None
    assert [ref["uid"] for ref in canary["metadata"]["ownerReferences"]] == [
        mds.get("web")["metadata"]["uid"]
    ]
    assert canary["spec"]["ingressClassName"] == "nginx"
    (rule,) = canary["spec"]["rules"]
    assert [(p["path"], p["backend"]["service"]["name"]) for p in rule["http"]["paths"]] == [
        ("/v2/models/web", "web-canary")
    ]

    mds.apply(with_model(body, V2))
    at_step(mds, 1, 20)
    running = {
        **idle,
        "canary-weight": "20",
        "canary-by-header": "x-canary",
        "canary-by-header-value": "always",
        "canary-by-cookie": "canary",
    }
    wait_for("the canary Ingress at 20 with header and cookie", lambda: canary_annotations(mds) == running)

    mds.cli("abort", "web")
    wait_for("the canary Ingress restored", lambda: canary_annotations(mds) == idle)
    stable = read(mds, "networking.k8s.io/v1", "ingresses", "web-ing")
    assert stable["spec"] == stable_before and stable["metadata"]["annotations"]["owner"] == "alice"
    assert not [key for key in stable["metadata"]["annotations"] if key.startswith(PREFIX)]


# --- every sample becomes Healthy ------------------------------------------------------------------


def prerequisites(md: ModelDeployment) -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace, object) the user must create before applying `md`: the routing objects its
    router reads (all but those the operator owns) and the pods' ServiceAccount."""
    name = md.metadata.name or ""
    istio = md.spec.traffic_routing.istio

    def user_object(ref: ObjectRef) -> dict[str, Any] | None:
        if ref.kind == "HTTPRoute":
            return http_route(ref.name)
        if ref.kind == "VirtualService":
            return virtual_service(ref.name, name, istio.routes if istio else None)
        if ref.kind == "DestinationRule":
            return destination_rule(ref.name, name)
        if ref.kind == "Ingress" and not ref.name.endswith("-canary"):
            return ingress(ref.name, name)
        return None

    found: list[tuple[str | None, dict[str, Any]]] = []
    for ref in router_for(md.spec.traffic_routing, backends_of(md)).reads():
        body = user_object(ref)
        if body is not None:
            found.append((ref.namespace or None, body))
    template = md.spec.serving.pod_template
    account = template.spec.get("serviceAccountName") if template and template.spec else None
    if account:
        found.append((None, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}}))
    return found


# Samples whose model is a `models:/` URI need an MLflow registry holding that version (see
# tests/cluster/test_operator_registry.py for the registry's own rollouts); every other sample,
# every router among them, is driven here. manifests/e2e/ runs real pods on node-real-1 with the
# serving image (`make e2e-rollout` drives it), which kwok's fake nodes can't stand in for.
UNREGISTERED = [
    path
    for path in SAMPLES
    if not load_yaml(path)["spec"]["model"]["uri"].startswith("models:/")
    and "manifests/e2e/" not in str(path)
]


def test_every_router_has_a_sample_driven_here() -> None:
    routers = {
        next(iter(load_yaml(path)["spec"].get("trafficRouting") or {"replicaRatio": {}}))
        for path in UNREGISTERED
    }
    assert routers == {"replicaRatio", "gatewayAPI", "istio", "nginx"}


@pytest.mark.parametrize("path", UNREGISTERED, ids=lambda p: p.stem)
def test_sample_becomes_healthy(operator: OperatorProcess, mds: ModelDeployments, path: Path) -> None:
    sample = load_yaml(path)
    name = sample["metadata"]["name"]
    md = ModelDeployment.model_validate(
        {**sample, "metadata": {**sample["metadata"], "namespace": mds.namespace}}
    )
    for namespace, body in prerequisites(md):
        where = namespace or mds.namespace
        mds.kube.kubectl("create", "namespace", where, check=False)
        mds.kube.kubectl("-n", where, "apply", "-f", "-", input=yaml.safe_dump(body))
    mds.apply(sample)
    status = mds.wait_status(name, "Healthy", lambda s: s.get("phase") == "Healthy", timeout=90)
    assert status["stableModel"]["uri"] == sample["spec"]["model"]["uri"]
    assert "route:" not in status.get("message", ""), status["message"]
