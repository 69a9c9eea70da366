"""The blue-green strategy: a preview beside stable with no traffic, then one switch.

Stages (`status.currentStepIndex`, with `status.blueGreen` timings): 0 — the preview (`<name>-canary`)
comes up at previewReplicas, the pre-promotion analysis runs, and the rollout waits for
autoPromotionSeconds or a promote; 1 — approved: the preview grows to full size, then all traffic
switches to it (`switchTime`). After the switch the post-promotion analysis runs while the old
pods are kept for scaleDownDelaySeconds (a failure switches straight back); then stable takes the
new template (the old side goes away), traffic returns to the stable track and the preview is
scaled to 0.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from modelramp.operator.api.spec import BlueGreenStrategy
from modelramp.operator.api.status import (
    BlueGreenStatus,
    ModelDeploymentStatus,
    PauseReason,
)
from modelramp.operator.rollout import analyses, lifecycle, runs
from modelramp.operator.rollout.tick import (
    Tick,
    Transition,
    changed,
    normal,
    pause_reasons,
    promoting,
    rollout_active,
)
from modelramp.operator.rollout.traffic import live_weight, ready_for

PREVIEW, APPROVED = 0, 1
PromotionAnalysis = Literal["PrePromotion", "PostPromotion"]
ANALYSIS_PAUSES: frozenset[PauseReason] = frozenset({"InconclusiveAnalysis", "FailedAnalysis"})


def _strategy(tick: Tick) -> BlueGreenStrategy:
    if tick.blue_green is None:
        raise ValueError("spec.strategy.blueGreen: not set")
    return tick.blue_green


def preview_size(tick: Tick) -> int:
    replicas = _strategy(tick).preview_replicas
    return tick.total if replicas is None else replicas


def switch_time(status: ModelDeploymentStatus) -> datetime | None:
    return status.blue_green.switch_time if status.blue_green else None


def preview_ready_time(status: ModelDeploymentStatus) -> datetime | None:
    return status.blue_green.preview_ready_time if status.blue_green else None


def plan_replicas(tick: Tick, status: ModelDeploymentStatus) -> tuple[int, int]:
    """(stable, preview) pods: stable always at full size; the preview at previewReplicas until
    approved, full size from then on, and kept while the router sends or is about to send it
    traffic."""
    total = tick.total
    if max(live_weight(tick, status), status.last_set_weight or 0) > 0:
        return total, total
    if not rollout_active(tick, status):
        return total, 0
    approved = (status.current_step_index or 0) >= APPROVED or switch_time(status) is not None
    return total, total if approved else preview_size(tick)


def advance(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    if "UserPaused" in pause_reasons(status):
        return None
    switched = switch_time(status)
    if status.promote:
        return lifecycle.begin_promotion(tick, status) if switched else _approve(tick, status, "promote")
    if status.promote_full:
        if switched:
            return lifecycle.begin_promotion(tick, status)
        if (status.current_step_index or 0) < APPROVED:
            # Set by `promote --full` or by a fast rollback (spec.rollbackWindow).
            return _approve(tick, status, "promoteFull")
    if pause_reasons(status) & ANALYSIS_PAUSES:
        return None
    if switched is not None:
        return _after_switch(tick, status)
    if (status.current_step_index or 0) >= APPROVED:
        return _switch(tick, status)
    return _preview(tick, status)


def promote_after_abort(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """promote after an abort or rollback: switch again, the failed runs dropped."""
    if not (status.abort and status.aborted_at and (status.promote or status.promote_full)):
        return None
    if status.canary_revision != tick.desired_revision or promoting(status):
        return None
    return changed(
        status,
        normal("RolloutResumed", "promoted after the abort: switching to the preview"),
        abort=False,
        aborted_at=None,
        promote=False,
        pause_conditions=[],
        analysis_runs=[run for run in status.analysis_runs if run.phase == "Successful"],
        current_step_index=APPROVED,
        blue_green=BlueGreenStatus(preview_ready_time=preview_ready_time(status)),
        step_start_time=tick.now,
        last_progress_time=tick.now,
    )


def _preview(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    strategy = _strategy(tick)
    ready_at = preview_ready_time(status)
    if ready_at is None:
        if tick.has_ready("canary", status.canary_revision, preview_size(tick)):
            return changed(
                status,
                normal("PreviewReady", f"preview of revision {status.canary_revision} is Ready"),
                blue_green=BlueGreenStatus(preview_ready_time=tick.now),
                last_progress_time=tick.now,
            )
        return _deadline(tick, status, preview_size(tick))
    if strategy.pre_promotion_analysis is not None and not _passed(tick, status, "PrePromotion"):
        return _analysis(tick, status, "PrePromotion")
    if not strategy.auto_promotion_enabled:
        event = normal("Paused", f"preview of revision {status.canary_revision} ready: waiting for promote")
        return lifecycle.add_pause(tick, status, "BlueGreenPause", event)
    if tick.now < ready_at + timedelta(seconds=strategy.auto_promotion_seconds or 0):
        return None
    return _approve(tick, status, "auto-promotion")


def auto_promotion_time(tick: Tick, status: ModelDeploymentStatus) -> datetime | None:
    ready_at = preview_ready_time(status)
    strategy = tick.blue_green
    if strategy is None or ready_at is None or not strategy.auto_promotion_enabled:
        return None
    return ready_at + timedelta(seconds=strategy.auto_promotion_seconds or 0)


def scale_down_time(tick: Tick, status: ModelDeploymentStatus) -> datetime | None:
    switched = switch_time(status)
    if switched is None or tick.blue_green is None:
        return None
    return switched + timedelta(seconds=tick.blue_green.scale_down_delay_seconds)


def _approve(tick: Tick, status: ModelDeploymentStatus, by: str) -> Transition:
    stopped = [
        runs.terminate(run, analyses.metrics_for_run(tick, run), tick.now)
        if run.kind == "PrePromotion"
        else run
        for run in status.analysis_runs
    ]
    return changed(
        status,
        normal("PromotionApproved", f"preview of revision {status.canary_revision} approved by {by}"),
        current_step_index=APPROVED,
        promote=False,
        analysis_runs=stopped,
        pause_conditions=lifecycle.without_pause(status, "BlueGreenPause", *ANALYSIS_PAUSES),
        step_start_time=tick.now,
        last_progress_time=tick.now,
    )


def _switch(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    if not ready_for(tick, status, 100):
        return _deadline(tick, status, tick.total)
    return changed(
        status,
        normal("Switched", f"all traffic switched to revision {status.canary_revision}"),
        last_set_weight=100,
        blue_green=BlueGreenStatus(preview_ready_time=preview_ready_time(status), switch_time=tick.now),
        step_start_time=tick.now,
        last_progress_time=tick.now,
    )


def _after_switch(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    if live_weight(tick, status) != 100:
        return None
    if _strategy(tick).post_promotion_analysis is not None and not _passed(tick, status, "PostPromotion"):
        return _analysis(tick, status, "PostPromotion")
    ends = scale_down_time(tick, status)
    if ends is not None and tick.now < ends:
        return None
    return lifecycle.begin_promotion(tick, status)


def _passed(tick: Tick, status: ModelDeploymentStatus, kind: PromotionAnalysis) -> bool:
    run = analyses.current_run(tick, status, kind)
    return run is not None and run.phase == "Successful"


def _analysis(tick: Tick, status: ModelDeploymentStatus, kind: PromotionAnalysis) -> Transition | None:
    """Start the analysis, wait for it, or act on its unsuccessful verdict."""
    run = analyses.current_run(tick, status, kind)
    if run is None:
        return analyses.start_analysis(tick, status, kind)
    if run.phase in ("Running", "Pending"):
        return None
    return lifecycle.act_on_verdict(tick, status, run)


def _deadline(tick: Tick, status: ModelDeploymentStatus, needed: int) -> Transition | None:
    if not tick.past_deadline(status):
        return None
    ready = tick.ready_pods("canary", status.canary_revision)
    return lifecycle.rollback(
        tick,
        status,
        "ProgressDeadlineExceeded",
        f"{ready}/{needed} preview pods of revision {status.canary_revision} Ready after "
        f"{tick.spec.progress_deadline_seconds}s (progressDeadlineSeconds)",
    )
