"""Metrics on the validation set, computed from what the model's metric output answers.

The *task metric* (ROC AUC for classification, Dice for segmentation) is the primary gate
(``accuracy_budget.max_metric_drop``). The *clinical metrics* are reported per variant and
each may gate with its own budget (``accuracy_budget.gates``):

- segmentation, per foreground class and averaged over them: Dice, HD95 in mm, surface Dice
  at ``surface_dice_tolerance_mm``, sensitivity, specificity, PPV, NPV;
- classification: AUC, and sensitivity, specificity, PPV, NPV of the positive class at the
  operating threshold (its probability >= ``operating_threshold``, 0.5 by default).

Distances come from MONAI (``compute_hausdorff_distance``, ``compute_surface_dice``) with the
validation case's prepared voxel spacing, so they are in millimetres. :data:`DEFINITIONS`
states the definitions and the empty-mask rules; the export report prints them.
"""

from __future__ import annotations

from dataclasses import dataclass

import math
import re
import warnings
from typing import Sequence

import numpy as np
from scipy.stats import rankdata

from contract import CLASSIFICATION_MEANINGS, OutputMeaning

from .spec import OutputSpec

__all__ = [
    "CLASSIFICATION_METRICS",
    "DEFINITIONS",
    "SEGMENTATION_METRICS",
    "TaskMetric",
    "classification_metrics",
    "clinical_metrics",
    "confusion_rates",
    "dice",
    "gate_failures",
    "hd95_mm",
    "macro_auc",
    "roc_auc",
    "segmentation_labels",
    "segmentation_metrics",
    "surface_dice",
    "task_metric",
    "worsening",
]


@dataclass(frozen=True)
class TaskMetric:
    name: str  # "auc" or "dice"
    value: float


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the Mann–Whitney U statistic (ties get mid-ranks)."""
    labels = np.asarray(labels)
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes in the labels")
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def macro_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """AUC of the last class for 2 classes; one-vs-rest AUC averaged over classes otherwise
    (classes absent from ``labels`` are skipped, as they have no ROC curve)."""
    if probabilities.shape[1] == 2:
        return roc_auc(labels, probabilities[:, 1])
    present = [c for c in range(probabilities.shape[1]) if 0 < int((labels == c).sum()) < len(labels)]
    return float(np.mean([roc_auc((labels == c).astype(np.int64), probabilities[:, c]) for c in present]))


def dice(predicted: np.ndarray, truth: np.ndarray, classes: int) -> float:
    """Dice over the whole set, per foreground class (1..classes-1), averaged.

    Counting voxels over all cases together (not per case) keeps cases without any
    foreground — where a per-case Dice is undefined — in the figure. A class absent from
    both prediction and truth scores 1.
    """
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted labels {predicted.shape} and masks {truth.shape} differ in shape")
    scores = []
    for c in range(1, classes):
        p, t = predicted == c, truth == c
        denominator = int(p.sum()) + int(t.sum())
        scores.append(1.0 if denominator == 0 else 2.0 * int((p & t).sum()) / denominator)
    return float(np.mean(scores))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def segmentation_labels(output: OutputSpec, values: np.ndarray) -> np.ndarray:
    """Label maps [N, ...] from a segmentation output (labels as-is, probabilities argmax'd)."""
    if output.meaning == OutputMeaning.SEGMENTATION_LABELS:
        return values.astype(np.int64)
    return np.argmax(values, axis=1)


def task_metric(
    output: OutputSpec, values: np.ndarray, labels: np.ndarray | None, masks: np.ndarray | None
) -> TaskMetric:
    """The gate's metric for ``values`` of the metric output on the validation cases."""
    if output.meaning in CLASSIFICATION_MEANINGS:
        if labels is None:
            raise ValueError("classification metrics need labels")
        scores = values.astype(np.float64)
        probabilities = _softmax(scores) if output.meaning == OutputMeaning.CLASS_LOGITS else scores
        return TaskMetric("auc", macro_auc(labels, probabilities))
    if masks is None:
        raise ValueError("segmentation metrics need masks")
    return TaskMetric("dice", dice(segmentation_labels(output, values), masks, len(output.labels)))


# --- clinical metrics -------------------------------------------------------------------

#: Metric names per task; ``name[label]`` is the figure of one class (segmentation: every
#: foreground class; classification: the positive class's rates carry no suffix).
SEGMENTATION_METRICS = ("dice", "hd95_mm", "surface_dice", "sensitivity", "specificity", "ppv", "npv")
CLASSIFICATION_METRICS = ("auc", "sensitivity", "specificity", "ppv", "npv")
LOWER_IS_BETTER = frozenset({"hd95_mm"})
GATE_NAME = re.compile(r"^(?P<base>[a-z0-9_]+)(\[(?P<label>[^\]]+)\])?$")

DEFINITIONS = {
    "segmentation": [
        "Dice, sensitivity (TP/(TP+FN)), specificity (TN/(TN+FP)), PPV (TP/(TP+FP)) and NPV (TN/(TN+FN)) "
        "count voxels of one class over all validation cases together; a ratio whose denominator is 0 "
        "(e.g. sensitivity where no voxel of the class exists and none is predicted) scores 1.",
        "HD95 (mm): per case, the larger of the two directed 95th percentiles: of the distances from every "
        "boundary voxel of the prediction to the nearest boundary voxel of the truth, and from the truth's to the "
        "prediction's (MONAI compute_hausdorff_distance, percentile=95, with the case's prepared voxel spacing; "
        "boundary = mask minus its erosion); averaged over cases.",
        "Empty masks: a case where both prediction and truth lack the class is left out of HD95 (no surface to "
        "measure; a class empty in every case scores 0 mm); a case where exactly one of them is empty scores the "
        "diagonal of the case's field of view in mm (the largest distance possible in it). Surface Dice scores 1 "
        "when both are empty and 0 when one is.",
        "Surface Dice at tolerance τ mm: the fraction of both boundaries lying within τ of the other boundary "
        "(MONAI compute_surface_dice), averaged over cases.",
        "Without a spacing in the validation headers, distances are in voxels (spacing 1).",
    ],
    "classification": [
        "AUC: area under the ROC curve (2 classes: of the positive class; more: one-vs-rest, macro-averaged).",
        "Sensitivity, specificity, PPV and NPV of the positive class at the operating threshold: a case is "
        "called positive when the positive class's probability (softmax of logits) is >= the threshold; "
        "a ratio whose denominator is 0 scores 1.",
    ],
}


def worsening(name: str, reference: float, value: float) -> float:
    """How much ``value`` is worse than ``reference`` in the metric's unit: a drop for the
    higher-is-better metrics, an increase for HD95 (mm)."""
    base = _base_name(name)
    return value - reference if base in LOWER_IS_BETTER else reference - value


def gate_failures(reference: dict[str, float], metrics: dict[str, float], gates: dict[str, float]) -> list[str]:
    """The reasons a variant fails its secondary gates: each gated metric may worsen against
    the FP32 reference by at most its budget (in the metric's unit)."""
    reasons = []
    for name, budget in gates.items():
        if name not in metrics or name not in reference:
            raise ValueError(f"accuracy_budget.gates: no metric {name!r}; this model reports {', '.join(sorted(metrics))}")
        worse = worsening(name, reference[name], metrics[name])
        if worse > budget:
            verb = "rose" if _base_name(name) in LOWER_IS_BETTER else "dropped"
            reasons.append(f"{name} {verb} by {worse:.4f} against FP32, more than its budget {budget}")
    return reasons


def _base_name(name: str) -> str:
    match = GATE_NAME.match(name)
    return match.group("base") if match else name


def _ratio(numerator: int, denominator: int) -> float:
    return 1.0 if denominator == 0 else numerator / denominator


def confusion_rates(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Sensitivity, specificity, PPV and NPV of boolean ``predicted`` against ``truth``,
    counted over all elements; a 0/0 ratio scores 1 (nothing to find, nothing missed)."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    tn = int(predicted.size - tp - fp - fn)
    return {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
    }


def _one_hot(mask: np.ndarray):
    """[spatial] boolean → torch [1, 2, spatial] (background, class) for MONAI."""
    import torch

    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))
    return torch.stack([~m, m]).unsqueeze(0).float()


def hd95_mm(predicted: np.ndarray, truth: np.ndarray, spacing_mm: Sequence[float]) -> float | None:
    """HD95 in mm of one case's boolean masks (MONAI: the larger directed 95th percentile).
    None when both are empty (left out); the field-of-view diagonal when only one is."""
    from monai.metrics import compute_hausdorff_distance

    has_p, has_t = bool(predicted.any()), bool(truth.any())
    if not has_p and not has_t:
        return None
    if has_p != has_t:
        return _diagonal_mm(truth.shape, spacing_mm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = compute_hausdorff_distance(
            _one_hot(predicted), _one_hot(truth), include_background=False, percentile=95, spacing=[float(s) for s in spacing_mm]
        )
    return float(value.item())


def surface_dice(predicted: np.ndarray, truth: np.ndarray, spacing_mm: Sequence[float], tolerance_mm: float) -> float:
    """Surface Dice of one case's boolean masks at ``tolerance_mm`` (MONAI); 1 when both are
    empty, 0 when only one is."""
    from monai.metrics import compute_surface_dice

    has_p, has_t = bool(predicted.any()), bool(truth.any())
    if not has_p and not has_t:
        return 1.0
    if has_p != has_t:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = compute_surface_dice(
            _one_hot(predicted), _one_hot(truth), [float(tolerance_mm)], include_background=False, spacing=[float(s) for s in spacing_mm]
        )
    return float(value.item())


def _diagonal_mm(shape: tuple[int, ...], spacing_mm: Sequence[float]) -> float:
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing_mm)))


def segmentation_metrics(
    predicted: np.ndarray,
    truth: np.ndarray,
    labels: Sequence[str],
    spacings_mm: Sequence[Sequence[float] | None],
    tolerance_mm: float = 1.0,
) -> dict[str, float]:
    """Clinical metrics of label maps ``predicted`` / ``truth`` [N, ...spatial]: for every
    foreground class (1..len(labels)-1) ``name[label]``, and ``name`` their mean. ``spacings_mm``
    gives each case's voxel spacing (mm, per spatial axis); None means 1 (voxel units)."""
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted labels {predicted.shape} and masks {truth.shape} differ in shape")
    if len(spacings_mm) != len(truth):
        raise ValueError(f"{len(spacings_mm)} spacings for {len(truth)} cases")
    spatial = truth.ndim - 1
    spacings = [tuple(s) if s is not None and len(s) == spatial else (1.0,) * spatial for s in spacings_mm]
    result: dict[str, float] = {}
    for c in range(1, len(labels)):
        p, t = predicted == c, truth == c
        figures = {"dice": dice((p).astype(np.int64), (t).astype(np.int64), classes=2)} | confusion_rates(p, t)
        distances = [hd95_mm(p[i], t[i], spacings[i]) for i in range(len(t))]
        measured = [d for d in distances if d is not None]
        figures["hd95_mm"] = float(np.mean(measured)) if measured else 0.0
        figures["surface_dice"] = float(np.mean([surface_dice(p[i], t[i], spacings[i], tolerance_mm) for i in range(len(t))]))
        for name, value in figures.items():
            result[f"{name}[{labels[c]}]"] = value
    for name in SEGMENTATION_METRICS:
        result[name] = float(np.mean([result[f"{name}[{labels[c]}]"] for c in range(1, len(labels))]))
    return dict(sorted(result.items(), key=lambda item: (SEGMENTATION_METRICS.index(_base_name(item[0])), "[" in item[0], item[0])))


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, positive: int, threshold: float = 0.5) -> dict[str, float]:
    """AUC (:func:`macro_auc`) and the positive class's sensitivity, specificity, PPV, NPV
    when a case is called positive at ``probabilities[:, positive] >= threshold``."""
    labels = np.asarray(labels)
    return {"auc": macro_auc(labels, probabilities)} | confusion_rates(probabilities[:, positive] >= threshold, labels == positive)


def clinical_metrics(
    output: OutputSpec,
    values: np.ndarray,
    labels: np.ndarray | None,
    masks: np.ndarray | None,
    spacings_mm: Sequence[Sequence[float] | None] | None = None,
    *,
    threshold: float = 0.5,
    positive_class: str | None = None,
    tolerance_mm: float = 1.0,
) -> dict[str, float]:
    """The clinical metrics of ``values`` of the metric output on the validation cases."""
    if output.meaning in CLASSIFICATION_MEANINGS:
        if labels is None:
            raise ValueError("classification metrics need labels")
        scores = values.astype(np.float64)
        probabilities = _softmax(scores) if output.meaning == OutputMeaning.CLASS_LOGITS else scores
        positive = probabilities.shape[1] - 1
        if positive_class is not None:
            if positive_class not in output.labels:
                raise ValueError(f"accuracy_budget.positive_class {positive_class!r} is not one of the labels {output.labels}")
            positive = list(output.labels).index(positive_class)
        return classification_metrics(labels, probabilities, positive, threshold)
    if masks is None:
        raise ValueError("segmentation metrics need masks")
    predicted = segmentation_labels(output, values)
    names = list(output.labels) or [str(c) for c in range(int(max(predicted.max(), masks.max())) + 1)]
    return segmentation_metrics(predicted, masks, names, spacings_mm if spacings_mm is not None else [None] * len(masks), tolerance_mm)
