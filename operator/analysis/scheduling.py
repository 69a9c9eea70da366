"""When each metric of an analysis run is due, from the counters in status and the clock.

The operator measures on its timer and keeps nothing in memory: every decision here is a pure
function of the run's start, each metric's `lastMeasuredAt` and counters, and `now`. So a
restarted operator measures exactly what is due, and (with `phases.record` ignoring a measurement
not newer than the last) never counts one twice. As in Argo Rollouts, the first measurement is
taken `initialDelay` after the run starts, the next ones `interval` apart, and after an Error the
measurement is retried sooner (every `ERROR_RETRY_SECONDS`, at most `interval`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from modelramp.operator.analysis.phases import is_completed, metric_phase
from modelramp.operator.api.analysis import EffectiveMetric
from modelramp.operator.api.status import MetricResult

ERROR_RETRY_SECONDS = 10.0


def next_measurement_time(
    metric: EffectiveMetric, result: MetricResult | None, started_at: datetime
) -> datetime | None:
    """When the metric should next be measured; None once its phase is decided."""
    if result is None or result.last_measured_at is None:
        return started_at + timedelta(seconds=metric.initial_delay_seconds)
    if is_completed(metric_phase(result, metric)):
        return None
    delay = metric.interval_seconds
    if result.consecutive_error > 0:
        delay = min(ERROR_RETRY_SECONDS, delay)
    return result.last_measured_at + timedelta(seconds=delay)


def due_metrics(
    metrics: Sequence[EffectiveMetric], results: Sequence[MetricResult], started_at: datetime, now: datetime
) -> list[EffectiveMetric]:
    """The metrics to measure now, in spec order."""
    by_name = {result.name: result for result in results}
    due: list[EffectiveMetric] = []
    for metric in metrics:
        at = next_measurement_time(metric, by_name.get(metric.metric.name), started_at)
        if at is not None and at <= now:
            due.append(metric)
    return due


def next_wakeup(
    metrics: Sequence[EffectiveMetric], results: Sequence[MetricResult], started_at: datetime
) -> datetime | None:
    """The earliest time any metric is due (for the operator's requeue delay); None if none is."""
    by_name = {result.name: result for result in results}
    times = [
        at
        for metric in metrics
        if (at := next_measurement_time(metric, by_name.get(metric.metric.name), started_at)) is not None
    ]
    return min(times, default=None)
