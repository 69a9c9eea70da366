"""Every rollout state by every thing that can happen to it, with the phase it must end in.

Each state is reached by driving the engine (no hand-written status), each event is applied the
way the cluster, the clock or a user would, and the invariants of test_rollout_properties are
checked on every output along the way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from support.rollout_world import PROMETHEUS, World, measurements, model_deployment
from test_rollout_properties import METRIC, Invariants

ANALYSIS = {**PROMETHEUS, "metrics": [METRIC]}


def canary_world(*steps: dict[str, Any], ready: bool = True, **spec: Any) -> World:
    world = World(
        model_deployment({"canary": {"steps": list(steps)}}, analysis=ANALYSIS, **spec), check=Invariants()
    )
    world.tick()
    world.auto_ready = ready
    world.set_spec("model.uri", "models:/iris/2")
    world.tick()
    return world


def blue_green_world(**options: Any) -> World:
    world = World(model_deployment({"blueGreen": options}, analysis=ANALYSIS), check=Invariants())
    world.tick()
    world.set_spec("model.uri", "models:/iris/2")
    world.tick()
    return world


def initializing() -> World:
    world = World(model_deployment({"canary": {"steps": [{"setWeight": 50}]}}), auto_ready=False)
    world.check = Invariants()
    world.tick()
    return world


def healthy() -> World:
    world = World(
        model_deployment({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}), check=Invariants()
    )
    world.tick()
    return world


def waiting_for_pods() -> World:
    return canary_world({"setWeight": 50}, {"pause": {}}, ready=False)


def paused_step() -> World:
    return canary_world({"setWeight": 50}, {"pause": {}}, {"setWeight": 75})


def timed_pause() -> World:
    return canary_world({"setWeight": 50}, {"pause": {"duration": "10m"}}, {"setWeight": 75})


def analysing() -> World:
    return canary_world({"setWeight": 50}, {"analysis": {}}, {"setWeight": 75})


def inconclusive() -> World:
    """A builtin still undecided after its `count` (2) measurements."""
    world = analysing()
    world.tick(measurements=measurements(world, "Inconclusive"))
    world.tick(measurements=measurements(world, "Inconclusive"))
    return world


def user_paused() -> World:
    world = paused_step()
    world.set_spec("paused", True)
    world.tick()
    return world


def promoting() -> World:
    world = canary_world({"setWeight": 50}, ready=False)
    world.kubelet()
    world.reconcile()
    return world


def rolled_back() -> World:
    world = analysing()
    world.tick(measurements=measurements(world, "Failed"))
    return world


def aborted() -> World:
    world = paused_step()
    world.patch_status(abort=True)
    world.tick()
    return world


def bg_waiting() -> World:
    return blue_green_world(autoPromotionEnabled=False)


def bg_switched() -> World:
    return blue_green_world(scaleDownDelaySeconds=3600)


STATES: dict[str, Callable[[], World]] = {
    "initializing": initializing,
    "healthy": healthy,
    "waiting-for-pods": waiting_for_pods,
    "paused-step": paused_step,
    "timed-pause": timed_pause,
    "analysing": analysing,
    "inconclusive": inconclusive,
    "user-paused": user_paused,
    "promoting": promoting,
    "rolled-back": rolled_back,
    "aborted": aborted,
    "bg-waiting": bg_waiting,
    "bg-switched": bg_switched,
}
STATE_PHASES = {
    "initializing": "Initializing",
    "healthy": "Healthy",
    "waiting-for-pods": "Progressing",
    "paused-step": "Paused",
    "timed-pause": "Paused",
    "analysing": "Progressing",
    "inconclusive": "Paused",
    "user-paused": "Paused",
    "promoting": "Promoting",
    "rolled-back": "RolledBack",
    "aborted": "Degraded",
    "bg-waiting": "Paused",
    "bg-switched": "Progressing",
}


def apply_event(world: World, event: str) -> None:
    if event == "pods-ready":
        world.kubelet()
    elif event == "hour-passes":
        world.now += timedelta(hours=1)
    elif event == "promote":
        world.patch_status(promote=True)
    elif event == "promote-full":
        world.patch_status(promoteFull=True)
    elif event == "abort":
        world.patch_status(abort=True)
    elif event == "retry":
        world.patch_status(abort=False)
    elif event == "pause":
        world.set_spec("paused", True)
    elif event == "new-revision":
        world.set_spec("model.uri", "models:/iris/3")
    elif event == "back-to-stable":
        world.set_spec("model.uri", world.status["stableTemplate"]["model"]["uri"])
    elif event in ("measure-ok", "measure-failed"):
        verdict = "Successful" if event == "measure-ok" else "Failed"
        world.reconcile(measurements(world, verdict))  # type: ignore[arg-type]
        return
    world.reconcile()


EVENTS = [
    "pods-ready",
    "hour-passes",
    "promote",
    "promote-full",
    "abort",
    "retry",
    "pause",
    "new-revision",
    "back-to-stable",
    "measure-ok",
    "measure-failed",
]


@pytest.mark.parametrize("state", sorted(STATES))
def test_states_are_reached(state: str) -> None:
    assert STATES[state]().status["phase"] == STATE_PHASES[state]


# Rows: states; columns: EVENTS in order. Short names: Ini(tializing), Hea(lthy), Pro(gressing),
# Pau(sed), Prm (Promoting), Deg(raded), RB (RolledBack).
TABLE = """
initializing     Hea Deg Ini Ini Ini Ini Ini Ini Ini Ini Ini
healthy          Hea Hea Hea Hea Hea Hea Hea Pro Hea Hea Hea
waiting-for-pods Pau RB  Pro Prm Deg Pro Pau Pro Hea Pro Pro
paused-step      Pau Pau Pro Prm Deg Pau Pau Pro Pro Pau Pau
timed-pause      Pau Pro Pro Prm Deg Pau Pau Pro Pro Pau Pau
analysing        Pro Pro Pro Prm Deg Pro Pau Pro Pro Pro RB
inconclusive     Pau Pau Pro Prm Deg Pau Pau Pro Pro Pau Pau
user-paused      Pau Pau Pau Pau Deg Pau Pau Pau Pro Pau Pau
promoting        Hea Deg Prm Prm Prm Prm Prm Pro Prm Prm Prm
rolled-back      RB  RB  Pro Prm RB  Pro RB  Pro Hea RB  RB
aborted          Deg Deg Pro Prm Deg Pro Deg Pro Hea Deg Deg
bg-waiting       Pau Pau Pro Prm Deg Pau Pau Pro Hea Pau Pau
bg-switched      Pro Prm Prm Prm Deg Pro Pau Pro Hea Pro Pro
"""
SHORT = {
    "Ini": "Initializing",
    "Hea": "Healthy",
    "Pro": "Progressing",
    "Pau": "Paused",
    "Prm": "Promoting",
    "Deg": "Degraded",
    "RB": "RolledBack",
}
EXPECTED = {
    (state, event): SHORT[cell]
    for state, *cells in (line.split() for line in TABLE.strip().splitlines())
    for event, cell in zip(EVENTS, cells, strict=True)
}


def test_table_covers_every_state() -> None:
    assert {state for state, _ in EXPECTED} == set(STATES)


@pytest.mark.parametrize(("state", "event"), sorted(EXPECTED))
def test_state_after_event(state: str, event: str) -> None:
    world = STATES[state]()
    before = len(world.events)
    apply_event(world, event)
    assert world.status["phase"] == EXPECTED[state, event], world.status["message"]
    # Conditions agree with the phase and with the generation they were computed for.
    conditions = {c["type"]: c for c in world.status["conditions"]}
    assert conditions["Ready"]["status"] == ("True" if world.status["phase"] == "Healthy" else "False")
    unhealthy = world.status["phase"] in ("Degraded", "RolledBack")
    assert conditions["Degraded"]["status"] == ("True" if unhealthy else "False")
    generation = world.md["metadata"]["generation"]
    assert world.status["observedGeneration"] == generation
    assert all(c["observedGeneration"] == generation for c in conditions.values())
    # A phase change is always announced by an event.
    if world.status["phase"] != STATE_PHASES[state]:
        assert len(world.events) > before
        if unhealthy:
            assert any(event.type == "Warning" for event in world.events[before:])
