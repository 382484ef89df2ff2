"""Class scores → labels: the gateway's argmax equals numpy's, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.tasks.segmentation import argmax_labels


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_argmax_labels_equal_numpy_argmax(classes: int) -> None:
    rng = np.random.default_rng(classes)
    scores = rng.normal(size=(classes, 6, 20, 24)).astype(np.float32)
    scores[:, 0, 0, :5] = 0.25  # every class tied: the first one wins
    scores[1:, 1, 1, :5] = 9.0  # classes 1.. tied above class 0: class 1 wins
    labels = argmax_labels(scores)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.argmax(scores, axis=0))
