"""The `modelramp` console script.

Each subcommand lives in the package that owns it and is imported only when chosen, so
`modelramp promote` never pays for importing torch and `modelramp serve` never imports kopf.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# subcommand -> (module, function, one-line help). The function takes argv (without the subcommand)
# and returns an exit code.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "operator": ("modelramp.operator.main", "main", "run the ModelDeployment controller"),
    "serve": ("modelramp.serving.cli", "main", "serve a PyTorch model over HTTP (OIP v2, MLflow)"),
    "compile": (
        "modelramp.serving.compile_cli",
        "main",
        "compile an exported program into an AOTInductor package (`serve --format aoti`)",
    ),
    "input-reference": (
        "modelramp.serving.input_reference",
        "main",
        "write the per-feature input buckets `serve --input-reference` reads",
    ),
    "status": ("modelramp.operator.control_cli", "status", "show a rollout as a tree"),
    "promote": ("modelramp.operator.control_cli", "promote", "promote to the next step (--full: finish)"),
    "abort": ("modelramp.operator.control_cli", "abort", "abort the rollout: all traffic to stable"),
    "retry": ("modelramp.operator.control_cli", "retry", "restart an aborted or rolled-back rollout"),
    "pause": ("modelramp.operator.control_cli", "pause", "pause the rollout where it is"),
    "resume": ("modelramp.operator.control_cli", "resume", "resume a paused rollout"),
    "example-model": (
        "modelramp.serving.examples",
        "main",
        "write example TorchScript models to try a rollout",
    ),
    "crds": ("modelramp.operator.crdgen", "main", "print or write the generated CRD"),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [f"  {name.ljust(width)}  {help_}" for name, (_, _, help_) in SUBCOMMANDS.items()]
    return "usage: modelramp <command> [args]\n\ncommands:\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in SUBCOMMANDS:
        print(f"modelramp: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, function, _ = SUBCOMMANDS[command]
    entry: Callable[[list[str]], int] = getattr(importlib.import_module(module), function)
    return entry(rest)


if __name__ == "__main__":
    raise SystemExit(main())
