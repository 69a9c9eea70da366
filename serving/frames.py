"""MLflow's DataFrame-shaped payloads onto a tensor model's `[rows, columns]` input.

`dataframe_split` (`{"columns": [...], "data": [[...], ...]}`), `dataframe_records`
(`[{"column": value, ...}, ...]`) and CSV bodies (header row, then rows) are what MLflow's own
clients send for pandas input. As `mlflow models serve` does for a tensor signature, the columns
go onto the tensor in the order the payload gives them; when the model's signature names its
columns (an MLflow column signature), they are picked by name in the signature's order instead,
and extra columns are ignored. The result goes through the same `to_array` checks as every other
payload.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import numpy.typing as npt

from modelramp.serving.errors import InvalidInput
from modelramp.serving.tensors import TensorSpec

Rows = list[list[Any]] | npt.NDArray[Any]


def split_rows(payload: Any, spec: TensorSpec) -> list[list[Any]]:
    field = "dataframe_split"
    _check_tabular(spec, field)
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise InvalidInput(f'{field}: expected {{"columns": [...], "data": [[...], ...]}}')
    data: list[Any] = payload["data"]
    columns = payload.get("columns")
    if columns is None:
        return data
    if not isinstance(columns, list) or not all(isinstance(column, str | int) for column in columns):
        raise InvalidInput(f"{field}.columns: expected a list of column names")
    order = _order([str(column) for column in columns], spec, f"{field}.columns")
    if order is None:
        return data
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InvalidInput(f"{field}.data[{index}]: expected a list of {len(columns)} values")
    return [[row[position] for position in order] for row in data]


def records_rows(payload: Any, spec: TensorSpec) -> list[list[Any]]:
    field = "dataframe_records"
    _check_tabular(spec, field)
    if not isinstance(payload, list) or not payload or not all(isinstance(row, dict) for row in payload):
        raise InvalidInput(f'{field}: expected a non-empty list of {{"column": value}} objects')
    columns = list(spec.columns) if spec.columns is not None else list(payload[0])
    rows = []
    for index, record in enumerate(payload):
        try:
            rows.append([record[column] for column in columns])
        except KeyError as missing:
            raise InvalidInput(f"{field}[{index}]: missing column {missing.args[0]!r}") from None
        if spec.columns is None and len(record) != len(columns):
            raise InvalidInput(f"{field}[{index}]: columns {list(record)} differ from the first's {columns}")
    return rows


def csv_rows(body: bytes, spec: TensorSpec) -> npt.NDArray[Any]:
    """A CSV body with a header row, as numbers of the input's kind."""
    field = "body (CSV)"
    _check_tabular(spec, field)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{field}: not UTF-8: {error}") from None
    lines = [row for row in csv.reader(io.StringIO(text)) if row]
    if len(lines) < 2:
        raise InvalidInput(f"{field}: expected a header row and at least one row of values")
    header, rows = [cell.strip() for cell in lines[0]], lines[1:]
    for index, row in enumerate(rows):
        if len(row) != len(header):
            raise InvalidInput(f"{field}: row {index + 1} has {len(row)} values, the header {len(header)}")
    order = _order(header, spec, f"{field} header")
    table = np.array(rows, dtype=np.str_)
    if order is not None:
        table = table[:, order]
    return _numbers(table, spec, field)


def _numbers(table: npt.NDArray[np.str_], spec: TensorSpec, field: str) -> npt.NDArray[Any]:
    kind = spec.dtype.kind
    try:
        if kind == "b":
            lowered = np.char.lower(np.char.strip(table))
            truth = np.isin(lowered, ("true", "1"))
            if not (truth | np.isin(lowered, ("false", "0"))).all():
                raise ValueError("booleans must be true/false or 1/0")
            return truth
        return table.astype(np.int64 if kind in "iu" else np.float64)
    except ValueError as error:
        raise InvalidInput(f"{field}: {spec.datatype} needs numbers: {error}") from None


def _check_tabular(spec: TensorSpec, field: str) -> None:
    if len(spec.row_shape) != 1:
        raise InvalidInput(
            f"{field}: a DataFrame maps onto [rows, columns] inputs; {spec.name!r} takes rows of shape"
            f" {list(spec.row_shape)} (send 'inputs' or 'instances')"
        )


def _order(given: list[str], spec: TensorSpec, field: str) -> list[int] | None:
    """Positions of the signature's columns in `given`; None: use the payload's order."""
    if spec.columns is None:
        return None
    missing = [column for column in spec.columns if column not in given]
    if missing:
        raise InvalidInput(f"{field}: missing column {missing[0]!r}; the model takes {list(spec.columns)}")
    return [given.index(column) for column in spec.columns]
