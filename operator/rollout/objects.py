"""Pure builders of the objects a ModelDeployment owns (`get_*`, as in crate-operator).

Deployments `<name>-stable` and `<name>-canary` (blue-green: active and preview), Services `<name>`
(what clients call), `<name>-stable` and `<name>-canary`. Every object carries an ownerReference
to the ModelDeployment, so deleting it removes them. Pod labels tell the tracks apart for
Prometheus (`modelramp.dev/name`, `modelramp.dev/track`, `modelramp.dev/revision`); the selectors
use only name and track, because a Deployment's selector can never change. Pod annotations name
the registry version, its run and its source, which never change for a version: the pods of a
revision get them at their first apply and keep them, so they restart no pod.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Final

from modelramp.operator.api.resource import API_VERSION, KIND, ModelDeployment
from modelramp.operator.api.spec import ModelDeploymentSpec
from modelramp.operator.api.status import ResolvedModel, RevisionTemplate
from modelramp.operator.rollout.model import Track
from modelramp.operator.routers.base import Backends

Manifest = dict[str, Any]

NAME_LABEL = "modelramp.dev/name"
TRACK_LABEL = "modelramp.dev/track"
REVISION_LABEL = "modelramp.dev/revision"
MODEL_URI_ANNOTATION = "modelramp.dev/model-uri"
REVISION_ANNOTATION = "modelramp.dev/revision"
MODEL_VERSION_ANNOTATION = "modelramp.dev/model-version"
MODEL_RUN_ID_ANNOTATION = "modelramp.dev/model-run-id"
MODEL_SOURCE_ANNOTATION = "modelramp.dev/model-source"
SERVER_CONTAINER = "server"
# The serving image runs as 65532 and writes only under $TMPDIR (model downloads, caches), so the
# container needs no root, no writable image, no capabilities; /tmp is a per-pod emptyDir.
# Periods of 5 s the model server has to start listening before liveness counts.
STARTUP_FAILURES = 60
SERVER_SECURITY_CONTEXT: Final = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}
POD_SECURITY_CONTEXT: Final = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
TMP_VOLUME = "tmp"
# A spec with a shadow step mounts its `<name>-shadow` ConfigMap (rollout/shadow.py): the stable
# pods read from it where to copy their requests to, and kubelet refreshes it without a restart.
SHADOW_VOLUME = "shadow"
SHADOW_DIR = "/etc/modelramp/shadow"
SHADOW_KEY = "shadow.json"
SHADOW_CONFIG_ENV = "MODELRAMP_SHADOW_CONFIG"
TRACKS: tuple[Track, ...] = ("stable", "canary")
SERVICE_PORT = 80


def track_name(md: ModelDeployment, track: Track) -> str:
    """`<name>-stable` or `<name>-canary`: the Deployment and the Service of a track."""
    return f"{_name(md)}-{track}"


def backends_of(md: ModelDeployment) -> Backends:
    """What a traffic router needs to know of the ModelDeployment it routes for."""
    return Backends(
        name=_name(md),
        namespace=md.metadata.namespace or "",
        stable=track_name(md, "stable"),
        canary=track_name(md, "canary"),
        port=SERVICE_PORT,
        owner=get_owner_reference(md) if md.metadata.uid else None,
        target_port=md.spec.serving.port,
    )


def shadow_config_name(md: ModelDeployment) -> str:
    return f"{_name(md)}-shadow"


def has_shadow_step(spec: ModelDeploymentSpec) -> bool:
    """The strategy has a shadow step, so the pods mount the shadow ConfigMap."""
    canary = spec.strategy.canary
    return canary is not None and any(step.shadow is not None for step in canary.steps)


def get_shadow_config_map(md: ModelDeployment, config: dict[str, Any]) -> Manifest:
    """`<name>-shadow`: where the stable pods copy their requests to (`{}`: nowhere)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owned_metadata(md, shadow_config_name(md), {NAME_LABEL: _name(md)}),
        "data": {SHADOW_KEY: text},
    }


def get_owner_reference(md: ModelDeployment) -> dict[str, Any]:
    if not md.metadata.uid:
        raise ValueError(f"ModelDeployment {md.metadata.name}: metadata.uid is needed to own objects")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": _name(md),
        "uid": md.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def get_deployment(
    md: ModelDeployment,
    track: Track,
    template: RevisionTemplate,
    revision: str,
    replicas: int,
    *,
    model: ResolvedModel | None,
) -> Manifest:
    """The Deployment of one track running `template` with `replicas` pods; `model` is what the
    template's URI resolved to (its version and lineage annotate the pods)."""
    selector = {NAME_LABEL: _name(md), TRACK_LABEL: track}
    pod_metadata = template.serving.pod_template.metadata if template.serving.pod_template else None
    labels = {**(pod_metadata.labels if pod_metadata else {}), **selector, REVISION_LABEL: revision}
    annotations = {
        **(pod_metadata.annotations if pod_metadata else {}),
        **_lineage_annotations(model),
        MODEL_URI_ANNOTATION: template.model.uri,
        REVISION_ANNOTATION: revision,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owned_metadata(md, track_name(md, track), {**selector, REVISION_LABEL: revision}),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": get_pod_spec(md, template, revision),
            },
        },
    }


def get_pod_spec(md: ModelDeployment, template: RevisionTemplate, revision: str) -> dict[str, Any]:
    """The model server pod: the serving image with the model passed in through MODELRAMP_* env."""
    serving = template.serving
    container: dict[str, Any] = {
        "name": SERVER_CONTAINER,
        "image": serving.image,
        "env": _env(md, template, revision),
        "ports": [{"name": "http", "containerPort": serving.port, "protocol": "TCP"}],
        "readinessProbe": _probe("/v2/health/ready", period=5),
        "livenessProbe": _probe("/v2/health/live", period=10),
        # Importing torch takes tens of seconds on a busy node, past the liveness probe's 30 s: the
        # kubelet restarted every pod once on node-real-1. The server listens before it loads the
        # model, so this only covers the start of the process (up to 5 minutes).
        "startupProbe": _probe("/v2/health/live", period=5, failures=STARTUP_FAILURES),
        "securityContext": copy.deepcopy(SERVER_SECURITY_CONTEXT),
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}],
    }
    volumes: list[dict[str, Any]] = [{"name": TMP_VOLUME, "emptyDir": {}}]
    if has_shadow_step(md.spec):
        # Optional: a pod starts before the operator first writes the ConfigMap, and copies nothing.
        volumes.append(
            {"name": SHADOW_VOLUME, "configMap": {"name": shadow_config_name(md), "optional": True}}
        )
        container["volumeMounts"].append({"name": SHADOW_VOLUME, "mountPath": SHADOW_DIR, "readOnly": True})
        container["env"].append({"name": SHADOW_CONFIG_ENV, "value": f"{SHADOW_DIR}/{SHADOW_KEY}"})
    if serving.image_pull_policy:
        container["imagePullPolicy"] = serving.image_pull_policy
    if serving.resources:
        container["resources"] = serving.resources.model_dump(mode="json", exclude_defaults=True)
    registry = template.model.registry
    if registry and registry.secret_ref:
        container["envFrom"] = [{"secretRef": {"name": registry.secret_ref.name}}]
    pod: dict[str, Any] = {
        "containers": [container],
        "securityContext": copy.deepcopy(POD_SECURITY_CONTEXT),
        "volumes": volumes,
    }
    if serving.node_selector:
        pod["nodeSelector"] = dict(serving.node_selector)
    if serving.tolerations:
        pod["tolerations"] = [
            toleration.model_dump(mode="json", by_alias=True, exclude_none=True)
            for toleration in serving.tolerations
        ]
    overrides = serving.pod_template.spec if serving.pod_template else None
    return strategic_merge(pod, overrides) if overrides else pod


def get_service(md: ModelDeployment, name: str, selector: dict[str, str]) -> Manifest:
    """A ClusterIP Service on port 80 in front of the pods `selector` picks."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owned_metadata(md, name, {NAME_LABEL: _name(md)}),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def get_services(md: ModelDeployment, active: Track | None) -> list[Manifest]:
    """`<name>` (every track's pods, or only `active`'s) and one Service per track."""
    apex = {NAME_LABEL: _name(md)} | ({TRACK_LABEL: active} if active else {})
    per_track = [
        get_service(md, track_name(md, track), {NAME_LABEL: _name(md), TRACK_LABEL: track})
        for track in TRACKS
    ]
    return [get_service(md, _name(md), apex), *per_track]


def pod_selector(md: ModelDeployment) -> str:
    """Label selector of every model server pod of the ModelDeployment (the scale subresource)."""
    return f"{NAME_LABEL}={_name(md)}"


def strategic_merge(base: Any, overlay: Any) -> Any:
    """`overlay` merged into `base`: maps key by key, lists of named items (containers, volumes)
    item by item, anything else replaced (the part of strategic merge a PodSpec needs)."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = strategic_merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(overlay, list) and _named(base) and _named(overlay):
        by_name = {item["name"]: item for item in base}
        for item in overlay:
            by_name[item["name"]] = (
                strategic_merge(by_name[item["name"]], item) if item["name"] in by_name else item
            )
        return list(by_name.values())
    return overlay


def _lineage_annotations(model: ResolvedModel | None) -> dict[str, str]:
    # Only what a registry version fixes for good: metrics and the card may be re-read, and a pod
    # template that changed with them would restart every pod.
    lineage = model.lineage if model is not None else None
    values = {
        MODEL_VERSION_ANNOTATION: model.version if model is not None else None,
        MODEL_RUN_ID_ANNOTATION: lineage.run_id if lineage is not None else None,
        MODEL_SOURCE_ANNOTATION: lineage.source if lineage is not None else None,
    }
    return {key: value for key, value in values.items() if value}


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in items)


def _env(md: ModelDeployment, template: RevisionTemplate, revision: str) -> list[dict[str, Any]]:
    serving, model = template.serving, template.model
    env: dict[str, dict[str, Any]] = {
        name: {"name": name, "value": value}
        for name, value in {
            "MODELRAMP_MODEL_URI": model.uri,
            "MODELRAMP_FORMAT": model.format,
            "MODELRAMP_MODEL_NAME": model.name or _name(md),
            "MODELRAMP_MODEL_VERSION": revision,
            "MODELRAMP_PORT": str(serving.port),
        }.items()
    }
    if serving.batching:
        for name, value in (
            ("MODELRAMP_MAX_BATCH_SIZE", serving.batching.max_batch_size),
            ("MODELRAMP_MAX_LATENCY_MS", serving.batching.max_latency_ms),
        ):
            env[name] = {"name": name, "value": str(value)}
    if model.registry:
        env["MLFLOW_TRACKING_URI"] = {"name": "MLFLOW_TRACKING_URI", "value": model.registry.tracking_uri}
    for var in serving.env:
        env[var.name] = var.model_dump(mode="json", by_alias=True, exclude_none=True)
    return list(env.values())


def _probe(path: str, period: int, failures: int = 3) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


def owned_metadata(md: ModelDeployment, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """Name, namespace, labels and the ownerReference of an object the ModelDeployment owns."""
    return {
        "name": name,
        "namespace": md.metadata.namespace,
        "labels": {"app.kubernetes.io/managed-by": "modelramp", **labels},
        "ownerReferences": [get_owner_reference(md)],
    }


def _name(md: ModelDeployment) -> str:
    if not md.metadata.name:
        raise ValueError("ModelDeployment: metadata.name is required")
    return md.metadata.name
