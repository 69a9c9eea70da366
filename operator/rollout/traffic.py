"""The engine's view of the traffic router chosen in `spec.trafficRouting`, through the router
interface only (`routers.base.TrafficRouter`).

What the rollout wants the router to give (`wanted`: the published weight, and the header, cookie
and mirror routes while a rollout runs with a Ready canary pod), what it gives now
(`live_weight`), how many pods each track needs before a weight may be published (`ready_for`),
and the writes that make the router give what is wanted.
"""

from __future__ import annotations

from modelramp.operator.api.status import ModelDeploymentStatus
from modelramp.operator.rollout.tick import Tick, Transition, canary_track_revision, changed, rollout_active
from modelramp.operator.routers.base import RoutingWrite, Traffic


def wanted(tick: Tick, status: ModelDeploymentStatus) -> Traffic:
    """The published weight; header, cookie and mirror routes only while the rollout runs and the
    canary has a Ready pod to take them (off again on abort, rollback and promotion)."""
    match_routes = rollout_active(tick, status) and tick.has_ready("canary", status.canary_revision, 1)
    return Traffic(status.last_set_weight or 0, match_routes)


def in_effect(tick: Tick, status: ModelDeploymentStatus) -> Traffic | None:
    return tick.router.in_effect(tick.reads, wanted(tick, status))


def live_weight(tick: Tick, status: ModelDeploymentStatus) -> int:
    """The canary weight in effect; while the router can't tell, the share it was last seen
    giving, so nothing scales down on a guess."""
    live = in_effect(tick, status)
    return status.canary_weight if live is None else live.weight


def observe_traffic(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """Record in `canaryWeight` the share of the requests the canary really gets now."""
    live = in_effect(tick, status)
    if live is None:
        return None
    share = tick.router.share(tick.total, live.weight)
    return None if share == status.canary_weight else changed(status, canary_weight=share)


def canary_needed(tick: Tick, weight: int) -> int:
    """Ready canary pods needed before `weight` may be published."""
    return tick.router.canary_pods(tick.total, weight)


def ready_for(tick: Tick, status: ModelDeploymentStatus, weight: int) -> bool:
    """Both tracks have the Ready pods `weight` needs."""
    stable = tick.router.stable_pods(tick.total, weight)
    return tick.has_ready("canary", canary_track_revision(status), canary_needed(tick, weight)) and (
        tick.has_ready("stable", status.stable_revision, stable)
    )


def routing_writes(tick: Tick, status: ModelDeploymentStatus) -> list[RoutingWrite]:
    """The writes that make the router give what is wanted; none when it already does."""
    want = wanted(tick, status)
    if in_effect(tick, status) == want:
        return []
    return tick.router.writes(tick.reads, want)


def route_lags(tick: Tick, status: ModelDeploymentStatus) -> bool:
    """The router doesn't give what is wanted yet (poll it soon)."""
    return in_effect(tick, status) != wanted(tick, status)


def route_problem(tick: Tick) -> str | None:
    """Why the router's objects can't carry the traffic, for status and a Warning event."""
    return tick.router.problem(tick.reads)
