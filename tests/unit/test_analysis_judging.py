"""Judging builtin and custom metrics from query results: thresholds, ratios, too little data."""

from __future__ import annotations

import math

import pytest

from modelramp.operator.analysis.context import QueryResult, RolloutContext, Sample
from modelramp.operator.analysis.judging import judge, plan_queries, validate_metric
from modelramp.operator.analysis.prometheus import QueryError, parse_result
from modelramp.operator.api.analysis import EffectiveMetric, Metric, effective_metric

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
        ({"threshold": 0.05}, (990, 10), (1000, 0), "Successful"),
        ({"threshold": 0.05}, (800, 200), (1000, 0), "Failed"),
        ({"maxRatioToStable": 2}, (970, 30), (980, 20), "Successful"),
        ({"maxRatioToStable": 2}, (900, 100), (980, 20), "Failed"),
        # Stable at 0 errors: only the threshold applies when there is one...
        ({"threshold": 0.05, "maxRatioToStable": 2}, (990, 10), (1000, 0), "Successful"),
        # ...and without one, the ratio bound is 0.
        ({"maxRatioToStable": 2}, (990, 10), (1000, 0), "Failed"),
        ({"threshold": 0.05}, (20, 0), (1000, 0), "Inconclusive"),
        ({"maxRatioToStable": 2}, (990, 10), (10, 0), "Inconclusive"),
    ],
)
def test_error_rate(
    fields: dict[str, object], canary: tuple[float, float], stable: tuple[float, float], verdict: str
) -> None:
    found, message, _ = run(metric(builtin="error-rate", **fields), value=requests(canary, stable))
    assert found == verdict, message


def test_error_rate_failure_names_value_threshold_and_query() -> None:
    verdict, message, value = run(
        metric(builtin="error-rate", threshold=0.05), value=requests((80, 20), (100, 0))
    )
    assert (verdict, value) == ("Failed", 0.2)
    assert "0.2 > 0.05 (threshold 0.05" in message


def test_latency_relative_to_stable() -> None:
    effective = metric(builtin="latency-p95", maxRatioToStable=1.2)
    assert run(effective, value=by_track(0.11, 0.1), samples=by_track(500, 500))[0] == "Successful"
    verdict, message, _ = run(effective, value=by_track(0.3, 0.1), samples=by_track(500, 500))
    assert verdict == "Failed"
    assert "1.2 x stable 0.1" in message


def test_latency_nan_is_inconclusive_not_zero() -> None:
    effective = metric(builtin="latency-p95", threshold=0.5)
    verdict, message, value = run(effective, value=by_track(math.nan, 0.1), samples=by_track(500, 500))
    assert (verdict, value) == ("Inconclusive", None)
    assert "NaN" in message


def predictions(canary: list[float], stable: list[float]) -> QueryResult:
    bounds = ["0.5", "1.0", "+Inf"]
    return QueryResult(
        kind="vector",
        samples=tuple(
            Sample(labels={"track": track, "le": le}, value=value)
            for track, values in (("canary", canary), ("stable", stable))
            for le, value in zip(bounds, values, strict=True)
        ),
    )


def test_drift() -> None:
    effective = metric(builtin="prediction-drift", threshold=0.2)
    assert run(effective, value=predictions([50, 100, 100], [52, 100, 100]))[0] == "Successful"
    verdict, message, value = run(effective, value=predictions([10, 100, 100], [90, 100, 100]))
    assert verdict == "Failed"
    assert value is not None and value > 0.2
    assert "KS 0.8000" in message
    assert run(effective, value=predictions([5, 10, 10], [90, 100, 100]))[0] == "Inconclusive"


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
        ({"successCondition": "result < 1"}, [], "Inconclusive"),
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
