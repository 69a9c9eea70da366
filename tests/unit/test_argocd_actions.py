"""Argo CD resource actions for ModelDeployment, run by Argo CD's own code (tests/support/argocd.py).

The contract (docs/gitops.md), modelled on Argo Rollouts' own actions: pause/resume toggle
`spec.paused`; every other request goes through `status` (Argo CD patches the status subresource),
where the operator reads it. Nothing else in `spec` is touched, so Git-owned fields never drift.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from support.argocd import ARGOCD_CM, apply_action, discover_actions, run_action

ACTIONS = {"pause", "resume", "abort", "retry", "promote", "promote-full"}
SPEC = {"model": {"uri": "models:/iris/4"}, "strategy": {"canary": {"steps": [{"setWeight": 20}]}}}
STEP_PAUSE = [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}]


def model_deployment(phase: str | None, *, paused: bool | None = None, **status: Any) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(SPEC)
    if paused is not None:
        spec["paused"] = paused
    obj: dict[str, Any] = {
        "apiVersion": "modelramp.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": "ml", "generation": 2, "annotations": {"team": "a"}},
        "spec": spec,
    }
    if phase is not None:
        obj["status"] = {"observedGeneration": 2, "phase": phase, "canaryWeight": 20, **status}
    return obj


def changed_paths(before: Any, after: Any, prefix: str = "") -> set[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        paths: set[str] = set()
        for key in before.keys() | after.keys():
            paths |= changed_paths(before.get(key), after.get(key), f"{prefix}/{key}")
        return paths
    return set() if before == after else {prefix}


def act(action: str, before: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    after = apply_action(action, copy.deepcopy(before))
    return after, changed_paths(before, after)


def test_definitions_and_discovery_name_the_same_actions() -> None:
    actions = yaml.safe_load(ARGOCD_CM.read_text())["data"][
        "resource.customizations.actions.modelramp.dev_ModelDeployment"
    ]
    assert {d["name"] for d in yaml.safe_load(actions)["definitions"]} == ACTIONS
    assert set(discover_actions(model_deployment("Progressing"))) == ACTIONS


# (object, the actions Argo CD offers for it)
OFFERED = [
    (model_deployment(None), {"pause"}),
    (model_deployment("Initializing"), {"pause"}),
    (model_deployment("Progressing"), {"pause", "abort", "promote", "promote-full"}),
    (model_deployment("Progressing", paused=True), {"resume", "abort", "promote", "promote-full"}),
    (
        model_deployment("Paused", pauseConditions=STEP_PAUSE),
        {"pause", "abort", "promote", "promote-full"},
    ),
    (model_deployment("Progressing", promoteFull=True), {"pause", "abort", "promote"}),
    (model_deployment("Promoting"), {"pause", "abort"}),
    (model_deployment("Healthy"), {"pause"}),
    (model_deployment("Healthy", paused=True), {"resume"}),
    # After an abort or rollback, promote continues past the step that stopped it (argo-rollouts#841).
    (model_deployment("Progressing", abort=True), {"pause", "retry", "promote", "promote-full"}),
    (model_deployment("RolledBack"), {"pause", "retry", "promote", "promote-full"}),
    (model_deployment("Failed"), {"pause", "retry", "promote", "promote-full"}),
    (model_deployment("Degraded"), {"pause"}),
]


@pytest.mark.parametrize(("obj", "offered"), OFFERED, ids=[str(i) for i in range(len(OFFERED))])
def test_discovery_offers_only_actions_that_do_something(obj: dict[str, Any], offered: set[str]) -> None:
    enabled = discover_actions(obj)
    assert {name for name, on in enabled.items() if on} == offered


def test_pause_sets_spec_paused_only() -> None:
    after, changed = act("pause", model_deployment("Progressing"))
    assert changed == {"/spec/paused"}
    assert after["spec"]["paused"] is True


def test_resume_clears_spec_paused() -> None:
    after, changed = act("resume", model_deployment("Progressing", paused=True))
    assert changed == {"/spec/paused"}
    assert after["spec"]["paused"] is False


def test_abort_sets_status_abort() -> None:
    after, changed = act("abort", model_deployment("Progressing"))
    assert changed == {"/status/abort"}
    assert after["status"]["abort"] is True


def test_retry_clears_the_abort() -> None:
    before = model_deployment("RolledBack", abort=True, abortedAt="2026-01-01T00:00:00Z")
    after, changed = act("retry", before)
    # abortedAt stays: with abort cleared, it is what tells the operator to retry.
    assert changed == {"/status/abort"}
    assert after["status"]["abort"] is False


@pytest.mark.parametrize(
    "before",
    [
        model_deployment("Paused", pauseConditions=STEP_PAUSE, currentStepIndex=2),
        model_deployment("Progressing", currentStepIndex=1),
    ],
)
def test_promote_asks_the_operator_through_status_promote(before: dict[str, Any]) -> None:
    # The operator ends the pause or step and clears the request; the action never moves the step
    # itself (a timed pause's start time and the analysis runs are the operator's).
    after, changed = act("promote", before)
    assert changed == {"/status/promote"}
    assert after["status"]["promote"] is True


def test_promote_full_sets_promote_full_only() -> None:
    after, changed = act("promote-full", model_deployment("RolledBack", abort=True))
    assert changed == {"/status/promoteFull"}
    assert after["status"]["promoteFull"] is True


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_no_action_touches_metadata_or_the_git_owned_spec(action: str) -> None:
    before = model_deployment("Paused", pauseConditions=STEP_PAUSE, currentStepIndex=1)
    _, changed = act(action, before)
    assert changed
    assert all(path.startswith("/status/") or path == "/spec/paused" for path in changed), changed


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_the_api_server_sends_status_changes_to_the_status_subresource_only(action: str) -> None:
    """Argo CD splits an action's merge patch: `status` goes to /status (the operator's), the rest
    to the object. Only pause and resume may leave anything for the object itself."""
    before = model_deployment("Paused", pauseConditions=STEP_PAUSE, currentStepIndex=1, paused=False)
    if action == "resume":
        before["spec"]["paused"] = True
    resource = run_action(action, before)
    assert resource.patch is not None
    if action in ("pause", "resume"):
        assert resource.status_patch is None
        assert resource.spec_patch == {"spec": {"paused": action == "pause"}}
    else:
        assert resource.spec_patch is None
        assert resource.status_patch is not None and set(resource.status_patch) == {"status"}
