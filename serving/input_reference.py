"""The input reference file: per-feature bucket bounds and the training data's counts in them.

`{"features": [{"name": "f0", "bounds": [b1, ..., bn], "counts": [c1, ..., cn, c_inf]}, ...]}`:
bounds are ascending finite upper bucket edges (Prometheus' `le`), counts the reference rows per
bucket, the last one for values above `bn` (+Inf). `modelramp serve --input-reference` exports live
histograms in exactly these buckets (`input_histograms`), so serving traffic and training data are
compared bucket for bucket. `modelramp input-reference` writes the file from training data, with
quantile bounds so that every bucket holds about the same share of the training rows.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FILE_NAME = "input_reference.json"  # looked for in an MLflow model's directory


class FeatureReference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1)]
    bounds: Annotated[list[float], Field(min_length=1)]
    counts: list[Annotated[float, Field(ge=0)]]

    @model_validator(mode="after")
    def _consistent(self) -> FeatureReference:
        if not all(math.isfinite(bound) for bound in self.bounds):
            raise ValueError(f"bounds of {self.name!r} must be finite (+Inf is implied), got {self.bounds}")
        if any(later <= earlier for earlier, later in itertools.pairwise(self.bounds)):
            raise ValueError(f"bounds of {self.name!r} must strictly increase, got {self.bounds}")
        if len(self.counts) != len(self.bounds) + 1:
            raise ValueError(
                f"counts of {self.name!r}: {len(self.bounds)} bounds need {len(self.bounds) + 1} counts"
                f" (the last for +Inf), got {len(self.counts)}"
            )
        return self


class InputReference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features: Annotated[list[FeatureReference], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_names(self) -> InputReference:
        names = [feature.name for feature in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"feature names must be unique, got {names}")
        return self


def read_reference(path: Path) -> InputReference:
    """The parsed file; `ValueError` naming the file and the field when it is not one."""
    try:
        return InputReference.model_validate_json(path.read_bytes())
    except OSError as error:
        raise ValueError(f"{path}: cannot read: {error.strerror}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"])) or "file"
        raise ValueError(f"{path}: {where}: {first['msg']}") from None


def bucket_indices(values: npt.NDArray[Any], bounds: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """The bucket of each value: the first `le` bound it does not exceed, len(bounds) for +Inf."""
    indices: npt.NDArray[np.intp] = np.searchsorted(bounds, values, side="left")
    return indices


def bucket_counts(values: npt.NDArray[Any], bounds: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    counts: npt.NDArray[np.int64] = np.bincount(bucket_indices(values, bounds), minlength=len(bounds) + 1)
    return counts


def build_reference(array: npt.NDArray[Any], names: list[str], buckets: int = 10) -> InputReference:
    """Quantile bounds (equal shares of the rows) of each column of `array` and its counts in them."""
    data = np.asarray(array, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"data: expected a non-empty [rows, features] array, got shape {list(data.shape)}")
    if len(names) != data.shape[1]:
        raise ValueError(f"names: {len(names)} names for {data.shape[1]} features")
    if buckets < 2:
        raise ValueError(f"buckets: needs at least 2, got {buckets}")
    if not np.isfinite(data).all():
        raise ValueError("data: NaN or infinite values; drop or impute them first")
    levels = np.arange(1, buckets) / buckets
    features = []
    for name, column in zip(names, data.T, strict=True):
        # Repeated quantiles (a discrete feature) collapse into one bound.
        bounds = np.unique(np.quantile(column, levels))
        counts = bucket_counts(column, bounds)
        features.append(FeatureReference(name=name, bounds=bounds.tolist(), counts=counts.tolist()))
    return InputReference(features=features)


def write_reference(array: npt.NDArray[Any], names: list[str], path: Path | str, buckets: int = 10) -> None:
    """Writes the reference of `array` (rows x features, names in column order) to `path`."""
    reference = build_reference(array, names, buckets)
    Path(path).write_text(reference.model_dump_json(indent=1) + "\n")


def load_training_data(path: Path) -> tuple[npt.NDArray[np.float64], list[str]]:
    """A `.npy` array (names f0, f1, ...) or a CSV file (names from its header row, if any)."""
    if path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.ndim != 2:
            raise ValueError(f"data: {path} holds shape {list(array.shape)}, expected [rows, features]")
        return np.asarray(array, dtype=np.float64), [f"f{index}" for index in range(array.shape[1])]
    with path.open(newline="") as source:
        rows = [row for row in csv.reader(source) if row]
    if not rows:
        raise ValueError(f"data: {path} is empty")
    header = rows[0]
    try:
        [float(cell) for cell in header]
        names, body = [f"f{index}" for index in range(len(header))], rows
    except ValueError:
        names, body = [cell.strip() for cell in header], rows[1:]
    try:
        return np.array(body, dtype=np.float64), names
    except ValueError as error:
        raise ValueError(f"data: {path}: not a table of numbers: {error}") from None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="modelramp input-reference",
        description="Write the per-feature reference buckets that `modelramp serve --input-reference` reads.",
    )
    parser.add_argument(
        "--data", required=True, type=Path, help="training data: rows x features, .npy or .csv"
    )
    parser.add_argument("--buckets", type=int, default=10, help="quantile buckets per feature (default: 10)")
    parser.add_argument("--out", required=True, type=Path, help="where to write the JSON reference")
    args = parser.parse_args(argv)
    try:
        array, names = load_training_data(args.data)
        write_reference(array, names, args.out, args.buckets)
    except (OSError, ValueError) as error:
        print(f"modelramp input-reference: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(names)} features x {args.buckets} buckets from {len(array)} rows to {args.out}")
    return 0
