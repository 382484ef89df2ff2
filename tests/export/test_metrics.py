"""Task metrics that gate lower precisions: AUC (checked against scikit-learn) and Dice."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from export.metrics import dice, macro_auc, roc_auc, task_metric
from export.spec import OutputSpec

PROBABILITIES = OutputSpec(name="p", meaning="class_probabilities", labels=["a", "b"])
LOGITS = OutputSpec(name="l", meaning="class_logits", labels=["a", "b", "c"])
LABEL_MAP = OutputSpec(name="m", meaning="segmentation_labels", labels=["background", "lesion", "organ"], dtype="uint8")
SEG_PROBABILITIES = OutputSpec(name="s", meaning="segmentation_probabilities", labels=["background", "lesion"])


def test_auc_equals_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) + 0.3 * labels, 1)  # rounded: many ties
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="AUC needs both classes"):
        roc_auc(np.ones(4), np.arange(4.0))


def test_macro_auc_is_one_vs_rest_for_three_classes() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    probabilities = rng.dirichlet(np.ones(3), 300) + np.eye(3)[labels] * 0.5
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    expected = roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    assert macro_auc(labels, probabilities) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("predicted", "truth", "expected"),
    [
        ([[1, 1, 0, 0]], [[1, 1, 0, 0]], 1.0),  # perfect
        ([[1, 0, 0, 0]], [[1, 1, 0, 0]], 2 * 1 / 3),  # 1 overlap, 1 + 2 foreground pixels
        ([[0, 0, 0, 0]], [[0, 0, 0, 0]], 1.0),  # nothing to find, nothing found
        ([[0, 0, 0, 0], [1, 1, 0, 0]], [[0, 0, 0, 0], [1, 0, 0, 0]], 2 * 1 / 3),  # counted over the set, not per case
    ],
)
def test_dice(predicted, truth, expected: float) -> None:
    assert dice(np.array(predicted), np.array(truth), classes=2) == pytest.approx(expected)


def test_dice_averages_foreground_classes() -> None:
    truth = np.array([[1, 1, 2, 2]])
    predicted = np.array([[1, 1, 0, 2]])
    assert dice(predicted, truth, classes=3) == pytest.approx((1.0 + 2 / 3) / 2)


def test_dice_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        dice(np.zeros((1, 4)), np.zeros((1, 5)), classes=2)


def test_task_metric_by_output_meaning() -> None:
    labels = np.array([0, 1, 2, 1])
    logits = np.eye(3)[labels] * 5.0
    assert task_metric(LOGITS, logits, labels, None).name == "auc"
    assert task_metric(LOGITS, logits, labels, None).value == pytest.approx(1.0)
    assert task_metric(PROBABILITIES, np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1]), None).value == 1.0
    masks = np.array([[[0, 1], [2, 2]]])
    assert task_metric(LABEL_MAP, masks.astype(np.uint8), None, masks).value == pytest.approx(1.0)
    probabilities = np.stack([1 - masks, masks], axis=1).astype(np.float32).clip(0, 1)
    assert task_metric(SEG_PROBABILITIES, probabilities, None, (masks > 0).astype(np.uint8)).name == "dice"


def test_task_metric_needs_its_ground_truth() -> None:
    with pytest.raises(ValueError, match="classification metrics need labels"):
        task_metric(PROBABILITIES, np.zeros((2, 2)), None, None)
    with pytest.raises(ValueError, match="segmentation metrics need masks"):
        task_metric(LABEL_MAP, np.zeros((1, 2, 2), np.uint8), None, None)
