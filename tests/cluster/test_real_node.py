"""The local cluster's real node (hack/node.sh): a kubelet and kube-proxy of the control plane's
version running real containers (containerd, runc) on a local bridge, beside the kwok fakes.

The pods run the Debian base image built here (hack/images.sh) with Python's http.server; the
client is this process on the node, going through the ClusterIP Service (kube-proxy's iptables
rules), so the split between two Deployments behind one Service is real packet routing, and
through Traefik's Gateway API provider, which splits by an HTTPRoute's weights. Prometheus finds
the same pods with the chart's scrape job (Kubernetes pod discovery). The serving and operator
images, and the operator writing the weights, are `make e2e-real`'s (tests/cluster/test_e2e_real.py).
"""

from __future__ import annotations

import math
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import yaml
from support.cluster import Kube
from support.gateway import TraefikGateway
from support.prometheus import PrometheusServer, pod_discovery_job

pytestmark = [pytest.mark.cluster, pytest.mark.realnode, pytest.mark.timeout(300)]

NODE = "node-real-1"
BASE_IMAGE = "localhost/modelramp-base:bookworm"
BRIDGE = "modelramp0"
# The node's address on its bridge, where its own processes (the gateway) listen for clients.
NODE_IP = "10.244.0.1"
GATEWAY_REQUESTS = 1000


def _server(name: str, replicas: int) -> dict[str, Any]:
    """A Deployment whose pods answer every GET with their Deployment's name, and /metrics with a
    request counter; labelled as the operator labels a ModelDeployment's pods (`split`, track
    `name`)."""
    script = (
        "import http.server, os\n"
        "served = 0\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        global served\n"
        "        if self.path == '/metrics':\n"
        "            body = f'modelramp_requests_total{{code=\"200\"}} {served}\\n'.encode()\n"
        "            kind = 'text/plain; version=0.0.4'\n"
        "        else:\n"
        "            served += 1; body = os.environ['TRACK'].encode(); kind = 'text/plain'\n"
        "        self.send_response(200); self.send_header('Content-Type', kind)\n"
        "        self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *args): pass\n"
        "http.server.ThreadingHTTPServer(('', 8080), H).serve_forever()\n"
    )
    labels = {"app": "split", "track": name, "modelramp.dev/name": "split", "modelramp.dev/track": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "split", "track": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"modelramp.dev/node": "real"},
                    "tolerations": [
                        {"key": "modelramp.dev/node", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                    "containers": [
                        {
                            "name": "http",
                            "image": BASE_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["python3", "-c", script],
                            "env": [{"name": "TRACK", "value": name}],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                            "securityContext": {
                                "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def _service(name: str = "split", **selector: str) -> dict[str, Any]:
    """A Service in front of the `split` pods (of one track, when `selector` names it)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": "split", **selector}, "ports": [{"port": 80, "targetPort": "http"}]},
    }


def _deploy(kube: Kube, namespace: str, docs: list[dict[str, Any]]) -> None:
    kube.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(docs))
    for doc in docs:
        if doc["kind"] == "Deployment":
            status = ["rollout", "status", f"deployment/{doc['metadata']['name']}", "--timeout=120s"]
            kube.kubectl("-n", namespace, *status, timeout=130)


def test_node_is_real_labelled_tainted_and_not_kwoks(kube: Kube) -> None:
    node = kubernetes.client.CoreV1Api(kube.api_client).read_node(NODE)
    info = node.status.node_info
    server = kubernetes.client.VersionApi(kube.api_client).get_code().git_version
    assert info.kubelet_version == server and info.kube_proxy_version in ("", server)
    assert info.container_runtime_version.startswith("containerd://")
    assert node.metadata.labels["modelramp.dev/node"] == "real"
    assert [(t.key, t.effect) for t in node.spec.taints or []] == [("modelramp.dev/node", "NoSchedule")]
    # kwok manages only nodes annotated kwok.x-k8s.io/node=fake (hack/cluster/kwokctl.yaml).
    assert "kwok.x-k8s.io/node" not in (node.metadata.annotations or {})
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert ready.status == "True" and ready.reason == "KubeletReady"


def test_service_splits_traffic_by_ready_pods_through_kube_proxy(kube: Kube, namespace: str) -> None:
    stable, canary = 3, 1
    _deploy(kube, namespace, [_server("stable", stable), _server("canary", canary), _service()])
    pods = kubernetes.client.CoreV1Api(kube.api_client).list_namespaced_pod(namespace).items
    assert {pod.spec.node_name for pod in pods} == {NODE}
    assert all(pod.status.pod_ip.startswith("10.244.0.") for pod in pods)
    cluster_ip = (
        kubernetes.client.CoreV1Api(kube.api_client)
        .read_namespaced_service("split", namespace)
        .spec.cluster_ip
    )
    _wait_for_endpoints(kube, namespace, "split", stable + canary)

    requests = 400
    answers: Counter[str] = Counter()
    for _ in range(requests):
        # A new connection each time: kube-proxy picks the endpoint per connection.
        with urllib.request.urlopen(f"http://{cluster_ip}/", timeout=5) as response:
            answers[response.read().decode()] += 1
    share = answers["canary"] / requests
    expected = canary / (stable + canary)
    # kube-proxy's iptables rules pick each endpoint with equal probability: a binomial count.
    tolerance = 4.5 * math.sqrt(expected * (1 - expected) / requests)
    print(f"canary share {share:.3f} over {requests} requests (ready pods say {expected:.3f})")
    assert set(answers) == {"stable", "canary"}
    assert abs(share - expected) <= tolerance, answers


def _debug_pod(kube: Kube, namespace: str) -> None:
    """The pod `debug` on the node, Ready, printing a greeting and then sleeping (for exec)."""
    template = _server("debug", 1)["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug"}, "spec": template["spec"]}
    container = pod["spec"]["containers"][0]
    del container["readinessProbe"]
    container["command"] = [
        "python3",
        "-c",
        "import time; print('hello from the pod', flush=True); time.sleep(600)",
    ]
    kube.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(pod))
    kube.kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/debug", "--timeout=120s", timeout=130)


def test_kubectl_logs_and_exec_reach_the_kubelet(kube: Kube, namespace: str) -> None:
    # The API server dials the kubelet's serving certificate (signed by the cluster's CA) with its
    # kubelet client certificate; the kubelet's webhook authorization admits it.
    _debug_pod(kube, namespace)
    logs = kube.kubectl("-n", namespace, "logs", "debug").stdout
    assert "hello from the pod" in logs
    whoami = kube.kubectl("-n", namespace, "exec", "debug", "--", "id", "-u").stdout
    assert whoami.strip() == "65532"


def test_pods_find_services_by_name_and_nothing_outside_the_cluster(kube: Kube, namespace: str) -> None:
    """Cluster DNS (CoreDNS on the node, hack/node.sh): a Service's name, short or qualified, is
    its ClusterIP, as an A/B test's forwards and a shadow's copies rely on; any other name fails."""
    _deploy(kube, namespace, [_server("stable", 1), _service()])
    _wait_for_endpoints(kube, namespace, "split", 1)
    _debug_pod(kube, namespace)
    script = (
        "import socket, sys, urllib.request\n"
        "for name in sys.argv[1:-1]:\n"
        "    print(urllib.request.urlopen(f'http://{name}/', timeout=5).read().decode())\n"
        "try:\n"
        "    socket.getaddrinfo(sys.argv[-1], 80)\n"
        "    print('resolved')\n"
        "except socket.gaierror:\n"
        "    print('unknown')\n"
    )
    names = ["split", f"split.{namespace}.svc", f"split.{namespace}.svc.cluster.local", "example.com"]
    answers = kube.kubectl(
        "-n", namespace, "exec", "debug", "--", "python3", "-c", script, *names, timeout=60
    )
    assert answers.stdout.split() == ["stable", "stable", "stable", "unknown"], answers


def test_pod_traffic_never_leaves_the_machine() -> None:
    # mangle's FORWARD runs before filter's, where kube-proxy's rules are.
    forward = _iptables("mangle", "FORWARD")
    assert forward[1] == "-A FORWARD -j MODELRAMP-ISOLATE", forward[:3]
    assert _iptables("mangle", "MODELRAMP-ISOLATE")[1:] == [
        f"-A MODELRAMP-ISOLATE -i {BRIDGE} -o {BRIDGE} -j RETURN",
        f"-A MODELRAMP-ISOLATE -i {BRIDGE} -j DROP",
        f"-A MODELRAMP-ISOLATE -o {BRIDGE} -j DROP",
    ]
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], check=True, capture_output=True, text=True).stdout
    # No source NAT of the pod network (the CNI bridge's ipMasq is off) and none onto an interface.
    masquerades = [rule for rule in nat.splitlines() if "MASQUERADE" in rule or "SNAT" in rule]
    assert not [rule for rule in masquerades if "10.244.0.0/24" in rule or " -o " in rule], masquerades


def test_gateway_splits_by_the_httproute_weights(kube: Kube, namespace: str, tmp_path: Path) -> None:
    """Traefik's Gateway API provider, a process of the node, proxies to the pods of the Services
    an HTTPRoute names, by their weights; the client is this process, through the node's bridge."""
    _deploy(
        kube,
        namespace,
        [
            _server("stable", 1),
            _server("canary", 1),
            _service("split-stable", track="stable"),
            _service("split-canary", track="canary"),
        ],
    )
    _wait_for_endpoints(kube, namespace, "split-stable", 1)
    _wait_for_endpoints(kube, namespace, "split-canary", 1)
    with TraefikGateway(tmp_path / "traefik", kube.kubeconfig, namespace, host=NODE_IP) as gateway:
        kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(gateway.objects("web")))
        try:
            programmed = ["wait", "--for=condition=Programmed", "gateway/web", "--timeout=60s"]
            kube.kubectl("-n", namespace, *programmed, timeout=70)
            for canary in (20, 50):
                route = _route({"split-stable": 100 - canary, "split-canary": canary})
                kube.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(route))
                gateway.wait_for_route(kube.api_client, "split")
                answers: Counter[str] = Counter()
                with httpx.Client(timeout=5) as client:
                    for _ in range(GATEWAY_REQUESTS):
                        answers[client.get(f"{gateway.url}/").text] += 1
                share = 100 * answers["canary"] / GATEWAY_REQUESTS
                print(f"gateway: weight {canary}%, canary share {share:.1f}% ({answers})")
                assert set(answers) == {"stable", "canary"}, answers
                # Traefik's weighted round robin is deterministic (earliest deadline first): each
                # backend's count is within a request of its share; 5 points is the bound.
                assert abs(share - canary) <= 5, answers
        finally:
            kube.kubectl("delete", "gatewayclass", gateway.gateway_class, "--wait=false", check=False)


def _route(weights: dict[str, int]) -> dict[str, Any]:
    backends = [{"name": name, "port": 80, "weight": weight} for name, weight in weights.items()]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "split"},
        "spec": {
            "parentRefs": [{"name": "web"}],
            "rules": [{"backendRefs": backends}],
        },
    }


def test_prometheus_finds_the_pods_with_the_charts_scrape_job(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """The metrics contract on the real path: Kubernetes pod discovery and the chart's relabelling
    give every scraped series its pod's namespace, ModelDeployment and track."""
    _deploy(kube, namespace, [_server("stable", 2), _server("canary", 1)])
    job = pod_discovery_job(kube.kubeconfig, namespace, interval="1s")
    with PrometheusServer(tmp_path / "prometheus", targets=[], scrape_configs=[job]) as prometheus:
        prometheus.wait_for(f'count(up{{job="modelramp-model-servers", namespace="{namespace}"}} == 1)', 3)
        pods = kubernetes.client.CoreV1Api(kube.api_client).list_namespaced_pod(namespace).items
        expected = {(namespace, "split", pod.metadata.labels["track"], pod.metadata.name) for pod in pods}
        for metric in ("up", "modelramp_requests_total"):
            series = prometheus.query(f'{metric}{{namespace="{namespace}"}}')
            labels = ("namespace", "modeldeployment", "track", "pod")
            found = {tuple(sample["metric"][label] for label in labels) for sample in series}
            assert found == expected, (metric, series)


def _iptables(table: str, chain: str) -> list[str]:
    out = subprocess.run(["iptables", "-t", table, "-S", chain], check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def _wait_for_endpoints(kube: Kube, namespace: str, service: str, count: int) -> None:
    discovery = kubernetes.client.DiscoveryV1Api(kube.api_client)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}"
        )
        ready = [e for s in slices.items for e in s.endpoints or [] if e.conditions and e.conditions.ready]
        if len(ready) == count:
            # kube-proxy syncs its rules shortly after the EndpointSlice changes.
            time.sleep(2)
            return
        time.sleep(0.5)
    raise AssertionError(f"the Service {service} never had {count} ready endpoints")
