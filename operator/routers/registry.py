"""The one place that maps `spec.trafficRouting` to a router: one entry per field.

To add a router: one file implementing `base.TrafficRouter`, and one entry in `ROUTERS`.
"""

from __future__ import annotations

from typing import Any, Protocol

from modelramp.operator.api.spec import TrafficRouting
from modelramp.operator.routers.base import Backends, PolicyRule, TrafficRouter
from modelramp.operator.routers.gateway_api import GatewayApiRouter
from modelramp.operator.routers.istio import IstioRouter
from modelramp.operator.routers.nginx import NginxRouter
from modelramp.operator.routers.replica_ratio import ReplicaRatioRouter


class RouterClass(Protocol):
    """A router class: built from its `trafficRouting` field's value, with the RBAC it needs."""

    @property
    def RBAC(self) -> tuple[PolicyRule, ...]: ...

    def __call__(self, spec: Any, backends: Backends) -> TrafficRouter: ...


# trafficRouting field (its Python name) -> the router class.
ROUTERS: dict[str, RouterClass] = {
    "replica_ratio": ReplicaRatioRouter,
    "gateway_api": GatewayApiRouter,
    "istio": IstioRouter,
    "nginx": NginxRouter,
}


def router_for(routing: TrafficRouting, backends: Backends) -> TrafficRouter:
    """The router the spec names (the API admits exactly one field)."""
    for field, router in ROUTERS.items():
        value = getattr(routing, field)
        if value is not None:
            return router(value, backends)
    raise ValueError(f"spec.trafficRouting: none of {', '.join(sorted(ROUTERS))} is set")


def rbac_rules() -> list[PolicyRule]:
    """Every rule any router needs (the chart grants them all)."""
    return [rule for router in ROUTERS.values() for rule in router.RBAC]
