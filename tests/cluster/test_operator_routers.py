"""The Istio and NGINX routers against the real API server, with Istio's networking.istio.io CRDs
installed (hack/cluster.sh, from istio.io/api at a pinned version) and the built-in Ingress API:
weights, header routes, cookies and mirrors are written, read back from the server and restored
on abort, and the user's fields are left as they were. And every sample in manifests/samples,
applied beside the objects its router reads, becomes Healthy. kwok fakes the pods, so these
tests check objects, not HTTP traffic."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from support.api_documents import load_yaml
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
    replicas,
    route_weights,
    virtual_service,
    wait_for,
    with_model,
)
from support.samples import UNREGISTERED, create_prerequisites

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


def pool_weights(route: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(kind, name, weight) of the first rule's backendRefs."""
    return [
        (ref.get("kind", "Service"), ref["name"], ref.get("weight", 1))
        for ref in route["spec"]["rules"][0]["backendRefs"]
    ]


def test_gateway_weights_inference_pools_and_restores_them_on_abort(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(http_route("web-route"))
    mds.apply(inference_pool("web-stable-pool", "stable"))
    mds.apply(inference_pool("web-canary-pool", "canary"))
    pools = {"stable": "web-stable-pool", "canary": "web-canary-pool"}
    routing = {"gatewayAPI": {"httpRoute": "web-route", "inferencePools": pools}}
    body = canary_md([{"setWeight": 20}, {"pause": {}}], trafficRouting=routing)
    mds.apply(body)
    healthy(mds)
    idle = [("InferencePool", "web-stable-pool", 100), ("InferencePool", "web-canary-pool", 0)]
    wait_for("the route on the pools at 100/0", lambda: pool_weights(mds.route("web-route")) == idle)
    (ref, _) = mds.route("web-route")["spec"]["rules"][0]["backendRefs"]
    assert ref == {
        "group": "inference.networking.k8s.io",
        "kind": "InferencePool",
        "name": "web-stable-pool",
        "weight": 100,
    }

    mds.apply(with_model(body, V2))
    at_step(mds, 1, 20)
    running = [("InferencePool", "web-stable-pool", 80), ("InferencePool", "web-canary-pool", 20)]
    wait_for("the pools at 80/20", lambda: pool_weights(mds.route("web-route")) == running)

    mds.cli("abort", "web")
    wait_for("the pools back at 100/0", lambda: pool_weights(mds.route("web-route")) == idle)


def test_a_pool_that_selects_other_pods_is_reported_and_left_unrouted(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    mds.apply(http_route("web-route"))
    mds.apply(inference_pool("web-stable-pool", "stable"))
    mds.apply(inference_pool("web-canary-pool", "stable"))
    pools = {"stable": "web-stable-pool", "canary": "web-canary-pool"}
    mds.apply(
        canary_md(
            [{"setWeight": 20}],
            trafficRouting={"gatewayAPI": {"httpRoute": "web-route", "inferencePools": pools}},
        )
    )
    status = mds.wait_status("web", "the pool named", lambda s: "web-canary-pool" in s.get("message", ""))
    assert "modelramp.dev/track: canary" in status["message"]
    assert [ref["name"] for ref in mds.route("web-route")["spec"]["rules"][0]["backendRefs"]] == ["web"]


def test_shadow_step_tells_the_stable_pods_where_to_copy_while_it_runs(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    metric = {"name": "errors", "builtin": "error-rate", "threshold": 0.01}
    body = canary_md(
        [{"shadow": {"percent": 40}}, {"setWeight": 50}],
        replicas=4,
        analysis={"prometheus": {"address": "http://127.0.0.1:1"}, "metrics": [metric]},
    )
    mds.apply(body)
    healthy(mds)
    stable = mds.deployment("web-stable").spec.template.spec
    assert [volume.config_map.name for volume in stable.volumes if volume.config_map] == ["web-shadow"]
    mds.apply(with_model(body, V2))
    status = mds.wait_status(
        "web",
        "the shadow running",
        lambda s: any(r.get("kind") == "Shadow" for r in s.get("analysisRuns", [])),
    )

    def config() -> dict[str, Any] | None:
        found = mds.core.read_namespaced_config_map("web-shadow", mds.namespace)
        return json.loads(found.data["shadow.json"])

    wanted = {
        "target": f"http://web-canary.{mds.namespace}.svc:80",
        "percent": 40,
        "stableVersion": status["stableRevision"],
        "canaryVersion": status["canaryRevision"],
    }
    wait_for("the mirror on", lambda: config() == wanted)
    # The mirror's pods (40 % of 4) take no real traffic: the apex Service selects stable alone.
    assert replicas(mds, "web-canary") == 2
    assert mds.service("web").spec.selector == {"modelramp.dev/name": "web", "modelramp.dev/track": "stable"}
    assert mds.status("web")["canaryWeight"] == 0
    mds.cli("abort", "web")
    wait_for("the mirror off", lambda: config() == {})


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
    create_prerequisites(mds, sample)
    mds.apply(sample)
    status = mds.wait_status(name, "Healthy", lambda s: s.get("phase") == "Healthy", timeout=90)
    assert status["stableModel"]["uri"] == sample["spec"]["model"]["uri"]
    assert "route:" not in status.get("message", ""), status["message"]
