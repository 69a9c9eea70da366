"""Judging builtin and custom metrics from query results: thresholds, ratios, too little data."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from modelramp.operator.analysis.context import QueryResult, RolloutContext, Sample
from modelramp.operator.analysis.judging import judge, plan_queries, validate_metric
from modelramp.operator.analysis.phases import metric_phase, record
from modelramp.operator.analysis.prometheus import QueryError, parse_result
from modelramp.operator.api.analysis import EffectiveMetric, Metric, effective_metric
from modelramp.operator.api.status import Measurement, MetricResult

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CONTEXT = RolloutContext(name="fraud", namespace="ml", canary_revision="abc", stable_revision="def")


def metric(**fields: object) -> EffectiveMetric:
    return effective_metric(Metric.model_validate({"name": "m", "interval": "30s", **fields}), None)


def requests(canary: tuple[float, float], stable: tuple[float, float]) -> QueryResult:
    """(ok, 5xx) request increases per track, as `sum by (track, code)` returns them."""
    samples = [
        Sample(labels={"track": track, "code": code}, value=value)
        for track, (ok, failed) in (("canary", canary), ("stable", stable))
        for code, value in (("200", ok), ("500", failed))
    ]
    return QueryResult(kind="vector", samples=tuple(samples))


def by_track(canary: float, stable: float) -> QueryResult:
    return QueryResult(
        kind="vector",
        samples=(
            Sample(labels={"track": "canary"}, value=canary),
            Sample(labels={"track": "stable"}, value=stable),
        ),
    )


def run(effective: EffectiveMetric, **results: QueryResult) -> tuple[str, str, float | None]:
    judgement = judge(effective, plan_queries(effective, CONTEXT), results)
    return judgement.verdict, judgement.message, judgement.value


@pytest.mark.parametrize(
    ("fields", "canary", "stable", "verdict"),
    [
        # 1 % 5xx on 1000 requests: the 90 % upper bound (1.5 %) is within 5 %.
        ({"threshold": 0.05}, (990, 10), (1000, 0), "Successful"),
        ({"threshold": 0.05}, (800, 200), (1000, 0), "Failed"),
        ({"maxRatioToStable": 2}, (9700, 300), (9800, 200), "Successful"),
        # 3 % vs 2 % on 1000 requests each: the ratio's upper bound (2.2) is not yet within 2.
        ({"maxRatioToStable": 2}, (970, 30), (980, 20), "Inconclusive"),
        ({"maxRatioToStable": 2}, (900, 100), (980, 20), "Failed"),
        # Stable at 0 errors: only the threshold applies when there is one...
        ({"threshold": 0.05, "maxRatioToStable": 2}, (990, 10), (1000, 0), "Successful"),
        # ...and without one, the ratio bound is 0.
        ({"maxRatioToStable": 2}, (980, 20), (1000, 0), "Failed"),
        # Too few canary requests to show 0 errors is within 5 %, and no evidence it is worse.
        ({"threshold": 0.05}, (20, 0), (1000, 0), "Inconclusive"),
        # Every 5xx on the canary, but stable has 10 requests: not significant.
        ({"maxRatioToStable": 2}, (990, 10), (10, 0), "Inconclusive"),
        # Over the threshold but no worse than stable: not the canary's fault, never a rollback.
        ({"threshold": 0.01}, (970, 30), (2910, 90), "Inconclusive"),
    ],
)
def test_error_rate(
    fields: dict[str, object], canary: tuple[float, float], stable: tuple[float, float], verdict: str
) -> None:
    found, message, _ = run(metric(builtin="error-rate", **fields), value=requests(canary, stable))
    assert found == verdict, message


def test_one_error_in_75_is_not_a_failure() -> None:
    """The old judge failed this (1.33 % > 1 %); it is no evidence against the canary."""
    verdict, message, _ = run(metric(builtin="error-rate", threshold=0.01), value=requests((74, 1), (225, 0)))
    assert verdict == "Inconclusive", message


def test_undecided_says_how_much_more_traffic_it_needs() -> None:
    effective = metric(builtin="error-rate", threshold=0.05)
    judgement = judge(effective, plan_queries(effective, CONTEXT), {"value": requests((20, 0), (1000, 0))})
    assert judgement.test is not None
    # 0 errors in n: the Clopper-Pearson 90 % upper bound is 1 - 0.1^(1/n), within 5 % from n = 45.
    needed = math.ceil(math.log(0.1) / math.log(0.95))
    assert judgement.test.more_canary_samples == needed - 20
    assert f"about {needed - 20} more canary samples" in judgement.message


def test_error_rate_failure_names_value_bound_test_and_query() -> None:
    effective = metric(builtin="error-rate", threshold=0.05)
    judgement = judge(effective, plan_queries(effective, CONTEXT), {"value": requests((80, 20), (100, 0))})
    assert (judgement.verdict, judgement.value, judgement.threshold) == ("Failed", 0.2, 0.05)
    assert judgement.test is not None
    assert judgement.test.decision == "Worse" and judgement.test.test == "fisher-exact"
    assert judgement.test.p_value <= judgement.test.alpha
    assert (judgement.test.canary_samples, judgement.test.stable_samples) == (100, 100)
    assert "worse than stable: 5xx share (stable 0) 0.2" in judgement.message
    assert "bound 0.05" in judgement.message


def test_error_rate_pools_windows() -> None:
    """No window alone shows 0 errors within 5 %, the pooled evidence does; and the pooled
    counts are the sum of the windows'."""
    effective = metric(builtin="error-rate", threshold=0.05)
    queries = plan_queries(effective, CONTEXT)
    first = judge(effective, queries, {"value": requests((30, 0), (90, 0))})
    assert first.verdict == "Inconclusive" and first.evidence is not None
    second = judge(effective, queries, {"value": requests((30, 0), (90, 0))}, prior=first.evidence)
    assert second.verdict == "Successful", second.message
    assert second.test is not None and second.test.canary_samples == 60
    assert second.test.alpha_spent == pytest.approx(2 * effective.alpha)


def histogram(bounds: list[str], canary: list[float], stable: list[float]) -> QueryResult:
    """Cumulative `le` bucket increases per track; bounds end with +Inf."""
    return QueryResult(
        kind="vector",
        samples=tuple(
            Sample(labels={"track": track, "le": le}, value=value)
            for track, values in (("canary", canary), ("stable", stable))
            for le, value in zip(bounds, values, strict=True)
        ),
    )


LATENCY_LE = ["0.01", "0.02", "0.04", "0.08", "+Inf"]


def test_latency_relative_to_stable() -> None:
    effective = metric(builtin="latency-p95", maxRatioToStable=1.5)
    same = histogram(LATENCY_LE, [100, 300, 390, 400, 400], [300, 900, 1170, 1200, 1200])
    assert run(effective, value=same)[0] == "Successful"
    slower = histogram(LATENCY_LE, [0, 20, 100, 380, 400], [300, 900, 1170, 1200, 1200])
    verdict, message, value = run(effective, value=slower)
    assert verdict == "Failed", message
    assert value is not None and value > 1.5
    assert "mann-whitney" in message


def test_latency_absolute_uses_a_confidence_bound() -> None:
    effective = metric(builtin="latency-p95", threshold=0.03)
    # The canary's point p95 is above 30 ms, but 50 requests can't put its lower bound there.
    borderline = histogram(LATENCY_LE, [5, 15, 47, 50, 50], [60, 180, 285, 300, 300])
    assert run(effective, value=borderline)[0] == "Inconclusive"
    slow = histogram(LATENCY_LE, [0, 0, 10, 400, 400], [300, 900, 1170, 1200, 1200])
    assert run(effective, value=slow)[0] == "Failed"


def test_latency_without_canary_traffic_is_undecided() -> None:
    effective = metric(builtin="latency-p95", threshold=0.5)
    verdict, message, value = run(effective, value=histogram(LATENCY_LE, [0, 0, 0, 0, 0], [1, 2, 3, 4, 4]))
    assert (verdict, value) == ("Inconclusive", None), message


def test_histograms_with_different_buckets_are_an_error() -> None:
    effective = metric(builtin="latency-p95", threshold=0.5)
    result = QueryResult(
        kind="vector",
        samples=(
            Sample(labels={"track": "canary", "le": "0.1"}, value=1),
            Sample(labels={"track": "canary", "le": "+Inf"}, value=1),
            Sample(labels={"track": "stable", "le": "0.2"}, value=1),
            Sample(labels={"track": "stable", "le": "+Inf"}, value=1),
        ),
    )
    verdict, message, _ = run(effective, value=result)
    assert verdict == "Error"
    assert "different buckets" in message


PREDICTION_LE = ["0.5", "1.0", "+Inf"]


def test_drift() -> None:
    effective = metric(builtin="prediction-drift", threshold=0.2)
    assert run(effective, value=histogram(PREDICTION_LE, [50, 100, 100], [52, 100, 100]))[0] == "Successful"
    verdict, message, value = run(effective, value=histogram(PREDICTION_LE, [10, 100, 100], [90, 100, 100]))
    assert verdict == "Failed", message
    assert value is not None and value > 0.2
    assert "KS 0.800" in message
    few = histogram(PREDICTION_LE, [5, 10, 10], [90, 100, 100])
    assert run(effective, value=few)[0] == "Inconclusive"


@pytest.mark.parametrize(
    ("conditions", "values", "verdict"),
    [
        ({"successCondition": "result < 1"}, [0.5], "Successful"),
        ({"successCondition": "result < 1"}, [2.0], "Failed"),
        ({"failureCondition": "result > 1"}, [2.0], "Failed"),
        ({"failureCondition": "result > 1"}, [0.5], "Successful"),
        ({"successCondition": "result < 1", "failureCondition": "result > 2"}, [1.5], "Inconclusive"),
        ({"successCondition": "result < 1", "failureCondition": "result > 2"}, [3.0], "Failed"),
        ({"successCondition": "result.all(x, x < 1)"}, [0.5, 0.7], "Successful"),
        ({"successCondition": "result < 1"}, [0.5, 0.7], "Error"),
        ({"successCondition": "result < 1"}, [], "Error"),
        ({"successCondition": "result < 1"}, [math.nan], "Inconclusive"),
    ],
)
def test_custom_query(conditions: dict[str, str], values: list[float], verdict: str) -> None:
    effective = metric(query='sum(x{ns="{{ namespace }}"}[{{ interval }}])', **conditions)
    result = QueryResult(kind="vector", samples=tuple(Sample(value=value) for value in values))
    found, message, _ = run(effective, value=result)
    assert found == verdict, message


def test_no_data_names_the_rendered_query() -> None:
    effective = metric(query='sum(x{ns="{{ namespace }}"}[{{ interval }}])', successCondition="result < 1")
    _, message, _ = run(effective, value=QueryResult(kind="vector"))
    assert 'returned no data: sum(x{ns="ml"}[30s])' in message


@pytest.mark.parametrize("builtin", ["error-rate", "latency-p95", "prediction-drift"])
def test_a_builtin_window_without_any_series_is_an_error_not_zero_requests(builtin: str) -> None:
    # What a window reads like while Prometheus restarts: no series for either track. Counted as
    # zero requests it would spend a measurement of `count` and pass as "not decided yet".
    verdict, message, value = run(metric(builtin=builtin, threshold=0.5), value=QueryResult(kind="vector"))
    assert (verdict, value) == ("Error", None), message
    assert "no series for either track" in message


def test_flapping_prometheus_never_passes_a_custom_metric_on_windows_without_data() -> None:
    # inconclusiveLimit 2, count 3: were the empty windows of an outage Inconclusive, two of them
    # and one good window would pass the metric on a single reading. As Errors they are measured
    # again, and the run goes on until 3 windows with data, here the next ones failing.
    effective = metric(
        query="sum(x[{{ interval }}])", successCondition="result < 1", count=3, inconclusiveLimit=2
    )
    empty, good, bad = QueryResult(kind="vector"), by_value(0.5), by_value(2.0)
    result = MetricResult(name="m")
    phases = []
    for minute, window in enumerate([empty, empty, good, empty, bad]):
        verdict = run(effective, value=window)[0]
        result = record(result, Measurement(metric="m", verdict=verdict, time=T0 + timedelta(minutes=minute)))
        phases.append(metric_phase(result, effective))
    assert phases == ["Running", "Running", "Running", "Running", "Failed"]
    assert (result.error, result.count) == (3, 2)


def by_value(value: float) -> QueryResult:
    return QueryResult(kind="scalar", samples=(Sample(value=value),))


def test_validate_metric_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"metrics\[m\].query: .*unknown variable \{\{ nam \}\}"):
        validate_metric(Metric(name="m", query="x{a='{{ nam }}'}", success_condition="result < 1"))
    with pytest.raises(ValueError, match=r"metrics\[m\].failureCondition"):
        validate_metric(Metric(name="m", query="x", failure_condition="result >"))


def test_parse_result_shapes() -> None:
    assert parse_result([1.5, "2"]) == QueryResult(kind="scalar", samples=(Sample(value=2.0),))
    vector = parse_result([{"metric": {"track": "canary"}, "value": [1.5, "NaN"]}])
    assert vector.kind == "vector" and math.isnan(vector.samples[0].value)
    with pytest.raises(QueryError, match="range vector"):
        parse_result([{"metric": {}, "values": [[1.5, "1"]]}])
