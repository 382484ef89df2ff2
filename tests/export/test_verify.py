"""Artifact vs PyTorch by task: float outputs on max abs; segmentation outputs on label
disagreement and per-class Dice (max abs recorded); NaN/Inf and shapes always fail; each
difference says which check decided. Real networks: ``test_verify_networks.py``."""

from __future__ import annotations

import numpy as np
import pytest

from export.errors import ExportFailed
from export.spec import OutputSpec
from export.verify import compare_outputs

PROBABILITIES = OutputSpec(name="probabilities", meaning="class_probabilities", labels=["a", "b"])
LABELS = OutputSpec(name="labels", meaning="segmentation_labels", labels=["background", "nodule"], dtype="uint8")
SEG_PROBABILITIES = OutputSpec(name="probabilities", meaning="segmentation_probabilities", labels=["background", "liver", "tumour"])


def _compare(reference: np.ndarray, actual: np.ndarray, output: OutputSpec = PROBABILITIES, **tolerances):
    settings = {"tolerance_abs": 1e-4, "label_mismatch": 1e-3, "min_class_dice": 0.99} | tolerances
    return compare_outputs([output], [reference], [actual], artifact="ONNX FP32", **settings)


def test_records_max_abs_and_max_rel() -> None:
    reference = np.array([[0.5, 0.5], [0.25, 0.75]], dtype=np.float32)
    (difference,) = _compare(reference, reference + np.float32(5e-5))

    assert difference.name == "probabilities"
    assert difference.max_abs == pytest.approx(5e-5, rel=1e-3)
    assert difference.max_rel == pytest.approx(5e-5 / 0.25, rel=1e-3)
    assert difference.label_disagreement is None and difference.class_dice == {}
    assert difference.decided_by == "max abs 5.00e-05 <= 1e-04 (decided)"


@pytest.mark.parametrize(
    ("actual", "match"),
    [
        (np.array([[0.5, np.nan]], dtype=np.float32), r"ONNX FP32 output 'probabilities' contains NaN or Inf"),
        (np.array([[0.5, np.inf]], dtype=np.float32), r"contains NaN or Inf"),
        (np.array([[0.5, 0.6]], dtype=np.float32), r"differs from PyTorch by up to 0.1 \(tolerance 0.0001"),
        (np.array([[0.5, 0.5, 0.0]], dtype=np.float32), r"has shape \(1, 3\), PyTorch \(1, 2\)"),
    ],
)
def test_failures_name_the_output_and_why(actual: np.ndarray, match: str) -> None:
    with pytest.raises(ExportFailed, match=match):
        _compare(np.array([[0.5, 0.5]], dtype=np.float32), actual)


def test_ungated_comparison_records_without_failing() -> None:
    (difference,) = _compare(np.zeros((1, 2), np.float32), np.full((1, 2), 0.3, np.float32), tolerance_abs=None)
    assert difference.max_abs == pytest.approx(0.3)
    assert difference.decided_by == "max abs 3.00e-01 recorded (gated on the task metric)"


def test_label_outputs_are_compared_by_label_disagreement() -> None:
    reference = np.zeros((1, 100, 100), dtype=np.uint8)
    actual = reference.copy()
    actual[0, 0, :5] = 1  # 5 of 10 000 labels flipped: 0.05 %
    (difference,) = _compare(reference, actual, LABELS, min_class_dice=None)
    assert difference.label_disagreement == pytest.approx(5e-4)

    actual[0, 1, :] = 1  # 105 flipped: 1.05 %
    with pytest.raises(ExportFailed, match=r"output 'labels': 1.05% of labels differ from PyTorch \(tolerance 0.10%\)"):
        _compare(reference, actual, LABELS, min_class_dice=None)


def _probabilities(labels: np.ndarray, classes: int = 3, margin: float = 0.3) -> np.ndarray:
    """[N, classes, ...] probabilities whose argmax is ``labels``, the winner ahead by ``margin``."""
    rest = (1.0 - (1.0 / classes + margin)) / (classes - 1)
    probabilities = np.full((labels.shape[0], classes, *labels.shape[1:]), rest, dtype=np.float32)
    np.put_along_axis(probabilities, labels[:, None], np.float32(1.0 / classes + margin), axis=1)
    return probabilities


def test_segmentation_probabilities_are_decided_by_labels_not_max_abs() -> None:
    labels = np.zeros((2, 20, 50, 50), dtype=np.int64)
    labels[:, 5:15, 10:40, 10:40] = 1
    labels[:, 8:12, 20:30, 20:30] = 2
    reference = _probabilities(labels)
    actual = reference + np.float32(3e-3)  # far above 1e-4, every label unchanged
    actual[0, :, 0, 0, 0] = [0.0, 1.0, 0.0]  # one voxel of 100 000 flips to liver

    (difference,) = _compare(reference, actual, SEG_PROBABILITIES)

    assert difference.max_abs == pytest.approx(1.0 - reference[0, 1, 0, 0, 0], rel=1e-5)  # the flipped voxel's liver
    assert difference.label_disagreement == pytest.approx(1e-5)
    assert difference.class_dice["tumour"] == 1.0
    assert difference.class_dice["liver"] == pytest.approx(2 * 17_600 / (17_600 + 17_601))
    assert difference.decided_by.startswith("label disagreement 1.0e-05 <= 1e-03, least class Dice 1.0000 (liver) >= 0.99 (decided); max abs ")


def test_a_class_whose_dice_drops_fails_even_when_few_voxels_disagree() -> None:
    labels = np.zeros((1, 40, 100, 100), dtype=np.int64)
    labels[0, 10:30, 10:90, 10:90] = 1
    labels[0, 0, 0, :50] = 2  # a 50-voxel class
    actual_labels = labels.copy()
    actual_labels[0, 0, 0, :5] = 0  # 5 of 400 000 voxels (1.25e-5) lose the small class: its Dice 0.947
    with pytest.raises(ExportFailed, match=r"output 'probabilities': Dice of class 'tumour' against PyTorch's labels is 0.9474 \(least allowed 0.99\)"):
        _compare(_probabilities(labels), _probabilities(actual_labels), SEG_PROBABILITIES)


def test_label_disagreement_fails_segmentation_probabilities() -> None:
    labels = np.zeros((1, 10, 100, 100), dtype=np.int64)
    labels[0, :, :50] = 1
    actual_labels = labels.copy()
    actual_labels[0, :2, 45:50] = 0  # 1 000 of 100 000 voxels: 1 %
    with pytest.raises(ExportFailed, match=r"output 'probabilities': 1.00% of labels differ from PyTorch \(tolerance 0.10%\)"):
        _compare(_probabilities(labels), _probabilities(actual_labels), SEG_PROBABILITIES)


def test_ungated_segmentation_records_labels_and_max_abs() -> None:
    labels = np.zeros((1, 10, 10, 10), dtype=np.int64)
    labels[0, :5] = 1
    actual_labels = labels.copy()
    actual_labels[0, :5] = 2  # every liver voxel now tumour: recorded, not gated (INT8)
    (difference,) = _compare(_probabilities(labels), _probabilities(actual_labels), SEG_PROBABILITIES, label_mismatch=None, min_class_dice=None)
    assert difference.label_disagreement == 0.5
    assert difference.class_dice == {"liver": 0.0, "tumour": 0.0}
    assert difference.decided_by.startswith("label disagreement 5.0e-01, least class Dice 0.0000 (liver); max abs ")
    assert difference.decided_by.endswith(" recorded (gated on the task metric)")
