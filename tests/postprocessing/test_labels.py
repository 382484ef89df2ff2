"""Class scores → labels: threshold against numpy's ``>``, argmax against ``np.argmax``."""

from __future__ import annotations

import numpy as np
import pytest

from postprocessing import PostprocessingSpec, to_labels


def _probabilities(classes: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    logits = np.random.default_rng(seed).standard_normal((classes, *shape)).astype(np.float32)
    return np.exp(logits) / np.exp(logits).sum(axis=0)


@pytest.mark.parametrize("shape", [(32, 28), (12, 16, 14)])
def test_no_spec_and_argmax_are_numpys_argmax(shape: tuple[int, ...]) -> None:
    scores = _probabilities(4, shape, 0)
    scores[:, 0] = scores[:, 1] = 0.25  # a tie: the first class wins, as with np.argmax
    expected = np.argmax(scores, axis=0).astype(np.uint8)
    for spec in (None, PostprocessingSpec(), PostprocessingSpec.from_dict({"steps": [{"op": "argmax"}]})):
        labels = to_labels(scores, spec)
        assert labels.dtype == np.uint8 and np.array_equal(labels, expected)


def test_one_threshold_is_a_strict_comparison() -> None:
    scores = _probabilities(2, (10, 12, 14), 1)
    scores[1, 0, 0, :3] = 0.3  # exactly at the threshold: not above it, so background
    labels = to_labels(scores, PostprocessingSpec.from_dict({"steps": [{"op": "threshold", "label": 1, "probability": 0.3}]}))
    assert np.array_equal(labels, (scores[1] > np.float32(0.3)).astype(np.uint8))
    assert not labels[0, 0, :3].any()


def test_later_thresholds_win_where_they_fire() -> None:
    scores = _probabilities(3, (30, 30), 2)
    spec = PostprocessingSpec.from_dict({"steps": [
        {"op": "threshold", "label": 2, "probability": 0.2},
        {"op": "threshold", "label": 1, "probability": 0.4},
    ]})
    expected = np.zeros((30, 30), np.uint8)
    expected[scores[2] > np.float32(0.2)] = 2
    expected[scores[1] > np.float32(0.4)] = 1
    both = (scores[2] > np.float32(0.2)) & (scores[1] > np.float32(0.4))
    assert both.any(), "the case must have voxels where both fire"
    assert np.array_equal(to_labels(scores, spec), expected)


def test_a_threshold_on_a_class_the_scores_lack_is_refused() -> None:
    spec = PostprocessingSpec.from_dict({"steps": [{"op": "threshold", "label": 3, "probability": 0.5}]})
    with pytest.raises(ValueError, match="not a class"):
        to_labels(_probabilities(2, (4, 4), 3), spec)
