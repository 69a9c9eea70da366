"""What the operator last saw of the objects it watches, kept from watch events (an informer cache).

Reading owned objects from here instead of the API server keeps an idle operator at zero
requests. Writes the operator makes are put in too (read-your-writes), so the next reconcile
never acts on a copy older than its own last write; a watch event older than what is cached is
ignored (resourceVersions are compared as the numbers etcd makes them).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from modelramp.operator.api.resource import GROUP, KIND

Json = dict[str, Any]


class Key(NamedTuple):
    """A ModelDeployment."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def key_of(body: Json) -> Key:
    return Key(body["metadata"]["namespace"], body["metadata"]["name"])


def owner_of(body: Json) -> Key | None:
    """The ModelDeployment that controls `body` (its controller ownerReference), if any."""
    for ref in body.get("metadata", {}).get("ownerReferences", []):
        if ref.get("controller") and ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(GROUP):
            return Key(body["metadata"]["namespace"], ref["name"])
    return None


def _newer(candidate: Json, current: Json | None) -> bool:
    if current is None:
        return True
    new_rv = candidate.get("metadata", {}).get("resourceVersion", "")
    old_rv = current.get("metadata", {}).get("resourceVersion", "")
    if new_rv.isdigit() and old_rv.isdigit():
        return int(new_rv) >= int(old_rv)
    return True


class ObjectCache:
    def __init__(self) -> None:
        self._model_deployments: dict[Key, Json] = {}
        # owner -> (kind, name) -> object
        self._owned: dict[Key, dict[tuple[str, str], Json]] = {}

    def put_model_deployment(self, body: Json) -> None:
        key = key_of(body)
        if _newer(body, self._model_deployments.get(key)):
            self._model_deployments[key] = body

    def drop_model_deployment(self, key: Key) -> None:
        self._model_deployments.pop(key, None)

    def model_deployment(self, key: Key) -> Json | None:
        return self._model_deployments.get(key)

    def put_owned(self, kind: str, body: Json) -> Key | None:
        """Caches an object a ModelDeployment owns; returns that owner (None: not ours)."""
        owner = owner_of(body)
        if owner is not None:
            objects = self._owned.setdefault(owner, {})
            slot = (kind, body["metadata"]["name"])
            if _newer(body, objects.get(slot)):
                objects[slot] = body
        return owner

    def drop_owned(self, kind: str, body: Json) -> Key | None:
        owner = owner_of(body)
        if owner is not None:
            self._owned.get(owner, {}).pop((kind, body["metadata"]["name"]), None)
        return owner

    def owned(self, owner: Key, kind: str) -> list[Json]:
        return [body for (k, _), body in self._owned.get(owner, {}).items() if k == kind]

    def owned_object(self, owner: Key, kind: str, name: str) -> Json | None:
        return self._owned.get(owner, {}).get((kind, name))
