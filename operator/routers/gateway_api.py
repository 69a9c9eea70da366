"""The Gateway API router: weighted `backendRefs` on the user's HTTPRoute.

The user owns the HTTPRoute (parents, hostnames, matches, filters); the operator owns the
backends of its rules: every rule sends `100 - w` to `<name>-stable` and `w` to `<name>-canary`.
When the spec asks for them, while a rollout runs, it also owns a RequestMirror filter to the canary
on every rule (`mirrorPercent`), and rules of its own named `<name>-canary-header-<rule>` (`canaryHeader`):
each a copy of a user's rule whose matches also require the header, to the canary alone (the Gateway
API prefers the match with more header matches, so they win over the rule they copy).
With `inferencePools`, the backends are two InferencePools of the user's (Gateway API Inference
Extension v1, each with its endpoint picker: an endpoint picker serves one pool, so the pools come
with the user's install of them) instead of the per-track Services; the operator only reads them,
to check that each selects its track's pods on the serving port, and weights them the same way.
`spec.rules` is an atomic list in the Gateway API schema, so the patch carries every rule in full
(copied from the live route) as a JSON merge patch of `spec.rules`, guarded by the resourceVersion
it was computed from; the route's other fields are left alone.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from modelramp.operator.api.spec import GatewayApiRouting
from modelramp.operator.routers.base import (
    Backends,
    Json,
    ObjectRef,
    PolicyRule,
    Reads,
    RoutingWrite,
    Track,
    Traffic,
    Weights,
    agreed_traffic,
    unreadable,
)
from modelramp.operator.routers.splitting import SplittingRouter

GATEWAY_GROUP = "gateway.networking.k8s.io"
API_VERSION = f"{GATEWAY_GROUP}/v1"
INFERENCE_GROUP = "inference.networking.k8s.io"
INFERENCE_API_VERSION = f"{INFERENCE_GROUP}/v1"
NAME_LABEL = "modelramp.dev/name"
TRACK_LABEL = "modelramp.dev/track"
TRACKS: tuple[Track, Track] = ("stable", "canary")


def _rules(route: Json) -> list[dict[str, Any]]:
    rules = route.get("spec", {}).get("rules")
    if not isinstance(rules, list) or not rules:
        name = route.get("metadata", {}).get("name", "?")
        raise ValueError(f"HTTPRoute {name}: spec.rules is empty, so there is no rule to route to the model")
    return rules


def _service(service: str, weight: int, port: int) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": service, "port": port, "weight": weight}


def _pool(pool: str, weight: int) -> dict[str, Any]:
    # An InferencePool backendRef has no port: the pool's targetPorts say where its pods listen.
    return {"group": INFERENCE_GROUP, "kind": "InferencePool", "name": pool, "weight": weight}


class GatewayApiRouter(SplittingRouter):
    """`TrafficRouter` over the user's HTTPRoute."""

    # Read by name and patched; nothing watches HTTPRoutes. InferencePools are only read.
    RBAC: ClassVar[tuple[PolicyRule, ...]] = (
        PolicyRule(GATEWAY_GROUP, "httproutes", frozenset({"get", "patch"})),
        PolicyRule(INFERENCE_GROUP, "inferencepools", frozenset({"get"})),
    )

    def __init__(self, spec: GatewayApiRouting, backends: Backends) -> None:
        self.spec = spec
        self.backends = backends
        self.header_prefix = f"{backends.canary}-header-"
        self.route = ObjectRef(
            api_version=API_VERSION,
            kind="HTTPRoute",
            name=spec.http_route,
            namespace=spec.namespace or backends.namespace,
        )
        pools = spec.inference_pools
        self.pools: dict[Track, ObjectRef] = {}
        if pools is not None:
            self.pools = {
                track: ObjectRef(
                    api_version=INFERENCE_API_VERSION,
                    kind="InferencePool",
                    name=pools.stable if track == "stable" else pools.canary,
                    namespace=backends.namespace,
                )
                for track in TRACKS
            }

    def reads(self) -> list[ObjectRef]:
        return [self.route, *self.pools.values()]

    def _backend(self, track: Track, weight: int) -> dict[str, Any]:
        if self.pools:
            return _pool(self.pools[track].name, weight)
        return _service(self.backends.track_service(track), weight, self.backends.port)

    def _weights(self, rule: Json) -> Weights | None:
        """The canary's share of one rule: it must split between exactly our two backends."""
        kind = "InferencePool" if self.pools else "Service"
        names = {track: self._backend(track, 0)["name"] for track in TRACKS}
        refs = {ref.get("name"): ref for ref in rule.get("backendRefs") or []}
        if set(refs) != set(names.values()) or len(rule["backendRefs"]) != 2:
            return None
        if any(ref.get("kind", "Service") != kind for ref in refs.values()):
            return None
        # An unset weight is 1 in the Gateway API.
        stable_weight = int(refs[names["stable"]].get("weight", 1))
        canary_weight = int(refs[names["canary"]].get("weight", 1))
        if stable_weight + canary_weight == 0:
            return None
        return Weights.of_canary(round(100 * canary_weight / (stable_weight + canary_weight)))

    def _pool_problem(self, reads: Reads) -> str | None:
        """Why a pool can't carry its track: it must select exactly the track's pods of this
        ModelDeployment (its endpoint picker picks among those) on the serving port."""
        for track, ref in self.pools.items():
            spec = (reads[ref].body or {}).get("spec") or {}
            labels = (spec.get("selector") or {}).get("matchLabels") or {}
            wanted = {NAME_LABEL: self.backends.name, TRACK_LABEL: track}
            if any(labels.get(key) != value for key, value in wanted.items()):
                shown = ", ".join(f"{key}: {value}" for key, value in wanted.items())
                return f"{ref}: selector.matchLabels must hold {shown} (the {track} pods), has {labels}"
            ports = [port.get("number") for port in spec.get("targetPorts") or []]
            if self.backends.target_port not in ports:
                return f"{ref}: targetPorts {ports} lack the serving port {self.backends.target_port}"
        return None

    def _body(self, reads: Reads) -> Json | None:
        read = reads.get(self.route)
        return read.body if read is not None else None

    def problem(self, reads: Reads) -> str | None:
        problem = unreadable(reads, self.reads())
        body = self._body(reads)
        if problem is not None or body is None:
            return problem
        try:
            _rules(body)
        except ValueError as error:
            return str(error)
        return self._pool_problem(reads)

    def _ours(self, rule: Json) -> bool:
        return str(rule.get("name", "")).startswith(self.header_prefix)

    def _user_rules(self, body: Json) -> list[tuple[str, Json]]:
        """(key, rule) of the user's rules: the rule's name, or its position when unnamed."""
        rules = [rule for rule in _rules(body) if not self._ours(rule)]
        return [(str(rule.get("name") or index), rule) for index, rule in enumerate(rules)]

    def _is_mirror(self, entry: Any) -> bool:
        """Whether a filter is our RequestMirror to the canary (whatever its percent)."""
        if not isinstance(entry, dict) or entry.get("type") != "RequestMirror":
            return False
        target = (entry.get("requestMirror") or {}).get("backendRef") or {}
        return bool(target.get("name") == self.backends.canary)

    def _mirror(self) -> Json:
        target = {"group": "", "kind": "Service", "name": self.backends.canary, "port": self.backends.port}
        return {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": target, "percent": self.spec.mirror_percent},
        }

    def in_effect(self, reads: Reads, published: Traffic) -> Traffic | None:
        body = self._body(reads)
        if body is None or self.problem(reads):
            return None
        user = self._user_rules(body)
        weights = [self._weights(rule) for _, rule in user]
        if self.spec.canary_header is None and self.spec.mirror_percent is None:
            return agreed_traffic(weights, None, published)
        present = {rule.get("name") for rule in _rules(body) if self._ours(rule)}
        states = []
        for key, rule in user:
            if self.spec.canary_header is not None:
                states.append(self.header_prefix + key in present)
            if self.spec.mirror_percent is not None:
                states.append(self._mirror() in (rule.get("filters") or []))
        return agreed_traffic(weights, states, published)

    def writes(self, reads: Reads, wanted: Traffic) -> list[RoutingWrite]:
        body = self._body(reads)
        if body is None or self.problem(reads):
            return []
        split = Weights.of_canary(wanted.weight)
        rules = []
        for key, rule in self._user_rules(body):
            written = copy.deepcopy(rule)
            written["backendRefs"] = [
                self._backend("stable", split.stable),
                self._backend("canary", split.canary),
            ]
            if self.spec.mirror_percent is not None:
                filters = [f for f in written.get("filters") or [] if not self._is_mirror(f)]
                filters += [self._mirror()] if wanted.match_routes else []
                if filters:
                    written["filters"] = filters
                else:
                    written.pop("filters", None)
            if self.spec.canary_header is not None and wanted.match_routes:
                rules.append(self._header_rule(key, rule))
            rules.append(written)
        return [
            RoutingWrite(
                ref=self.route,
                method="merge-patch",
                body={"spec": {"rules": rules}},
                resource_version=body.get("metadata", {}).get("resourceVersion"),
            )
        ]

    def _header_rule(self, key: str, rule: Json) -> Json:
        """A copy of `rule` that takes only requests with the canary header, to the canary."""
        header = self.spec.canary_header
        assert header is not None
        condition = {"type": "Exact", "name": header.name, "value": header.value}
        copied = copy.deepcopy(rule)
        copied["name"] = self.header_prefix + key
        copied["matches"] = [
            {**match, "headers": [*(match.get("headers") or []), condition]}
            for match in rule.get("matches") or [{}]
        ]
        filters = [f for f in rule.get("filters") or [] if not self._is_mirror(f)]
        if filters:
            copied["filters"] = filters
        else:
            copied.pop("filters", None)
        copied["backendRefs"] = [self._backend("canary", 1)]
        return copied
