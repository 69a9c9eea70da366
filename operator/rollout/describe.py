"""Status for people and tools: the phase, its reason and a one-line message, from the state.

Computed afresh every tick from status and what was observed, so it is always true and the same
inputs always give the same words (no event or write when nothing changed). Only an abort or a
rollback is sticky: its phase, reason and message are set by the transition that stopped the
rollout and kept until a retry, a promote or a new revision.
"""

from __future__ import annotations

from modelramp.operator.api.status import AnalysisRunStatus, ModelDeploymentStatus, Phase
from modelramp.operator.rollout import abtest, bluegreen, canary
from modelramp.operator.rollout.conditions import UNHEALTHY, reason_of
from modelramp.operator.rollout.tick import Tick, pause_reasons, promoting, rollout_active
from modelramp.operator.rollout.traffic import canary_needed

Description = tuple[Phase, str, str]


def describe(tick: Tick, status: ModelDeploymentStatus) -> Description:
    if status.abort and status.aborted_at is not None:
        if status.phase in UNHEALTHY:
            return status.phase, reason_of(status.conditions) or "RolloutAborted", status.message or ""
        return "Degraded", "RolloutAborted", f"rollout of revision {status.canary_revision} aborted"
    if promoting(status):
        return _promoting(tick, status)
    if rollout_active(tick, status):
        tested = abtest.describe(tick, status) if tick.ab_test else None
        if tested is not None:
            return tested
        return _canary(tick, status) if tick.canary_strategy else _blue_green(tick, status)
    return _steady(tick, status)


def _stable_pods(tick: Tick, status: ModelDeploymentStatus) -> str:
    return f"{tick.ready_pods('stable', status.stable_revision)}/{tick.total}"


def _stalled(tick: Tick, status: ModelDeploymentStatus, what: str) -> Description:
    return (
        "Degraded",
        "ProgressDeadlineExceeded",
        f"{what}: {_stable_pods(tick, status)} stable pods of revision {status.stable_revision} Ready after "
        f"{tick.spec.progress_deadline_seconds}s (progressDeadlineSeconds)",
    )


def _steady(tick: Tick, status: ModelDeploymentStatus) -> Description:
    uri = status.stable_model.uri if status.stable_model else tick.desired.model.uri
    if tick.has_ready("stable", status.stable_revision, tick.total):
        return "Healthy", "Healthy", f"serving {uri} (revision {status.stable_revision})"
    if tick.past_deadline(status):
        return _stalled(tick, status, "not Ready")
    if status.phase in (None, "Initializing"):
        return "Initializing", "Initializing", f"starting {uri}: {_stable_pods(tick, status)} pods Ready"
    return "Progressing", "Scaling", f"serving {uri}: {_stable_pods(tick, status)} pods Ready"


def _promoting(tick: Tick, status: ModelDeploymentStatus) -> Description:
    if not tick.has_ready("stable", status.stable_revision, tick.total) and tick.past_deadline(status):
        return _stalled(tick, status, "promotion stalled")
    return (
        "Promoting",
        "Promoting",
        f"promoting revision {status.stable_revision}: {_stable_pods(tick, status)} stable pods Ready",
    )


def _analysis_pause(status: ModelDeploymentStatus, where: str) -> Description | None:
    reasons = pause_reasons(status) & {"InconclusiveAnalysis", "FailedAnalysis"}
    if not reasons:
        return None
    decided = [run for run in status.analysis_runs if run.phase in ("Failed", "Inconclusive", "Error")]
    detail = _run_detail(decided[-1]) if decided else "analysis not successful"
    return "Paused", sorted(reasons)[0], f"{where}: {detail}; promote to continue or abort to roll back"


def _run_detail(run: AnalysisRunStatus) -> str:
    return f"analysis {run.name} {run.phase}" + (f" ({run.message})" if run.message else "")


def _canary(tick: Tick, status: ModelDeploymentStatus) -> Description:
    index = status.current_step_index or 0
    where = f"step {min(index + 1, len(tick.steps))}/{len(tick.steps)}"
    reasons = pause_reasons(status)
    if "UserPaused" in reasons:
        return "Paused", "UserPaused", f"paused (spec.paused) at {where}"
    paused = _analysis_pause(status, where)
    if paused is not None:
        return paused
    if index >= len(tick.steps):
        return "Progressing", "CanaryStep", "all steps done"
    step = tick.steps[index]
    at = f"{where} ({canary.describe_step(step)}): canary at {status.canary_weight}%"
    if "CanaryPauseStep" in reasons:
        left = canary.pause_end(tick, status)
        if left is None:
            return "Paused", "CanaryPauseStep", f"waiting for promote at {where}"
        return "Paused", "CanaryPauseStep", f"{at}, paused for {round(left.total_seconds())}s more"
    target = canary.step_weight(tick.steps, index)
    if (status.last_set_weight or 0) != target:
        ready = tick.ready_pods("canary", status.canary_revision)
        return "Progressing", "CanaryStep", f"{at}; {ready}/{canary_needed(tick, target)} canary pods Ready"
    running = [run for run in status.analysis_runs if run.phase in ("Running", "Pending")]
    suffix = "; " + ", ".join(f"analysis {run.name} running" for run in running) if running else ""
    return "Progressing", "CanaryStep", at + suffix


def _blue_green(tick: Tick, status: ModelDeploymentStatus) -> Description:
    reasons = pause_reasons(status)
    revision = status.canary_revision
    if "UserPaused" in reasons:
        return "Paused", "UserPaused", "paused (spec.paused)"
    paused = _analysis_pause(status, "blue-green")
    if paused is not None:
        return paused
    if "BlueGreenPause" in reasons:
        return "Paused", "BlueGreenPause", f"preview of revision {revision} ready: waiting for promote"
    if bluegreen.switch_time(status) is not None:
        ends = bluegreen.scale_down_time(tick, status)
        running = [run.name for run in status.analysis_runs if run.phase in ("Running", "Pending")]
        waiting = f"analysis {running[0]} running" if running else f"old pods kept until {ends:%H:%M:%SZ}"
        return "Progressing", "Switched", f"traffic on revision {revision}; {waiting}"
    ready = tick.ready_pods("canary", revision)
    if (status.current_step_index or 0) >= bluegreen.APPROVED:
        return (
            "Progressing",
            "Switching",
            f"preview scaling to {tick.total} pods before the switch ({ready} Ready)",
        )
    if bluegreen.preview_ready_time(status) is None:
        size = bluegreen.preview_size(tick)
        return "Progressing", "PreviewStarting", f"preview of revision {revision}: {ready}/{size} pods Ready"
    at = bluegreen.auto_promotion_time(tick, status)
    waiting = (
        "pre-promotion analysis running" if at is None or at <= tick.now else f"switch at {at:%H:%M:%SZ}"
    )
    return "Progressing", "PreviewReady", f"preview of revision {revision} ready; {waiting}"
