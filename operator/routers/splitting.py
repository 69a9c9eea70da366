"""What every router that splits requests itself (Gateway API, Istio, NGINX) shares: pod counts
sized by weight, and the `<name>` Service in front of one track at a time.

The canary gets the pods its share needs; stable keeps its full size unless `dynamicStableScale`
(see `pods`). The weight in effect is what the routing object says, read back each tick.
"""

from __future__ import annotations

from modelramp.operator.api.spec import CanaryStrategy
from modelramp.operator.routers.base import Track
from modelramp.operator.routers.pods import dynamic_stable_pods, weighted_pods


class SplittingRouter:
    """The pod and Service half of `TrafficRouter` for routers that split requests themselves."""

    def share(self, total: int, weight: int) -> int:
        return weight

    def canary_pods(self, total: int, weight: int) -> int:
        return weighted_pods(total, weight)

    def stable_pods(self, total: int, weight: int) -> int:
        return dynamic_stable_pods(total, weight)

    def canary_plan(self, total: int, live: int, target: int, strategy: CanaryStrategy) -> tuple[int, int]:
        canary = weighted_pods(total, max(live, target))
        if strategy.dynamic_stable_scale:
            return dynamic_stable_pods(total, min(live, target)), canary
        return total, canary

    def apex_track(self, canary_strategy: bool, weight: int) -> Track | None:
        return "canary" if weight == 100 else "stable"
