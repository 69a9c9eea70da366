"""Argo Rollouts' analysis semantics as pure functions over the counters kept in status.

A metric run is a series of measurements, each Successful, Failed, Inconclusive or Error. Its
phase follows Argo (failureLimit 0, inconclusiveLimit 0, consecutiveErrorLimit 4 by default):
- more Failed than failureLimit -> Failed; more Inconclusive than inconclusiveLimit ->
  Inconclusive; more Errors *in a row* than consecutiveErrorLimit -> Error;
- an Error is a measurement that could not be taken: it is retried and never counts toward
  `count`, and it is never read as a failure (Flagger rolls back on a Prometheus outage; we don't);
- otherwise `count` measurements that returned data end the run.

Two deliberate departures, both from bugs users hit: a run ends Successful only if at least one
measurement was Successful (argo-rollouts#4479: all-Errored came out Successful; and "no data" is
never a pass), otherwise it ends Inconclusive or Error. The counters live in status because the
measurement list there is bounded: `record` is the only place they change.

Builtin metrics are sequential (sequential.py): each measurement judges the evidence pooled so far,
so one Successful measurement decides the metric (it was shown within its bound), an Inconclusive
one only means "not decided yet" and does not count toward inconclusiveLimit, and a metric still
undecided after `count` measurements is Inconclusive. `record` pools each window's counts into the
metric's evidence, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from modelramp.operator.analysis.evidence import pooled
from modelramp.operator.api.analysis import EffectiveMetric
from modelramp.operator.api.status import AnalysisPhase, Measurement, MetricResult

# Worst first: a run with any Failed metric is Failed, and so on.
_SEVERITY: tuple[AnalysisPhase, ...] = ("Failed", "Error", "Inconclusive")
COMPLETED: frozenset[AnalysisPhase] = frozenset({"Successful", "Failed", "Inconclusive", "Error"})


def record(result: MetricResult, measurement: Measurement) -> MetricResult:
    """The counters after one more measurement. A measurement not newer than the last one recorded
    is ignored, so replaying a measurement after an operator restart never counts it twice."""
    if result.last_measured_at is not None and measurement.time <= result.last_measured_at:
        return result
    counts = {
        "successful": result.successful,
        "failed": result.failed,
        "inconclusive": result.inconclusive,
        "error": result.error,
    }
    counts[measurement.verdict.lower()] += 1
    is_error = measurement.verdict == "Error"
    update: dict[str, object] = {
        **counts,
        "count": result.count + (0 if is_error else 1),
        "consecutive_error": result.consecutive_error + 1 if is_error else 0,
        "last_measured_at": measurement.time,
        "message": measurement.message,
    }
    if measurement.evidence is not None:
        update["evidence"] = pooled(result.evidence, measurement.evidence)
    if measurement.test is not None:
        update["test"] = measurement.test
    return result.model_copy(update=update)


def metric_phase(
    result: MetricResult, metric: EffectiveMetric, *, terminating: bool = False
) -> AnalysisPhase:
    """The phase of one metric run from its counters.

    `terminating` means the run is being stopped from outside (the step ended, another metric
    decided the run, the rollout is finishing): an open-ended run then settles on a verdict.
    """
    sequential = metric.metric.builtin is not None
    if result.failed > metric.failure_limit:
        return "Failed"
    if sequential and result.successful > 0:
        return "Successful"
    if not sequential and result.inconclusive > metric.inconclusive_limit:
        return "Inconclusive"
    if result.consecutive_error > metric.consecutive_error_limit:
        return "Error"
    done = result.count >= metric.count
    if not (done or terminating):
        return "Running" if result.count or result.error else "Pending"
    if result.successful > 0:
        return "Successful"
    if result.count == 0 and result.error > 0:
        return "Error"
    return "Inconclusive"


def phase_of_measurements(
    name: str, measurements: Sequence[Measurement], metric: EffectiveMetric, *, terminating: bool = False
) -> AnalysisPhase:
    """The phase of a metric run given all its measurements, oldest first."""
    result = MetricResult(name=name)
    for measurement in measurements:
        result = record(result, measurement)
    return metric_phase(result, metric, terminating=terminating)


def run_phase(metric_phases: Iterable[AnalysisPhase]) -> AnalysisPhase:
    """The phase of an analysis run from its metrics' phases.

    One decided bad metric decides the run (the caller then stops measuring the others, as Argo
    terminates the run); otherwise it is Running until every metric has succeeded.
    """
    phases = list(metric_phases)
    for bad in _SEVERITY:
        if bad in phases:
            return bad
    if not phases:
        return "Pending"
    if all(phase == "Successful" for phase in phases):
        return "Successful"
    return "Pending" if all(phase == "Pending" for phase in phases) else "Running"


def is_completed(phase: AnalysisPhase) -> bool:
    return phase in COMPLETED
