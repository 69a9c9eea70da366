"""The Triton binary tensor data extension: tensors as raw bytes after the JSON request/response.

A body in this form is a JSON header of `Inference-Header-Content-Length` bytes followed by the
tensors' raw bytes, in the order of the tensors that carry `parameters.binary_data_size`. Numbers
are little-endian, row-major, BOOL one byte per element; BYTES elements are each a 4-byte
little-endian length followed by that many bytes. tritonclient and kserve's client send and ask
for this form by default, and it skips the JSON number round trip both ways.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from modelramp.serving.errors import InvalidInput
from modelramp.serving.tensors import DATATYPES

HEADER_LENGTH = b"inference-header-content-length"
_LENGTH = struct.Struct("<I")


def split_body(body: bytes, header_length: int) -> tuple[bytes, memoryview]:
    """The JSON header and the binary section of a body whose JSON is `header_length` bytes."""
    if header_length > len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length: {header_length} is longer than the body ({len(body)} bytes)"
        )
    view = memoryview(body)
    return body[:header_length], view[header_length:]


def parse_header_length(value: bytes) -> int:
    if not value.isdigit():
        raise InvalidInput(f"Inference-Header-Content-Length: expected a byte count, got {value.decode()!r}")
    return int(value)


def decode_tensor(raw: memoryview, datatype: str, shape: list[int], field: str) -> npt.NDArray[Any]:
    """The array of `shape` that `raw` holds; BYTES become an object array of `bytes`."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return decode_bytes(raw, count, field).reshape(shape)
    dtype = DATATYPES.get(datatype)
    if dtype is None:
        raise InvalidInput(f"{field}: unknown datatype {datatype!r}")
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"{field}: {datatype} of shape {shape} is {expected} bytes, binary_data_size says {len(raw)}"
        )
    # A copy: the body is immutable bytes, and torch wants a tensor it may write to.
    array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape).copy()
    if datatype == "BOOL" and array.size and np.frombuffer(raw, dtype=np.uint8).max() > 1:
        raise InvalidInput(f"{field}: BOOL elements must be bytes 0 or 1")
    return array


def decode_bytes(raw: memoryview, count: int, field: str) -> npt.NDArray[np.object_]:
    elements: list[bytes] = []
    offset = 0
    for _ in range(count):
        if offset + _LENGTH.size > len(raw):
            raise InvalidInput(f"{field}: BYTES data ends after {len(elements)} of {count} elements")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > len(raw):
            raise InvalidInput(f"{field}: BYTES element {len(elements)} runs past the end of its data")
        elements.append(bytes(raw[offset : offset + length]))
        offset += length
    if offset != len(raw):
        raise InvalidInput(f"{field}: {len(raw) - offset} bytes left over after {count} BYTES elements")
    array = np.empty(count, dtype=np.object_)
    array[:] = elements
    return array


def encode_tensor(array: npt.NDArray[Any], datatype: str) -> bytes:
    """The raw bytes of `array` as `datatype`: the inverse of `decode_tensor`."""
    if datatype == "BYTES":
        return b"".join(
            _LENGTH.pack(len(item)) + item
            for item in (
                element if isinstance(element, bytes) else str(element).encode()
                for element in array.reshape(-1)
            )
        )
    return np.ascontiguousarray(array, dtype=DATATYPES[datatype].newbyteorder("<")).tobytes()
