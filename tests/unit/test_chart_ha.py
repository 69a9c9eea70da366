"""charts/modelramp with several operator replicas: kopf peering keeps all but one standing by, and
only while the replicas' peering priorities differ (kopf pauses every replica that shares one), so
the chart passes `--peering` and never a fixed `--priority`; each process draws its own.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.chart import by_kind, one, render


def operator_args(values: dict[str, Any]) -> list[str]:
    [container] = one(render(values), "Deployment")["spec"]["template"]["spec"]["containers"]
    args: list[str] = container["args"]
    return args


@pytest.mark.parametrize("replicas", [1, 2, 3])
@pytest.mark.parametrize("namespaces", [[], ["ml-a", "ml-b"]], ids=["cluster-wide", "namespaced"])
def test_every_replica_count_peers_without_a_shared_priority(replicas: int, namespaces: list[str]) -> None:
    values = {"replicaCount": replicas, "watch": {"namespaces": namespaces}, "peering": {"name": "ramp"}}
    objects = render(values)
    assert one(objects, "Deployment")["spec"]["replicas"] == replicas
    args = operator_args(values)
    assert [a for a in args if a.startswith("--peering")] == ["--peering=ramp"]
    assert not [a for a in args if a.startswith("--priority")], args
    [container] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "MODELRAMP_PRIORITY" not in {e["name"] for e in container["env"]}
    # The peering object the replicas meet in exists wherever they watch.
    peerings = by_kind(objects, "KopfPeering" if namespaces else "ClusterKopfPeering")
    assert [p["metadata"]["name"] for p in peerings] == ["ramp"] * max(1, len(namespaces))


@pytest.mark.parametrize(
    "values",
    [
        {"extraArgs": ["--priority=100"]},
        {"extraArgs": ["--priority", "100"]},
        {"extraEnv": [{"name": "MODELRAMP_PRIORITY", "value": "100"}]},
    ],
    ids=["flag", "flag-apart", "env"],
)
def test_a_fixed_priority_is_refused_naming_the_value(values: dict[str, Any]) -> None:
    with pytest.raises(AssertionError) as refused:
        render({"replicaCount": 2, **values})
    field = next(iter(values))
    assert f"{field}:" in str(refused.value) and "same kopf peering priority" in str(refused.value)


def test_other_extra_args_still_pass() -> None:
    assert operator_args({"replicaCount": 2, "extraArgs": ["--workers=8"]})[-1] == "--workers=8"
