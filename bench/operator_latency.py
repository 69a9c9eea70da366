"""The operator at scale: 500 ModelDeployments on one operator, on a cluster of its own.

The bench starts a separate local cluster (`modelramp-bench`, with more kwok nodes so every
ModelDeployment's pod is scheduled and all of them settle) and measures, in one run:

1. Latency: the ModelDeployments created one after another; for each, the time from create to all
   its owned objects present (Deployment `<name>-stable`, Services `<name>`, `<name>-stable`,
   `<name>-canary`), as a watch sees them. The last ones are created beside hundreds the operator
   already runs. Baseline, measured in the same run and seen by the same watch: a plain client
   creating those same four objects itself (the floor any controller pays). Goal: p50 < 1 s.
2. Memory: the operator's resident set once all of them are Healthy (and its peak). Goal < 300 MiB.
3. Idle writes: writes (every verb but GET, LIST, WATCH) to ModelDeployments, Deployments,
   Services, Events and HTTPRoutes counted by the apiserver's own `apiserver_request_total`, over a
   window with the operator running and all of them settled, and one with the operator stopped
   (the cluster's background: the baseline). Goal: 0 writes/min beyond the background.

Run: `make operator-bench` (or `PYTHONSAFEPATH=1 .venv/bin/python bench/operator_latency.py`);
about 20 minutes on 2 cores. `--count` changes the number of ModelDeployments.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.cluster import REPO, ExtraNodes, Kube, delete_cluster, start_cluster
from support.operator import GROUP, PLURAL, VERSION, ModelDeployments, OperatorProcess, install_crd, wait_for

CLUSTER = "modelramp-bench"
WATCHED_RESOURCES = {"modeldeployments", "deployments", "services", "events", "httproutes"}
READ_VERBS = {"GET", "LIST", "WATCH"}
# Each ModelDeployment runs one pod, and the baseline's Deployments one each until they are gone.
PODS_PER_NODE = 250


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
    """First time a watch saw each Deployment and Service of a namespace. Each watch resumes from
    the last resourceVersion it saw, so hundreds of objects are not listed again every round."""

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

    def _watch(self, kind: str, lister: Callable[..., Any], namespace: str) -> None:
        version: str | None = None
        while not self._stop.is_set():
            resume = {"resource_version": version} if version else {}
            try:
                for event in kubernetes.watch.Watch().stream(lister, namespace, timeout_seconds=5, **resume):
                    body = event["object"]
                    version = body.metadata.resource_version
                    self.seen.setdefault((kind, body.metadata.name), time.monotonic())
            except kubernetes.client.ApiException as error:
                if error.status != 410:  # 410 Gone: the version is too old; start from a list
                    raise
                version = None

    def wait(self, wanted: set[tuple[str, str]], started: float) -> float:
        wait_for(f"{sorted(wanted)}", lambda: wanted <= self.seen.keys(), timeout=120, interval=0.01)
        return max(self.seen[key] for key in wanted) - started

    def stop(self) -> None:
        self._stop.set()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def baseline_latency(kube: Kube, namespace: str, count: int) -> list[float]:
    """A plain client creating a ModelDeployment's four objects itself, as fast as it can."""
    apps, core = kubernetes.client.AppsV1Api(kube.api_client), kubernetes.client.CoreV1Api(kube.api_client)
    sightings = Sightings(kube, namespace)
    times = []
    try:
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
                            "spec": {
                                "containers": [{"name": "server", "image": "registry.invalid/serving:1"}]
                            },
                        },
                    },
                },
            )
            for service in (name, f"{name}-stable", f"{name}-canary"):
                core.create_namespaced_service(
                    namespace,
                    {"metadata": {"name": service}, "spec": {"selector": labels, "ports": [{"port": 80}]}},
                )
            times.append(sightings.wait(owned_names(name), started))
    finally:
        sightings.stop()
    return times


def operator_latency(kube: Kube, namespace: str, count: int) -> list[float]:
    custom = kubernetes.client.CustomObjectsApi(kube.api_client)
    sightings = Sightings(kube, namespace)
    times = []
    try:
        for i in range(count):
            name = f"md-{i}"
            started = time.monotonic()
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, model_deployment(name))
            times.append(sightings.wait(owned_names(name), started))
    finally:
        sightings.stop()
    return times


def namespace_exists(core: kubernetes.client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def wait_settled(kube: Kube, namespace: str, count: int) -> float:
    custom = kubernetes.client.CustomObjectsApi(kube.api_client)

    def healthy() -> int:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        return sum((item.get("status") or {}).get("phase") == "Healthy" for item in items)

    started = time.monotonic()
    wait_for(f"{count} ModelDeployments Healthy", lambda: healthy() == count, timeout=1200, interval=2)
    return time.monotonic() - started


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


def memory_mib(pid: int) -> tuple[float, float]:
    """(resident, peak resident) of a process, in MiB, from /proc."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    kib = {key: int(value.split()[0]) for key, value in pairs if key in ("VmRSS", "VmHWM")}
    return kib["VmRSS"] / 1024, kib["VmHWM"] / 1024


def summary(values: list[float]) -> str:
    return "  ".join(f"p{q} {percentile(values, q / 100):.3f} s" for q in (50, 90, 99))


def bench(kube: Kube, count: int, window: float, workdir: Path) -> None:
    core = kubernetes.client.CoreV1Api(kube.api_client)
    run = uuid.uuid4().hex[:6]
    md_ns, base_ns = f"bench-md-{run}", f"bench-base-{run}"
    for namespace in (md_ns, base_ns):
        core.create_namespace(
            kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=namespace))
        )
    operator = OperatorProcess(kube, [md_ns], workdir / "operator.log")
    mds = ModelDeployments(kube, md_ns)
    try:
        base = baseline_latency(kube, base_ns, count)
        # Gone before the operator starts, so deleting it does not load the cluster under measurement.
        core.delete_namespace(base_ns)
        wait_for(f"namespace {base_ns} deleted", lambda: not namespace_exists(core, base_ns), 900, 2)
        operator.start()
        measured = operator_latency(kube, md_ns, count)
        settle = wait_settled(kube, md_ns, count)
        time.sleep(5)  # let the last status writes' echoes pass
        assert operator.process is not None
        rss, peak = memory_mib(operator.process.pid)
        with_operator, detail = writes_per_minute(kube, window)
        operator.stop()
        background, _ = writes_per_minute(kube, window)
    finally:
        if operator.process is None:
            operator.start()
        try:
            mds.delete_all(timeout=900)  # the running operator releases them
        finally:
            operator.stop()
            mds.strip_finalizers()
    print(f"{count} ModelDeployments on one operator (its own cluster {CLUSTER}), {time.strftime('%F %T')}")
    print("apply -> owned objects present (Deployment + 3 Services, seen by a watch):")
    print(f"  operator  {summary(measured)}  (goal p50 < 1 s)")
    print(f"  baseline  {summary(base)}  (a plain client creating the 4 objects itself)")
    print(f"  ratio     p50 {percentile(measured, 0.5) / percentile(base, 0.5):.1f}x the baseline")
    print(f"  all {count} Healthy {settle:.1f} s after the last create")
    print(f"operator memory with {count} settled: RSS {rss:.0f} MiB, peak {peak:.0f} MiB  (goal < 300 MiB)")
    print(f"idle API writes with {count} settled (apiserver_request_total, non-GET, {window:g} s windows):")
    print(f"  operator running  {with_operator:.1f} writes/min  {dict(detail) or ''}")
    print(f"  operator stopped  {background:.1f} writes/min (cluster background, baseline)")
    print(f"  operator's share  {max(with_operator - background, 0.0):.1f} writes/min  (goal 0)")
    print(f"operator log: {operator.log_path}")


@contextlib.contextmanager
def bench_cluster(count: int, keep: bool) -> Iterator[Kube]:
    """The bench's own cluster, with room for every pod (the baseline's linger while deleted)."""
    kubeconfig = REPO / ".cache" / f"{CLUSTER}.kubeconfig"
    nodes = ExtraNodes(count=math.ceil(2 * count / PODS_PER_NODE), max_pods=PODS_PER_NODE)
    kube = start_cluster(CLUSTER, kubeconfig, nodes=nodes)
    try:
        yield kube
    finally:
        if not keep:
            delete_cluster(CLUSTER, kubeconfig)


def main(argv: list[str]) -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--count", type=int, default=500, help="ModelDeployments on the operator (500)")
    cli.add_argument("--window", type=float, default=60.0, help="seconds of each idle-writes window")
    cli.add_argument("--keep-cluster", action="store_true", help="leave the bench cluster up afterwards")
    args = cli.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="modelramp-bench-"))
    with bench_cluster(args.count, args.keep_cluster) as kube:
        install_crd(kube)
        bench(kube, args.count, args.window, workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
