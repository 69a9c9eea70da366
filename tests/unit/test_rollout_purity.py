"""The rollout engine and the routers stay pure: no kopf, no kubernetes client, no HTTP, no clock
(docs/architecture.md). Checked on the source, so a stray import fails here, not in production."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "operator"
PURE = sorted([*ROOT.joinpath("rollout").glob("*.py"), *ROOT.joinpath("routers").glob("*.py")])
FORBIDDEN = ("kopf", "kubernetes", "httpx", "requests", "urllib", "aiohttp", "socket", "time", "random")
# `rollout` may use the pure parts of `analysis` only (its providers do I/O).
PURE_ANALYSIS = ("phases", "scheduling", "ab_judging")


def imported(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", PURE, ids=[f"{p.parent.name}/{p.name}" for p in PURE])
def test_module_imports_nothing_impure(path: Path) -> None:
    for name in imported(path):
        assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
        if name.startswith("modelramp.operator.analysis"):
            assert name.rsplit(".", 1)[-1] in PURE_ANALYSIS, f"{path.name} imports {name}"
        if path.parent.name == "routers":
            assert not name.startswith("modelramp.operator.rollout"), f"routers must not import {name}"
        assert "datetime.now" not in path.read_text()


def test_there_are_modules_to_check() -> None:
    assert len(PURE) >= 10
