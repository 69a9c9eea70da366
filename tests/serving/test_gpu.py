"""The CUDA path: the same server on a GPU (skips without one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import RunningServer, expected, torchscript_config

from modelramp.serving.config import ServeConfig

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_served_on_cuda(torchscript_mlp: Path, exported_scorer: Path, mlp: torch.nn.Module) -> None:
    rows = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)
    with RunningServer(torchscript_config(torchscript_mlp, device="cuda")) as server:
        assert server.metric("modelramp_model_info", uri=str(torchscript_mlp), device="cuda") == 1.0
        response = server.client.post("/invocations", json={"inputs": rows.tolist()})
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["predictions"], expected(mlp, rows), rtol=1e-4, atol=1e-5)
    config = torchscript_config(exported_scorer, format="exported-program", input_shape=None, device="auto")
    with RunningServer(config) as server:
        assert server.metric("modelramp_model_info", uri=str(exported_scorer), device="cuda") == 1.0
        assert server.client.post("/invocations", json={"inputs": rows.tolist()}).status_code == 200


@pytest.mark.compile
def test_exported_program_compiled_for_cuda_at_load(
    exported_scorer: Path, scorer: torch.nn.Module, tmp_path: Path
) -> None:
    rows = np.random.default_rng(4).normal(size=(9, 4)).astype(np.float32)
    config = ServeConfig(
        model_uri=str(exported_scorer),
        format="exported-program",
        compile="aoti",
        compile_cache=tmp_path,
        device="cuda",
    )
    with RunningServer(config) as server:
        response = server.client.post("/invocations", json={"inputs": rows.tolist()})
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(
            response.json()["predictions"], expected(scorer, rows), rtol=1e-4, atol=1e-5
        )
    (entry,) = tmp_path.glob("*.pt2")
    assert "-cuda-sm" in entry.name
