"""Blue-green rollouts through the pure engine on a simulated cluster: preview without traffic,
pre-promotion analysis, auto or manual promotion, the switch, post-promotion analysis, the
scale-down delay, and rollback by switching straight back."""

from __future__ import annotations

from typing import Any

from support.rollout_world import PROMETHEUS, World, measurements, model_deployment, routing_objects

ERROR_RATE = {"name": "error-rate", "builtin": "error-rate", "threshold": 0.05, "interval": "30s", "count": 1}
TRACK = "modelramp.dev/track"


def blue_green(routing: dict[str, Any] | None = None, **options: Any) -> World:
    spec = model_deployment(
        {"blueGreen": options}, routing=routing, analysis={**PROMETHEUS, "metrics": [ERROR_RATE]}
    )
    world = World(spec).add(*routing_objects())
    world.tick()
    world.set_spec("model.uri", "models:/iris/2")
    return world


def test_preview_takes_no_traffic_until_promoted_then_old_side_is_kept_for_the_delay() -> None:
    world = blue_green(autoPromotionEnabled=False, previewReplicas=1, scaleDownDelaySeconds=60)
    world.tick()
    assert world.status["phase"] == "Paused"
    assert world.status["message"].endswith("waiting for promote")
    assert world.replicas() == {"stable": 4, "canary": 1}
    assert world.apex_selector()[TRACK] == "stable"
    world.patch_status(promote=True)
    world.tick(seconds=30)
    # The preview grew to full size before the switch; the old pods are still all there.
    assert world.apex_selector()[TRACK] == "canary"
    assert world.status["canaryWeight"] == 100
    assert world.replicas() == {"stable": 4, "canary": 4}
    assert world.status["stableRevision"] != world.status["canaryRevision"]
    world.tick(seconds=30)
    assert world.status["phase"] == "Progressing"
    world.tick()
    assert world.status["phase"] == "Healthy"
    assert world.apex_selector()[TRACK] == "stable"
    assert world.replicas() == {"stable": 4, "canary": 0}
    assert world.status["stableModel"]["uri"] == "models:/iris/2"
    kinds = [event.reason for event in world.events]
    assert kinds.index("Switched") < kinds.index("Promoting") < kinds.index("Promoted")


def test_auto_promotion_waits_its_seconds_from_preview_ready() -> None:
    world = blue_green(autoPromotionSeconds=120, scaleDownDelaySeconds=0)
    out = world.tick(seconds=119)
    assert out.requeue_after == 120
    assert world.status["canaryWeight"] == 0
    world.tick()  # 119 s after the preview became Ready
    assert world.status["canaryWeight"] == 0
    world.tick()
    assert world.status["phase"] == "Healthy"
    assert world.status["stableModel"]["uri"] == "models:/iris/2"


def test_failed_pre_promotion_analysis_aborts_without_ever_switching() -> None:
    world = blue_green(prePromotionAnalysis={})
    world.tick()
    assert world.status["phase"] == "Progressing"
    world.tick(measurements=measurements(world, "Failed", "PrePromotion"))
    assert world.status["phase"] == "RolledBack"
    assert world.replicas() == {"stable": 4, "canary": 0}
    assert not any(event.reason == "Switched" for event in world.events)


def test_successful_pre_promotion_analysis_switches() -> None:
    world = blue_green(prePromotionAnalysis={}, scaleDownDelaySeconds=0)
    world.tick()
    world.tick(measurements=measurements(world, "Successful", "PrePromotion"))
    assert world.status["phase"] == "Healthy"
    assert world.status["stableModel"]["uri"] == "models:/iris/2"


def test_failed_post_promotion_analysis_switches_straight_back() -> None:
    world = blue_green(postPromotionAnalysis={}, scaleDownDelaySeconds=600)
    world.tick()
    assert world.apex_selector()[TRACK] == "canary"
    world.tick(measurements=measurements(world, "Failed", "PostPromotion"))
    assert world.status["phase"] == "RolledBack"
    assert world.apex_selector()[TRACK] == "stable"
    assert world.replicas() == {"stable": 4, "canary": 0}
    assert world.status["stableModel"]["uri"] == "models:/iris/1"


def test_inconclusive_post_promotion_analysis_pauses_and_never_promotes() -> None:
    world = blue_green(postPromotionAnalysis={}, scaleDownDelaySeconds=0)
    world.tick()
    for _ in range(3):
        world.tick(seconds=600, measurements=measurements(world, "Inconclusive", "PostPromotion"))
    assert world.status["phase"] == "Paused"
    assert world.status["stableModel"]["uri"] == "models:/iris/1"


def test_preview_that_never_becomes_ready_rolls_back_at_the_deadline() -> None:
    spec = model_deployment({"blueGreen": {}}, deadline=30)
    world = World(spec)
    world.tick()
    world.set_spec("serving.image", "broken:1")
    world.broken.add("canary")
    world.tick(seconds=31)
    world.tick()
    assert world.status["phase"] == "RolledBack"
    assert world.replicas() == {"stable": 4, "canary": 0}


def test_gateway_blue_green_switches_the_route() -> None:
    world = blue_green({"gatewayAPI": {"httpRoute": "web"}}, autoPromotionEnabled=False)
    world.tick()
    weights = [ref["weight"] for ref in world.route["spec"]["rules"][0]["backendRefs"]]
    assert weights == [100, 0]
    world.patch_status(promote=True)
    world.tick()
    weights = [ref["weight"] for ref in world.route["spec"]["rules"][0]["backendRefs"]]
    assert weights == [0, 100]
    assert world.status["canaryWeight"] == 100
    world.tick(seconds=30)
    world.tick()
    weights = [ref["weight"] for ref in world.route["spec"]["rules"][0]["backendRefs"]]
    assert weights == [100, 0]
    assert world.status["phase"] == "Healthy"


def test_abort_during_the_scale_down_delay_switches_back() -> None:
    world = blue_green(scaleDownDelaySeconds=600)
    world.tick()
    assert world.apex_selector()[TRACK] == "canary"
    world.patch_status(abort=True)
    world.tick()
    assert world.status["phase"] == "Degraded"
    assert world.apex_selector()[TRACK] == "stable"
    world.patch_status(promote=True)  # promote after an abort switches again (argo-rollouts#841)
    world.tick()
    assert world.apex_selector()[TRACK] == "canary"
