"""AOTInductor packages: compiling an exported program ahead of time, caching it, loading it.

A package (`torch._inductor.aoti_compile_and_package`) is the exported graph compiled to a shared
library: no Python graph interpreter on the hot path, which is why it is the fastest format here
(docs/serving.md, "Formats"). It records nothing about its input that torch exposes, so packages
compiled here carry the row shape and datatype in their AOTInductor metadata; packages compiled
elsewhere need `--input-shape`.

Compiling takes seconds to minutes, so a load-time compile (`serve --compile aoti`) goes through an
on-disk cache keyed by the program's content, the torch version and the device (a package is
native code for one torch ABI and one device kind; on CPU, for one vector instruction set).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils import _pytree as pytree

from modelramp.serving.errors import ModelLoadError

log = logging.getLogger(__name__)

# Our keys in the package's AOTInductor metadata (string to string).
ROW_SHAPE_KEY = "modelramp.row_shape"
DATATYPE_KEY = "modelramp.datatype"
# What AOTInductor itself records: the device kind the package was compiled for.
_DEVICE_KEY = "AOTI_DEVICE_KEY"


@dataclass(frozen=True, slots=True)
class Input:
    """The per-row shape and OIP datatype of an exported program's one input."""

    row_shape: tuple[int, ...]
    datatype: str


def default_cache() -> Path:
    root = os.environ.get("MODELRAMP_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "modelramp") / "aoti"


def compile_program(
    program: torch.export.ExportedProgram, input_: Input, device: torch.device, package: Path
) -> Path:
    """Compiles `program` for `device` into `package`, written whole or not at all."""
    if device.type != "cpu":
        from torch.export.passes import move_to_device_pass  # noqa: PLC0415 - only off-CPU

        program = move_to_device_pass(program, device)
    metadata = {ROW_SHAPE_KEY: ",".join(map(str, input_.row_shape)), DATATYPE_KEY: input_.datatype}
    package.parent.mkdir(parents=True, exist_ok=True)
    # The same folder, so the final rename is atomic: a reader sees no package or a whole one.
    handle, partial = tempfile.mkstemp(dir=package.parent, prefix=f".{package.stem}-", suffix=".pt2")
    os.close(handle)
    try:
        started = time.perf_counter()
        torch._inductor.aoti_compile_and_package(
            program, package_path=partial, inductor_configs={"aot_inductor.metadata": metadata}
        )
        os.replace(partial, package)
    finally:
        Path(partial).unlink(missing_ok=True)
    log.info("compiled %s with AOTInductor in %.1f s", package, time.perf_counter() - started)
    return package


def cached_package(
    program_file: Path,
    program: torch.export.ExportedProgram,
    input_: Input,
    device: torch.device,
    cache: Path,
) -> tuple[Path, bool]:
    """The compiled package of `program_file` for `device` from `cache`, compiled on a miss;
    and whether it was compiled now."""
    entry = cache / f"{_digest(program_file)}-torch{torch.__version__}-{device_key(device)}.pt2"
    if entry.is_file():
        log.info("AOTInductor package of %s from the cache: %s", program_file, entry)
        return entry, False
    log.info("compiling %s with AOTInductor for %s (cached in %s)", program_file, device, cache)
    return compile_program(program, input_, device, entry), True


def device_key(device: torch.device) -> str:
    """What a compiled package depends on besides torch: the GPU architecture, or the CPU's
    vector instruction set (a package built with AVX-512 does not run on a CPU without it)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"cuda-sm{major}{minor}"
    from torch._inductor.cpu_vec_isa import pick_vec_isa  # noqa: PLC0415 - private, CPU only

    return f"cpu-{pick_vec_isa() or 'novec'}"


def load_package(path: Path, device: torch.device) -> tuple[Any, Input | None]:
    """The package's callable model on `device`, and its input when it records one."""
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"model-uri: {path} is not an AOTInductor package (not a .pt2 zip archive)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if not any("/aotinductor/" in name for name in names):
        raise ModelLoadError(
            f"model-uri: {path} holds no AOTInductor model; an exported program (torch.export.save)"
            " is served with --format exported-program (add --compile aoti to compile it),"
            " or compiled first with `modelramp compile`"
        )
    try:
        # One caller at a time (the batcher's single forward thread, or the event loop): the
        # runner's own locking would be pure cost.
        compiled = torch._inductor.aoti_load_package(
            str(path), run_single_threaded=True, device_index=-1 if device.index is None else device.index
        )
        metadata: dict[str, str] = compiled.get_metadata()
    except Exception as error:  # torch raises RuntimeError and more for a bad or foreign archive
        raise ModelLoadError(f"model-uri: {path} is not a loadable AOTInductor package: {error}") from error
    built_for = metadata.get(_DEVICE_KEY)
    if built_for is not None and built_for != device.type:
        raise ModelLoadError(
            f"model-uri: {path} was compiled for {built_for}, the server runs on {device.type};"
            f" compile it for {device.type} (modelramp compile --device {device.type})"
        )
    return direct_forward(compiled), _recorded_input(metadata)


def direct_forward(compiled: Any) -> Any:
    """The package's runner called with the one input tensor, when the model takes one tensor and
    returns one. The package's own `__call__` parses its input and output tree specs from JSON and
    walks them on every call: 30 us of a 0.16 ms forward of the benchmark's MLP at 64 rows."""
    in_spec_json, out_spec_json = compiled.loader.get_call_spec()
    in_spec, out_spec = pytree.treespec_loads(in_spec_json), pytree.treespec_loads(out_spec_json)
    one_tensor_in = in_spec == pytree.tree_flatten(((torch.empty(0),), {}))[1]
    if not (one_tensor_in and out_spec.is_leaf()):
        return compiled
    run = compiled.loader.boxed_run

    def forward(x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = run([x])[0]
        return output

    return forward


def _recorded_input(metadata: dict[str, str]) -> Input | None:
    shape, datatype = metadata.get(ROW_SHAPE_KEY), metadata.get(DATATYPE_KEY)
    if shape is None or datatype is None:
        return None
    return Input(row_shape=tuple(int(dim) for dim in shape.split(",") if dim), datatype=datatype)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:32]
