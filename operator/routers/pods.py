"""Weight -> pod counts: how many pods each track needs for a canary weight.

Two rules, one per kind of router:

- **The pods are the route** (the replica ratio router: one Service selects both tracks, so each
  pod takes an equal part of the requests). The canary gets at most the share asked for, and at
  least one pod (a canary without pods is no canary): floor(total x w / 100), minimum 1 for w > 0.
  Stable keeps the rest. With 3 replicas, `setWeight: 50` gives the canary 1 pod of 3 (33 %), never
  2 of 3 (67 %): a canary must not take more traffic than the step allows.
- **A router splits the requests** (Gateway API, Istio, NGINX): the canary is sized for its share,
  ceil(total x w / 100) pods (extra GPU capacity is real money); stable keeps `total` pods unless
  `dynamicStableScale`, where it keeps ceil(total x (100 - w) / 100).

Worked examples (total = spec.serving.replicas):

| total | weight | canary, pods are the route | share it gets | canary, router splits |
|------:|-------:|---------------------------:|--------------:|----------------------:|
|   3   |   10   |   1 (the minimum)          |  33           |   1                   |
|   3   |   50   |   1                        |  33           |   2                   |
|   4   |   50   |   2                        |  50           |   2                   |
|  10   |    5   |   1 (the minimum)          |  10           |   1                   |
|   3   |   99   |   2                        |  67           |   3                   |
|   5   |  100   |   5                        | 100           |   5                   |
|   5   |    0   |   0                        |   0           |   0                   |
|   0   |   40   |   0                        |   0           |   0                   |
"""

from __future__ import annotations

import math

from modelramp.operator.api.types import IntOrPercent


def _check(total: int, weight: int) -> None:
    if total < 0:
        raise ValueError(f"replicas must be >= 0, got {total}")
    if not 0 <= weight <= 100:
        raise ValueError(f"weight must be within 0..100, got {weight}")


def weighted_pods(total: int, weight: int) -> int:
    """Pods out of `total` that serve `weight` percent of the requests a router sends them."""
    _check(total, weight)
    return math.ceil(total * weight / 100)


def ratio_canary_pods(total: int, weight: int) -> int:
    """Canary pods out of `total` when the pods are the route: at most `weight` percent of them,
    at least one for a weight above 0."""
    _check(total, weight)
    if weight == 0 or total == 0:
        return 0
    return max(1, total * weight // 100)


def ratio_stable_pods(total: int, weight: int) -> int:
    """Stable pods beside the canary when the pods are the route: the rest of `total`."""
    return total - ratio_canary_pods(total, weight)


def ratio_share(total: int, weight: int) -> int:
    """The canary's share of the requests (percent, rounded) when the pods are split for `weight`;
    0 without pods."""
    return round(100 * ratio_canary_pods(total, weight) / total) if total else 0


def dynamic_stable_pods(total: int, weight: int) -> int:
    """Stable pods under a router with dynamicStableScale: enough for its own share."""
    return weighted_pods(total, 100 - weight)


def surge_pods(total: int, max_surge: IntOrPercent) -> int:
    """maxSurge as a pod count: an integer, or a percentage of `total` rounded up."""
    if isinstance(max_surge, int):
        return max_surge
    return math.ceil(total * int(max_surge.rstrip("%")) / 100)


def ratio_stable_during_shift(total: int, from_weight: int, to_weight: int, max_surge: IntOrPercent) -> int:
    """Stable pods while the canary grows from `from_weight` to `to_weight` (pods are the route).

    Stable keeps the pods it had until the canary's new pods are Ready, as far as maxSurge allows,
    but never fewer than it needs at the higher weight; shrinking the canary (a rollback) restores
    stable to its share of the lower weight first.
    """
    if to_weight <= from_weight:
        return ratio_stable_pods(total, to_weight)
    budget = total + surge_pods(total, max_surge) - ratio_canary_pods(total, to_weight)
    return max(ratio_stable_pods(total, to_weight), min(ratio_stable_pods(total, from_weight), budget))
