"""Properties of the rollout engine over random rollouts, random clusters and random users.

At every tick: reconcile is idempotent (fed its own status back with the same observations it
changes nothing and says nothing, which is what makes a restarted operator safe), the status
survives the trip through the API server, replicas stay within bounds and add up, the published
weight is what the replicas give, weights never go backwards within a rollout, and no traffic is
ever routed to a canary without pods. And with an operator killed at random points, a canary
still publishes exactly its step weights, in order, each once.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.rollout_world import (
    PROMETHEUS,
    ROUTINGS,
    Pods,
    World,
    measurements,
    merge_patch,
    model_deployment,
    routing_objects,
)

from modelramp.operator.api.status import ModelDeploymentStatus
from modelramp.operator.rollout import reconcile
from modelramp.operator.rollout.model import ReconcileOutput
from modelramp.operator.rollout.objects import backends_of
from modelramp.operator.routers.base import RoutingRead, Traffic
from modelramp.operator.routers.pods import ratio_canary_pods, ratio_share
from modelramp.operator.routers.registry import router_for

# `make test-rollout-thorough` raises it; the default keeps the unit suite quick.
EXAMPLES = int(os.environ.get("MODELRAMP_PROPERTY_EXAMPLES", "40"))
METRIC = {"name": "error-rate", "builtin": "error-rate", "threshold": 0.05, "interval": "30s", "count": 2}


@st.composite
def canary_steps(draw: st.DrawFn, *, analysis: bool = True, indefinite: bool = True) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    weight = 0
    for _ in range(draw(st.integers(1, 6))):
        kinds = ["setWeight", "pause"] + (["analysis"] if analysis else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "setWeight":
            weight = draw(st.integers(weight, 100))
            steps.append({"setWeight": weight})
        elif kind == "pause":
            durations = ["10s", "1m"] + ([None] if indefinite else [])
            duration = draw(st.sampled_from(durations))
            steps.append({"pause": {"duration": duration} if duration else {}})
        else:
            steps.append({"analysis": {}})
    return steps


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    replicas = draw(st.integers(0, 7))
    routing = draw(st.sampled_from(sorted(ROUTINGS)))
    if draw(st.booleans()):
        strategy: dict[str, Any] = {"canary": {"steps": draw(canary_steps())}}
        if routing != "ratio" and draw(st.booleans()):
            strategy["canary"]["dynamicStableScale"] = True
        if draw(st.booleans()):
            strategy["canary"]["analysis"] = {}
    else:
        options: dict[str, Any] = {
            "autoPromotionEnabled": draw(st.booleans()),
            "scaleDownDelaySeconds": draw(st.sampled_from([0, 30])),
        }
        if draw(st.booleans()):
            options["previewReplicas"] = draw(st.integers(0, replicas))
        for field in ("prePromotionAnalysis", "postPromotionAnalysis"):
            if draw(st.booleans()):
                options[field] = {}
        strategy = {"blueGreen": options}
    analysis: dict[str, Any] = {
        "metrics": [METRIC],
        "onFailure": draw(st.sampled_from(["Rollback", "Pause"])),
    }
    if draw(st.integers(0, 4)):  # mostly with a provider
        analysis.update(PROMETHEUS)
    spec = model_deployment(
        strategy,
        replicas=replicas,
        routing=ROUTINGS[routing],
        analysis=analysis,
        deadline=draw(st.sampled_from([60, 600])),
    )
    return spec


# Weighted: the cluster and the clock move most of the time, users now and then.
ACTIONS = [
    *["time"] * 4,
    *["kubelet"] * 5,
    "kubelet-partial",
    *["measure-Successful"] * 3,
    "measure-Failed",
    "measure-Inconclusive",
    "measure-Error",
    "promote",
    "promote-full",
    "abort",
    "retry",
    "pause",
    "resume",
    "new-revision",
    "back-to-stable",
    *["crash"] * 2,
    "crash-before-routes",
]


def wire(status: ModelDeploymentStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


class Invariants:
    """Checks every output of the engine as the world applies it."""

    def __init__(self) -> None:
        self.previous: dict[str, Any] | None = None

    def __call__(self, world: World, out: ReconcileOutput) -> None:
        inp = world.input()
        md = inp.md
        status = wire(out.status)
        # The status survives the API server: what is read back is what was written.
        assert wire(ModelDeploymentStatus.model_validate(status)) == status
        # Idempotent: fed back its own status with the same observations, nothing moves.
        again = reconcile(inp.model_copy(update={"md": md.model_copy(update={"status": out.status})}))
        assert wire(again.status) == status
        assert again.events == []
        assert again.apply == out.apply
        assert again.routing_writes == out.routing_writes
        total = md.spec.serving.replicas
        deployments = {
            m["metadata"]["labels"]["modelramp.dev/track"]: m for m in out.apply if m["kind"] == "Deployment"
        }
        replicas = {track: manifest["spec"]["replicas"] for track, manifest in deployments.items()}
        assert all(0 <= count <= total for count in replicas.values()), replicas
        last_set = out.status.last_set_weight or 0
        strategy = md.spec.strategy
        ratio = md.spec.traffic_routing.replica_ratio is not None
        if strategy.canary is not None and ratio:
            # The published weight is what the replicas give, never more than asked (but one pod).
            assert out.status.canary_weight == ratio_share(total, last_set)
            assert replicas["canary"] >= ratio_canary_pods(total, last_set)
            # Never more traffic than the step asked for, but for the one-pod minimum (issue 14).
            assert out.status.canary_weight <= last_set or ratio_canary_pods(total, last_set) == 1
            if replicas["canary"] == ratio_canary_pods(total, last_set):
                assert replicas["stable"] + replicas["canary"] >= total
        if out.routing_writes and total > 0:
            # Never traffic (weighted, by header or mirrored) to a canary without pods.
            given = written_traffic(inp, out)
            assert given is not None
            if given.weight > 0 or given.match_routes:
                assert replicas["canary"] > 0
        if ratio and strategy.blue_green is not None and last_set == 100 and total > 0:
            assert replicas["canary"] == total
        self._monotonic(out.status)

    def _monotonic(self, status: ModelDeploymentStatus) -> None:
        key = {
            "revision": status.canary_revision,
            "start": status.rollout_start_time,
            "weight": status.last_set_weight or 0,
        }
        steady = status.canary_revision not in (None, status.stable_revision) and not status.abort
        previous, self.previous = self.previous, key if steady else None
        same_rollout = previous is not None and (previous["revision"], previous["start"]) == (
            key["revision"],
            key["start"],
        )
        if steady and previous is not None and same_rollout:
            assert key["weight"] >= previous["weight"], (previous, key)


def written_traffic(inp: Any, out: ReconcileOutput) -> Any:
    """The traffic the router gives once its writes are made (read back through the router)."""
    router = router_for(inp.md.spec.traffic_routing, backends_of(inp.md))
    reads = {read.ref: read for read in inp.observed.routing}
    for write in out.routing_writes:
        live = reads[write.ref].body
        body = write.body if write.method == "apply" else merge_patch(live, write.body)
        reads[write.ref] = RoutingRead(ref=write.ref, body=body)
    return router.in_effect(reads, Traffic(out.status.last_set_weight or 0))


def act(world: World, action: str, revision_counter: list[int]) -> None:
    if action == "time":
        world.now += timedelta(seconds=37)
    elif action == "kubelet":
        world.kubelet()
    elif action == "kubelet-partial":
        world.kubelet()
        world.pods = {track: Pods(p.revision, p.ready // 2, p.updated) for track, p in world.pods.items()}
    elif action.startswith("measure-"):
        world.reconcile(measurements(world, action.removeprefix("measure-")))  # type: ignore[arg-type]
        return
    elif action == "promote":
        world.patch_status(promote=True)
    elif action == "promote-full":
        world.patch_status(promoteFull=True)
    elif action == "abort":
        world.patch_status(abort=True)
    elif action == "retry":
        world.patch_status(abort=False)
    elif action in ("pause", "resume"):
        world.set_spec("paused", action == "pause")
    elif action == "new-revision":
        revision_counter[0] += 1
        world.set_spec("model.uri", f"models:/iris/{revision_counter[0]}")
    elif action == "back-to-stable":
        stable = world.status.get("stableTemplate", {}).get("model", {}).get("uri")
        if stable:
            world.set_spec("model.uri", stable)
    elif action == "crash":
        world.reconcile(crash_before_status=True)
        return
    elif action == "crash-before-routes":
        world.reconcile(crash_before_routes=True)
        return
    world.reconcile()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=scenarios(), actions=st.lists(st.sampled_from(ACTIONS), min_size=5, max_size=40))
def test_invariants_hold_at_every_tick(spec: dict[str, Any], actions: list[str]) -> None:
    world = World(spec, check=Invariants()).add(*routing_objects())
    world.tick()
    counter = [2]
    world.set_spec("model.uri", "models:/iris/2")
    for action in actions:
        act(world, action, counter)


def steps_announced(world: World, reason: str) -> list[int]:
    """Step numbers named by the events with `reason` ("step 3/5: ...")."""
    return [
        int(event.message.split("/")[0].removeprefix("step "))
        for event in world.events
        if event.reason == reason
    ]


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=canary_steps(analysis=False, indefinite=False),
    routing=st.sampled_from(sorted(ROUTINGS)),
    replicas=st.integers(1, 7),
    crashes=st.lists(st.sampled_from([None, "before-status", "before-routes"]), min_size=25, max_size=25),
    kubelets=st.lists(st.booleans(), min_size=25, max_size=25),
)
def test_killed_operator_never_repeats_or_skips_a_weight(
    steps: list[dict[str, Any]], routing: str, replicas: int, crashes: list[str | None], kubelets: list[bool]
) -> None:
    spec = model_deployment({"canary": {"steps": steps}}, replicas=replicas, routing=ROUTINGS[routing])
    world = World(spec, auto_ready=False).add(*routing_objects())
    world.tick()
    world.kubelet()
    world.tick()
    world.set_spec("model.uri", "models:/iris/2")
    routed = [route_weight(world)]
    for crash, kubelet in zip(crashes, kubelets, strict=True):
        # Killed between applying the objects and writing the status (the next operator sees the
        # objects of this tick with the status of the previous one), or between writing the status
        # and the router's writes (the status of this tick with the route of the previous one).
        world.reconcile(
            crash_before_status=crash == "before-status", crash_before_routes=crash == "before-routes"
        )
        routed.append(route_weight(world))
        if kubelet:
            world.kubelet()
        world.now += timedelta(seconds=20)
    world.auto_ready = True
    for _ in range(len(steps) + 3):  # then let it finish undisturbed
        world.tick(seconds=61)
        routed.append(route_weight(world))
    assert world.status["phase"] == "Healthy", world.status["message"]
    assert world.status["stableModel"]["uri"] == "models:/iris/2"
    # Every step completed once, in order; every weight change published once, in order.
    assert steps_announced(world, "StepCompleted") == list(range(1, len(steps) + 1))
    previous, changes = 0, []
    for number, step in enumerate(steps, start=1):
        if step.get("setWeight", previous) != previous:
            previous = step["setWeight"]
            changes.append(number)
    assert steps_announced(world, "WeightSet") == changes
    # The route never goes back a step: up through the steps, then to 0 once stable has the model.
    weights = [weight for weight in routed if weight is not None]
    moves = [weight for i, weight in enumerate(weights) if i == 0 or weight != weights[i - 1]]
    rising = moves[:-1] if len(moves) > 1 and moves[-1] == 0 else moves
    assert rising == sorted(rising), routed


def route_weight(world: World) -> int | None:
    """The canary weight the world's routing objects give now (None: the router reads none)."""
    model = world.model()
    router = router_for(model.spec.traffic_routing, backends_of(model))
    reads = world.observed().routing
    if not reads:
        return None
    live = router.in_effect({read.ref: read for read in reads}, Traffic(0))
    return None if live is None else live.weight
