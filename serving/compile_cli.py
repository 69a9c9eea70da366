"""`modelramp compile`: an exported program (torch.export.save) -> an AOTInductor package, offline.

What `serve --format aoti` then loads with no compiler on the serving image and no compile at
start-up. Goes through the same content-keyed cache as a load-time compile (`serve --compile
aoti`), so compiling an unchanged program again is a copy.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

import torch

from modelramp.serving import aoti
from modelramp.serving.errors import ModelLoadError
from modelramp.serving.loading import program_input, resolve_device


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="modelramp compile",
        description="Compile an exported program (.pt2 from torch.export.save) into an AOTInductor"
        " package for `modelramp serve --format aoti`.",
    )
    parser.add_argument("program", type=Path, help="the exported program (.pt2)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the package to write (.pt2)")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="cpu", help="what it will run on (default: cpu)"
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="compile cache (default: $MODELRAMP_CACHE/aoti)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.output.suffix != ".pt2":
        print(f"modelramp compile: output: {args.output} must end in .pt2", file=sys.stderr)
        return 2
    try:
        device = resolve_device(args.device)
        if not args.program.is_file():
            raise ModelLoadError(f"program: {args.program} does not exist")
        try:
            program = torch.export.load(str(args.program))
        except Exception as error:  # torch raises many types for a file that is not a program
            raise ModelLoadError(
                f"program: {args.program} is not an exported program (torch.export.save): {error}"
            ) from error
        input_ = program_input(program)
        package, _ = aoti.cached_package(
            args.program, program, input_, device, args.cache or aoti.default_cache()
        )
    except ModelLoadError as error:
        print(f"modelramp compile: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # inductor and the C++ compiler fail in many ways
        print(f"modelramp compile: compiling {args.program} failed: {error}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(package, args.output)
    shape = ",".join(map(str, input_.row_shape))
    print(f"{args.output}: AOTInductor package for {device.type}, input rows {input_.datatype} [{shape}]")
    return 0
