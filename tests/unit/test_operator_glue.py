"""The operator glue's pure parts: merge patches, change detection, configuration, the watch cache,
and the `modelramp status` tree."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from modelramp.operator.api import ModelDeployment
from modelramp.operator.cache import Key, ObjectCache, owner_of
from modelramp.operator.config import ConfigError, load
from modelramp.operator.control_cli import render_status
from modelramp.operator.controller import manifest_hash, observe_deployment
from modelramp.operator.kube import (
    KubeError,
    NamespaceTerminating,
    merge_patch,
    resource_path,
    response_error,
)


def _apply_merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386, as the API server applies it."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _apply_merge_patch(result[key], value)
        else:
            result[key] = value
    return result


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({}, {"phase": "Healthy"}),
        ({"phase": "Paused", "pauseConditions": [{"reason": "x"}]}, {"phase": "Progressing"}),
        (
            {"blueGreen": {"switchTime": "t1", "previewReadyTime": "t0"}},
            {"blueGreen": {"previewReadyTime": "t0"}},
        ),
        ({"conditions": [{"type": "Ready"}]}, {"conditions": [{"type": "Ready"}, {"type": "Degraded"}]}),
        ({"abort": True, "canaryWeight": 20}, {"abort": False, "canaryWeight": 20}),
    ],
)
def test_merge_patch_turns_old_into_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    patch = merge_patch(old, new)
    assert _apply_merge_patch(old, patch) == new
    assert all(key not in patch for key in old if old.get(key) == new.get(key))


def test_merge_patch_of_equal_documents_is_empty() -> None:
    doc = {"a": {"b": [1, 2]}, "c": False}
    assert merge_patch(doc, doc) == {}


def test_resource_paths() -> None:
    assert resource_path("v1", "Service", "ns", "web") == "/api/v1/namespaces/ns/services/web"
    assert (
        resource_path("modelramp.dev/v1alpha1", "ModelDeployment", "ns", "web", "status")
        == "/apis/modelramp.dev/v1alpha1/namespaces/ns/modeldeployments/web/status"
    )
    assert (
        resource_path("v1", "ConfigMap", "ns", "web-shadow") == "/api/v1/namespaces/ns/configmaps/web-shadow"
    )
    with pytest.raises(ValueError, match="PersistentVolumeClaim"):
        resource_path("v1", "PersistentVolumeClaim", "ns")


def test_manifest_hash_ignores_key_order_but_not_values() -> None:
    one = {"kind": "Service", "spec": {"ports": [{"port": 80}], "type": "ClusterIP"}}
    same = {"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}, "kind": "Service"}
    other = {"kind": "Service", "spec": {"ports": [{"port": 81}], "type": "ClusterIP"}}
    assert manifest_hash(one) == manifest_hash(same) != manifest_hash(other)


def _deployment(labels: dict[str, str], **status: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-canary", "labels": labels, "generation": 3},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": labels}}},
        "status": {"observedGeneration": 3, **status},
    }


def test_observe_deployment_reads_track_revision_and_counts() -> None:
    raw = _deployment({"modelramp.dev/track": "canary", "modelramp.dev/revision": "abc"}, readyReplicas=1)
    observed = observe_deployment(raw)
    assert observed is not None
    assert (observed.track, observed.revision, observed.spec_replicas, observed.ready_replicas) == (
        "canary",
        "abc",
        2,
        1,
    )
    assert observe_deployment(_deployment({"app": "other"})) is None


def _owned(name: str, rv: str, owner: str = "web") -> dict[str, Any]:
    ref = {
        "apiVersion": "modelramp.dev/v1alpha1",
        "kind": "ModelDeployment",
        "name": owner,
        "controller": True,
    }
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "ownerReferences": [ref]}}


def test_cache_keeps_the_newest_copy_and_ignores_objects_it_does_not_own() -> None:
    cache = ObjectCache()
    assert cache.put_owned("Deployment", _owned("web-stable", "10")) == Key("ns", "web")
    cache.put_owned("Deployment", _owned("web-stable", "9"))  # a late, older watch event
    assert (
        cache.owned_object(Key("ns", "web"), "Deployment", "web-stable")["metadata"]["resourceVersion"]
        == "10"
    )
    stranger = {"metadata": {"name": "x", "namespace": "ns", "resourceVersion": "1"}}
    assert cache.put_owned("Deployment", stranger) is None
    assert owner_of(stranger) is None
    assert cache.drop_owned("Deployment", _owned("web-stable", "11")) == Key("ns", "web")
    assert cache.owned(Key("ns", "web"), "Deployment") == []


def test_config_flags_override_environment() -> None:
    config = load(
        ["--namespace", "a", "--namespace", "b", "--metrics-port", "9100"],
        {"MODELRAMP_NAMESPACES": "x,y", "MODELRAMP_SERVING_IMAGE": "registry.example/serving:1"},
    )
    assert config.namespaces == ("a", "b")
    assert config.metrics_port == 9100
    assert config.serving_image == "registry.example/serving:1"
    assert config.peering is None
    assert load([], {"MODELRAMP_NAMESPACES": "x,y"}).namespaces == ("x", "y")
    assert load(["--peering-lifetime", "8"], {"MODELRAMP_PEERING_LIFETIME": "30"}).peering_lifetime == 8
    assert load([], {}).peering_lifetime == 60


@pytest.mark.parametrize(
    ("argv", "environ", "blamed"),
    [
        (["--metrics-port", "http"], {}, "--metrics-port (or MODELRAMP_METRICS_PORT) = 'http'"),
        (
            [],
            {"MODELRAMP_PROMETHEUS_URL": "prometheus:9090"},
            "--prometheus-url (or MODELRAMP_PROMETHEUS_URL)",
        ),
        (["--namespace", "Bad_NS"], {}, "'Bad_NS' is not a namespace name"),
        (["--liveness", "0.0.0.0:8080"], {}, "must be an http:// URL"),
        (["--peering-lifetime", "1"], {}, "--peering-lifetime (or MODELRAMP_PEERING_LIFETIME) = '1'"),
    ],
)
def test_bad_configuration_names_the_flag_and_the_reason(
    argv: list[str], environ: dict[str, str], blamed: str
) -> None:
    with pytest.raises(ConfigError, match="invalid operator configuration") as error:
        load(argv, environ)
    assert blamed in str(error.value)


def test_status_tree_marks_done_current_and_pending_steps() -> None:
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {
                "model": {"uri": "file:///m/b.pt", "format": "torchscript"},
                "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]}},
                "trafficRouting": {"gatewayAPI": {"httpRoute": "web-route"}},
            },
            "status": {
                "phase": "Paused",
                "canaryRevision": "bbb",
                "stableRevision": "aaa",
                "canaryWeight": 20,
                "currentStepIndex": 1,
                "stepStartTime": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat(),
                "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-02T03:04:05Z"}],
                "abort": True,
            },
        }
    )
    events = [
        {
            "type": "Normal",
            "reason": "StepStarted",
            "message": "pause",
            "lastTimestamp": "2026-01-02T03:04:05Z",
        }
    ]
    tree = render_status(md, events)
    assert "✔ 0: setWeight 20%" in tree
    assert "▶ 1: pause (until promoted)  (since 2026-01-02 03:04:05Z)" in tree
    assert "· 2: setWeight 60%" in tree
    assert "gatewayAPI HTTPRoute ns/web-route" in tree
    assert "Weight:    20% canary" in tree
    assert "Requests:  abort" in tree
    assert "CanaryPauseStep since 2026-01-02 03:04:05Z" in tree
    assert "Normal StepStarted: pause" in tree


def test_status_shows_one_line_per_metric_and_queries_only_when_verbose() -> None:
    test = {
        "test": "fisher-exact",
        "pValue": 1.0,
        "alpha": 0.00017,
        "alphaSpent": 0.00083,
        "effect": "5xx share (stable 0.00133)",
        "value": 0.0,
        "lower": 0.0,
        "upper": 0.0092,
        "confidence": 0.9,
        "bound": 0.02,
        "canarySamples": 250,
        "stableSamples": 750,
        "decision": "WithinBound",
    }
    query = 'sum by (track, code) (increase(modelramp_requests_total{namespace="ns"}[1m]))'
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {
                "model": {"uri": "file:///m/b.pt", "format": "torchscript"},
                "strategy": {"canary": {"steps": [{"setWeight": 20}, {"analysis": {}}]}},
                "analysis": {"metrics": [{"name": "errors", "builtin": "error-rate", "threshold": 0.02}]},
            },
            "status": {
                "phase": "Progressing",
                "analysisRuns": [
                    {
                        "name": "step-1-bbb",
                        "kind": "Step",
                        "revision": "bbb",
                        "phase": "Successful",
                        "metrics": [{"name": "errors", "phase": "Successful", "count": 5, "test": test}],
                    }
                ],
                "measurements": [
                    {
                        "metric": "errors",
                        "analysis": "step-1-bbb",
                        "verdict": "Successful",
                        "time": "2026-01-02T03:04:05Z",
                        "query": query,
                        "message": f"errors: within bound; query: {query}",
                    }
                ],
            },
        }
    )
    short, verbose = render_status(md), render_status(md, verbose=True)
    line = next(line for line in short.splitlines() if "errors: Successful" in line)
    assert "WithinBound: 5xx share (stable 0.00133) 0 [0, 0.0092] vs bound 0.02" in line
    assert "fisher-exact p=1 (alpha 0.00017, spent 0.00083); 250/750 canary/stable samples" in line
    assert query not in short
    assert query in verbose


def test_a_write_refused_because_the_namespace_is_terminating_is_told_apart() -> None:
    # The Status the API server answers a create in a namespace being deleted with.
    body = json.dumps(
        {
            "kind": "Status",
            "status": "Failure",
            "message": 'events "web.1" is forbidden: unable to create new content in namespace t-1 '
            "because it is being terminated",
            "reason": "Forbidden",
            "details": {"name": "web.1", "kind": "events", "causes": [{"reason": "NamespaceTerminating"}]},
            "code": 403,
        }
    ).encode()
    error = response_error("POST /api/v1/namespaces/t-1/events", 403, body)
    assert isinstance(error, NamespaceTerminating) and "being terminated" in str(error)
    forbidden = json.dumps({"kind": "Status", "message": "RBAC says no", "code": 403}).encode()
    assert type(response_error("POST /x", 403, forbidden)) is KubeError


def test_status_shows_the_monitor_verdict_and_pending_write_backs() -> None:
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {
                "model": {"uri": "models:/fraud/3", "format": "mlflow"},
                "strategy": {"canary": {"steps": [{"setWeight": 20}]}},
                "monitor": {"metrics": [{"name": "inputs", "builtin": "input-drift", "threshold": 0.25}]},
            },
            "status": {
                "phase": "Healthy",
                "stableRevision": "aaa",
                "monitor": {
                    "name": "monitor-aaa",
                    "kind": "Monitor",
                    "revision": "aaa",
                    "phase": "Running",
                    "metrics": [{"name": "inputs", "phase": "Running"}],
                },
                "drift": {
                    "drifted": True,
                    "revision": "aaa",
                    "decidedAt": "2026-01-02T03:04:05Z",
                    "worstFeatures": [{"name": "income", "psi": 0.41, "pValue": 1e-9}],
                },
                "pendingWriteBacks": [
                    {"name": "fraud", "version": "3", "outcome": "promoted",
                     "decidedAt": "2026-01-02T03:00:00Z", "attempts": 2,
                     "nextAttemptTime": "2026-01-02T03:05:00Z"}
                ],
            },
        }
    )  # fmt: skip
    tree = render_status(md)
    assert "Monitor:   DRIFTED at 2026-01-02 03:04:05Z; worst: income (PSI 0.41)" in tree
    assert "└─ monitor-aaa (Monitor) Running" in tree
    assert "promoted fraud/3, 2 attempts, next 2026-01-02 03:05:00Z" in tree


def test_status_shows_the_rollback_window_and_the_stable_history_when_verbose() -> None:
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {
                "model": {"uri": "models:/fraud/3", "format": "mlflow"},
                "strategy": {"canary": {"steps": [{"setWeight": 20}]}},
                "rollbackWindow": {"revisions": 2},
            },
            "status": {"phase": "Healthy", "stableRevision": "ddd", "stableHistory": ["aaa", "bbb", "ccc"]},
        }
    )
    short, verbose = render_status(md), render_status(md, verbose=True)
    assert "Rollback:  fast (no steps, no analysis) to the last 2 stable revision(s)" in short
    assert "aaa" not in short
    assert verbose.index("├─ aaa (stable 3 revision(s) ago)") < verbose.index(
        "├─ bbb (stable 2 revision(s) ago, fast rollback)"
    )
    assert "└─ ccc (stable 1 revision(s) ago, fast rollback)" in verbose


def test_status_shows_the_shadow_step_and_its_paired_figures() -> None:
    test = {
        "test": "mcnemar-exact",
        "pValue": 0.0009765625,
        "alpha": 0.0033,
        "alphaSpent": 0.0033,
        "effect": "5xx share (stable 0.001)",
        "value": 0.012,
        "lower": 0.008,
        "upper": 0.017,
        "confidence": 0.9,
        "bound": 0.01,
        "canarySamples": 1000,
        "stableSamples": 1000,
        "decision": "Worse",
    }
    evidence = {
        "windows": 2,
        "canary": {"total": 1000, "errors": 12},
        "stable": {"total": 1000, "errors": 1},
        "paired": {"canaryOnly": 11, "stableOnly": 0},
    }
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {
                "model": {"uri": "file:///m/b.pt", "format": "torchscript"},
                "strategy": {
                    "canary": {"steps": [{"shadow": {"percent": 100, "duration": "10m"}}, {"setWeight": 20}]}
                },
                "analysis": {"metrics": [{"name": "errors", "builtin": "error-rate", "threshold": 0.01}]},
            },
            "status": {
                "phase": "RolledBack",
                "canaryRevision": "bbb",
                "currentStepIndex": 0,
                "analysisRuns": [
                    {
                        "name": "shadow-0-bbb",
                        "kind": "Shadow",
                        "stepIndex": 0,
                        "revision": "bbb",
                        "phase": "Failed",
                        "metrics": [
                            {"name": "errors", "phase": "Failed", "evidence": evidence, "test": test}
                        ],
                    }
                ],
            },
        }
    )
    tree = render_status(md)
    assert (
        "0: shadow 100% of stable's requests, up to 10m, judged on the pairs [spec.analysis.metrics]" in tree
    )
    assert "shadow-0-bbb (Shadow) Failed" in tree
    line = next(line for line in tree.splitlines() if "errors: Failed" in line)
    assert "mcnemar-exact p=0.00098" in line
    assert "1000 requests answered by both; 11 failed by the canary alone, 0 by stable alone" in line
