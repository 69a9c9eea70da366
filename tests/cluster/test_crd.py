"""The generated CRD on the real API server: it installs, accepts the samples, rejects every
invalid document naming the field, and `kubectl get/explain/scale` work as users expect."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.api_documents import CRD_FILES, INVALID, SAMPLES, load_invalid, load_yaml
from support.cluster import Kube, cluster_wide_change

from modelramp.operator import api, crdgen

pytestmark = pytest.mark.cluster

SAMPLE = next(path for path in SAMPLES if path.stem == "canary-replicaratio")


@pytest.fixture(scope="module")
def crd(kube: Kube) -> dict[str, Any]:
    """The CRD as the API server stored it (installed or updated from the committed file)."""
    with cluster_wide_change():
        kube.kubectl("apply", "-f", str(CRD_FILES[0]))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{api.CRD_NAME}")
    stored: dict[str, Any] = json.loads(kube.kubectl("get", "crd", api.CRD_NAME, "-o", "json").stdout)
    return stored


@pytest.fixture(scope="module")
def shared_namespace(kube: Kube, crd: dict[str, Any]) -> Iterator[str]:
    """One namespace for the many dry-run checks (dry runs leave nothing behind)."""
    name = f"t-crd-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false")


def _apply(kube: Kube, namespace: str, body: dict[str, Any], *extra: str, check: bool = True) -> Any:
    return kube.kubectl("apply", "-n", namespace, *extra, "-f", "-", input=yaml.safe_dump(body), check=check)


def _get(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(kube.kubectl("get", "-n", namespace, "md", name, "-o", "json").stdout)
    return body


def _is_subset(small: Any, big: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _is_subset(v, big[k]) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(small) == len(big) and all(map(_is_subset, small, big))
    return bool(small == big)


def test_server_stores_the_generated_schema_unchanged(crd: dict[str, Any]) -> None:
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == conditions["NamesAccepted"] == "True"
    generated = crdgen.render_crd()["spec"]["versions"][0]
    stored = crd["spec"]["versions"][0]
    assert stored["schema"] == generated["schema"]
    assert stored["subresources"] == generated["subresources"]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_sample_is_accepted_with_the_same_defaults_as_the_models(
    kube: Kube, namespace: str, path: Path
) -> None:
    sample = load_yaml(path)
    _apply(kube, namespace, sample)
    stored = _get(kube, namespace, sample["metadata"]["name"])
    # Every default the API server filled in is the one the operator's models assume.
    assert _is_subset(stored["spec"], api.to_wire(api.ModelDeployment.model_validate(sample).spec))
    assert api.ModelDeployment.model_validate(stored).spec == api.ModelDeployment.model_validate(sample).spec


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_document_is_rejected_naming_the_field(kube: Kube, shared_namespace: str, path: Path) -> None:
    document = load_invalid(path)
    result = _apply(kube, shared_namespace, document.body, "--dry-run=server", check=False)
    assert result.returncode != 0, f"{path.name} was accepted"
    assert document.expected_field in result.stderr, result.stderr


def _rich_status(generation: int) -> api.ModelDeploymentStatus:
    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    return api.ModelDeploymentStatus(
        observed_generation=generation,
        phase="Paused",
        message="paused at step 1 for 2m",
        stable_revision="7d9f8c6b5",
        canary_revision="5c4b3a291",
        stable_model=api.ResolvedModel(
            uri="models:/fraud-scorer@champion", resolved_uri="models:/fraud-scorer/6"
        ),
        canary_model=api.ResolvedModel(
            uri="models:/fraud-scorer@champion", resolved_uri="models:/fraud-scorer/7", version="7"
        ),
        current_step_index=1,
        step_start_time=now,
        canary_weight=25,
        last_set_weight=25,
        pause_conditions=[api.PauseCondition(reason="CanaryPauseStep", start_time=now)],
        analysis_runs=[
            api.AnalysisRunStatus(
                name="background",
                kind="Background",
                revision="5c4b3a291",
                phase="Running",
                started_at=now,
                metrics=[
                    api.MetricResult(name="errors", count=2, successful=1, error=1, consecutive_error=1)
                ],
            )
        ],
        measurements=[
            api.Measurement(
                metric="errors", analysis="background", value=0.002, verdict="Successful", time=now
            ),
            api.Measurement(metric="errors", verdict="Error", time=now, message="query returned no series"),
        ],
        replicas=5,
        ready_replicas=5,
        selector="modelramp.dev/name=fraud-scorer",
        conditions=[
            api.Condition(type="Ready", status="True", reason="StableServing", last_transition_time=now),
            api.Condition(
                type="Progressing",
                status="True",
                reason="CanaryPaused",
                last_transition_time=now,
                observed_generation=1,
            ),
        ],
    )


def _patch_status(kube: Kube, namespace: str, name: str, status: dict[str, Any], check: bool = True) -> Any:
    return kube.kubectl(
        "patch", "-n", namespace, "md", name, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}), check=check,
    )  # fmt: skip


@pytest.fixture
def sample_with_status(kube: Kube, namespace: str) -> tuple[str, api.ModelDeploymentStatus]:
    sample = load_yaml(SAMPLE)
    _apply(kube, namespace, sample)
    name = sample["metadata"]["name"]
    status = _rich_status(_get(kube, namespace, name)["metadata"]["generation"])
    _patch_status(kube, namespace, name, api.to_wire(status))
    return name, status


def test_status_written_by_the_models_reads_back_equal(
    kube: Kube, namespace: str, sample_with_status: tuple[str, api.ModelDeploymentStatus]
) -> None:
    name, status = sample_with_status
    assert api.ModelDeployment.model_validate(_get(kube, namespace, name)).status == status


def test_status_is_a_subresource_with_its_own_validation(
    kube: Kube, namespace: str, sample_with_status: tuple[str, api.ModelDeploymentStatus]
) -> None:
    name, status = sample_with_status
    changed = load_yaml(SAMPLE)
    changed["spec"]["paused"] = True
    changed["status"] = {"phase": "Failed"}
    _apply(kube, namespace, changed)
    stored = _get(kube, namespace, name)
    assert stored["spec"]["paused"] is True
    assert stored["status"]["phase"] == status.phase, "a spec write must not change status"
    rejected = _patch_status(kube, namespace, name, {"phase": "Exploded"}, check=False)
    assert rejected.returncode != 0
    assert "status.phase" in rejected.stderr


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_kubectl_get_shows_the_columns(
    kube: Kube, namespace: str, sample_with_status: tuple[str, api.ModelDeploymentStatus]
) -> None:
    name, status = sample_with_status
    header, row = _table(kube.kubectl("get", "-n", namespace, "md", name).stdout)
    assert header == ["NAME", "PHASE", "WEIGHT", "STEP", "AGE"]
    assert row[:4] == [name, status.phase, str(status.canary_weight), str(status.current_step_index)]
    header, row = _table(kube.kubectl("get", "-n", namespace, "md", name, "-o", "wide").stdout)
    assert header == ["NAME", "PHASE", "WEIGHT", "STABLE", "CANARY", "STEP", "AGE"]
    assert status.stable_model and status.canary_model
    assert row[3:5] == [status.stable_model.resolved_uri, status.canary_model.resolved_uri]
    by_category = kube.kubectl("get", "-n", namespace, "modelramp", "-o", "name").stdout.split()
    assert f"modeldeployment.modelramp.dev/{name}" in by_category


def test_kubectl_scale_sets_serving_replicas(
    kube: Kube, namespace: str, sample_with_status: tuple[str, api.ModelDeploymentStatus]
) -> None:
    name, status = sample_with_status
    kube.kubectl("scale", "-n", namespace, f"md/{name}", "--replicas=4")
    assert _get(kube, namespace, name)["spec"]["serving"]["replicas"] == 4
    scale = json.loads(
        kube.kubectl("get", "-n", namespace, "md", name, "--subresource=scale", "-o", "json").stdout
    )
    assert scale["spec"]["replicas"] == 4
    assert (scale["status"]["replicas"], scale["status"]["selector"]) == (status.replicas, status.selector)


def _words(text: str) -> str:
    return " ".join(text.split())


def test_kubectl_explain_prints_the_descriptions(kube: Kube, crd: dict[str, Any]) -> None:
    deadline = time.monotonic() + 60
    while True:  # the OpenAPI document is published a few seconds after the CRD is established
        result = kube.kubectl("explain", "modeldeployment.spec.strategy.canary.steps", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert result.returncode == 0, result.stderr
    text = _words(result.stdout)
    assert _words(api.CanaryStrategy.model_fields["steps"].description or "") in text
    for field_name, field in api.CanaryStep.model_fields.items():
        assert field.alias and field.description
        assert field.alias in text and _words(field.description) in text, field_name
