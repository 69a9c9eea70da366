"""Events come in causal order, as `kubectl describe` and `kubectl events` list them: a rollout's
RolloutStarted, then its WeightSet, then the step's AnalysisStarted, however many of them one
reconcile posts within the same second."""

from __future__ import annotations

from datetime import datetime

import pytest
from support.operator import V2, ModelDeployments, OperatorProcess, canary_md, healthy, wait_for, with_model

pytestmark = pytest.mark.cluster


def ordered_reasons(mds: ModelDeployments) -> list[str]:
    """Reasons by time, as kubectl sorts them (lastTimestamp when set, else eventTime)."""
    events = mds.events("web")

    def when(event: object) -> datetime:
        stamp = getattr(event, "last_timestamp", None) or getattr(event, "event_time", None)
        assert isinstance(stamp, datetime), event
        return stamp

    return [event.reason for event in sorted(events, key=when)]


def test_rollout_weight_and_analysis_events_are_in_causal_order(
    operator: OperatorProcess, mds: ModelDeployments
) -> None:
    metric = {"name": "errors", "builtin": "error-rate", "threshold": 0.05, "interval": "30s"}
    body = canary_md([{"setWeight": 25}, {"analysis": {"metrics": [metric]}}])
    mds.apply(body)
    healthy(mds)
    mds.apply(with_model(body, V2))
    reasons = wait_for(
        "AnalysisStarted",
        lambda: found if "AnalysisStarted" in (found := ordered_reasons(mds)) else None,
        timeout=60,
    )
    started, weight, analysis = (reasons.index(r) for r in ("RolloutStarted", "WeightSet", "AnalysisStarted"))
    assert started < weight < analysis, reasons
    # Each Event says exactly when: microseconds, and no second-granular timestamps to sort by.
    for event in mds.events("web"):
        assert event.event_time is not None and event.last_timestamp is None, event
        assert (event.reporting_component, event.action) == ("modelramp", event.reason)
