"""The per-row score of the prediction histogram, for each kind of output a model may have."""

from __future__ import annotations

import numpy as np
import torch

from modelramp.serving.predictor import PROBABILITY_SUM_TOLERANCE, scores


def _logits() -> np.ndarray:
    return np.random.default_rng(7).normal(scale=3.0, size=(64, 10)).astype(np.float32)


def test_a_single_output_is_its_own_score() -> None:
    column = _logits()[:, :1]
    assert scores(column).dtype == np.float64
    np.testing.assert_array_equal(scores(column), column[:, 0].astype(np.float64))


def test_class_probabilities_score_their_top_class() -> None:
    probabilities = torch.softmax(torch.from_numpy(_logits()), dim=1).numpy()
    np.testing.assert_array_equal(scores(probabilities), probabilities.max(axis=1).astype(np.float64))


def test_logits_score_the_softmax_of_their_top_class() -> None:
    logits = _logits()
    wanted = torch.softmax(torch.from_numpy(logits).double(), dim=1).max(dim=1).values.numpy()
    np.testing.assert_allclose(scores(logits), wanted, rtol=1e-12)


def test_rows_summing_to_one_only_roughly_are_not_probabilities() -> None:
    probabilities = torch.softmax(torch.from_numpy(_logits()).double(), dim=1).numpy()
    within = probabilities * (1 + PROBABILITY_SUM_TOLERANCE / 2)
    np.testing.assert_array_equal(scores(within), within.max(axis=1))
    beyond = probabilities * (1 + 2 * PROBABILITY_SUM_TOLERANCE)
    # Read as logits: the top class's softmax, far below its value here.
    assert (scores(beyond) < beyond.max(axis=1) - 0.01).all()
    negative = probabilities.copy()
    negative[0, 0] = -negative[0, 0]
    assert not np.array_equal(scores(negative), negative.max(axis=1))
