"""Runs a batch through the loaded model: numpy rows in, numpy rows out, plus one score per row.

This is what the batcher calls, on the event loop or on its forward thread. The score is what
`modelramp_prediction` observes for drift detection: the output itself for a one-output model, and
for a multi-output model the top class probability (softmax of the outputs, unless they already
are probabilities).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from modelramp.serving.errors import ModelLoadError
from modelramp.serving.loading import LoadedModel
from modelramp.serving.tensors import datatype_of

# Rows of non-negative outputs summing to 1 within this are class probabilities already.
PROBABILITY_SUM_TOLERANCE = 1e-3


class Predictor:
    """A loaded model behind a numpy interface; one instance per server, used from one thread."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.output_datatype = "FP32"
        self.output_row_shape: tuple[int, ...] = ()
        self.full_batch_seconds = 0.0

    def warm_up(self, max_batch_size: int) -> None:
        """Runs the model on zeros of one row and of a full batch, and records the output's form.

        Fails with a clear message when the model's output is not one tensor of one row per input
        row, so that such a model never turns ready. Then times full-batch forwards
        (`time_full_batch`): the server decides from it where forwards run and how many threads
        they get.
        """
        spec = self.model.input
        for rows in sorted({1, max_batch_size}):
            batch = np.zeros((rows, *spec.row_shape), dtype=spec.dtype)
            try:
                output = self.forward(batch)
            except Exception as error:
                raise ModelLoadError(
                    f"warm-up: the model failed on a zero batch of shape {list(batch.shape)}: {error}"
                ) from error
            if output.ndim == 0 or output.shape[0] != rows:
                raise ModelLoadError(
                    f"warm-up: the model returned shape {list(output.shape)} for {rows} rows;"
                    " it must return one output row per input row"
                )
        self.output_datatype = datatype_of(output.dtype)
        self.output_row_shape = tuple(output.shape[1:])
        self.time_full_batch(max_batch_size)

    def time_full_batch(self, max_batch_size: int) -> float:
        """The fastest of a few full-batch forwards (at least 5, for up to 50 ms), which a busy
        machine disturbs least; the first ones include TorchScript's profiling runs and lazy
        initialisation, and a thread count change its own start-up."""
        spec = self.model.input
        batch = np.zeros((max_batch_size, *spec.row_shape), dtype=spec.dtype)
        times = [self._timed_forward(batch) for _ in range(5)]
        while sum(times) < 0.05 and len(times) < 50:
            times.append(self._timed_forward(batch))
        self.full_batch_seconds = min(times)
        return self.full_batch_seconds

    def _timed_forward(self, batch: npt.NDArray[Any]) -> float:
        started = time.perf_counter()
        self.forward(batch)
        return time.perf_counter() - started

    def forward(self, batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        tensor = torch.from_numpy(batch).to(self.model.device, non_blocking=True)
        with torch.inference_mode():
            output = self.model.forward(tensor)
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"the model returned {type(output).__name__}, not a tensor")
        result: npt.NDArray[Any] = output.detach().cpu().numpy()
        return result


def scores(output: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """One score per row for the prediction histogram. Runs after every forward, so reductions
    only: for 64 rows of 10 class probabilities `np.allclose` and a float64 copy took 25 us, this
    takes 10 (micro-benchmark; logits 13 -> 11 us)."""
    flat = output.reshape(output.shape[0], -1)
    if flat.shape[1] == 1:
        return flat[:, 0].astype(np.float64)
    if flat.min() >= 0:
        row_sums = flat.sum(axis=1, dtype=np.float64)
        if np.abs(row_sums - 1.0).max() <= PROBABILITY_SUM_TOLERANCE:
            top: npt.NDArray[np.float64] = flat.max(axis=1).astype(np.float64)
            return top
    wide = flat.astype(np.float64, copy=False)
    shifted = np.exp(wide - wide.max(axis=1, keepdims=True))
    top_softmax: npt.NDArray[np.float64] = 1.0 / shifted.sum(axis=1)  # exp(0) / sum over classes
    return top_softmax
