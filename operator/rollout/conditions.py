"""Phase -> the Ready, Progressing and Degraded conditions, with Kubernetes' transition rules.

`lastTransitionTime` moves only when a condition's status flips, so writing the same phase twice
changes nothing (the engine must be idempotent). Every condition carries the phase's reason and
message and the generation it was computed from (kstatus and Argo CD compare it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from modelramp.operator.api.status import Condition, ConditionStatus, ConditionType, Phase

# Ready: serves the desired model. Progressing: a rollout is moving. Degraded: it failed.
_STATUSES: Final[dict[Phase, tuple[ConditionStatus, ConditionStatus, ConditionStatus]]] = {
    "Initializing": ("False", "True", "False"),
    "Progressing": ("False", "True", "False"),
    "Paused": ("False", "True", "False"),
    "Promoting": ("False", "True", "False"),
    "Healthy": ("True", "False", "False"),
    "Degraded": ("False", "False", "True"),
    "RolledBack": ("False", "False", "True"),
    "Failed": ("False", "False", "True"),
}
_TYPES: Final[tuple[ConditionType, ...]] = ("Ready", "Progressing", "Degraded")
UNHEALTHY: Final[frozenset[Phase]] = frozenset({"Degraded", "RolledBack", "Failed"})


def conditions_for(
    phase: Phase,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
    previous: list[Condition],
) -> list[Condition]:
    """The three conditions for `phase`, keeping each one's lastTransitionTime when its status
    didn't change."""
    before = {condition.type: condition for condition in previous}
    conditions = []
    for kind, status in zip(_TYPES, _STATUSES[phase], strict=True):
        old = before.get(kind)
        conditions.append(
            Condition(
                type=kind,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=old.last_transition_time if old and old.status == status else now,
                observed_generation=generation,
            )
        )
    return conditions


def reason_of(conditions: list[Condition]) -> str | None:
    """The reason of the phase the conditions were computed for."""
    return next((condition.reason for condition in conditions if condition.type == "Ready"), None)
