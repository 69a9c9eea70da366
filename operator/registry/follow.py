"""Follow-alias: when the alias a ModelDeployment follows moves, roll out the new version.

Off unless `spec.model.followAlias` is set, so Git stays the source of truth for GitOps users.
The glue polls the registry every `POLL_INTERVAL_SECONDS` (backing off while it is unreachable,
see `next_poll_delay`), and asks `alias_moved` whether the fresh resolution calls for a rollout.
Both are pure, so the decision is tested without a registry and a restart changes nothing.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict

from modelramp.operator.api.spec import ModelSource
from modelramp.operator.api.status import ModelDeploymentStatus, ResolvedModel
from modelramp.operator.registry.resolver import RegistryResolution, recorded_model

POLL_INTERVAL_SECONDS: Final = 60.0
FIRST_RETRY_SECONDS: Final = 5.0
MAX_RETRY_SECONDS: Final = 300.0


class AliasMoved(BaseModel):
    """A decision to roll out the version the alias points to now."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    previous_version: str | None
    model: ResolvedModel
    message: str


def alias_moved(
    source: ModelSource, status: ModelDeploymentStatus, latest: RegistryResolution
) -> AliasMoved | None:
    """Whether `latest` (a fresh resolution of `source.uri`) should start a rollout.

    Yes when following is on and the alias points to a version other than the one recorded for
    this URI (the running canary's, else stable's). A move during a rollout supersedes it, as a
    new revision from Git would. A version that was just rolled back is not rolled out again
    while the alias still points to it (the engine keeps `canaryModel` after a rollback):
    that would loop.
    """
    if not source.follow_alias or latest.requested_uri != source.uri:
        return None
    current = recorded_model(source.uri, status)
    if current is None or current.version == latest.found.version:
        # No pin yet: the rollout that resolves the URI for the first time is already due.
        return None
    name = latest.found.name
    return AliasMoved(
        previous_version=current.version,
        model=latest.as_resolved_model(),
        message=(
            f"{latest.reference} of model {name} moved from version {current.version} to "
            f"{latest.found.version}: rolling out {latest.pinned_uri}"
        ),
    )


def next_poll_delay(consecutive_failures: int, interval: float = POLL_INTERVAL_SECONDS) -> float:
    """Seconds until the next registry call: `interval` while the registry answers; after failures
    5 s, 10 s, 20 s... (doubling per consecutive failure) up to MAX_RETRY_SECONDS. The same
    schedule paces retries of a resolution a rollout is waiting for."""
    if consecutive_failures < 0:
        raise ValueError(f"consecutive_failures must be >= 0, got {consecutive_failures}")
    if consecutive_failures == 0:
        return interval
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2.0 ** (consecutive_failures - 1))
