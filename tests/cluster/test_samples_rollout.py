"""Every sample in manifests/samples that kwok can run, applied as a user would and driven through a
whole rollout of a new model to Healthy: every router (replicaRatio, gatewayAPI with Services and
with InferencePools, istio, nginx) and every strategy (canary, blueGreen, shadow-then-canary).

kwok's pods run nothing, so progress is arranged in the open: what a person does is done through
`modelramp promote` (a pause without an end, a blue-green preview held for approval, a long timed
pause); what an analysis measures comes from a real Prometheus scraping stand-ins for each pod
(tests/prometheus/synthetic.py: the serving metrics of a good model, and for the shadow step the
stable pods' tee pairing a good canary's answers with stable's), labelled as the pods would be.
The samples are applied as written but for their Prometheus address, which names this test's.
Every analysis that gated a step must end Successful: none is skipped."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus.synthetic import Behaviour, SyntheticServing, SyntheticTee
from support.api_documents import load_yaml
from support.operator import ModelDeployments, OperatorProcess
from support.prometheus import PrometheusServer, Target
from support.samples import UNREGISTERED, create_prerequisites

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]

DRIVE_SECONDS = 600
# Pauses a person ends with `modelramp promote`; the analysis pauses must never be needed.
HUMAN_PAUSES = {"CanaryPauseStep", "BlueGreenPause"}
GATES = {"Step", "Shadow", "PrePromotion", "PostPromotion"}


def next_uri(uri: str) -> str:
    """Another version of the sample's model: `-next` before the file's extension."""
    head, dot, extension = uri.rpartition(".")
    if dot and "/" not in extension:
        return f"{head}-next.{extension}"
    return f"{uri}-next"


def has_shadow(sample: dict[str, Any]) -> bool:
    steps = (sample["spec"]["strategy"].get("canary") or {}).get("steps", [])
    return any("shadow" in step for step in steps)


@dataclass
class Stand:
    """The stand-ins a Prometheus scrapes for the samples, and the Prometheus."""

    servers: dict[tuple[str, str], SyntheticServing] = field(default_factory=dict)
    tees: dict[str, SyntheticTee] = field(default_factory=dict)
    prometheus: PrometheusServer | None = None

    @property
    def url(self) -> str:
        assert self.prometheus is not None
        return self.prometheus.url


SAMPLES = {load_yaml(path)["metadata"]["name"]: load_yaml(path) for path in UNREGISTERED}


@pytest.fixture
def stand(namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stand]:
    stand = Stand()
    for seed, name in enumerate(SAMPLES):
        for track in ("stable", "canary"):
            stand.servers[name, track] = SyntheticServing(
                Behaviour(requests_per_tick=5, seed=2 * seed + (track == "canary"))
            )
        if has_shadow(SAMPLES[name]):
            stand.tees[name] = SyntheticTee(seed=seed)
    targets = [
        Target(server.address, {"namespace": namespace, "modeldeployment": name, "track": track})
        for (name, track), server in stand.servers.items()
    ] + [
        Target(tee.address, {"namespace": namespace, "modeldeployment": name, "track": "stable"})
        for name, tee in stand.tees.items()
    ]
    everything = [*stand.servers.values(), *stand.tees.values()]
    for server in everything:
        server.start()
    try:
        with PrometheusServer(tmp_path_factory.mktemp("prometheus"), targets) as prometheus:
            prometheus.wait_for(
                f'sum(increase(modelramp_requests_total{{namespace="{namespace}"}}[5s]))', 100
            )
            stand.prometheus = prometheus
            yield stand
    finally:
        for server in everything:
            server.stop()


@pytest.fixture
def operator_args(stand: Stand) -> list[str]:
    return [f"--prometheus-url={stand.url}"]


def as_applied(sample: dict[str, Any], prometheus: str) -> dict[str, Any]:
    body = copy.deepcopy(sample)
    analysis = body["spec"].get("analysis") or {}
    if "prometheus" in analysis:
        analysis["prometheus"]["address"] = prometheus
    return body


def drive(mds: ModelDeployments, stand: Stand, wanted: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Promotes what waits for a person until every rollout is Healthy on its new model; fails on
    a rollback, a failure or an analysis that did not pass."""
    done: dict[str, dict[str, Any]] = {}
    paired: set[str] = set()
    deadline = time.monotonic() + DRIVE_SECONDS
    while len(done) < len(wanted):
        assert time.monotonic() < deadline, (
            f"not Healthy in {DRIVE_SECONDS}s: {sorted(set(wanted) - set(done))}"
        )
        for name, uri in wanted.items():
            if name in done:
                continue
            status = mds.status(name)
            tee = stand.tees.get(name)
            if tee is not None and status.get("canaryRevision") and name not in paired:
                tee.pair_with(status["stableRevision"], status["canaryRevision"])
                paired.add(name)
            phase, message = status.get("phase"), status.get("message", "")
            assert phase not in ("RolledBack", "Degraded", "Failed"), f"{name}: {phase}: {message}"
            reasons = {condition["reason"] for condition in status.get("pauseConditions", [])}
            assert not reasons - HUMAN_PAUSES - {"UserPaused"}, f"{name} paused: {message}"
            if phase == "Healthy" and (status.get("stableModel") or {}).get("uri") == uri:
                done[name] = status
            elif reasons & HUMAN_PAUSES and not status.get("promote"):
                # A timed pause may end on its own meanwhile: then there is nothing left to promote.
                result = mds.cli("promote", name, check=False)
                assert result.returncode == 0 or "nothing to promote" in result.stderr, result.stderr
        time.sleep(1.0)
    return done


def test_every_sample_rolls_a_new_model_out_to_healthy(
    operator: OperatorProcess, mds: ModelDeployments, stand: Stand
) -> None:
    for sample in SAMPLES.values():
        create_prerequisites(mds, sample)
        mds.apply(as_applied(sample, stand.url))
    for name in SAMPLES:
        mds.wait_status(name, "Healthy", lambda s: s.get("phase") == "Healthy", timeout=120)
    wanted = {}
    for name, sample in SAMPLES.items():
        body = as_applied(sample, stand.url)
        wanted[name] = body["spec"]["model"]["uri"] = next_uri(sample["spec"]["model"]["uri"])
        mds.apply(body)

    finished = drive(mds, stand, wanted)

    for name, status in finished.items():
        gates = [run for run in status.get("analysisRuns", []) if run["kind"] in GATES]
        assert all(run["phase"] == "Successful" for run in gates), (name, gates)
        expected = _gating_analyses(SAMPLES[name])
        assert sorted(run["kind"] for run in gates) == expected, (name, gates)
        assert status["canaryWeight"] == 0 and "canaryRevision" not in status
    # The shadow's verdict came from the pairs: its metrics were judged by the paired tests.
    for name, sample in SAMPLES.items():
        if has_shadow(sample):
            (run,) = [run for run in finished[name]["analysisRuns"] if run["kind"] == "Shadow"]
            tests = {metric["name"]: metric["test"]["test"] for metric in run["metrics"]}
            assert tests == {
                "errors": "mcnemar-exact",
                "latency": "wilcoxon-signed-rank",
                "drift": "stuart-maxwell",
            }


def _gating_analyses(sample: dict[str, Any]) -> list[str]:
    """The kinds of the runs that gate the sample's rollout, one per analysis it declares."""
    strategy = sample["spec"]["strategy"]
    canary, blue_green = strategy.get("canary"), strategy.get("blueGreen")
    kinds = []
    if canary is not None:
        kinds += ["Step" for step in canary["steps"] if "analysis" in step]
        kinds += ["Shadow" for step in canary["steps"] if "shadow" in step]
    if blue_green is not None:
        kinds += [
            kind
            for key, kind in (
                ("prePromotionAnalysis", "PrePromotion"),
                ("postPromotionAnalysis", "PostPromotion"),
            )
            if key in blue_green
        ]
    return sorted(kinds)


def test_next_uri_keeps_the_scheme_and_extension() -> None:
    assert next_uri("s3://models/ranker/v7/model.pt2") == "s3://models/ranker/v7/model-next.pt2"
    assert next_uri("runs:/3f1c2a9b/model") == "runs:/3f1c2a9b/model-next"
    assert re.match(r"^pvc://", next_uri("pvc://models/forecaster/v12/model.ts"))
    assert Path(next_uri("file:///models/embedder/model.pt2")).suffix == ".pt2"
