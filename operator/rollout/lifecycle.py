"""Transitions every strategy shares: first deploy, start/restart/cancel/retry of a rollout, fast
rollback to a recent stable revision (spec.rollbackWindow), abort and rollback, user pause,
analysis verdicts, and promotion (stable takes the canary's template, then traffic and the canary
go back to stable).

Each function is a transition `(Tick, status) -> Transition | None`: None when it doesn't apply.
"""

from __future__ import annotations

from modelramp.operator.api.status import (
    MAX_STABLE_HISTORY,
    AnalysisRunStatus,
    BlueGreenStatus,
    ModelDeploymentStatus,
    PauseCondition,
    PauseReason,
    Phase,
)
from modelramp.operator.rollout import analyses, variants
from modelramp.operator.rollout.conditions import conditions_for
from modelramp.operator.rollout.model import EventRecord
from modelramp.operator.rollout.tick import (
    StatusUpdate,
    Tick,
    Transition,
    changed,
    normal,
    pause_reasons,
    promoting,
    rollout_active,
    warning,
)
from modelramp.operator.rollout.traffic import live_weight, ready_for


def _desired_as_stable(tick: Tick) -> StatusUpdate:
    return {
        "stable_revision": tick.desired_revision,
        "stable_template": tick.desired,
        "stable_model": tick.desired_model,
        "last_progress_time": tick.now,
    }


def initialize(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """First apply: the spec becomes the stable revision."""
    if status.stable_revision is not None and status.stable_template is not None:
        return None
    what = f"{tick.desired.model.uri} as stable revision {tick.desired_revision}"
    update: StatusUpdate = {**_desired_as_stable(tick), "canary_weight": 0, "last_set_weight": 0}
    return changed(status, normal("Deploying", f"deploying {what}"), **update)


def _fresh_rollout(tick: Tick) -> StatusUpdate:
    """The status fields of a rollout of the desired revision that starts now."""
    return {
        "canary_revision": tick.desired_revision,
        "canary_model": tick.desired_model,
        "current_step_index": 0,
        "step_start_time": tick.now,
        "pause_conditions": [],
        "abort": False,
        "aborted_at": None,
        "promote": False,
        "promote_full": False,
        "blue_green": BlueGreenStatus() if tick.blue_green else None,
        "rollout_start_time": tick.now,
        "last_progress_time": tick.now,
        "analysis_runs": [],
        "measurements": [],
        # The new pods start from nothing: traffic moves back until they are Ready for a weight.
        "last_set_weight": 0,
    }


def new_revision(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """The spec names a revision that is neither stable nor rolling out: (re)start from step 0,
    or, for a revision within spec.rollbackWindow, promote it fully at once. The runs of the
    replaced revision are dropped, never inherited (flagger#30)."""
    if tick.desired_revision in (status.stable_revision, status.canary_revision):
        return None
    if variants.concluded_here(tick, status):
        return None
    target = f"revision {tick.desired_revision} ({tick.desired.model.uri})"
    if _never_served(tick, status):
        event = normal("Deploying", f"stable never became Ready: {target} replaces it directly")
        return changed(status, event, **_desired_as_stable(tick))
    ago = _stable_ago(tick, status)
    if ago is not None:
        event = normal(
            "FastRollback",
            f"revision {tick.desired_revision} is within rollbackWindow (was stable {ago} "
            f"revision{'' if ago == 1 else 's'} ago): skipping steps and analysis",
        )
        # The strategy's own promote --full path: it already skips every step and analysis.
        update: StatusUpdate = {**_fresh_rollout(tick), "promote_full": True}
        return changed(status, event, **update)
    if status.canary_revision is not None and not promoting(status) and not status.abort:
        event = normal(
            "RolloutRestarted", f"{target} replaces revision {status.canary_revision} mid-rollout; restarting"
        )
    else:
        event = normal(
            "RolloutStarted", f"rolling out {target} over stable revision {status.stable_revision}"
        )
    return changed(status, event, **_fresh_rollout(tick))


def _stable_ago(tick: Tick, status: ModelDeploymentStatus) -> int | None:
    """How many stable revisions ago the desired revision was stable (1: just before the current
    one), when that is within spec.rollbackWindow; None otherwise."""
    window = tick.spec.rollback_window
    if window is None:
        return None
    recent = status.stable_history[-window.revisions :]
    if tick.desired_revision not in recent:
        return None
    return len(recent) - recent.index(tick.desired_revision)


def history_after_promotion(status: ModelDeploymentStatus, incoming: str | None = None) -> list[str]:
    """stableHistory once the canary (or `incoming`, an A/B challenger) takes over from stable:
    the outgoing stable is the newest entry and the incoming one leaves it (it is stable now), so
    each revision is in it once and its position says how many stable revisions ago it served."""
    outgoing = [status.stable_revision] if status.stable_revision is not None else []
    arriving = incoming if incoming is not None else status.canary_revision
    kept = [r for r in status.stable_history if r not in (status.stable_revision, arriving)]
    return [*kept, *outgoing][-MAX_STABLE_HISTORY:]


def _never_served(tick: Tick, status: ModelDeploymentStatus) -> bool:
    """The first revision never became Ready and no rollout ever ran: canarying a fix over it
    would only slow the fix down (Argo Rollouts, too, applies a first revision at once)."""
    return (
        status.canary_revision is None
        and status.rollout_start_time is None
        and status.phase in (None, "Initializing", "Degraded")
        and not tick.has_ready("stable", status.stable_revision, tick.total)
    )


def retry(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """`status.abort` cleared after an abort or a rollback: restart the rollout from step 0."""
    if (
        status.canary_revision != tick.desired_revision
        or promoting(status)
        or status.abort
        or status.aborted_at is None
    ):
        return None
    event = normal(
        "RolloutRetried", f"retrying the rollout of revision {tick.desired_revision} from the start"
    )
    return changed(status, event, **_fresh_rollout(tick))


def cancel(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """The spec went back to the stable revision: drop the rollout, traffic back to stable."""
    if status.canary_revision is None or promoting(status) or tick.desired_revision != status.stable_revision:
        return None
    event = normal(
        "RolloutCancelled",
        f"spec is back to stable {status.stable_revision}: rollout of {status.canary_revision} cancelled",
    )
    return changed(status, event, **idle())


def idle() -> StatusUpdate:
    """The status fields of no rollout in progress."""
    return {
        "canary_revision": None,
        "canary_model": None,
        "pause_conditions": [],
        "abort": False,
        "aborted_at": None,
        "promote": False,
        "promote_full": False,
    }


def clear_stray_requests(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """abort/promote asked for with no rollout to act on (or during the final promotion): cleared,
    with an event saying so, rather than kept to surprise the next rollout."""
    idle = status.canary_revision is None
    if not (idle or promoting(status)) or not (status.abort or status.promote or status.promote_full):
        return None
    why = "no rollout is in progress" if idle else "the rollout is already promoting"
    return changed(
        status,
        normal("RequestIgnored", f"abort/promote request cleared: {why}"),
        abort=False,
        promote=False,
        promote_full=False,
    )


def abort_requested(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """`modelramp abort`: all traffic back to stable, canary to 0, phase Degraded."""
    if not (status.abort and status.aborted_at is None and status.canary_revision == tick.desired_revision):
        return None
    if promoting(status):
        return None
    message = f"rollout of revision {status.canary_revision} aborted: all traffic back to stable"
    return stop(tick, status, "Degraded", "RolloutAborted", message)


def stop(tick: Tick, status: ModelDeploymentStatus, phase: Phase, reason: str, message: str) -> Transition:
    """Abort or roll back: runs stopped, pauses cleared (aborting a paused rollout must not loop,
    argo-rollouts#3756), the phase sticky until retry, promote or a new revision."""
    stopped = analyses.stop_runs(tick, status.analysis_runs)
    return changed(
        status,
        warning(reason, message),
        abort=True,
        aborted_at=tick.now,
        promote=False,
        promote_full=False,
        pause_conditions=[],
        analysis_runs=stopped,
        phase=phase,
        message=message,
        conditions=conditions_for(
            phase,
            reason,
            message,
            generation=tick.md.metadata.generation,
            now=tick.now,
            previous=status.conditions,
        ),
    )


def rollback(tick: Tick, status: ModelDeploymentStatus, reason: str, message: str) -> Transition:
    return stop(tick, status, "RolledBack", reason, f"rolled back: {message}")


def restore_stable_traffic(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """Aborted or cancelled with traffic still on the canary: move it back once stable has the pods."""
    if rollout_active(tick, status) or promoting(status) or not status.last_set_weight:
        return None
    if not ready_for(tick, status, 0):
        return None
    return changed(
        status,
        normal("TrafficShifted", f"all traffic back to stable revision {status.stable_revision}"),
        last_set_weight=0,
    )


def begin_promotion(tick: Tick, status: ModelDeploymentStatus) -> Transition:
    """Stable takes the canary's template; traffic stays where it is until stable is Ready.

    The outgoing stable goes into stableHistory here, the last moment it is known: from here on
    the promotion only finishes (abort and cancel no longer apply)."""
    stopped = analyses.stop_runs(tick, status.analysis_runs)
    return changed(
        status,
        normal("Promoting", f"promoting revision {status.canary_revision}: stable takes its template"),
        stable_revision=status.canary_revision,
        stable_history=history_after_promotion(status),
        stable_template=tick.desired,
        stable_model=status.canary_model,
        analysis_runs=stopped,
        pause_conditions=[],
        promote=False,
        promote_full=False,
        step_start_time=tick.now,
        last_progress_time=tick.now,
    )


def finish_promotion(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """Stable Ready on the new revision: traffic to stable, then (once the router shows it) the
    canary is scaled to 0 and the rollout ends."""
    if not promoting(status) or not tick.has_ready("stable", status.stable_revision, tick.total):
        return None
    if status.last_set_weight:
        return changed(
            status,
            normal("TrafficShifted", f"stable runs revision {status.stable_revision}: all traffic to stable"),
            last_set_weight=0,
        )
    if live_weight(tick, status) != 0:
        return None
    update: StatusUpdate = {**idle(), "last_progress_time": tick.now}
    return changed(
        status,
        normal("Promoted", f"revision {status.stable_revision} ({tick.desired.model.uri}) is stable"),
        **update,
    )


def user_pause(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """spec.paused set or cleared during a rollout; the deadline restarts on resume."""
    if not rollout_active(tick, status):
        return None
    paused = "UserPaused" in pause_reasons(status)
    if tick.spec.paused and not paused:
        return add_pause(tick, status, "UserPaused", normal("Paused", "rollout paused (spec.paused)"))
    if not tick.spec.paused and paused:
        return changed(
            status,
            normal("Resumed", "rollout resumed (spec.paused cleared)"),
            pause_conditions=without_pause(status, "UserPaused"),
            last_progress_time=tick.now,
        )
    return None


def without_pause(status: ModelDeploymentStatus, *reasons: PauseReason) -> list[PauseCondition]:
    return [condition for condition in status.pause_conditions if condition.reason not in reasons]


def add_pause(
    tick: Tick, status: ModelDeploymentStatus, reason: PauseReason, event: EventRecord
) -> Transition | None:
    """Pause with `reason` (once), starting now."""
    if reason in pause_reasons(status):
        return None
    condition = PauseCondition(reason=reason, start_time=tick.now)
    return changed(status, event, pause_conditions=[*status.pause_conditions, condition])


# --- analysis verdicts ---------------------------------------------------------------------------

_VERDICT_EVENTS = {"Failed": "AnalysisFailed", "Error": "AnalysisError"}


def act_on_verdict(tick: Tick, status: ModelDeploymentStatus, run: AnalysisRunStatus) -> Transition | None:
    """A decided, unsuccessful run: roll back (or pause, spec.analysis.onFailure=Pause) on Failed;
    pause for a human on Inconclusive or Error, never promote."""
    detail = f"analysis {run.name} {run.phase}: {run.message or 'no details'}"
    policy = tick.spec.analysis.on_failure if tick.spec.analysis else "Rollback"
    if run.phase == "Failed" and policy == "Rollback":
        return rollback(tick, status, "AnalysisFailed", detail)
    reason: PauseReason = "FailedAnalysis" if run.phase == "Failed" else "InconclusiveAnalysis"
    if reason in pause_reasons(status):
        return None
    event_reason = {"Failed": "AnalysisFailed", "Error": "AnalysisError"}.get(
        run.phase, "AnalysisInconclusive"
    )
    condition = PauseCondition(reason=reason, start_time=tick.now)
    return changed(
        status,
        warning(event_reason, f"{detail}; paused: promote to continue, abort to roll back"),
        pause_conditions=[*status.pause_conditions, condition],
    )
