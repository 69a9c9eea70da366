"""The shadow step (`steps[].shadow`): stable answers every client and copies a share of its
requests to the canary, whose answers are compared with stable's on the same requests and dropped.

The copying is done by `modelramp serve` on the stable pods (a tee, serving/shadow.py), whatever
the router: only there are both answers to one request seen together, which is what makes the
comparison paired (docs/analysis.md, "Shadow step"). The stable pods learn where to copy to from
the ConfigMap `<name>-shadow`, which the operator owns and every pod of a spec with a shadow step
mounts (kubelet refreshes a mounted ConfigMap in place, so nothing restarts): the canary Service,
the share and both revisions while a shadow step's analysis runs, `{}` otherwise. It is read back
each tick and server-side applied when it differs, like a router's own objects.

Pods: the canary runs the pods `percent` of the traffic would need at that weight, beside stable
at full size. The canary's pods take no real traffic while no weight is published (the replica
ratio router's `<name>` Service then selects stable alone), and shed the pods the mirror needed
before the next weight is published, so the canary never gets more than a step's share.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from modelramp.operator.api.resource import ModelDeployment
from modelramp.operator.api.spec import ShadowStep
from modelramp.operator.api.status import AnalysisRunStatus, ModelDeploymentStatus
from modelramp.operator.api.types import parse_duration
from modelramp.operator.rollout import runs
from modelramp.operator.rollout.objects import (
    SHADOW_KEY,
    get_shadow_config_map,
    has_shadow_step,
    shadow_config_name,
    track_name,
)
from modelramp.operator.rollout.tick import Tick, rollout_active
from modelramp.operator.routers.base import ObjectRef, RoutingWrite
from modelramp.operator.routers.pods import weighted_pods

CLUSTER_DOMAIN = "svc"


def config_ref(md: ModelDeployment) -> ObjectRef:
    return ObjectRef(
        api_version="v1", kind="ConfigMap", name=shadow_config_name(md), namespace=md.metadata.namespace or ""
    )


def reads(md: ModelDeployment) -> list[ObjectRef]:
    """What the glue reads each tick for the shadow: its ConfigMap, when the spec has a shadow step."""
    return [config_ref(md)] if has_shadow_step(md.spec) else []


def current(tick: Tick, status: ModelDeploymentStatus) -> tuple[int, ShadowStep] | None:
    """The shadow step the rollout is at, with its index."""
    index = status.current_step_index or 0
    if not rollout_active(tick, status) or index >= len(tick.steps):
        return None
    step = tick.steps[index].shadow
    return None if step is None else (index, step)


def mirror_pods(tick: Tick, status: ModelDeploymentStatus) -> int:
    """Canary pods the mirrored share needs at the current step (0 outside a shadow step)."""
    at = current(tick, status)
    return 0 if at is None else weighted_pods(tick.total, at[1].percent)


def mirror_only(tick: Tick, status: ModelDeploymentStatus) -> bool:
    """The canary's pods must take no real traffic: a spec with a shadow step, mid-rollout, with no
    weight published yet."""
    return has_shadow_step(tick.spec) and rollout_active(tick, status) and not status.last_set_weight


def shed(tick: Tick, status: ModelDeploymentStatus, weight: int) -> bool:
    """The canary has no more pods than `weight` needs (after a shadow it ran more): only then may
    the weight be published, or pods that are the route would take more than the step's share."""
    observed = tick.deployment("canary")
    if not has_shadow_step(tick.spec) or observed is None:
        return True
    needed = tick.router.canary_pods(tick.total, weight)
    return observed.spec_replicas <= needed and observed.ready_replicas <= needed


def run_end(tick: Tick, run: AnalysisRunStatus) -> datetime | None:
    """When a shadow step's run stops mirroring, undecided or not (its `duration`)."""
    steps = tick.steps
    index = run.step_index
    if run.started_at is None or index is None or index >= len(steps):
        return None
    step = steps[index].shadow
    if step is None or step.duration is None:
        return None
    return run.started_at + timedelta(seconds=parse_duration(step.duration))


def _mirroring(tick: Tick, status: ModelDeploymentStatus) -> dict[str, Any]:
    """What the stable pods are told: copy `percent` of their requests to the canary Service while
    the shadow step's analysis runs; `{}` otherwise."""
    at = current(tick, status)
    if at is None:
        return {}
    index, step = at
    run = runs.find(status.analysis_runs, runs.run_name("Shadow", status.canary_revision or "", index))
    if run is None or run.phase not in ("Running", "Pending"):
        return {}
    md = tick.md
    return {
        "target": f"http://{track_name(md, 'canary')}.{md.metadata.namespace}.{CLUSTER_DOMAIN}:80",
        "percent": step.percent,
        "stableVersion": status.stable_revision,
        "canaryVersion": status.canary_revision,
    }


def config_writes(tick: Tick, status: ModelDeploymentStatus) -> list[RoutingWrite]:
    """The ConfigMap's apply when it doesn't say what is wanted; none while it can't be read."""
    if not has_shadow_step(tick.spec):
        return []
    ref = config_ref(tick.md)
    read = tick.reads.get(ref)
    if read is None or read.error is not None or tick.md.metadata.uid is None:
        return []
    manifest = get_shadow_config_map(tick.md, _mirroring(tick, status))
    live = ((read.body or {}).get("data") or {}).get(SHADOW_KEY)
    if read.body is not None and live == manifest["data"][SHADOW_KEY]:
        return []
    return [RoutingWrite(ref=ref, method="apply", body=manifest)]
