"""What each model output means, and the groups of meanings export and gateway act on."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["CLASSIFICATION_MEANINGS", "LABELLED_MEANINGS", "OutputMeaning", "SEGMENTATION_MEANINGS"]


class OutputMeaning(StrEnum):
    CLASS_PROBABILITIES = "class_probabilities"
    """[N, classes], each row sums to 1."""
    CLASS_LOGITS = "class_logits"
    """[N, classes], before softmax."""
    SEGMENTATION_PROBABILITIES = "segmentation_probabilities"
    """[N, classes, (D,) H, W] per-voxel class probabilities."""
    SEGMENTATION_LABELS = "segmentation_labels"
    """[N, (D,) H, W] integer label map (the only meaning with an integer dtype)."""
    ACTIVATION_MAP = "activation_map"
    """[N, (1,) h, w] class-activation map of a classifier, upsampled for the heatmap."""

    @property
    def is_segmentation(self) -> bool:
        return self in SEGMENTATION_MEANINGS

    @property
    def is_classification(self) -> bool:
        return self in CLASSIFICATION_MEANINGS


#: Outputs a classification model may lead with (the one its metric and answer come from).
CLASSIFICATION_MEANINGS: tuple[OutputMeaning, ...] = (OutputMeaning.CLASS_PROBABILITIES, OutputMeaning.CLASS_LOGITS)
#: Outputs a segmentation model may lead with.
SEGMENTATION_MEANINGS: tuple[OutputMeaning, ...] = (OutputMeaning.SEGMENTATION_PROBABILITIES, OutputMeaning.SEGMENTATION_LABELS)
#: Outputs whose ``labels`` must name at least 2 classes (for segmentation, background first).
LABELLED_MEANINGS: tuple[OutputMeaning, ...] = (OutputMeaning.CLASS_PROBABILITIES, *SEGMENTATION_MEANINGS)
