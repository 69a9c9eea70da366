"""spec.monitor: checks of the stable model that run all the time, and the Drifted condition.

One run at a time, in status.monitor, for the current stable revision and measured on the stable
track, rollout or not. A run lasts one period (`count` x `interval` of its slowest metric) and
stops measuring as soon as it decides; the next run starts when the period ends. Each run spends
spec.analysis.falseRollbackRate (split over its measurements) on false alarms, so an input that
did not drift sets Drifted in at most that share of the periods: choose the interval with it in
mind (an hour's window and the default count: one period every 10 h).

A Failed run records the inputs as drifted (status.drift, a warning event); a Successful one
clears it; an Inconclusive or Error run leaves the last verdict as it was. Nothing here touches
traffic: a monitor never rolls back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from modelramp.operator.analysis.phases import is_completed
from modelramp.operator.api.analysis import EffectiveMetric, effective_metric
from modelramp.operator.api.spec import ModelDeploymentSpec
from modelramp.operator.api.status import (
    AnalysisRunStatus,
    Condition,
    ConditionStatus,
    DriftStatus,
    ModelDeploymentStatus,
)
from modelramp.operator.rollout import runs
from modelramp.operator.rollout.tick import Tick, Transition, changed, normal, warning


def monitor_metrics(spec: ModelDeploymentSpec) -> list[EffectiveMetric]:
    """The monitor's metrics with spec.analysis' defaults; each run has the whole budget."""
    if spec.monitor is None:
        return []
    return [effective_metric(metric, spec.analysis) for metric in spec.monitor.metrics]


def advance(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """Records a decided run's verdict, and starts the next run when one is due."""
    metrics = monitor_metrics(tick.spec)
    if not metrics or status.stable_revision is None:
        if status.monitor is None and status.drift is None:
            return None
        return changed(status, monitor=None, drift=None)
    run = status.monitor
    if run is not None and run.revision == status.stable_revision:
        recorded = _record(status, run)
        if recorded is not None:
            return recorded
        due = next_run_time(run, metrics)
        if due is None or due > tick.now:
            return None
    started = runs.start_run(
        "Monitor",
        status.stable_revision,
        None,
        metrics,
        now=tick.now,
        provider=runs.has_provider(tick.spec, tick.config),
    )
    return changed(status, monitor=started)


def next_run_time(run: AnalysisRunStatus, metrics: list[EffectiveMetric]) -> datetime | None:
    """When the run after a decided `run` starts: at the end of its period."""
    if not is_completed(run.phase) or run.started_at is None or not metrics:
        return None
    period = max(metric.initial_delay_seconds + metric.interval_seconds * metric.count for metric in metrics)
    return max(run.started_at + timedelta(seconds=period), run.finished_at or run.started_at)


def _record(status: ModelDeploymentStatus, run: AnalysisRunStatus) -> Transition | None:
    """The verdict of a run that just decided, once (status.drift remembers which run it was)."""
    if run.phase not in ("Failed", "Successful") or run.finished_at is None:
        return None
    drift = status.drift
    if drift is not None and drift.decided_at >= run.finished_at:
        return None
    drifted = run.phase == "Failed"
    decisive = next((result for result in run.metrics if result.phase == run.phase), None)
    worst = decisive.test.worst_features if decisive is not None and decisive.test is not None else []
    message = (decisive.message if decisive is not None else None) or run.message or ""
    recorded = DriftStatus(
        drifted=drifted,
        revision=run.revision,
        decided_at=run.finished_at,
        message=message,
        worst_features=worst,
    )
    events = []
    if drifted and not (drift and drift.drifted):
        events.append(warning("InputDrifted", f"stable revision {run.revision}: {message}"))
    elif not drifted and drift is not None and drift.drifted:
        events.append(normal("InputDriftCleared", f"stable revision {run.revision}: {message}"))
    return changed(status, *events, drift=recorded)


def drifted_condition(
    tick: Tick, status: ModelDeploymentStatus, previous: list[Condition]
) -> Condition | None:
    """The Drifted condition while spec.monitor is set: Unknown until a run decides."""
    if tick.spec.monitor is None:
        return None
    drift, run = status.drift, status.monitor
    state: ConditionStatus
    if drift is None and run is not None and run.phase == "Error":
        state, reason, message = "Unknown", "MonitorError", run.message or "the monitor's run failed"
    elif drift is None:
        state, reason, message = "Unknown", "NotYetDecided", "the monitor has not decided yet"
    elif drift.drifted:
        state, reason, message = "True", "InputDrifted", drift.message
    else:
        state, reason, message = "False", "WithinReference", drift.message
    old = next((condition for condition in previous if condition.type == "Drifted"), None)
    return Condition(
        type="Drifted",
        status=state,
        reason=reason,
        message=message,
        last_transition_time=old.last_transition_time if old and old.status == state else tick.now,
        observed_generation=tick.generation,
    )
