"""Request and response bodies of the two HTTP protocols we speak, as pydantic models.

Open Inference Protocol v2 (KServe, Triton, MLServer) and MLflow's scoring protocol. `data` stays
`Any` here on purpose: pydantic would walk every number, numpy converts it in one call later.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RequestInput(BaseModel):
    name: Annotated[str, Field(min_length=1)]
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: str
    data: Any = None  # absent when the tensor is binary (`parameters.binary_data_size`)
    parameters: dict[str, Any] | None = None

    @property
    def binary_size(self) -> int | None:
        size = (self.parameters or {}).get("binary_data_size")
        return size if isinstance(size, int) and not isinstance(size, bool) else None


class RequestOutput(BaseModel):
    name: Annotated[str, Field(min_length=1)]
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """`POST /v2/models/{name}/infer`."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: Annotated[list[RequestInput], Field(min_length=1)]
    outputs: list[RequestOutput] | None = None


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """`GET /v2/models/{name}`; -1 marks the batch dimension."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    """`GET /v2`."""

    name: str
    version: str
    extensions: list[str]


class TritonTensorConfig(BaseModel):
    name: str
    data_type: str  # "TYPE_FP32", ...
    dims: list[int]  # per row: the batch dimension is implied by max_batch_size > 0


class TritonDynamicBatching(BaseModel):
    max_queue_delay_microseconds: int


class TritonModelConfig(BaseModel):
    """`GET /v2/models/{name}/config` (Triton's model configuration extension)."""

    name: str
    platform: str
    backend: str
    max_batch_size: int
    input: list[TritonTensorConfig]
    output: list[TritonTensorConfig]
    dynamic_batching: TritonDynamicBatching


class TritonDuration(BaseModel):
    count: int
    ns: int


class TritonInferStats(BaseModel):
    success: TritonDuration
    fail: TritonDuration
    queue: TritonDuration
    compute_input: TritonDuration
    compute_infer: TritonDuration
    compute_output: TritonDuration
    cache_hit: TritonDuration
    cache_miss: TritonDuration


class TritonModelStats(BaseModel):
    name: str
    version: str
    last_inference: int  # ms since the epoch
    inference_count: int
    execution_count: int
    inference_stats: TritonInferStats
    batch_stats: list[dict[str, Any]]


class TritonStatistics(BaseModel):
    """`GET /v2/models[/{name}[/versions/{v}]]/stats` (Triton's statistics extension)."""

    model_stats: list[TritonModelStats]


class RepositoryEntry(BaseModel):
    """One item of `POST /v2/repository/index`."""

    name: str
    version: str
    state: str


_MLFLOW_KEYS = ("inputs", "instances", "dataframe_split", "dataframe_records")


class InvocationsRequest(BaseModel):
    """`POST /invocations` (MLflow): exactly one of the four payload keys."""

    model_config = ConfigDict(extra="forbid")

    inputs: Any = None
    instances: Any = None
    dataframe_split: Any = None
    dataframe_records: Any = None
    params: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _exactly_one_payload(self) -> InvocationsRequest:
        given = [key for key in _MLFLOW_KEYS if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {list(_MLFLOW_KEYS)}, got {given or 'none'}")
        return self

    @property
    def payload(self) -> tuple[str, Any]:
        key = next(key for key in _MLFLOW_KEYS if getattr(self, key) is not None)
        return key, getattr(self, key)
