"""Model lineage: what `MlflowRegistry.lookup` reads of a version besides its number (run, source,
card, the run's metrics, the model's signature), how the status bounds it, how the engine records
it and annotates the pods without making a revision of it, and how `modelramp status` shows it.

The registry is a fake of the `_Store` protocol here (it stands for MLflow's RestStores);
tests/registry/test_mlflow_lineage.py reads the same from a real MLflow server.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    ENDPOINT_NOT_FOUND,
    PERMISSION_DENIED,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)
from support.rollout_world import CONFIG, START, World, model_deployment

from modelramp.operator.api import ModelDeployment
from modelramp.operator.api.base import to_wire
from modelramp.operator.api.status import (
    MAX_DESCRIPTION,
    MAX_LINEAGE_METRICS,
    MAX_SIGNATURE,
    MAX_SOURCE,
    ModelDeploymentStatus,
    ModelLineage,
    ResolvedModel,
)
from modelramp.operator.control_cli import render_status
from modelramp.operator.registry import (
    ModelVersionInfo,
    RegistryResolution,
    RegistryUnavailable,
    recorded_model,
    resolve,
)
from modelramp.operator.registry.mlflow_registry import HTTP_DEFAULTS, MlflowRegistry
from modelramp.operator.rollout.model import ReconcileInput
from modelramp.operator.rollout.objects import (
    MODEL_RUN_ID_ANNOTATION,
    MODEL_SOURCE_ANNOTATION,
    MODEL_VERSION_ANNOTATION,
)

SERVER = "http://mlflow:5000"
URI = "models:/fraud@champion"
RUN = "5f0c3d1e9a8b4c7d6e5f4a3b2c1d0e9f"
MODEL_ID = "m-7a1b2c3d4e5f"
LOCATION = f"mlflow-artifacts:/1/models/{MODEL_ID}/artifacts"
MLMODEL = """\
artifact_path: model
flavors:
  python_function: {loader_module: mlflow.pytorch}
signature:
  inputs: '[{"type": "double", "name": "amount", "required": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 1]}}]'
  params: null
"""
SIGNATURE = "inputs: ['amount': double (required)]; outputs: [Tensor('float32', (-1, 1))]"
# Twelve finite metrics and two MLflow can record but JSON can't carry.
METRICS = {f"m{index:02d}": index / 100 for index in range(12)} | {
    "loss": float("nan"),
    "best": float("inf"),
}


@dataclass(frozen=True)
class Version:
    name: str = "fraud"
    version: str = "7"
    source: str | None = f"models:/{MODEL_ID}"
    run_id: str | None = RUN
    description: str | None = "Fraud scorer, trained on 2026-04 transactions."


@dataclass(frozen=True)
class RunData:
    metrics: dict[str, float]


@dataclass(frozen=True)
class Run:
    data: RunData


@dataclass(frozen=True)
class LoggedModel:
    artifact_location: str


def unavailable(call: str) -> MlflowException:
    return MlflowException(f"{call}: connection refused", error_code=TEMPORARILY_UNAVAILABLE)


@dataclass
class FakeStore:
    """One registered version and what its tracking server knows of it (the `_Store` protocol).
    `failing` makes a call raise; `calls` records the lineage reads made."""

    version: Version = field(default_factory=Version)
    runs: dict[str, Run] = field(default_factory=lambda: {RUN: Run(RunData(METRICS))})
    logged: dict[str, LoggedModel] = field(default_factory=lambda: {MODEL_ID: LoggedModel(LOCATION)})
    artifacts: dict[str, str] = field(
        default_factory=lambda: {LOCATION.split(":", 1)[1] + "/MLmodel": MLMODEL}
    )
    failing: dict[str, MlflowException] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def _call(self, call: str, key: str) -> None:
        self.calls.append((call, key))
        if call in self.failing:
            raise self.failing[call]

    def get_model_version(self, name: str, version: str) -> Version:
        self._call("get_model_version", version)
        return self.version

    def get_model_version_by_alias(self, name: str, alias: str) -> Version:
        self._call("get_model_version_by_alias", alias)
        return self.version

    def get_latest_versions(self, name: str, stages: list[str] | None) -> list[Version]:
        return [self.version]

    def get_registered_model(self, name: str) -> object:
        return object()

    def set_model_version_tag(self, *args: object) -> None:
        raise AssertionError("a lookup writes nothing")

    def set_registered_model_alias(self, *args: object) -> None:
        raise AssertionError("a lookup writes nothing")

    def get_run(self, run_id: str) -> Run:
        self._call("get_run", run_id)
        if run_id not in self.runs:
            raise MlflowException(f"Run '{run_id}' not found", error_code=RESOURCE_DOES_NOT_EXIST)
        return self.runs[run_id]

    def get_logged_model(self, model_id: str) -> LoggedModel:
        self._call("get_logged_model", model_id)
        return self.logged[model_id]

    def read_artifact(self, path: str) -> str:
        self._call("read_artifact", path)
        if path not in self.artifacts:
            raise MlflowException(f"GET {path} answered HTTP 404", error_code=ENDPOINT_NOT_FOUND)
        return self.artifacts[path]


@pytest.fixture
def registry_of(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeStore], MlflowRegistry]:
    for name, value in HTTP_DEFAULTS.items():
        # MlflowRegistry sets them with setdefault; set here, they are restored after the test.
        monkeypatch.setenv(name, value)

    def build(store: FakeStore) -> MlflowRegistry:
        registry = MlflowRegistry(SERVER)
        registry._store = store
        return registry

    return build


def lineage_of(registry: MlflowRegistry) -> ModelLineage:
    lineage = resolve(URI, registry).as_resolved_model().lineage
    assert lineage is not None
    return lineage


# --- the registry side ---------------------------------------------------------------------------


def test_lookup_reads_run_source_card_metrics_and_signature(
    registry_of: Callable[[FakeStore], MlflowRegistry],
) -> None:
    store = FakeStore()
    model = resolve(URI, registry_of(store)).as_resolved_model()

    assert (model.uri, model.resolved_uri, model.version) == (URI, "models:/fraud/7", "7")
    assert model.lineage == ModelLineage(
        run_id=RUN,
        source=f"models:/{MODEL_ID}",
        description="Fraud scorer, trained on 2026-04 transactions.",
        # The latest values, the first ten by name: NaN and infinity can't be stored in status.
        metrics={f"m{index:02d}": index / 100 for index in range(10)},
        signature=SIGNATURE,
    )
    # The signature comes from the logged model's MLmodel file, through the server's artifact proxy.
    assert ("read_artifact", f"/1/models/{MODEL_ID}/artifacts/MLmodel") in store.calls


@pytest.mark.parametrize(
    ("call", "error", "logged"),
    [
        ("get_run", MlflowException("Run not found", error_code=RESOURCE_DOES_NOT_EXIST), "Run not found"),
        ("get_run", unavailable("get_run"), "connection refused"),
        ("get_logged_model", MlflowException("no", error_code=PERMISSION_DENIED), "refused the credentials"),
        ("read_artifact", unavailable("read_artifact"), "connection refused"),
    ],
)
def test_a_failed_lineage_read_is_logged_and_the_version_still_resolves(
    registry_of: Callable[[FakeStore], MlflowRegistry],
    caplog: pytest.LogCaptureFixture,
    call: str,
    error: MlflowException,
    logged: str,
) -> None:
    store = FakeStore(failing={call: error})
    with caplog.at_level(logging.WARNING, "modelramp.operator.registry.mlflow_registry"):
        resolution = resolve(URI, registry_of(store))

    assert resolution.pinned_uri == "models:/fraud/7"
    lineage = resolution.as_resolved_model().lineage
    assert lineage is not None
    # What the failed call would have given is left out; the rest is there.
    assert (lineage.metrics == {}) == (call == "get_run")
    assert (lineage.signature is None) == (call != "get_run")
    assert (lineage.run_id, lineage.source) == (RUN, f"models:/{MODEL_ID}")
    # Logged as the typed registry error it maps to, naming the server.
    [record] = caplog.records
    assert f"MLflow registry {SERVER}" in record.getMessage()
    assert logged in record.getMessage()
    assert "left out of the lineage" in record.getMessage()


def test_a_deleted_run_is_no_error_and_a_version_without_a_run_reads_none(
    registry_of: Callable[[FakeStore], MlflowRegistry],
) -> None:
    gone = FakeStore(runs={})
    assert lineage_of(registry_of(gone)).metrics == {}

    unlogged = FakeStore(version=Version(run_id=None, source="s3://models/fraud/7"))
    lineage = lineage_of(registry_of(unlogged))
    assert (lineage.run_id, lineage.metrics, lineage.signature) == (None, {}, None)
    assert unlogged.calls == [("get_model_version_by_alias", "champion")]

    # A registry that tells nothing but the number: no lineage at all, rather than an empty one.
    bare = FakeStore(version=Version(run_id=None, source=None, description=None))
    assert resolve(URI, registry_of(bare)).as_resolved_model().lineage is None


def test_a_failed_version_lookup_still_fails_the_resolution(
    registry_of: Callable[[FakeStore], MlflowRegistry],
) -> None:
    store = FakeStore(failing={"get_model_version_by_alias": unavailable("get_model_version_by_alias")})
    with pytest.raises(RegistryUnavailable):
        resolve(URI, registry_of(store))
    assert [call for call, _ in store.calls] == ["get_model_version_by_alias"]


@pytest.mark.parametrize(
    "location",
    [
        "s3://models/1/models/m-7a1b2c3d4e5f/artifacts",
        # Another server: this one's credentials must not be sent there.
        "mlflow-artifacts://elsewhere:5000/1/models/m-7a1b2c3d4e5f/artifacts",
        "/mlflow/artifacts/1/models/m-7a1b2c3d4e5f/artifacts",
    ],
)
def test_the_signature_is_only_read_through_this_servers_artifact_proxy(
    registry_of: Callable[[FakeStore], MlflowRegistry], location: str
) -> None:
    store = FakeStore(logged={MODEL_ID: LoggedModel(location)})
    lineage = lineage_of(registry_of(store))
    assert lineage.signature is None
    assert lineage.metrics  # the rest of the lineage is read as usual
    assert "read_artifact" not in [call for call, _ in store.calls]


def test_a_version_registered_from_a_run_path_reads_the_mlmodel_at_its_source(
    registry_of: Callable[[FakeStore], MlflowRegistry],
) -> None:
    source = f"mlflow-artifacts:/0/{RUN}/artifacts/model"
    store = FakeStore(
        version=Version(source=source),
        artifacts={f"/0/{RUN}/artifacts/model/MLmodel": MLMODEL},
    )
    assert lineage_of(registry_of(store)).signature == SIGNATURE


@pytest.mark.parametrize("source", ["models:/other/3", "models:/other@champion", "runs:/r/model"])
def test_only_a_logged_model_uri_is_looked_up_as_a_logged_model(
    registry_of: Callable[[FakeStore], MlflowRegistry], source: str
) -> None:
    store = FakeStore(version=Version(source=source))
    assert lineage_of(registry_of(store)).signature is None
    assert [call for call, _ in store.calls] == ["get_model_version_by_alias", "get_run"]


@pytest.mark.parametrize(
    "mlmodel",
    [
        "flavors: {python_function: {}}\n",
        "signature: [unclosed\n",
        "signature:\n  inputs: 'not json'\n",
        "- a list, not a mapping\n",
    ],
    ids=["no-signature", "bad-yaml", "bad-schema", "not-a-mapping"],
)
def test_an_mlmodel_without_a_readable_signature_leaves_it_out(
    registry_of: Callable[[FakeStore], MlflowRegistry], mlmodel: str
) -> None:
    store = FakeStore(artifacts={f"/1/models/{MODEL_ID}/artifacts/MLmodel": mlmodel})
    lineage = lineage_of(registry_of(store))
    assert lineage.signature is None
    assert lineage.run_id == RUN


# --- bounds --------------------------------------------------------------------------------------


def test_long_registry_text_is_cut_with_an_ellipsis_not_refused() -> None:
    found = ModelVersionInfo(
        name="fraud",
        version="7",
        run_id=RUN,
        source="s3://models/" + "s" * 3000,
        description="# Model card\n" + "d" * 10_000,
        signature="inputs: [" + "x" * 5000,
    )
    lineage = (
        RegistryResolution(requested_uri=URI, reference="alias champion", found=found)
        .as_resolved_model()
        .lineage
    )
    assert lineage is not None

    for text, limit, start in (
        (lineage.description, MAX_DESCRIPTION, "# Model card\n"),
        (lineage.signature, MAX_SIGNATURE, "inputs: ["),
        (lineage.source, MAX_SOURCE, "s3://models/"),
    ):
        assert text is not None
        assert len(text) == limit
        assert text.startswith(start) and text.endswith("…")
    # What fits is kept as it is, and reading the status back changes nothing.
    assert lineage.run_id == RUN
    exact = ModelLineage(description="d" * MAX_DESCRIPTION)
    assert exact.description == "d" * MAX_DESCRIPTION
    assert ModelLineage.model_validate(to_wire(lineage)) == lineage


def test_metrics_keep_the_first_ten_finite_values_by_name() -> None:
    metrics = {f"k{index:02d}": float(index) for index in range(15, 0, -1)}
    metrics |= {"a-nan": float("nan"), "a-inf": float("-inf"), "a" * 251: 1.0}
    lineage = ModelLineage(metrics=metrics)
    assert list(lineage.metrics) == [f"k{index:02d}" for index in range(1, 11)]
    assert len(lineage.metrics) == MAX_LINEAGE_METRICS
    status = ModelDeploymentStatus(stable_model=ResolvedModel(uri=URI, resolved_uri=URI, lineage=lineage))
    assert ModelDeploymentStatus.model_validate(to_wire(status)) == status


# --- the engine ----------------------------------------------------------------------------------

PINNED = "models:/iris/1"
V1 = ResolvedModel(
    uri="models:/iris@champion",
    resolved_uri=PINNED,
    version="1",
    lineage=ModelLineage(run_id=RUN, source=f"models:/{MODEL_ID}", metrics={"auc": 0.91}, description="v1"),
)
V2 = ResolvedModel(
    uri="models:/iris@champion",
    resolved_uri="models:/iris/2",
    version="2",
    lineage=ModelLineage(run_id="r2", source="models:/m-2", metrics={"auc": 0.93}),
)
CANARY = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}


def world(model: ResolvedModel | None) -> World:
    # The engine's view of a registry URI: spec.model.uri is the pin (registry.pinning.engine_view).
    return World(model_deployment(CANARY, uri=PINNED), registry_model=model)


def pod_template(world: World, track: str) -> dict[str, Any]:
    template: dict[str, Any] = world.deployments[track]["spec"]["template"]
    return template


def annotations(world: World, track: str) -> dict[str, str]:
    found: dict[str, str] = pod_template(world, track)["metadata"]["annotations"]
    return found


def test_the_engine_records_the_resolution_under_the_requested_uri_with_its_lineage() -> None:
    registry = world(V1)
    registry.tick()

    status = ModelDeploymentStatus.model_validate(registry.status)
    assert status.stable_model == V1
    # That is how the next reconcile finds the pin instead of asking the registry again.
    assert recorded_model("models:/iris@champion", status) == V1


def test_the_pods_are_annotated_with_version_run_and_source_from_their_first_apply() -> None:
    registry = world(V1)
    registry.reconcile()

    first = registry.outputs[0].apply[0]
    assert first["metadata"]["name"] == "md-stable"
    lineage = {
        MODEL_VERSION_ANNOTATION: "1",
        MODEL_RUN_ID_ANNOTATION: RUN,
        MODEL_SOURCE_ANNOTATION: f"models:/{MODEL_ID}",
    }
    assert lineage.items() <= first["spec"]["template"]["metadata"]["annotations"].items()

    # A rollout of the next version: the canary's pods name it, stable's keep theirs.
    registry.tick()
    registry.set_spec("model.uri", "models:/iris/2")
    registry.registry_model = V2
    registry.tick()
    assert annotations(registry, "canary")[MODEL_VERSION_ANNOTATION] == "2"
    assert annotations(registry, "canary")[MODEL_RUN_ID_ANNOTATION] == "r2"
    assert annotations(registry, "stable")[MODEL_VERSION_ANNOTATION] == "1"


def test_lineage_is_not_part_of_the_revision() -> None:
    plain, registry = world(None), world(V1)
    plain.tick()
    registry.tick()

    assert plain.status["stableRevision"] == registry.status["stableRevision"]
    with_lineage, without = pod_template(registry, "stable"), pod_template(plain, "stable")
    assert with_lineage["spec"] == without["spec"]
    added = with_lineage["metadata"]["annotations"].keys() - without["metadata"]["annotations"].keys()
    assert added == {MODEL_VERSION_ANNOTATION, MODEL_RUN_ID_ANNOTATION, MODEL_SOURCE_ANNOTATION}


def test_a_refreshed_lineage_restarts_no_pod_and_starts_no_rollout() -> None:
    registry = world(V1)
    registry.tick()
    before = pod_template(registry, "stable")
    assert registry.status["phase"] == "Healthy"

    # The version's card edited and its run's metrics re-read; version, run and source can't change.
    assert V1.lineage is not None
    edited = V1.lineage.model_copy(update={"metrics": {"auc": 0.95}, "description": "v1, edited"})
    refreshed = V1.model_copy(update={"lineage": edited})
    registry.patch_status(stableModel=to_wire(refreshed))
    registry.registry_model = refreshed
    events = len(registry.events)
    registry.tick()

    assert pod_template(registry, "stable") == before
    assert "canaryRevision" not in registry.status
    assert [event.reason for event in registry.events[events:]] == []


def test_the_engine_refuses_a_resolution_of_another_uri() -> None:
    md = ModelDeployment.model_validate(model_deployment(CANARY, uri="models:/iris/2"))
    with pytest.raises(
        ValueError, match=re.escape("model resolves to models:/iris/1, but spec.model.uri is models:/iris/2")
    ):
        ReconcileInput(md=md, now=START, config=CONFIG, model=V1)


# --- modelramp status ----------------------------------------------------------------------------


def test_status_shows_version_run_and_source_and_the_rest_when_verbose() -> None:
    carded = V2.model_copy(
        update={
            "lineage": ModelLineage(
                run_id="r2",
                source="models:/m-2",
                metrics={"auc": 0.93, "f1": 0.812345},
                signature=SIGNATURE,
                description="# Iris v2\nRetrained on May data.",
            )
        }
    )
    raw = model_deployment(CANARY, uri="models:/iris@champion")
    raw["status"] = to_wire(
        ModelDeploymentStatus(
            phase="Progressing",
            stable_model=V1,
            stable_revision="aaa",
            canary_model=carded,
            canary_revision="bbb",
        )
    )
    md = ModelDeployment.model_validate(raw)

    short = render_status(md).splitlines()
    stable = short.index("  Stable:    models:/iris/1 (revision aaa)")
    assert short[stable + 1] == f"    └─ version 1, run {RUN}, source models:/{MODEL_ID}"
    canary = short.index("  Canary:    models:/iris/2 (revision bbb)")
    assert short[canary + 1] == "    └─ version 2, run r2, source models:/m-2"
    assert "auc" not in "\n".join(short)
    bare = md.model_copy(
        update={
            "status": md.status.model_copy(update={"canary_model": V2.model_copy(update={"lineage": None})})
        }
    )
    assert "    └─ version 2" in render_status(bare).splitlines()

    verbose = render_status(md, verbose=True)
    assert "    ├─ metrics: auc=0.93, f1=0.8123" in verbose
    assert f"    ├─ signature: {SIGNATURE}" in verbose
    assert "    └─ description: # Iris v2\n         Retrained on May data." in verbose
