"""An A/B decision metric's PromQL and how one window's answers become counts per variant."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from support.abtest import ERROR_RATE, running

from modelramp.operator.analysis import ab_queries
from modelramp.operator.analysis.context import QueryResult, Sample
from modelramp.operator.analysis.provider import QueryError
from modelramp.operator.api.abtest import ABTestStrategy, DecisionMetric

NAMES = ["control", "candidate"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def vector(*samples: tuple[dict[str, str], float]) -> QueryResult:
    return QueryResult(
        kind="vector", samples=tuple(Sample(labels=labels, value=value) for labels, value in samples)
    )


def test_error_rate_counts_keyed_requests_of_this_test_and_their_5xx() -> None:
    metric = DecisionMetric(builtin="error-rate")
    (query,) = ab_queries.queries(
        metric, namespace="ml", name="fraud", test="abc", window_seconds=600
    ).values()
    selector = 'namespace="ml",modeldeployment="fraud",test="abc",assignment="keyed"'
    series = f"modelramp_variant_requests_total{{{selector}}}"
    born = f"({series} unless {series} offset 600s)"
    assert query == f"sum by (variant, code) ((increase({series}[600s]) unless {born}) or {born})"
    result = vector(
        ({"variant": "control", "code": "200"}, 990.0),
        ({"variant": "control", "code": "503"}, 10.0),
        ({"variant": "candidate", "code": "200"}, 495.0),
        ({"variant": "candidate", "code": "400"}, 5.0),  # the client's, not an error
        ({"variant": "stranger", "code": "500"}, 7.0),
        ({"variant": "candidate", "code": "500"}, math.nan),
    )
    window = ab_queries.read_window(metric, {"count": result}, NAMES)
    assert [(w.name, w.count, w.total) for w in window] == [("control", 10, 1000), ("candidate", 0, 500)]


def test_counters_substitute_the_variables_and_read_one_sample_per_variant() -> None:
    metric = DecisionMetric.model_validate(
        {
            "counters": {
                "successes": (
                    'sum by (variant) (increase(orders_total{namespace="{{namespace}}",test="{{ test }}"}'
                    "[{{interval}}]))"
                ),
                "total": 'sum by (variant) (increase(visits_total{app="{{name}}"}[{{interval}}]))',
            }
        }
    )
    planned = ab_queries.queries(metric, namespace="ml", name="shop", test="abc", window_seconds=90)
    assert planned == {
        "count": 'sum by (variant) (increase(orders_total{namespace="ml",test="abc"}[90s]))',
        "total": 'sum by (variant) (increase(visits_total{app="shop"}[90s]))',
    }
    results = {
        "count": vector(({"variant": "control"}, 12.0), ({"variant": "candidate"}, 15.0)),
        "total": vector(({"variant": "control"}, 100.0)),
    }
    window = ab_queries.read_window(metric, results, NAMES)
    assert [(w.name, w.count, w.total) for w in window] == [("control", 12, 100), ("candidate", 15, 0)]


def test_a_bad_template_names_the_variable() -> None:
    metric = DecisionMetric.model_validate({"counters": {"successes": 'x{track="{{track}}"}', "total": "y"}})
    with pytest.raises(
        ValueError,
        match=r"unknown variable \{\{ track \}\}; known variables: name, namespace, interval, test",
    ):
        ab_queries.queries(metric, namespace="ml", name="shop", test="abc", window_seconds=60)


class Failing:
    def query(self, promql: str) -> QueryResult:
        raise QueryError("Prometheus at http://p:9090 is unreachable: refused")


def test_a_window_spans_from_the_last_one_and_a_failed_query_gives_no_counts() -> None:
    strategy = ABTestStrategy.model_validate(ERROR_RATE)
    test = running(strategy, T0, "abc", last_measured_at=T0 + timedelta(minutes=1))
    now = T0 + timedelta(minutes=3, seconds=2)
    window = ab_queries.measure(Failing(), strategy, test, namespace="ml", name="fraud", now=now)  # type: ignore[arg-type]
    assert window.variants == [] and window.error is not None and "unreachable" in window.error
    assert "[122s]" in window.query and window.time == now
