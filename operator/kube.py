"""The one module that talks to the Kubernetes API server, for the operator and the control CLI.

Everything else works on plain dicts and pydantic models; this module turns them into requests:
reads, server-side apply with field manager `modelramp`, deletes, merge patches guarded by a
resourceVersion (so a concurrent change is never overwritten: the caller gets `Conflict` and
reconciles again from what is now there), and Events. Only the kinds the operator touches are
known, so no discovery round-trips are needed at start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

import kubernetes
from kubernetes.client.exceptions import ApiException

from modelramp.operator.api.resource import API_VERSION, KIND, PLURAL

FIELD_MANAGER: Final = "modelramp"
USER_AGENT: Final = "modelramp-operator"

# kind -> plural, for the kinds the operator and the CLI touch.
_PLURALS: Final = {
    "Deployment": "deployments",
    "Service": "services",
    "ConfigMap": "configmaps",  # an A/B test's assignment table, a shadow step's `<name>-shadow`
    # Traffic routers' objects (operator/routers/*): read by name, patched or applied.
    "HTTPRoute": "httproutes",
    "VirtualService": "virtualservices",
    "DestinationRule": "destinationrules",
    "Ingress": "ingresses",
    "InferencePool": "inferencepools",
    "Event": "events",
    "Secret": "secrets",  # read only: MLflow registry credentials
    KIND: PLURAL,
}

Json = dict[str, Any]


class KubeError(Exception):
    """A request the API server refused; the message names the request and the server's reason."""

    def __init__(self, what: str, status: int, reason: str) -> None:
        super().__init__(f"{what}: {status} {reason}")
        self.status = status


class Conflict(KubeError):
    """The object changed since it was read (409): read it again and decide again."""


class NamespaceTerminating(KubeError):
    """The namespace is being deleted (403 NamespaceTerminating): nothing new can be created in
    it, and everything in it is going too, so the write is dropped rather than retried."""


def connect(kubeconfig: str | None = None, user_agent: str = USER_AGENT) -> kubernetes.client.ApiClient:
    """An API client: in-cluster credentials inside a pod, else `kubeconfig` or $KUBECONFIG."""
    if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        client = kubernetes.client.ApiClient(configuration)
    else:
        client = kubernetes.config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    client.user_agent = user_agent
    return client


def resource_path(
    api_version: str, kind: str, namespace: str, name: str | None = None, subresource: str | None = None
) -> str:
    """The REST path of a namespaced object (or of its collection when `name` is None)."""
    if kind not in _PLURALS:
        raise ValueError(f"kind {kind!r} is not one the operator manages (known: {sorted(_PLURALS)})")
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{_PLURALS[kind]}"
    if name is not None:
        path += f"/{name}"
    if subresource is not None:
        path += f"/{subresource}"
    return path


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> Json:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: changed keys, and None for
    removed ones (a merge patch can't remove a key any other way)."""
    patch: Json = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or before != value:
            patch[key] = value
    return patch


class Kube:
    """Typed-enough access to the objects the operator reads and writes."""

    def __init__(self, api_client: kubernetes.client.ApiClient, field_manager: str = FIELD_MANAGER) -> None:
        self.api_client = api_client
        self.field_manager = field_manager

    def _request(
        self,
        method: Literal["GET", "POST", "PATCH", "DELETE"],
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> Json:
        what = f"{method} {path}"
        serialized = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(*serialized)
            response.read()  # type: ignore[no-untyped-call]
        except ApiException as error:  # raised by the REST layer for transport-level refusals
            raise response_error(what, error.status or 0, error.body) from error
        if not 200 <= response.status <= 299:
            raise response_error(what, response.status, response.data)
        data: Json = json.loads(response.data) if response.data else {}
        return data

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None:
        """The object, or None when it doesn't exist."""
        try:
            return self._request("GET", resource_path(api_version, kind, namespace, name))
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def list(
        self, api_version: str, kind: str, namespace: str, *, field_selector: str | None = None
    ) -> list[Json]:
        query = [("fieldSelector", field_selector)] if field_selector else []
        items: list[Json] = self._request("GET", resource_path(api_version, kind, namespace), query=query)[
            "items"
        ]
        return items

    def apply(self, manifest: Mapping[str, Any]) -> Json:
        """Server-side apply; the operator owns every field it sets (force, like a controller)."""
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        query = [("fieldManager", self.field_manager), ("force", "true")]
        return self._request("PATCH", path, dict(manifest), "application/apply-patch+yaml", query)

    def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str | None = None,
        subresource: str | None = None,
    ) -> Json:
        """A JSON merge patch; with `resource_version`, it fails with Conflict if the object changed."""
        body = dict(patch)
        if resource_version is not None:
            body["metadata"] = {**body.get("metadata", {}), "resourceVersion": resource_version}
        path = resource_path(api_version, kind, namespace, name, subresource)
        query = [("fieldManager", self.field_manager)]
        return self._request("PATCH", path, body, "application/merge-patch+json", query)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Deletes the object (its dependents in the background); absent is fine."""
        path = resource_path(api_version, kind, namespace, name)
        try:
            self._request("DELETE", path, {"propagationPolicy": "Background"})
        except KubeError as error:
            if error.status != 404:
                raise

    def get_model_deployment(self, namespace: str, name: str) -> Json | None:
        return self.get(API_VERSION, KIND, namespace, name)

    def patch_model_deployment(
        self, namespace: str, name: str, patch: Mapping[str, Any], resource_version: str | None
    ) -> Json:
        """Merge-patches the object itself (metadata: the operator never writes spec)."""
        return self.patch(API_VERSION, KIND, namespace, name, patch, resource_version=resource_version)

    def patch_model_deployment_status(
        self, namespace: str, name: str, patch: Mapping[str, Any], resource_version: str | None
    ) -> Json:
        """Merge-patches `status` through the status subresource (spec is the user's, or Git's)."""
        return self.patch(
            API_VERSION,
            KIND,
            namespace,
            name,
            {"status": patch},
            resource_version=resource_version,
            subresource="status",
        )

    def create_event(
        self, involved: Mapping[str, Any], type_: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        """A core/v1 Event about `involved` (a whole object as read), as `kubectl describe` shows them."""
        meta = involved["metadata"]
        # Microseconds, and no second-granular first/lastTimestamp: `kubectl describe` and
        # `kubectl events` order by lastTimestamp when it is set, which puts the several Events of
        # one reconcile (RolloutStarted, WeightSet, AnalysisStarted) in any order within a second.
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "eventTime": now,
            "action": reason,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": socket.gethostname()[:128],
        }
        self._request("POST", resource_path("v1", "Event", meta["namespace"]), event)


def response_error(what: str, status: int, body: bytes | str | None) -> KubeError:
    """The typed error for a refused request, from the API server's Status answer."""
    reason = body.decode(errors="replace") if isinstance(body, bytes) else (body or "")
    causes: list[Any] = []
    with contextlib.suppress(ValueError, AttributeError):
        answer = json.loads(reason)
        reason = answer.get("message", reason)
        causes = (answer.get("details") or {}).get("causes") or []
    kind: type[KubeError] = KubeError
    if status == 409:
        kind = Conflict
    elif status == 403 and (
        any(cause.get("reason") == "NamespaceTerminating" for cause in causes)
        or "because it is being terminated" in reason
    ):
        kind = NamespaceTerminating
    return kind(what, status, reason)
