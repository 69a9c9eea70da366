"""The A/B test strategy: variants side by side on sticky groups of users, then the winner.

Stages (`status.abTest.phase`): Starting — the candidate (spec.model, on the canary track) and
each challenger with a model of its own come up, sized for their weights, beside stable at full
size; Running — the assignment table is live (every server assigns and forwards by it, see
`variants`), the decision metric is measured every `interval` and judged on the counts pooled
per variant (`analysis.abtest`); Decided — a winner is held for `modelramp promote`
(`autoPromote: false`); Concluded — the winner serves: the candidate is promoted as a canary
is, a challenger with a model of its own becomes stable directly, and control winning ends the
rollout with stable unchanged (the spec's revision is then not rolled out again, see
`variants.concluded_here`). `modelramp promote` before a decision promotes the candidate.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from modelramp.operator.analysis.ab_judging import judge, next_window, pooled
from modelramp.operator.api.abtest import CONTROL, ABTestStatus
from modelramp.operator.api.status import ModelDeploymentStatus, Phase, ResolvedModel
from modelramp.operator.api.types import parse_duration
from modelramp.operator.rollout import lifecycle
from modelramp.operator.rollout.model import EventRecord
from modelramp.operator.rollout.objects import Manifest
from modelramp.operator.rollout.tick import (
    StatusUpdate,
    Tick,
    Transition,
    changed,
    normal,
    pause_reasons,
    promoting,
    rollout_active,
    updated,
    warning,
)
from modelramp.operator.rollout.traffic import live_weight
from modelramp.operator.rollout.variants import (
    Arm,
    arms,
    assignment_config_map,
    candidate,
    challenger_objects,
    new_test,
    strategy_of,
    test_id,
    with_assignment,
)
from modelramp.operator.routers.base import ObjectRef
from modelramp.operator.routers.pods import weighted_pods

HELD = "ABTestDecided"


# --- pods ----------------------------------------------------------------------------------------


def challenger_pods(total: int, weight: int) -> int:
    """Pods of a challenger with a model of its own: its share of `total`, at least one."""
    return max(1, weighted_pods(total, weight)) if total else 0


def candidate_pods(tick: Tick) -> int:
    """Ready canary pods the candidate needs: as many as the router wants for its weight."""
    return tick.router.canary_pods(tick.total, candidate(tick).weight)


def _testing(tick: Tick, status: ModelDeploymentStatus) -> bool:
    test = status.ab_test
    return rollout_active(tick, status) and test is not None and test.phase != "Concluded"


def plan_replicas(tick: Tick, status: ModelDeploymentStatus) -> tuple[int, int]:
    """(stable, canary) pods: stable at full size throughout (it is control, and takes every
    request back the moment the test ends); the canary sized for the candidate while testing,
    and for the weight still on it while traffic moves back or a promotion finishes."""
    target = (status.last_set_weight or 0) if promoting(status) else 0
    canary = tick.router.canary_pods(tick.total, max(live_weight(tick, status), target))
    if _testing(tick, status):
        canary = max(canary, candidate_pods(tick))
    return tick.total, canary


def objects(tick: Tick, status: ModelDeploymentStatus, tracks: list[Manifest]) -> list[Manifest]:
    """The stable and canary Deployments with the table mounted, each challenger's Deployment and
    Service, and the table itself."""
    mounted = [
        with_assignment(manifest, tick.md) if manifest["kind"] == "Deployment" else manifest
        for manifest in tracks
    ]
    challengers = [
        manifest
        for arm in arms(tick, status)
        if arm.track is None
        for manifest in challenger_objects(
            tick, arm, challenger_pods(tick.total, arm.variant.weight) if _testing(tick, status) else 0
        )
    ]
    return [*mounted, *challengers, assignment_config_map(tick, status)]


def _ready(tick: Tick, status: ModelDeploymentStatus, arm: Arm) -> tuple[int, int]:
    """(Ready pods, pods needed) of a variant before assignment may begin."""
    if arm.track == "stable":
        return tick.ready_pods("stable", arm.revision), tick.total
    if arm.track == "canary":
        return tick.ready_pods("canary", arm.revision), candidate_pods(tick)
    needed = challenger_pods(tick.total, arm.variant.weight)
    observed = tick.observed.variants.get(arm.name)
    if observed is None or observed.revision != arm.revision:
        return 0, needed
    ready = min(observed.ready_replicas, observed.updated_replicas)
    return (ready if observed.has_ready(arm.revision, min(ready, needed)) else 0), needed


# --- transitions ---------------------------------------------------------------------------------


def fold(tick: Tick, status: ModelDeploymentStatus) -> ModelDeploymentStatus:
    """This tick's windows of the decision metric pooled into the running test and judged."""
    test = status.ab_test
    if tick.ab_test is None or test is None or test.phase != "Running" or test.winner is not None:
        return status
    strategy = strategy_of(tick)
    for window in sorted(tick.ab_windows, key=lambda w: w.time):
        if window.test != test.id or (
            test.last_measured_at is not None and window.time <= test.last_measured_at
        ):
            continue
        if window.error is not None:
            test = test.model_copy(
                update={
                    "consecutive_errors": test.consecutive_errors + 1,
                    "message": f"measurement failed: {window.error}",
                }
            )
            continue
        test = judge(strategy, pooled(test, window.variants, window.time), window.time)
        if test.winner is not None:
            break
    return status if test == status.ab_test else updated(status, ab_test=test)


def advance(tick: Tick, status: ModelDeploymentStatus) -> Transition | None:
    """The next A/B transition of an active rollout, or None while it waits."""
    if "UserPaused" in pause_reasons(status):
        return None
    if status.promote_full:
        return _conclude(tick, status, candidate(tick).name, "promote --full")
    test = status.ab_test
    if test is None or test.id != test_id(tick) or test.created_at < (status.rollout_start_time or tick.now):
        return _start(tick, status, test)
    if status.promote:
        if test.winner is not None:
            return _conclude(tick, status, test.winner, "promote")
        return _conclude(tick, status, candidate(tick).name, "promote before a decision")
    if test.phase == "Starting":
        return _begin_assignment(tick, status, test)
    if test.phase == "Running" and test.winner is not None:
        return _decided(tick, status, test)
    return None


def _start(tick: Tick, status: ModelDeploymentStatus, before: ABTestStatus | None) -> Transition:
    test = new_test(tick, status)
    clash = _revision_clash(tick, status)
    if clash is not None:
        return lifecycle.rollback(tick, status, "ABTestInvalid", clash)
    restarted = before is not None and before.revision == test.revision and before.phase != "Concluded"
    what = ", ".join(f"{v.name} {v.weight}%" for v in test.variants)
    event = (
        normal("ABTestRestarted", f"strategy.abTest changed: test {test.id} starts over ({what})")
        if restarted
        else normal("ABTestStarting", f"A/B test {test.id} of revision {test.revision}: starting {what}")
    )
    return changed(
        status, event, ab_test=test, pause_conditions=lifecycle.without_pause(status, "ABTestDecided")
    )


def _revision_clash(tick: Tick, status: ModelDeploymentStatus) -> str | None:
    """Servers find their variant by the revision they run: two variants can't share one."""
    seen: dict[str, str] = {}
    for arm in arms(tick, status):
        if arm.revision in seen:
            return (
                f"variants {seen[arm.revision]} and {arm.name} serve the same revision {arm.revision}: "
                "give each its own model"
            )
        seen[arm.revision] = arm.name
    return None


def _begin_assignment(tick: Tick, status: ModelDeploymentStatus, test: ABTestStatus) -> Transition | None:
    pods = {arm.name: _ready(tick, status, arm) for arm in arms(tick, status)}
    if all(ready >= needed for ready, needed in pods.values()):
        strategy = strategy_of(tick)
        started = test.model_copy(
            update={
                "phase": "Running",
                "started_at": tick.now,
                "ends_at": tick.now + timedelta(seconds=parse_duration(strategy.duration)),
                "message": "assigning: the first window is measured after one interval",
            }
        )
        key = strategy.assignment.header or strategy.assignment.cookie
        what = ", ".join(f"{v.name} {v.weight}%" for v in test.variants)
        return changed(
            status,
            normal(
                "ABTestStarted",
                f"A/B test {test.id}: assigning users by {key} ({what}) "
                f"until {started.ends_at:%Y-%m-%d %H:%M:%SZ}",
            ),
            ab_test=started,
            last_set_weight=candidate(tick).weight,
            last_progress_time=tick.now,
        )
    if tick.past_deadline(status):
        waiting = ", ".join(
            f"{name} {ready}/{needed}" for name, (ready, needed) in pods.items() if ready < needed
        )
        return lifecycle.rollback(
            tick,
            status,
            "ProgressDeadlineExceeded",
            f"A/B variants not Ready after {tick.spec.progress_deadline_seconds}s "
            f"(progressDeadlineSeconds): {waiting}",
        )
    return None


def _decided(tick: Tick, status: ModelDeploymentStatus, test: ABTestStatus) -> Transition | None:
    winner = test.winner or CONTROL
    if strategy_of(tick).auto_promote:
        return _conclude(tick, status, winner, "autoPromote")
    held = test.model_copy(update={"phase": "Decided"})
    return lifecycle.add_pause(
        tick,
        updated(status, ab_test=held),
        "ABTestDecided",
        normal(HELD, f"A/B test {test.id}: {test.message}; modelramp promote takes {winner}"),
    )


def _conclude(tick: Tick, status: ModelDeploymentStatus, winner: str, why: str) -> Transition:
    """The winner serves from now on; assignment ends (the table empties)."""
    test = status.ab_test or new_test(tick, status)
    concluded = test.model_copy(
        update={"phase": "Concluded", "winner": winner, "decided_at": test.decided_at or tick.now}
    )
    arm = next(arm for arm in arms(tick, status) if arm.name == winner)
    event = normal("ABTestConcluded", f"A/B test {test.id}: {winner} serves ({why}); {test.message}")
    if arm.track == "canary":
        promotion = lifecycle.begin_promotion(tick, status)
        return Transition(updated(promotion.status, ab_test=concluded), (event, *promotion.events))
    update: StatusUpdate = {**lifecycle.idle(), "ab_test": concluded, "last_progress_time": tick.now}
    if arm.track == "stable":
        kept = warning(
            "ABTestControlKept",
            f"revision {status.canary_revision} was not promoted: control won; spec.model still names it",
        )
        return changed(status, event, kept, **update)
    # A challenger with a model of its own: stable takes its template (the Deployment rolls).
    update |= {
        "stable_revision": arm.revision,
        "stable_template": arm.template,
        "stable_model": ResolvedModel(uri=arm.template.model.uri, resolved_uri=arm.template.model.uri),
        "stable_history": lifecycle.history_after_promotion(status, arm.revision),
    }
    return changed(status, event, **update)


# --- timing and description ----------------------------------------------------------------------


def wakeup(tick: Tick, status: ModelDeploymentStatus) -> datetime | None:
    """When the next window of the decision metric is due."""
    if tick.ab_test is None or not rollout_active(tick, status):
        return None
    return next_window(tick.ab_test, status.ab_test)


def describe(tick: Tick, status: ModelDeploymentStatus) -> tuple[Phase, str, str] | None:
    """Phase, reason and message of an active A/B rollout (None: the shared descriptions apply)."""
    test = status.ab_test
    if "UserPaused" in pause_reasons(status) or test is None:
        return None
    if test.phase == "Starting":
        pods = ", ".join(
            f"{arm.name} {ready}/{needed}"
            for arm in arms(tick, status)
            for ready, needed in [_ready(tick, status, arm)]
        )
        return "Progressing", "ABTestStarting", f"A/B test {test.id}: variant pods Ready: {pods}"
    if test.phase == "Decided":
        return (
            "Paused",
            HELD,
            f"A/B test {test.id}: {test.message}; modelramp promote takes {test.winner}, abort keeps stable",
        )
    if test.phase == "Running":
        return "Progressing", "ABTestRunning", f"A/B test {test.id}: {test.message}"
    return None


def events_for_windows(
    tick: Tick, before: ModelDeploymentStatus, after: ModelDeploymentStatus
) -> list[EventRecord]:
    """An event when a pooled window named a winner."""
    old, new = before.ab_test, after.ab_test
    if new is None or new.winner is None or (old is not None and old.winner is not None):
        return []
    return [normal("ABTestWinner", f"A/B test {new.id}: {new.message}")]


def stale_objects(tick: Tick, status: ModelDeploymentStatus) -> list[ObjectRef]:
    """The Deployments and Services of challengers no longer in the spec (or of a strategy that
    is no longer abTest)."""
    kept = {arm.name for arm in arms(tick, status) if arm.track is None} if tick.ab_test else set()
    namespace = tick.md.metadata.namespace or ""
    return [
        ObjectRef(api_version=api_version, kind=kind, name=observed.name, namespace=namespace)
        for name, observed in sorted(tick.observed.variants.items())
        if name not in kept
        for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service"))
    ]
