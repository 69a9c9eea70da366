"""The A/B test strategy in the pure engine, walked tick by tick in the simulated cluster: pods
for every variant, the assignment table the servers follow, windows pooled and judged, and each
way a test ends (the candidate, control, or a challenger of its own wins; held for a person;
aborted; restarted by a spec change)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from support.rollout_world import PROMETHEUS, World, model_deployment

from modelramp.operator.api import ABWindow
from modelramp.operator.api.abtest import VariantWindow
from modelramp.operator.control_cli import render_status

V2 = "models:/iris/2"


def ab_strategy(**fields: Any) -> dict[str, Any]:
    strategy = {
        "assignment": {"header": "x-user-id"},
        "variants": [
            {"name": "control", "weight": 50},
            {"name": "candidate", "weight": 30},
            {"name": "distilled", "weight": 20, "model": {"uri": "models:/iris-small/3"}},
        ],
        "metric": {
            "counters": {
                "successes": 'sum by (variant) (increase(orders_total{outcome="bought"}[{{interval}}]))',
                "total": "sum by (variant) (increase(orders_total[{{interval}}]))",
            }
        },
        "duration": "1h",
        "interval": "10m",
        "minSamples": 500,
    }
    return {"abTest": strategy | fields}


def started(**fields: Any) -> World:
    """Stable Healthy on iris/1, then spec.model changed to iris/2: the test is Running."""
    world = World(model_deployment(ab_strategy(**fields), analysis=PROMETHEUS))
    world.tick()
    world.set_spec("model.uri", V2)
    world.tick()
    return world


def window(world: World, counts: dict[str, tuple[float, float]], **fields: Any) -> list[ABWindow]:
    test = world.status["abTest"]
    variants = [VariantWindow(name=name, count=c, total=t) for name, (c, t) in counts.items()]
    return [ABWindow(test=test["id"], time=world.now, variants=variants, **fields)]


def measure(world: World, counts: dict[str, tuple[float, float]]) -> None:
    """The next window, an interval later, then a few ticks for the engine to act on it."""
    world.now += timedelta(minutes=10)
    world.tick(ab_windows=window(world, counts))
    for _ in range(3):
        world.tick()


def table(world: World) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        world.applied[("ConfigMap", "md-assignment")]["data"]["assignment.json"]
    )
    return loaded


def reasons(world: World) -> list[str]:
    return [event.reason for event in world.events]


CLEAR_WIN = {"control": (100.0, 1000.0), "candidate": (160.0, 1000.0), "distilled": (95.0, 1000.0)}
NO_DIFFERENCE = {"control": (100.0, 1000.0), "candidate": (101.0, 1000.0), "distilled": (99.0, 1000.0)}


def test_a_test_sizes_every_variant_and_publishes_the_table_the_servers_follow() -> None:
    world = started()
    test = world.status["abTest"]
    assert (test["phase"], world.status["phase"]) == ("Running", "Progressing")
    # Stable (control) stays at full size; the others get their share of the 4 replicas, at least one.
    assert world.replicas() == {"stable": 4, "canary": 1, "variant:distilled": 1}
    assert table(world) == {
        "test": test["id"],
        "header": "x-user-id",
        "cookie": None,
        "salt": test["revision"],
        "variants": [
            {
                "name": variant["name"],
                "weight": variant["weight"],
                "revision": variant["revision"],
                "model": "md",
                "url": f"http://md-{track}.default.svc:80",
            }
            for variant, track in zip(test["variants"], ("stable", "canary", "distilled"), strict=True)
        ],
    }
    # Every server pod mounts the table (stable's too, from its first apply: no restart later).
    for manifest in world.deployments.values():
        pod = manifest["spec"]["template"]["spec"]
        assert {"name": "assignment", "configMap": {"name": "md-assignment", "optional": True}} in pod[
            "volumes"
        ]
        env = {var["name"]: var.get("value") for var in pod["containers"][0]["env"]}
        assert env["MODELRAMP_ASSIGNMENT_FILE"] == "/etc/modelramp/assignment/assignment.json"
        assert env["MODELRAMP_MODEL_VERSION"] in {v["revision"] for v in test["variants"]}
    # Each variant runs its own revision: the servers find their variant by it.
    assert len({v["revision"] for v in test["variants"]}) == 3
    assert reasons(world)[-2:] == ["ABTestStarting", "ABTestStarted"]


def test_assignment_waits_for_every_variants_pods() -> None:
    world = World(model_deployment(ab_strategy(), analysis=PROMETHEUS))
    world.tick()
    world.broken.add("variant:distilled")
    world.set_spec("model.uri", V2)
    for _ in range(3):
        world.tick()
    assert world.status["abTest"]["phase"] == "Starting"
    assert table(world) == {"variants": []}
    assert "distilled 0/1" in world.status["message"]
    world.broken.clear()
    world.tick()
    assert world.status["abTest"]["phase"] == "Running"


def test_a_clear_winner_at_an_early_look_is_promoted() -> None:
    world = started()
    measure(world, CLEAR_WIN)
    test = world.status["abTest"]
    assert (test["phase"], test["winner"]) == ("Concluded", "candidate")
    assert world.status["phase"] == "Healthy" and world.status["stableModel"]["uri"] == V2
    assert table(world) == {"variants": []}
    assert world.replicas() == {"stable": 4, "canary": 0, "variant:distilled": 0}
    candidate = next(v for v in test["variants"] if v["name"] == "candidate")
    assert candidate["decision"] == "Better" and candidate["effect"] == pytest.approx(0.06)
    assert candidate["lower"] > 0 and candidate["pValue"] <= candidate["alpha"]
    assert {"ABTestWinner", "ABTestConcluded", "Promoted"} <= set(reasons(world))


def test_the_final_look_keeps_control_when_no_variant_is_better_and_does_not_roll_out_again() -> None:
    world = started()
    for _ in range(5):  # early looks at 10, 20, ... 50 minutes
        measure(world, NO_DIFFERENCE)
        assert "winner" not in world.status["abTest"]
    measure(world, NO_DIFFERENCE)  # past the 1h duration: the final look
    test = world.status["abTest"]
    assert (test["phase"], test["winner"]) == ("Concluded", "control")
    assert all(v["decision"] in ("Control", "NotBetter") for v in test["variants"])
    assert world.status["stableModel"]["uri"] == "models:/iris/1"
    assert "canaryRevision" not in world.status
    for _ in range(5):
        world.tick(seconds=60)
    # The spec still names iris/2, but its test is over: no new rollout starts.
    assert reasons(world).count("RolloutStarted") == 1 and "ABTestControlKept" in reasons(world)
    assert world.status["phase"] == "Healthy"
    assert world.replicas() == {"stable": 4, "canary": 0, "variant:distilled": 0}


def test_a_challenger_with_its_own_model_that_wins_becomes_stable() -> None:
    world = started()
    measure(world, {"control": (100.0, 1000.0), "candidate": (100.0, 1000.0), "distilled": (170.0, 1000.0)})
    test = world.status["abTest"]
    assert test["winner"] == "distilled"
    distilled = next(v for v in test["variants"] if v["name"] == "distilled")
    assert world.status["stableRevision"] == distilled["revision"]
    assert world.status["stableModel"]["uri"] == "models:/iris-small/3"
    stable = world.deployments["stable"]["spec"]["template"]
    assert stable["metadata"]["labels"]["modelramp.dev/revision"] == distilled["revision"]
    for _ in range(5):
        world.tick(seconds=60)
    assert reasons(world).count("RolloutStarted") == 1 and world.status["phase"] == "Healthy"
    # The next test is against the new stable: a variant still naming its model would be control
    # twice, which the engine refuses (servers tell variants apart by revision).
    world.set_spec("model.uri", "models:/iris/4")
    world.tick()
    assert (
        world.status["phase"] == "RolledBack"
        and "distilled serve the same revision" in world.status["message"]
    )
    world.set_spec(
        "strategy.abTest.variants", [{"name": "control", "weight": 50}, {"name": "candidate", "weight": 50}]
    )
    world.patch_status(abort=False)  # modelramp retry
    world.tick()
    assert world.status["abTest"]["phase"] == "Running" and "winner" not in world.status["abTest"]
    control = world.status["abTest"]["variants"][0]
    assert control["revision"] == distilled["revision"]


def test_a_winner_is_held_for_a_person_without_auto_promotion() -> None:
    world = started(autoPromote=False)
    measure(world, CLEAR_WIN)
    assert world.status["phase"] == "Paused"
    assert (
        world.status["abTest"]["phase"] == "Decided"
        and "modelramp promote takes candidate" in world.status["message"]
    )
    assert table(world)["variants"], "users keep their variant while a person decides"
    for _ in range(3):
        world.tick(seconds=600)
    assert world.status["abTest"]["phase"] == "Decided"
    world.patch_status(promote=True)
    world.tick()
    world.tick()
    assert world.status["abTest"]["phase"] == "Concluded"
    assert world.status["phase"] == "Healthy" and world.status["stableModel"]["uri"] == V2


def test_changing_the_variants_restarts_the_test_and_its_evidence() -> None:
    world = started()
    first = world.status["abTest"]["id"]
    measure(world, NO_DIFFERENCE)
    assert world.status["abTest"]["windows"] == 1
    world.set_spec(
        "strategy.abTest.variants", [{"name": "control", "weight": 60}, {"name": "candidate", "weight": 40}]
    )
    world.tick()
    test = world.status["abTest"]
    assert (
        test["id"] != first
        and test["windows"] == 0
        and [v["name"] for v in test["variants"]] == ["control", "candidate"]
    )
    assert "ABTestRestarted" in reasons(world)
    # The challenger left the spec: its Deployment goes.
    assert "variant:distilled" not in world.deployments
    # A window measured for the old test is never pooled into the new one.
    world.now += timedelta(minutes=10)
    world.tick(
        ab_windows=[
            ABWindow(test=first, time=world.now, variants=[VariantWindow(name="control", count=1, total=9)])
        ]
    )
    assert world.status["abTest"]["windows"] == 0


def test_a_failed_measurement_is_reported_and_spends_nothing() -> None:
    world = started()
    world.now += timedelta(minutes=10)
    world.tick(ab_windows=window(world, {}, error="Prometheus at http://prometheus:9090 is unreachable"))
    test = world.status["abTest"]
    assert test["consecutiveErrors"] == 1 and test["windows"] == 0 and "unreachable" in test["message"]
    assert test["interimLooks"] == 0 and test["phase"] == "Running"
    measure(world, NO_DIFFERENCE)
    assert world.status["abTest"]["consecutiveErrors"] == 0 and world.status["abTest"]["windows"] == 1


def test_the_same_window_twice_is_pooled_once() -> None:
    world = started()
    world.now += timedelta(minutes=10)
    again = window(world, NO_DIFFERENCE)
    world.tick(ab_windows=again)
    world.tick(ab_windows=again)  # an operator restarted before its status write was seen
    assert world.status["abTest"]["windows"] == 1
    assert world.status["abTest"]["variants"][0]["total"] == 1000


def test_abort_ends_assignment_and_retry_starts_a_fresh_test() -> None:
    world = started()
    measure(world, NO_DIFFERENCE)
    world.patch_status(abort=True)
    world.tick()
    world.tick()
    assert world.status["phase"] == "Degraded" and table(world) == {"variants": []}
    assert world.replicas() == {"stable": 4, "canary": 0, "variant:distilled": 0}
    world.patch_status(abort=False)
    world.tick()
    test = world.status["abTest"]
    assert test["phase"] == "Running" and test["windows"] == 0


def test_two_variants_on_one_revision_are_refused() -> None:
    world = World(model_deployment(ab_strategy(), analysis=PROMETHEUS))
    world.tick()
    world.md["spec"]["strategy"]["abTest"]["variants"] = [
        {"name": "control", "weight": 50},
        {"name": "candidate", "weight": 25},
        {"name": "same", "weight": 25, "model": {"uri": V2}},
    ]
    world.set_spec("model.uri", V2)
    world.tick()
    assert world.status["phase"] == "RolledBack"
    assert "serve the same revision" in world.status["message"]


def test_the_engine_wakes_for_the_next_window() -> None:
    world = started()
    out = world.reconcile()
    assert out.requeue_after == pytest.approx(600 - 1, abs=1)


def test_modelramp_status_shows_one_line_per_variant_with_effect_and_confidence() -> None:
    world = started(autoPromote=False)
    measure(world, CLEAR_WIN)
    text = render_status(world.model())
    assert "Strategy:  abTest" in text
    lines = {
        line.split("─ ", 1)[1].split(" ", 1)[0]: line
        for line in text.splitlines()
        if "% " in line and "─ " in line
    }
    assert lines["control"].endswith("0.1 (100/1000): Control")
    candidate = world.status["abTest"]["variants"][1]
    assert f"+0.06 [{candidate['lower']:+.3g}, {candidate['upper']:+.3g}] at 99.8%" in lines["candidate"]
    assert "fisher-exact p=" in lines["candidate"] and lines["candidate"].endswith(": Better")
    assert lines["distilled"].endswith(": Undecided")
    assert "Winner:    candidate (held: modelramp promote takes it)" in text
