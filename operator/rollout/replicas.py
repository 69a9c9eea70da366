"""Weight -> replica counts, and the weight a replica split actually gives.

Worked examples (total = spec.serving.replicas):

| total | weight | canary = ceil(total*w/100) | stable (replica ratio) | published weight |
|------:|-------:|---------------------------:|-----------------------:|-----------------:|
|   3   |   10   |   1                        |   2                    |  33              |
|   4   |   50   |   2                        |   2                    |  50              |
|  10   |    5   |   1                        |   9                    |  10              |
|   5   |  100   |   5                        |   0                    | 100              |
|   5   |    0   |   0                        |   5                    |   0              |
|   0   |   40   |   0                        |   0                    |   0              |

Under the replica ratio router the split *is* the routing, so the published weight is the canary's
share of pods, never less than asked (a canary of 1 pod in 3 takes a third of the traffic). Under a
traffic router the canary is still sized by its weight (extra GPU capacity is real money), and
stable keeps `total` pods unless `dynamicStableScale`, where it keeps ceil(total*(100-w)/100).
"""

from __future__ import annotations

import math

from modelramp.operator.api.types import IntOrPercent
from modelramp.operator.routers.replica_ratio import ReplicaRatioRouter, ReplicaSplit, canary_replicas


def ratio_stable_replicas(total: int, weight: int) -> int:
    """Stable pods beside the canary under the replica ratio router: the rest of `total`."""
    return total - canary_replicas(total, weight)


def dynamic_stable_replicas(total: int, weight: int) -> int:
    """Stable pods under a traffic router with dynamicStableScale: enough for its own share."""
    return canary_replicas(total, 100 - weight)


def published_ratio_weight(total: int, weight: int) -> int:
    """The canary's share of the traffic (percent, rounded) when the pods are split for `weight`;
    0 without pods."""
    router = ReplicaRatioRouter()
    given = router.weights(router.desired_route(ReplicaSplit(total, 0), "", "", weight), "", "")
    return given.canary if given else 0


def surge_pods(total: int, max_surge: IntOrPercent) -> int:
    """maxSurge as a pod count: an integer, or a percentage of `total` rounded up."""
    if isinstance(max_surge, int):
        return max_surge
    return math.ceil(total * int(max_surge.rstrip("%")) / 100)


def ratio_stable_during_shift(total: int, from_weight: int, to_weight: int, max_surge: IntOrPercent) -> int:
    """Stable pods while the canary grows from `from_weight` to `to_weight` (replica ratio).

    Stable keeps the pods it had until the canary's new pods are Ready, as far as maxSurge allows,
    but never fewer than it needs at the higher weight; shrinking the canary (a rollback) restores
    stable to its share of the lower weight first.
    """
    if to_weight <= from_weight:
        return ratio_stable_replicas(total, to_weight)
    budget = total + surge_pods(total, max_surge) - canary_replicas(total, to_weight)
    return max(
        ratio_stable_replicas(total, to_weight), min(ratio_stable_replicas(total, from_weight), budget)
    )
