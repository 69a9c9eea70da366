"""Follow-alias decisions and the registry retry schedule (pure)."""

from __future__ import annotations

import itertools

import pytest

from modelramp.operator.api import ModelSource
from modelramp.operator.api.status import ModelDeploymentStatus, ResolvedModel
from modelramp.operator.registry import (
    ModelVersionInfo,
    RegistryResolution,
    alias_moved,
    next_poll_delay,
    recorded_model,
)
from modelramp.operator.registry.follow import MAX_RETRY_SECONDS, POLL_INTERVAL_SECONDS

URI = "models:/fraud@champion"


def source(follow: bool = True, uri: str = URI) -> ModelSource:
    return ModelSource(uri=uri, format="mlflow", follow_alias=follow)


def pin(version: str, uri: str = URI) -> ResolvedModel:
    return ResolvedModel(uri=uri, resolved_uri=f"models:/fraud/{version}", version=version)


def latest(version: str, uri: str = URI) -> RegistryResolution:
    return RegistryResolution(
        requested_uri=uri, reference="alias champion", found=ModelVersionInfo(name="fraud", version=version)
    )


def test_a_moved_alias_starts_a_rollout_naming_both_versions() -> None:
    moved = alias_moved(source(), ModelDeploymentStatus(phase="Healthy", stable_model=pin("6")), latest("7"))
    assert moved is not None
    assert moved.previous_version == "6"
    assert moved.model == pin("7")
    assert (
        moved.message
        == "alias champion of model fraud moved from version 6 to 7: rolling out models:/fraud/7"
    )


@pytest.mark.parametrize(
    ("follow", "status", "fresh"),
    [
        (False, ModelDeploymentStatus(stable_model=pin("6")), latest("7")),
        (True, ModelDeploymentStatus(stable_model=pin("7")), latest("7")),
        # Nothing recorded yet: the first resolution is the initial rollout, not a move.
        (True, ModelDeploymentStatus(), latest("7")),
        # A poll answered for a URI the spec no longer names.
        (True, ModelDeploymentStatus(stable_model=pin("6")), latest("7", uri="models:/fraud@challenger")),
        # Version 7 was rolled back; the alias still points to it: don't roll it out again.
        (
            True,
            ModelDeploymentStatus(phase="RolledBack", stable_model=pin("6"), canary_model=pin("7")),
            latest("7"),
        ),
    ],
)
def test_no_rollout_when_nothing_moved_or_following_is_off(
    follow: bool, status: ModelDeploymentStatus, fresh: RegistryResolution
) -> None:
    assert alias_moved(source(follow), status, fresh) is None


def test_a_move_during_a_rollout_supersedes_its_canary() -> None:
    status = ModelDeploymentStatus(phase="Progressing", stable_model=pin("6"), canary_model=pin("7"))
    moved = alias_moved(source(), status, latest("8"))
    assert moved is not None and moved.previous_version == "7"


def test_recorded_model_prefers_the_canary_and_ignores_other_uris() -> None:
    other = pin("3", uri="models:/fraud/3")
    status = ModelDeploymentStatus(stable_model=pin("6"), canary_model=pin("7"))
    assert recorded_model(URI, status) == pin("7")
    assert recorded_model(URI, ModelDeploymentStatus(stable_model=pin("6"), canary_model=other)) == pin("6")
    assert recorded_model("models:/fraud@new", status) is None


def test_poll_delay_backs_off_and_is_capped() -> None:
    delays = [next_poll_delay(failures) for failures in range(12)]
    assert delays[0] == POLL_INTERVAL_SECONDS
    assert delays[1:5] == [5.0, 10.0, 20.0, 40.0]
    assert all(a <= b for a, b in itertools.pairwise(delays[1:]))
    assert delays[-1] == MAX_RETRY_SECONDS
    with pytest.raises(ValueError, match="consecutive_failures"):
        next_poll_delay(-1)
