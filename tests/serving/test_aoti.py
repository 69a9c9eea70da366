"""AOTInductor packages: `modelramp compile`, `--format aoti`, and the load-time compile cache.

One real compile of a tiny MLP (the `compiled` session fixture, through the `modelramp compile`
console script); every other test reuses its package or its cache entry. Run them alone with
`make test-serving-compile`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import RunningServer, expected
from pydantic import ValidationError
from support.serving import REPO
from torch.utils import _pytree as pytree

from modelramp.serving import aoti
from modelramp.serving.config import ServeConfig
from modelramp.serving.errors import ModelLoadError
from modelramp.serving.loading import load_model

pytestmark = pytest.mark.compile

BATCH_SIZES = (1, 7, 64)


class Classifier(torch.nn.Module):
    """4 features -> 3 class scores, exportable (no data-dependent branch)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(4, 16)
        self.out = torch.nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


@dataclass(frozen=True)
class Compiled:
    program: Path
    package: Path
    cache: Path
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def classifier() -> torch.nn.Module:
    torch.manual_seed(2)
    return Classifier().eval()


@pytest.fixture(scope="session")
def compiled(classifier: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    """The exported classifier (dynamic batch) and its package from `modelramp compile`."""
    work = tmp_path_factory.mktemp("aoti")
    program = work / "classifier.pt2"
    batch = torch.export.Dim("batch")
    torch.export.save(
        torch.export.export(classifier, (torch.randn(5, 4),), dynamic_shapes={"x": {0: batch}}), str(program)
    )
    package, cache = work / "out" / "classifier-aoti.pt2", work / "cache"
    result = _compile(program, package, cache)
    assert result.returncode == 0, result.stderr
    return Compiled(program, package, cache, result.stdout, result.stderr)


def _compile(program: Path, package: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    command = [str(REPO / ".venv" / "bin" / "modelramp"), "compile", str(program), "-o", str(package)]
    return subprocess.run(
        [*command, "--cache", str(cache)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONSAFEPATH": "1"},
        timeout=900,
        check=False,
    )


def _rows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, 4)).astype(np.float32)


def _infer(server: RunningServer, rows: np.ndarray) -> np.ndarray:
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP32", "data": rows.tolist()}
    body = {"inputs": [tensor]}
    response = server.client.post("/v2/models/model/infer", json=body)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def test_compiled_package_serves_what_eager_torch_answers(
    compiled: Compiled, classifier: torch.nn.Module
) -> None:
    assert f"{compiled.package}: AOTInductor package for cpu, input rows FP32 [4]" in compiled.stdout
    assert "compiling" in compiled.stderr  # a real compile, not a cache hit
    config = ServeConfig(model_uri=str(compiled.package), format="aoti", device="cpu", max_batch_size=64)
    with RunningServer(config) as server:
        metadata = server.client.get("/v2/models/model").json()
        assert metadata["platform"] == "pytorch_aoti"
        # From the metadata `modelramp compile` wrote into the package: no --input-shape needed.
        assert metadata["inputs"][0] == {"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}
        for size in BATCH_SIZES:
            rows = _rows(size, size)
            np.testing.assert_allclose(_infer(server, rows), expected(classifier, rows), rtol=1e-5, atol=1e-6)
        # Concurrent requests of different sizes merge into forwards of sizes never seen alone.
        batches = [_rows(size, 100 + size) for size in (3, 5, 9, 2, 11, 4, 6, 8)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda rows: _infer(server, rows), batches))
        for rows, answer in zip(batches, answers, strict=True):
            np.testing.assert_allclose(answer, expected(classifier, rows), rtol=1e-5, atol=1e-6)


def test_load_time_compile_reuses_the_cache(
    compiled: Compiled, classifier: torch.nn.Module, caplog: pytest.LogCaptureFixture
) -> None:
    """The compile `modelramp compile` cached is what `serve --compile aoti` loads: no recompile."""
    (entry,) = compiled.cache.glob("*.pt2")
    assert f"torch{torch.__version__}-cpu-" in entry.name
    written = entry.stat().st_mtime_ns
    config = ServeConfig(
        model_uri=str(compiled.program),
        format="exported-program",
        compile="aoti",
        compile_cache=compiled.cache,
        device="cpu",
    )
    with caplog.at_level(logging.INFO, logger="modelramp.serving.aoti"):
        model = load_model(config)
    assert "from the cache" in caplog.text
    assert "compiling" not in caplog.text
    assert list(compiled.cache.glob("*.pt2")) == [entry]
    assert entry.stat().st_mtime_ns == written
    assert model.input.row_shape == (4,)
    for size in BATCH_SIZES:
        rows = _rows(size, 7 * size)
        with torch.inference_mode():
            served = model.forward(torch.from_numpy(rows)).numpy()
        np.testing.assert_allclose(served, expected(classifier, rows), rtol=1e-5, atol=1e-6)


def test_a_one_tensor_package_is_run_without_its_tree_specs(compiled: Compiled) -> None:
    forward, _ = aoti.load_package(compiled.package, torch.device("cpu"))
    package = torch._inductor.aoti_load_package(str(compiled.package))
    assert not isinstance(forward, type(package))  # the runner itself, not the package's __call__
    rows = torch.from_numpy(_rows(9, 3))
    torch.testing.assert_close(forward(rows), package(rows), rtol=0, atol=0)


def test_a_package_of_another_signature_keeps_its_own_call() -> None:
    tensor = torch.zeros(1)

    class Package:
        """What `aoti_load_package` returns, reduced to the call spec `direct_forward` reads."""

        def __init__(self, args: tuple[torch.Tensor, ...], outputs: object) -> None:
            specs = [pytree.tree_flatten((args, {}))[1], pytree.tree_flatten(outputs)[1]]
            self.loader = SimpleNamespace(
                get_call_spec=lambda: [pytree.treespec_dumps(spec) for spec in specs], boxed_run=None
            )

    for other in (Package((tensor, tensor), tensor), Package((tensor,), (tensor, tensor))):
        assert aoti.direct_forward(other) is other
    one = Package((tensor,), tensor)
    assert aoti.direct_forward(one) is not one


def test_a_damaged_package_is_a_clear_error_naming_the_file(compiled: Compiled, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"not a package")
    truncated = tmp_path / "truncated.pt2"
    truncated.write_bytes(compiled.package.read_bytes()[: compiled.package.stat().st_size // 2])
    for path in (junk, truncated):
        with pytest.raises(ModelLoadError, match=f"{path} is not an AOTInductor package"):
            load_model(ServeConfig(model_uri=str(path), format="aoti", device="cpu"))
    # A whole archive whose compiled library is damaged: torch refuses it, we name the file.
    broken = tmp_path / "broken.pt2"
    with zipfile.ZipFile(compiled.package) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, b"\x7fELF garbage" if item.filename.endswith(".so") else data)
    with pytest.raises(ModelLoadError, match=f"{broken} is not a loadable AOTInductor package"):
        load_model(ServeConfig(model_uri=str(broken), format="aoti", device="cpu"))


def test_an_exported_program_is_not_a_package(compiled: Compiled) -> None:
    message = f"{compiled.program} holds no AOTInductor model.*--compile aoti"
    with pytest.raises(ModelLoadError, match=message):
        load_model(ServeConfig(model_uri=str(compiled.program), format="aoti", device="cpu"))


def test_compile_refuses_what_is_not_an_exported_program(compiled: Compiled, tmp_path: Path) -> None:
    result = _compile(compiled.package, tmp_path / "again.pt2", tmp_path / "cache")
    assert result.returncode == 2
    assert f"program: {compiled.package} is not an exported program" in result.stderr
    assert not (tmp_path / "cache").exists()


def test_compile_needs_an_exported_program_format() -> None:
    with pytest.raises(ValidationError, match="compile: 'aoti' compiles an exported program"):
        ServeConfig(model_uri="m.pt", format="torchscript", compile="aoti", input_shape=(4,))
