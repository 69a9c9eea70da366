"""Loading a PyTorch model in one of the three supported formats onto a device.

Each format says what it knows about the model's input: an exported program records the shape
and dtype of its placeholder, an MLflow model its signature, a TorchScript archive nothing (so
`--input-shape` is required). Nothing here unpickles arbitrary objects except the `mlflow` format,
which a user opts into by choosing it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelramp.serving.config import ServeConfig
from modelramp.serving.errors import ModelLoadError
from modelramp.serving.sources import local_model_path
from modelramp.serving.tensors import TensorSpec, datatype_of

Forward = Callable[[torch.Tensor], Any]


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A callable model on its device, and the input it takes."""

    forward: Forward
    input: TensorSpec
    device: torch.device
    platform: str


@dataclass(frozen=True, slots=True)
class _InputHint:
    """What a format could read about the input from the model itself (None: unknown)."""

    row_shape: tuple[int, ...] | None
    datatype: str | None


def resolve_device(choice: str) -> torch.device:
    """`auto` is CUDA when a GPU is visible, else CPU; `cuda` without a GPU is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device: 'cuda' requested but torch sees no CUDA device")
    return torch.device(choice)


def load_model(config: ServeConfig) -> LoadedModel:
    device = resolve_device(config.device)
    loaders: dict[str, Callable[[ServeConfig, torch.device], tuple[Forward, _InputHint]]] = {
        "torchscript": _load_torchscript,
        "exported-program": _load_exported_program,
        "mlflow": _load_mlflow,
    }
    try:
        forward, hint = loaders[config.format](config, device)
    except ModelLoadError:
        raise
    except Exception as error:  # torch and mlflow raise many types for a bad file
        raise ModelLoadError(
            f"model-uri: loading {config.model_uri!r} as {config.format} failed: {error}"
        ) from error
    row_shape = config.input_shape or hint.row_shape
    if row_shape is None:
        raise ModelLoadError(
            f"input-shape: a {config.format} model does not record its input shape;"
            " pass --input-shape (per row, e.g. 3,224,224)"
        )
    if config.input_shape and hint.row_shape and config.input_shape != hint.row_shape:
        raise ModelLoadError(
            f"input-shape: {list(config.input_shape)} but the model takes {list(hint.row_shape)}"
        )
    datatype = config.input_datatype or hint.datatype or "FP32"
    spec = TensorSpec(name=config.input_name, datatype=datatype, row_shape=row_shape)
    return LoadedModel(forward=forward, input=spec, device=device, platform=f"pytorch_{config.format}")


def _load_torchscript(config: ServeConfig, device: torch.device) -> tuple[Forward, _InputHint]:
    path = _single_file(local_model_path(config.model_uri))
    with warnings.catch_warnings():
        # TorchScript is deprecated upstream; whoever chose this format knows, the log needn't repeat it.
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location=device)  # type: ignore[no-untyped-call]
    module.eval()
    return module, _InputHint(row_shape=None, datatype=None)


def _load_exported_program(config: ServeConfig, device: torch.device) -> tuple[Forward, _InputHint]:
    path = _single_file(local_model_path(config.model_uri))
    program = torch.export.load(str(path))
    user_inputs = program.graph_signature.user_inputs
    if len(user_inputs) != 1:
        raise ModelLoadError(
            f"model-uri: the exported program takes {len(user_inputs)} inputs; only one is supported"
        )
    placeholder = next(
        node for node in program.graph.nodes if node.op == "placeholder" and node.name == user_inputs[0]
    )
    example = placeholder.meta["val"]
    if isinstance(example.shape[0], int):
        raise ModelLoadError(
            f"model-uri: the exported program's batch dimension is fixed at {example.shape[0]};"
            " export it with dynamic_shapes={...: {0: torch.export.Dim('batch')}} so requests can be batched"
        )
    hint = _InputHint(
        row_shape=tuple(int(dim) for dim in example.shape[1:]), datatype=_datatype(example.dtype)
    )
    return program.module().to(device), hint


def _load_mlflow(config: ServeConfig, device: torch.device) -> tuple[Forward, _InputHint]:
    import mlflow.models  # noqa: PLC0415 - heavy, only for this format
    import mlflow.pytorch  # noqa: PLC0415

    module = mlflow.pytorch.load_model(config.model_uri, map_location=device)
    # Pickled modules may have been saved in training mode; exported ones (pt2) have no eval().
    if isinstance(module, torch.nn.Module) and not isinstance(module, torch.fx.GraphModule):
        module.eval()
    signature = mlflow.models.get_model_info(config.model_uri).signature
    hint = _InputHint(row_shape=None, datatype=None)
    if signature is not None and len(signature.inputs.inputs) == 1:
        spec = signature.inputs.inputs[0]
        shape = getattr(spec, "shape", None)
        numpy_type = getattr(spec, "type", None)
        if shape is not None and all(dim > 0 for dim in shape[1:]):
            hint = _InputHint(
                row_shape=tuple(int(dim) for dim in shape[1:]),
                datatype=datatype_of(np.dtype(numpy_type)) if numpy_type is not None else None,
            )
    forward: Forward = module
    return forward, hint


def _single_file(path: Path) -> Path:
    if path.is_file():
        return path
    files = [child for child in path.iterdir() if child.is_file()] if path.is_dir() else []
    if len(files) != 1:
        raise ModelLoadError(
            f"model-uri: {path} must be a model file or a directory holding exactly one file"
        )
    return files[0]


def _datatype(dtype: torch.dtype) -> str:
    try:
        return datatype_of(np.dtype(torch.empty((), dtype=dtype).numpy().dtype))
    except (TypeError, ValueError):
        raise ModelLoadError(
            f"model-uri: input dtype {dtype} has no Open Inference Protocol datatype"
        ) from None
