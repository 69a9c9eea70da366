"""The Gateway API router: weighted `backendRefs` on the user's HTTPRoute.

The user owns the HTTPRoute (parents, hostnames, matches, filters); the operator owns only the
backends of its rules: every rule sends `100 - w` to `<name>-stable` and `w` to `<name>-canary`.
`spec.rules` is an atomic list in the Gateway API schema, so the patch carries every rule in full
(copied from the live route, backendRefs replaced) as a JSON merge patch of `spec.rules`, guarded
by the resourceVersion it was computed from; the route's other fields are left alone.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from modelramp.operator.api.spec import GatewayApiRouting
from modelramp.operator.routers.base import (
    Backends,
    Json,
    ObjectRef,
    PolicyRule,
    Reads,
    RoutingWrite,
    Traffic,
    Weights,
)
from modelramp.operator.routers.splitting import SplittingRouter

GATEWAY_GROUP = "gateway.networking.k8s.io"
API_VERSION = f"{GATEWAY_GROUP}/v1"


def _rules(route: Json) -> list[dict[str, Any]]:
    rules = route.get("spec", {}).get("rules")
    if not isinstance(rules, list) or not rules:
        name = route.get("metadata", {}).get("name", "?")
        raise ValueError(f"HTTPRoute {name}: spec.rules is empty, so there is no rule to route to the model")
    return rules


def _backend(service: str, weight: int, port: int) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": service, "port": port, "weight": weight}


def route_patch(route: Json, backends: Backends, weight: int) -> Json:
    """The merge patch giving every rule the two weighted backends (identity fields included)."""
    split = Weights.of_canary(weight)
    rules = []
    for rule in _rules(route):
        patched = copy.deepcopy(rule)
        patched["backendRefs"] = [
            _backend(backends.stable, split.stable, backends.port),
            _backend(backends.canary, split.canary, backends.port),
        ]
        rules.append(patched)
    return {"spec": {"rules": rules}}


def route_weights(route: Json, backends: Backends) -> Weights | None:
    """The canary's share when every rule splits between exactly our two backends in the same
    proportion; None otherwise (the route must then be written)."""
    shares: set[int] = set()
    for rule in _rules(route):
        refs = {ref.get("name"): ref for ref in rule.get("backendRefs") or []}
        if set(refs) != {backends.stable, backends.canary} or len(rule["backendRefs"]) != 2:
            return None
        # An unset weight is 1 in the Gateway API.
        stable_weight = int(refs[backends.stable].get("weight", 1))
        canary_weight = int(refs[backends.canary].get("weight", 1))
        if stable_weight + canary_weight == 0:
            return None
        shares.add(round(100 * canary_weight / (stable_weight + canary_weight)))
    if len(shares) != 1:
        return None
    return Weights.of_canary(shares.pop())


class GatewayApiRouter(SplittingRouter):
    """`TrafficRouter` over the user's HTTPRoute."""

    # Read by name and patched; nothing watches HTTPRoutes.
    RBAC: ClassVar[tuple[PolicyRule, ...]] = (
        PolicyRule(GATEWAY_GROUP, "httproutes", frozenset({"get", "patch"})),
    )

    def __init__(self, spec: GatewayApiRouting, backends: Backends) -> None:
        self.backends = backends
        self.route = ObjectRef(
            api_version=API_VERSION,
            kind="HTTPRoute",
            name=spec.http_route,
            namespace=spec.namespace or backends.namespace,
        )

    def reads(self) -> list[ObjectRef]:
        return [self.route]

    def _body(self, reads: Reads) -> Json | None:
        read = reads.get(self.route)
        return read.body if read is not None else None

    def problem(self, reads: Reads) -> str | None:
        read = reads.get(self.route)
        if read is None or read.error:
            return read.error if read else f"{self.route} was not read"
        if read.body is None:
            return f"{self.route} not found"
        try:
            _rules(read.body)
        except ValueError as error:
            return str(error)
        return None

    def in_effect(self, reads: Reads, published: Traffic) -> Traffic | None:
        body = self._body(reads)
        if body is None or self.problem(reads):
            return None
        weights = route_weights(body, self.backends)
        # No header or mirror routes here (yet): what was published of them is all there is.
        return None if weights is None else Traffic(weights.canary, published.match_routes)

    def writes(self, reads: Reads, wanted: Traffic) -> list[RoutingWrite]:
        body = self._body(reads)
        if body is None or self.problem(reads):
            return []
        return [
            RoutingWrite(
                ref=self.route,
                method="merge-patch",
                body=route_patch(body, self.backends, wanted.weight),
                resource_version=body.get("metadata", {}).get("resourceVersion"),
            )
        ]
