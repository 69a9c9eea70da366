"""The replica ratio router: no mesh, one Service in front of both tracks, traffic follows pods.

The routing object is the split of pods between the tracks: the `<name>` Service selects the pods
of both, so a canary of 1 pod beside 2 stable pods takes a third of the requests (kube-proxy
balances per connection, so the split holds on average, not per request). Nothing is read back:
the weight published is in effect once the pods are (`ready_for` waits for them). The canary gets
at most the share asked for, and at least one pod (see `pods`).
"""

from __future__ import annotations

from typing import ClassVar

from modelramp.operator.api.spec import CanaryStrategy, ReplicaRatioRouting
from modelramp.operator.routers.base import (
    Backends,
    ObjectRef,
    PolicyRule,
    Reads,
    RoutingWrite,
    Track,
    Traffic,
)
from modelramp.operator.routers.pods import (
    ratio_canary_pods,
    ratio_share,
    ratio_stable_during_shift,
    ratio_stable_pods,
)


class ReplicaRatioRouter:
    """`TrafficRouter` whose route is the pods themselves."""

    RBAC: ClassVar[tuple[PolicyRule, ...]] = ()

    def __init__(self, spec: ReplicaRatioRouting | None = None, backends: Backends | None = None) -> None:
        """Nothing to configure: the spec and the backends are taken for the registry's sake."""

    def reads(self) -> list[ObjectRef]:
        return []

    def problem(self, reads: Reads) -> str | None:
        return None

    def in_effect(self, reads: Reads, published: Traffic) -> Traffic | None:
        return published

    def writes(self, reads: Reads, wanted: Traffic) -> list[RoutingWrite]:
        return []

    def share(self, total: int, weight: int) -> int:
        return ratio_share(total, weight)

    def canary_pods(self, total: int, weight: int) -> int:
        return ratio_canary_pods(total, weight)

    def stable_pods(self, total: int, weight: int) -> int:
        return ratio_stable_pods(total, weight)

    def canary_plan(self, total: int, live: int, target: int, strategy: CanaryStrategy) -> tuple[int, int]:
        canary = ratio_canary_pods(total, max(live, target))
        return ratio_stable_during_shift(total, live, target, strategy.max_surge), canary

    def apex_track(self, canary_strategy: bool, weight: int) -> Track | None:
        # A canary splits by pods behind the one Service; blue-green switches the Service.
        if canary_strategy:
            return None
        return "canary" if weight == 100 else "stable"
