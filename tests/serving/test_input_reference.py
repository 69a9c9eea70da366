"""Input reference files (written from training data) and the live `modelramp_input` histograms."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from conftest import FEATURES, training_rows
from prometheus_client.parser import text_string_to_metric_families
from support.serving import ServingProcess

from modelramp.cli import main as modelramp
from modelramp.serving.cli import main as serve
from modelramp.serving.input_reference import build_reference, read_reference, write_reference


def test_quantile_buckets_hold_equal_shares(tmp_path: Path) -> None:
    # 1000 distinct values, 4 buckets: each quantile bound falls between two order statistics,
    # so exactly a quarter of the rows is at or below each successive bound.
    rows = training_rows()
    write_reference(rows, FEATURES, tmp_path / "ref.json", buckets=4)
    reference = read_reference(tmp_path / "ref.json")
    assert [feature.name for feature in reference.features] == FEATURES
    for feature, column in zip(reference.features, rows.T, strict=True):
        assert len(feature.bounds) == 3
        assert feature.counts == [250, 250, 250, 250]
        assert feature.bounds == sorted(feature.bounds)
        assert (column <= feature.bounds[0]).sum() == 250


def test_a_discrete_feature_gets_one_bound_per_distinct_quantile() -> None:
    rows = np.array([[0.0], [0.0], [0.0], [1.0]] * 25)
    [feature] = build_reference(rows, ["flag"], buckets=10).features
    assert feature.bounds == [0.0, 1.0]
    assert feature.counts == [75, 25, 0]


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_the_command_writes_the_same_reference(tmp_path: Path, suffix: str) -> None:
    rows = training_rows()
    data = tmp_path / f"train{suffix}"
    if suffix == ".npy":
        np.save(data, rows)
        names = [f"f{index}" for index in range(rows.shape[1])]
    else:
        names = FEATURES
        lines = [",".join(names), *(",".join(repr(float(value)) for value in row) for row in rows)]
        data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "input_reference.json"
    assert modelramp(["input-reference", "--data", str(data), "--buckets", "5", "--out", str(out)]) == 0
    assert read_reference(out) == build_reference(rows.astype(np.float64), names, buckets=5)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"features": [{"name": "a", "bounds": [2.0, 1.0], "counts": [1, 1, 1]}]}, "must strictly increase"),
        ({"features": [{"name": "a", "bounds": [1.0], "counts": [1]}]}, "1 bounds need 2 counts"),
        ({"features": [{"name": "a", "bounds": [1.0], "counts": [1, -1]}]}, "greater than or equal to 0"),
        ({"features": []}, "features: List should have at least 1 item"),
    ],
)
def test_a_bad_reference_names_the_problem(tmp_path: Path, document: object, words: str) -> None:
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=words):
        read_reference(path)


def test_a_reference_that_does_not_fit_the_model_stops_the_server(
    torchscript_mlp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "ref.json"
    write_reference(training_rows()[:, :3], FEATURES[:3], reference)
    code = serve(["--model-uri", str(torchscript_mlp), "--format", "torchscript", "--input-shape", "4",
                  "--input-reference", str(reference), "--host", "127.0.0.1", "--port", "0",
                  "--device", "cpu"])  # fmt: skip
    assert code == 1
    assert "input-reference: 3 features, the model's rows have 4" in capsys.readouterr().err


def _input_histograms(server: ServingProcess) -> dict[tuple[str, str], float]:
    """(feature, sample) -> value, sample being a bucket's `le` (as a float's repr), `count` or `sum`."""
    samples: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text):
        if family.name != "modelramp_input":
            continue
        for sample in family.samples:
            assert (sample.labels["model"], sample.labels["version"]) == ("model", "1")
            le = sample.labels.get("le")
            key = repr(float(le)) if le is not None else sample.name.rsplit("_", 1)[1]
            samples[sample.labels["feature"], key] = sample.value
    return samples


def test_every_served_row_is_observed_in_the_reference_buckets(served_mlp: ServingProcess) -> None:
    reference = build_reference(training_rows(), FEATURES, buckets=4)
    before = _input_histograms(served_mlp)
    generator = np.random.default_rng(8)
    batches = [generator.normal(scale=2.0, size=(rows, 4)).astype(np.float32) for rows in (64, 7, 1)]
    with triton.InferenceServerClient(f"127.0.0.1:{served_mlp.port}") as client:
        for index, rows in enumerate(batches):
            tensor = triton.InferInput("input-0", list(rows.shape), "FP32")
            tensor.set_data_from_numpy(rows, binary_data=index % 2 == 0)
            client.infer("model", [tensor])
    after = _input_histograms(served_mlp)
    sent = np.concatenate(batches)
    for column, feature in enumerate(reference.features):
        values = sent[:, column].astype(np.float64).tolist()
        delta = {key: after[key] - before.get(key, 0.0) for key in after if key[0] == feature.name}
        for bound in feature.bounds:  # cumulative: rows at or below each `le`
            assert delta[feature.name, repr(bound)] == sum(value <= bound for value in values)
        assert delta[feature.name, "inf"] == delta[feature.name, "count"] == len(values)
        assert delta[feature.name, "sum"] == pytest.approx(sum(values), rel=1e-9, abs=1e-6)


def test_the_reference_counts_are_exported_for_the_operator(served_mlp: ServingProcess) -> None:
    """`modelramp_input_reference{feature, le}`: the file's counts made cumulative, in its bounds."""
    reference = build_reference(training_rows(), FEATURES, buckets=4)
    exported: dict[tuple[str, float], float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{served_mlp.url}/metrics").text):
        if family.name == "modelramp_input_reference":
            assert family.type == "gauge"
            for sample in family.samples:
                exported[sample.labels["feature"], float(sample.labels["le"])] = sample.value
    expected = {
        (feature.name, bound): float(count)
        for feature in reference.features
        for bound, count in zip([*feature.bounds, math.inf], np.cumsum(feature.counts), strict=True)
    }
    assert exported == pytest.approx(expected)
