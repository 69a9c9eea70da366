"""The built-in metrics: PromQL on the serving metrics contract, judged without user PromQL.

Every query covers both tracks (`track=~"canary|stable"`, grouped by `track`) over the metric's
interval, so one round trip gives the canary's value, stable's value for `maxRatioToStable`, and
the sample counts that decide whether there is enough traffic to judge at all. Too few requests
(or predictions) in the window is Inconclusive, never a pass; NaN is never read as 0.

- error-rate: share of canary requests answered 5xx;
- latency-p95: `histogram_quantile(0.95, ...)` over `modelramp_request_duration_seconds_bucket`;
- prediction-drift: PSI (judged against `threshold`) and KS (reported) between canary's and
  stable's `modelramp_prediction` bucket increases, computed in numpy (see drift.py).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping

from modelramp.operator.analysis import drift
from modelramp.operator.analysis.context import Judgement, QueryResult, RolloutContext
from modelramp.operator.analysis.templating import prometheus_duration
from modelramp.operator.api.analysis import BuiltinMetric, EffectiveMetric

# Query roles: each builtin names the queries it needs and reads their results by these names.
VALUE = "value"
SAMPLES = "samples"


def builtin_queries(
    builtin: BuiltinMetric, context: RolloutContext, interval_seconds: float
) -> dict[str, str]:
    window = prometheus_duration(interval_seconds)
    selector = f'namespace="{context.namespace}",modeldeployment="{context.name}",track=~"canary|stable"'
    if builtin == "error-rate":
        return {VALUE: f"sum by (track, code) (increase(modelramp_requests_total{{{selector}}}[{window}]))"}
    if builtin == "latency-p95":
        return {
            VALUE: "histogram_quantile(0.95, sum by (track, le) "
            f"(rate(modelramp_request_duration_seconds_bucket{{{selector}}}[{window}])))",
            SAMPLES: "sum by (track) "
            f"(increase(modelramp_request_duration_seconds_count{{{selector}}}[{window}]))",
        }
    return {VALUE: f"sum by (track, le) (increase(modelramp_prediction_bucket{{{selector}}}[{window}]))"}


def judge_builtin(
    metric: EffectiveMetric,
    queries: Mapping[str, str],
    results: Mapping[str, QueryResult],
) -> Judgement:
    builtin = metric.metric.builtin
    min_samples = metric.min_samples
    window = prometheus_duration(metric.interval_seconds)
    if builtin == "error-rate":
        requests = _sum_by_track(results[VALUE], lambda _: True)
        errors = _sum_by_track(results[VALUE], lambda labels: labels.get("code", "").startswith("5"))
        rates = {track: errors.get(track, 0.0) / count for track, count in requests.items() if count > 0}
        return _judge_comparison(
            metric,
            query=queries[VALUE],
            values=rates,
            samples=requests,
            min_samples=min_samples,
            what=f"5xx share over {window}",
        )
    if builtin == "latency-p95":
        quantiles = _sum_by_track(results[VALUE], lambda _: True)
        requests = _sum_by_track(results[SAMPLES], lambda _: True)
        return _judge_comparison(
            metric,
            query=queries[VALUE],
            values=quantiles,
            samples=requests,
            min_samples=min_samples,
            what=f"p95 latency (s) over {window}",
        )
    return _judge_drift(metric, queries[VALUE], results[VALUE], min_samples, window)


def _judge_comparison(
    metric: EffectiveMetric,
    *,
    query: str,
    values: Mapping[str, float],
    samples: Mapping[str, float],
    min_samples: int,
    what: str,
) -> Judgement:
    """Judges the canary's value against threshold and/or maxRatioToStable x stable's value."""
    name = metric.metric.name
    canary_samples = samples.get("canary", 0.0)
    if canary_samples < min_samples:
        return Judgement(
            verdict="Inconclusive",
            query=query,
            message=f"{name}: only {canary_samples:.0f} canary requests in the window "
            f"(minSamples {min_samples}); not enough traffic to judge",
        )
    canary = values.get("canary", math.nan)
    if math.isnan(canary):
        return Judgement(
            verdict="Inconclusive",
            query=query,
            message=f"{name}: the canary's {what} is NaN (no data in the window)",
        )
    stable = values.get("stable", math.nan)
    stable_usable = samples.get("stable", 0.0) >= min_samples and not math.isnan(stable)
    stable_value = stable if stable_usable else None
    limits: list[tuple[float, str]] = []
    if metric.metric.threshold is not None:
        limits.append((metric.metric.threshold, f"threshold {metric.metric.threshold:g}"))
    ratio = metric.metric.max_ratio_to_stable
    if ratio is not None and stable_value is not None and (stable_value > 0 or not limits):
        limits.append((ratio * stable_value, f"{ratio:g} x stable {stable_value:.4g}"))
    if not limits:
        return Judgement(
            verdict="Inconclusive",
            query=query,
            value=canary,
            message=f"{name}: canary {what} is {canary:.4g}, but stable has only "
            f"{samples.get('stable', 0.0):.0f} requests (minSamples {min_samples}): nothing to compare with",
        )
    limit, reason = min(limits)
    failed = canary > limit
    return Judgement(
        verdict="Failed" if failed else "Successful",
        query=query,
        value=canary,
        stable_value=stable_value,
        threshold=limit,
        message=f"{name}: canary {what} {canary:.4g} {'>' if failed else '<='} {limit:.4g} ({reason}; "
        f"{canary_samples:.0f} canary requests)",
    )


def _judge_drift(
    metric: EffectiveMetric, query: str, result: QueryResult, min_samples: int, window: str
) -> Judgement:
    name = metric.metric.name
    buckets: dict[str, dict[float, float]] = defaultdict(dict)
    for sample in result.samples:
        if "le" in sample.labels and "track" in sample.labels:
            buckets[sample.labels["track"]][float(sample.labels["le"])] = sample.value
    counts = {track: bounds.get(math.inf, 0.0) for track, bounds in buckets.items()}
    for track in ("canary", "stable"):
        if counts.get(track, 0.0) < min_samples:
            return Judgement(
                verdict="Inconclusive",
                query=query,
                message=f"{name}: only {counts.get(track, 0.0):.0f} {track} predictions over {window} "
                f"(minSamples {min_samples}); not enough to compare distributions",
            )
    try:
        found = drift.compare(stable=buckets["stable"], canary=buckets["canary"])
    except drift.DriftError as error:
        return Judgement(verdict="Error", query=query, message=f"{name}: {error}")
    threshold = metric.metric.threshold if metric.metric.threshold is not None else math.inf
    failed = found.psi > threshold
    return Judgement(
        verdict="Failed" if failed else "Successful",
        query=query,
        value=found.psi,
        threshold=metric.metric.threshold,
        message=f"{name}: PSI {found.psi:.4f} {'>' if failed else '<='} threshold {threshold:g} "
        f"(KS {found.ks:.4f}; {found.canary_samples:.0f} canary vs {found.stable_samples:.0f} stable "
        f"predictions over {window})",
    )


def _sum_by_track(result: QueryResult, keep: Callable[[Mapping[str, str]], bool]) -> dict[str, float]:
    """Per-track totals; the queries group by track, so this only folds error-rate's codes."""
    totals: dict[str, float] = defaultdict(float)
    for sample in result.samples:
        track = sample.labels.get("track")
        if track is not None and keep(sample.labels):
            totals[track] += sample.value
    return dict(totals)
