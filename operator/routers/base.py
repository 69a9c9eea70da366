"""The one interface every traffic router implements, and the values it speaks in.

A router is built for one ModelDeployment (`registry.router_for`) and owns everything that
differs between routers: which objects it reads from the cluster (`reads`), why they can't carry
the traffic (`problem`), the traffic they give now (`in_effect`), what to write so they give the
traffic wanted (`writes`), the pods each track needs (`canary_pods`, `stable_pods`,
`canary_plan`), which track the `<name>` Service selects (`apex_track`), the share of requests
the canary really gets (`share`), and the RBAC rules it needs (`RBAC`). The engine and the
controller hold only this interface, as Flagger's `router.Interface` and Argo Rollouts'
`TrafficRoutingReconciler`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict

from modelramp.operator.api.spec import CanaryStrategy

Json = dict[str, Any]
Track = Literal["stable", "canary"]


class Weights(NamedTuple):
    """Percent of the traffic each track gets; they add up to 100."""

    stable: int
    canary: int

    @classmethod
    def of_canary(cls, canary: int) -> Weights:
        if not 0 <= canary <= 100:
            raise ValueError(f"canary weight must be within 0..100, got {canary}")
        return cls(stable=100 - canary, canary=canary)


class Traffic(NamedTuple):
    """What a router gives the canary: a weight, and whether the routes that send matching
    requests (a header, a cookie) or copies of requests (a mirror) to the canary are in force."""

    weight: int
    match_routes: bool = False


class PolicyRule(NamedTuple):
    """One RBAC rule a router needs wherever ModelDeployments live."""

    api_group: str
    resource: str
    verbs: frozenset[str]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObjectRef(_Frozen):
    """A namespaced object by API version, kind and name."""

    api_version: str
    kind: str
    name: str
    namespace: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


class RoutingRead(_Frozen):
    """One object a router asked for, as the glue read it: `body` None and no `error` is absent."""

    ref: ObjectRef
    body: Json | None = None
    error: str | None = None


def agreed_traffic(
    weights: Iterable[Weights | None], match_states: Iterable[bool] | None, published: Traffic
) -> Traffic | None:
    """The traffic the user's routes give when they all agree: one weight over all of them and,
    for a router with match routes (`match_states` not None), those routes all in force or all
    not; None while they disagree (a write is half applied, or someone edited a route)."""
    found = set(weights)
    if len(found) != 1 or None in found:
        return None
    (split,) = found
    assert split is not None
    if match_states is None:
        return Traffic(split.canary, published.match_routes)
    states = set(match_states)
    return Traffic(split.canary, states.pop()) if len(states) == 1 else None


def unreadable(reads: Reads, refs: list[ObjectRef], *, absent_ok: bool = False) -> str | None:
    """Why the first of `refs` can't be used: not read, read with an error, or (unless
    `absent_ok`) not there; None when all were read."""
    for ref in refs:
        read = reads.get(ref)
        if read is None:
            return f"{ref} was not read"
        if read.error:
            return read.error
        if read.body is None and not absent_ok:
            return f"{ref} not found"
    return None


class RoutingWrite(_Frozen):
    """One write a router wants: a JSON merge patch guarded by the resourceVersion it was computed
    from (the user's object: an edit meanwhile makes it fail with a conflict and be recomputed),
    or a server-side apply of a whole object the operator owns."""

    ref: ObjectRef
    method: Literal["merge-patch", "apply"]
    body: Json
    resource_version: str | None = None


Reads = Mapping[ObjectRef, RoutingRead]


@dataclass(frozen=True)
class Backends:
    """The ModelDeployment a router routes for: its Services and its identity (`owner`, the
    ownerReference of objects a router creates; None before the API server gave it a uid)."""

    name: str
    namespace: str
    stable: str
    canary: str
    port: int
    owner: Json | None = None
    # The pods' own port (spec.serving.port), which an InferencePool's targetPorts name.
    target_port: int = 8080

    def track_service(self, track: Track) -> str:
        return self.stable if track == "stable" else self.canary


class TrafficRouter(Protocol):
    """A router for one ModelDeployment; every method is pure."""

    RBAC: ClassVar[tuple[PolicyRule, ...]]

    def reads(self) -> list[ObjectRef]:
        """The objects the glue must read from the cluster each tick."""
        ...

    def problem(self, reads: Reads) -> str | None:
        """Why the objects read can't carry the model's traffic (for status and an Event), or None."""
        ...

    def in_effect(self, reads: Reads, published: Traffic) -> Traffic | None:
        """The traffic the router gives now (the weight as published, comparable with it); None
        while it can't be told (an object unreadable, or not routing to our backends yet)."""
        ...

    def writes(self, reads: Reads, wanted: Traffic) -> list[RoutingWrite]:
        """What to write so the router gives `wanted`; [] when it can't be written now."""
        ...

    def share(self, total: int, weight: int) -> int:
        """Percent of the requests the canary really gets when `weight` is in effect."""
        ...

    def canary_pods(self, total: int, weight: int) -> int:
        """Ready canary pods needed before `weight` may be published."""
        ...

    def stable_pods(self, total: int, weight: int) -> int:
        """Ready stable pods needed before `weight` may be published."""
        ...

    def canary_plan(self, total: int, live: int, target: int, strategy: CanaryStrategy) -> tuple[int, int]:
        """(stable, canary) pods of a canary rollout while the weight moves from `live` to `target`."""
        ...

    def apex_track(self, canary_strategy: bool, weight: int) -> Track | None:
        """The track the `<name>` Service selects at `weight` (None: both tracks' pods)."""
        ...
