"""Simulated Prometheus counts for the analysis judge: canary and stable tracks drawn from known
distributions, turned into the query results the built-in metrics read, and whole analyses run
through the production judge and phase code (judging.judge, phases.record, phases.metric_phase).

Used by the statistical unit tests (fixed seeds) and by bench/analysis_quality.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from modelramp.operator.analysis.context import QueryResult, RolloutContext, Sample
from modelramp.operator.analysis.judging import judge, plan_queries
from modelramp.operator.analysis.phases import metric_phase, record
from modelramp.operator.analysis.provider import to_measurement
from modelramp.operator.api.analysis import EffectiveMetric
from modelramp.operator.api.status import AnalysisPhase, MetricResult

LATENCY_BUCKETS = (
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.5,
    5.0,
    10.0,
)  # fmt: skip  (the serving defaults, modelramp.serving.metrics)
PREDICTION_BUCKETS = tuple(round(step / 10, 1) for step in range(11))
CONTEXT = RolloutContext(name="sim", namespace="sim", canary_revision="c", stable_revision="s", analysis="a")
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Track:
    """What one track's model does: its 5xx share, latency and prediction distributions."""

    error_rate: float = 0.002
    latency_median: float = 0.020
    latency_sigma: float = 0.5
    score_a: float = 2.0
    score_b: float = 5.0


@dataclass
class Traffic:
    """Requests per window for each track and the random source for every draw."""

    canary: int
    stable: int
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


def window(builtin: str, canary: Track, stable: Track, traffic: Traffic) -> QueryResult:
    """One window's `sum by (track, ...) (increase(...))` result for `builtin`."""
    samples: list[Sample] = []
    for name, track, n in (("canary", canary, traffic.canary), ("stable", stable, traffic.stable)):
        if builtin == "error-rate":
            errors = int(traffic.rng.binomial(n, track.error_rate))
            samples += [
                Sample(labels={"track": name, "code": "200"}, value=float(n - errors)),
                Sample(labels={"track": name, "code": "500"}, value=float(errors)),
            ]
            continue
        if builtin == "latency-p95":
            values = track.latency_median * np.exp(track.latency_sigma * traffic.rng.standard_normal(n))
            bounds: Sequence[float] = LATENCY_BUCKETS
        else:
            values = traffic.rng.beta(track.score_a, track.score_b, n)
            bounds = PREDICTION_BUCKETS
        cumulative = np.searchsorted(np.sort(values), np.array(bounds), side="right")
        samples += [
            Sample(labels={"track": name, "le": f"{bound:g}"}, value=float(count))
            for bound, count in zip(bounds, cumulative, strict=True)
        ]
        samples.append(Sample(labels={"track": name, "le": "+Inf"}, value=float(n)))
    return QueryResult(kind="vector", samples=tuple(samples))


def run_metric(
    metric: EffectiveMetric, canary: Track, stable: Track, traffic: Traffic
) -> tuple[AnalysisPhase, MetricResult]:
    """Measures one metric window after window, as the operator does, until its phase is decided."""
    queries = plan_queries(metric, CONTEXT)
    result = MetricResult(name=metric.metric.name)
    for index in range(metric.count):
        assert metric.metric.builtin is not None
        results = {role: window(metric.metric.builtin, canary, stable, traffic) for role in queries}
        judgement = judge(metric, queries, results, result.evidence)
        time = START + timedelta(seconds=metric.interval_seconds * (index + 1))
        result = record(result, to_measurement(judgement, metric, CONTEXT, time))
        phase = metric_phase(result, metric)
        if phase not in ("Running", "Pending"):
            return phase, result
    return metric_phase(result, metric, terminating=True), result


def run_rollout(
    analyses: Sequence[Sequence[EffectiveMetric]], canary: Track, stable: Track, traffic: Traffic
) -> AnalysisPhase:
    """A rollout's analyses in order: Failed at the first failed metric (rollback), Inconclusive at
    the first undecided analysis (the rollout pauses), Successful when every analysis passed."""
    for metrics in analyses:
        phases = [run_metric(metric, canary, stable, traffic)[0] for metric in metrics]
        if "Failed" in phases:
            return "Failed"
        if any(phase != "Successful" for phase in phases):
            return "Inconclusive"
    return "Successful"


def binomial_tolerance(p: float, n: int, sigmas: float = 4.0) -> float:
    """How far an observed share of n independent trials may stray from p by chance (4 sigma: a
    pinned test fails by chance about once in 16,000 runs)."""
    return sigmas * math.sqrt(max(p * (1 - p), 1e-12) / n)
