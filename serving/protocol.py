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
    data: Any
    parameters: dict[str, Any] | None = None


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


_MLFLOW_TENSOR_KEYS = ("inputs", "instances")
_MLFLOW_KEYS = (*_MLFLOW_TENSOR_KEYS, "dataframe_split", "dataframe_records")


class InvocationsRequest(BaseModel):
    """`POST /invocations` (MLflow): exactly one of `inputs` or `instances` for a tensor model."""

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
            raise ValueError(f"give exactly one of {list(_MLFLOW_TENSOR_KEYS)}, got {given or 'none'}")
        if given[0] not in _MLFLOW_TENSOR_KEYS:
            raise ValueError(
                f"{given[0]!r} is for DataFrame models; this tensor model takes 'inputs' or 'instances'"
            )
        return self

    @property
    def payload(self) -> tuple[str, Any]:
        return ("inputs", self.inputs) if self.inputs is not None else ("instances", self.instances)
