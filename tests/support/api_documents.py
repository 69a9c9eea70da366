"""The example documents the API tests share: valid samples and invalid documents with the field
each must be rejected for (a `# expect: <field path>` first line)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
# The samples users copy, and the ModelDeployments the e2e rollout applies (manifests/e2e).
SAMPLES = sorted(
    [*(REPO / "manifests" / "samples").glob("*.yaml"), *(REPO / "manifests" / "e2e").glob("scorer*.yaml")]
)
INVALID = sorted((REPO / "tests" / "data" / "invalid").glob("*.yaml"))
CRD_FILES = (
    REPO / "crds" / "modelramp.dev_modeldeployments.yaml",
    REPO / "charts" / "modelramp" / "crds" / "modelramp.dev_modeldeployments.yaml",
)

_EXPECT = re.compile(r"^# expect: (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class InvalidDocument:
    path: Path
    expected_field: str
    body: dict[str, Any]


def load_invalid(path: Path) -> InvalidDocument:
    text = path.read_text()
    match = _EXPECT.search(text)
    if match is None:
        raise ValueError(f"{path}: no '# expect: <field>' line")
    return InvalidDocument(path=path, expected_field=match.group(1), body=yaml.safe_load(text))


def load_yaml(path: Path) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(path.read_text())
    return body
