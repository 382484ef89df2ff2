"""Post-processing of segmentation outputs: class scores → labels → refined labels, by a declarative spec.

numpy and scipy.ndimage only (the gateway image has no torch); see :mod:`postprocessing.spec`
for the ops and their references (MONAI's transforms).
"""

from .labels import argmax_labels, to_labels
from .morphology import refine
from .spec import GRIDS, POSTPROCESSING_OPS, PostprocessingSpec, PostprocessingStep

__all__ = ["GRIDS", "POSTPROCESSING_OPS", "PostprocessingSpec", "PostprocessingStep", "argmax_labels", "refine", "to_labels"]
