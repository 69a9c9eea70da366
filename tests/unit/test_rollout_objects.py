"""Builders of the owned objects and the revision hash, checked without a cluster."""

from __future__ import annotations

from typing import Any

import pytest
from support.rollout_world import CONFIG, model_deployment

from modelramp.operator.api import ModelDeployment
from modelramp.operator.rollout.model import EngineConfig
from modelramp.operator.rollout.objects import get_deployment, get_services, strategic_merge
from modelramp.operator.rollout.revision import revision_of, template_of

CANARY = {"canary": {"steps": [{"setWeight": 50}]}}


def md(**serving: Any) -> ModelDeployment:
    raw = model_deployment(CANARY)
    raw["spec"]["serving"].update(serving)
    return ModelDeployment.model_validate(raw)


def deployment(model: ModelDeployment, replicas: int = 3) -> dict[str, Any]:
    template = template_of(model.spec, CONFIG)
    return get_deployment(model, "canary", template, revision_of(template), replicas, model=None)


def test_deployment_names_labels_and_owner() -> None:
    model = md()
    manifest = deployment(model)
    revision = revision_of(template_of(model.spec, CONFIG))
    assert manifest["metadata"]["name"] == "md-canary"
    assert manifest["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "modelramp.dev/v1alpha1",
            "kind": "ModelDeployment",
            "name": "md",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    # The selector can never change, so it leaves the revision out.
    assert manifest["spec"]["selector"]["matchLabels"] == {
        "modelramp.dev/name": "md",
        "modelramp.dev/track": "canary",
    }
    pod = manifest["spec"]["template"]
    assert pod["metadata"]["labels"]["modelramp.dev/revision"] == revision
    assert pod["metadata"]["annotations"] == {
        "modelramp.dev/model-uri": "models:/iris/1",
        "modelramp.dev/revision": revision,
    }
    assert manifest["spec"]["replicas"] == 3


def test_server_container_gets_the_model_through_env() -> None:
    model = md(batching={"maxBatchSize": 8, "maxLatencyMs": 2}, env=[{"name": "EXTRA", "value": "1"}])
    container = deployment(model)["spec"]["template"]["spec"]["containers"][0]
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["MODELRAMP_MODEL_URI"] == "models:/iris/1"
    assert env["MODELRAMP_FORMAT"] == "torchscript"
    assert env["MODELRAMP_MODEL_NAME"] == "md"
    assert env["MODELRAMP_MAX_BATCH_SIZE"] == "8"
    assert env["MODELRAMP_MAX_LATENCY_MS"] == "2"
    assert env["EXTRA"] == "1"
    assert container["image"] == CONFIG.serving_image
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    # The process may take minutes to listen (torch's import on a busy node): liveness waits for it.
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_gpu_resources_node_selector_and_tolerations_reach_the_pod() -> None:
    model = md(
        resources={"limits": {"nvidia.com/gpu": 1}, "requests": {"cpu": "500m"}},
        nodeSelector={"gpu": "a100"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    pod = deployment(model)["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": 1}, "requests": {"cpu": "500m"}}
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_pod_template_overrides_merge_by_container_name() -> None:
    model = md(
        podTemplate={
            "metadata": {"labels": {"team": "fraud"}},
            "spec": {
                "serviceAccountName": "models",
                "containers": [{"name": "server", "args": ["--log-level", "debug"]}, {"name": "sidecar"}],
            },
        }
    )
    manifest = deployment(model)
    pod = manifest["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "fraud"
    assert pod["spec"]["serviceAccountName"] == "models"
    server, sidecar = pod["spec"]["containers"]
    assert server["args"] == ["--log-level", "debug"]
    assert server["image"] == CONFIG.serving_image  # merged, not replaced
    assert sidecar == {"name": "sidecar"}


def test_server_pod_runs_non_root_read_only_without_capabilities() -> None:
    model = md(
        podTemplate={
            "spec": {
                "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
                "containers": [
                    {"name": "server", "volumeMounts": [{"name": "models", "mountPath": "/models"}]}
                ],
            }
        }
    )
    pod = deployment(model)["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert server["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    # The writable /tmp stays beside the user's own volumes.
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "models"]
    assert {m["mountPath"] for m in server["volumeMounts"]} == {"/tmp", "/models"}


def test_strategic_merge_replaces_scalars_and_unnamed_lists() -> None:
    assert strategic_merge({"a": [1, 2], "b": {"c": 1}}, {"a": [3], "b": {"d": 2}}) == {
        "a": [3],
        "b": {"c": 1, "d": 2},
    }


@pytest.mark.parametrize(
    ("active", "apex_selector"),
    [
        (None, {"modelramp.dev/name": "md"}),
        ("stable", {"modelramp.dev/name": "md", "modelramp.dev/track": "stable"}),
        ("canary", {"modelramp.dev/name": "md", "modelramp.dev/track": "canary"}),
    ],
)
def test_services(active: Any, apex_selector: dict[str, str]) -> None:
    apex, stable, canary = get_services(md(), active)
    assert [apex["metadata"]["name"], stable["metadata"]["name"], canary["metadata"]["name"]] == [
        "md",
        "md-stable",
        "md-canary",
    ]
    assert apex["spec"]["selector"] == apex_selector
    assert canary["spec"]["selector"] == {"modelramp.dev/name": "md", "modelramp.dev/track": "canary"}
    assert stable["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_revision_ignores_replicas_but_not_the_model_or_the_default_image() -> None:
    base = revision_of(template_of(md().spec, CONFIG))
    assert revision_of(template_of(md(replicas=9).spec, CONFIG)) == base
    assert revision_of(template_of(md(image="other:1").spec, CONFIG)) != base
    other_default = EngineConfig(serving_image="ghcr.io/modelramp/server:next")
    assert revision_of(template_of(md().spec, other_default)) != base
    # Spelling a default out is the same revision.
    assert revision_of(template_of(md(port=8080).spec, CONFIG)) == base
    assert len(base) == 10
    assert base.isalnum()


def test_an_object_without_uid_cannot_own_children() -> None:
    raw = model_deployment(CANARY)
    del raw["metadata"]["uid"]
    with pytest.raises(ValueError, match=r"metadata.uid"):
        deployment(ModelDeployment.model_validate(raw))
