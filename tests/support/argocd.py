"""Runs our Argo CD health check and resource actions in Argo CD's own code, for the tests.

`hack/argocd-lua` is a small Go program linking Argo CD (the version in its go.mod): it merges
manifests/argocd/argocd-cm.yaml, the file users apply, into an install's argocd-cm, reads the
resource overrides back through Argo CD's settings manager, and answers health (gitops-engine, as
the application controller computes it), action discovery and actions (util/lua, as the API
server runs them, with the merge patch the API server derives and splits into a status and a spec
patch). So the scripts run in gopher-lua with Argo CD's sandbox (no `string`, `math` or string
methods), their results go through JSON as there, and argocd-cm's keys are parsed by the code
that parses them there. One runner process serves a test session; `make tools` builds it.
"""

from __future__ import annotations

import atexit
import json
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from support.devtools import built_tool

REPO = Path(__file__).resolve().parents[2]
ARGOCD_CM = REPO / "manifests" / "argocd" / "argocd-cm.yaml"


class LuaError(AssertionError):
    """Argo CD refused or failed to run a script (its error message, as the UI would show it)."""


class HealthStatus(BaseModel):
    """What Argo CD records as the resource's health."""

    model_config = ConfigDict(extra="forbid")
    status: str
    message: str = ""


class OfferedAction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    disabled: bool = False


class ImpactedResource(BaseModel):
    """One resource an action returns, and the patches the API server sends for it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    operation: Literal["patch", "create"]
    object: dict[str, Any]
    patch: dict[str, Any] | None = None
    status_patch: dict[str, Any] | None = Field(default=None, alias="statusPatch")
    spec_patch: dict[str, Any] | None = Field(default=None, alias="specPatch")


@dataclass
class ArgoCDLua:
    """The runner process for one argocd-cm file: one JSON request a line, one answer a line."""

    argocd_cm: Path

    def __post_init__(self) -> None:
        self._process = subprocess.Popen(
            [str(built_tool("argocd-lua")), str(self.argocd_cm)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        atexit.register(self.close)

    def ask(self, op: str, obj: dict[str, Any], action: str | None = None) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        request: dict[str, Any] = {"op": op, "object": obj} | ({"action": action} if action else {})
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=10)
            stderr = self._process.stderr.read() if self._process.stderr else ""
            raise AssertionError(f"argocd-lua exited with {self._process.returncode}: {stderr}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise LuaError(answer["error"])
        return answer

    def health(self, obj: dict[str, Any]) -> HealthStatus:
        return HealthStatus.model_validate(self.ask("health", obj)["health"])

    def discover_actions(self, obj: dict[str, Any]) -> dict[str, bool]:
        """Action name -> enabled, as Argo CD's UI offers them for `obj`."""
        offered = [OfferedAction.model_validate(raw) for raw in self.ask("discover", obj).get("actions", [])]
        return {action.name: not action.disabled for action in offered}

    def run_action(self, name: str, obj: dict[str, Any]) -> list[ImpactedResource]:
        return [
            ImpactedResource.model_validate(raw) for raw in self.ask("run", obj, name).get("resources", [])
        ]

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._process.wait(timeout=10)


@cache
def shipped() -> ArgoCDLua:
    """The runner for the argocd-cm.yaml we ship."""
    return ArgoCDLua(ARGOCD_CM)


def with_api_version(obj: dict[str, Any]) -> dict[str, Any]:
    """Argo CD picks the scripts by the object's group and kind: a live object always has both."""
    return {"apiVersion": "modelramp.dev/v1alpha1", "kind": "ModelDeployment", **obj}


def health(obj: dict[str, Any]) -> HealthStatus:
    return shipped().health(with_api_version(obj))


def discover_actions(obj: dict[str, Any]) -> dict[str, bool]:
    return shipped().discover_actions(with_api_version(obj))


def run_action(name: str, obj: dict[str, Any]) -> ImpactedResource:
    """The one resource (the ModelDeployment itself) every one of our actions patches."""
    (resource,) = shipped().run_action(name, with_api_version(obj))
    assert resource.operation == "patch", resource
    return resource


def apply_action(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the action leaves it."""
    return run_action(name, obj).object
