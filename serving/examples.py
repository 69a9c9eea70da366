"""Example models for trying a rollout: real TorchScript scorers whose behaviour differs the way
real releases do (`modelramp example-model`; the e2e tests and `make demo` use the same ones).

Each is a scorer (4 features -> one probability), so `modelramp_prediction` has a distribution to
compare. Variants of the good model:
- `buggy`: raises on the ~31% of inputs whose first feature is above 0.5 (a model bug, so the
  server answers 500: a real fault, not an injected one);
- `slow`: the same predictions after a pile of throwaway matrix products (a heavier architecture);
- `drifted`: same code, different weights (a retrain that shifted its predictions).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal, get_args

import torch

Variant = Literal["good", "buggy", "slow", "drifted"]
FEATURES = 4


class Scorer(torch.nn.Module):
    def __init__(self, bias: float, fail_above: float, extra_work: int) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.linear = torch.nn.Linear(FEATURES, 1)
        with torch.no_grad():
            self.linear.bias.add_(bias)
        self.fail_above = fail_above
        self.extra_work = extra_work
        self.work = torch.nn.Parameter(torch.randn(256, 256) / 16, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x[:, 0] > self.fail_above).any()):
            raise RuntimeError("feature 0 out of the range this model handles")
        acc: torch.Tensor = self.work
        for _ in range(self.extra_work):
            acc = torch.tanh(acc @ self.work)
        return torch.sigmoid(self.linear(x) + 0.0 * acc.sum())


_VARIANTS: dict[Variant, tuple[float, float, int]] = {
    "good": (0.0, float("inf"), 0),
    "buggy": (0.0, 0.5, 0),
    "slow": (0.0, float("inf"), 60),
    "drifted": (2.5, float("inf"), 0),
}


def save_model(variant: Variant, directory: Path) -> Path:
    """Scripts and saves the `variant` scorer; returns the TorchScript file."""
    bias, fail_above, extra_work = _VARIANTS[variant]
    path = directory / f"scorer-{variant}.pt"
    torch.jit.save(torch.jit.script(Scorer(bias, fail_above, extra_work).eval()), str(path))
    return path


def main(argv: list[str]) -> int:
    """`modelramp example-model VARIANT... --dir DIR`: writes `DIR/scorer-<variant>.pt` for each."""
    parser = argparse.ArgumentParser(
        prog="modelramp example-model",
        description="Write example TorchScript scorers (4 features in, one probability out; "
        "serve them with MODELRAMP_INPUT_SHAPE=4).",
    )
    parser.add_argument(
        "variants",
        nargs="+",
        choices=get_args(Variant),
        metavar="VARIANT",
        help=f"one or more of {', '.join(get_args(Variant))}",
    )
    parser.add_argument("--dir", type=Path, required=True, help="folder to write the models into")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    for variant in args.variants:
        print(save_model(variant, args.dir))
    return 0
