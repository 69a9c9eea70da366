"""Which metrics are due, from status alone: restart-safe and never measuring a decided metric."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelramp.operator.analysis.phases import record
from modelramp.operator.analysis.scheduling import due_metrics, next_measurement_time, next_wakeup
from modelramp.operator.api.analysis import EffectiveMetric, Metric, effective_metric
from modelramp.operator.api.status import Measurement, MetricResult, Verdict

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def metric(name: str, **fields: object) -> EffectiveMetric:
    return effective_metric(
        Metric.model_validate({"name": name, "builtin": "error-rate", "threshold": 0.05, **fields}), None
    )


def measured(name: str, *verdicts: tuple[Verdict, float]) -> MetricResult:
    result = MetricResult(name=name)
    for verdict, seconds in verdicts:
        result = record(
            result, Measurement(metric=name, verdict=verdict, time=T0 + timedelta(seconds=seconds))
        )
    return result


def test_first_measurement_after_initial_delay() -> None:
    fast, slow = metric("fast", interval="30s", initialDelay="0s"), metric("slow", initialDelay="20s")
    assert due_metrics([fast, slow], [], T0, T0) == [fast]
    assert due_metrics([fast, slow], [], T0, T0 + timedelta(seconds=20)) == [fast, slow]


def test_a_builtin_waits_one_interval_for_its_window_to_fill_a_query_does_not() -> None:
    builtin = metric("builtin", interval="30s")
    query = effective_metric(
        Metric.model_validate({"name": "query", "query": "vector(1)", "successCondition": "result > 0"}), None
    )
    assert due_metrics([builtin, query], [], T0, T0) == [query]
    assert due_metrics([builtin, query], [], T0, T0 + timedelta(seconds=30)) == [builtin, query]


def test_next_measurement_one_interval_after_the_last() -> None:
    effective = metric("m", interval="30s")
    result = measured("m", ("Inconclusive", 0))
    assert due_metrics([effective], [result], T0, T0 + timedelta(seconds=29)) == []
    assert due_metrics([effective], [result], T0, T0 + timedelta(seconds=30)) == [effective]


def test_an_error_is_retried_sooner() -> None:
    effective = metric("m", interval="1m")
    assert next_measurement_time(effective, measured("m", ("Error", 0)), T0) == T0 + timedelta(seconds=10)


def test_a_decided_metric_is_never_due_again() -> None:
    effective = metric("m", count=2)
    # A builtin is decided by its first Successful measurement (its pooled evidence passed).
    done = measured("m", ("Inconclusive", 0), ("Successful", 60))
    failed = measured("m", ("Failed", 0))
    assert next_measurement_time(effective, done, T0) is None
    assert next_measurement_time(effective, failed, T0) is None
    assert next_wakeup([effective], [done], T0) is None


def test_wakeup_is_the_earliest_due_time() -> None:
    a, b = metric("a", interval="30s"), metric("b", interval="10s")
    results = [measured("a", ("Inconclusive", 5)), measured("b", ("Inconclusive", 0))]
    assert next_wakeup([a, b], results, T0) == T0 + timedelta(seconds=10)
