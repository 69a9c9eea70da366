"""How fast the operator turns a new ModelDeployment into its objects, and how quiet it is idle.

1. Latency: 50 ModelDeployments created one after another; for each, the time from create to
   all its owned objects present (Deployment `<name>-stable`, Services `<name>`, `<name>-stable`,
   `<name>-canary`), as a watch sees them. Baseline, measured in the same run: a client that
   server-side applies those same objects itself (the floor any controller pays).
   Goal: p50 < 2 s.
2. Idle writes: 200 ModelDeployments, settled (phase Healthy). Writes (every verb but GET, LIST,
   WATCH) to ModelDeployments, Deployments, Services, Events and HTTPRoutes counted by the
   apiserver's own `apiserver_request_total`, over a window with the operator stopped (the
   cluster's background: the baseline) and one with it running. Goal: ≈ 0 writes/min.

Run: `make operator-bench` (or `PYTHONSAFEPATH=1 .venv/bin/python bench/operator_latency.py`).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.cluster import Kube, start_cluster
from support.operator import GROUP, PLURAL, VERSION, ModelDeployments, OperatorProcess, install_crd, wait_for

WATCHED_RESOURCES = {"modeldeployments", "deployments", "services", "events", "httproutes"}
READ_VERBS = {"GET", "LIST", "WATCH"}


def model_deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": "file:///models/bench.pt", "format": "torchscript"},
            "serving": {"replicas": 1},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        },
    }


def owned_names(name: str) -> set[tuple[str, str]]:
    return {
        ("Deployment", f"{name}-stable"),
        ("Service", name),
        ("Service", f"{name}-stable"),
        ("Service", f"{name}-canary"),
    }


class Sightings:
    """First time a watch saw each Deployment and Service of a namespace."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        apps, core = (
            kubernetes.client.AppsV1Api(kube.api_client),
            kubernetes.client.CoreV1Api(kube.api_client),
        )
        self._threads = [
            threading.Thread(
                target=self._watch, args=("Deployment", apps.list_namespaced_deployment, namespace)
            ),
            threading.Thread(target=self._watch, args=("Service", core.list_namespaced_service, namespace)),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def _watch(self, kind: str, lister: Any, namespace: str) -> None:
        while not self._stop.is_set():
            for event in kubernetes.watch.Watch().stream(lister, namespace, timeout_seconds=2):
                self.seen.setdefault((kind, event["object"].metadata.name), time.monotonic())

    def stop(self) -> None:
        self._stop.set()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def baseline_latency(kube: Kube, namespace: str, count: int) -> list[float]:
    """A client applying a ModelDeployment's four objects itself, as fast as it can."""
    apps, core = kubernetes.client.AppsV1Api(kube.api_client), kubernetes.client.CoreV1Api(kube.api_client)
    times = []
    for i in range(count):
        name = f"base-{i}"
        labels = {"app": name}
        started = time.monotonic()
        apps.create_namespaced_deployment(
            namespace,
            {
                "metadata": {"name": f"{name}-stable"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "server", "image": "registry.invalid/serving:1"}]},
                    },
                },
            },
        )
        for service in (name, f"{name}-stable", f"{name}-canary"):
            core.create_namespaced_service(
                namespace,
                {"metadata": {"name": service}, "spec": {"selector": labels, "ports": [{"port": 80}]}},
            )
        times.append(time.monotonic() - started)
    return times


def operator_latency(kube: Kube, namespace: str, count: int) -> list[float]:
    custom = kubernetes.client.CustomObjectsApi(kube.api_client)
    sightings = Sightings(kube, namespace)
    times = []
    try:
        for i in range(count):
            name = f"lat-{i}"
            started = time.monotonic()
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, model_deployment(name))
            wanted = owned_names(name)
            wait_for(
                f"{name}'s objects", lambda w=wanted: w <= sightings.seen.keys(), timeout=60, interval=0.01
            )
            times.append(max(sightings.seen[key] for key in wanted) - started)
    finally:
        sightings.stop()
    return times


def free_service_ips(kube: Kube) -> int:
    """ClusterIPs left in the cluster's service ranges (its ServiceCIDR objects); each
    ModelDeployment takes three."""
    cidrs = json.loads(kube.kubectl("get", "servicecidrs", "-o", "json").stdout)["items"]
    size = sum(
        ipaddress.ip_network(cidr).num_addresses - 2 for item in cidrs for cidr in item["spec"]["cidrs"]
    )
    services = kubernetes.client.CoreV1Api(kube.api_client).list_service_for_all_namespaces().items
    used = sum(1 for service in services if service.spec.cluster_ip not in (None, "None"))
    return size - used


def delete_and_wait(kube: Kube, namespace: str) -> None:
    """Deletes a namespace's ModelDeployments and Services (freeing their ClusterIPs) and waits."""
    core = kubernetes.client.CoreV1Api(kube.api_client)
    ModelDeployments(kube, namespace).delete_all(timeout=300)
    kube.kubectl("-n", namespace, "delete", "services,deployments", "--all", "--wait=true", timeout=300)
    wait_for(f"{namespace}'s Services gone", lambda: not core.list_namespaced_service(namespace).items, 120)


def write_counts(kube: Kube) -> Counter[tuple[str, str]]:
    """(resource, verb) -> writes so far, from the apiserver's own metrics."""
    text = kube.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "apiserver_request_total"
                and labels.get("resource") in WATCHED_RESOURCES
                and labels.get("verb") not in READ_VERBS
            ):
                counts[(labels["resource"], labels["verb"])] += int(sample.value)
    return counts


def writes_per_minute(kube: Kube, seconds: float) -> tuple[float, Counter[tuple[str, str]]]:
    before = write_counts(kube)
    time.sleep(seconds)
    diff = write_counts(kube) - before
    return sum(diff.values()) * 60 / seconds, diff


def report_latency(kube: Kube, operator: OperatorProcess, namespaces: tuple[str, str], count: int) -> None:
    base_ns, latency_ns = namespaces
    base = baseline_latency(kube, base_ns, count)
    delete_and_wait(kube, base_ns)
    operator.start()
    measured = operator_latency(kube, latency_ns, count)
    delete_and_wait(kube, latency_ns)
    p50, p95, base50 = percentile(measured, 0.5), percentile(measured, 0.95), statistics.median(base)
    print(f"apply -> owned objects present, {len(measured)} ModelDeployments:")
    print(f"  operator  p50 {p50:.3f} s  p95 {p95:.3f} s  (goal p50 < 2 s)")
    print(f"  baseline  p50 {base50:.3f} s  (a client applying the 4 objects itself)")
    print(f"  ratio     p50 {p50 / base50:.1f}x the baseline")


def report_idle_writes(
    kube: Kube, operator: OperatorProcess, namespace: str, wanted: int, window: float
) -> None:
    custom = kubernetes.client.CustomObjectsApi(kube.api_client)
    count = min(wanted, free_service_ips(kube) // 3 - 5)
    if count < wanted:
        print(
            f"note: the cluster's service range has room for {count} ModelDeployments "
            f"(3 ClusterIPs each), not {wanted}: measuring idle writes with {count}"
        )
    for i in range(count):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, model_deployment(f"idle-{i}")
        )

    def settled() -> bool:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        return sum((item.get("status") or {}).get("phase") == "Healthy" for item in items) == count

    started = time.monotonic()
    wait_for(f"{count} ModelDeployments Healthy", settled, timeout=600, interval=1)
    print(f"{count} ModelDeployments Healthy after {time.monotonic() - started:.1f} s")
    time.sleep(5)  # let the last status writes' echoes pass
    with_operator, detail = writes_per_minute(kube, window)
    operator.stop()
    background, _ = writes_per_minute(kube, window / 2)
    print(f"idle API writes with {count} ModelDeployments (apiserver_request_total, non-GET):")
    print(f"  operator running  {with_operator:.1f} writes/min  {dict(detail) or ''}")
    print(f"  operator stopped  {background:.1f} writes/min (cluster background, baseline)")
    print(f"  operator's share  {max(with_operator - background, 0.0):.1f} writes/min  (goal ≈ 0)")


def main(argv: list[str]) -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--latency-count", type=int, default=50)
    cli.add_argument("--idle-count", type=int, default=200)
    cli.add_argument("--window", type=float, default=60.0, help="seconds of each idle-writes window")
    args = cli.parse_args(argv)

    kube = start_cluster()
    install_crd(kube)
    core = kubernetes.client.CoreV1Api(kube.api_client)
    run = uuid.uuid4().hex[:6]
    latency_ns, idle_ns, base_ns = f"bench-lat-{run}", f"bench-idle-{run}", f"bench-base-{run}"
    for namespace in (latency_ns, idle_ns, base_ns):
        core.create_namespace(
            kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=namespace))
        )
    workdir = Path(tempfile.mkdtemp(prefix="modelramp-bench-"))
    operator = OperatorProcess(kube, [latency_ns, idle_ns], workdir / "operator.log")
    try:
        report_latency(kube, operator, (base_ns, latency_ns), args.latency_count)
        report_idle_writes(kube, operator, idle_ns, args.idle_count, args.window)
    finally:
        if operator.process is None:
            operator.start()
        for namespace in (latency_ns, idle_ns):
            mds = ModelDeployments(kube, namespace)
            try:
                mds.delete_all(timeout=300)  # the running operator releases them
            finally:
                mds.strip_finalizers()
        operator.stop()
        for namespace in (latency_ns, idle_ns, base_ns):
            core.delete_namespace(namespace)
        print(f"operator log: {operator.log_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
