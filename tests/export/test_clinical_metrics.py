"""Clinical metrics at export against their references (MONAI, scikit-learn, a brute-force
HD95), the empty-mask rules, secondary gates, and a gate on a secondary metric rejecting a
real INT8 variant."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice, compute_surface_dice, get_confusion_matrix
from monai.metrics.confusion_matrix import compute_confusion_matrix_metric
from scipy.ndimage import binary_erosion
from scipy.spatial.distance import cdist
from sklearn.metrics import confusion_matrix, roc_auc_score

from export.errors import ExportSpecError
from export.metrics import (
    classification_metrics,
    clinical_metrics,
    confusion_rates,
    gate_failures,
    hd95_mm,
    segmentation_metrics,
    surface_dice,
)
from export.pipeline import export_model
from export.report import VariantStatus
from export.spec import AccuracyBudget, OutputSpec, load_spec

from .test_pipeline import ZOO_WEIGHTS, blank_calibration  # noqa: F401  (module fixture)

LABELS = ["background", "liver", "tumour"]


def _blob(shape, center, radius, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    grid = np.indices(shape).astype(np.float64)
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grid, center, spacing)) <= radius**2


def _brute_hd95(p: np.ndarray, t: np.ndarray, spacing) -> float:
    """The larger directed 95th percentile of boundary-to-boundary distances, in mm."""
    edges = [np.argwhere(m ^ binary_erosion(m)) * np.asarray(spacing) for m in (p, t)]
    d = cdist(edges[0], edges[1])
    return float(max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95)))


def _one_hot(mask: np.ndarray) -> torch.Tensor:
    m = torch.from_numpy(mask)
    return torch.stack([~m, m]).unsqueeze(0).float()


def test_confusion_rates_equal_scikit_learn_and_monai() -> None:
    rng = np.random.default_rng(0)
    truth, predicted = rng.random(500) < 0.3, rng.random(500) < 0.35
    tn, fp, fn, tp = confusion_matrix(truth, predicted).ravel()
    rates = confusion_rates(predicted, truth)
    assert rates == pytest.approx({"sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp), "ppv": tp / (tp + fp), "npv": tn / (tn + fn)})
    matrix = get_confusion_matrix(_one_hot(predicted).reshape(1, 2, -1), _one_hot(truth).reshape(1, 2, -1), include_background=False)
    for name, monai_name in [("sensitivity", "sensitivity"), ("specificity", "specificity"), ("ppv", "precision"), ("npv", "negative predictive value")]:
        assert rates[name] == pytest.approx(float(compute_confusion_matrix_metric(monai_name, matrix).item()))


def test_confusion_rates_zero_denominators_score_one() -> None:
    assert confusion_rates(np.zeros(10, bool), np.zeros(10, bool)) == {"sensitivity": 1.0, "specificity": 1.0, "ppv": 1.0, "npv": 1.0}


def test_hd95_in_mm_equals_monai_and_brute_force_with_anisotropic_spacing() -> None:
    spacing = (2.5, 0.8, 0.8)
    t = _blob((12, 24, 24), (6, 12, 12), 6.0, spacing)
    p = _blob((12, 24, 24), (6.4, 13, 11), 5.0, spacing)
    expected = _brute_hd95(p, t, spacing)
    assert hd95_mm(p, t, spacing) == pytest.approx(expected, rel=1e-5)
    assert expected > 1.0  # in mm, not voxels: with spacing 1 it would differ
    assert hd95_mm(p, t, (1.0, 1.0, 1.0)) != pytest.approx(expected, rel=1e-2)


def test_hd95_empty_mask_rule() -> None:
    empty, blob = np.zeros((8, 10), bool), _blob((8, 10), (4, 5), 2.0)
    assert hd95_mm(empty, empty, (1.0, 2.0)) is None  # left out
    diagonal = np.hypot(8 * 1.0, 10 * 2.0)
    assert hd95_mm(empty, blob, (1.0, 2.0)) == pytest.approx(diagonal)
    assert hd95_mm(blob, empty, (1.0, 2.0)) == pytest.approx(diagonal)


def test_surface_dice_equals_monai_and_its_empty_rule() -> None:
    t, p = _blob((32, 32), (16, 16), 8.0), _blob((32, 32), (17, 15), 7.0)
    expected = compute_surface_dice(_one_hot(p), _one_hot(t), [1.5], include_background=False, spacing=[0.7, 0.7])
    assert surface_dice(p, t, (0.7, 0.7), 1.5) == pytest.approx(float(expected.item()))
    assert 0.0 < surface_dice(p, t, (0.7, 0.7), 1.5) < 1.0
    empty = np.zeros((32, 32), bool)
    assert surface_dice(empty, empty, (1.0, 1.0), 1.0) == 1.0
    assert surface_dice(p, empty, (1.0, 1.0), 1.0) == 0.0


def test_segmentation_metrics_per_class_against_monai() -> None:
    truth = np.zeros((1, 10, 20, 20), np.int64)
    truth[0][_blob((10, 20, 20), (5, 10, 10), 4.0)] = 1
    truth[0][_blob((10, 20, 20), (5, 4, 4), 2.0)] = 2
    predicted = np.zeros_like(truth)
    predicted[0][_blob((10, 20, 20), (5, 11, 10), 4.0)] = 1
    predicted[0][_blob((10, 20, 20), (5, 4, 5), 1.5)] = 2
    spacing = (3.0, 0.9, 0.9)
    metrics = segmentation_metrics(predicted, truth, LABELS, [spacing])
    p1 = torch.from_numpy(np.eye(3)[predicted[0]].transpose(3, 0, 1, 2)[None])
    t1 = torch.from_numpy(np.eye(3)[truth[0]].transpose(3, 0, 1, 2)[None])
    monai_dice = compute_dice(p1, t1, include_background=False)[0]
    matrix = get_confusion_matrix(p1.reshape(1, 3, -1), t1.reshape(1, 3, -1), include_background=False)
    sensitivity = compute_confusion_matrix_metric("sensitivity", matrix)[0]
    for c, label in enumerate(LABELS[1:]):
        assert metrics[f"dice[{label}]"] == pytest.approx(float(monai_dice[c]))
        assert metrics[f"sensitivity[{label}]"] == pytest.approx(float(sensitivity[c]))
        assert metrics[f"hd95_mm[{label}]"] == pytest.approx(_brute_hd95(predicted[0] == c + 1, truth[0] == c + 1, spacing), rel=1e-5)
    assert metrics["dice"] == pytest.approx(float(monai_dice.mean()))
    assert metrics["hd95_mm"] == pytest.approx((metrics["hd95_mm[liver]"] + metrics["hd95_mm[tumour]"]) / 2)


def test_segmentation_hd95_leaves_out_cases_without_the_class() -> None:
    truth = np.zeros((2, 16, 16), np.int64)
    truth[0, 4:10, 4:10] = 1
    predicted = truth.copy()
    predicted[0, 4:10, 5:11] = 1
    metrics = segmentation_metrics(predicted, truth, ["background", "organ"], [(1.0, 1.0), (1.0, 1.0)])
    assert metrics["hd95_mm"] == pytest.approx(hd95_mm(predicted[0] == 1, truth[0] == 1, (1.0, 1.0)))  # case 2: both empty
    assert metrics["surface_dice"] == pytest.approx((surface_dice(predicted[0] == 1, truth[0] == 1, (1.0, 1.0), 1.0) + 1.0) / 2)


def test_classification_metrics_equal_scikit_learn_at_the_operating_threshold() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    positive_probability = np.clip(rng.random(300) * 0.7 + 0.3 * labels, 0, 1)
    probabilities = np.stack([1 - positive_probability, positive_probability], axis=1)
    for threshold in (0.5, 0.35):
        metrics = classification_metrics(labels, probabilities, positive=1, threshold=threshold)
        tn, fp, fn, tp = confusion_matrix(labels, positive_probability >= threshold).ravel()
        assert metrics["auc"] == pytest.approx(roc_auc_score(labels, positive_probability))
        assert metrics["sensitivity"] == pytest.approx(tp / (tp + fn))
        assert metrics["specificity"] == pytest.approx(tn / (tn + fp))
        assert metrics["ppv"] == pytest.approx(tp / (tp + fp))
        assert metrics["npv"] == pytest.approx(tn / (tn + fn))


def test_clinical_metrics_positive_class_from_the_budget() -> None:
    output = OutputSpec(name="p", meaning="class_probabilities", labels=["normal", "pneumonia", "effusion"])
    labels = np.array([0, 1, 2, 1, 0, 2])
    probabilities = np.eye(3)[labels] * 0.8 + 0.2 / 3
    probabilities[3] = [0.1, 0.2, 0.7]  # a pneumonia called effusion
    metrics = clinical_metrics(output, probabilities, labels, None, positive_class="pneumonia")
    assert metrics["sensitivity"] == pytest.approx(0.5) and metrics["specificity"] == 1.0
    metrics = clinical_metrics(output, probabilities, labels, None)  # the last label: effusion
    assert metrics["ppv"] == pytest.approx(2 / 3) and metrics["sensitivity"] == 1.0
    with pytest.raises(ValueError, match="positive_class"):
        clinical_metrics(output, probabilities, labels, None, positive_class="fracture")


def test_gates_compare_with_the_reference_in_each_metrics_direction() -> None:
    reference = {"dice": 0.9, "hd95_mm": 3.0, "sensitivity[liver]": 0.95}
    assert gate_failures(reference, {"dice": 0.89, "hd95_mm": 3.4, "sensitivity[liver]": 0.95}, {"hd95_mm": 0.5, "dice": 0.02}) == []
    reasons = gate_failures(reference, {"dice": 0.95, "hd95_mm": 4.0, "sensitivity[liver]": 0.90}, {"hd95_mm": 0.5, "sensitivity[liver]": 0.01})
    assert reasons == [
        "hd95_mm rose by 1.0000 against FP32, more than its budget 0.5",
        "sensitivity[liver] dropped by 0.0500 against FP32, more than its budget 0.01",
    ]
    assert gate_failures(reference, {"dice": 0.99, "hd95_mm": 1.0, "sensitivity[liver]": 1.0}, {"hd95_mm": 0.0, "dice": 0.0}) == []
    with pytest.raises(ValueError, match="no metric 'npv'"):
        gate_failures(reference, reference, {"npv": 0.1})


def test_spec_gates_name_known_metrics() -> None:
    budget = AccuracyBudget(gates={"hd95_mm[liver]": 1.5, "sensitivity": 0.02})
    assert budget.gates["hd95_mm[liver]"] == 1.5 and budget.max_metric_drop == 0.01
    with pytest.raises(ValueError, match="unknown metric 'hd99'"):
        AccuracyBudget(gates={"hd99": 1.0})
    with pytest.raises(ValueError, match="finite number >= 0"):
        AccuracyBudget(gates={"dice": -0.1})


def test_a_gate_on_a_secondary_metric_rejects_int8(tiny_classifier_spec, blank_calibration: Path, tmp_path: Path) -> None:  # noqa: F811
    spec = load_spec(
        tiny_classifier_spec(
            source={"kind": "python", "factory": "devtools.zoo.ct_nodule_classifier:build_model", "state_dict": str(ZOO_WEIGHTS)},
            calibration={"dicom_dir": str(blank_calibration)},
            precisions=["fp32", "int8"],
            accuracy_budget={"max_metric_drop": 1.0, "gates": {"sensitivity": 0.05}},  # the primary budget lets anything through
        )
    )
    repository = tmp_path / "repository"
    result = export_model(spec, repository, log=lambda _: None)
    fp32, int8 = result.report.variant("fp32"), result.report.variant("int8")
    assert fp32 is not None and int8 is not None
    assert fp32.status == VariantStatus.WRITTEN and set(fp32.clinical_metrics) == {"auc", "sensitivity", "specificity", "ppv", "npv"}
    assert int8.status == VariantStatus.REJECTED
    drop = fp32.clinical_metrics["sensitivity"] - int8.clinical_metrics["sensitivity"]
    assert drop > 0.05
    assert int8.reason == f"sensitivity dropped by {drop:.4f} against FP32, more than its budget 0.05"
    assert not (repository / "tiny_classifier_int8").exists()
    report = json.loads((repository / "tiny_classifier" / "export_report.json").read_text())
    assert report["gates"] == {"sensitivity": 0.05}
    assert report["variants"][1]["clinical_metrics"]["sensitivity"] == int8.clinical_metrics["sensitivity"]
    markdown = (repository / "tiny_classifier" / "export_report.md").read_text()
    assert "## Clinical metrics" in markdown and "| sensitivity | " in markdown and "Operating threshold 0.5 on the probability of 'nodule'." in markdown


def test_a_gate_naming_a_metric_the_task_lacks_is_a_spec_error(tiny_classifier_spec, tmp_path: Path) -> None:
    spec = load_spec(tiny_classifier_spec(precisions=["fp32"], accuracy_budget={"gates": {"hd95_mm": 1.0}}))
    with pytest.raises(ExportSpecError, match="no metric 'hd95_mm'"):
        export_model(spec, tmp_path / "repository", log=lambda _: None)
    assert not (tmp_path / "repository" / "tiny_classifier").exists()
