"""The local cluster behaves like a real one: scheduling, readiness, GPU capacity, Gateway API."""

from __future__ import annotations

import json
import textwrap

import kubernetes
import pytest
from support.cluster import Kube

pytestmark = pytest.mark.cluster


def _deployment(name: str, replicas: int, resources: str = "") -> str:
    return textwrap.dedent(
        f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app: {name}}}}}
          template:
            metadata: {{labels: {{app: {name}}}}}
            spec:
              containers:
                - name: main
                  image: registry.invalid/never-pulled:1
        """
    ) + textwrap.indent(resources, " " * 10)


def test_control_plane_reports_pinned_version(kube: Kube) -> None:
    version = json.loads(kube.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.34.2"
    assert version["clientVersion"]["gitVersion"] == "v1.34.2"


def test_nodes_are_ready_and_one_has_gpus(kube: Kube) -> None:
    nodes = kubernetes.client.CoreV1Api(kube.api_client).list_node().items
    assert len(nodes) >= 3
    for node in nodes:
        ready = {c.type: c.status for c in node.status.conditions}
        assert ready.get("Ready") == "True", node.metadata.name
    gpu_nodes = [n.metadata.name for n in nodes if n.status.allocatable.get("nvidia.com/gpu")]
    assert gpu_nodes == ["node-gpu-1"]


def test_deployment_applied_with_kubectl_becomes_ready(kube: Kube, namespace: str) -> None:
    kube.kubectl("-n", namespace, "apply", "-f", "-", input=_deployment("web", 3))
    kube.kubectl("-n", namespace, "rollout", "status", "deployment/web", "--timeout=60s")
    pods = kubernetes.client.CoreV1Api(kube.api_client).list_namespaced_pod(namespace).items
    assert len(pods) == 3
    assert all(p.status.phase == "Running" and p.spec.node_name for p in pods)


# node-gpu-1's 8 GPUs are counted here: the pods of the GPU samples (test_samples_rollout) must not
# hold some at the same time, so both run in one worker of the parallel run.
ON_THE_GPU_NODE = pytest.mark.xdist_group("node-gpu-1")


@ON_THE_GPU_NODE
def test_gpu_request_lands_on_gpu_node(kube: Kube, namespace: str) -> None:
    resources = "resources: {limits: {nvidia.com/gpu: 1}}\n"
    kube.kubectl("-n", namespace, "apply", "-f", "-", input=_deployment("gpu", 2, resources))
    kube.kubectl("-n", namespace, "rollout", "status", "deployment/gpu", "--timeout=60s")
    pods = kubernetes.client.CoreV1Api(kube.api_client).list_namespaced_pod(namespace).items
    assert {p.spec.node_name for p in pods} == {"node-gpu-1"}


@ON_THE_GPU_NODE
def test_gpu_request_beyond_capacity_stays_pending(kube: Kube, namespace: str) -> None:
    resources = "resources: {limits: {nvidia.com/gpu: 9}}\n"
    kube.kubectl("-n", namespace, "apply", "-f", "-", input=_deployment("huge", 1, resources))
    kube.kubectl(
        "-n",
        namespace,
        "wait",
        "pod",
        "-l",
        "app=huge",
        "--for=jsonpath={.status.conditions[?(@.type=='PodScheduled')].reason}=Unschedulable",
        "--timeout=30s",
    )


def test_gateway_api_crds_are_served(kube: Kube) -> None:
    resources = kube.kubectl("api-resources", "--api-group=gateway.networking.k8s.io", "-o", "name").stdout
    assert {"httproutes.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io"} <= set(
        resources.split()
    )


def test_istio_networking_crds_are_served(kube: Kube) -> None:
    resources = kube.kubectl("api-resources", "--api-group=networking.istio.io", "-o", "name").stdout
    assert {"virtualservices.networking.istio.io", "destinationrules.networking.istio.io"} <= set(
        resources.split()
    )
    # Only Istio's networking CRDs: no other Istio group is installed.
    groups = kube.kubectl("api-resources", "-o", "name").stdout.split()
    assert not [name for name in groups if name.endswith(".istio.io") and ".networking." not in f".{name}"]


def test_inference_pool_crd_is_served_at_v1(kube: Kube) -> None:
    resources = kube.kubectl("api-resources", "--api-group=inference.networking.k8s.io", "-o", "wide").stdout
    assert "inferencepools" in resources and "inference.networking.k8s.io/v1" in resources


def test_kubeconfig_works_from_python_client_with_rbac(kube: Kube, namespace: str) -> None:
    authz = kubernetes.client.AuthorizationV1Api(kube.api_client)
    review = authz.create_self_subject_access_review(
        kubernetes.client.V1SelfSubjectAccessReview(
            spec=kubernetes.client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=kubernetes.client.V1ResourceAttributes(
                    namespace=namespace, verb="create", group="apps", resource="deployments"
                )
            )
        )
    )
    assert review.status.allowed
    # RBAC is really enforced: an unbound ServiceAccount may not list pods.
    sar = authz.create_subject_access_review(
        kubernetes.client.V1SubjectAccessReview(
            spec=kubernetes.client.V1SubjectAccessReviewSpec(
                user=f"system:serviceaccount:{namespace}:default",
                resource_attributes=kubernetes.client.V1ResourceAttributes(
                    namespace=namespace, verb="list", resource="pods"
                ),
            )
        )
    )
    assert not sar.status.allowed
