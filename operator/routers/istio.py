"""The Istio router: weighted destinations on the named HTTP routes of the user's VirtualService,
a header-match route to the canary before each of them, and a mirror of their requests.

The user owns the VirtualService (hosts, gateways, matches, retries, rewrites); the operator owns
the `route` destinations of the managed routes (`spec.trafficRouting.istio.routes`, all by
default), and, when the spec asks for them, the `mirror`/`mirrorPercentage` of those routes and
routes of its own named `<name>-canary-header-<route>`, each a copy of a managed route whose matches
also require the canary header and whose only destination is the canary. The destinations are the
per-track Services `<name>-stable`/`<name>-canary`, or the subsets of a DestinationRule (whose host
is then the `<name>` Service, in front of both tracks). The operator only reads the
DestinationRule: it checks that the subsets select the tracks' pods. `spec.http` is an atomic
list, so the patch carries every route whole, guarded by the resourceVersion it was read at.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from modelramp.operator.api.spec import IstioRouting
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

ISTIO_GROUP = "networking.istio.io"
API_VERSION = f"{ISTIO_GROUP}/v1"
TRACK_LABEL = "modelramp.dev/track"


class IstioRouter(SplittingRouter):
    """`TrafficRouter` over the user's VirtualService (and DestinationRule)."""

    RBAC: ClassVar[tuple[PolicyRule, ...]] = (
        PolicyRule(ISTIO_GROUP, "virtualservices", frozenset({"get", "patch"})),
        PolicyRule(ISTIO_GROUP, "destinationrules", frozenset({"get"})),
    )

    def __init__(self, spec: IstioRouting, backends: Backends) -> None:
        self.spec = spec
        self.backends = backends
        self.service = self._ref("VirtualService", spec.virtual_service)
        rule = spec.destination_rule
        self.rule = self._ref("DestinationRule", rule.name) if rule else None
        self.header_prefix = f"{backends.canary}-header-"

    def _ref(self, kind: str, name: str) -> ObjectRef:
        return ObjectRef(api_version=API_VERSION, kind=kind, name=name, namespace=self.backends.namespace)

    def reads(self) -> list[ObjectRef]:
        return [self.service, *([self.rule] if self.rule else [])]

    # --- what is there ----------------------------------------------------------------------------

    def problem(self, reads: Reads) -> str | None:
        problem = unreadable(reads, self.reads())
        if problem is not None:
            return problem
        http = self._http(reads)
        if not http:
            return f"{self.service}: spec.http is empty, so there is no route to the model"
        names = [route.get("name") for route in http if not self._ours(route)]
        missing = [name for name in self.spec.routes or [] if name not in names]
        if missing:
            return f"{self.service}: no HTTP route named {', '.join(missing)} (routes: {names})"
        return self._subset_problem(reads)

    def _subset_problem(self, reads: Reads) -> str | None:
        if self.rule is None or self.spec.destination_rule is None:
            return None
        body = reads[self.rule].body or {}
        subsets = {subset.get("name"): subset for subset in body.get("spec", {}).get("subsets") or []}
        config = self.spec.destination_rule
        for track, name in (("stable", config.stable_subset), ("canary", config.canary_subset)):
            subset = subsets.get(name)
            if subset is None:
                return f"{self.rule}: no subset named {name} (subsets: {sorted(map(str, subsets))})"
            if (subset.get("labels") or {}).get(TRACK_LABEL) != track:
                wanted = f"labels {TRACK_LABEL}: {track}"
                return f"{self.rule}: subset {name} must select the {track} pods ({wanted})"
        if not body.get("spec", {}).get("host"):
            return f"{self.rule}: spec.host is empty"
        return None

    def _http(self, reads: Reads) -> list[Json]:
        read = reads.get(self.service)
        body = read.body if read is not None else None
        http = (body or {}).get("spec", {}).get("http")
        return http if isinstance(http, list) else []

    def _ours(self, route: Json) -> bool:
        return str(route.get("name", "")).startswith(self.header_prefix)

    def _managed(self, reads: Reads) -> list[tuple[str, Json]]:
        """(key, route) of the managed routes: the route's name, or its position when unnamed."""
        routes = [route for route in self._http(reads) if not self._ours(route)]
        keyed = [(str(route.get("name") or index), route) for index, route in enumerate(routes)]
        if self.spec.routes is None:
            return keyed
        return [(key, route) for key, route in keyed if route.get("name") in self.spec.routes]

    # --- destinations -----------------------------------------------------------------------------

    def _destination(self, reads: Reads, track: Track) -> Json:
        config = self.spec.destination_rule
        if self.rule is None or config is None:
            return {"host": self.backends.track_service(track)}
        host = (reads[self.rule].body or {}).get("spec", {}).get("host")
        return {"host": host, "subset": config.stable_subset if track == "stable" else config.canary_subset}

    def _is(self, destination: Any, wanted: Json) -> bool:
        return isinstance(destination, dict) and all(destination.get(k) == v for k, v in wanted.items())

    def _weights(self, reads: Reads, route: Json) -> Weights | None:
        entries = route.get("route") or []
        stable, canary = self._destination(reads, "stable"), self._destination(reads, "canary")
        found = {}
        for entry in entries:
            destination = entry.get("destination")
            track = next(
                (t for t, d in (("stable", stable), ("canary", canary)) if self._is(destination, d)), None
            )
            if track is None or track in found:
                return None
            # A lone destination's unset weight is 100.
            found[track] = int(entry.get("weight", 100 if len(entries) == 1 else 0))
        total = sum(found.values())
        if not found or total == 0:
            return None
        return Weights.of_canary(round(100 * found.get("canary", 0) / total))

    def _mirrored(self, reads: Reads, route: Json) -> bool:
        return self._is(route.get("mirror"), self._destination(reads, "canary")) and (
            route.get("mirrorPercentage", {}).get("value") == float(self.spec.mirror_percent or 0)
        )

    # --- the interface ------------------------------------------------------------------------------

    def in_effect(self, reads: Reads, published: Traffic) -> Traffic | None:
        if self.problem(reads):
            return None
        managed = self._managed(reads)
        weights = [self._weights(reads, route) for _, route in managed]
        if self.spec.canary_header is None and self.spec.mirror_percent is None:
            return agreed_traffic(weights, None, published)
        present = {route.get("name") for route in self._http(reads) if self._ours(route)}
        states = []
        for key, route in managed:
            if self.spec.canary_header is not None:
                states.append(self.header_prefix + key in present)
            if self.spec.mirror_percent is not None:
                states.append(self._mirrored(reads, route))
        return agreed_traffic(weights, states, published)

    def writes(self, reads: Reads, wanted: Traffic) -> list[RoutingWrite]:
        if self.problem(reads):
            return []
        split = Weights.of_canary(wanted.weight)
        managed = {id(route): key for key, route in self._managed(reads)}
        http = []
        for route in self._http(reads):
            if self._ours(route):
                continue
            key = managed.get(id(route))
            if key is None:
                http.append(route)
                continue
            written = copy.deepcopy(route)
            written["route"] = [
                {"destination": self._destination(reads, "stable"), "weight": split.stable},
                {"destination": self._destination(reads, "canary"), "weight": split.canary},
            ]
            if self.spec.mirror_percent is not None:
                written.pop("mirror", None)
                written.pop("mirrorPercentage", None)
                if wanted.match_routes:
                    written["mirror"] = self._destination(reads, "canary")
                    written["mirrorPercentage"] = {"value": float(self.spec.mirror_percent)}
            if self.spec.canary_header is not None and wanted.match_routes:
                http.append(self._header_route(reads, key, route))
            http.append(written)
        body = (reads[self.service].body or {}).get("metadata", {})
        return [
            RoutingWrite(
                ref=self.service,
                method="merge-patch",
                body={"spec": {"http": http}},
                resource_version=body.get("resourceVersion"),
            )
        ]

    def _header_route(self, reads: Reads, key: str, route: Json) -> Json:
        """A copy of `route` that takes only requests with the canary header, to the canary."""
        header = self.spec.canary_header
        assert header is not None
        condition = {header.name.lower(): {"exact": header.value}}
        copied = {k: copy.deepcopy(v) for k, v in route.items() if k not in ("mirror", "mirrorPercentage")}
        copied["name"] = self.header_prefix + key
        copied["match"] = [
            {**match, "headers": {**(match.get("headers") or {}), **condition}}
            for match in route.get("match") or [{}]
        ]
        copied["route"] = [{"destination": self._destination(reads, "canary"), "weight": 100}]
        return copied

    def apex_track(self, canary_strategy: bool, weight: int) -> Track | None:
        # A DestinationRule's host is `<name>`: its subsets split that Service's pods by track.
        return None if self.rule is not None else super().apex_track(canary_strategy, weight)
