"""Traffic routers through their one interface: what each writes for some traffic, read back,
gives that traffic (round trip, from any traffic written before), leaves every field the user owns
alone, and says clearly why an object can't carry the traffic. Plus the pod maths, the
registry and the RBAC each router declares."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.rollout_world import (
    ROUTINGS,
    destination_rule,
    httproute,
    ingress,
    merge_patch,
    routing_objects,
    virtual_service,
)

from modelramp.operator.api.spec import TrafficRouting
from modelramp.operator.routers.base import Backends, Reads, RoutingRead, Traffic, TrafficRouter, Weights
from modelramp.operator.routers.pods import (
    dynamic_stable_pods,
    ratio_canary_pods,
    ratio_share,
    weighted_pods,
)
from modelramp.operator.routers.registry import ROUTERS, rbac_rules, router_for

OWNER = {"apiVersion": "modelramp.dev/v1alpha1", "kind": "ModelDeployment", "name": "md", "uid": "uid-1"}
BACKENDS = Backends(
    name="md", namespace="default", stable="md-stable", canary="md-canary", port=80, owner=OWNER
)
WRITING = sorted(name for name, routing in ROUTINGS.items() if routing is not None)


def router(name: str) -> TrafficRouter:
    return router_for(TrafficRouting.model_validate(ROUTINGS[name]), BACKENDS)


def reads_of(router: TrafficRouter, objects: list[dict[str, Any]]) -> Reads:
    by_key = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    return {
        ref: RoutingRead(ref=ref, body=copy.deepcopy(by_key.get((ref.kind, ref.name))))
        for ref in router.reads()
    }


def written(router: TrafficRouter, reads: Reads, traffic: Traffic) -> Reads:
    """`reads` after the router's writes for `traffic`, applied as the API server would."""
    after = dict(reads)
    for write in router.writes(reads, traffic):
        live = reads[write.ref].body
        body = copy.deepcopy(write.body) if write.method == "apply" else merge_patch(live, write.body)
        if write.method == "merge-patch":
            assert live is not None and write.resource_version == live["metadata"]["resourceVersion"]
        after[write.ref] = RoutingRead(ref=write.ref, body=body)
    return after


traffics = st.builds(Traffic, st.integers(0, 100), st.booleans())


@pytest.mark.parametrize("name", WRITING)
@given(wanted=traffics, before=traffics)
def test_round_trip(name: str, wanted: Traffic, before: Traffic) -> None:
    r = router(name)
    reads = written(r, reads_of(r, routing_objects()), before)
    after = written(r, reads, wanted)
    assert r.problem(after) is None
    assert r.in_effect(after, wanted) == wanted
    # Written again, nothing moves (a restarted operator recomputes the same writes).
    assert r.in_effect(written(r, after, wanted), wanted) == wanted


@pytest.mark.parametrize("name", WRITING)
def test_nothing_to_read_back_before_the_first_write_of_a_fresh_object(name: str) -> None:
    r = router(name)
    reads = reads_of(r, routing_objects())
    assert r.problem(reads) is None
    # The user's objects still route to the apex Service: the router must be written.
    assert r.in_effect(reads, Traffic(0)) is None


@pytest.mark.parametrize("name", WRITING)
def test_writes_do_not_modify_their_input(name: str) -> None:
    r = router(name)
    reads = reads_of(r, routing_objects())
    frozen = copy.deepcopy(reads)
    r.writes(reads, Traffic(30, True))
    assert reads == frozen


def test_gateway_leaves_the_users_fields_alone() -> None:
    r = router("gateway")
    route = httproute()
    route["spec"]["rules"].append(
        {"matches": [{"headers": [{"name": "x", "value": "y"}]}], "backendRefs": []}
    )
    after = written(r, reads_of(r, [route]), Traffic(30))[r.reads()[0]].body
    assert after is not None
    assert after["spec"]["parentRefs"] == route["spec"]["parentRefs"]
    for before, rule in zip(route["spec"]["rules"], after["spec"]["rules"], strict=True):
        assert {k: v for k, v in rule.items() if k != "backendRefs"} == {
            k: v for k, v in before.items() if k != "backendRefs"
        }
        assert rule["backendRefs"] == [
            {"group": "", "kind": "Service", "name": "md-stable", "port": 80, "weight": 70},
            {"group": "", "kind": "Service", "name": "md-canary", "port": 80, "weight": 30},
        ]


@pytest.mark.parametrize(
    ("refs", "expected"),
    [
        ([{"name": "md", "port": 80}], None),  # the user's original backend: not ours yet
        ([{"name": "md-stable", "weight": 3}, {"name": "md-canary", "weight": 1}], Weights(75, 25)),
        ([{"name": "md-stable"}, {"name": "md-canary"}], Weights(50, 50)),  # unset weight is 1
        ([{"name": "md-stable", "weight": 0}, {"name": "md-canary", "weight": 0}], None),
        ([{"name": "md-stable"}, {"name": "md-canary"}, {"name": "other"}], None),
    ],
)
def test_gateway_reads_weights(refs: list[dict[str, Any]], expected: Weights | None) -> None:
    route = httproute()
    route["spec"]["rules"][0]["backendRefs"] = refs
    r = router("gateway")
    live = r.in_effect(reads_of(r, [route]), Traffic(0))
    assert (None if live is None else Weights.of_canary(live.weight)) == expected


def test_gateway_header_rule_and_mirror_filter() -> None:
    r = router("gateway-matches")
    route = httproute()
    keep = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "a", "value": "b"}]}}
    route["spec"]["rules"][0]["filters"] = [keep]
    (ref,) = r.reads()
    body = written(r, reads_of(r, [route]), Traffic(10, True))[ref].body
    assert body is not None
    header, rule = body["spec"]["rules"]
    assert header["name"] == "md-canary-header-0"
    assert header["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/v2"},
            "headers": [{"type": "Exact", "name": "x-canary", "value": "always"}],
        }
    ]
    assert header["filters"] == [keep]  # the user's filters apply to the canary's requests too
    assert header["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "md-canary", "port": 80, "weight": 1}
    ]
    assert rule["filters"] == [
        keep,
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"group": "", "kind": "Service", "name": "md-canary", "port": 80},
                "percent": 30,
            },
        },
    ]
    restored = written(r, {ref: RoutingRead(ref=ref, body=body)}, Traffic(0))[ref].body
    assert restored is not None
    (only,) = restored["spec"]["rules"]
    assert only["filters"] == [keep] and only["matches"] == route["spec"]["rules"][0]["matches"]


def test_gateway_routes_to_inference_pools_by_weight() -> None:
    r = router("gateway-pools")
    reads = written(r, reads_of(r, routing_objects()), Traffic(20, True))
    body = reads[r.reads()[0]].body
    assert body is not None
    header, rule = body["spec"]["rules"]
    pool = {"group": "inference.networking.k8s.io", "kind": "InferencePool"}
    assert rule["backendRefs"] == [
        {**pool, "name": "md-stable-pool", "weight": 80},
        {**pool, "name": "md-canary-pool", "weight": 20},
    ]
    assert header["backendRefs"] == [{**pool, "name": "md-canary-pool", "weight": 1}]
    # The mirror keeps to the canary Service: a RequestMirror to a pool is not portable.
    assert rule["filters"][-1]["requestMirror"]["backendRef"]["kind"] == "Service"
    assert r.in_effect(reads, Traffic(20, True)) == Traffic(20, True)
    # Services of the same names are not the pools.
    services = copy.deepcopy(body)
    for ref in services["spec"]["rules"][1]["backendRefs"]:
        ref.update(group="", kind="Service")
    route_ref = r.reads()[0]
    assert (
        r.in_effect({**reads, route_ref: RoutingRead(ref=route_ref, body=services)}, Traffic(20, True))
        is None
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda pool: pool["spec"]["selector"]["matchLabels"].pop("modelramp.dev/track"), "must hold"),
        (
            lambda pool: pool["spec"]["selector"]["matchLabels"].update({"modelramp.dev/name": "x"}),
            "must hold",
        ),
        (lambda pool: pool["spec"].update(targetPorts=[{"number": 9000}]), "lack the serving port 8080"),
    ],
)
def test_an_inference_pool_that_does_not_select_its_track_is_named(change: Any, problem: str) -> None:
    r = router("gateway-pools")
    objects = routing_objects()
    canary = next(o for o in objects if o["metadata"]["name"] == "md-canary-pool")
    change(canary)
    found = r.problem(reads_of(r, objects))
    assert found is not None and "InferencePool default/md-canary-pool" in found and problem in found
    assert r.writes(reads_of(r, objects), Traffic(10)) == []


def test_a_missing_inference_pool_is_named() -> None:
    r = router("gateway-pools")
    objects = [o for o in routing_objects() if o["metadata"]["name"] != "md-stable-pool"]
    assert r.problem(reads_of(r, objects)) == "InferencePool default/md-stable-pool not found"


def test_istio_weights_header_route_and_mirror_on_the_named_route_only() -> None:
    r = router("istio")
    service = written(r, reads_of(r, routing_objects()), Traffic(30, True))[r.reads()[0]].body
    assert service is not None
    header, primary, other = service["spec"]["http"]
    assert other == virtual_service()["spec"]["http"][1]  # another team's route: untouched
    assert (
        primary["retries"] == {"attempts": 2}
        and primary["match"] == virtual_service()["spec"]["http"][0]["match"]
    )
    assert primary["route"] == [
        {"destination": {"host": "md-stable"}, "weight": 70},
        {"destination": {"host": "md-canary"}, "weight": 30},
    ]
    assert primary["mirror"] == {"host": "md-canary"} and primary["mirrorPercentage"] == {"value": 20.0}
    # The header route takes the managed route's matches, each with the header too, to the canary.
    assert header["name"] == "md-canary-header-primary"
    assert header["match"] == [
        {"uri": {"prefix": "/v2/models/md"}, "headers": {"x-canary": {"exact": "always"}}},
        {"uri": {"prefix": "/v2/health"}, "headers": {"x-canary": {"exact": "always"}}},
    ]
    assert header["route"] == [{"destination": {"host": "md-canary"}, "weight": 100}]
    assert header["retries"] == {"attempts": 2} and "mirror" not in header
    # Restored (an abort): the weights back, the header route and the mirror gone.
    restored = written(r, {r.reads()[0]: RoutingRead(ref=r.reads()[0], body=service)}, Traffic(0, False))
    body = restored[r.reads()[0]].body
    assert body is not None
    assert [route.get("name") for route in body["spec"]["http"]] == ["primary", "other-team"]
    assert "mirror" not in body["spec"]["http"][0] and "mirrorPercentage" not in body["spec"]["http"][0]


def test_istio_routes_to_destination_rule_subsets_and_checks_them() -> None:
    r = router("istio-subsets")
    reads = written(r, reads_of(r, routing_objects()), Traffic(40))
    service = reads[r.reads()[0]].body
    assert service is not None
    assert service["spec"]["http"][0]["route"] == [
        {"destination": {"host": "md", "subset": "stable"}, "weight": 60},
        {"destination": {"host": "md", "subset": "canary"}, "weight": 40},
    ]
    # Behind a DestinationRule, `<name>` selects both tracks; its subsets split them.
    assert r.apex_track(True, 40) is None
    wrong = destination_rule()
    wrong["spec"]["subsets"][1]["labels"] = {"version": "v2"}
    problem = r.problem(reads_of(r, [virtual_service(), wrong]))
    assert problem == (
        "DestinationRule default/md: subset canary must select the canary pods "
        "(labels modelramp.dev/track: canary)"
    )


@pytest.mark.parametrize(
    ("objects", "problem"),
    [
        ([], "VirtualService default/web not found"),
        ([{**virtual_service(), "spec": {"hosts": ["x"]}}], "VirtualService default/web: spec.http is empty"),
    ],
)
def test_istio_problems_name_the_object(objects: list[dict[str, Any]], problem: str) -> None:
    r = router("istio")
    found = r.problem(reads_of(r, objects))
    assert found is not None and found.startswith(problem)


def test_istio_route_that_is_not_there_is_named() -> None:
    r = router_for(
        TrafficRouting.model_validate({"istio": {"virtualService": "web", "routes": ["primary", "missing"]}}),
        BACKENDS,
    )
    assert r.problem(reads_of(r, [virtual_service()])) == (
        "VirtualService default/web: no HTTP route named missing (routes: ['primary', 'other-team'])"
    )


def test_nginx_canary_ingress_copies_our_paths_with_the_canary_annotations() -> None:
    r = router("nginx")
    stable_ref, canary_ref = r.reads()
    reads = written(r, reads_of(r, routing_objects()), Traffic(25, True))
    canary = reads[canary_ref].body
    assert canary is not None
    assert canary["metadata"]["name"] == "web-canary"
    assert canary["metadata"]["ownerReferences"] == [OWNER]
    assert canary["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight": "25",
        "nginx.ingress.kubernetes.io/canary-by-header": "x-canary",
        "nginx.ingress.kubernetes.io/canary-by-header-value": "always",
        "nginx.ingress.kubernetes.io/canary-by-cookie": "canary",
    }
    assert canary["spec"] == {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": "models.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/v2/models/md",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "md-canary", "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ],
    }
    assert reads[stable_ref].body == ingress()  # the user's Ingress: never written
    restored = written(r, reads, Traffic(0, False))[canary_ref].body
    assert restored is not None
    assert restored["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight": "0",
    }


def test_nginx_refuses_a_canary_ingress_it_does_not_own_and_a_stable_one_without_our_paths() -> None:
    r = router("nginx")
    theirs = {**ingress(name="web-canary"), "metadata": {"name": "web-canary", "namespace": "default"}}
    assert r.problem(reads_of(r, [ingress(), theirs])) == (
        "Ingress default/web-canary exists and is not owned by ModelDeployment md"
    )
    assert r.problem(reads_of(r, [ingress(service="unrelated")])) == (
        "Ingress default/web: no path sends traffic to the Service md or md-stable"
    )


def test_the_stable_ingress_changing_its_paths_makes_the_canary_follow() -> None:
    r = router("nginx")
    reads = written(r, reads_of(r, routing_objects()), Traffic(25))
    moved = ingress()
    moved["spec"]["rules"][0]["host"] = "new.example.com"
    reads = {**reads, r.reads()[0]: RoutingRead(ref=r.reads()[0], body=moved)}
    assert r.in_effect(reads, Traffic(25)) is None
    canary = written(r, reads, Traffic(25))[r.reads()[1]].body
    assert canary is not None and canary["spec"]["rules"][0]["host"] == "new.example.com"


def test_unreadable_objects_are_reported_as_read() -> None:
    r = router("gateway")
    (ref,) = r.reads()
    reads = {ref: RoutingRead(ref=ref, error="HTTPRoute default/web could not be read: 403")}
    assert r.problem(reads) == "HTTPRoute default/web could not be read: 403"
    assert r.in_effect(reads, Traffic(0)) is None and r.writes(reads, Traffic(10)) == []


# --- pods -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weight", "ratio", "share", "weighted"),
    [
        (3, 10, 1, 33, 1),
        (3, 50, 1, 33, 2),  # never 2 of 3 (67 %) for a 50 % step
        (4, 50, 2, 50, 2),
        (10, 5, 1, 10, 1),
        (3, 99, 2, 67, 3),
        (5, 100, 5, 100, 5),
        (5, 0, 0, 0, 0),
        (0, 40, 0, 0, 0),
    ],
)
def test_pods_table(total: int, weight: int, ratio: int, share: int, weighted: int) -> None:
    assert ratio_canary_pods(total, weight) == ratio
    assert ratio_share(total, weight) == share
    assert weighted_pods(total, weight) == weighted


@given(total=st.integers(0, 500), weight=st.integers(0, 100))
def test_the_replica_ratio_canary_never_overshoots_its_weight(total: int, weight: int) -> None:
    pods = ratio_canary_pods(total, weight)
    assert 0 <= pods <= total
    # At most the share asked for, but for the one-pod minimum; and less than one pod short.
    assert 100 * pods <= weight * total or pods == 1
    if total and weight:
        assert pods >= 1 and (pods + 1) * 100 > weight * total
    assert dynamic_stable_pods(total, weight) + weighted_pods(total, weight) >= total


@pytest.mark.parametrize(("total", "weight", "field"), [(-1, 10, "replicas"), (3, 101, "weight")])
def test_pod_maths_rejects_bad_input(total: int, weight: int, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ratio_canary_pods(total, weight)
    with pytest.raises(ValueError, match=field):
        weighted_pods(total, weight)


# --- registry ------------------------------------------------------------------------------------


def test_every_traffic_routing_field_has_a_router() -> None:
    assert set(ROUTERS) == set(TrafficRouting.model_fields)


def test_rbac_is_what_the_routers_declare() -> None:
    rules = {(rule.api_group, rule.resource): rule.verbs for rule in rbac_rules()}
    assert rules == {
        ("gateway.networking.k8s.io", "httproutes"): {"get", "patch"},
        ("inference.networking.k8s.io", "inferencepools"): {"get"},
        ("networking.istio.io", "virtualservices"): {"get", "patch"},
        ("networking.istio.io", "destinationrules"): {"get"},
        ("networking.k8s.io", "ingresses"): {"get", "create", "patch"},
    }
