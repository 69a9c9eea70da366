"""The built-in metrics: PromQL on the serving metrics contract, judged without user PromQL.

Every query covers both tracks (`track=~"canary|stable"`, grouped by `track`) over the metric's
interval, so one round trip gives the canary's and stable's counts for the window. Those counts are
pooled with the earlier windows of the analysis (evidence.py) and the pooled evidence is judged by
the metric's own module: error_rate, latency, prediction_drift (sequential.py says what the
outcomes mean and how the false-rollback budget is spent). NaN is never read as 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from modelramp.operator.analysis import error_rate, latency, prediction_drift, sequential
from modelramp.operator.analysis.context import Judgement, QueryResult, RolloutContext
from modelramp.operator.analysis.evidence import EvidenceError, histogram_counts, pooled, request_counts
from modelramp.operator.analysis.templating import prometheus_duration
from modelramp.operator.api.analysis import BuiltinMetric, EffectiveMetric
from modelramp.operator.api.status import Evidence, TestOutcome

# The query role every builtin reads its counts from.
VALUE = "value"


@dataclass(frozen=True)
class _Builtin:
    """A builtin's series, the label its counts are split by, how they are read, how judged."""

    series: str
    by: str
    read: Callable[[QueryResult], Evidence]
    assess: Callable[[EffectiveMetric, Evidence], TestOutcome]


_BUILTINS: dict[BuiltinMetric, _Builtin] = {
    "error-rate": _Builtin("modelramp_requests_total", "code", request_counts, error_rate.assess),
    "latency-p95": _Builtin(
        "modelramp_request_duration_seconds_bucket", "le", histogram_counts, latency.assess
    ),
    "prediction-drift": _Builtin(
        "modelramp_prediction_bucket", "le", histogram_counts, prediction_drift.assess
    ),
}


def builtin_queries(
    builtin: BuiltinMetric, context: RolloutContext, interval_seconds: float
) -> dict[str, str]:
    window = prometheus_duration(interval_seconds)
    selector = f'namespace="{context.namespace}",modeldeployment="{context.name}",track=~"canary|stable"'
    spec = _BUILTINS[builtin]
    return {VALUE: f"sum by (track, {spec.by}) (increase({spec.series}{{{selector}}}[{window}]))"}


def judge_builtin(
    metric: EffectiveMetric,
    queries: Mapping[str, str],
    results: Mapping[str, QueryResult],
    prior: Evidence | None = None,
) -> Judgement:
    """The verdict on the evidence pooled so far (`prior`) plus this window's."""
    builtin = metric.metric.builtin
    assert builtin is not None
    spec = _BUILTINS[builtin]
    name = metric.metric.name
    query = queries[VALUE]
    try:
        window = spec.read(results[VALUE])
        evidence = pooled(prior, window)
    except EvidenceError as error:
        return Judgement(verdict="Error", query=query, message=f"{name}: {error}")
    outcome = spec.assess(metric, evidence)
    return Judgement(
        verdict=sequential.VERDICTS[outcome.decision],
        query=query,
        message=sequential.describe(name, outcome, evidence.windows),
        value=outcome.value,
        threshold=outcome.bound,
        test=outcome,
        evidence=window,
    )
