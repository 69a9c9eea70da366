"""MLflow's scoring protocol for a tensor model, as MLflow's own clients and scoring code speak it.

The payloads are made by MLflow (`convert_input_example_to_serving_input`) or by pandas the way
MLflow's docs say; the reference answer is MLflow's own scoring path
(`validate_serving_input`, what `mlflow models serve` runs) as well as the model itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import RunningServer, Scorer, expected

from modelramp.serving.config import ServeConfig
from modelramp.serving.errors import InvalidInput
from modelramp.serving.frames import records_rows, split_rows
from modelramp.serving.input_reference import write_reference
from modelramp.serving.tensors import TensorSpec

COLUMNS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def mlflow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pt2 MLflow model of `Scorer` in a local directory, carrying an input reference."""
    import mlflow.pytorch  # noqa: PLC0415 - heavy

    root = tmp_path_factory.mktemp("mlflow-model")
    path = root / "scorer"
    torch.manual_seed(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # keeps MLflow from exporting this repo's uv project as the requirements
        mlflow.pytorch.save_model(
            Scorer().eval(),
            path,
            input_example=np.zeros((2, 4), dtype=np.float32),
            pip_requirements=["torch"],
        )
    rows = np.random.default_rng(0).normal(size=(200, 4))
    write_reference(rows, COLUMNS, path / "input_reference.json", buckets=3)
    return path


@pytest.fixture(scope="module")
def mlflow_server(mlflow_model: Path) -> Iterator[RunningServer]:
    config = ServeConfig(model_uri=str(mlflow_model), format="mlflow", model_name="scorer", device="cpu")
    with RunningServer(config) as server:
        yield server


def _frame() -> pd.DataFrame:
    rows = np.random.default_rng(4).normal(size=(6, 4)).astype(np.float32)
    return pd.DataFrame(rows, columns=COLUMNS)


def _predictions(server: RunningServer, content: str, content_type: str = "application/json") -> Any:
    response = server.client.post("/invocations", content=content, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def test_dataframe_payloads_match_mlflow_and_the_model(
    mlflow_server: RunningServer, mlflow_model: Path, scorer: torch.nn.Module
) -> None:
    from mlflow.models import (  # noqa: PLC0415
        convert_input_example_to_serving_input,
        validate_serving_input,
    )

    frame = _frame()
    split = convert_input_example_to_serving_input(frame)
    assert split is not None and "dataframe_split" in json.loads(split)
    mlflow_answer = np.asarray(validate_serving_input(str(mlflow_model), split)).reshape(-1, 1)
    wanted = expected(scorer, frame.to_numpy())
    np.testing.assert_allclose(mlflow_answer, wanted, rtol=1e-5, atol=1e-6)

    payloads = {
        "dataframe_split": (split, "application/json"),
        "dataframe_records": (
            json.dumps({"dataframe_records": frame.to_dict(orient="records")}),
            "application/json; charset=utf-8",
        ),
        "csv": (frame.to_csv(index=False), "text/csv"),
        "inputs": (json.dumps({"inputs": frame.to_numpy().tolist()}), "application/json"),
    }
    for name, (content, content_type) in payloads.items():
        answer = np.asarray(_predictions(mlflow_server, content, content_type))
        np.testing.assert_allclose(answer, wanted, rtol=1e-5, atol=1e-6, err_msg=name)


def test_unreadable_content_types_get_415(mlflow_server: RunningServer) -> None:
    body = json.dumps({"inputs": [[1, 2, 3, 4]]})
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = mlflow_server.client.post(
            "/invocations", content=body, headers={"content-type": content_type}
        )
        assert response.status_code == 415
        assert "application/json or text/csv" in response.json()["message"]


def test_health_and_version(mlflow_server: RunningServer) -> None:
    assert mlflow_server.client.get("/health").status_code == 200
    version = mlflow_server.client.get("/version")
    assert version.status_code == 200 and version.text.count(".") == 2


def test_the_model_s_own_input_reference_is_used(mlflow_server: RunningServer) -> None:
    _predictions(mlflow_server, _frame().to_csv(index=False), "text/csv")
    for column in COLUMNS:
        assert mlflow_server.metric("modelramp_input_count", feature=column) >= 6


NAMED = TensorSpec(name="input-0", datatype="FP32", row_shape=(3,), columns=("x", "y", "z"))


def test_a_column_signature_picks_columns_by_name() -> None:
    split = {"columns": ["z", "extra", "x", "y"], "data": [[3, 9, 1, 2], [6, 9, 4, 5]]}
    assert split_rows(split, NAMED) == [[1, 2, 3], [4, 5, 6]]
    records = [{"y": 2, "z": 3, "x": 1, "extra": 0}]
    assert records_rows(records, NAMED) == [[1, 2, 3]]
    with pytest.raises(InvalidInput, match=r"dataframe_split\.columns: missing column 'y'"):
        split_rows({"columns": ["x", "z"], "data": [[1, 3]]}, NAMED)
    with pytest.raises(InvalidInput, match=r"dataframe_records\[0\]: missing column 'z'"):
        records_rows([{"x": 1, "y": 2}], NAMED)
