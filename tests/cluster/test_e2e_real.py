"""`make e2e-real`: the whole data plane for real, on the local cluster's node-real-1.

The operator runs in-cluster from its image, installed by the chart (make chart-install); the model
servers are pods of the serving image loading the example TorchScript scorers from a hostPath
PersistentVolume (manifests/e2e); Prometheus (Debian's) finds the pods with Kubernetes service
discovery and the chart's scrape job (charts/modelramp/files/model-servers-scrape.yaml); a client on
the node sends requests through the ModelDeployment's ClusterIP Service, so kube-proxy splits them
by ready pods. A retrained model is promoted and a model answering 5xx is rolled back, each on
Prometheus's data; the measured share per track is printed against the published weight.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from support.cluster import KUBECONFIG, Kube
from support.prometheus import PrometheusServer
from support.traffic import ServiceTraffic

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.realnode,
    pytest.mark.dataplane,
    pytest.mark.e2e,
    pytest.mark.prometheus,
    pytest.mark.timeout(1500),
]

REPO = Path(__file__).resolve().parents[2]
E2E = REPO / "manifests" / "e2e"
SERVING_IMAGE = "localhost/modelramp-serving:dev"
# The node's address on its bridge: pods reach the host there, and only pods do.
NODE_IP = "10.244.0.1"
OPERATOR_NAMESPACE = "modelramp-system"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture
def models(kube: Kube, namespace: str) -> Iterator[str]:
    """The example scorers on a models volume of this namespace; yields the claim's name."""
    pv, pvc = _docs(E2E / "volume.yaml")
    pv["metadata"]["name"] = pvc["spec"]["volumeName"] = f"{namespace}-models"
    (job,) = _docs(E2E / "models-job.yaml")
    job["spec"]["template"]["spec"]["containers"][0]["image"] = SERVING_IMAGE
    kube.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all([pv, pvc, job]))
    complete = ["wait", "--for=condition=Complete", f"job/{job['metadata']['name']}", "--timeout=300s"]
    kube.kubectl("-n", namespace, *complete, timeout=310)
    yield pvc["metadata"]["name"]
    kube.kubectl("delete", "pv", pv["metadata"]["name"], "--wait=false", check=False)


@pytest.fixture
def prometheus(namespace: str, tmp_path: Path) -> Iterator[PrometheusServer]:
    job: dict[str, Any] = yaml.safe_load(
        (REPO / "charts/modelramp/files/model-servers-scrape.yaml").read_text()
    )
    job["scrape_interval"] = "2s"
    for sd in job["kubernetes_sd_configs"]:
        sd |= {"kubeconfig_file": str(KUBECONFIG), "namespaces": {"names": [namespace]}}
    with PrometheusServer(tmp_path / "prometheus", targets=[], host=NODE_IP, scrape_configs=[job]) as server:
        yield server


def _md(name: str, claim: str, prometheus_url: str) -> dict[str, Any]:
    """manifests/e2e/scorer.yaml, with analyses on the error rate between the steps."""
    (body,) = _docs(E2E / "scorer.yaml")
    body = copy.deepcopy(body)
    body["metadata"] = {"name": name}
    spec = body["spec"]
    spec["serving"]["image"] = SERVING_IMAGE
    spec["serving"]["nodeSelector"] = {"modelramp.dev/node": "real"}
    spec["serving"]["podTemplate"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = claim
    spec["strategy"]["canary"]["steps"] = [
        {"setWeight": 25},
        {"analysis": {}},
        {"setWeight": 50},
        {"analysis": {}},
    ]
    spec["analysis"] = {
        "prometheus": {"address": prometheus_url},
        "interval": "10s",
        "count": 3,
        "metrics": [{"name": "errors", "builtin": "error-rate", "threshold": 0.05, "minSamples": 20}],
    }
    return body


class Rollouts:
    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.api = kubernetes.client.CustomObjectsApi(kube.api_client)

    def apply(self, body: dict[str, Any]) -> None:
        self.kube.kubectl("-n", self.namespace, "apply", "-f", "-", input=yaml.safe_dump(body))

    def status(self, name: str) -> dict[str, Any]:
        obj = self.api.get_namespaced_custom_object(
            "modelramp.dev", "v1alpha1", self.namespace, "modeldeployments", name
        )
        status: dict[str, Any] = obj.get("status", {})
        return status

    def wait(self, name: str, phases: set[str], timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status(name)
            if status.get("phase") in phases:
                return status
            time.sleep(1)
        raise AssertionError(f"{name} never reached {phases}: {status}")


def _report(name: str, traffic: ServiceTraffic, stable: str, canary: str) -> dict[int, float]:
    """Prints, per published weight, the measured canary share of the answers; returns it."""
    by_weight: dict[int, Counter[str]] = {}
    for (weight, version, code), count in traffic.answers.items():
        track = "canary" if version == canary else "stable" if version == stable else f"error {code}"
        by_weight.setdefault(weight, Counter())[track] += count
    shares = {}
    print(f"\n{name}: traffic through the Service, per published canary weight")
    for weight, tracks in sorted(by_weight.items()):
        answered = tracks["stable"] + tracks["canary"]
        shares[weight] = tracks["canary"] / answered if answered else 0.0
        print(
            f"  weight {weight:3d}%: {sum(tracks.values()):5d} requests, canary share "
            f"{100 * shares[weight]:5.1f}% of {answered} answered ({dict(tracks)})"
        )
    return shares


def _roll(
    rollouts: Rollouts, kube: Kube, name: str, *, claim: str, prometheus: PrometheusServer, new_model: str
) -> tuple[dict[str, Any], dict[int, float]]:
    body = _md(name, claim, f"http://{NODE_IP}:{prometheus.port}")
    rollouts.apply(body)
    first = rollouts.wait(name, {"Healthy"})
    service = kubernetes.client.CoreV1Api(kube.api_client).read_namespaced_service(name, rollouts.namespace)
    traffic = ServiceTraffic(
        f"http://{service.spec.cluster_ip}",
        name,
        weight=lambda: int(rollouts.status(name).get("canaryWeight", 0)),
    )
    traffic.start()
    try:
        body["spec"]["model"]["uri"] = f"file:///models/scorer-{new_model}.pt"
        rollouts.apply(body)
        rollouts.wait(name, {"Progressing"}, timeout=60)
        canary = rollouts.wait(name, {"Progressing"}).get("canaryRevision", "")
        end = rollouts.wait(name, {"Healthy", "Degraded", "RolledBack", "Failed"}, timeout=900)
    finally:
        traffic.stop()
    return end, _report(name, traffic, first["stableRevision"], canary)


@pytest.fixture
def rollouts(kube: Kube, namespace: str) -> Rollouts:
    deployments = kubernetes.client.AppsV1Api(kube.api_client)
    operator = deployments.list_namespaced_deployment(OPERATOR_NAMESPACE).items
    assert operator and operator[0].status.ready_replicas, "install the operator first: make e2e-real"
    return Rollouts(kube, namespace)


def test_retrained_model_is_promoted_through_the_service(
    rollouts: Rollouts, kube: Kube, models: str, prometheus: PrometheusServer
) -> None:
    end, shares = _roll(
        rollouts, kube, "scorer-good", claim=models, prometheus=prometheus, new_model="drifted"
    )
    assert end["phase"] == "Healthy" and end["stableModel"]["uri"] == "file:///models/scorer-drifted.pt", end
    # Both tracks answered while the canary held traffic: kube-proxy really split it.
    assert 0 < shares.get(25, 0.0) < 1 and 0 < shares.get(50, 0.0) < 1, shares


def test_model_answering_5xx_is_rolled_back_through_the_service(
    rollouts: Rollouts, kube: Kube, models: str, prometheus: PrometheusServer
) -> None:
    end, _ = _roll(rollouts, kube, "scorer-bug", claim=models, prometheus=prometheus, new_model="buggy")
    assert end["phase"] == "RolledBack" and end["stableModel"]["uri"] == "file:///models/scorer-good.pt", end
    runs = end.get("analysisRuns", [])
    assert any(run.get("phase") == "Failed" for run in runs), runs
