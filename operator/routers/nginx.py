"""The ingress-nginx router: a canary Ingress beside the user's stable Ingress.

The user owns the stable Ingress, whose paths send the model's traffic to `<name>` or
`<name>-stable`. The operator owns `<ingress>-canary` (created on the first tick, deleted with the
ModelDeployment through its ownerReference): the same hosts and paths, each to `<name>-canary`,
with ingress-nginx's canary annotations: `canary-weight`, and while a rollout runs,
`canary-by-header`/`canary-by-header-value` and `canary-by-cookie` when the spec asks for them.
ingress-nginx checks the header first, then the cookie, then the weight. The canary Ingress is
server-side applied whole, so an annotation left out of the next apply is removed.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from modelramp.operator.api.spec import NginxRouting
from modelramp.operator.routers.base import (
    Backends,
    Json,
    ObjectRef,
    PolicyRule,
    Reads,
    RoutingWrite,
    Traffic,
    unreadable,
)
from modelramp.operator.routers.splitting import SplittingRouter

API_VERSION = "networking.k8s.io/v1"
PREFIX = "nginx.ingress.kubernetes.io/"
CANARY, WEIGHT = PREFIX + "canary", PREFIX + "canary-weight"
BY_HEADER, BY_HEADER_VALUE, BY_COOKIE = (
    PREFIX + "canary-by-header",
    PREFIX + "canary-by-header-value",
    PREFIX + "canary-by-cookie",
)
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
NAME_LABEL = "modelramp.dev/name"


class NginxRouter(SplittingRouter):
    """`TrafficRouter` over the user's Ingress and the operator's canary Ingress."""

    # Both read by name; the canary Ingress is server-side applied (a patch that may create) and
    # goes away with its owner (garbage collection), so no delete.
    RBAC: ClassVar[tuple[PolicyRule, ...]] = (
        PolicyRule("networking.k8s.io", "ingresses", frozenset({"get", "create", "patch"})),
    )

    def __init__(self, spec: NginxRouting, backends: Backends) -> None:
        self.spec = spec
        self.backends = backends
        self.stable = self._ref(spec.ingress)
        self.canary = self._ref(f"{spec.ingress}-canary")

    def _ref(self, name: str) -> ObjectRef:
        namespace = self.backends.namespace
        return ObjectRef(api_version=API_VERSION, kind="Ingress", name=name, namespace=namespace)

    def reads(self) -> list[ObjectRef]:
        return [self.stable, self.canary]

    def _body(self, reads: Reads, ref: ObjectRef) -> Json | None:
        read = reads.get(ref)
        return read.body if read is not None else None

    def problem(self, reads: Reads) -> str | None:
        # The canary Ingress is ours to create: only the stable one must be there.
        problem = unreadable(reads, self.reads(), absent_ok=True)
        if problem is not None:
            return problem
        stable = self._body(reads, self.stable)
        if stable is None:
            return f"{self.stable} not found"
        if (stable["metadata"].get("annotations") or {}).get(CANARY) == "true":
            return f"{self.stable} is itself a canary Ingress ({CANARY}: true)"
        if not self._canary_rules(stable):
            ours = f"{self.backends.name} or {self.backends.stable}"
            return f"{self.stable}: no path sends traffic to the Service {ours}"
        if self.backends.owner is None:
            return f"ModelDeployment {self.backends.name} has no uid yet to own {self.canary}"
        canary = self._body(reads, self.canary)
        if canary is not None:
            owners = {ref.get("uid") for ref in canary["metadata"].get("ownerReferences") or []}
            if self.backends.owner["uid"] not in owners:
                return f"{self.canary} exists and is not owned by ModelDeployment {self.backends.name}"
        return None

    def _canary_rules(self, stable: Json) -> list[Json]:
        """The stable Ingress's rules, keeping only the paths to our Services, sent to the canary."""
        ours = {self.backends.name, self.backends.stable}
        rules = []
        for rule in stable.get("spec", {}).get("rules") or []:
            paths = []
            for path in (rule.get("http") or {}).get("paths") or []:
                service = (path.get("backend") or {}).get("service") or {}
                if service.get("name") in ours:
                    moved = copy.deepcopy(path)
                    moved["backend"]["service"]["name"] = self.backends.canary
                    paths.append(moved)
            if paths:
                rules.append({**({"host": rule["host"]} if "host" in rule else {}), "http": {"paths": paths}})
        return rules

    def _annotations(self, wanted: Traffic) -> dict[str, str]:
        annotations = {CANARY: "true", WEIGHT: str(wanted.weight)}
        if wanted.match_routes and self.spec.canary_header is not None:
            annotations[BY_HEADER] = self.spec.canary_header.name
            annotations[BY_HEADER_VALUE] = self.spec.canary_header.value
        if wanted.match_routes and self.spec.canary_cookie is not None:
            annotations[BY_COOKIE] = self.spec.canary_cookie
        return annotations

    def _manifest(self, stable: Json, wanted: Traffic) -> Json:
        annotations = self._annotations(wanted)
        ingress_class = (stable["metadata"].get("annotations") or {}).get(CLASS_ANNOTATION)
        if ingress_class is not None:
            annotations[CLASS_ANNOTATION] = ingress_class
        spec: dict[str, Any] = {"rules": self._canary_rules(stable)}
        if "ingressClassName" in stable.get("spec", {}):
            spec["ingressClassName"] = stable["spec"]["ingressClassName"]
        return {
            "apiVersion": API_VERSION,
            "kind": "Ingress",
            "metadata": {
                "name": self.canary.name,
                "namespace": self.canary.namespace,
                "labels": {"app.kubernetes.io/managed-by": "modelramp", NAME_LABEL: self.backends.name},
                "annotations": annotations,
                "ownerReferences": [self.backends.owner] if self.backends.owner else [],
            },
            "spec": spec,
        }

    def in_effect(self, reads: Reads, published: Traffic) -> Traffic | None:
        stable, canary = self._body(reads, self.stable), self._body(reads, self.canary)
        if stable is None or canary is None or self.problem(reads):
            return None
        desired = self._manifest(stable, published)
        if canary.get("spec") != desired["spec"]:
            return None  # the stable Ingress's paths or class changed: the canary's must follow
        annotations = canary["metadata"].get("annotations") or {}
        if annotations.get(CANARY) != "true" or not annotations.get(WEIGHT, "").isdigit():
            return None
        weight = int(annotations[WEIGHT])
        if self.spec.canary_header is None and self.spec.canary_cookie is None:
            return Traffic(weight, published.match_routes)
        for match_routes in (False, True):
            wanted = self._annotations(Traffic(weight, match_routes))
            if {k: v for k, v in annotations.items() if k.startswith(PREFIX)} == wanted:
                return Traffic(weight, match_routes)
        return None

    def writes(self, reads: Reads, wanted: Traffic) -> list[RoutingWrite]:
        stable = self._body(reads, self.stable)
        if stable is None or self.problem(reads):
            return []
        return [RoutingWrite(ref=self.canary, method="apply", body=self._manifest(stable, wanted))]
