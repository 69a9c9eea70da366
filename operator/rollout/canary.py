"""The canary strategy: the steps of `spec.strategy.canary`, in order, then promotion.

Each step first makes sure the weight of the latest `setWeight` at or before it is published
(canary pods Ready first, then the router; the stable side shrinks only after the router shows
the weight), then does its own job: a pause waits (its start time is in status, so it survives a
restart) or for a promote; an analysis step runs to a verdict. A background analysis runs beside
the steps from `startingStep` on. After the last step, stable takes the canary's template.
"""

from __future__ import annotations

from datetime import timedelta

from modelramp.operator.api.spec import CanaryStep
from modelramp.operator.api.status import AnalysisKind, AnalysisRunStatus, ModelDeploymentStatus, PauseReason
from modelramp.operator.api.types import parse_duration
from modelramp.operator.rollout import analyses, lifecycle, runs, shadow
from modelramp.operator.rollout.tick import (
    Tick,
    Transition,
    canary_track_revision,
    changed,
    normal,
    pause_reasons,
    promoting,
    rollout_active,
)
from modelramp.operator.rollout.traffic import canary_needed, live_weight, ready_for

ANALYSIS_PAUSES: frozenset[PauseReason] = frozenset({"InconclusiveAnalysis", "FailedAnalysis"})


def step_weight(steps: list[CanaryStep], index: int) -> int:
    """The weight in force at step `index`: the latest setWeight at or before it (0 before any)."""
    weights = [step.set_weight for step in steps[: index + 1] if step.set_weight is not None]
    return weights[-1] if weights else 0


def describe_step(step: CanaryStep) -> str:
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}"
    if step.pause is not None:
        return f"pause {step.pause.duration}" if step.pause.duration else "pause until promoted"
    if step.shadow is not None:
        return f"shadow {step.shadow.percent}%"
    return "analysis"


def target_weight(tick: Tick, status: ModelDeploymentStatus) -> int:
    """The canary weight the rollout is moving to now."""
    if promoting(status):
        return status.last_set_weight or 0
    if not rollout_active(tick, status):
        return 0
    return step_weight(tick.steps, status.current_step_index or 0)


def plan_replicas(tick: Tick, status: ModelDeploymentStatus) -> tuple[int, int]:
    """(stable, canary) pods: the canary sized for the higher of the live and target weights,
    stable for the lower, so neither side is short while traffic moves."""
    total = tick.total
    live, target = live_weight(tick, status), target_weight(tick, status)
    strategy = tick.canary_strategy
    if promoting(status) or strategy is None:
        return total, tick.router.canary_pods(total, max(live, target))
    stable, canary = tick.router.canary_plan(total, live, target, strategy)
    return stable, max(canary, shadow.mirror_pods(tick, status))


def advance(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """The next canary transition of an active rollout, or None while it waits."""
    if "UserPaused" in pause_reasons(status):
        return None
    index = status.current_step_index or 0
    if status.promote_full:
        return lifecycle.begin_promotion(tick, status)
    if status.promote:
        return _promote_step(tick, status, index)
    background = _background(tick, status, index)
    if background is not None:
        return background
    if pause_reasons(status) & ANALYSIS_PAUSES:
        return _retry_errored_step_analysis(tick, status, index)
    if index >= len(tick.steps):
        return lifecycle.begin_promotion(tick, status)
    target = step_weight(tick.steps, index)
    if (status.last_set_weight or 0) != target:
        return _publish(tick, status, target, index)
    if live_weight(tick, status) != target:
        return None
    step = tick.steps[index]
    if step.pause is not None:
        return _pause_step(tick, status, index, step)
    if step.analysis is not None:
        return _analysis_step(tick, status, index)
    if step.shadow is not None:
        return _shadow_step(tick, status, index)
    return _complete(tick, status, index)


def promote_after_abort(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """promote (or promote --full) after an abort or rollback continues past the step that
    stopped it, with the runs that failed dropped (argo-rollouts#841)."""
    if not (status.abort and status.aborted_at and (status.promote or status.promote_full)):
        return None
    if status.canary_revision != tick.desired_revision or promoting(status):
        return None
    index = status.current_step_index or 0
    nxt = index if status.promote_full else index + 1
    kept = [run for run in status.analysis_runs if run.phase == "Successful"]
    return changed(
        status,
        normal("RolloutResumed", f"promoted after the abort: continuing at step {nxt + 1}/{len(tick.steps)}"),
        abort=False,
        aborted_at=None,
        promote=False,
        pause_conditions=[],
        analysis_runs=kept,
        current_step_index=min(nxt, len(tick.steps)),
        step_start_time=tick.now,
        last_progress_time=tick.now,
    )


def _position(tick: Tick, index: int) -> str:
    return f"step {index + 1}/{len(tick.steps)}"


def _publish(tick: Tick, status: ModelDeploymentStatus, target: int, index: int) -> Transition | None:
    if ready_for(tick, status, target) and shadow.shed(tick, status, target):
        weight = tick.router.share(tick.total, target)
        pods = f"{canary_needed(tick, target)}/{tick.total} pods"
        return changed(
            status,
            normal("WeightSet", f"{_position(tick, index)}: canary weight {weight}% ({pods})"),
            last_set_weight=target,
            last_progress_time=tick.now,
        )
    return _past_deadline(tick, status, canary_needed(tick, target))


def _past_deadline(tick: Tick, status: ModelDeploymentStatus, needed: int) -> Transition | None:
    """Rolled back when the canary's pods were not Ready within progressDeadlineSeconds."""
    if not tick.past_deadline(status):
        return None
    ready = tick.ready_pods("canary", canary_track_revision(status))
    return lifecycle.rollback(
        tick,
        status,
        "ProgressDeadlineExceeded",
        f"{ready}/{needed} canary pods of revision {status.canary_revision} Ready after "
        f"{tick.spec.progress_deadline_seconds}s (progressDeadlineSeconds)",
    )


def _complete(tick: Tick, status: ModelDeploymentStatus, index: int, *lifted: PauseReason) -> Transition:
    step = describe_step(tick.steps[index])
    return changed(
        status,
        normal("StepCompleted", f"{_position(tick, index)} ({step}) completed"),
        current_step_index=index + 1,
        step_start_time=tick.now,
        last_progress_time=tick.now,
        pause_conditions=lifecycle.without_pause(status, "CanaryPauseStep", *lifted),
    )


def _pause_step(tick: Tick, status: ModelDeploymentStatus, index: int, step: CanaryStep) -> Transition | None:
    started = next((c.start_time for c in status.pause_conditions if c.reason == "CanaryPauseStep"), None)
    duration = step.pause.duration if step.pause else None
    if started is None:
        what = f"pausing for {duration}" if duration else "waiting for promote"
        return lifecycle.add_pause(
            tick, status, "CanaryPauseStep", normal("Paused", f"{_position(tick, index)}: {what}")
        )
    if duration and tick.now >= started + timedelta(seconds=parse_duration(duration)):
        return _complete(tick, status, index)
    return None


def pause_end(tick: Tick, status: ModelDeploymentStatus) -> timedelta | None:
    """Time left in the current timed pause step."""
    index = status.current_step_index or 0
    if not rollout_active(tick, status) or index >= len(tick.steps):
        return None
    pause = tick.steps[index].pause
    started = next((c.start_time for c in status.pause_conditions if c.reason == "CanaryPauseStep"), None)
    if pause is None or pause.duration is None or started is None:
        return None
    return started + timedelta(seconds=parse_duration(pause.duration)) - tick.now


def _analysis_step(tick: Tick, status: ModelDeploymentStatus, index: int) -> Transition | None:
    run = analyses.current_run(tick, status, "Step", index)
    if run is None:
        return analyses.start_analysis(tick, status, "Step", index)
    if run.phase == "Successful":
        return _complete(tick, status, index)
    if run.phase in ("Running", "Pending"):
        return None
    return lifecycle.act_on_verdict(tick, status, run)


def _shadow_step(tick: Tick, status: ModelDeploymentStatus, index: int) -> Transition | None:
    """Mirror once the canary has the pods for it (the run's start turns the stable pods' tee on);
    Successful moves on, Failed rolls back, and the step's duration ends an undecided run."""
    run = analyses.current_run(tick, status, "Shadow", index)
    if run is None:
        pods = shadow.mirror_pods(tick, status)
        if tick.has_ready("canary", status.canary_revision, pods):
            return analyses.start_analysis(tick, status, "Shadow", index)
        return _past_deadline(tick, status, pods)
    if run.phase == "Successful":
        return _complete(tick, status, index)
    if run.phase in ("Running", "Pending"):
        end = shadow.run_end(tick, run)
        if end is None or tick.now < end:
            return None
        ended = runs.terminate(run, analyses.metrics_for_run(tick, run), tick.now)
        return changed(
            status,
            normal("ShadowEnded", f"{_position(tick, index)}: shadow duration over; analysis {ended.phase}"),
            analysis_runs=runs.upsert(status.analysis_runs, ended),
        )
    return lifecycle.act_on_verdict(tick, status, run)


def _step_kind(step: CanaryStep) -> AnalysisKind | None:
    """The kind of analysis run a step makes, if any."""
    if step.analysis is not None:
        return "Step"
    return "Shadow" if step.shadow is not None else None


def _retry_errored_step_analysis(tick: Tick, status: ModelDeploymentStatus, index: int) -> Transition | None:
    """A step analysis paused because its measurements failed is measured again, while the
    rollout stays paused; once a retry succeeds the rollout carries on by itself. An outage of the
    metrics system says nothing about the model: it neither promotes nor needs a human to undo."""
    kind = _step_kind(tick.steps[index]) if index < len(tick.steps) else None
    if kind is None:
        return None
    run = analyses.current_run(tick, status, kind, index)
    if run is None:
        return None
    if (
        run.phase == "Successful"
        and run.started_at is not None
        and any(
            condition.reason == "InconclusiveAnalysis" and condition.start_time <= run.started_at
            for condition in status.pause_conditions
        )
    ):
        return _complete(tick, status, index, "InconclusiveAnalysis")
    metrics = analyses.metrics_for_run(tick, run)
    retry_at = runs.retry_time(run, metrics)
    if retry_at is None or tick.now < retry_at:
        return None
    return changed(
        status,
        normal("AnalysisRetried", f"analysis {run.name} ended in Error ({run.message}); measuring again"),
        analysis_runs=runs.upsert(status.analysis_runs, runs.restart(run, metrics, tick.now)),
    )


def _background(tick: Tick, status: ModelDeploymentStatus, index: int) -> Transition | None:
    analysis = tick.canary_strategy.analysis if tick.canary_strategy else None
    if analysis is None or index < (analysis.starting_step or 0):
        return None
    run = analyses.current_run(tick, status, "Background")
    if run is None:
        return analyses.start_analysis(tick, status, "Background")
    if run.phase in ("Running", "Pending", "Successful"):
        return None
    return lifecycle.act_on_verdict(tick, status, run)


def _promote_step(tick: Tick, status: ModelDeploymentStatus, index: int) -> Transition:
    """`modelramp promote`: end the current step now; analysis pauses are lifted, a decided
    background run starts over, a running step analysis is stopped."""
    if index >= len(tick.steps):
        return lifecycle.begin_promotion(tick, status)
    kept = [
        _stop_if_current(tick, run, index)
        for run in status.analysis_runs
        if run.kind != "Background" or run.phase in ("Running", "Pending", "Successful")
    ]
    step = describe_step(tick.steps[index])
    return changed(
        status,
        normal("StepPromoted", f"{_position(tick, index)} ({step}) ended by promote"),
        promote=False,
        analysis_runs=kept,
        pause_conditions=lifecycle.without_pause(status, "CanaryPauseStep", *ANALYSIS_PAUSES),
        current_step_index=index + 1,
        step_start_time=tick.now,
        last_progress_time=tick.now,
    )


def _stop_if_current(tick: Tick, run: AnalysisRunStatus, index: int) -> AnalysisRunStatus:
    if run.kind in ("Step", "Shadow") and run.step_index == index:
        return runs.terminate(run, analyses.metrics_for_run(tick, run), tick.now)
    return run
