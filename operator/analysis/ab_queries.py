"""An A/B test's decision metric as PromQL: one window's counts per variant, read through the
metric provider (the glue's part; `ab_judging` decides on them).

Builtin `error-rate` reads what `modelramp serve` counts per variant
(`modelramp_variant_requests_total`, keyed requests of this test only: requests without the key
are assigned at random and counted apart), with the series that appeared within the window
counted whole (their first count would be lost to `increase()`); `counters` are the user's
PromQL, one sample per variant (`variant` label). A window runs from the end of the last one (or
the start of assignment) to now, so windows neither overlap nor leave gaps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime

from modelramp.operator.analysis.context import QueryResult
from modelramp.operator.analysis.provider import MetricProvider, QueryError
from modelramp.operator.analysis.templating import TemplateError, prometheus_duration, render_query
from modelramp.operator.api.abtest import (
    ABTestStatus,
    ABTestStrategy,
    ABWindow,
    DecisionMetric,
    VariantWindow,
)

# The variables a decision metric's PromQL may use.
VARIABLES = ("name", "namespace", "interval", "test")
# What `modelramp serve` counts per variant (docs/architecture.md, "Serving metrics contract").
VARIANT_REQUESTS = "modelramp_variant_requests_total"
COUNT, TOTAL = "count", "total"


def measure(
    provider: MetricProvider,
    strategy: ABTestStrategy,
    test: ABTestStatus,
    *,
    namespace: str,
    name: str,
    now: datetime,
) -> ABWindow:
    """The window since the last one (or since assignment began) of every variant; a query that
    fails gives a window with the error and no counts, never zeros."""
    since = test.last_measured_at or test.started_at or now
    seconds = max(round((now - since).total_seconds()), 1)
    try:
        planned = queries(
            strategy.metric, namespace=namespace, name=name, test=test.id, window_seconds=seconds
        )
    except TemplateError as error:
        return ABWindow(test=test.id, time=now, error=f"{strategy.metric.name}: {error}")
    text = "; ".join(planned.values())[:8192]
    try:
        results = {role: provider.query(promql) for role, promql in planned.items()}
    except QueryError as error:
        return ABWindow(test=test.id, time=now, query=text, error=f"{strategy.metric.name}: {error}")
    names = [variant.name for variant in test.variants]
    return ABWindow(test=test.id, time=now, query=text, variants=read_window(strategy.metric, results, names))


def queries(
    metric: DecisionMetric, *, namespace: str, name: str, test: str, window_seconds: float
) -> dict[str, str]:
    """Role -> PromQL of one window; raises TemplateError for a bad counters template."""
    window = prometheus_duration(window_seconds)
    if metric.counters is not None:
        variables = {"name": name, "namespace": namespace, "interval": window, "test": test}
        return {
            COUNT: render_query(metric.counters.successes, variables, known=VARIABLES),
            TOTAL: render_query(metric.counters.total, variables, known=VARIABLES),
        }
    # Keyed requests only: requests without the key are assigned at random and counted apart.
    selector = f'namespace="{namespace}",modeldeployment="{name}",test="{test}",assignment="keyed"'
    series = f"{VARIANT_REQUESTS}{{{selector}}}"
    # A series born in the window (a test's first request on a pod, a pod's first 5xx) counted
    # from 0, which increase() can't see: its first scraped value is all it counted. Taken whole
    # instead, so a rare error is never lost; the rest by increase().
    born = f"({series} unless {series} offset {window})"
    return {COUNT: f"sum by (variant, code) ((increase({series}[{window}]) unless {born}) or {born})"}


def read_window(
    metric: DecisionMetric, results: Mapping[str, QueryResult], names: list[str]
) -> list[VariantWindow]:
    """Each of `names`' counts from the results of `queries` (a variant without samples has 0)."""
    counts = dict.fromkeys(names, 0.0)
    totals = dict.fromkeys(names, 0.0)
    if metric.counters is not None:
        _add(results[COUNT], counts, lambda _labels: True)
        _add(results[TOTAL], totals, lambda _labels: True)
    else:
        _add(results[COUNT], totals, lambda _labels: True)
        _add(results[COUNT], counts, lambda labels: labels.get("code", "").startswith("5"))
    return [VariantWindow(name=name, count=counts[name], total=totals[name]) for name in names]


def _add(result: QueryResult, into: dict[str, float], keep: Callable[[Mapping[str, str]], bool]) -> None:
    for sample in result.samples:
        variant = sample.labels.get("variant")
        if variant in into and keep(sample.labels) and not math.isnan(sample.value):
            into[variant] += max(sample.value, 0.0)
