"""The operator under test: the CRD installed, `modelramp operator` run as a real subprocess against
the local cluster, and tools to watch what it does.

`OperatorProcess.kill()` sends SIGKILL (no clean-up, no last status write), `start()` runs a fresh
process: the restart matrix uses both. `Recorder` watches a ModelDeployment (and its HTTPRoute)
from a thread and keeps every distinct canary weight it saw, in order, so a test can assert a
rollout never repeated or skipped a weight across restarts.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest
import urllib3
import yaml

from support.cluster import REPO, Kube, cluster_wide_change
from support.prometheus import free_port

CRD = REPO / "crds" / "modelramp.dev_modeldeployments.yaml"
PEERING_CRDS = REPO / "charts" / "modelramp" / "charts" / "kopf-peering" / "crds" / "kopf.dev_peerings.yaml"
GROUP, VERSION, PLURAL = "modelramp.dev", "v1alpha1", "modeldeployments"
MODELRAMP = REPO / ".venv" / "bin" / "modelramp"
T = TypeVar("T")


def install_crd(kube: Kube) -> None:
    """Applies the generated CRD (server-side, so a re-run is a no-op) and waits until it serves."""
    with cluster_wide_change():
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    name = yaml.safe_load(CRD.read_text())["metadata"]["name"]
    kube.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


def install_peering_crds(kube: Kube) -> None:
    """kopf's KopfPeering and ClusterKopfPeering CRDs, as the chart ships them."""
    with cluster_wide_change():
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRDS))
    for name in ("kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        kube.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Polls `probe` until it returns something truthy; fails naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


@dataclass
class OperatorProcess:
    """`modelramp operator` watching `namespaces`, its log in `log_path`."""

    kube: Kube
    namespaces: list[str]
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    health_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, wait: bool = True) -> None:
        assert self.process is None, "already running"
        args = [str(MODELRAMP), "operator", f"--liveness=http://127.0.0.1:{self.health_port}/healthz"]
        args += [f"--metrics-port={self.metrics_port}", "--metrics-host=127.0.0.1", "--workers=8"]
        args += [f"--namespace={ns}" for ns in self.namespaces] + self.extra_args
        env = {**os.environ, "KUBECONFIG": str(self.kube.kubeconfig), "PYTHONSAFEPATH": "1"}
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(args)}\n".encode())
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        if wait:
            wait_for("the operator's health endpoint", self._healthy, timeout=60)

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the operator exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish a write or clean up."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return "(never started)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as answer:
            text: str = answer.read().decode()
            return text


class ModelDeployments:
    """ModelDeployments and the objects around them in one namespace, through the real API."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.custom = kubernetes.client.CustomObjectsApi(kube.api_client)
        self.apps = kubernetes.client.AppsV1Api(kube.api_client)
        self.core = kubernetes.client.CoreV1Api(kube.api_client)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kube.kubectl("-n", self.namespace, "apply", "-f", "-", input=json.dumps(manifest))

    def get(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return body

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.kube.kubectl(
            "-n", self.namespace, "patch", f"{PLURAL}.{GROUP}", name, "--type=merge", "-p",
            json.dumps({"spec": spec}),
        )  # fmt: skip

    def deployment(self, name: str) -> Any:
        try:
            return self.apps.read_namespaced_deployment(name, self.namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def service(self, name: str) -> Any:
        try:
            return self.core.read_namespaced_service(name, self.namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def route(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", name
        )
        return body

    def events(self, name: str) -> list[Any]:
        selector = f"involvedObject.name={name},involvedObject.kind=ModelDeployment"
        items: list[Any] = self.core.list_namespaced_event(self.namespace, field_selector=selector).items
        return items

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`modelramp <args> -n <namespace>` as a user runs it."""
        env = {**os.environ, "KUBECONFIG": str(self.kube.kubeconfig), "PYTHONSAFEPATH": "1"}
        result = subprocess.run(
            [str(MODELRAMP), *args, "-n", self.namespace],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"modelramp {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def wait_status(
        self, name: str, what: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            status = self.status(name)
            return status if predicate(status) else None

        try:
            return wait_for(f"{name}: {what}", probe, timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}\nstatus: {json.dumps(self.status(name), indent=1)}") from None

    def delete_all(self, timeout: float = 30.0) -> None:
        """Deletes every ModelDeployment and waits until they are gone (the operator must be running
        to release them)."""
        self.kube.kubectl("-n", self.namespace, "delete", f"{PLURAL}.{GROUP}", "--all", "--wait=false")
        wait_for(
            "ModelDeployments to be deleted",
            lambda: (
                not self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)["items"]
            ),
            timeout,
        )

    def strip_finalizers(self) -> None:
        """Lets ModelDeployments go when no operator is left to release them (test clean-up only)."""
        for item in self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)[
            "items"
        ]:
            if item["metadata"].get("finalizers"):
                self.custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    item["metadata"]["name"],
                    {"metadata": {"finalizers": None}},
                )


@dataclass
class Recorder:
    """Watches one ModelDeployment (and optionally its HTTPRoute) and records, in order, every
    distinct canary weight seen in status and every distinct (stable, canary) weight pair on the
    route."""

    kube: Kube
    namespace: str
    name: str
    route: str | None = None
    # A Deployment whose spec.replicas to record too (the replica-ratio router's "route").
    deployment: str | None = None
    status_weights: list[int] = field(default_factory=list)
    steps: list[int | None] = field(default_factory=list)
    phases: list[str | None] = field(default_factory=list)
    route_weights: list[tuple[int, int]] = field(default_factory=list)
    deployment_replicas: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    # resourceVersions each watch ("md", "route", "deployment") has recorded.
    _recorded: dict[str, set[str]] = field(default_factory=dict)

    def __enter__(self) -> Recorder:
        self._threads.append(threading.Thread(target=self._watch_md, daemon=True))
        if self.route is not None:
            self._threads.append(threading.Thread(target=self._watch_route, daemon=True))
        if self.deployment is not None:
            self._threads.append(threading.Thread(target=self._watch_deployment, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._catch_up(deadline=time.monotonic() + 10)
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _catch_up(self, deadline: float) -> None:
        """Waits until every watch has recorded its object as it is now: the change a test just
        waited for (through a read) can reach the API server's watch a moment later, and stopping
        first lost it (a promotion's final weight 0, once in CI)."""
        custom = kubernetes.client.CustomObjectsApi(self.kube.api_client)
        apps = kubernetes.client.AppsV1Api(self.kube.api_client)
        ns = self.namespace
        reads: dict[str, Callable[[], Any]] = {
            "md": lambda: custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, self.name),
        }
        if (route := self.route) is not None:
            group = "gateway.networking.k8s.io"
            reads["route"] = lambda: custom.get_namespaced_custom_object(group, "v1", ns, "httproutes", route)
        if (deployment := self.deployment) is not None:
            reads["deployment"] = lambda: apps.read_namespaced_deployment(deployment, ns)
        for key, read in reads.items():
            try:
                version = _resource_version(read())
            except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError):
                continue  # gone, or no API server: nothing more to record
            # A version the watch skipped (it restarted past it) ends the wait at the deadline.
            while version not in self._recorded.get(key, set()) and time.monotonic() < deadline:
                time.sleep(0.05)

    def _stream(self, lister: Callable[..., Any], *args: str, name: str, key: str) -> Iterator[Any]:
        """Every version of one object, from watches that start over when the API server goes
        away (a test may restart it) or a watch ends; a version counts as recorded under `key`
        once the caller has taken it and asked for the next."""
        while not self._stop.is_set():
            watch = kubernetes.watch.Watch()
            try:
                for event in watch.stream(
                    lister, *args, field_selector=f"metadata.name={name}", timeout_seconds=1
                ):
                    body = event["object"]
                    yield body
                    self._recorded.setdefault(key, set()).add(_resource_version(body))
                    if self._stop.is_set():
                        watch.stop()
                        return
            except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError):
                time.sleep(0.2)

    def _custom(self, group: str, version: str, plural: str, name: str, key: str) -> Iterator[dict[str, Any]]:
        custom = kubernetes.client.CustomObjectsApi(self.kube.api_client)
        lister = custom.list_namespaced_custom_object
        yield from self._stream(lister, group, version, self.namespace, plural, name=name, key=key)

    def _watch_md(self) -> None:
        for body in self._custom(GROUP, VERSION, PLURAL, self.name, "md"):
            status = body.get("status") or {}
            _append_changed(self.status_weights, status.get("canaryWeight", 0))
            _append_changed(self.steps, status.get("currentStepIndex"))
            _append_changed(self.phases, status.get("phase"))

    def _watch_route(self) -> None:
        assert self.route is not None
        for body in self._custom("gateway.networking.k8s.io", "v1", "httproutes", self.route, "route"):
            weights = route_weights(body, self.name)
            if weights is not None:
                _append_changed(self.route_weights, weights)

    def _watch_deployment(self) -> None:
        assert self.deployment is not None
        apps = kubernetes.client.AppsV1Api(self.kube.api_client)
        for body in self._stream(
            apps.list_namespaced_deployment, self.namespace, name=self.deployment, key="deployment"
        ):
            _append_changed(self.deployment_replicas, body.spec.replicas or 0)


def route_weights(route: dict[str, Any], name: str) -> tuple[int, int] | None:
    """(stable, canary) weights of the first rule's backendRefs to `<name>-stable`/`<name>-canary`."""
    refs = {ref.get("name"): ref.get("weight", 1) for ref in route["spec"]["rules"][0].get("backendRefs", [])}
    if f"{name}-stable" not in refs and f"{name}-canary" not in refs:
        return None
    return refs.get(f"{name}-stable", 0), refs.get(f"{name}-canary", 0)


def _resource_version(body: Any) -> str:
    """A watched object's resourceVersion: custom objects come as dicts, Deployments as models."""
    if isinstance(body, dict):
        return str(body["metadata"]["resourceVersion"])
    return str(body.metadata.resource_version)


def _append_changed(values: list[Any], value: Any) -> None:
    if not values or values[-1] != value:
        values.append(value)


# --- ModelDeployments and HTTPRoutes the tests apply, and what they wait for ------------------------------

V1, V2, V3 = "file:///models/v1.pt", "file:///models/v2.pt", "file:///models/v3.pt"


def canary_md(
    steps: list[dict[str, Any]], name: str = "web", replicas: int = 4, route: str | None = None, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelramp.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": V1, "format": "torchscript"},
            "serving": {"replicas": replicas, "image": "registry.invalid/serving:test"},
            "strategy": {"canary": {"steps": steps}},
            **spec,
        },
    }
    if route is not None:
        body["spec"]["trafficRouting"] = {"gatewayAPI": {"httpRoute": route}}
    return body


def blue_green_md(name: str = "web", route: str | None = None, **strategy: Any) -> dict[str, Any]:
    body = canary_md([{"setWeight": 1}], name=name, replicas=2, route=route)
    body["spec"]["strategy"] = {"blueGreen": {"scaleDownDelaySeconds": 2, **strategy}}
    return body


def with_model(body: dict[str, Any], uri: str, **serving: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    changed["spec"]["model"]["uri"] = uri
    changed["spec"]["serving"].update(serving)
    return changed


def http_route(name: str) -> dict[str, Any]:
    """A user's HTTPRoute, with fields the operator must leave alone."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "labels": {"team": "ml"}, "annotations": {"owner": "alice"}},
        "spec": {
            "parentRefs": [{"name": "public-gateway"}],
            "hostnames": ["models.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v2/models/web"}}],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"add": [{"name": "x-team", "value": "ml"}]},
                        }
                    ],
                    "timeouts": {"request": "10s"},
                    "backendRefs": [{"name": "web", "port": 80}],
                }
            ],
        },
    }


def virtual_service(name: str, host: str = "web", routes: list[str] | None = None) -> dict[str, Any]:
    """A user's VirtualService: the managed routes to the apex Service, and another team's route."""
    managed = [
        {
            "name": route,
            "match": [{"uri": {"prefix": f"/v2/models/{host}"}}],
            "timeout": "10s",
            "route": [{"destination": {"host": host}}],
        }
        for route in routes or ["primary"]
    ]
    other = {"name": "other-team", "route": [{"destination": {"host": "other"}}]}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "labels": {"team": "ml"}},
        "spec": {"hosts": ["models.example.com"], "gateways": ["public"], "http": [*managed, other]},
    }


def inference_pool(name: str, track: str, md: str = "web", port: int = 8080) -> dict[str, Any]:
    """A user's InferencePool (inference.networking.k8s.io/v1) over one track's pods."""
    return {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"modelramp.dev/name": md, "modelramp.dev/track": track}},
            "targetPorts": [{"number": port}],
            "endpointPickerRef": {"name": f"{name}-epp", "port": {"number": 9002}},
        },
    }


def destination_rule(name: str, host: str = "web") -> dict[str, Any]:
    subsets = [{"name": t, "labels": {"modelramp.dev/track": t}} for t in ("stable", "canary")]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name},
        "spec": {"host": host, "subsets": subsets},
    }


def ingress(name: str, service: str = "web") -> dict[str, Any]:
    path = {
        "path": f"/v2/models/{service}",
        "pathType": "Prefix",
        "backend": {"service": {"name": service, "port": {"number": 80}}},
    }
    other = {
        "path": "/other",
        "pathType": "Prefix",
        "backend": {"service": {"name": "other", "port": {"number": 80}}},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "annotations": {"owner": "alice"}},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": "models.example.com", "http": {"paths": [path, other]}}],
        },
    }


def user_fields(route: dict[str, Any]) -> dict[str, Any]:
    """Everything of a route but its backendRefs (the operator's) and server bookkeeping."""
    spec = copy.deepcopy(route["spec"])
    for rule in spec["rules"]:
        rule.pop("backendRefs", None)
    meta = route["metadata"]
    return {"spec": spec, "labels": meta.get("labels"), "annotations": meta.get("annotations")}


def healthy(mds: ModelDeployments, name: str = "web", uri: str = V1) -> dict[str, Any]:
    return mds.wait_status(
        name,
        f"Healthy serving {uri}",
        lambda s: s.get("phase") == "Healthy" and (s.get("stableModel") or {}).get("uri") == uri,
        timeout=60,
    )


def at_step(mds: ModelDeployments, index: int, weight: int, name: str = "web") -> dict[str, Any]:
    return mds.wait_status(
        name,
        f"step {index} at weight {weight}",
        lambda s: s.get("currentStepIndex") == index and s.get("canaryWeight") == weight,
        timeout=60,
    )


def replicas(mds: ModelDeployments, name: str) -> int:
    deployment = mds.deployment(name)
    return 0 if deployment is None else int(deployment.spec.replicas)


def reasons(mds: ModelDeployments, name: str = "web", type_: str | None = None) -> list[str]:
    return [e.reason for e in mds.events(name) if type_ is None or e.type == type_]


# --- fixtures (imported by the tests/cluster/test_operator*.py modules) -------------------------


@pytest.fixture(scope="session")
def crd(kube: Kube) -> None:
    """The ModelDeployment CRD, as `make crds` generated it."""
    install_crd(kube)


@pytest.fixture
def mds(kube: Kube, namespace: str, crd: None) -> ModelDeployments:
    return ModelDeployments(kube, namespace)


@pytest.fixture
def operator_args() -> list[str]:
    """Extra flags for the `operator` fixture; a test module overrides this fixture to add some."""
    return []


@pytest.fixture
def operator(
    kube: Kube, namespace: str, mds: ModelDeployments, operator_args: list[str], tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator watching this test's namespace; its log is printed when a test fails."""
    process = OperatorProcess(kube, [namespace], tmp_path / "operator.log", operator_args)
    process.start()
    yield process
    try:
        if process.process is None:
            process.start()
        # Deleted while the operator runs, so it releases them (its daemon's finalizer).
        mds.delete_all()
    finally:
        process.stop()
        mds.strip_finalizers()
        print(f"--- operator log ({process.log_path}) ---\n{process.log_tail(200)}")


def stop_replicas(mds: ModelDeployments, leader: OperatorProcess, standby: OperatorProcess) -> None:
    """Ends a two-replica test: the objects deleted while the standby still runs (so their
    finalizers are released), both replicas stopped, whatever is left unblocked; both logs printed."""
    if standby.process is not None:
        mds.delete_all()
    leader.stop()
    standby.stop()
    mds.strip_finalizers()
    print(f"--- leader ---\n{leader.log_tail(60)}\n--- standby ---\n{standby.log_tail(60)}")
