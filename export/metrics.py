"""Task metrics that gate lower-precision variants: ROC AUC for classification, Dice for
segmentation — computed on the validation set from what the model's metric output answers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from contract import CLASSIFICATION_MEANINGS, OutputMeaning

from .spec import OutputSpec

__all__ = ["TaskMetric", "dice", "macro_auc", "roc_auc", "segmentation_labels", "task_metric"]


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
