"""The engine's view of the traffic router chosen in `spec.trafficRouting`.

What weight the router gives the canary now (`live_weight`: read back from the HTTPRoute under
the Gateway API, the published weight itself under the replica ratio, where the pods are the
route), how many pods each track needs before a weight may be published (`ready_for`), and
the route patch to write.
"""

from __future__ import annotations

from typing import Any

from modelramp.operator.api.status import ModelDeploymentStatus
from modelramp.operator.rollout.objects import track_name
from modelramp.operator.rollout.replicas import (
    dynamic_stable_replicas,
    published_ratio_weight,
    ratio_stable_replicas,
)
from modelramp.operator.rollout.tick import Tick, Transition, canary_track_revision
from modelramp.operator.routers.gateway_api import GatewayApiRouter, check_route
from modelramp.operator.routers.replica_ratio import canary_replicas

SUPPORTED_ROUTERS = ("replicaRatio", "gatewayAPI")


def unsupported_router(tick: Tick) -> str | None:
    """Why the spec's router can't be used by this engine, or None."""
    routing = tick.spec.traffic_routing
    for field, value in (("istio", routing.istio), ("nginx", routing.nginx)):
        if value is not None:
            return (
                f"spec.trafficRouting.{field}: not supported by this operator version "
                f"(supported: {', '.join(SUPPORTED_ROUTERS)})"
            )
    return None


def uses_gateway(tick: Tick) -> bool:
    return tick.spec.traffic_routing.gateway_api is not None


def weight_scales_stable(tick: Tick) -> bool:
    """Whether stable's pods follow the weight (replica ratio canary, or dynamicStableScale)."""
    canary = tick.canary_strategy
    return canary is not None and (not uses_gateway(tick) or canary.dynamic_stable_scale)


def route_weight(tick: Tick) -> int | None:
    """The canary weight the HTTPRoute gives now; None without a readable route of ours."""
    if not uses_gateway(tick) or tick.observed.route is None:
        return None
    try:
        weights = GatewayApiRouter().weights(
            tick.observed.route, track_name(tick.md, "stable"), track_name(tick.md, "canary")
        )
    except ValueError:
        return None
    return weights.canary if weights else None


def live_weight(tick: Tick, status: ModelDeploymentStatus) -> int:
    """The canary weight in effect: the route's under the Gateway API (while the route can't be
    read, the share it was last seen giving, so nothing scales down on a guess), else the
    published one (the pods are the route)."""
    if not uses_gateway(tick):
        return status.last_set_weight or 0
    read = route_weight(tick)
    return status.canary_weight if read is None else read


def published(tick: Tick, weight: int) -> dict[str, int]:
    """Status fields for publishing `weight`. `canaryWeight` is the share the canary really gets:
    under the Gateway API it is read back from the route (`observe_route`), under the replica
    ratio it is the canary's share of the pods."""
    fields = {"last_set_weight": weight}
    if not uses_gateway(tick):
        fields["canary_weight"] = published_ratio_weight(tick.total, weight)
    return fields


def observe_route(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """The HTTPRoute gives the canary another share than status says: record what it gives."""
    read = route_weight(tick)
    if read is None or read == status.canary_weight:
        return None
    return Transition(status.model_copy(update={"canary_weight": read}))


def canary_needed(tick: Tick, weight: int) -> int:
    """Ready canary pods needed before `weight` may be published."""
    return canary_replicas(tick.total, weight)


def stable_needed(tick: Tick, weight: int) -> int:
    """Ready stable pods needed before `weight` may be published (stable's share of the rest)."""
    if tick.canary_strategy is not None and not uses_gateway(tick):
        return ratio_stable_replicas(tick.total, weight)
    return dynamic_stable_replicas(tick.total, weight)


def ready_for(tick: Tick, status: ModelDeploymentStatus, weight: int) -> bool:
    """Both tracks have the Ready pods `weight` needs."""
    return tick.has_ready("canary", canary_track_revision(status), canary_needed(tick, weight)) and (
        tick.has_ready("stable", status.stable_revision, stable_needed(tick, weight))
    )


def route_patch(tick: Tick, status: ModelDeploymentStatus) -> dict[str, Any] | None:
    """The HTTPRoute patch publishing `status.lastSetWeight`, when the route shows another weight."""
    route = tick.observed.route
    if not uses_gateway(tick) or route is None:
        return None
    published = status.last_set_weight or 0
    if route_weight(tick) == published:
        return None
    try:
        return GatewayApiRouter().desired_route(
            route, track_name(tick.md, "stable"), track_name(tick.md, "canary"), published
        )
    except ValueError:
        return None


def route_problem(tick: Tick) -> str | None:
    """Why the Gateway API route can't be used, for status and a Warning event."""
    if not uses_gateway(tick):
        return None
    if tick.observed.route_error:
        return tick.observed.route_error
    if tick.observed.route is None:
        return "the HTTPRoute was not observed"
    try:
        check_route(tick.observed.route)
    except ValueError as error:
        return str(error)
    return None
