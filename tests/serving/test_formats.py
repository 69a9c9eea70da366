"""The three model formats and the model sources, each loaded and served for real."""

from __future__ import annotations

import concurrent.futures
import functools
import http.server
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import RunningServer, Scorer, expected, torchscript_config

from modelramp.serving.config import ServeConfig
from modelramp.serving.errors import ModelLoadError
from modelramp.serving.loading import load_model
from modelramp.serving.sources import local_model_path

ROWS = [[0.5, -0.5, 1.5, 0.0], [2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0], [-3.0, 1.0, 2.0, 0.5]]


def _predictions(server: RunningServer) -> np.ndarray:
    response = server.client.post("/invocations", json={"instances": ROWS})
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["predictions"])


def test_exported_program_reads_its_input_from_the_graph(
    exported_scorer: Path, scorer: torch.nn.Module
) -> None:
    config = ServeConfig(model_uri=f"file://{exported_scorer}", format="exported-program", device="cpu")
    with RunningServer(config) as server:
        metadata = server.client.get("/v2/models/model").json()
        assert metadata["platform"] == "pytorch_exported-program"
        assert metadata["inputs"][0]["shape"] == [-1, 4]
        assert metadata["outputs"][0]["shape"] == [-1, 1]
        want = expected(scorer, ROWS)
        np.testing.assert_allclose(_predictions(server), want, rtol=1e-5)
        # One-output model: each row's score lands in the prediction histogram.
        assert server.metric("modelramp_prediction_count") == len(ROWS)
        assert server.metric("modelramp_prediction_bucket", le="0.5") == int((want <= 0.5).sum())
        assert server.metric("modelramp_prediction_sum") == pytest.approx(float(want.sum()), rel=1e-5)


def test_exported_program_with_a_fixed_batch_is_refused(scorer: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(scorer, (torch.randn(2, 4),)), str(path))
    with pytest.raises(ModelLoadError, match="batch dimension is fixed at 2"):
        load_model(ServeConfig(model_uri=str(path), format="exported-program", device="cpu"))


def test_input_shape_flag_must_agree_with_the_exported_program(exported_scorer: Path) -> None:
    config = ServeConfig(
        model_uri=str(exported_scorer), format="exported-program", device="cpu", input_shape=(5,)
    )
    with pytest.raises(ModelLoadError, match=r"input-shape: \[5\] but the model takes \[4\]"):
        load_model(config)


def test_torchscript_needs_an_input_shape(torchscript_mlp: Path) -> None:
    with pytest.raises(ModelLoadError, match="pass --input-shape"):
        load_model(ServeConfig(model_uri=str(torchscript_mlp), format="torchscript", device="cpu"))


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(ServeConfig(model_uri=str(tmp_path / "nope.pt"), format="torchscript", input_shape=(4,)))


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match=r"loading .* as torchscript failed"):
        load_model(ServeConfig(model_uri=str(junk), format="torchscript", device="cpu", input_shape=(4,)))


@pytest.fixture
def http_models(models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where downloads go
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(models_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_processes_downloading_one_model_at_once_all_get_it_whole(
    http_models: str, models_dir: Path, tmp_path: Path
) -> None:
    """What `--processes` does at start-up: every process fetches the same URI. Large enough
    (16 MiB, 1 MiB chunks) that the downloads overlap."""
    content = np.random.default_rng(5).bytes(16 << 20)
    (models_dir / "large.bin").write_bytes(content)
    uri = f"{http_models}/large.bin"
    start = threading.Barrier(4)

    def fetch() -> bytes:
        start.wait()
        return local_model_path(uri).read_bytes()

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        fetched = list(pool.map(lambda _: fetch(), range(4)))
    assert all(one == content for one in fetched)
    assert not list(tmp_path.rglob("*.partial"))


def test_model_downloaded_over_http(http_models: str, torchscript_mlp: Path, mlp: torch.nn.Module) -> None:
    uri = f"{http_models}/{torchscript_mlp.name}"
    local = local_model_path(uri)
    assert local.read_bytes() == torchscript_mlp.read_bytes()
    with RunningServer(torchscript_config(Path(), model_uri=uri)) as server:
        np.testing.assert_allclose(_predictions(server), expected(mlp, ROWS), rtol=1e-5)
    with pytest.raises(ModelLoadError, match="404"):
        local_model_path(f"{http_models}/missing.pt")


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local MLflow tracking + registry store holding `scorer` version 1."""
    import mlflow  # noqa: PLC0415 - heavy; only these tests need it
    import mlflow.pytorch  # noqa: PLC0415

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(root)  # keeps MLflow from exporting this repo's uv project as the model's requirements
        mlflow.set_experiment("serving-tests")
        torch.manual_seed(1)
        with mlflow.start_run():
            mlflow.pytorch.log_model(
                Scorer().eval(),
                name="scorer",
                input_example=np.zeros((2, 4), dtype=np.float32),
                registered_model_name="scorer",
                pip_requirements=["torch"],
            )
        yield uri


def test_mlflow_registry_model(
    mlflow_store: str, scorer: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    config = ServeConfig(model_uri="models:/scorer/1", format="mlflow", model_name="scorer", device="cpu")
    with RunningServer(config) as server:
        metadata = server.client.get("/v2/models/scorer").json()
        assert metadata["platform"] == "pytorch_mlflow"
        assert metadata["inputs"][0] == {"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}
        np.testing.assert_allclose(_predictions(server), expected(scorer, ROWS), rtol=1e-5)


def test_mlflow_unknown_model_is_a_clear_error(mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    with pytest.raises(ModelLoadError, match="models:/absent/1"):
        load_model(ServeConfig(model_uri="models:/absent/1", format="mlflow", device="cpu"))
