"""What each endpoint does, without HTTP: bytes in, JSON bytes out, typed errors for bad requests.

The ASGI app (`app`) is a thin adapter over this; KServe's `DataPlane` is the model for the split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ValidationError

from modelramp.serving.batching import DynamicBatcher
from modelramp.serving.config import ServeConfig
from modelramp.serving.errors import InvalidInput, ModelNotFound, ModelNotReady
from modelramp.serving.predictor import Predictor
from modelramp.serving.protocol import (
    InferenceRequest,
    InvocationsRequest,
    ModelMetadata,
    ServerMetadata,
    TensorMetadata,
)
from modelramp.serving.tensors import to_array

SERVER_NAME = "modelramp"
SERVER_VERSION = "0.1.0"
_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_Model = TypeVar("_Model", bound=BaseModel)


class ServingState:
    """Where the server is in its life: loading, ready, or draining after SIGTERM."""

    def __init__(self) -> None:
        self.predictor: Predictor | None = None
        self.batcher: DynamicBatcher | None = None
        self.draining = False
        self.started_at = time.time()

    @property
    def ready(self) -> bool:
        return self.predictor is not None and self.batcher is not None and not self.draining


class DataPlane:
    """The served model's endpoints, independent of the transport."""

    def __init__(self, config: ServeConfig, state: ServingState) -> None:
        self.config = config
        self.state = state

    def server_metadata(self) -> bytes:
        return _dump(ServerMetadata(name=SERVER_NAME, version=SERVER_VERSION, extensions=[]))

    def check_model(self, name: str, version: str | None) -> None:
        if name != self.config.model_name:
            raise ModelNotFound(
                f"model {name!r} is not served here; this server serves {self.config.model_name!r}"
            )
        if version is not None and version != self.config.model_version:
            raise ModelNotFound(
                f"version {version!r} of model {name!r} is not served here;"
                f" this server serves {self.config.model_version!r}"
            )

    def model_metadata(self, name: str, version: str | None) -> bytes:
        self.check_model(name, version)
        predictor = self._predictor()
        spec = predictor.model.input
        return _dump(
            ModelMetadata(
                name=self.config.model_name,
                versions=[self.config.model_version],
                platform=predictor.model.platform,
                inputs=[TensorMetadata(name=spec.name, datatype=spec.datatype, shape=[-1, *spec.row_shape])],
                outputs=[
                    TensorMetadata(
                        name=self.config.output_name,
                        datatype=predictor.output_datatype,
                        shape=[-1, *predictor.output_row_shape],
                    )
                ],
            )
        )

    async def infer(self, name: str, version: str | None, read_body: Callable[[], Any]) -> bytes:
        """OIP v2 inference; `read_body` is awaited here so the batcher knows the request is coming."""
        self.check_model(name, version)
        predictor, batcher = self._predictor(), self._batcher()
        with batcher.arrival() as arrival:
            request = _parse(InferenceRequest, await read_body())
            rows = self._oip_rows(request)
            future = arrival.submit(rows)
        output = await future
        response: dict[str, Any] = {
            "model_name": self.config.model_name,
            "model_version": self.config.model_version,
            "outputs": [
                {
                    "name": self.config.output_name,
                    "datatype": predictor.output_datatype,
                    "shape": list(output.shape),
                    "data": np.ascontiguousarray(output).reshape(-1),
                }
            ],
        }
        if request.id is not None:
            response["id"] = request.id
        return orjson.dumps(response, option=_DUMP_OPTIONS)

    async def invocations(self, read_body: Callable[[], Any]) -> bytes:
        """MLflow scoring: `{"inputs": rows}` or `{"instances": rows}` -> `{"predictions": rows}`."""
        batcher = self._batcher()
        self._predictor()
        with batcher.arrival() as arrival:
            request = _parse(InvocationsRequest, await read_body())
            rows = self._mlflow_rows(request)
            future = arrival.submit(rows)
        output = await future
        return orjson.dumps({"predictions": np.ascontiguousarray(output)}, option=_DUMP_OPTIONS)

    def _oip_rows(self, request: InferenceRequest) -> npt.NDArray[Any]:
        spec = self._predictor().model.input
        if request.outputs is not None:
            unknown = [output.name for output in request.outputs if output.name != self.config.output_name]
            if unknown:
                raise InvalidInput(
                    f"outputs: unknown output {unknown[0]!r}; this model has {self.config.output_name!r}"
                )
        matching = [index for index, tensor in enumerate(request.inputs) if tensor.name == spec.name]
        if not matching:
            names = [tensor.name for tensor in request.inputs]
            raise InvalidInput(f"inputs: missing input {spec.name!r} (got {names})")
        if len(request.inputs) != 1:
            raise InvalidInput(
                f"inputs: this model takes exactly one input, {spec.name!r}; got {len(request.inputs)}"
            )
        tensor = request.inputs[0]
        if tensor.datatype != spec.datatype:
            raise InvalidInput(
                f"inputs[0].datatype: {spec.name!r} takes {spec.datatype}, got {tensor.datatype!r}"
            )
        return to_array(
            tensor.data,
            spec,
            data_field="inputs[0].data",
            shape_field="inputs[0].shape",
            allow_nan=self.config.allow_nan,
            declared_shape=tensor.shape,
        )

    def _mlflow_rows(self, request: InvocationsRequest) -> npt.NDArray[Any]:
        spec = self._predictor().model.input
        key, data = request.payload
        if isinstance(data, dict):
            if list(data) != [spec.name]:
                raise InvalidInput(
                    f"{key}: named inputs must be exactly {{{spec.name!r}: ...}}, got {list(data)}"
                )
            key, data = f"{key}.{spec.name}", data[spec.name]
        return to_array(data, spec, data_field=key, shape_field=key, allow_nan=self.config.allow_nan)

    def _predictor(self) -> Predictor:
        if self.state.predictor is None:
            raise ModelNotReady(f"model {self.config.model_name!r} is still loading")
        return self.state.predictor

    def _batcher(self) -> DynamicBatcher:
        if self.state.batcher is None:
            raise ModelNotReady(f"model {self.config.model_name!r} is still loading")
        return self.state.batcher


def _parse(model: type[_Model], body: bytes) -> _Model:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        hint = " (NaN and Infinity are not JSON numbers)" if b"NaN" in body or b"Infinity" in body else ""
        raise InvalidInput(f"body: malformed JSON{hint}: {error}") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"body: expected a JSON object, got {type(document).__name__}")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise InvalidInput(_describe_validation(error)) from None


def _describe_validation(error: ValidationError) -> str:
    first = error.errors()[0]
    location = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(
        "."
    )
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{location or 'body'}: {first['msg']}{more}"


def _dump(model: BaseModel) -> bytes:
    return orjson.dumps(model.model_dump())
