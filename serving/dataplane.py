"""What each endpoint does, without HTTP: bytes in, JSON bytes out, typed errors for bad requests.

The ASGI app (`app`) is a thin adapter over this; KServe's `DataPlane` is the model for the split.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ValidationError

from modelramp.serving.batching import DynamicBatcher
from modelramp.serving.binary import decode_tensor, encode_tensor, split_body
from modelramp.serving.bodies import RequestBody
from modelramp.serving.config import ServeConfig
from modelramp.serving.errors import InvalidInput, ModelNotFound, ModelNotReady, UnsupportedMediaType
from modelramp.serving.frames import csv_rows, records_rows, split_rows
from modelramp.serving.metrics import InferenceStatistics
from modelramp.serving.predictor import Predictor
from modelramp.serving.protocol import (
    InferenceRequest,
    InvocationsRequest,
    ModelMetadata,
    RepositoryEntry,
    ServerMetadata,
    TensorMetadata,
    TritonDuration,
    TritonDynamicBatching,
    TritonInferStats,
    TritonModelConfig,
    TritonModelStats,
    TritonStatistics,
    TritonTensorConfig,
)
from modelramp.serving.tensors import to_array

SERVER_NAME = "modelramp"
SERVER_VERSION = "0.1.0"
_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_Model = TypeVar("_Model", bound=BaseModel)


EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A prediction's response body; `header_length` is set when binary tensors follow the JSON."""

    body: bytes
    header_length: int | None = None


class ServingState:
    """Where the server is in its life: loading, ready, or draining after SIGTERM."""

    def __init__(self, others_ready: Callable[[], bool] = lambda: True) -> None:
        self.predictor: Predictor | None = None
        self.batcher: DynamicBatcher | None = None
        self.draining = False
        self.started_at = time.time()
        # With `--processes`, whether the other processes loaded theirs: any may take a request.
        self._others_ready = others_ready

    @property
    def ready(self) -> bool:
        loaded = self.predictor is not None and self.batcher is not None
        return loaded and not self.draining and self._others_ready()


class DataPlane:
    """The served model's endpoints, independent of the transport."""

    def __init__(self, config: ServeConfig, state: ServingState, statistics: InferenceStatistics) -> None:
        self.config = config
        self.state = state
        self.statistics = statistics

    def server_metadata(self) -> bytes:
        return _dump(ServerMetadata(name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS))

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

    def model_config(self, name: str, version: str | None) -> bytes:
        """Triton's model configuration: what tritonclient's `get_model_config` reads."""
        self.check_model(name, version)
        predictor = self._predictor()
        spec = predictor.model.input
        return _dump(
            TritonModelConfig(
                name=self.config.model_name,
                platform=predictor.model.platform,
                backend="pytorch",
                max_batch_size=self.config.max_batch_size,
                input=[
                    TritonTensorConfig(
                        name=spec.name, data_type=f"TYPE_{spec.datatype}", dims=[*spec.row_shape]
                    )
                ],
                output=[
                    TritonTensorConfig(
                        name=self.config.output_name,
                        data_type=f"TYPE_{predictor.output_datatype}",
                        dims=[*predictor.output_row_shape],
                    )
                ],
                dynamic_batching=TritonDynamicBatching(
                    max_queue_delay_microseconds=int(self.config.max_latency_ms * 1000)
                ),
            )
        )

    def model_statistics(
        self, name: str | None, version: str | None, totals: InferenceStatistics | None = None
    ) -> bytes:
        """Triton's statistics; `name` None: every model (the one served here); `totals`: those of
        every server process, when there are several, else this one's."""
        if name is not None:
            self.check_model(name, version)
        if totals is None:
            totals = self.statistics
        never = TritonDuration(count=0, ns=0)
        return _dump(
            TritonStatistics(
                model_stats=[
                    TritonModelStats(
                        name=self.config.model_name,
                        version=self.config.model_version,
                        last_inference=totals.last_inference_ms,
                        inference_count=totals.inference_count,
                        execution_count=totals.execution_count,
                        inference_stats=TritonInferStats(
                            success=TritonDuration(count=totals.success_count, ns=totals.success_ns),
                            fail=TritonDuration(count=totals.fail_count, ns=totals.fail_ns),
                            queue=never,
                            compute_input=never,
                            compute_infer=TritonDuration(count=totals.execution_count, ns=totals.compute_ns),
                            compute_output=never,
                            cache_hit=never,
                            cache_miss=never,
                        ),
                        batch_stats=[],
                    )
                ]
            )
        )

    def repository_index(self) -> bytes:
        state = "READY" if self.state.ready else "LOADING"
        entry = RepositoryEntry(name=self.config.model_name, version=self.config.model_version, state=state)
        return orjson.dumps([entry.model_dump()])

    async def infer(self, name: str, version: str | None, body: RequestBody) -> Answer:
        """OIP v2 inference, JSON or with the binary tensor extension, in and out."""
        self.check_model(name, version)
        predictor, batcher = self._predictor(), self._batcher()
        with batcher.arrival() as arrival:
            if body.header_length is None:
                header, binary = body.data, None
            else:
                header, binary = split_body(body.data, body.header_length)
            request = _parse(InferenceRequest, header, allow_nan=self.config.allow_nan)
            rows = self._oip_rows(request, binary)
            future = arrival.submit(rows, mirrored=body.mirrored)
        output = np.ascontiguousarray(await future)
        datatype = predictor.output_datatype
        tensor: dict[str, Any] = {
            "name": self.config.output_name,
            "datatype": datatype,
            "shape": list(output.shape),
        }
        response: dict[str, Any] = {
            "model_name": self.config.model_name,
            "model_version": self.config.model_version,
            "outputs": [tensor],
        }
        if request.id is not None:
            response["id"] = request.id
        if not _wants_binary_output(request):
            tensor["data"] = output.reshape(-1)
            return Answer(orjson.dumps(response, option=_DUMP_OPTIONS))
        raw = encode_tensor(output, datatype)
        tensor["parameters"] = {"binary_data_size": len(raw)}
        json_header = orjson.dumps(response)
        return Answer(json_header + raw, header_length=len(json_header))

    async def invocations(self, body: RequestBody) -> Answer:
        """MLflow scoring: tensors (`inputs`, `instances`), DataFrames or CSV -> `{"predictions": rows}`."""
        batcher = self._batcher()
        spec = self._predictor().model.input
        media_type = (body.content_type or "").partition(";")[0].strip().lower()
        with batcher.arrival() as arrival:
            if media_type == "text/csv":
                rows = to_array(
                    csv_rows(body.data, spec),
                    spec,
                    data_field="body (CSV)",
                    shape_field="body (CSV)",
                    allow_nan=self.config.allow_nan,
                )
            elif media_type == "application/json":
                rows = self._mlflow_rows(
                    _parse(InvocationsRequest, body.data, allow_nan=self.config.allow_nan)
                )
            else:
                raise UnsupportedMediaType(
                    f"Content-Type: {body.content_type or 'none'!r}; /invocations reads application/json"
                    " or text/csv"
                )
            future = arrival.submit(rows, mirrored=body.mirrored)
        output = await future
        return Answer(orjson.dumps({"predictions": np.ascontiguousarray(output)}, option=_DUMP_OPTIONS))

    def _oip_rows(self, request: InferenceRequest, binary: memoryview | None) -> npt.NDArray[Any]:
        spec = self._predictor().model.input
        if request.outputs is not None:
            unknown = [output.name for output in request.outputs if output.name != self.config.output_name]
            if unknown:
                raise InvalidInput(
                    f"outputs: unknown output {unknown[0]!r}; this model has {self.config.output_name!r}"
                )
        binaries = _binary_inputs(request, binary)
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
        data = tensor.data
        if binaries[0] is not None:
            data = decode_tensor(binaries[0], tensor.datatype, tensor.shape, "inputs[0]")
        return to_array(
            data,
            spec,
            data_field="inputs[0].data",
            shape_field="inputs[0].shape",
            allow_nan=self.config.allow_nan,
            declared_shape=tensor.shape,
        )

    def _mlflow_rows(self, request: InvocationsRequest) -> npt.NDArray[Any]:
        spec = self._predictor().model.input
        key, data = request.payload
        if key == "dataframe_split":
            data = split_rows(data, spec)
        elif key == "dataframe_records":
            data = records_rows(data, spec)
        elif isinstance(data, dict):
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


def _binary_inputs(request: InferenceRequest, binary: memoryview | None) -> list[memoryview | None]:
    """Each input's slice of the binary section (None: its values are in `data`)."""
    slices: list[memoryview | None] = []
    offset = 0
    for index, tensor in enumerate(request.inputs):
        size = tensor.binary_size
        if size is None:
            if tensor.data is None:
                raise InvalidInput(f"inputs[{index}]: needs data or parameters.binary_data_size")
            slices.append(None)
            continue
        if binary is None:
            raise InvalidInput(
                f"inputs[{index}].parameters.binary_data_size: binary tensor data needs the"
                " Inference-Header-Content-Length header"
            )
        if size < 0 or offset + size > len(binary):
            raise InvalidInput(
                f"inputs[{index}].parameters.binary_data_size: {size} bytes from offset {offset}"
                f" run past the {len(binary)} bytes after the JSON header"
            )
        slices.append(binary[offset : offset + size])
        offset += size
    if binary is not None and offset != len(binary):
        raise InvalidInput(
            f"body: {len(binary)} bytes after the JSON header,"
            f" the inputs' binary_data_size add up to {offset}"
        )
    return slices


def _wants_binary_output(request: InferenceRequest) -> bool:
    """Per output `parameters.binary_data` wins over the request's `binary_data_output`."""
    requested = None
    if request.outputs:
        requested = (request.outputs[0].parameters or {}).get("binary_data")
    if requested is None:
        requested = (request.parameters or {}).get("binary_data_output", False)
    return requested is True


def _parse(model: type[_Model], body: bytes, *, allow_nan: bool) -> _Model:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        non_finite = b"NaN" in body or b"Infinity" in body
        if non_finite and allow_nan:
            document = _loads_with_nan(body)
        else:
            hint = " (NaN and Infinity are not JSON numbers)" if non_finite else ""
            raise InvalidInput(f"body: malformed JSON{hint}: {error}") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"body: expected a JSON object, got {type(document).__name__}")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise InvalidInput(_describe_validation(error)) from None


def _loads_with_nan(body: bytes) -> Any:
    """With `--allow-nan`: Python's parser, which reads the NaN/Infinity literals clients send."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput(f"body: malformed JSON: {error}") from None


def _describe_validation(error: ValidationError) -> str:
    first = error.errors()[0]
    location = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(
        "."
    )
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{location or 'body'}: {first['msg']}{more}"


def _dump(model: BaseModel) -> bytes:
    return orjson.dumps(model.model_dump())
