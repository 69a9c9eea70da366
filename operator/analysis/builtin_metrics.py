"""The built-in metrics: PromQL on the serving metrics contract, judged without user PromQL.

Every query covers both tracks (`track=~"canary|stable"`, grouped by `track`) over the metric's
interval, so one round trip gives the canary's and stable's counts for the window. Those counts are
pooled with the earlier windows of the analysis (evidence.py) and the pooled evidence is judged by
the metric's own module: error_rate, latency, prediction_drift (sequential.py says what the
outcomes mean and how the false-rollback budget is spent). NaN is never read as 0, and a window
whose queries found no series at all, for either track, is an Error (measured again), not a window
of zero requests: it is what Prometheus answers while it restarts or misses its scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from modelramp.operator.analysis import (
    error_rate,
    input_drift,
    latency,
    prediction_drift,
    sequential,
    shadow_metrics,
)
from modelramp.operator.analysis.context import Judgement, QueryResult, RolloutContext
from modelramp.operator.analysis.evidence import EvidenceError, histogram_counts, pooled, request_counts
from modelramp.operator.analysis.query_metric import NO_DATA_HINT
from modelramp.operator.analysis.templating import prometheus_duration
from modelramp.operator.api.analysis import BuiltinMetric, EffectiveMetric
from modelramp.operator.api.status import Evidence, TestOutcome

# The query role the canary-vs-stable builtins read their counts from.
VALUE = "value"

Queries = Callable[[RolloutContext, str], dict[str, str]]


@dataclass(frozen=True)
class _Builtin:
    """A builtin's queries (context, window -> role -> PromQL), how one window's results are read,
    how windows are pooled, and how the pooled evidence is judged."""

    queries: Queries
    read: Callable[[Mapping[str, QueryResult]], Evidence]
    assess: Callable[[EffectiveMetric, Evidence], TestOutcome]
    pool: Callable[[Evidence | None, Evidence], Evidence] = pooled
    worse: str = "worse than stable"
    samples: tuple[str, str] = ("canary", "stable")


def _both_tracks(series: str, by: str) -> Queries:
    """One query of canary and stable together, split by `track` and `by`."""

    def queries(context: RolloutContext, window: str) -> dict[str, str]:
        selector = f'namespace="{context.namespace}",modeldeployment="{context.name}",track=~"canary|stable"'
        return {VALUE: f"sum by (track, {by}) (increase({series}{{{selector}}}[{window}]))"}

    return queries


def _value(read: Callable[[QueryResult], Evidence]) -> Callable[[Mapping[str, QueryResult]], Evidence]:
    return lambda results: read(results[VALUE])


_BUILTINS: dict[BuiltinMetric, _Builtin] = {
    "error-rate": _Builtin(
        _both_tracks("modelramp_requests_total", "code"), _value(request_counts), error_rate.assess
    ),
    "latency-p95": _Builtin(
        _both_tracks("modelramp_request_duration_seconds_bucket", "le"),
        _value(histogram_counts),
        latency.assess,
    ),
    "prediction-drift": _Builtin(
        _both_tracks("modelramp_prediction_bucket", "le"), _value(histogram_counts), prediction_drift.assess
    ),
    "input-drift": _Builtin(
        input_drift.queries,
        input_drift.read,
        input_drift.assess,
        input_drift.pool,
        worse="drifted from the reference",
        samples=("live", "reference"),
    ),
}


# A shadow step's builtins: the same questions on the pairs stable's tee exported (shadow_metrics).
_PAIRED: dict[BuiltinMetric, _Builtin] = {
    "error-rate": _Builtin(
        shadow_metrics.error_queries, shadow_metrics.read_errors, shadow_metrics.assess_errors
    ),
    "latency-p95": _Builtin(
        shadow_metrics.latency_queries, shadow_metrics.read_latency, shadow_metrics.assess_latency
    ),
    "prediction-drift": _Builtin(
        shadow_metrics.drift_queries, shadow_metrics.read_drift, shadow_metrics.assess_drift
    ),
}
NOT_PAIRED = (
    "a shadow step judges error-rate, latency-p95 and prediction-drift (builtin {} has no paired form)"
)


def _builtin(builtin: BuiltinMetric, paired: bool) -> _Builtin | None:
    return _PAIRED.get(builtin) if paired else _BUILTINS[builtin]


def builtin_queries(
    builtin: BuiltinMetric, context: RolloutContext, interval_seconds: float, *, paired: bool = False
) -> dict[str, str]:
    """Role -> PromQL of a builtin's window; a paired builtin without a paired form queries nothing."""
    spec = _builtin(builtin, paired)
    return {} if spec is None else spec.queries(context, prometheus_duration(interval_seconds))


def judge_builtin(
    metric: EffectiveMetric,
    queries: Mapping[str, str],
    results: Mapping[str, QueryResult],
    prior: Evidence | None = None,
) -> Judgement:
    """The verdict on the evidence pooled so far (`prior`) plus this window's."""
    builtin = metric.metric.builtin
    assert builtin is not None
    spec = _builtin(builtin, metric.paired)
    name = metric.metric.name
    query = "; ".join(queries.values())
    if spec is None:
        return Judgement(verdict="Error", query=query, message=f"{name}: {NOT_PAIRED.format(builtin)}")
    if results and not any(result.samples for result in results.values()):
        message = f"{name}: no series for either track: {query} ({NO_DATA_HINT})"
        return Judgement(verdict="Error", query=query, message=message)
    try:
        window = spec.read(results)
        evidence = spec.pool(prior, window)
    except EvidenceError as error:
        return Judgement(verdict="Error", query=query, message=f"{name}: {error}")
    outcome = spec.assess(metric, evidence)
    message = sequential.describe(name, outcome, evidence.windows, worse=spec.worse, samples=spec.samples)
    worst = input_drift.worst_features(outcome)
    return Judgement(
        verdict=sequential.VERDICTS[outcome.decision],
        query=query,
        message=f"{message}; {worst}" if worst else message,
        value=outcome.value,
        threshold=outcome.bound,
        test=outcome,
        evidence=window,
    )
