"""The replica ratio router: no mesh, one Service in front of both tracks, traffic follows pods.

The routing object is the split of pods between the tracks: the `<name>` Service selects the pods
of both, so a canary of 1 pod beside 2 stable pods takes a third of the requests (kube-proxy
balances per connection, so the split holds on average, not per request). The canary gets
ceil(total x weight / 100) pods, so it never takes less than asked; the weight it really gets
is what `weights` reports.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from modelramp.operator.routers.base import Weights


class ReplicaSplit(NamedTuple):
    """Pods of each track (the replica ratio router's routing object)."""

    stable: int
    canary: int


def canary_replicas(total: int, weight: int) -> int:
    """Pods out of `total` the canary needs to take `weight` percent of the traffic."""
    if total < 0:
        raise ValueError(f"replicas must be >= 0, got {total}")
    if not 0 <= weight <= 100:
        raise ValueError(f"weight must be within 0..100, got {weight}")
    return math.ceil(total * weight / 100)


class ReplicaRatioRouter:
    """`TrafficRouter[ReplicaSplit]`: splits the same number of pods by weight."""

    def desired_route(self, route: ReplicaSplit, stable: str, canary: str, weight: int) -> ReplicaSplit:
        total = route.stable + route.canary
        wanted = canary_replicas(total, weight)
        return ReplicaSplit(stable=total - wanted, canary=wanted)

    def weights(self, route: ReplicaSplit, stable: str, canary: str) -> Weights | None:
        total = route.stable + route.canary
        if total == 0:
            return None
        return Weights.of_canary(round(100 * route.canary / total))
