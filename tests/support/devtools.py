"""Paths of the command-line tools the tests run: helm, actionlint, argocd-lua, Prometheus, Traefik
and kubectl.

Each comes from its version-keyed build cache (hack/install-tools.sh, hack/build-k8s.sh), never
from whatever the machine has on PATH, so every run checks against the same versions. A missing
tool fails the test with the command that builds it: these checks must not quietly skip.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def built_tool(name: str) -> Path:
    """helm, actionlint, argocd-lua (`make tools`), prometheus and promtool (`make prometheus`) or traefik
    (`make traefik`), as hack/install-tools.sh built them."""
    result = subprocess.run(
        [str(REPO / "hack" / "install-tools.sh"), "--check", name],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise AssertionError(result.stderr.strip() or f"hack/install-tools.sh --check {name} failed")
    return Path(result.stdout.strip())


def kubectl() -> Path:
    """The kubectl built with the local cluster's Kubernetes (version from hack/k8s/go.mod)."""
    match = re.search(r"^\s*k8s\.io/kubernetes (v[0-9.]+)", (REPO / "hack/k8s/go.mod").read_text(), re.M)
    if match is None:
        raise AssertionError("hack/k8s/go.mod does not require k8s.io/kubernetes")
    cache = Path(os.environ.get("MODELRAMP_CACHE", Path.home() / ".cache" / "modelramp"))
    path = cache / "bin" / f"k8s-{match.group(1)}" / "kubectl"
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} is not built; run hack/build-k8s.sh")
    return path
