"""`make e2e-real`: the whole data plane for real, on the local cluster's node-real-1.

The operator runs in-cluster from its image, installed by the chart (make chart-install); the model
servers are pods of the serving image loading the example TorchScript scorers from a hostPath
PersistentVolume (manifests/e2e); Prometheus (built from its Go module with Kubernetes discovery)
finds the pods with the chart's scrape job (charts/modelramp/files/model-servers-scrape.yaml).

A client on the node sends requests two ways. Through the ModelDeployment's ClusterIP Service
(replica ratio), kube-proxy splits them by ready pods: a retrained model is promoted and a model
answering 5xx is rolled back, each on Prometheus's data. Through Traefik's Gateway API provider
(tests/support/gateway.py), the split is the weights the operator writes into the HTTPRoute: at each
paused step the client sends at least 1,000 requests and the canary's share must be within 5
points of the weight. Each measured share is printed against the published weight.

Through the same gateway, the two things no router does for us (docs/abtest.md, docs/analysis.md):
an A/B test's sticky assignment, made by the model servers, puts every one of 1,000 keyed requests
on its user's variant, before and after a pod of each variant is replaced; and a shadow step's tee
copies its `percent` of stable's requests to the canary, within 5 points over 1,000 requests.
"""

from __future__ import annotations

import copy
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support.abtest import documented_variant
from support.cluster import KUBECONFIG, Kube
from support.gateway import TraefikGateway
from support.operator import MODELRAMP
from support.prometheus import PrometheusServer, pod_discovery_job
from support.traffic import ServiceTraffic, infer_body

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
# The node's address on its bridge: pods reach the host there, and only pods and the node do.
NODE_IP = "10.244.0.1"
OPERATOR_NAMESPACE = "modelramp-system"
GATEWAY_REQUESTS = 1000
# The goal for the gateway. Traefik's weighted round robin is deterministic (earliest
# deadline first): over n requests each backend's count is within one request of its weight's
# share, so 5 points over 1,000 requests only leaves room for the measurement window's edges. A
# random pick would be a binomial count, sd <= 1.6 points at n = 1,000: 5 points is 3.2 sd.
GATEWAY_TOLERANCE = 5.0


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
    """Prometheus on the node's bridge address (the operator's pod queries it there), finding the
    namespace's pods with the chart's scrape job."""
    job = pod_discovery_job(KUBECONFIG, namespace)
    with PrometheusServer(tmp_path / "prometheus", targets=[], host=NODE_IP, scrape_configs=[job]) as server:
        yield server


@pytest.fixture
def gateway(kube: Kube, namespace: str, tmp_path: Path) -> Iterator[TraefikGateway]:
    """Traefik serving the namespace's Gateway `web` on the node's bridge address."""
    with TraefikGateway(tmp_path / "traefik", KUBECONFIG, namespace, host=NODE_IP) as traefik:
        objects = traefik.objects("web")
        kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
        try:
            kube.kubectl(
                "-n",
                namespace,
                "wait",
                "--for=condition=Programmed",
                "gateway/web",
                "--timeout=60s",
                timeout=70,
            )
            yield traefik
        finally:
            kube.kubectl("delete", "gatewayclass", traefik.gateway_class, "--wait=false", check=False)


def _md(name: str, claim: str, prometheus_url: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """manifests/e2e/scorer.yaml with these steps and analyses on the error rate."""
    (body,) = _docs(E2E / "scorer.yaml")
    body = copy.deepcopy(body)
    body["metadata"] = {"name": name}
    spec = body["spec"]
    spec["serving"]["image"] = SERVING_IMAGE
    spec["serving"]["nodeSelector"] = {"modelramp.dev/node": "real"}
    spec["serving"]["podTemplate"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = claim
    spec["strategy"]["canary"]["steps"] = steps
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
        self.apps = kubernetes.client.AppsV1Api(kube.api_client)

    def apply(self, body: dict[str, Any]) -> None:
        self.kube.kubectl("-n", self.namespace, "apply", "-f", "-", input=yaml.safe_dump(body))

    def status(self, name: str) -> dict[str, Any]:
        obj = self.api.get_namespaced_custom_object(
            "modelramp.dev", "v1alpha1", self.namespace, "modeldeployments", name
        )
        status: dict[str, Any] = obj.get("status", {})
        return status

    def wait_for(
        self, name: str, done: Callable[[dict[str, Any]], bool], what: str, timeout: float = 600
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status(name)
            if done(status):
                return status
            time.sleep(1)
        raise AssertionError(f"{name} never {what}: {status}")

    def wait(self, name: str, phases: set[str], timeout: float = 600) -> dict[str, Any]:
        return self.wait_for(name, lambda s: s.get("phase") in phases, f"reached {phases}", timeout)

    def ready_pods(self, name: str) -> tuple[int, int]:
        """(canary, stable) ready pods."""
        ready = []
        for track in ("canary", "stable"):
            try:
                deployment = self.apps.read_namespaced_deployment(f"{name}-{track}", self.namespace)
                ready.append(deployment.status.ready_replicas or 0)
            except kubernetes.client.ApiException:
                ready.append(0)
        return ready[0], ready[1]

    def promote(self, name: str) -> None:
        """`modelramp promote`, as a user ends a pause."""
        subprocess.run(
            [str(MODELRAMP), "promote", name, "-n", self.namespace],
            check=True,
            capture_output=True,
            env={**os.environ, "KUBECONFIG": str(KUBECONFIG), "PYTHONSAFEPATH": "1"},
            timeout=60,
        )


@pytest.fixture
def rollouts(kube: Kube, namespace: str) -> Iterator[Rollouts]:
    deployments = kubernetes.client.AppsV1Api(kube.api_client)
    operator = deployments.list_namespaced_deployment(OPERATOR_NAMESPACE).items
    assert operator and operator[0].status.ready_replicas, "install the operator first: make e2e-real"
    yield Rollouts(kube, namespace)
    # While the operator still runs to remove its finalizer: make e2e-real uninstalls it next, and
    # the namespace would never finish terminating.
    delete = ["delete", "modeldeployments", "--all", "--wait", "--timeout=120s"]
    kube.kubectl("-n", namespace, *delete, timeout=130, check=False)


def _tracks(
    answers: Counter[tuple[Hashable, str, int]], stable: str, canary: str
) -> dict[Hashable, Counter[str]]:
    """Per label, how many requests each track answered (and how many failed, by status)."""
    by_label: dict[Hashable, Counter[str]] = {}
    for (label, version, code), count in answers.items():
        track = "canary" if version == canary else "stable" if version == stable else f"error {code}"
        by_label.setdefault(label, Counter())[track] += count
    return by_label


def _share(tracks: Counter[str]) -> float:
    answered = tracks["stable"] + tracks["canary"]
    return tracks["canary"] / answered if answered else 0.0


# --- through the ClusterIP Service: replica ratio ------------------------------------------------


def _roll_through_service(
    rollouts: Rollouts, kube: Kube, name: str, *, claim: str, prometheus: PrometheusServer, new_model: str
) -> tuple[dict[str, Any], dict[int, float]]:
    steps = [{"setWeight": 25}, {"analysis": {}}, {"setWeight": 50}, {"analysis": {}}]
    body = _md(name, claim, f"http://{NODE_IP}:{prometheus.port}", steps)
    rollouts.apply(body)
    first = rollouts.wait(name, {"Healthy"})
    service = kubernetes.client.CoreV1Api(kube.api_client).read_namespaced_service(name, rollouts.namespace)

    def label() -> tuple[int, int, int]:
        return (int(rollouts.status(name).get("canaryWeight", 0)), *rollouts.ready_pods(name))

    traffic = ServiceTraffic(f"http://{service.spec.cluster_ip}", name, label=label)
    traffic.start()
    try:
        body["spec"]["model"]["uri"] = f"file:///models/scorer-{new_model}.pt"
        rollouts.apply(body)
        canary = rollouts.wait(name, {"Progressing"}, timeout=60).get("canaryRevision", "")
        end = rollouts.wait(name, {"Healthy", "Degraded", "RolledBack", "Failed"}, timeout=900)
    finally:
        traffic.stop()
    print(f"\n{name}: through the Service (kube-proxy), per published weight and ready pods")
    shares: dict[int, Counter[str]] = {}
    for key, tracks in sorted(_tracks(traffic.snapshot(), first["stableRevision"], canary).items()):
        weight, canary_pods, stable_pods = key  # type: ignore[misc]
        pods = canary_pods + stable_pods
        pod_share = 100 * canary_pods / max(pods, 1)
        print(
            f"  weight {weight:3d}%, canary pods {canary_pods}/{pods} ({pod_share:5.1f}%): "
            f"canary share {100 * _share(tracks):5.1f}% of {tracks['stable'] + tracks['canary']} answered "
            f"({dict(tracks)})"
        )
        shares.setdefault(weight, Counter()).update(tracks)
    return end, {weight: _share(tracks) for weight, tracks in shares.items()}


def test_retrained_model_is_promoted_through_the_service(
    rollouts: Rollouts, kube: Kube, models: str, prometheus: PrometheusServer
) -> None:
    end, shares = _roll_through_service(
        rollouts, kube, "scorer-good", claim=models, prometheus=prometheus, new_model="drifted"
    )
    assert end["phase"] == "Healthy" and end["stableModel"]["uri"] == "file:///models/scorer-drifted.pt", end
    # Both tracks answered while the canary held traffic: kube-proxy really split it.
    assert 0 < shares.get(25, 0.0) < 1 and 0 < shares.get(50, 0.0) < 1, shares
    # The metrics contract on the real path: every scraped pod of the namespace carries its
    # ModelDeployment and track from its labels, and the analyses' counter has both tracks.
    pods = kubernetes.client.CoreV1Api(kube.api_client).list_namespaced_pod(rollouts.namespace).items
    owners = {
        pod.metadata.name: (
            pod.metadata.labels["modelramp.dev/name"],
            pod.metadata.labels["modelramp.dev/track"],
        )
        for pod in pods
        if "modelramp.dev/name" in (pod.metadata.labels or {})
    }
    up = prometheus.query(f'up{{job="modelramp-model-servers", namespace="{rollouts.namespace}"}}')
    assert {sample["metric"]["pod"] for sample in up} & set(owners), (up, owners, prometheus.log_tail())
    for sample in up:
        labels = sample["metric"]
        assert labels["pod"] not in owners or owners[labels["pod"]] == (
            labels["modeldeployment"],
            labels["track"],
        )
    requests = prometheus.query(
        f'sum by (modeldeployment, track) (modelramp_requests_total{{namespace="{rollouts.namespace}"}})'
    )
    assert {(s["metric"]["modeldeployment"], s["metric"]["track"]) for s in requests} == {
        ("scorer-good", "stable"),
        ("scorer-good", "canary"),
    }, requests


def test_model_answering_5xx_is_rolled_back_through_the_service(
    rollouts: Rollouts, kube: Kube, models: str, prometheus: PrometheusServer
) -> None:
    end, _ = _roll_through_service(
        rollouts, kube, "scorer-bug", claim=models, prometheus=prometheus, new_model="buggy"
    )
    assert end["phase"] == "RolledBack" and end["stableModel"]["uri"] == "file:///models/scorer-good.pt", end
    runs = end.get("analysisRuns", [])
    assert any(run.get("phase") == "Failed" for run in runs), runs


# --- through the gateway: Gateway API weights ------------------------------------------------------


def _route(name: str) -> dict[str, Any]:
    """The user's HTTPRoute: everything the gateway takes, to stable; the operator owns the weights."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "web"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": f"{name}-stable", "port": 80}],
                }
            ],
        },
    }


def _route_weights(kube: Kube, namespace: str, name: str) -> dict[str, int]:
    route = kubernetes.client.CustomObjectsApi(kube.api_client).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", name
    )
    return {ref["name"]: ref.get("weight", 1) for ref in route["spec"]["rules"][0]["backendRefs"]}


def _healthy_behind_the_gateway(
    rollouts: Rollouts,
    kube: Kube,
    name: str,
    steps: list[dict[str, Any]],
    *,
    claim: str,
    prometheus: PrometheusServer,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The good scorer on two pods behind the user's HTTPRoute, Healthy; (its body, its status)."""
    body = _md(name, claim, f"http://{NODE_IP}:{prometheus.port}", steps)
    body["spec"]["serving"]["replicas"] = 2
    body["spec"]["trafficRouting"] = {"gatewayAPI": {"httpRoute": name}}
    kube.kubectl("-n", rollouts.namespace, "apply", "-f", "-", input=yaml.safe_dump(_route(name)))
    rollouts.apply(body)
    return body, rollouts.wait(name, {"Healthy"})


def test_retrained_model_is_promoted_through_the_gateway(
    rollouts: Rollouts, kube: Kube, models: str, prometheus: PrometheusServer, gateway: TraefikGateway
) -> None:
    name = "scorer-gw"
    # Each pause holds a weight until the client has measured it; the analysis runs at 50%.
    steps = [
        {"setWeight": 20},
        {"pause": {}},
        {"setWeight": 50},
        {"analysis": {}},
        {"pause": {}},
        {"setWeight": 80},
        {"pause": {}},
    ]
    pauses = {1: 20, 4: 50, 6: 80}
    body, first = _healthy_behind_the_gateway(
        rollouts, kube, name, steps, claim=models, prometheus=prometheus
    )
    # The label is the weight being measured, or None between measurements.
    measuring: list[int | None] = [None]
    traffic = ServiceTraffic(
        f"{gateway.url}", name, label=lambda: measuring[0], rate=50.0, new_connections=False
    )
    traffic.start()
    try:
        body["spec"]["model"]["uri"] = "file:///models/scorer-drifted.pt"
        rollouts.apply(body)
        canary = rollouts.wait(name, {"Progressing"}, timeout=60).get("canaryRevision", "")
        for step, weight in pauses.items():
            rollouts.wait_for(
                name,
                lambda s, step=step: s.get("currentStepIndex") == step and bool(s.get("pauseConditions")),
                f"paused at step {step}",
            )
            assert _route_weights(kube, rollouts.namespace, name) == {
                f"{name}-stable": 100 - weight,
                f"{name}-canary": weight,
            }
            gateway.wait_for_route(kube.api_client, name)
            measuring[0] = weight
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                tracks = _tracks(traffic.snapshot(), first["stableRevision"], canary).get(weight, Counter())
                if tracks["stable"] + tracks["canary"] >= GATEWAY_REQUESTS:
                    break
                time.sleep(0.5)
            measuring[0] = None
            rollouts.promote(name)
        end = rollouts.wait(name, {"Healthy", "Degraded", "RolledBack", "Failed"}, timeout=600)
    finally:
        traffic.stop()
    by_weight = _tracks(traffic.snapshot(), first["stableRevision"], canary)
    print(f"\n{name}: through the gateway (Traefik, HTTPRoute weights), per paused step")
    for weight in pauses.values():
        tracks = by_weight.get(weight, Counter())
        print(
            f"  weight {weight:3d}%: canary share {100 * _share(tracks):5.1f}% of "
            f"{tracks['stable'] + tracks['canary']} answered ({dict(tracks)})"
        )
    assert end["phase"] == "Healthy" and end["stableModel"]["uri"] == "file:///models/scorer-drifted.pt", end
    for weight in pauses.values():
        tracks = by_weight.get(weight, Counter())
        assert tracks["stable"] + tracks["canary"] >= GATEWAY_REQUESTS, (weight, tracks, gateway.log_tail())
        assert abs(100 * _share(tracks) - weight) <= GATEWAY_TOLERANCE, (weight, tracks)


# --- through the gateway: an A/B test's sticky users, a shadow step's copies --------------------------

USERS = 100
AB_REQUESTS = 1000
# A user's variant, as docs/abtest.md defines it (computed here, not by the server's code).
AB_WEIGHTS = {"control": 50, "candidate": 50}


def _documented_variant(salt: str, user: str) -> str:
    return documented_variant(salt, user, AB_WEIGHTS)


def _keyed_requests(url: str, name: str, requests: int) -> list[tuple[str, int, str, str]]:
    """`requests` OIP v2 requests, users in turn by x-user-id, over one kept-alive connection:
    (user, status, modelramp-variant, answering revision) each."""
    rng = np.random.default_rng(17)
    answers = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for index in range(requests):
            user = f"user-{index % USERS}"
            try:
                response = client.post(
                    f"/v2/models/{name}/infer", json=infer_body(rng), headers={"x-user-id": user}
                )
            except httpx.HTTPError:
                answers.append((user, 0, "", ""))
                continue
            version = response.json().get("model_version", "") if response.status_code == 200 else ""
            answers.append(
                (user, response.status_code, response.headers.get("modelramp-variant", ""), version)
            )
    return answers


def _replace_one_pod_per_track(kube: Kube, rollouts: Rollouts, name: str) -> None:
    core = kubernetes.client.CoreV1Api(kube.api_client)
    old = set()
    for track in ("stable", "canary"):
        pods = core.list_namespaced_pod(
            rollouts.namespace, label_selector=f"modelramp.dev/name={name},modelramp.dev/track={track}"
        ).items
        old.add(pods[0].metadata.name)
        core.delete_namespaced_pod(pods[0].metadata.name, rollouts.namespace, grace_period_seconds=5)

    def replaced() -> bool:
        names = {pod.metadata.name for pod in core.list_namespaced_pod(rollouts.namespace).items}
        deployments = [
            rollouts.apps.read_namespaced_deployment(f"{name}-{track}", rollouts.namespace)
            for track in ("stable", "canary")
        ]
        return not names & old and all(d.status.ready_replicas == d.spec.replicas for d in deployments)

    rollouts.wait_for(name, lambda _: replaced(), "replaced a pod of each track", timeout=180)


def test_ab_users_stay_on_their_variant_through_the_gateway(
    rollouts: Rollouts, kube: Kube, models: str, prometheus: PrometheusServer, gateway: TraefikGateway
) -> None:
    name = "scorer-ab"
    body, first = _healthy_behind_the_gateway(
        rollouts, kube, name, [{"setWeight": 50}], claim=models, prometheus=prometheus
    )
    body["spec"]["model"]["uri"] = "file:///models/scorer-drifted.pt"
    # Undecided for the whole test: the assignment is what is measured, not the decision.
    body["spec"]["strategy"] = {
        "abTest": {
            "assignment": {"header": "x-user-id"},
            "variants": [{"name": variant, "weight": weight} for variant, weight in AB_WEIGHTS.items()],
            "metric": {"builtin": "error-rate"},
            "duration": "30m",
            "interval": "10s",
            "minSamples": 1_000_000,
        }
    }
    rollouts.apply(body)
    status = rollouts.wait_for(
        name, lambda s: s.get("abTest", {}).get("phase") == "Running", "started its A/B test", timeout=300
    )
    revisions = {"control": first["stableRevision"], "candidate": status["abTest"]["revision"]}
    salt = status["abTest"]["salt"]
    # kubelet brings the table to the pods' mounted ConfigMap within about a minute: until then a
    # pod serves what reaches it, without a variant.
    deadline = time.monotonic() + 180
    while not all(variant for _, _, variant, _ in _keyed_requests(gateway.url, name, 50)):
        assert time.monotonic() < deadline, "the pods never all followed the assignment table"
        time.sleep(2)
    answers = _keyed_requests(gateway.url, name, AB_REQUESTS // 2)
    # Across restarts: a new pod of each variant reads the same table and puts each user where the
    # old pods did.
    _replace_one_pod_per_track(kube, rollouts, name)
    gateway.wait_for_route(kube.api_client, name)
    answers += _keyed_requests(gateway.url, name, AB_REQUESTS // 2)

    served = [answer for answer in answers if answer[1] == 200]
    seen: dict[str, set[tuple[str, str]]] = {}
    for user, _, variant, version in served:
        seen.setdefault(user, set()).add((variant, version))
    sticky = sum(
        1
        for user, _, variant, version in served
        if seen[user] == {(_documented_variant(salt, user), revisions[_documented_variant(salt, user)])}
    )
    users = Counter(_documented_variant(salt, user) for user in seen)
    print(
        f"\n{name}: A/B through the gateway (Traefik), {len(served)} of {len(answers)} answered, "
        f"{len(seen)} users ({dict(users)}); on their documented variant and its revision: "
        f"{100 * sticky / max(len(served), 1):.1f}%"
    )
    assert len(served) >= 0.99 * AB_REQUESTS, Counter(code for _, code, _, _ in answers)
    assert len(seen) == USERS
    assert sticky == len(served), {user: pairs for user, pairs in seen.items() if len(pairs) > 1}


SHADOW_PERCENT = 50
SHADOW_REQUESTS = 1000
# Each request is copied with probability 1/2: the copied count is binomial, sd 1.6 points at
# 1,000 requests, so 5 points is 3.2 sd (a false failure about once in 700 runs).
SHADOW_TOLERANCE = 5.0


def _track_counters(kube: Kube, namespace: str, name: str, track: str) -> Counter[str]:
    """Each counter's samples summed over the track's pods, read from their own /metrics."""
    totals: Counter[str] = Counter()
    pods = kubernetes.client.CoreV1Api(kube.api_client).list_namespaced_pod(
        namespace, label_selector=f"modelramp.dev/name={name},modelramp.dev/track={track}"
    )
    for pod in pods.items:
        if not pod.status.pod_ip or pod.metadata.deletion_timestamp:
            continue
        (port,) = [p.container_port for c in pod.spec.containers for p in c.ports or [] if p.name == "http"]
        text = httpx.get(f"http://{pod.status.pod_ip}:{port}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "modelramp_requests_total" and sample.labels.get("code") != "200":
                    continue
                totals[sample.name] += sample.value
    return totals


def test_shadow_copies_its_share_through_the_gateway(
    rollouts: Rollouts, kube: Kube, models: str, prometheus: PrometheusServer, gateway: TraefikGateway
) -> None:
    name = "scorer-shadow"
    # minSamples keeps the shadow mirroring until the share is measured; then it passes.
    shadow = {
        "percent": SHADOW_PERCENT,
        "duration": "10m",
        "analysis": {
            "metrics": [{"name": "errors", "builtin": "error-rate", "threshold": 0.05, "minSamples": 1500}]
        },
    }
    body, _ = _healthy_behind_the_gateway(
        rollouts, kube, name, [{"shadow": shadow}], claim=models, prometheus=prometheus
    )
    body["spec"]["analysis"]["count"] = 30
    measuring = [False]
    traffic = ServiceTraffic(gateway.url, name, label=lambda: measuring[0], rate=50.0, new_connections=False)
    traffic.start()
    try:
        body["spec"]["model"]["uri"] = "file:///models/scorer-drifted.pt"
        rollouts.apply(body)
        rollouts.wait(name, {"Progressing"}, timeout=60)
        namespace = rollouts.namespace

        def copying() -> bool:
            gauges = _track_counters(kube, namespace, name, "stable")
            return rollouts.ready_pods(name)[1] == 2 and gauges["modelramp_shadow_active"] == 2

        # kubelet brings the ConfigMap naming the canary to stable's pods within about a minute.
        rollouts.wait_for(name, lambda _: copying(), "copied on both stable pods", timeout=180)
        before = (
            _track_counters(kube, namespace, name, "stable"),
            _track_counters(kube, namespace, name, "canary"),
        )
        measuring[0] = True
        rollouts.wait_for(
            name,
            lambda _: sum(n for (label, _, _), n in traffic.snapshot().items() if label) >= SHADOW_REQUESTS,
            f"{SHADOW_REQUESTS} requests through the gateway",
            timeout=120,
        )
        measuring[0] = False
        time.sleep(2)  # the copies still queued reach the canary
        after = (
            _track_counters(kube, namespace, name, "stable"),
            _track_counters(kube, namespace, name, "canary"),
        )
        end = rollouts.wait(name, {"Healthy", "Degraded", "RolledBack", "Failed"}, timeout=600)
    finally:
        traffic.stop()
    answered = after[0]["modelramp_requests_total"] - before[0]["modelramp_requests_total"]
    copied = after[1]["modelramp_mirrored_requests_total"] - before[1]["modelramp_mirrored_requests_total"]
    dropped = after[0]["modelramp_shadow_dropped_total"] - before[0]["modelramp_shadow_dropped_total"]
    canary_real = after[1]["modelramp_requests_total"] - before[1]["modelramp_requests_total"]
    print(
        f"\n{name}: shadow {SHADOW_PERCENT}% through the gateway (Traefik): stable answered {answered:.0f}, "
        f"the canary got {copied:.0f} copies ({100 * copied / max(answered, 1):.1f}%), "
        f"{dropped:.0f} dropped, {canary_real:.0f} real requests"
    )
    assert answered >= SHADOW_REQUESTS
    assert abs(100 * copied / answered - SHADOW_PERCENT) <= SHADOW_TOLERANCE, (answered, copied, dropped)
    # No client saw the canary: its real-traffic counter stayed where it was.
    assert dropped == 0 and canary_real == 0
    assert end["phase"] == "Healthy" and end["stableModel"]["uri"] == "file:///models/scorer-drifted.pt", end
