"""Access to the local test cluster started by `hack/cluster.sh up`.

Tests talk to the cluster both through `kubectl` (the one built with the cluster, never whatever
the machine happens to have) and through the kubernetes Python client, like users and the
operator do.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes

REPO = Path(__file__).resolve().parents[2]
KUBECONFIG = REPO / ".cache" / "kubeconfig"


@contextlib.contextmanager
def cluster_wide_change() -> Iterator[None]:
    """Held while a test creates or changes a cluster-wide object every worker of the parallel run
    applies (a CRD): two `kubectl apply`s racing to create one, the loser fails with AlreadyExists."""
    lock = REPO / ".cache" / "cluster-wide.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        yield


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


def connect(kubeconfig: Path) -> Kube:
    """kubectl and the Python client, both acting as whoever `kubeconfig` names."""
    kubectl = cluster_binaries()["k8s"] / "kubectl"
    api_client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    return Kube(kubeconfig=kubeconfig, kubectl_path=kubectl, api_client=api_client)


@dataclass(frozen=True)
class ExtraNodes:
    """More fake nodes for a separate cluster: `count` of them, each with room for `max_pods`."""

    count: int
    max_pods: int = 110


def _cluster_sh(
    command: str,
    name: str | None,
    kubeconfig: Path,
    audit_policy: Path | None = None,
    nodes: ExtraNodes | None = None,
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if name is not None:
        env |= {"MODELRAMP_CLUSTER": name, "MODELRAMP_KUBECONFIG": str(kubeconfig)}
    if audit_policy is not None:
        env["KWOK_KUBE_AUDIT_POLICY"] = str(audit_policy)
    if nodes is not None:
        env |= {"MODELRAMP_KWOK_NODES": str(nodes.count), "MODELRAMP_KWOK_MAX_PODS": str(nodes.max_pods)}
    capture = command == "audit"
    return subprocess.run(
        [str(REPO / "hack" / "cluster.sh"), command], check=True, env=env, capture_output=capture, text=True
    )


def start_cluster(
    name: str | None = None,
    kubeconfig: Path = KUBECONFIG,
    audit_policy: Path | None = None,
    nodes: ExtraNodes | None = None,
) -> Kube:
    """The shared local cluster; with `name`, a separate cluster of that name whose kubeconfig goes
    to `kubeconfig` (for a test that must not share the cluster, e.g. a cluster-wide operator),
    auditing API requests by `audit_policy` when given (read them with `audit_events`), with
    `nodes` more fake nodes when given (room for more pods than the default three nodes' 330)."""
    _cluster_sh("up", name, kubeconfig, audit_policy, nodes)
    return connect(kubeconfig)


def audit_events(name: str, kubeconfig: Path) -> list[dict[str, Any]]:
    """The audit events so far of a separate cluster started with an audit policy."""
    out = _cluster_sh("audit", name, kubeconfig).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def delete_cluster(name: str, kubeconfig: Path) -> None:
    """Deletes a separate cluster made by `start_cluster(name, kubeconfig)`."""
    _cluster_sh("down", name, kubeconfig)


def restart_api_server(kube: Kube, name: str = "modelramp", down_seconds: float = 5.0) -> None:
    """Kills the kube-apiserver of a local cluster (SIGKILL: a crash, or a control-plane node lost;
    a SIGTERM'd one drains its requests for up to a minute first), leaves it down `down_seconds`,
    starts it again and waits until it is ready and the control plane is whole again."""
    pids = REPO / ".cache" / "kwok" / "clusters" / name / "pids"
    pid = int((pids / "kube-apiserver.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _running(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"kube-apiserver ({pid}) still running 30 s after SIGKILL")
        time.sleep(0.1)
    time.sleep(down_seconds)
    _supervise(name, pids)
    deadline = time.monotonic() + 120
    while kube.kubectl("get", "--raw", "/readyz", check=False, timeout=10).returncode != 0:
        if time.monotonic() > deadline:
            raise AssertionError("kube-apiserver not ready 120 s after its restart")
        time.sleep(0.5)


# The controller-manager and the scheduler exit when they can't renew their leader lease (10 s);
# the kubelet restarts such static pods. A component up this long has survived the outage.
SETTLED_SECONDS = 15.0


def _supervise(name: str, pids: Path) -> None:
    """Starts, through kwokctl (which starts the components that are not running), whatever of the
    control plane exits, until all of it has stayed up SETTLED_SECONDS."""
    start = [str(cluster_binaries()["kwok"] / "kwokctl"), "start", "cluster", "--name", name]
    env = {**os.environ, "KWOK_WORKDIR": str(REPO / ".cache" / "kwok")}
    deadline = time.monotonic() + 180
    settled_since: float | None = None
    while settled_since is None or time.monotonic() - settled_since < SETTLED_SECONDS:
        if time.monotonic() > deadline:
            raise AssertionError(f"the control plane of {name} did not stay up after the restart")
        if all(_running(int(pid.read_text().strip())) for pid in pids.glob("*.pid")):
            settled_since = settled_since or time.monotonic()
        else:
            subprocess.run(start, check=True, env=env, timeout=180)
            settled_since = None
        time.sleep(0.5)


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody reaped yet is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
