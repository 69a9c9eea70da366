"""The replica ratio router: no mesh, one Service in front of both tracks, traffic follows pods.

The routing object is the split of pods between the tracks; `<name>` selects the pods of both, so
a canary of 1 pod beside 2 stable pods takes a third of the requests (kube-proxy balances per
connection, so the split holds on average, not per request). Blue-green instead points `<name>` at
one track (`service_selector`), since a preview must take no traffic.
"""

from __future__ import annotations

from typing import NamedTuple

from modelramp.operator.rollout.replicas import canary_replicas
from modelramp.operator.routers.base import Weights

NAME_LABEL = "modelramp.dev/name"
TRACK_LABEL = "modelramp.dev/track"


class ReplicaSplit(NamedTuple):
    """Pods of each track (the replica ratio router's routing object)."""

    stable: int
    canary: int


class ReplicaRatioRouter:
    """`TrafficRouter[ReplicaSplit]`: splits the same total number of pods by weight."""

    def desired_route(self, route: ReplicaSplit, stable: str, canary: str, weight: int) -> ReplicaSplit:
        total = route.stable + route.canary
        wanted = canary_replicas(total, weight)
        return ReplicaSplit(stable=total - wanted, canary=wanted)

    def weights(self, route: ReplicaSplit) -> Weights | None:
        total = route.stable + route.canary
        if total == 0:
            return None
        return Weights.of_canary(round(100 * route.canary / total))


def service_selector(name: str, active: str | None) -> dict[str, str]:
    """Selector of the `<name>` Service: every track's pods, or only `active`'s."""
    selector = {NAME_LABEL: name}
    if active is not None:
        selector[TRACK_LABEL] = active
    return selector
