"""Runs our Argo CD health check and resource actions the way Argo CD does, for the tests.

Argo CD evaluates these scripts with gopher-lua (Lua 5.1) in a sandbox, with the live object in the
global `obj`. We use the real Lua 5.1 runtime (lupa) with the same global and without the libraries
the sandbox lacks, so a script that only works in a newer or unsandboxed Lua fails here too.
The scripts are read from manifests/argocd/argocd-cm.yaml, the file users apply.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from lupa import lua51
from pydantic import BaseModel, ConfigDict, Field

REPO = Path(__file__).resolve().parents[2]
ARGOCD_CM = REPO / "manifests" / "argocd" / "argocd-cm.yaml"
KIND_KEY = "modelramp.dev_ModelDeployment"
# Globals gopher-lua's sandbox in Argo CD does not offer.
UNSANDBOXED = ("io", "os", "package", "debug", "require", "dofile", "loadfile", "load", "loadstring")


class HealthStatus(BaseModel):
    """What Argo CD reads from a health script's returned table."""

    model_config = ConfigDict(extra="forbid")
    status: str
    message: str = ""


class ActionDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    action_lua: str = Field(alias="action.lua")


class ActionsConfig(BaseModel):
    """The value of `resource.customizations.actions.<group>_<kind>` in argocd-cm."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    discovery_lua: str = Field(alias="discovery.lua")
    definitions: list[ActionDefinition]

    def script(self, name: str) -> str:
        for definition in self.definitions:
            if definition.name == name:
                return definition.action_lua
        raise KeyError(f"no action {name!r} in {ARGOCD_CM}")


@cache
def argocd_cm_data() -> dict[str, str]:
    data: dict[str, str] = yaml.safe_load(ARGOCD_CM.read_text())["data"]
    return data


def health_script() -> str:
    return argocd_cm_data()[f"resource.customizations.health.{KIND_KEY}"]


def actions_config() -> ActionsConfig:
    return ActionsConfig.model_validate(
        yaml.safe_load(argocd_cm_data()[f"resource.customizations.actions.{KIND_KEY}"])
    )


def _to_python(value: Any) -> Any:
    """Lua tables back to JSON-like values: 1..n keys make a list, anything else a dict."""
    if lua51.lua_type(value) != "table":
        return value
    keys = list(value.keys())
    if keys and keys == list(range(1, len(keys) + 1)):
        return [_to_python(value[k]) for k in keys]
    return {str(k): _to_python(value[k]) for k in keys}


def run(script: str, obj: dict[str, Any]) -> Any:
    """Runs one script with `obj` bound as Argo CD binds it and returns its result as Python."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=False)
    globals_ = runtime.globals()
    for name in UNSANDBOXED:
        globals_[name] = None
    globals_["obj"] = runtime.table_from(obj, recursive=True)
    return _to_python(runtime.execute(script))


def health(obj: dict[str, Any]) -> HealthStatus:
    return HealthStatus.model_validate(run(health_script(), obj))


def discover_actions(obj: dict[str, Any]) -> dict[str, bool]:
    """Action name -> enabled, as Argo CD's UI would offer them for `obj`."""
    offered: dict[str, dict[str, bool]] = run(actions_config().discovery_lua, obj)
    return {name: not flags.get("disabled", False) for name, flags in offered.items()}


def apply_action(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = run(actions_config().script(name), obj)
    return result
