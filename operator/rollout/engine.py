"""`reconcile`: the rollout engine's single entry point, a pure function of its input.

One tick: fold the glue's measurements into the running analyses, then apply transitions until
none applies (so the same input always yields the same output, and feeding the output status back
in with the same observations changes nothing and emits nothing), describe the result (phase,
conditions, an event per phase change), and build the objects, the router's writes and the requeue
delay from it. No I/O, no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from modelramp.operator.api.status import ModelDeploymentStatus, ResolvedModel
from modelramp.operator.rollout import abtest, analyses, bluegreen, canary, lifecycle, monitor, runs, shadow
from modelramp.operator.rollout.conditions import UNHEALTHY, conditions_for, reason_of
from modelramp.operator.rollout.describe import describe
from modelramp.operator.rollout.model import EventRecord, ReconcileInput, ReconcileOutput
from modelramp.operator.rollout.objects import backends_of, get_deployment, get_services, pod_selector
from modelramp.operator.rollout.revision import revision_of, template_of
from modelramp.operator.rollout.tick import (
    Tick,
    Transition,
    canary_track_revision,
    changed,
    normal,
    rollout_active,
    updated,
    warning,
)
from modelramp.operator.rollout.traffic import observe_traffic, route_lags, route_problem, routing_writes
from modelramp.operator.routers.registry import router_for

Candidate = Callable[[Tick, ModelDeploymentStatus], Transition | None]
ROUTE_POLL_SECONDS = 5.0


def reconcile(inp: ReconcileInput) -> ReconcileOutput:
    """What to apply, the new status and the events, for one ModelDeployment at `inp.now`."""
    desired = template_of(inp.md.spec, inp.config)
    tick = Tick(
        md=inp.md,
        observed=inp.observed,
        measurements=tuple(inp.measurements),
        now=inp.now,
        config=inp.config,
        desired=desired,
        desired_revision=revision_of(desired),
        # A URI outside the registry is its own resolution.
        desired_model=inp.model or ResolvedModel(uri=desired.model.uri, resolved_uri=desired.model.uri),
        router=router_for(inp.md.spec.traffic_routing, backends_of(inp.md)),
        reads={read.ref: read for read in inp.observed.routing},
        ab_windows=tuple(inp.ab_windows),
    )
    before = inp.md.status
    status, events = _fold_measurements(tick, before)
    status, transition_events = _settle(tick, status)
    events += transition_events
    status, described_events = _described(tick, before, status, events)
    return ReconcileOutput(
        apply=_objects(tick, status),
        routing_writes=[*routing_writes(tick, status), *shadow.config_writes(tick, status)],
        delete=abtest.stale_objects(tick, status),
        status=status,
        events=events + described_events,
        requeue_after=_requeue_after(tick, status),
    )


def _fold_measurements(
    tick: Tick, status: ModelDeploymentStatus
) -> tuple[ModelDeploymentStatus, list[EventRecord]]:
    """This tick's measurements counted into the running runs of the current revision."""
    live = [run for run in status.analysis_runs if run.revision == status.canary_revision]
    folded, events = [], []
    for run in status.analysis_runs:
        after = runs.fold(run, analyses.metrics_for_run(tick, run), tick.measurements, tick.now)
        if after.phase == "Successful" and run.phase != "Successful":
            events.append(normal("AnalysisSuccessful", f"analysis {after.name} Successful"))
        folded.append(after)
    measurements = runs.recent_measurements(status.measurements, tick.measurements, live)
    watched = status.monitor
    if watched is not None:
        watched = runs.fold(watched, monitor.monitor_metrics(tick.spec), tick.measurements, tick.now)
    status = updated(status, analysis_runs=folded, measurements=measurements, monitor=watched)
    tested = abtest.fold(tick, status)
    return tested, events + abtest.events_for_windows(tick, status, tested)


def _strategy_advance(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    if not rollout_active(tick, status):
        return None
    if tick.ab_test:
        return abtest.advance(tick, status)
    return canary.advance(tick, status) if tick.canary_strategy else bluegreen.advance(tick, status)


def _promote_after_abort(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    if tick.canary_strategy:
        return canary.promote_after_abort(tick, status)
    if tick.ab_test:
        # An aborted A/B test is over; `modelramp retry` starts it again.
        return None
    return bluegreen.promote_after_abort(tick, status)


def _stable_unready(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """A Healthy stable lost pods (or was scaled up): the deadline counts from now."""
    if status.canary_revision is not None or status.phase != "Healthy":
        return None
    if tick.has_ready("stable", status.stable_revision, tick.total):
        return None
    return changed(status, last_progress_time=tick.now)


# In priority order: the first that changes the status is applied, then all are tried again.
CANDIDATES: tuple[Candidate, ...] = (
    lifecycle.initialize,
    observe_traffic,
    lifecycle.new_revision,
    lifecycle.cancel,
    lifecycle.retry,
    lifecycle.clear_stray_requests,
    _promote_after_abort,
    lifecycle.abort_requested,
    lifecycle.restore_stable_traffic,
    lifecycle.finish_promotion,
    _stable_unready,
    lifecycle.user_pause,
    _strategy_advance,
    monitor.advance,
)


def _settle(tick: Tick, status: ModelDeploymentStatus) -> tuple[ModelDeploymentStatus, list[EventRecord]]:
    """Apply transitions until none changes anything."""
    events: list[EventRecord] = []
    # Every transition moves the rollout forward, so a handful per step is plenty.
    for _ in range(8 * (len(tick.steps) + 8)):
        for candidate in CANDIDATES:
            transition = candidate(tick, status)
            if transition is not None and transition.status != status:
                status = transition.status
                events.extend(transition.events)
                break
        else:
            return status, events
    raise RuntimeError(f"rollout engine: no steady state for {tick.md.metadata.name} (a bug)")


def _described(
    tick: Tick, before: ModelDeploymentStatus, status: ModelDeploymentStatus, events: list[EventRecord]
) -> tuple[ModelDeploymentStatus, list[EventRecord]]:
    """Phase, message, conditions and counts, with an event for a route problem and for a phase
    change no transition announced (pods became Ready, a deadline passed)."""
    phase, reason, message = describe(tick, status)
    new_events = []
    problem = route_problem(tick)
    if problem is not None:
        if problem not in (before.message or ""):
            new_events.append(warning("RouteUnavailable", problem))
        message = f"{message}; route: {problem}"
    # A transition's own event already announces the change it made.
    if (phase, reason) != (before.phase, reason_of(before.conditions)) and not events:
        new_events.append((warning if phase in UNHEALTHY else normal)(reason, f"{phase}: {message}"))
    observed = tick.observed.deployments.values()
    conditions = conditions_for(
        phase, reason, message, generation=tick.generation, now=tick.now, previous=status.conditions
    )
    drifted = monitor.drifted_condition(tick, status, status.conditions)
    described = updated(
        status,
        observed_generation=tick.generation,
        phase=phase,
        message=message,
        conditions=conditions if drifted is None else [*conditions, drifted],
        replicas=sum(deployment.spec_replicas for deployment in observed),
        ready_replicas=sum(deployment.ready_replicas for deployment in observed),
        selector=pod_selector(tick.md),
    )
    return described, new_events


def _objects(tick: Tick, status: ModelDeploymentStatus) -> list[dict[str, Any]]:
    if tick.ab_test:
        plan = abtest.plan_replicas
    else:
        plan = canary.plan_replicas if tick.canary_strategy else bluegreen.plan_replicas
    stable_replicas, canary_replicas = plan(tick, status)
    stable_template = status.stable_template or tick.desired
    rolling_out = status.canary_revision == tick.desired_revision
    canary_template = tick.desired if rolling_out else stable_template
    stable = get_deployment(
        tick.md,
        "stable",
        stable_template,
        status.stable_revision or tick.desired_revision,
        stable_replicas,
        model=status.stable_model,
    )
    canary_track = get_deployment(
        tick.md,
        "canary",
        canary_template,
        canary_track_revision(status) or tick.desired_revision,
        canary_replicas,
        model=status.canary_model if rolling_out else status.stable_model,
    )
    # An A/B test's pods assign and forward by the table: any of them may take any request.
    splits = tick.canary_strategy is not None or tick.ab_test is not None
    active = tick.router.apex_track(splits, status.last_set_weight or 0)
    if active is None and shadow.mirror_only(tick, status):
        active = "stable"
    tracks = [stable, canary_track, *get_services(tick.md, active)]
    return abtest.objects(tick, status, tracks) if tick.ab_test else tracks


def _requeue_after(tick: Tick, status: ModelDeploymentStatus) -> float | None:
    """Seconds until something the engine waits for is due: a pause's end, auto-promotion, the
    scale-down delay, the progress deadline, the next measurement; soon while the route lags."""
    times: list[datetime | None] = [
        bluegreen.auto_promotion_time(tick, status) if tick.blue_green else None,
        bluegreen.scale_down_time(tick, status) if tick.blue_green else None,
    ]
    times += [shadow.run_end(tick, run) for run in status.analysis_runs if run.kind == "Shadow"]
    left = canary.pause_end(tick, status) if tick.canary_strategy else None
    if left is not None:
        times.append(tick.now + left)
    if status.phase in ("Initializing", "Progressing", "Promoting"):
        times.append(tick.deadline(status))
    due = [(at - tick.now).total_seconds() for at in times if at is not None and at > tick.now]
    # A measurement already due (a run started this tick) is taken on the next tick, at once.
    wakeups = [runs.wakeup(run, analyses.metrics_for_run(tick, run)) for run in status.analysis_runs]
    wakeups += [runs.retry_time(run, analyses.metrics_for_run(tick, run)) for run in status.analysis_runs]
    wakeups.append(abtest.wakeup(tick, status))
    if status.monitor is not None:
        watching = monitor.monitor_metrics(tick.spec)
        wakeups += [runs.wakeup(status.monitor, watching), monitor.next_run_time(status.monitor, watching)]
    due += [max(0.0, (at - tick.now).total_seconds()) for at in wakeups if at is not None]
    if route_lags(tick, status):
        due.append(ROUTE_POLL_SECONDS)
    return min(due, default=None)
