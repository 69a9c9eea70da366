"""`modelramp promote|abort|retry|pause|resume|status` against the real API server (no operator
running, so what each command wrote is exactly what is there), and the kubectl plugin."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
from support.cluster import REPO, Kube
from support.operator import ModelDeployments

pytestmark = pytest.mark.cluster


def _md(name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "modelramp.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": "file:///models/v2.pt", "format": "torchscript"},
            "serving": {"replicas": 2},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
        },
    }


def _set_status(mds: ModelDeployments, name: str, status: dict[str, Any]) -> None:
    """Plays the operator: writes a status the way it does, through the status subresource."""
    mds.custom.patch_namespaced_custom_object_status(
        "modelramp.dev", "v1alpha1", mds.namespace, "modeldeployments", name, {"status": status}
    )


def test_abort_and_retry_write_the_status_subresource_only(mds: ModelDeployments) -> None:
    mds.apply(_md())
    generation = mds.get("web")["metadata"]["generation"]
    mds.cli("abort", "web")
    assert mds.status("web")["abort"] is True
    # A status write never bumps the generation: Argo CD and the spec are untouched.
    assert mds.get("web")["metadata"]["generation"] == generation
    _set_status(mds, "web", {"phase": "RolledBack", "abortedAt": "2026-01-01T00:00:00Z"})
    out = mds.cli("retry", "web").stdout
    assert "restarts from its first step" in out
    status = mds.status("web")
    # abort cleared while abortedAt stays is how the operator tells a retry from a fresh start.
    assert status["abort"] is False
    assert status["abortedAt"] == "2026-01-01T00:00:00Z"


def test_retry_refuses_when_nothing_was_aborted(mds: ModelDeployments) -> None:
    mds.apply(_md())
    result = mds.cli("retry", "web", check=False)
    assert result.returncode == 1
    assert "not aborted or rolled back" in result.stderr


def test_promote_and_promote_full_set_their_requests(mds: ModelDeployments) -> None:
    mds.apply(_md())
    refused = mds.cli("promote", "web", check=False)
    assert refused.returncode == 1 and "no rollout in progress" in refused.stderr
    _set_status(mds, "web", {"canaryRevision": "b", "currentStepIndex": 1})
    assert "the current pause or step ends" in mds.cli("promote", "web").stdout
    status = mds.status("web")
    assert status["promote"] is True and status.get("promoteFull") is not True
    mds.cli("promote", "web", "--full")
    assert mds.status("web")["promoteFull"] is True


def test_pause_and_resume_toggle_spec_paused(mds: ModelDeployments) -> None:
    mds.apply(_md())
    generation = mds.get("web")["metadata"]["generation"]
    mds.cli("pause", "web")
    md = mds.get("web")
    assert md["spec"]["paused"] is True and md["metadata"]["generation"] == generation + 1
    mds.cli("resume", "web")
    assert mds.get("web")["spec"]["paused"] is False


def test_status_prints_the_rollout_tree(mds: ModelDeployments) -> None:
    mds.apply(_md())
    _set_status(
        mds, "web", {"phase": "Paused", "canaryRevision": "b", "canaryWeight": 50, "currentStepIndex": 1}
    )
    out = mds.cli("status", "web").stdout
    assert f"ModelDeployment {mds.namespace}/web" in out
    assert "Phase:     Paused" in out
    assert "✔ 0: setWeight 50%" in out
    assert "▶ 1: pause (until promoted)" in out


def test_unknown_name_is_a_clear_error(mds: ModelDeployments) -> None:
    for command in ("status", "abort", "promote", "pause"):
        result = mds.cli(command, "missing", check=False)
        assert result.returncode == 1
        assert f"ModelDeployment {mds.namespace}/missing not found" in result.stderr


def test_kubectl_plugin_runs_the_cli(kube: Kube, mds: ModelDeployments) -> None:
    mds.apply(_md())
    # kubectl finds plugins named kubectl-<name> on PATH; the package installs `kubectl-modelramp`.
    env = {
        **os.environ,
        "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
        "KUBECONFIG": str(kube.kubeconfig),
    }
    result = subprocess.run(
        [str(kube.kubectl_path), "modelramp", "abort", "web", "-n", mds.namespace],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert mds.status("web")["abort"] is True
