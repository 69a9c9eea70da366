"""Judges a custom PromQL metric's result with its successCondition / failureCondition.

Argo Rollouts' rules: with both conditions, a true failureCondition fails, a true successCondition
passes, neither is Inconclusive; with only one, its negation decides the other way. Before any
condition runs, an empty result is an Error and a NaN Inconclusive, each with a message naming the
query, because reading "no values" as 0 (flagger#1098) passes or fails canaries at random. No series
at all is what a window looks like while Prometheus restarts or misses scrapes: a measurement that
could not be taken (retried, never counted toward `count`), not a reading of the model, so an
outage can't use up a metric's inconclusiveLimit and leave a later window to promote alone. A NaN
comes from series that exist, usually 0/0 over a window without requests: the model was not
exercised, which is Inconclusive.
"""

from __future__ import annotations

import functools
import math

from modelramp.operator.analysis.conditions import Condition, ConditionError, compile_condition
from modelramp.operator.analysis.context import Judgement, QueryResult
from modelramp.operator.api.analysis import Metric
from modelramp.operator.api.status import Verdict

NO_DATA_HINT = (
    "the series may not exist for these labels yet (no canary traffic, wrong label names), the "
    "window is shorter than two scrape intervals, or Prometheus missed the window's scrapes "
    "(restarting, unreachable targets); measured again"
)


def conditions_of(metric: Metric) -> tuple[Condition | None, Condition | None]:
    """The compiled (success, failure) conditions; raises ConditionError naming the field."""
    prefix = f"metrics[{metric.name}]"
    success = (
        _compiled(metric.success_condition, f"{prefix}.successCondition")
        if metric.success_condition
        else None
    )
    failure = (
        _compiled(metric.failure_condition, f"{prefix}.failureCondition")
        if metric.failure_condition
        else None
    )
    return success, failure


def judge_query(metric: Metric, query: str, result: QueryResult) -> Judgement:
    values = [sample.value for sample in result.samples]
    if not values:
        return Judgement(
            verdict="Error",
            query=query,
            message=f"{metric.name}: query returned no data: {query} ({NO_DATA_HINT})",
        )
    if any(math.isnan(value) for value in values):
        return Judgement(
            verdict="Inconclusive",
            query=query,
            message=f"{metric.name}: query returned NaN, usually 0/0 for a window without requests: {query}",
        )
    value = values[0] if len(values) == 1 else None
    shown = f"{values[0]:.4g}" if value is not None else "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
    try:
        success, failure = conditions_of(metric)
        succeeded = success.holds(values) if success else None
        failed = failure.holds(values) if failure else None
    except ConditionError as error:
        return Judgement(verdict="Error", query=query, value=value, message=str(error))
    return Judgement(
        verdict=_verdict(succeeded, failed),
        query=query,
        value=value,
        message=f"{metric.name}: result={shown}: "
        + "; ".join(
            f"{condition.field.rsplit('.', 1)[-1]} {condition.source!r} is {str(outcome).lower()}"
            for condition, outcome in ((success, succeeded), (failure, failed))
            if condition is not None
        )
        + f"; query: {query}",
    )


def _verdict(succeeded: bool | None, failed: bool | None) -> Verdict:
    """Argo's rules; None means the metric has no such condition (at least one is set)."""
    if failed or (failed is None and not succeeded):
        return "Failed"
    if succeeded or succeeded is None:
        return "Successful"
    return "Inconclusive"


@functools.lru_cache(maxsize=256)
def _compiled(source: str, field: str) -> Condition:
    return compile_condition(source, field)
