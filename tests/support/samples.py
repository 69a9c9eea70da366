"""The samples in manifests/samples as the cluster tests apply them: which ones run on kwok, and
the objects a user creates before applying one (the routing objects its router reads)."""

from __future__ import annotations

from typing import Any

import yaml

from modelramp.operator.api import ModelDeployment
from modelramp.operator.rollout.objects import backends_of
from modelramp.operator.routers.base import ObjectRef
from modelramp.operator.routers.registry import router_for
from support.api_documents import SAMPLES, load_yaml
from support.operator import (
    ModelDeployments,
    destination_rule,
    http_route,
    inference_pool,
    ingress,
    virtual_service,
)


def prerequisites(md: ModelDeployment) -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace, object) the user must create before applying `md`: the routing objects its
    router reads (all but those the operator owns), the pods' ServiceAccount and the registry's
    credentials Secret."""
    name = md.metadata.name or ""
    istio = md.spec.traffic_routing.istio
    gateway = md.spec.traffic_routing.gateway_api
    pools = gateway.inference_pools if gateway else None

    def user_object(ref: ObjectRef) -> dict[str, Any] | None:
        if ref.kind == "HTTPRoute":
            return http_route(ref.name)
        if ref.kind == "VirtualService":
            return virtual_service(ref.name, name, istio.routes if istio else None)
        if ref.kind == "DestinationRule":
            return destination_rule(ref.name, name)
        if ref.kind == "Ingress" and not ref.name.endswith("-canary"):
            return ingress(ref.name, name)
        if ref.kind == "InferencePool" and pools is not None:
            track = "stable" if ref.name == pools.stable else "canary"
            return inference_pool(ref.name, track, name, md.spec.serving.port)
        return None

    found: list[tuple[str | None, dict[str, Any]]] = []
    for ref in router_for(md.spec.traffic_routing, backends_of(md)).reads():
        body = user_object(ref)
        if body is not None:
            found.append((ref.namespace or None, body))
    template = md.spec.serving.pod_template
    account = template.spec.get("serviceAccountName") if template and template.spec else None
    if account:
        found.append((None, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}}))
    registry = md.spec.model.registry
    if registry is not None and registry.secret_ref is not None:
        # A user's registry credentials; the tests' samples run against an open server, which
        # ignores them (tests/cluster/test_operator_registry.py checks credentials that matter).
        credentials = {"MLFLOW_TRACKING_USERNAME": "modelramp", "MLFLOW_TRACKING_PASSWORD": "sample"}
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": registry.secret_ref.name}}
        found.append((None, secret | {"stringData": credentials}))
    return found


# manifests/e2e/ runs real pods on node-real-1 with the serving image (`make e2e-rollout` drives
# it), which kwok's fake nodes can't stand in for; every other sample runs on kwok.
ON_KWOK = [path for path in SAMPLES if "manifests/e2e/" not in str(path)]
# Of those, the samples whose model is a `models:/` URI need an MLflow registry holding that version
# (tests/cluster/test_samples_rollout.py runs one).
UNREGISTERED = [
    path for path in ON_KWOK if not load_yaml(path)["spec"]["model"]["uri"].startswith("models:/")
]


def create_prerequisites(mds: ModelDeployments, sample: dict[str, Any]) -> None:
    """Creates what `sample` needs (prerequisites), as its user would, before it is applied."""
    md = ModelDeployment.model_validate(
        {**sample, "metadata": {**sample["metadata"], "namespace": mds.namespace}}
    )
    for namespace, body in prerequisites(md):
        where = namespace or mds.namespace
        mds.kube.kubectl("create", "namespace", where, check=False)
        mds.kube.kubectl("-n", where, "apply", "-f", "-", input=yaml.safe_dump(body))
