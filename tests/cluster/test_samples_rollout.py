"""Every sample in manifests/samples that kwok can run, applied as a user would and driven through a
whole rollout of a new model to Healthy: every router (replicaRatio, gatewayAPI with Services and
with InferencePools, istio, nginx) and every strategy (canary, blueGreen, shadow-then-canary, A/B).

The samples that name `models:/` URIs get a real MLflow registry (an open `mlflow server`) holding
every version and alias they name, and one version more: a pinned sample's next model is the next
version; a sample following an alias rolls out when the alias moves, as its user's registry would
do it, and writes its verdict back.

kwok's pods run nothing, so progress is arranged in the open: what a person does is done through
`modelramp promote` (a pause without an end, a blue-green preview held for approval, a long timed
pause, an A/B test whose week is cut short: `promote` before a decision takes the candidate); what
an analysis measures comes from a real Prometheus scraping stand-ins for each pod
(tests/prometheus/synthetic.py: the serving metrics of a good model, and for the shadow step the
stable pods' tee pairing a good canary's answers with stable's), labelled as the pods would be.
The samples are applied as written but for their Prometheus and MLflow addresses, which name this
test's.
Every analysis that gated a step must end Successful: none is skipped."""

from __future__ import annotations

import copy
import functools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from prometheus.synthetic import Behaviour, SyntheticServing, SyntheticTee
from support.api_documents import load_yaml
from support.mlflow_server import MlflowServer
from support.operator import ModelDeployments, OperatorProcess, wait_for
from support.prometheus import PrometheusServer, Target
from support.samples import ON_KWOK, create_prerequisites

# Two samples take GPUs of node-gpu-1, which test_local_cluster counts: one worker runs both.
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.prometheus,
    pytest.mark.mlflow,
    pytest.mark.xdist_group("node-gpu-1"),
]

DRIVE_SECONDS = 600
# Pauses a person ends with `modelramp promote`; the analysis pauses must never be needed.
HUMAN_PAUSES = {"CanaryPauseStep", "BlueGreenPause"}
GATES = {"Step", "Shadow", "PrePromotion", "PostPromotion"}


REGISTERED = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>[0-9]+)|@(?P<alias>[A-Za-z0-9_-]+))$")
# The version an alias names before the test moves it to the next one.
ALIAS_FIRST, ALIAS_NEXT = "1", "2"


def next_uri(uri: str) -> str:
    """Another version of the sample's model: the next registry version of a pinned `models:/`
    URI; `-next` before the file's extension otherwise. An alias stays: its target moves."""
    registered = REGISTERED.match(uri)
    if registered is not None:
        if registered["alias"]:
            return uri
        return f"models:/{registered['name']}/{int(registered['version']) + 1}"
    head, dot, extension = uri.rpartition(".")
    if dot and "/" not in extension:
        return f"{head}-next.{extension}"
    return f"{uri}-next"


def next_resolved(uri: str) -> str:
    """What status.stableModel.resolvedUri names once the next model of `uri` is stable."""
    registered = REGISTERED.match(uri)
    if registered is not None and registered["alias"]:
        return f"models:/{registered['name']}/{ALIAS_NEXT}"
    return next_uri(uri)


def model_uris(sample: dict[str, Any]) -> list[str]:
    """Every model URI the sample names: its own and its A/B variants'."""
    variants = (sample["spec"]["strategy"].get("abTest") or {}).get("variants", [])
    return [sample["spec"]["model"]["uri"], *(v["model"]["uri"] for v in variants if "model" in v)]


def register(client: MlflowClient, uris: list[str]) -> None:
    """Every registered model, version and alias the URIs name, and one version after each."""
    versions: dict[str, int] = {}
    aliases: set[tuple[str, str]] = set()
    for uri in uris:
        registered = REGISTERED.match(uri)
        if registered is None:
            continue
        name = registered["name"]
        last = int(registered["version"]) + 1 if registered["version"] else int(ALIAS_NEXT)
        versions[name] = max(versions.get(name, 0), last)
        if registered["alias"]:
            aliases.add((name, registered["alias"]))
    for name, count in versions.items():
        client.create_registered_model(name)
        for number in range(1, count + 1):
            # A remote source, as a registry's usually is: kwok's pods never download it.
            client.create_model_version(name, source=f"s3://samples/{name}/{number}")
    for name, alias in aliases:
        client.set_registered_model_alias(name, alias, ALIAS_FIRST)


def has_shadow(sample: dict[str, Any]) -> bool:
    steps = (sample["spec"]["strategy"].get("canary") or {}).get("steps", [])
    return any("shadow" in step for step in steps)


@dataclass
class Stand:
    """The stand-ins a Prometheus scrapes for the samples, and the Prometheus."""

    servers: dict[tuple[str, str], SyntheticServing] = field(default_factory=dict)
    tees: dict[str, SyntheticTee] = field(default_factory=dict)
    prometheus: PrometheusServer | None = None
    registry: MlflowServer | None = None

    @property
    def url(self) -> str:
        assert self.prometheus is not None
        return self.prometheus.url


SAMPLES = {load_yaml(path)["metadata"]["name"]: load_yaml(path) for path in ON_KWOK}


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with MlflowServer(tmp_path_factory.mktemp("mlflow"), basic_auth=False) as server:
        register(
            MlflowClient(tracking_uri=server.url, registry_uri=server.url),
            [uri for sample in SAMPLES.values() for uri in model_uris(sample)],
        )
        yield server


@pytest.fixture
def stand(
    namespace: str, registry: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stand]:
    stand = Stand(registry=registry)
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
def operator_args(stand: Stand, registry: MlflowServer) -> list[str]:
    # The operator's default registry, for the samples that leave spec.model.registry out.
    return [
        f"--prometheus-url={stand.url}",
        f"--mlflow-tracking-uri={registry.url}",
        "--registry-poll-seconds=1",
    ]


def as_applied(sample: dict[str, Any], stand: Stand) -> dict[str, Any]:
    body = copy.deepcopy(sample)
    analysis = body["spec"].get("analysis") or {}
    if "prometheus" in analysis:
        analysis["prometheus"]["address"] = stand.url
    if "registry" in body["spec"]["model"]:
        assert stand.registry is not None
        body["spec"]["model"]["registry"]["trackingUri"] = stand.registry.url
    return body


def ab_test_running(status: dict[str, Any]) -> bool:
    return (status.get("abTest") or {}).get("phase") == "Running"


def drive(mds: ModelDeployments, stand: Stand, wanted: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Promotes what waits for a person until every rollout is Healthy on its new model (`wanted`:
    the resolved URI); fails on a rollback, a failure or an analysis that did not pass."""
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
            if phase == "Healthy" and (status.get("stableModel") or {}).get("resolvedUri") == uri:
                done[name] = status
            elif (reasons & HUMAN_PAUSES or ab_test_running(status)) and not status.get("promote"):
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
        mds.apply(as_applied(sample, stand))
    for name in SAMPLES:
        mds.wait_status(name, "Healthy", lambda s: s.get("phase") == "Healthy", timeout=120)
    assert stand.registry is not None
    client = MlflowClient(tracking_uri=stand.registry.url, registry_uri=stand.registry.url)
    wanted = {}
    for name, sample in SAMPLES.items():
        uri = sample["spec"]["model"]["uri"]
        wanted[name] = next_resolved(uri)
        alias = REGISTERED.match(uri)
        if alias is not None and alias["alias"]:
            client.set_registered_model_alias(alias["name"], alias["alias"], ALIAS_NEXT)
            continue
        body = as_applied(sample, stand)
        body["spec"]["model"]["uri"] = next_uri(uri)
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

    # A sample that writes its verdict back moved its alias to the version it promoted.
    for name, sample in SAMPLES.items():
        write_back = (sample["spec"]["model"].get("registry") or {}).get("writeBack") or {}
        if "alias" in write_back:
            model, _, version = wanted[name].removeprefix("models:/").rpartition("/")
            alias = write_back["alias"]
            wait_for(
                f"{name}: alias {alias} on version {version}",
                functools.partial(alias_names, client, model, alias, version),
            )


def alias_names(client: MlflowClient, model: str, alias: str, version: str) -> bool:
    return bool(client.get_model_version_by_alias(model, alias).version == version)


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
    assert next_uri("models:/recommender/9") == "models:/recommender/10"
    assert next_resolved("models:/recommender/9") == "models:/recommender/10"
    assert next_uri("models:/fraud@champion") == "models:/fraud@champion"
    assert next_resolved("models:/fraud@champion") == f"models:/fraud/{ALIAS_NEXT}"
    assert next_uri("runs:/3f1c2a9b/model") == "runs:/3f1c2a9b/model-next"
    assert re.match(r"^pvc://", next_uri("pvc://models/forecaster/v12/model.ts"))
    assert Path(next_uri("file:///models/embedder/model.pt2")).suffix == ".pt2"
