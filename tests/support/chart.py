"""Renders charts/modelramp with the real helm binary, for the chart tests.

`--kube-version 1.34` because the tests target the local cluster's Kubernetes, whatever helm's
built-in default is.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from support.devtools import REPO, built_tool

CHART = REPO / "charts" / "modelramp"
KUBE_VERSION = "1.34"
RELEASE = "modelramp"
NAMESPACE = "modelramp-system"


def helm(*args: str) -> str:
    result = subprocess.run(
        [str(built_tool("helm")), *args], check=False, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout


def render(
    values: dict[str, Any] | None = None, *extra: str, release: str = RELEASE, namespace: str = NAMESPACE
) -> list[dict[str, Any]]:
    """The objects `helm template` produces for `values` (CRDs excluded unless asked for)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values_file:
        yaml.safe_dump(values or {}, values_file)
        values_file.flush()
        out = helm(
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            "--values",
            values_file.name,
            *extra,
        )
    return [doc for doc in yaml.safe_load_all(out) if doc]


def lint(values: dict[str, Any] | None = None) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values_file:
        yaml.safe_dump(values or {}, values_file)
        values_file.flush()
        return helm(
            "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, "--values", values_file.name
        )


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def crd_files() -> list[Path]:
    return sorted(Path(p) for p in (CHART / "crds").glob("*.yaml")) if (CHART / "crds").is_dir() else []
