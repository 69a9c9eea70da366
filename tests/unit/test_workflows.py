"""The GitHub workflows we ship: actionlint-clean (shellcheck included) and calling only make
targets that exist, so CI runs the same steps as a laptop.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.devtools import REPO, built_tool

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))


def shellcheck() -> str:
    path = shutil.which("shellcheck")
    # Without shellcheck actionlint silently skips `run:` scripts; that must not pass for a check.
    assert path, "shellcheck is not installed (apt-get install shellcheck); actionlint needs it"
    return path


def test_both_workflows_exist() -> None:
    assert {w.name for w in WORKFLOWS} >= {"ci.yaml", "e2e-kind.yaml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_actionlint_finds_nothing(workflow: Path) -> None:
    result = subprocess.run(
        [str(built_tool("actionlint")), "-no-color", "-oneline", "-shellcheck", shellcheck(), str(workflow)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_shell_bug(tmp_path: Path) -> None:
    """Proves shellcheck is wired in: an unquoted variable in a `run:` step is a finding."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: rm -rf $DIR/*\n"
    )
    result = subprocess.run(
        [str(built_tool("actionlint")), "-no-color", "-shellcheck", shellcheck(), str(broken)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "shellcheck" in result.stdout, result.stdout


def make_targets() -> set[str]:
    files = [REPO / "Makefile", *sorted((REPO / "mk").glob("*.mk"))]
    return {
        target
        for f in files
        for line in f.read_text().splitlines()
        if (m := re.match(r"^([A-Za-z0-9][\w.-]*(?:\s+[\w.-]+)*)\s*:(?!=)", line))
        for target in m.group(1).split()
    }


def run_steps(workflow: Path) -> list[str]:
    doc: dict[str, Any] = yaml.safe_load(workflow.read_text())
    return [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]


def make_calls(script: str) -> list[str]:
    """Targets in `make a b VAR=x` commands (variables and flags left out)."""
    return [
        word
        for m in re.finditer(r"(?:^|[;&|]\s*|\n\s*)make\s+([^\n;&|]+)", script)
        for word in m.group(1).split()
        if "=" not in word and not word.startswith("-")
    ]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_workflows_call_only_existing_make_targets(workflow: Path) -> None:
    called = [t for script in run_steps(workflow) for t in make_calls(script)]
    assert called, f"{workflow.name} calls no make target"
    unknown = set(called) - make_targets()
    assert not unknown, f"{workflow.name} calls make targets nobody defines: {sorted(unknown)}"


def test_ci_runs_make_test_and_e2e_uses_the_shared_targets() -> None:
    ci = {t for s in run_steps(REPO / ".github/workflows/ci.yaml") for t in make_calls(s)}
    e2e = {t for s in run_steps(REPO / ".github/workflows/e2e-kind.yaml") for t in make_calls(s)}
    assert "test" in ci
    assert {"chart-install", "e2e-rollout"} <= e2e


# A path into the repository: a top-level folder, then anything up to a quote, space or `:`.
# Make variables ($(VENV)/...) and URLs (ghcr.io/modelramp/...) are not preceded by a boundary.
REPO_PATH = re.compile(
    r"(?<![\w./$)-])((?:\.github|bench|charts|crds|docs|hack|manifests|mk|operator|serving|src|tests)"
    r"/[\w./*-]*[\w*])"
)
MAKEFILES = [REPO / "Makefile", *sorted((REPO / "mk").glob("*.mk"))]


def named_paths(text: str) -> set[str]:
    return set(REPO_PATH.findall(text))


def missing_paths(text: str) -> list[str]:
    """Named paths with nothing behind them (a glob must match at least one file)."""
    return sorted(
        p for p in named_paths(text) if not (any(REPO.glob(p)) if "*" in p else (REPO / p).exists())
    )


@pytest.mark.parametrize("source", [*WORKFLOWS, *MAKEFILES], ids=lambda p: p.name)
def test_workflows_and_make_targets_name_only_files_that_exist(source: Path) -> None:
    missing = missing_paths(source.read_text())
    assert not missing, f"{source.name} names files that do not exist: {missing}"


def test_a_file_that_does_not_exist_is_reported() -> None:
    text = (
        "env:\n  E2E_SAMPLE: manifests/samples/canary.yaml\n"
        "run: $(VENV)/bin/pytest tests/unit/test_nope*.py tests/unit/test_workflows.py\n"
    )
    assert missing_paths(text) == ["manifests/samples/canary.yaml", "tests/unit/test_nope*.py"]
