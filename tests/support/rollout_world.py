"""A small simulated cluster for the pure rollout engine: it applies `reconcile`'s output the way
the kopf glue and Kubernetes would (Deployments, the router's merge patches and applies, status),
reads for the router what it asks for, and lets a
test decide which pods become Ready and when, so rollouts are walked tick by tick without a
cluster. Only the engine runs for real; the world never decides anything for it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modelramp.operator.api import (
    ABWindow,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ObjectMeta,
)
from modelramp.operator.api.status import Measurement, ResolvedModel, Verdict
from modelramp.operator.rollout import reconcile, shadow
from modelramp.operator.rollout.model import (
    EngineConfig,
    EventRecord,
    Observed,
    ObservedDeployment,
    ReconcileInput,
    ReconcileOutput,
)
from modelramp.operator.rollout.objects import backends_of
from modelramp.operator.routers.base import RoutingRead
from modelramp.operator.routers.registry import router_for

START = datetime(2026, 1, 1, tzinfo=UTC)
PROMETHEUS = {"prometheus": {"address": "http://prometheus:9090"}}
CONFIG = EngineConfig(serving_image="ghcr.io/modelramp/server:test")
REVISION_LABEL = "modelramp.dev/revision"
VARIANT_LABEL = "modelramp.dev/variant"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def httproute(name: str = "web", namespace: str = "default") -> dict[str, Any]:
    """A user's HTTPRoute with one rule still pointing at the apex Service."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["models.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                    "backendRefs": [{"name": "md", "port": 80}],
                }
            ],
        },
    }


def inference_pool(name: str, track: str, md: str = "md", namespace: str = "default") -> dict[str, Any]:
    """A user's InferencePool (Gateway API Inference Extension v1) over one track's pods."""
    return {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {
            "selector": {"matchLabels": {"modelramp.dev/name": md, "modelramp.dev/track": track}},
            "targetPorts": [{"number": 8080}],
            "endpointPickerRef": {"name": f"{name}-epp", "port": {"number": 9002}},
        },
    }


def virtual_service(name: str = "web", namespace: str = "default") -> dict[str, Any]:
    """A user's VirtualService: a managed route `primary` (to the apex Service) and a route of
    another team's that the operator must leave alone."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {
            "hosts": ["models.example.com"],
            "gateways": ["public"],
            "http": [
                {
                    "name": "primary",
                    "match": [{"uri": {"prefix": "/v2/models/md"}}, {"uri": {"prefix": "/v2/health"}}],
                    "retries": {"attempts": 2},
                    "route": [{"destination": {"host": "md"}}],
                },
                {"name": "other-team", "route": [{"destination": {"host": "other"}}]},
            ],
        },
    }


def destination_rule(name: str = "md", namespace: str = "default") -> dict[str, Any]:
    """A DestinationRule on the apex Service whose subsets select the tracks."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {
            "host": "md",
            "subsets": [
                {"name": "stable", "labels": {"modelramp.dev/track": "stable"}},
                {"name": "canary", "labels": {"modelramp.dev/track": "canary"}},
            ],
        },
    }


def ingress(name: str = "web", namespace: str = "default", service: str = "md") -> dict[str, Any]:
    """A user's stable Ingress: the model's path and another team's path on one host."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "models.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/v2/models/md",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": service, "port": {"number": 80}}},
                            },
                            {
                                "path": "/other",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "other", "port": {"number": 80}}},
                            },
                        ]
                    },
                }
            ],
        },
    }


def routing_objects() -> list[dict[str, Any]]:
    """One user object for every router (each reads only its own)."""
    pools = [inference_pool("md-stable-pool", "stable"), inference_pool("md-canary-pool", "canary")]
    return [httproute(), virtual_service(), destination_rule(), ingress(), *pools]


ROUTINGS: dict[str, dict[str, Any] | None] = {
    "ratio": None,
    "gateway": {"gatewayAPI": {"httpRoute": "web"}},
    "gateway-pools": {
        "gatewayAPI": {
            "httpRoute": "web",
            "inferencePools": {"stable": "md-stable-pool", "canary": "md-canary-pool"},
            "canaryHeader": {"name": "x-canary", "value": "always"},
            "mirrorPercent": 10,
        }
    },
    "gateway-matches": {
        "gatewayAPI": {
            "httpRoute": "web",
            "canaryHeader": {"name": "x-canary", "value": "always"},
            "mirrorPercent": 30,
        }
    },
    "istio": {
        "istio": {
            "virtualService": "web",
            "routes": ["primary"],
            "canaryHeader": {"name": "x-canary", "value": "always"},
            "mirrorPercent": 20,
        }
    },
    "istio-subsets": {
        "istio": {"virtualService": "web", "routes": ["primary"], "destinationRule": {"name": "md"}}
    },
    "nginx": {
        "nginx": {
            "ingress": "web",
            "canaryHeader": {"name": "x-canary", "value": "always"},
            "canaryCookie": "canary",
        }
    },
}


@dataclass
class Pods:
    """What the kubelet made of one Deployment."""

    revision: str | None = None
    ready: int = 0
    updated: int = 0


@dataclass
class World:
    md: dict[str, Any]
    config: EngineConfig = CONFIG
    now: datetime = START
    # The routing objects by (kind, name): the user's, and what the router wrote.
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Routing objects the API server can't give now, with the error the glue would report.
    unreadable: dict[tuple[str, str], str] = field(default_factory=dict)
    # By track, and an A/B challenger's own by `variant:<name>`.
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Other objects applied (ConfigMaps), by (kind, name).
    applied: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, Pods] = field(default_factory=dict)
    # Tracks whose pods never become Ready (crash-looping image, no GPU to schedule on).
    broken: set[str] = field(default_factory=set)
    auto_ready: bool = True
    events: list[EventRecord] = field(default_factory=list)
    outputs: list[ReconcileOutput] = field(default_factory=list)
    # Called with every output before it is applied (property tests check invariants there).
    check: Callable[[World, ReconcileOutput], None] | None = None
    # What the registry gate resolved spec.model.uri from (ReconcileInput.model), when it did.
    registry_model: ResolvedModel | None = None
    _specs: dict[str, ModelDeploymentSpec] = field(default_factory=dict)

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.md.get("status", {})
        return status

    def model(self) -> ModelDeployment:
        """The object as the glue would validate it; the spec's CEL rules run once per spec."""
        key = json.dumps(self.md["spec"], sort_keys=True)
        if key not in self._specs:
            self._specs[key] = ModelDeployment.model_validate({**self.md, "status": {}}).spec
        return ModelDeployment.model_construct(
            api_version=self.md["apiVersion"],
            kind=self.md["kind"],
            metadata=ObjectMeta.model_validate(self.md["metadata"]),
            spec=self._specs[key],
            status=ModelDeploymentStatus.model_validate(self.md.get("status", {})),
        )

    def observed(self) -> Observed:
        deployments, variants = {}, {}
        for track, manifest in self.deployments.items():
            pods = self.pods.get(track, Pods())
            observed = ObservedDeployment(
                name=manifest["metadata"]["name"],
                track=manifest["metadata"]["labels"]["modelramp.dev/track"],
                revision=manifest["spec"]["template"]["metadata"]["labels"][REVISION_LABEL],
                spec_replicas=manifest["spec"]["replicas"],
                ready_replicas=pods.ready if pods.revision == self._revision(track) else 0,
                updated_replicas=pods.updated if pods.revision == self._revision(track) else 0,
                generation=1,
                observed_generation=1,
            )
            if track.startswith("variant:"):
                variants[track.removeprefix("variant:")] = observed
            else:
                deployments[track] = observed
        model = self.model()
        reads = []
        router = router_for(model.spec.traffic_routing, backends_of(model))
        for ref in [*router.reads(), *shadow.reads(model)]:
            key = (ref.kind, ref.name)
            if key in self.unreadable:
                reads.append(RoutingRead(ref=ref, error=self.unreadable[key]))
            else:
                reads.append(RoutingRead(ref=ref, body=copy.deepcopy(self.objects.get(key))))
        return Observed(deployments=deployments, routing=reads, variants=variants)

    def add(self, *objects: dict[str, Any]) -> World:
        """The user creates routing objects (a resourceVersion each, as the API server gives)."""
        for given in objects:
            body = copy.deepcopy(given)
            body["metadata"].setdefault("resourceVersion", "1")
            self.objects[(body["kind"], body["metadata"]["name"])] = body
        return self

    def obj(self, kind: str, name: str) -> dict[str, Any]:
        return self.objects[(kind, name)]

    @property
    def route(self) -> dict[str, Any]:
        """The HTTPRoute `web` (the Gateway API tests' route)."""
        return self.obj("HTTPRoute", "web")

    def _revision(self, track: str) -> str:
        label: str = self.deployments[track]["spec"]["template"]["metadata"]["labels"][REVISION_LABEL]
        return label

    def input(
        self, measurements: list[Measurement] | None = None, ab_windows: list[ABWindow] | None = None
    ) -> ReconcileInput:
        return ReconcileInput(
            md=self.model(),
            observed=self.observed(),
            measurements=measurements or [],
            now=self.now,
            config=self.config,
            model=self.registry_model,
            ab_windows=ab_windows or [],
        )

    def reconcile(
        self,
        measurements: list[Measurement] | None = None,
        *,
        crash_before_status: bool = False,
        crash_before_routes: bool = False,
        ab_windows: list[ABWindow] | None = None,
    ) -> ReconcileOutput:
        """One operator tick in the controller's order: observe, decide, apply and delete, write
        status, make the router's writes (unless the operator is killed before the status or
        between the status and the router's writes)."""
        out = reconcile(self.input(measurements, ab_windows))
        if self.check is not None:
            self.check(self, out)
        for manifest in out.apply:
            labels = manifest["metadata"]["labels"]
            if manifest["kind"] == "Deployment" and VARIANT_LABEL in labels:
                self.deployments[f"variant:{labels[VARIANT_LABEL]}"] = manifest
            elif manifest["kind"] == "Deployment":
                self.deployments[labels["modelramp.dev/track"]] = manifest
            else:
                self.applied[(manifest["kind"], manifest["metadata"]["name"])] = manifest
        for ref in out.delete:
            if ref.kind == "Deployment":
                self.deployments = {
                    k: m for k, m in self.deployments.items() if m["metadata"]["name"] != ref.name
                }
            self.applied.pop((ref.kind, ref.name), None)
        if crash_before_status:
            return out
        self.md["status"] = out.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.events.extend(out.events)
        self.outputs.append(out)
        if crash_before_routes:
            return out
        for write in out.routing_writes:
            key = (write.ref.kind, write.ref.name)
            live = self.objects.get(key)
            if write.method == "apply":
                body = copy.deepcopy(write.body)
            else:
                assert live is not None, f"merge patch of a missing {key}"
                assert write.resource_version == live["metadata"]["resourceVersion"], "stale patch"
                body = merge_patch(live, write.body)
            version = int(live["metadata"]["resourceVersion"]) + 1 if live else 1
            body["metadata"]["resourceVersion"] = str(version)
            self.objects[key] = body
        return out

    def kubelet(self) -> None:
        """Pods catch up with their Deployments (except broken tracks)."""
        for track, manifest in self.deployments.items():
            wanted = manifest["spec"]["replicas"]
            revision = self._revision(track)
            ready = 0 if track in self.broken else wanted
            self.pods[track] = Pods(revision=revision, ready=ready, updated=wanted)

    def tick(
        self,
        seconds: float = 1.0,
        measurements: list[Measurement] | None = None,
        ab_windows: list[ABWindow] | None = None,
    ) -> ReconcileOutput:
        """Reconcile; with `auto_ready`, let the pods catch up and reconcile again until the cluster
        stops changing (the glue's watch on the Deployments); then let time pass."""
        out = self.reconcile(measurements, ab_windows=ab_windows)
        for _ in range(20):
            if not self.auto_ready:
                break
            before = dict(self.pods), copy.deepcopy(self.objects)
            self.kubelet()
            out = self.reconcile()
            if (dict(self.pods), self.objects) == before:
                break
        self.now += timedelta(seconds=seconds)
        return out

    def set_spec(self, path: str, value: Any) -> None:
        """Edit the spec like `kubectl apply` (a dotted path of wire names); bumps the generation."""
        node = self.md["spec"]
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
        self.md["metadata"]["generation"] = self.md["metadata"].get("generation", 1) + 1

    def patch_status(self, **fields: Any) -> None:
        """A user's `modelramp promote/abort/retry` (the status subresource)."""
        self.md.setdefault("status", {}).update(fields)

    def replicas(self) -> dict[str, int]:
        return {track: manifest["spec"]["replicas"] for track, manifest in self.deployments.items()}

    def apex_selector(self) -> dict[str, str]:
        out = self.outputs[-1]
        service = next(m for m in out.apply if m["kind"] == "Service" and m["metadata"]["name"] == self.name)
        selector: dict[str, str] = service["spec"]["selector"]
        return selector

    @property
    def name(self) -> str:
        name: str = self.md["metadata"]["name"]
        return name


def model_deployment(
    strategy: dict[str, Any],
    *,
    uri: str = "models:/iris/1",
    replicas: int = 4,
    routing: dict[str, Any] | None = None,
    analysis: dict[str, Any] | None = None,
    deadline: int | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"uri": uri, "format": "torchscript"},
        "serving": {"replicas": replicas},
        "strategy": strategy,
    }
    if routing is not None:
        spec["trafficRouting"] = routing
    if analysis is not None:
        spec["analysis"] = analysis
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {
        "apiVersion": "modelramp.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "md", "namespace": "default", "uid": "uid-1", "generation": 1},
        "spec": spec,
    }


def measurements(
    world: World, verdict: Verdict, kind: str | None = None, value: float = 0.01
) -> list[Measurement]:
    """What the glue would measure now: one measurement per metric of each running analysis run
    (of `kind`, when given), all with `verdict`."""
    return [
        Measurement(metric=metric["name"], analysis=run["name"], value=value, verdict=verdict, time=world.now)
        for run in world.status.get("analysisRuns", [])
        if run["phase"] == "Running" and kind in (None, run["kind"])
        for metric in run["metrics"]
    ]
