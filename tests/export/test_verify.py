"""Artifact vs PyTorch: differences per output, NaN/Inf and tolerance failures."""

from __future__ import annotations

import numpy as np
import pytest

from export.errors import ExportFailed
from export.spec import OutputSpec
from export.verify import compare_outputs

PROBABILITIES = OutputSpec(name="probabilities", meaning="class_probabilities", labels=["a", "b"])
LABELS = OutputSpec(name="labels", meaning="segmentation_labels", labels=["background", "nodule"], dtype="uint8")


def _compare(reference: np.ndarray, actual: np.ndarray, output: OutputSpec = PROBABILITIES, **tolerances):
    settings = {"tolerance_abs": 1e-4, "label_mismatch": 1e-3} | tolerances
    return compare_outputs([output], [reference], [actual], artifact="ONNX FP32", **settings)


def test_records_max_abs_and_max_rel() -> None:
    reference = np.array([[0.5, 0.5], [0.25, 0.75]], dtype=np.float32)
    (difference,) = _compare(reference, reference + np.float32(5e-5))

    assert difference.name == "probabilities"
    assert difference.max_abs == pytest.approx(5e-5, rel=1e-3)
    assert difference.max_rel == pytest.approx(5e-5 / 0.25, rel=1e-3)
    assert difference.mismatch_fraction is None


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


def test_label_outputs_are_compared_by_mismatch_fraction() -> None:
    reference = np.zeros((1, 100, 100), dtype=np.uint8)
    actual = reference.copy()
    actual[0, 0, :5] = 1  # 5 of 10 000 labels flipped: 0.05 %
    (difference,) = _compare(reference, actual, LABELS)
    assert difference.mismatch_fraction == pytest.approx(5e-4)

    actual[0, 1, :] = 1  # 105 flipped: 1.05 %
    with pytest.raises(ExportFailed, match=r"output 'labels': 1.05% of labels differ from PyTorch \(tolerance 0.10%\)"):
        _compare(reference, actual, LABELS)
