"""Traffic routers: what each writes for a weight, read back, gives that weight (round trip), and
the Gateway API router leaves every field of the user's HTTPRoute but the backends alone."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.rollout_world import httproute, merge_patch

from modelramp.operator.routers.base import Weights
from modelramp.operator.routers.gateway_api import GatewayApiRouter
from modelramp.operator.routers.replica_ratio import ReplicaRatioRouter, ReplicaSplit, canary_replicas

STABLE, CANARY = "md-stable", "md-canary"


def two_rule_route() -> dict[str, Any]:
    route = httproute()
    route["spec"]["rules"].append(
        {
            "matches": [{"headers": [{"name": "x-canary", "value": "always"}]}],
            "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": []}}],
            "backendRefs": [{"name": STABLE, "port": 80, "weight": 1}, {"name": CANARY, "port": 80}],
        }
    )
    return route


@given(weight=st.integers(0, 100), start=st.integers(0, 100))
def test_gateway_round_trip(weight: int, start: int) -> None:
    router = GatewayApiRouter()
    route = merge_patch(two_rule_route(), router.desired_route(two_rule_route(), STABLE, CANARY, start))
    written = merge_patch(route, router.desired_route(route, STABLE, CANARY, weight))
    assert router.weights(written, STABLE, CANARY) == Weights(100 - weight, weight)


def test_gateway_patch_leaves_the_users_fields_alone() -> None:
    route = two_rule_route()
    written = merge_patch(route, GatewayApiRouter().desired_route(route, STABLE, CANARY, 30))
    for field in ("parentRefs", "hostnames"):
        assert written["spec"][field] == route["spec"][field]
    assert written["metadata"] == route["metadata"]
    for before, after in zip(route["spec"]["rules"], written["spec"]["rules"], strict=True):
        assert {k: v for k, v in after.items() if k != "backendRefs"} == {
            k: v for k, v in before.items() if k != "backendRefs"
        }
        assert after["backendRefs"] == [
            {"group": "", "kind": "Service", "name": STABLE, "port": 80, "weight": 70},
            {"group": "", "kind": "Service", "name": CANARY, "port": 80, "weight": 30},
        ]


def test_gateway_patch_does_not_modify_its_input() -> None:
    route = two_rule_route()
    frozen = copy.deepcopy(route)
    GatewayApiRouter().desired_route(route, STABLE, CANARY, 50)
    assert route == frozen


@pytest.mark.parametrize(
    ("refs", "expected"),
    [
        ([{"name": "md", "port": 80}], None),  # the user's original backend: not ours yet
        ([{"name": STABLE, "weight": 3}, {"name": CANARY, "weight": 1}], Weights(75, 25)),
        ([{"name": STABLE}, {"name": CANARY}], Weights(50, 50)),  # unset weight is 1
        ([{"name": STABLE, "weight": 0}, {"name": CANARY, "weight": 0}], None),
        ([{"name": STABLE}, {"name": CANARY}, {"name": "other"}], None),
    ],
)
def test_gateway_reads_weights(refs: list[dict[str, Any]], expected: Weights | None) -> None:
    route = httproute()
    route["spec"]["rules"][0]["backendRefs"] = refs
    assert GatewayApiRouter().weights(route, STABLE, CANARY) == expected


def test_gateway_rules_that_disagree_have_no_weight() -> None:
    route = two_rule_route()  # rule 0: the apex Service; rule 1: ours at 50/50
    rule = route["spec"]["rules"][0]
    rule["backendRefs"] = [{"name": STABLE, "weight": 90}, {"name": CANARY, "weight": 10}]
    assert GatewayApiRouter().weights(route, STABLE, CANARY) is None


def test_gateway_route_without_rules_is_a_clear_error() -> None:
    route = httproute()
    route["spec"]["rules"] = []
    with pytest.raises(ValueError, match=r"HTTPRoute web: spec.rules is empty"):
        GatewayApiRouter().desired_route(route, STABLE, CANARY, 10)


@given(total=st.integers(0, 500), weight=st.integers(0, 100))
def test_replica_ratio_round_trip(total: int, weight: int) -> None:
    router = ReplicaRatioRouter()
    split = router.desired_route(ReplicaSplit(stable=total, canary=0), STABLE, CANARY, weight)
    assert split.stable + split.canary == total
    given_weights = router.weights(split, STABLE, CANARY)
    if total == 0:
        assert given_weights is None
        return
    assert given_weights is not None
    # Never less than asked, and less than one pod's share more.
    assert weight <= given_weights.canary + 0.5
    assert given_weights.canary - weight < 100 / total + 0.5
    # Writing the same weight again changes nothing (a restarted operator re-writes it).
    assert router.desired_route(split, STABLE, CANARY, weight) == split


@pytest.mark.parametrize(
    ("total", "weight", "canary"),
    [(3, 10, 1), (4, 50, 2), (10, 5, 1), (5, 100, 5), (5, 0, 0), (0, 40, 0), (3, 67, 3)],
)
def test_canary_replicas_table(total: int, weight: int, canary: int) -> None:
    assert canary_replicas(total, weight) == canary


@pytest.mark.parametrize(("total", "weight", "field"), [(-1, 10, "replicas"), (3, 101, "weight")])
def test_canary_replicas_rejects_bad_input(total: int, weight: int, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        canary_replicas(total, weight)
