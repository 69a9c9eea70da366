"""The Argo CD health check for ModelDeployment, computed by Argo CD's own code (tests/support/argocd.py).

Cases live in tests/unit/data/argocd-health/*.yaml so statuses captured from real rollouts can be
added as data. Every phase of the status contract in docs/architecture.md must map to a health.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict
from support.argocd import REPO, health

CASES_DIR = Path(__file__).parent / "data" / "argocd-health"
ARGO_HEALTH = {"Healthy", "Progressing", "Suspended", "Degraded", "Missing", "Unknown"}


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str
    message: str | None = None


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    expect: Expectation
    object: dict[str, Any]


def load_cases() -> list[Case]:
    cases = [
        Case.model_validate(raw)
        for path in sorted(CASES_DIR.glob("*.yaml"))
        for raw in yaml.safe_load(path.read_text())
    ]
    assert cases, f"no health cases in {CASES_DIR}"
    return cases


CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_health(case: Case) -> None:
    got = health(case.object)
    assert got.status in ARGO_HEALTH
    assert got.status == case.expect.status, got.message
    if case.expect.message is not None:
        assert got.message == case.expect.message


def contract_phases() -> set[str]:
    contract = (REPO / "docs" / "architecture.md").read_text()
    match = re.search(r"`status\.phase` in ([A-Za-z |\n]+),", contract)
    assert match, "docs/architecture.md no longer lists the status phases as `status.phase` in A | B | ..."
    return {phase.strip() for phase in match.group(1).split("|")}


def test_every_contract_phase_has_a_case() -> None:
    covered = {c.object.get("status", {}).get("phase") for c in CASES}
    missing = contract_phases() - covered
    assert not missing, f"phases in docs/architecture.md without a health case: {sorted(missing)}"


@pytest.mark.parametrize("phase", sorted(contract_phases()))
def test_no_contract_phase_reads_as_unknown(phase: str) -> None:
    obj = {"metadata": {"generation": 1}, "spec": {}, "status": {"observedGeneration": 1, "phase": phase}}
    assert health(obj).status != "Unknown"
