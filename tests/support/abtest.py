"""A/B test values the statistics, query and Prometheus tests share: a plan and its running test."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from modelramp.operator.api.abtest import ABTestStatus, ABTestStrategy, VariantStatus
from modelramp.operator.api.types import parse_duration

# Two variants, 50/50, decided on the servers' own error rate.
ERROR_RATE: dict[str, Any] = {
    "assignment": {"header": "u"},
    "variants": [{"name": "control", "weight": 50}, {"name": "candidate", "weight": 50}],
    "metric": {"builtin": "error-rate"},
    "duration": "1h",
}


def documented_variant(salt: str, user: str, weights: dict[str, int]) -> str:
    """A user's variant by docs/abtest.md's formula, written out apart from the server's code."""
    bucket = int.from_bytes(hashlib.sha256(f"{salt}:{user}".encode()).digest()[:8], "big") % 100
    edge = 0
    for name, weight in weights.items():
        edge += weight
        if bucket < edge:
            return name
    raise AssertionError("weights must add up to 100")


def running(plan: ABTestStrategy, started: datetime, test_id: str = "t1", **fields: Any) -> ABTestStatus:
    """`plan`'s test, assigning since `started`, ending after its duration, nothing pooled yet."""
    return ABTestStatus(
        id=test_id,
        revision="r",
        salt="r",
        phase="Running",
        created_at=started,
        started_at=started,
        ends_at=started + timedelta(seconds=parse_duration(plan.duration)),
        variants=[VariantStatus(name=v.name, revision=v.name, weight=v.weight) for v in plan.variants],
    ).model_copy(update=fields)
