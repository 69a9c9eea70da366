"""Loading a PyTorch model in one of the supported formats onto a device.

Each format says what it knows about the model's input: an exported program records the shape
and dtype of its placeholder, an MLflow model its signature, an AOTInductor package what
`modelramp compile` wrote into its metadata, a TorchScript archive nothing (so `--input-shape` is
required). Nothing here unpickles arbitrary objects except the `mlflow` format,
which a user opts into by choosing it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelramp.serving import aoti
from modelramp.serving.config import ServeConfig
from modelramp.serving.errors import ModelLoadError
from modelramp.serving.input_reference import FILE_NAME
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
    # The model's own input reference file (an MLflow model's `input_reference.json`), if any.
    input_reference: Path | None = None


@dataclass(frozen=True, slots=True)
class _InputHint:
    """What a format could read about the input from the model itself (None: unknown)."""

    row_shape: tuple[int, ...] | None
    datatype: str | None
    columns: tuple[str, ...] | None = None
    input_reference: Path | None = None


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
        "aoti": _load_aoti,
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
    columns = hint.columns if hint.columns is not None and (len(hint.columns),) == row_shape else None
    spec = TensorSpec(name=config.input_name, datatype=datatype, row_shape=row_shape, columns=columns)
    return LoadedModel(
        forward=forward,
        input=spec,
        device=device,
        platform=f"pytorch_{config.format}",
        input_reference=hint.input_reference,
    )


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
    input_ = program_input(program)
    hint = _InputHint(row_shape=input_.row_shape, datatype=input_.datatype)
    if config.compile == "aoti":
        cache = config.compile_cache or aoti.default_cache()
        package, _ = aoti.cached_package(path, program, input_, device, cache)
        compiled, _ = aoti.load_package(package, device)
        return compiled, hint
    return program.module().to(device), hint


def _load_aoti(config: ServeConfig, device: torch.device) -> tuple[Forward, _InputHint]:
    path = _single_file(local_model_path(config.model_uri))
    compiled, recorded = aoti.load_package(path, device)
    if recorded is None:
        return compiled, _InputHint(row_shape=None, datatype=None)
    return compiled, _InputHint(row_shape=recorded.row_shape, datatype=recorded.datatype)


def program_input(program: torch.export.ExportedProgram) -> aoti.Input:
    """The one input of an exported program, which must have a dynamic batch dimension."""
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
    return aoti.Input(
        row_shape=tuple(int(dim) for dim in example.shape[1:]), datatype=_datatype(example.dtype)
    )


def _load_mlflow(config: ServeConfig, device: torch.device) -> tuple[Forward, _InputHint]:
    import mlflow.models  # noqa: PLC0415 - heavy, only for this format
    import mlflow.pytorch  # noqa: PLC0415

    # One download of the whole model directory: the model, its MLmodel and input_reference.json.
    local = local_model_path(config.model_uri)
    module = mlflow.pytorch.load_model(str(local), map_location=device)
    # Pickled modules may have been saved in training mode; exported ones (pt2) have no eval().
    if isinstance(module, torch.nn.Module) and not isinstance(module, torch.fx.GraphModule):
        module.eval()
    signature = mlflow.models.get_model_info(str(local)).signature
    hint = _signature_hint(signature.inputs if signature is not None else None)
    reference = local / FILE_NAME
    if reference.is_file():
        hint = replace(hint, input_reference=reference)
    forward: Forward = module
    return forward, hint


def _signature_hint(inputs: Any) -> _InputHint:
    """What an MLflow signature says: a tensor spec's row shape, or a column spec's numeric columns."""
    unknown = _InputHint(row_shape=None, datatype=None)
    if inputs is None:
        return unknown
    if inputs.is_tensor_spec():
        if len(inputs.inputs) != 1:
            return unknown
        spec = inputs.inputs[0]
        if not all(dim > 0 for dim in spec.shape[1:]):
            return unknown
        return _InputHint(
            row_shape=tuple(int(dim) for dim in spec.shape[1:]), datatype=_numpy_datatype(spec.type)
        )
    names, types = inputs.input_names(), inputs.input_types()
    numpy_types = {np.dtype(kind.to_numpy()) for kind in types if hasattr(kind, "to_numpy")}
    if len(numpy_types) != 1 or len(types) != len(names) or not all(isinstance(name, str) for name in names):
        return unknown
    datatype = _numpy_datatype(numpy_types.pop())
    if datatype is None:
        return unknown
    return _InputHint(row_shape=(len(names),), datatype=datatype, columns=tuple(names))


def _numpy_datatype(numpy_type: Any) -> str | None:
    try:
        return datatype_of(np.dtype(numpy_type))
    except (TypeError, ValueError):
        return None


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
