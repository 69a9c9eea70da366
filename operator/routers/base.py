"""The interface every traffic router implements, and the weights it speaks in."""

from __future__ import annotations

from typing import NamedTuple, Protocol, TypeVar

RouteT = TypeVar("RouteT")


class Weights(NamedTuple):
    """Percent of the traffic each track gets; they add up to 100."""

    stable: int
    canary: int

    @classmethod
    def of_canary(cls, canary: int) -> Weights:
        if not 0 <= canary <= 100:
            raise ValueError(f"canary weight must be within 0..100, got {canary}")
        return cls(stable=100 - canary, canary=canary)


class TrafficRouter(Protocol[RouteT]):
    """A router over routing objects of type `RouteT` (an HTTPRoute, a replica split, ...)."""

    def desired_route(self, route: RouteT, stable: str, canary: str, weight: int) -> RouteT:
        """What to write so that `weight` percent goes to the `canary` backend, the rest to `stable`."""
        ...

    def weights(self, route: RouteT, stable: str, canary: str) -> Weights | None:
        """The weights the routing object gives now; None when it doesn't route to our backends."""
        ...
