"""The local cluster's real node (hack/node.sh): a kubelet and kube-proxy of the control plane's
version running real containers (containerd, runc) on a local bridge, beside the kwok fakes.

The pods run the Debian base image built here (hack/images.sh) with Python's http.server; the
client is this process on the node, going through the ClusterIP Service (kube-proxy's iptables
rules), so the split between two Deployments behind one Service is real packet routing.
"""

from __future__ import annotations

import math
import subprocess
import time
import urllib.request
from collections import Counter
from typing import Any

import kubernetes
import pytest
import yaml
from support.cluster import Kube

pytestmark = [pytest.mark.cluster, pytest.mark.realnode, pytest.mark.timeout(300)]

NODE = "node-real-1"
BASE_IMAGE = "localhost/modelramp-base:bookworm"
BRIDGE = "modelramp0"


def _server(name: str, replicas: int) -> dict[str, Any]:
    """A Deployment whose pods answer every GET with their Deployment's name."""
    script = (
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = os.environ['TRACK'].encode()\n"
        "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *args): pass\n"
        "http.server.ThreadingHTTPServer(('', 8080), H).serve_forever()\n"
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "split", "track": name}},
            "template": {
                "metadata": {"labels": {"app": "split", "track": name}},
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


def _service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "split"},
        "spec": {"selector": {"app": "split"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }


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
    docs = [_server("stable", stable), _server("canary", canary), _service()]
    kube.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(docs))
    for name in ("stable", "canary"):
        kube.kubectl(
            "-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout=120s", timeout=130
        )
    pods = kubernetes.client.CoreV1Api(kube.api_client).list_namespaced_pod(namespace).items
    assert {pod.spec.node_name for pod in pods} == {NODE}
    assert all(pod.status.pod_ip.startswith("10.244.0.") for pod in pods)
    cluster_ip = (
        kubernetes.client.CoreV1Api(kube.api_client)
        .read_namespaced_service("split", namespace)
        .spec.cluster_ip
    )
    _wait_for_endpoints(kube, namespace, stable + canary)

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


def _iptables(table: str, chain: str) -> list[str]:
    out = subprocess.run(["iptables", "-t", table, "-S", chain], check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def _wait_for_endpoints(kube: Kube, namespace: str, count: int) -> None:
    discovery = kubernetes.client.DiscoveryV1Api(kube.api_client)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=split"
        )
        ready = [e for s in slices.items for e in s.endpoints or [] if e.conditions and e.conditions.ready]
        if len(ready) == count:
            # kube-proxy syncs its rules shortly after the EndpointSlice changes.
            time.sleep(2)
            return
        time.sleep(0.5)
    raise AssertionError(f"the Service never had {count} ready endpoints")
