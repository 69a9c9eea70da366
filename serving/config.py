"""The server's configuration: one validated `ServeConfig`, from flags or `MODELRAMP_*` variables.

The operator configures pods through environment variables, people through flags; both end up
here so that a bad value is rejected at start-up with the field's name, not at the first request.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelramp.serving.tensors import DATATYPES

ModelFormat = Literal["aoti", "exported-program", "torchscript", "mlflow"]
# `aoti`: compile an exported program with AOTInductor when it loads (cached, see `aoti`).
CompileChoice = Literal["none", "aoti"]
DeviceChoice = Literal["auto", "cpu", "cuda"]

DEFAULT_PREDICTION_BUCKETS = tuple(round(step / 10, 1) for step in range(11))


def _split_csv(value: object) -> object:
    """Accepts "1,2,3" (how flags and env variables spell lists) as well as real lists."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ServeConfig(BaseModel):
    """Everything `modelramp serve` needs; field names match the flags (`--max-batch-size`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_uri: Annotated[str, Field(min_length=1)]
    format: ModelFormat
    model_name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = "model"
    model_version: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = "1"
    device: DeviceChoice = "auto"
    compile: CompileChoice = "none"
    # Where load-time compiles are kept (keyed by model content, torch version and device);
    # None: $MODELRAMP_CACHE/aoti, else ~/.cache/modelramp/aoti.
    compile_cache: Path | None = None
    host: str = "0.0.0.0"  # a pod must listen on its own IP, not only loopback
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_batch_size: Annotated[int, Field(ge=1, le=65536)] = 32
    max_latency_ms: Annotated[float, Field(ge=0, le=60_000)] = 5.0
    prediction_buckets: tuple[float, ...] = DEFAULT_PREDICTION_BUCKETS
    max_body_bytes: Annotated[int, Field(ge=1)] = 16 * 1024 * 1024
    body_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    # Per-row shape and datatype of the model's input; read from the model when it records them
    # (exported programs, MLflow signatures), required for TorchScript.
    input_shape: tuple[int, ...] | None = None
    input_datatype: str | None = None
    input_name: Annotated[str, Field(min_length=1)] = "input-0"
    output_name: Annotated[str, Field(min_length=1)] = "output-0"
    allow_nan: bool = False
    # Server processes sharing the port, each with its own copy of the model (`processes`).
    processes: Annotated[int, Field(ge=1, le=64)] = 1
    # torch intra-op threads; None: the CPUs the container may use (`cpus`) shared out among the
    # processes, 1 for cheap models.
    torch_threads: Annotated[int, Field(ge=1, le=1024)] | None = None
    # Per-feature input histograms (`input_reference`); MLflow models may carry the file instead.
    input_reference: Path | None = None
    # Where to copy requests to in a shadow step (serving/shadow.py); re-read every second.
    shadow_config: Path | None = None
    graceful_shutdown_s: Annotated[float, Field(ge=0)] = 30.0
    # An A/B test's assignment table (the operator mounts it from a ConfigMap); see `assignment`.
    assignment_file: Path | None = None
    forward_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("prediction_buckets", "input_shape", mode="before")
    @classmethod
    def _lists_from_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("prediction_buckets")
    @classmethod
    def _buckets_increase(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("needs at least one bucket bound")
        if any(later <= earlier for earlier, later in itertools.pairwise(value)):
            raise ValueError(f"bucket bounds must strictly increase, got {list(value)}")
        return value

    @field_validator("input_shape")
    @classmethod
    def _positive_dims(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and any(dim < 1 for dim in value):
            raise ValueError(f"every dimension must be >= 1, got {list(value)}")
        return value

    @field_validator("input_datatype")
    @classmethod
    def _known_datatype(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in DATATYPES:
            raise ValueError(f"unsupported datatype {value!r}; one of {sorted(DATATYPES)}")
        return None if value is None else value.upper()

    @model_validator(mode="after")
    def _compile_needs_a_program(self) -> ServeConfig:
        if self.compile != "none" and self.format != "exported-program":
            raise ValueError(
                f"compile: {self.compile!r} compiles an exported program; the format is {self.format!r}"
            )
        return self
