"""Turning JSON tensor payloads into validated numpy arrays, and back.

This is the hot path of every request, so it stays in numpy (one `asarray`, one cast, no per-element
Python) and checks what a batched forward can't recover from: element types, shape and NaN.
Every problem becomes an `InvalidInput` naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelramp.serving.errors import InvalidInput

# Open Inference Protocol v2 datatypes we can feed a PyTorch model (BYTES has no tensor form).
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_NAME_OF_DTYPE = {dtype: name for name, dtype in DATATYPES.items()}

# Which numpy kinds JSON values may have for each target kind: JSON `1` is a valid float, but
# `1.5` is not a valid integer and `true` is only a BOOL.
_ACCEPTED_SOURCE_KINDS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The OIP v2 datatype name of a numpy dtype (model outputs)."""
    try:
        return _NAME_OF_DTYPE[dtype]
    except KeyError:
        raise ValueError(f"numpy dtype {dtype} has no Open Inference Protocol datatype") from None


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """What one request's tensor must look like: rows of `row_shape` elements of `datatype`."""

    name: str
    datatype: str
    row_shape: tuple[int, ...]
    # Column names in input order, when the model records them (an MLflow column signature):
    # DataFrame-shaped payloads are mapped onto the tensor by these.
    columns: tuple[str, ...] | None = None

    @property
    def dtype(self) -> np.dtype[Any]:
        return DATATYPES[self.datatype]


def to_array(
    data: Any,
    spec: TensorSpec,
    *,
    data_field: str,
    shape_field: str,
    allow_nan: bool,
    declared_shape: list[int] | None = None,
) -> npt.NDArray[Any]:
    """Converts `data` (flat or nested JSON numbers) into a `(rows, *spec.row_shape)` array.

    `declared_shape` is the shape the client sent (OIP v2); without one (MLflow's `inputs`) the
    data's own nesting is the shape. The field names go into error messages.
    """
    if not isinstance(data, list | np.ndarray):
        raise InvalidInput(f"{data_field}: expected a list of numbers, got {type(data).__name__}")
    try:
        array = np.asarray(data)
    except ValueError:
        raise InvalidInput(f"{data_field}: nested lists are ragged (rows of different lengths)") from None
    target = spec.dtype
    if array.size and array.dtype.kind not in _ACCEPTED_SOURCE_KINDS[target.kind]:
        raise InvalidInput(
            f"{data_field}: {spec.datatype} needs {_describe(target)}, got {_describe(array.dtype)}"
        )
    if declared_shape is not None:
        declared = math.prod(declared_shape)
        if array.size != declared:
            raise InvalidInput(
                f"{shape_field}: {declared_shape} needs {declared} elements, {data_field} has {array.size}"
            )
        array = array.reshape(declared_shape)
    if array.ndim != len(spec.row_shape) + 1 or array.shape[1:] != spec.row_shape or array.shape[0] < 1:
        raise InvalidInput(
            f"{shape_field}: {spec.name!r} takes shape {['N', *spec.row_shape]} with N >= 1,"
            f" got {list(array.shape)}"
        )
    return _cast(array, spec, data_field, allow_nan=allow_nan)


def _cast(array: npt.NDArray[Any], spec: TensorSpec, field: str, *, allow_nan: bool) -> npt.NDArray[Any]:
    target = spec.dtype
    if target.kind in "iu" and array.size:
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            raise InvalidInput(
                f"{field}: values outside the range of {spec.datatype} [{info.min}, {info.max}]"
            )
    with np.errstate(over="ignore", invalid="ignore"):
        cast = array.astype(target, copy=False)
    if target.kind == "f" and not allow_nan and not np.isfinite(cast).all():
        raise InvalidInput(
            f"{field}: NaN and infinite values are not allowed (nor values too large for {spec.datatype})"
        )
    return cast


def _describe(dtype: np.dtype[Any]) -> str:
    kinds = {"f": "numbers", "i": "integers", "u": "integers", "b": "booleans"}
    return kinds.get(dtype.kind, "strings or other non-numbers")
