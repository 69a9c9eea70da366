"""Two operator replicas with `--peering`: only the one with the highest priority acts, and the
other takes over when it leaves (argo-rollouts#2117: two controllers must never both act)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from support.cluster import Kube
from support.operator import (
    V2,
    ModelDeployments,
    OperatorProcess,
    canary_md,
    healthy,
    install_peering_crds,
    stop_replicas,
    wait_for,
    with_model,
)

pytestmark = [pytest.mark.cluster, pytest.mark.faults]


def reconciles(operator: OperatorProcess) -> float:
    """modelramp_reconcile_total over every result, from the replica's /metrics."""
    found = re.findall(
        r'^modelramp_reconcile_total\{result="[a-z]+"\} ([0-9.e+]+)$', operator.metrics(), re.M
    )
    return sum(float(value) for value in found)


def test_only_the_leading_replica_acts_and_the_other_takes_over(
    kube: Kube, namespace: str, mds: ModelDeployments, tmp_path: Path
) -> None:
    install_peering_crds(kube)
    peering = '{"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "modelramp"}}'
    kube.kubectl("-n", namespace, "apply", "-f", "-", input=peering)
    leader = OperatorProcess(
        kube, [namespace], tmp_path / "leader.log", ["--peering=modelramp", "--priority=200"]
    )
    standby = OperatorProcess(
        kube, [namespace], tmp_path / "standby.log", ["--peering=modelramp", "--priority=100"]
    )
    try:
        # kopf starts paused and resumes once its peering object shows no live peer above it.
        leader.start()
        wait_for("the leader to act", lambda: "Resuming operations" in leader.log_tail(200), timeout=30)
        standby.start()
        time.sleep(3)
        assert "Resuming operations" not in standby.log_tail(200), "the standby resumed beside the leader"
        body = canary_md([{"setWeight": 50}], replicas=2)
        mds.apply(body)
        healthy(mds)
        assert reconciles(leader) > 0
        assert reconciles(standby) == 0, "the standby replica acted while the leader was alive"

        leader.stop()  # a clean exit leaves the peering at once; a crash would after its lifetime
        mds.apply(with_model(body, V2))
        healthy(mds, uri=V2)
        assert reconciles(standby) > 0
    finally:
        stop_replicas(mds, leader, standby)
