"""The Gateway API router: weighted `backendRefs` on the user's HTTPRoute.

The user owns the HTTPRoute (parents, hostnames, matches, filters); the operator owns only the
backends of its rules: every rule sends `100 - w` to `<name>-stable` and `w` to `<name>-canary`.
`spec.rules` is an atomic list in the Gateway API schema, so the patch carries every rule in full
(copied from the live route, backendRefs replaced) as a JSON merge patch of `spec.rules`, guarded
by the resourceVersion it was computed from; the route's other fields are left alone.
"""

from __future__ import annotations

import copy
from typing import Any

from modelramp.operator.routers.base import Weights

Route = dict[str, Any]

GATEWAY_GROUP = "gateway.networking.k8s.io"
SERVICE_PORT = 80


def check_route(route: Route) -> None:
    """Raises ValueError saying why the route can't carry the model's traffic."""
    _rules(route)


def _rules(route: Route) -> list[dict[str, Any]]:
    rules = route.get("spec", {}).get("rules")
    if not isinstance(rules, list) or not rules:
        name = route.get("metadata", {}).get("name", "?")
        raise ValueError(f"HTTPRoute {name}: spec.rules is empty, so there is no rule to route to the model")
    return rules


def _backend(service: str, weight: int, port: int) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": service, "port": port, "weight": weight}


class GatewayApiRouter:
    """`TrafficRouter[Route]` over an HTTPRoute as the API server returns it."""

    def __init__(self, port: int = SERVICE_PORT) -> None:
        self.port = port

    def desired_route(self, route: Route, stable: str, canary: str, weight: int) -> Route:
        """The merge patch giving every rule the two weighted backends (identity fields included)."""
        split = Weights.of_canary(weight)
        rules = []
        for rule in _rules(route):
            patched = copy.deepcopy(rule)
            patched["backendRefs"] = [
                _backend(stable, split.stable, self.port),
                _backend(canary, split.canary, self.port),
            ]
            rules.append(patched)
        metadata = route.get("metadata", {})
        # With the resourceVersion read, a route edited meanwhile makes the patch fail (409) and be
        # recomputed, rather than overwrite the edit with rules copied from the older route.
        identity = {key: metadata[key] for key in ("name", "namespace", "resourceVersion") if key in metadata}
        return {
            "apiVersion": route.get("apiVersion", f"{GATEWAY_GROUP}/v1"),
            "kind": "HTTPRoute",
            "metadata": identity,
            "spec": {"rules": rules},
        }

    def weights(self, route: Route, stable: str, canary: str) -> Weights | None:
        """The canary's share when every rule splits between exactly our two backends in the same
        proportion; None otherwise (the route must then be written)."""
        shares: set[int] = set()
        for rule in _rules(route):
            refs = {ref.get("name"): ref for ref in rule.get("backendRefs") or []}
            if set(refs) != {stable, canary} or len(rule["backendRefs"]) != 2:
                return None
            # An unset weight is 1 in the Gateway API.
            stable_weight = int(refs[stable].get("weight", 1))
            canary_weight = int(refs[canary].get("weight", 1))
            if stable_weight + canary_weight == 0:
                return None
            shares.add(round(100 * canary_weight / (stable_weight + canary_weight)))
        if len(shares) != 1:
            return None
        return Weights.of_canary(shares.pop())
