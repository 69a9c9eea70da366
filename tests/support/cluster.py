"""Access to the local test cluster started by `hack/cluster.sh up`.

Tests talk to the cluster both through `kubectl` (the one built with the cluster, never whatever
the machine happens to have) and through the kubernetes Python client, like users and the
operator do.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import kubernetes

REPO = Path(__file__).resolve().parents[2]
KUBECONFIG = REPO / ".cache" / "kubeconfig"


def cluster_binaries() -> dict[str, Path]:
    """NAME -> folder for k8s, etcd and kwok (builds them on first use)."""
    out = subprocess.run(
        [str(REPO / "hack" / "cluster.sh"), "env"], check=True, capture_output=True, text=True
    ).stdout
    pairs = (line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {key.removesuffix("_BIN").lower(): Path(value) for key, value in pairs}


@dataclass(frozen=True)
class Kube:
    kubeconfig: Path
    kubectl_path: Path
    api_client: kubernetes.client.ApiClient

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd: Sequence[str] = [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(
            cmd, capture_output=True, text=True, input=input, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result


def start_cluster() -> Kube:
    subprocess.run([str(REPO / "hack" / "cluster.sh"), "up"], check=True)
    kubectl = cluster_binaries()["k8s"] / "kubectl"
    api_client = kubernetes.config.new_client_from_config(config_file=str(KUBECONFIG))
    return Kube(kubeconfig=KUBECONFIG, kubectl_path=kubectl, api_client=api_client)
