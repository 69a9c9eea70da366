"""The Argo CD runner itself is Argo CD's behaviour, not a stand-in's: scripts that work in a plain
Lua but not in Argo CD's sandbox fail here, results go through JSON as there, and argocd-cm keys
are read as Argo CD reads them. Each case changes a copy of the shipped argocd-cm.yaml."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.argocd import ARGOCD_CM, ArgoCDLua, LuaError, with_api_version

HEALTH_KEY = "resource.customizations.health.modelramp.dev_ModelDeployment"
ACTIONS_KEY = "resource.customizations.actions.modelramp.dev_ModelDeployment"
OBJ = with_api_version(
    {
        "metadata": {"name": "iris", "namespace": "ml", "generation": 1},
        "spec": {"model": {"uri": "models:/iris/4"}},
        "status": {"observedGeneration": 1, "phase": "Progressing"},
    }
)


def runner(tmp_path: Path, edit: Any) -> ArgoCDLua:
    """A runner for the shipped argocd-cm after `edit(data, actions)` changed a copy of it."""
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    actions = yaml.safe_load(cm["data"][ACTIONS_KEY])
    edit(cm["data"], actions)
    if ACTIONS_KEY in cm["data"]:
        cm["data"][ACTIONS_KEY] = yaml.safe_dump(actions)
    path = tmp_path / "argocd-cm.yaml"
    path.write_text(yaml.safe_dump(cm))
    return ArgoCDLua(path)


def set_action(actions: dict[str, Any], name: str, script: str) -> None:
    next(d for d in actions["definitions"] if d["name"] == name)["action.lua"] = script


@pytest.mark.parametrize(
    "script",
    [
        'obj.status.abort = string.len("x") == 1\nreturn obj',
        'obj.status.abort = ("x"):len() == 1\nreturn obj',
        "obj.status.abort = math.floor(1.5) == 1\nreturn obj",
    ],
    ids=["string-library", "string-method", "math-library"],
)
def test_libraries_the_sandbox_lacks_fail_the_action(tmp_path: Path, script: str) -> None:
    argo = runner(tmp_path, lambda data, actions: set_action(actions, "abort", script))
    with pytest.raises(LuaError):
        argo.run_action("abort", copy.deepcopy(OBJ))


def test_the_sandbox_offers_table_and_a_safe_os(tmp_path: Path) -> None:
    script = "\n".join(
        [
            'local os = require("os")',
            "local t = {}",
            'table.insert(t, os.date("!%Y"))',
            "obj.status.abort = #t == 1",
            "return obj",
        ]
    )
    argo = runner(tmp_path, lambda data, actions: set_action(actions, "abort", script))
    (resource,) = argo.run_action("abort", copy.deepcopy(OBJ))
    assert resource.status_patch == {"status": {"abort": True}}


def test_a_misspelt_discovery_key_offers_no_actions(tmp_path: Path) -> None:
    def misspell(data: dict[str, Any], actions: dict[str, Any]) -> None:
        actions["discovery_lua"] = actions.pop("discovery.lua")

    # Argo CD parses the key away without a word and then runs an empty discovery script.
    with pytest.raises(LuaError, match="expect table output from Lua script"):
        runner(tmp_path, misspell).discover_actions(copy.deepcopy(OBJ))


def test_an_unknown_health_status_reads_as_unknown(tmp_path: Path) -> None:
    def sick(data: dict[str, Any], actions: dict[str, Any]) -> None:
        data[HEALTH_KEY] = 'return {status = "Sick", message = "x"}'

    health = runner(tmp_path, sick).health(copy.deepcopy(OBJ))
    assert (health.status, health.message) == ("Unknown", "Lua returned an invalid health status")


def test_an_empty_table_comes_back_as_a_json_list(tmp_path: Path) -> None:
    # gopher-lua's JSON encoding can't tell {} from []: a script that empties a map writes a list
    # (Argo CD restores only fields that were maps in the live object).
    script = "obj.status.newField = {}\nreturn obj"
    argo = runner(tmp_path, lambda data, actions: set_action(actions, "abort", script))
    (resource,) = argo.run_action("abort", copy.deepcopy(OBJ))
    assert resource.object["status"]["newField"] == []


def test_the_shipped_file_must_be_argocd_cm(tmp_path: Path) -> None:
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    cm["metadata"]["name"] = "argocd-cmd-params-cm"
    path = tmp_path / "argocd-cm.yaml"
    path.write_text(yaml.safe_dump(cm))
    with pytest.raises(AssertionError, match="Argo CD reads"):
        ArgoCDLua(path).health(copy.deepcopy(OBJ))
