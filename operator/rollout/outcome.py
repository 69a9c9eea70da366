"""How a rollout ended, read from the status before and after a reconcile (pure).

The operator's metrics (time to promote, time to roll back) and the registry write-back both
react to the one transition that ends a rollout; this is where that transition is recognised.
"""

from __future__ import annotations

from typing import Literal

from modelramp.operator.api.status import ModelDeploymentStatus

RolloutOutcome = Literal["promoted", "rolled-back"]


def rollout_outcome(old: ModelDeploymentStatus, new: ModelDeploymentStatus) -> RolloutOutcome | None:
    """`promoted` when the rollout ends (canaryModel cleared) with stable serving what the canary
    served; the engine's earlier Promoting step, where stable only takes the template, is not the
    end yet. `rolled-back` when the phase becomes RolledBack. None for every other transition."""
    if _promoted(old, new):
        return "promoted"
    if new.phase == "RolledBack" and old.phase != "RolledBack":
        return "rolled-back"
    return None


def _promoted(old: ModelDeploymentStatus, new: ModelDeploymentStatus) -> bool:
    stable, canary = new.stable_model, old.canary_model
    if stable is None or canary is None or new.canary_model is not None or new.abort:
        return False
    return stable.resolved_uri == canary.resolved_uri
